"""Session snapshots: the aggregate's state at a version, in a JSON-safe form.

The runner keeps them in a compacted topic so that a new partition owner reads the
latest snapshot of each session plus the events after it, instead of the whole
history (eventsourcing's snapshotting, with Kafka as the snapshot store).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from eventsourcing.domain import Snapshot
from eventsourcing.utils import get_topic

from zapstream_contracts import payloads as p

from .session import Session

SNAPSHOT_VERSION = 1
"""Bump (with a conversion in :func:`session_from_snapshot`) when the state's shape changes."""


_NO_LONGER_KEPT = frozenset({"qr"})
"""State older snapshots hold that the aggregate no longer keeps: dropped on restore, so a restored session's
next snapshot does not carry it on (``qr``: the QR code, a secret kept off the log and the snapshots)."""


def snapshot_of(session: Session) -> dict[str, Any]:
    """The session's state as plain JSON values (version included)."""
    taken = Snapshot.take(session)
    state: dict[str, Any] = {}
    for key, value in taken.state.items():
        if isinstance(value, datetime):
            state[key] = {"$dt": value.isoformat()}
        elif isinstance(value, set):
            state[key] = {"$set": sorted(value)}
        elif key == "pending_sends":
            state[key] = {mid: intent.model_dump(by_alias=True, mode="json") for mid, intent in value.items()}
        else:
            state[key] = value
    return {"v": SNAPSHOT_VERSION, "id": str(session.id), "version": session.version, "state": state}


def session_from_snapshot(data: dict[str, Any]) -> Session:
    """Rebuild the aggregate from :func:`snapshot_of`'s output."""
    if data.get("v") != SNAPSHOT_VERSION:
        raise ValueError(f"unsupported snapshot version {data.get('v')!r}")
    state: dict[str, Any] = {}
    for key, value in data["state"].items():
        if key in _NO_LONGER_KEPT:
            continue
        if isinstance(value, dict) and "$dt" in value:
            state[key] = datetime.fromisoformat(value["$dt"])
        elif isinstance(value, dict) and "$set" in value:
            state[key] = set(value["$set"])
        elif key == "pending_sends":
            state[key] = {mid: p.SendRequested.model_validate(raw) for mid, raw in value.items()}
        else:
            state[key] = value
    snapshot = Snapshot(
        originator_id=UUID(data["id"]),
        originator_version=int(data["version"]),
        timestamp=Snapshot.create_timestamp(),
        topic=get_topic(Session),
        state=state,
    )
    session = snapshot.mutate(None)
    assert isinstance(session, Session)
    return session


def erased_session(session_id: str, tenant_id: str, version: int) -> Session:
    """A session whose snapshot is unreadable because its tenant's key was destroyed: deleted, nothing of its
    state left, at ``version``.

    Kept (rather than forgotten) so that the purge its tenant's deletion asks for can still be decided and
    recorded at the session's next version, even when its runner had to rebuild in between.
    """
    session = Session.create(UUID(session_id), tenant_id, datetime(1970, 1, 1, tzinfo=UTC))
    session.collect_events()
    session.status = "deleted"
    session.wants_connection = False
    session.version = version
    return session
