"""Campaigns end to end (seed 004): address book import, template + image campaign, cancel, opt-out,
and a 1,000-recipient campaign over two numbers with the campaign runner SIGKILLed twice (the second time
together with the session runner)."""

from __future__ import annotations

import asyncio
import os
import random
import sys
from collections import Counter
from collections.abc import Iterator
from typing import Any

import asyncpg
import httpx
import orjson
import phonenumbers
import pytest

from tests.conftest import Stack, Tenant, service_env
from tests.e2e.conftest import link_session
from tests.support import media_samples as samples
from tests.support.clients import WsCollector, eventually, read_records
from tests.support.stack import LOG_DIR, Proc, free_port
from zapstream_platform.settings import KafkaSettings
from zapstream_platform.topics import Topics


def py_phone() -> str:
    """A Paraguayan mobile (0981 …) in E.164 digits: valid for phonenumbers, unique per test."""
    while True:
        phone = "59598" + random.choice("12345678") + "".join(random.choices("0123456789", k=6))
        if phonenumbers.is_valid_number(phonenumbers.parse("+" + phone)):
            return phone


@pytest.fixture(scope="module")
def campaign_runner(stack: Stack, infra: str, kafka: KafkaSettings, run_id: str) -> Iterator[Proc]:
    proc = Proc("campaign-runner", "campaign_runner", service_env("CAMPAIGN_RUNNER_", kafka, infra) | {
        "CAMPAIGN_RUNNER_GROUP_ID": f"zt-{run_id}-campaigns",
        "CAMPAIGN_RUNNER_INSTANCE_ID": "campaign-runner",
        "CAMPAIGN_RUNNER_TICK_MS": "50",
        "CAMPAIGN_RUNNER_SESSION_TIMEOUT_MS": "6000",
        "CAMPAIGN_RUNNER_METRICS_PORT": str(free_port()),
    })
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def analytics(stack: Stack, infra: str, kafka: KafkaSettings, run_id: str) -> Iterator[Proc]:
    proc = Proc("analytics", "analytics", service_env("ANALYTICS_", kafka, infra) | {
        "ANALYTICS_APP_ID": f"zt-{run_id}-analytics", "ANALYTICS_FLUSH_INTERVAL_S": "0.3",
        "ANALYTICS_DATA_DIR": str(LOG_DIR / f"analytics-{run_id}")})
    proc.start()
    yield proc
    proc.stop()


async def campaign(tenant: Tenant, cid: str) -> dict[str, Any]:
    r = await tenant.http.get(f"/campaigns/{cid}")
    return r.json() if r.status_code == 200 else {}


async def wait_status(tenant: Tenant, cid: str, status: str, timeout: float = 60) -> dict[str, Any]:
    async def reached() -> dict[str, Any]:
        body = await campaign(tenant, cid)
        if body.get("status") != status:
            return {}
        n = body["counts"]  # status and counts are separate events: wait until both are projected
        ended = sum(n[k] for k in ("sent", "delivered", "read", "failed", "skipped", "cancelled"))
        return body if ended == n["total"] else {}

    result: dict[str, Any] = await eventually(reached, timeout=timeout, interval=0.3)
    return result


def done(body: dict[str, Any]) -> int:
    n = body.get("counts", {})
    return int(n.get("sent", 0) + n.get("delivered", 0) + n.get("read", 0))


