"""Every service's metrics endpoint, as the processes serve it: it answers, and after a send it has the
service's key series, none labelled by tenant or session."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import Stack, Tenant
from tests.e2e.conftest import link_session, new_phone
from tests.support.clients import WsCollector, eventually

FORBIDDEN_LABELS = {"tenant", "tenant_id", "session", "session_id", "message_id", "url", "user", "user_id"}


def _check_bounded(text: str, *ids: str) -> None:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            assert not FORBIDDEN_LABELS & set(sample.labels), sample
            assert not set(ids) & set(sample.labels.values()), sample


async def test_every_service_serves_its_key_series(stack: Stack, tenant: Tenant, ws_url) -> None:  # type: ignore[no-untyped-def]
    async with WsCollector(ws_url(tenant)) as ws:
        sid, _ = await link_session(stack, tenant, ws)
        r = await tenant.http.post(f"/sessions/{sid}/messages", json={"to": new_phone(), "content": "hola"})
        assert r.status_code == 202, r.text
        command_id = r.json()["commandId"]
        await ws.wait_for(lambda e: e["type"] == "session.messages.upsert"
                          and e["payload"]["requestId"] == command_id)
        ws_port = stack.ws_url.rsplit(":", 1)[1]
        runner_port = stack.runner().env["RUNNER_METRICS_PORT"]
        projector_port = stack.procs["projector"].env["PROJECTOR_METRICS_PORT"]
        async with httpx.AsyncClient(timeout=10, trust_env=False) as http:
            api = (await http.get(f"{stack.api_url}/metrics")).text
            gateway = (await http.get(f"http://127.0.0.1:{ws_port}/metrics")).text

            async def runner_sampled() -> str:
                text = (await http.get(f"http://127.0.0.1:{runner_port}/metrics")).text
                return text if 'zapstream_runner_sessions{state="connected"}' in text else ""

            runner = await eventually(runner_sampled, timeout=20)

            async def projector_sampled() -> str:
                text = (await http.get(f"http://127.0.0.1:{projector_port}/metrics")).text
                return text if "zapstream_kafka_consumer_lag{" in text else ""

            projector = await eventually(projector_sampled, timeout=20)
    for series in ('route="/sessions/{session_id}/messages",status="202"', "zapstream_http_request_duration_seconds",
                   'zapstream_commands_total{outcome="accepted",type="session.send_message"}',
                   "zapstream_kafka_records_produced_total{"):
        assert series in api, series
    assert 'zapstream_ws_connections{tenant_class="apikey"} 1.0' in gateway
    assert "zapstream_kafka_records_consumed_total{" in gateway
    for series in ('zapstream_runner_send_seconds_count{kind="text"}', "zapstream_kafka_transaction_commit_seconds_count",
                   'zapstream_commands_total{outcome="handled",type="session.send_message"}',
                   "zapstream_kafka_records_produced_total{", "zapstream_kafka_records_consumed_total{",
                   "zapstream_kafka_consumer_lag{"):
        assert series in runner, series
    for series in ("zapstream_projector_batch_size_count", "zapstream_projector_event_age_seconds_count",
                   "zapstream_projector_commit_seconds_count", "zapstream_kafka_records_consumed_total{"):
        assert series in projector, series
    for text in (api, gateway, runner, projector):
        _check_bounded(text, sid, tenant.id)
