"""docs/analytics.md's worked example, on real traffic: the services and the simulator make the data.

Two tenants link a number each and send messages (the simulator's contacts deliver, read and reply), one of
them runs a three-recipient campaign; then both topics go through ``zapstream events export`` and the doc's
DuckDB queries. Run with ``-s`` to see the outputs the doc shows.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import phonenumbers
import pytest

from tests.conftest import Stack, Tenant, service_env
from tests.e2e.conftest import link_session, new_phone
from tests.integration.test_export import ZAPSTREAM, cli
from tests.integration.test_export_analytics import doc_polars, doc_queries
from tests.support.clients import WsCollector, eventually
from tests.support.stack import Proc, free_port
from zapstream_platform.settings import KafkaSettings
from zapstream_platform.topics import Topics

SENDS = {"a": 5, "b": 3}


@pytest.fixture(scope="module")
def campaign_runner(stack: Stack, infra: str, kafka: KafkaSettings, run_id: str) -> Iterator[Proc]:
    proc = Proc("campaign-runner", "campaign_runner", service_env("CAMPAIGN_RUNNER_", kafka, infra) | {
        "CAMPAIGN_RUNNER_GROUP_ID": f"zt-{run_id}-campaigns", "CAMPAIGN_RUNNER_INSTANCE_ID": "campaign-runner",
        "CAMPAIGN_RUNNER_TICK_MS": "50", "CAMPAIGN_RUNNER_METRICS_PORT": str(free_port())})
    proc.start()
    yield proc
    proc.stop()


def py_phone() -> str:
    """A Paraguayan mobile in E.164 digits (the tenants' default country is 595)."""
    while True:
        phone = "59598" + random.choice("12345678") + "".join(random.choices("0123456789", k=6))
        if phonenumbers.is_valid_number(phonenumbers.parse("+" + phone)):
            return phone


async def traffic(stack: Stack, tenant: Tenant, ws: WsCollector, sends: int) -> str:
    """Link a number and send ``sends`` messages, each to a new contact; wait until each is delivered."""
    sid, _ = await link_session(stack, tenant, ws)
    for n in range(sends):
        r = await tenant.http.post(f"/sessions/{sid}/messages", json={"to": new_phone(), "content": f"hola {n}"})
        assert r.status_code == 202, r.text
        message_id: str = r.json()["messageId"]

        def delivered(e: dict[str, Any], m: str = message_id) -> bool:
            return e["type"] == "session.messages.update" and any(
                u["messageId"] == m and u["status"] in ("delivered", "read") for u in e["payload"]["updates"])

        await ws.wait_for(delivered)
    return sid


async def run_campaign(tenant: Tenant, sid: str) -> str:
    people = [py_phone() for _ in range(3)]
    csv = "numero,sustantivo,nombre,grupo\n" + "".join(f"{p},Sr,Cliente {n},VIP\n" for n, p in enumerate(people))
    r = await tenant.http.post("/contacts/import", content=csv.encode(), headers={"content-type": "text/csv"})
    assert r.status_code == 201 and r.json()["imported"] == 3, r.text
    r = await tenant.http.post("/campaigns", json={
        "name": "promo diciembre", "sessionIds": [sid], "message": {"text": "Hola {sustantivo} {nombre}"},
        "audience": {"groups": ["VIP"]}, "pacing": {"enabled": False}, "start": True})
    assert r.status_code == 202, r.text
    cid: str = r.json()["campaignId"]

    async def finished() -> bool:
        body = (await tenant.http.get(f"/campaigns/{cid}")).json()
        n = body.get("counts", {})
        return bool(body.get("status") == "completed" and n.get("read", 0) + n.get("delivered", 0) == 3)

    await eventually(finished, timeout=90, interval=0.3)
    return cid


async def test_the_worked_example_on_real_traffic(  # type: ignore[no-untyped-def]
        stack: Stack, tenant_factory: Any, ws_url, campaign_runner: Proc, kafka: KafkaSettings,
        tmp_path: Path) -> None:
    a, b = await tenant_factory(), await tenant_factory()
    async with WsCollector(ws_url(a)) as ws_a, WsCollector(ws_url(b)) as ws_b:
        sid_a = await traffic(stack, a, ws_a, SENDS["a"])
        await traffic(stack, b, ws_b, SENDS["b"])
        await run_campaign(a, sid_a)
        # The campaign's messages are read by the simulator's contacts: wait for those receipts too.
        await ws_a.wait_for(lambda e: e["type"] == "campaign.progress" and e["payload"]["counts"]["read"] == 3,
                            timeout=60)

    topics = Topics.from_settings(kafka)
    shown: list[str] = []
    for topic in (topics.session_events, topics.campaign_events):
        code, out, err = await cli(kafka, ZAPSTREAM, "events", "export", "--topic", topic, "--since", "2026-01-01",
                                   "--format", "parquet", "--out", str(tmp_path / "export"))
        assert code == 0, err
        shown.append(f"$ zapstream events export --topic {topic} …\n{err.splitlines()[-1]}\n"
                     + out.replace(str(tmp_path) + "/", ""))

    queries = doc_queries()
    db = duckdb.connect()
    db.execute(queries["setup"])
    results: dict[str, list[tuple[Any, ...]]] = {}
    for title in ("messages per day per tenant", "delivery latency percentiles", "campaign funnel"):
        relation = db.sql(queries[title].replace("'export/", f"'{tmp_path}/export/"))
        shown.append(f"-- {title}\n{relation}")
        results[title] = relation.fetchall()
    printed: list[str] = []
    exec(doc_polars().replace('"export/', f'"{tmp_path}/export/'), {"print": lambda x: printed.append(str(x))})
    shown.append(f"-- polars\n{printed[0]}")
    print("\n".join(shown))  # what docs/analytics.md shows (pytest -s)

    mine = {a.id: "a", b.id: "b"}
    sent = {"a": 0, "b": 0}
    for row in results["messages per day per tenant"]:  # one day, unless the run spans midnight UTC
        if row[1] in mine:
            sent[mine[row[1]]] += row[2]
    assert sent == {"a": SENDS["a"] + 3, "b": SENDS["b"]}  # a's campaign sent through a's number
    delivered = {mine[r[0]]: r[1] for r in results["delivery latency percentiles"] if r[0] in mine}
    assert delivered == {"a": SENDS["a"] + 3, "b": SENDS["b"]}
    funnel = [r for r in results["campaign funnel"] if r[0] == a.id]
    assert funnel == [(a.id, "promo diciembre", 3, 0, 3, 3, 3, 3, 0)]
