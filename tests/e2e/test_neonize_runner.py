"""With RUNNER_DRIVER=neonize and no route to WhatsApp, the runner reports a clear error; no crash, no hang."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import orjson
from aiokafka import AIOKafkaProducer

from tests.conftest import runner_proc
from tests.support.clients import eventually, read_topic
from zapstream_platform.settings import KafkaSettings
from zapstream_platform.topics import Topics, ensure_topics


async def test_neonize_runner_without_network_reports_a_connection_error(
    infra: str, kafka: KafkaSettings, run_id: str, tmp_path  # type: ignore[no-untyped-def]
) -> None:
    # Its own topics and group, so this runner never takes partitions from the shared stack.
    own = kafka.model_copy(update={"topic_prefix": f"{kafka.topic_prefix}-nz"})
    await ensure_topics(own)
    topics = Topics.from_settings(own)
    runner = runner_proc("runner-neonize", own, "http://127.0.0.1:9", f"{run_id}-nz", dsn=infra)
    runner.env |= {"RUNNER_DRIVER": "neonize", "RUNNER_NEONIZE_STORE": str(tmp_path / "neonize"),
                   "RUNNER_NEONIZE_CONNECT_TIMEOUT_S": "5"}
    runner.start()
    try:
        sid = str(uuid.uuid4())
        command = {"type": "session.create", "commandId": str(uuid.uuid4()), "sessionId": sid, "tenantId": "t",
                   "issuedAt": datetime.now(UTC).isoformat()}
        producer = AIOKafkaProducer(bootstrap_servers=own.bootstrap_servers, enable_idempotence=True)
        await producer.start()
        try:
            await producer.send_and_wait(topics.session_commands, orjson.dumps(command), key=sid.encode())
        finally:
            await producer.stop()

        async def disconnected() -> list[str]:
            events = await read_topic(own.bootstrap_servers, topics.session_events)
            return [e.payload["reason"] for e in events
                    if e.session_id == sid and e.type == "session.status.disconnected"]

        reasons = await eventually(disconnected, timeout=60, interval=1)
        assert "connect_failed" in reasons[0] and "WhatsApp" in reasons[0], reasons
        assert runner.popen is not None and runner.popen.poll() is None, "the runner must keep running"
    finally:
        runner.stop()
    assert runner.popen is not None and runner.popen.returncode == 0, runner.tail()