async def test_seed_004_workflow(  # type: ignore[no-untyped-def]
    stack: Stack, tenant: Tenant, ws_url, campaign_runner: Proc, pg: asyncpg.Pool, kafka: KafkaSettings
) -> None:
    async with WsCollector(ws_url(tenant)) as ws:
        sid, phone = await link_session(stack, tenant, ws)
    people = [py_phone() for _ in range(3)]
    csv = ("numero,sustantivo,nombre,grupo\n"
           f"{people[0]},Sr,Carlos Gómez,Premium\n"
           f"0{people[1][3:]},Sra,Ana Benítez,VIP\n"  # national format: normalised with the tenant's 595
           f"+{people[2]},Dr,José Acosta,VIP\n"
           "12ab,Sr,Nadie,VIP\n")
    r = await tenant.http.post("/contacts/import", content=csv.encode(), headers={"content-type": "text/csv"})
    assert r.status_code == 201, r.text
    result = r.json()
    assert (result["imported"], result["rejected"], result["status"]) == (3, 1, "done")
    assert result["errors"][0]["line"] == 5
    groups = (await tenant.http.get("/contacts/groups")).json()["groups"]
    assert {g["grupo"]: g["contacts"] for g in groups} == {"Premium": 1, "VIP": 2}
    listed = (await tenant.http.get("/address-book/contacts", params={"grupo": "VIP"})).json()["contacts"]
    assert sorted(c["phone"] for c in listed) == sorted(people[1:])

    up = await tenant.http.post("/media", data={"kind": "image"}, files={"file": ("promo.png", samples.png(40, 30))})
    assert up.status_code == 201, up.text
    body = {"name": "promo", "sessionIds": [sid],
            "message": {"text": "Hola {sustantivo} {nombre} ({grupo})", "mediaIds": [up.json()["mediaId"]]},
            "audience": {"groups": ["Premium", "VIP"]}, "pacing": {"enabled": False}}
    preview = await tenant.http.post("/campaigns/preview", json=body)
    assert preview.status_code == 200, preview.text
    assert preview.json()["items"][0]["text"] == "Hola Sr Carlos Gómez (Premium)"
    async with WsCollector(ws_url(tenant)) as live:
        r = await tenant.http.post("/campaigns", json=body | {"start": True})
        assert r.status_code == 202, r.text
        cid = r.json()["campaignId"]
        final = await wait_status(tenant, cid, "completed")
        assert done(final) == 3 and final["progress"] == 1.0
        # Live on the tenant's WebSocket: progress as recipients are sent, and the status changes.
        await live.wait_for(lambda e: e["type"] == "campaign.progress" and e.get("campaignId") == cid)
        await live.wait_for(lambda e: e["type"] == "campaign.status" and e.get("campaignId") == cid
                            and e["payload"].get("status") == "completed")
    async with httpx.AsyncClient(timeout=10, trust_env=False) as http:  # campaign sends on the metrics port
        scrape = (await http.get(f"http://127.0.0.1:{campaign_runner.env['CAMPAIGN_RUNNER_METRICS_PORT']}/metrics")).text
    assert 'zapstream_campaign_sends_total{outcome="dispatched"} 3.0' in scrape
    # Whichever outcomes the router saw by now (a receipt can be the first word of a send's fate).
    assert any(f'zapstream_campaign_sends_total{{outcome="{o}"}}' in scrape for o in ("succeeded", "delivered", "read"))
    assert cid not in scrape and tenant.id not in scrape
    async with httpx.AsyncClient(base_url=stack.sim_url, timeout=10) as sim:
        inbox = (await sim.get(f"/control/accounts/{people[0]}/inbox")).json()["messages"]
        assert [(m["text"], m["media"]["kind"]) for m in inbox if m["from"] == phone] == [
            ("Hola Sr Carlos Gómez (Premium)", "image")]
    recipients = (await tenant.http.get(f"/campaigns/{cid}/recipients")).json()["recipients"]
    assert [x["phone"] for x in recipients] == people and all(x["messageId"] for x in recipients)
    exported = await tenant.http.get(f"/campaigns/{cid}/recipients", params={"format": "csv"})
    assert exported.headers["content-type"].startswith("text/csv") and exported.text.count("\n") == 4

    # A second, slow campaign is cancelled: the recipients still waiting are not sent.
    slow = body | {"name": "slow", "pacing": {"baseDelayS": 600, "jitterS": 0, "typing": False,
                                               "quietHours": False, "warmup": []}}
    r = await tenant.http.post("/send-messages", json=slow)
    assert r.status_code == 202, r.text
    slow_id = r.json()["campaignId"]
    await eventually(lambda: _sent_at_least(tenant, slow_id, 1), timeout=30)
    assert (await tenant.http.post(f"/campaigns/{slow_id}/pause")).status_code == 202
    await eventually(lambda: _status_is(tenant, slow_id, "paused"), timeout=30)
    assert (await tenant.http.post(f"/campaigns/{slow_id}/pause")).status_code == 409
    assert (await tenant.http.post(f"/campaigns/{slow_id}/resume")).status_code == 202
    await eventually(lambda: _status_is(tenant, slow_id, "running"), timeout=30)
    r = await tenant.http.post("/cancel-campaign", json={"campaignId": slow_id})
    assert r.status_code == 202, r.text
    cancelled = await wait_status(tenant, slow_id, "cancelled")
    assert done(cancelled) == 1 and cancelled["counts"]["cancelled"] == 2
    r = await tenant.http.post("/cancel-campaign", json={"campaignId": slow_id})
    assert r.status_code == 409 and r.headers["content-type"] == "application/problem+json"

    # Opt-out: a reply of BAJA suppresses the number; the next campaign skips it and says why.
    async with httpx.AsyncClient(base_url=stack.sim_url, timeout=10) as sim:
        r = await sim.post("/control/inject", json={"from": people[1], "to": phone, "text": "Baja"})
        assert r.status_code == 200, r.text

    async def suppressed() -> bool:
        rows = (await tenant.http.get("/suppressions")).json()["suppressions"]
        return any(x["phone"] == people[1] and x["source"] == "reply" for x in rows)

    await eventually(suppressed, timeout=30)
    r = await tenant.http.post("/campaigns", json=body | {"start": True, "name": "again"})
    assert r.status_code == 202 and r.json()["skipped"] == 1
    again = await wait_status(tenant, r.json()["campaignId"], "completed")
    assert done(again) == 2 and again["counts"]["skipped"] == 1
    skipped = (await tenant.http.get(f"/campaigns/{r.json()['campaignId']}/recipients",
                                     params={"status": "skipped"})).json()["recipients"]
    assert [x["phone"] for x in skipped] == [people[1]] and skipped[0]["reason"].startswith("suppressed")

    # The campaign topic (kept for ever) holds no recipient's number or name, the template or the suppressed
    # number in clear: they are encrypted with the tenant's key, while the API above showed them in clear.
    ours = [v for v, h in await read_records(kafka.bootstrap_servers, Topics.from_settings(kafka).campaign_events)
            if dict(h).get("ce_tenantid") == tenant.id.encode()]
    raw = b"\n".join(ours)
    assert b'"campaign.recipients.added"' in raw and b'"campaign.suppression.added"' in raw and b"zsenc:1:" in raw
    for secret in (*people, "Carlos Gómez", "Ana Benítez", "José Acosta", "Premium", "Hola {sustantivo}"):
        assert secret.encode() not in raw and orjson.dumps(secret)[1:-1] not in raw, secret

    # The campaign read model is rebuildable by replay: the same rows from offset 0.
    async def snapshot() -> list[tuple[Any, ...]]:
        rows = await pg.fetch("SELECT * FROM campaigns WHERE tenant_id = $1 ORDER BY id", tenant.id)
        rows += await pg.fetch("SELECT * FROM campaign_recipients WHERE tenant_id = $1 ORDER BY campaign_id, seq",
                               tenant.id)
        return [tuple(r) for r in rows]

    before = await snapshot()
    campaign_runner.stop()
    try:
        replay = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "campaign_runner", "replay", env={**os.environ, **campaign_runner.env},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        out, _ = await asyncio.wait_for(replay.communicate(), 120)
        assert replay.returncode == 0, out[-2000:]
        assert await snapshot() == before
    finally:
        campaign_runner.start()


