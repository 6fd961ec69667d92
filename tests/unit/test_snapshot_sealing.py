"""The runner's snapshots hold unsent texts and the account's number: sealed with the tenant's key, restored
whole, and gone with the key (the session then stays, deleted and empty, so that its purge is recorded)."""

from __future__ import annotations

import orjson

from session_runner.snapshots import SnapshotLog, _apply_stored
from tests.unit.test_keyring import FakePool
from tests.unit.test_runner_core import NOW, _cmd, _connected
from zapstream_contracts import commands as c
from zapstream_contracts.envelope import Envelope
from zapstream_domain.decisions import decide
from zapstream_domain.session import Session
from zapstream_domain.snapshots import erased_session, session_from_snapshot, snapshot_of
from zapstream_platform.pii import KeyRing
from zapstream_platform.settings import KafkaSettings
from zapstream_platform.topics import Topics


def _log(pool: FakePool) -> SnapshotLog:
    return SnapshotLog(Topics.from_settings(KafkaSettings()), 0, "unused:9092", 100, KeyRing(pool))  # type: ignore[arg-type]


async def test_a_sealed_snapshot_restores_the_whole_state_and_is_lost_with_the_key() -> None:
    s = _connected()
    decide(s, _cmd(c.SendMessage, s.session_id, to="51988887777", content="unsent secret"), NOW)
    s.collect_events()
    pool = FakePool()
    stored = orjson.dumps(await _log(pool)._sealed(s))
    assert b"unsent secret" not in stored and b"51999999999" not in stored
    opened = await _log(pool)._opened(orjson.loads(stored))
    assert opened is not None and vars(session_from_snapshot(opened)) == vars(s)
    pool.keys.clear()
    assert await _log(pool)._opened(orjson.loads(stored)) is None


async def test_snapshots_written_before_sealing_still_load() -> None:
    s = _connected()
    plain = orjson.loads(orjson.dumps(snapshot_of(s)))
    assert await _log(FakePool())._opened(plain) == plain


def test_a_session_whose_key_is_gone_stays_deleted_so_that_its_purge_is_still_recorded() -> None:
    s = _connected()
    erased = erased_session(s.session_id, s.tenant_id, s.version)
    assert erased.status == "deleted" and not erased.is_live and erased.phone is None
    assert erased.version == s.version and erased.tenant_id == s.tenant_id
    # Its events after the snapshot only move its version on (their personal fields are unreadable anyway).
    s.record_disconnected(NOW, "connection_lost")
    later = [Envelope.from_domain(e) for e in s.collect_events() if isinstance(e, Session.Event)]
    sessions = {erased.session_id: erased}
    assert all(_apply_stored(sessions, env, {erased.session_id}) for env in later)
    assert erased.version == s.version and erased.status == "deleted"
    # The purge the tenant's deletion publishes is decided at the next version, once.
    _, events = decide(erased, _cmd(c.DeleteSession, s.session_id, purge=True), NOW)
    assert [e.TYPE for e in events] == ["session.deleted"] and events[0].originator_version == s.version + 1
    deleted = events[0]
    assert isinstance(deleted, Session.Deleted) and deleted.payload.purged is True
