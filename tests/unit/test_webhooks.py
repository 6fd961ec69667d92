"""Webhooks without I/O: Standard Webhooks signatures, the retry schedule, filters and the SSRF rules."""

from __future__ import annotations

import random
import time
import uuid
from datetime import UTC, datetime

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from webhooks.backoff import delay, total_span
from webhooks.consumer import deliveries_for
from webhooks.settings import Settings
from webhooks.store import Endpoint
from zapstream_contracts.envelope import Envelope
from zapstream_domain.session import EVENTS_BY_TYPE
from zapstream_platform import webhooks as wh

BODY = b'{"type":"session.messages.upsert","eventId":"e-1"}'


def test_signature_verifies_with_the_standard_webhooks_library() -> None:
    secret = wh.new_secret()
    ts = int(time.time())
    headers = wh.headers([secret], "e-1", ts, BODY)
    assert set(headers) == {"webhook-id", "webhook-timestamp", "webhook-signature"}
    assert headers["webhook-signature"].startswith("v1,")
    assert Webhook(secret).verify(BODY, headers) is not None  # an independent implementation agrees
    assert wh.verify(secret, "e-1", ts, BODY, headers["webhook-signature"])


def test_signature_covers_id_timestamp_and_body() -> None:
    secret = wh.new_secret()
    ts = int(time.time())
    sig = wh.headers([secret], "e-1", ts, BODY)["webhook-signature"]
    assert not wh.verify(secret, "e-2", ts, BODY, sig)
    assert not wh.verify(secret, "e-1", ts + 1, BODY, sig)
    assert not wh.verify(secret, "e-1", ts, BODY + b" ", sig)
    assert not wh.verify(wh.new_secret(), "e-1", ts, BODY, sig)
    with pytest.raises(WebhookVerificationError):
        Webhook(wh.new_secret()).verify(BODY, {"webhook-id": "e-1", "webhook-timestamp": str(ts),
                                               "webhook-signature": sig})


def test_rotation_signs_with_both_secrets() -> None:
    new, old = wh.new_secret(), wh.new_secret()
    ts = int(time.time())
    headers = wh.headers([new, old], "e-1", ts, BODY)
    assert len(headers["webhook-signature"].split()) == 2
    for secret in (new, old):  # a receiver still on the old secret, or already on the new one, accepts it
        Webhook(secret).verify(BODY, headers)


def test_secrets_are_random_and_prefixed() -> None:
    secrets = {wh.new_secret() for _ in range(50)}
    assert len(secrets) == 50
    assert all(s.startswith("whsec_") for s in secrets)


def test_backoff_doubles_then_caps() -> None:
    delays = [delay(a, 10, 3600, 0) for a in range(1, 12)]
    assert delays[:4] == [10, 20, 40, 80]
    assert delays == sorted(delays)
    assert max(delays) == 3600


def test_backoff_jitter_stays_within_bounds() -> None:
    rng = random.Random(7)
    samples = [delay(3, 10, 3600, 0.2, rng) for _ in range(500)]
    assert all(32 <= s <= 48 for s in samples)
    assert len({round(s, 3) for s in samples}) > 100  # actually spread, not one value


def test_default_schedule_spans_about_a_day() -> None:
    s = Settings()
    span = total_span(s.max_attempts, s.backoff_base_s, s.backoff_cap_s)
    assert 20 * 3600 <= span <= 28 * 3600, span / 3600


@pytest.mark.parametrize(("types", "sessions", "event", "session", "wanted"), [
    ([], [], "session.messages.upsert", "s1", True),
    (["*"], [], "session.status.connected", "s1", True),
    (["session.messages.*"], [], "session.messages.update", "s1", True),
    (["session.messages.*"], [], "session.status.connected", "s1", False),
    (["session.qr.updated"], [], "session.qr.updated", "s1", True),
    (["session.qr.updated"], [], "session.qr.updatedX", "s1", False),
    ([], ["s2"], "session.messages.upsert", "s1", False),
    (["session.messages.*"], ["s1"], "session.messages.upsert", "s1", True),
])
def test_filters(types: list[str], sessions: list[str], event: str, session: str, wanted: bool) -> None:
    assert wh.wants(types, sessions, event, session) is wanted


def test_type_filters_must_name_known_types() -> None:
    known = list(EVENTS_BY_TYPE)
    assert wh.valid_type_filter("session.messages.upsert", known)
    assert wh.valid_type_filter("session.messages.*", known)
    assert wh.valid_type_filter("*", known)
    assert not wh.valid_type_filter("session.nope", known)
    assert not wh.valid_type_filter("nope.*", known)


@pytest.mark.parametrize("url", [
    "https://127.0.0.1/hook", "https://10.1.2.3/hook", "https://192.168.0.5/x", "https://172.16.0.1/x",
    "https://169.254.169.254/latest/meta-data", "https://[::1]/x", "https://[fe80::1]/x", "https://0.0.0.0/x",
    "https://[::ffff:127.0.0.1]/x", "https://100.64.0.1/x",
])
async def test_private_addresses_are_refused(url: str) -> None:
    with pytest.raises(wh.UnsafeUrl):
        await wh.check_url(url, allow_private=False, allow_http=False)
    await wh.check_url(url, allow_private=True, allow_http=False)  # the operator may allow them


@pytest.mark.parametrize("url", ["http://8.8.8.8/x", "ftp://8.8.8.8/x", "https://user:pw@8.8.8.8/x",
                                 "https:///nohost", "https://8.8.8.8:99999/x"])
async def test_bad_shapes_are_refused(url: str) -> None:
    with pytest.raises(wh.UnsafeUrl):
        await wh.check_url(url, allow_private=True, allow_http=False)


async def test_public_literal_address_is_accepted() -> None:
    await wh.check_url("https://8.8.8.8/hook", allow_private=False, allow_http=False)
    await wh.check_url("http://8.8.8.8/hook", allow_private=False, allow_http=True)



def _env(tenant: str, type_: str, session: str, occurred: str = "2026-12-07T12:00:00.000Z") -> Envelope:
    return Envelope(type_, session, str(uuid.uuid4()), occurred, {"tenantId": tenant})


def test_deliveries_go_to_the_tenants_own_endpoints_that_want_them() -> None:
    since = datetime(2026, 12, 7, 11, tzinfo=UTC)
    a_all = Endpoint(uuid.uuid4(), "ta", [], [], since)
    a_msgs = Endpoint(uuid.uuid4(), "ta", ["session.messages.*"], [], since)
    b_one_session = Endpoint(uuid.uuid4(), "tb", [], ["s-b1"], since)
    envs = [
        _env("ta", "session.messages.upsert", "s-a"),
        _env("ta", "session.status.connected", "s-a"),
        _env("tb", "session.messages.upsert", "s-b1"),
        _env("tb", "session.messages.upsert", "s-b2"),
        _env("ta", "session.messages.upsert", "s-a", occurred="2026-12-07T10:00:00.000Z"),  # before registration
        _env("tc", "session.messages.upsert", "s-c"),  # a tenant without endpoints
    ]
    got = {(d.endpoint_id, d.event_id) for d in deliveries_for(envs, [a_all, a_msgs, b_one_session])}
    assert got == {(a_all.id, envs[0].event_id), (a_msgs.id, envs[0].event_id), (a_all.id, envs[1].event_id),
                   (b_one_session.id, envs[2].event_id)}
    body = next(d.body for d in deliveries_for(envs[:1], [a_all]))
    assert body == envs[0].value()  # the client envelope, byte for byte