async def _status_is(tenant: Tenant, cid: str, status: str) -> bool:
    return (await campaign(tenant, cid)).get("status") == status


async def _sent_at_least(tenant: Tenant, cid: str, n: int) -> bool:
    return done(await campaign(tenant, cid)) >= n


async def test_bad_input_is_problem_json(tenant: Tenant, campaign_runner: Proc) -> None:
    r = await tenant.http.post("/campaigns", json={"message": {}, "audience": {}})
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
    r = await tenant.http.get("/campaigns/not-a-uuid")
    assert r.status_code == 404
    r = await tenant.http.post("/address-book/contacts", json={"numero": "12"})
    assert r.status_code == 422
    r = await tenant.http.get("/dashboard/timeline", params={"interval": "week"})
    assert r.status_code == 422
    r = await tenant.http.post("/contacts/import", content=b"numero\n" + b"1" * 100 + b"\n",
                               headers={"content-type": "text/csv"})
    assert r.status_code == 201 and r.json()["rejected"] == 1  # a bad row is reported, never a 500

    # Every new route has typed request and response models in the OpenAPI document.
    spec = (await tenant.http.get("/openapi.json")).json()
    routes = {("post", "/campaigns"), ("get", "/campaigns/{campaign_id}"), ("get", "/campaigns/{campaign_id}/recipients"),
              ("post", "/send-messages"), ("post", "/cancel-campaign"), ("post", "/contacts"),
              ("put", "/contacts/{contact_id}"), ("get", "/contacts/groups"), ("post", "/contacts/import"),
              ("get", "/address-book/contacts"), ("get", "/suppressions"), ("get", "/dashboard/summary"),
              ("get", "/dashboard/timeline"), ("get", "/dashboard/by-group"), ("get", "/dashboard/by-contact"),
              ("get", "/dashboard/current-month"), ("get", "/dashboard/monthly")}
    for method, path in routes:
        op = spec["paths"][path][method]
        ok = next(v for k, v in op["responses"].items() if k.startswith("2"))
        assert "$ref" in str(ok.get("content", {})), (method, path)
        if method in ("post", "put") and path not in ("/contacts/import",):
            assert "requestBody" in op, (method, path)


TOTAL = 1000
OPTED_OUT = 10


async def test_campaign_survives_two_sigkills_each_recipient_once(
    stack: Stack, tenant: Tenant, ws_url, campaign_runner: Proc, analytics: Proc  # type: ignore[no-untyped-def]
) -> None:
    async with WsCollector(ws_url(tenant)) as ws:
        sid_a, phone_a = await link_session(stack, tenant, ws)
        sid_b, phone_b = await link_session(stack, tenant, ws)
    people = list(dict.fromkeys(py_phone() for _ in range(TOTAL + 50)))[:TOTAL]
    opted = people[::TOTAL // OPTED_OUT][:OPTED_OUT]
    async with httpx.AsyncClient(base_url=stack.sim_url, timeout=10) as sim:
        for i, who in enumerate(opted):  # half reply STOP, half are added by hand
            if i % 2 == 0:
                r = await sim.post("/control/inject", json={"from": who, "to": phone_a, "text": "STOP"})
            else:
                r = await tenant.http.post("/suppressions", json={"phone": who})
            assert r.status_code in (200, 201), r.text

        async def all_suppressed() -> bool:
            rows = (await tenant.http.get("/suppressions", params={"limit": 1000})).json()["suppressions"]
            return {x["phone"] for x in rows} >= set(opted)

        await eventually(all_suppressed, timeout=30)
        recipients = [{"numero": p, "nombre": f"N{i}", "grupo": f"G{i % 4}"} for i, p in enumerate(people)]
        r = await tenant.http.post("/send-messages", json={
            "name": "crash", "sessionIds": [sid_a, sid_b], "message": {"text": "Hola {nombre}"},
            "audience": {"recipients": recipients}, "pacing": {"enabled": False, "maxInFlight": 20}})
        assert r.status_code == 202, r.text
        assert r.json()["skipped"] == OPTED_OUT
        cid = r.json()["campaignId"]
        for threshold, also_session_runner in ((TOTAL // 4, False), (TOTAL * 3 // 5, True)):
            await eventually(lambda t=threshold: _sent_at_least(tenant, cid, t), timeout=120, interval=0.2)
            campaign_runner.kill()  # mid-campaign: dispatches, outcomes and projections in flight
            if also_session_runner:
                stack.runner().kill()  # and the sends themselves, the second time
                stack.runner().start()
            await asyncio.sleep(0.5)
            campaign_runner.start()
        final = await wait_status(tenant, cid, "completed", timeout=180)
        failed = (await tenant.http.get(f"/campaigns/{cid}/recipients", params={"status": "failed"})).json()
        assert done(final) == TOTAL - OPTED_OUT, (final["counts"], failed["recipients"][:3])
        assert final["counts"]["skipped"] == OPTED_OUT
        assert final["counts"]["failed"] == 0 and final["counts"]["cancelled"] == 0

        # Count on WhatsApp's side: every recipient got exactly one message, opt-outs none.
        outbox = []
        for phone in (phone_a, phone_b):
            outbox += (await sim.get(f"/control/accounts/{phone}/outbox")).json()["messages"]
    campaign_msgs = [m for m in outbox if m["text"] and m["text"].startswith("Hola N")]
    per_recipient = Counter(m["to"] for m in campaign_msgs)
    assert set(per_recipient) == set(people) - set(opted)
    assert max(per_recipient.values()) == 1
    assert all(m["count"] == 1 for m in campaign_msgs)
    # spread over both numbers, in about equal shares
    by_number = Counter(m["from"] for m in campaign_msgs)
    assert set(by_number) == {phone_a, phone_b} and min(by_number.values()) >= (TOTAL - OPTED_OUT) // 2 - 10
    # each recipient got the text rendered for them
    names = {p: f"Hola N{i}" for i, p in enumerate(people)}
    assert all(m["text"] == names[m["to"]] for m in campaign_msgs)

    # The dashboards (faust windows → analytics_buckets) count what WhatsApp saw. Contacts keep reading
    # for a while after the campaign completes, so compare once all three agree (WhatsApp's reads are
    # counted in the same poll, not before or after it).
    async def read_on_whatsapp() -> int:
        async with httpx.AsyncClient(base_url=stack.sim_url, timeout=10) as sim:
            n = 0
            for phone in (phone_a, phone_b):
                n += sum(1 for m in (await sim.get(f"/control/accounts/{phone}/outbox")).json()["messages"]
                         if m["text"] and m["text"].startswith("Hola N") and m["read"])
            return n

    async def dashboard_settled() -> dict[str, Any]:
        campaign_now = await campaign(tenant, cid)
        summary = (await tenant.http.get("/dashboard/summary")).json()
        t = summary["totals"]
        seen = await read_on_whatsapp()
        return summary if t["sent"] == len(campaign_msgs) and t["read"] == campaign_now["counts"]["read"] == seen \
            else {}

    summary = await eventually(dashboard_settled, timeout=120, interval=0.5)
    assert summary["totals"]["read"] == await read_on_whatsapp()
    groups = (await tenant.http.get("/dashboard/by-group")).json()["items"]
    assert sum(g["totals"]["sent"] for g in groups) == len(campaign_msgs) and len(groups) == 4
    top = (await tenant.http.get("/dashboard/by-contact", params={"limit": 5})).json()["items"]
    assert len(top) == 5 and all(x["totals"]["sent"] == 1 for x in top)
    hours = (await tenant.http.get("/dashboard/timeline", params={"interval": "hour"})).json()["points"]
    assert sum(p["totals"]["sent"] for p in hours) == len(campaign_msgs)
    month = (await tenant.http.get("/dashboard/current-month")).json()["points"]
    monthly = (await tenant.http.get("/dashboard/monthly")).json()["points"]
    assert sum(p["totals"]["sent"] for p in month) == sum(p["totals"]["sent"] for p in monthly) == len(campaign_msgs)
