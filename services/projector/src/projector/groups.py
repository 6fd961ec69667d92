"""The groups read model (``rm_groups``): metadata from ``session.groups.upsert``, participant changes from
``session.groups.participants``.

Group events are rare next to messages, so they are applied one by one, in order, after the batch's
set-based writes (same transaction): an upsert replaces the row, a change rewrites its participant list.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg
import orjson

from zapstream_contracts import payloads as p
from zapstream_contracts.envelope import Envelope

GROUP_TYPES = frozenset({"session.groups.upsert", "session.groups.participants"})


def changed(participants: list[dict[str, Any]], action: str, jids: list[str]) -> list[dict[str, Any]]:
    """The participant list after ``action`` on ``jids`` (idempotent: replaying a change changes nothing)."""
    by_id = {p["id"]: p for p in participants}
    for jid in jids:
        if action == "add":
            by_id.setdefault(jid, {"id": jid, "admin": None})
        elif action in ("remove", "leave"):
            by_id.pop(jid, None)
        elif action in ("promote", "demote") and jid in by_id:
            by_id[jid] = {"id": jid, "admin": "admin" if action == "promote" else None}
    return list(by_id.values())


async def apply(conn: asyncpg.Connection, schema: str, env: Envelope,
                pl: p.GroupsUpsert | p.GroupParticipants) -> None:
    sid = env.session_id
    at = int(datetime.fromisoformat(env.occurred_on.replace("Z", "+00:00")).timestamp())
    if isinstance(pl, p.GroupsUpsert):
        for g in pl.groups:
            await conn.execute(
                f"""INSERT INTO {schema}.rm_groups (session_id, jid, tenant_id, subject, owner, creation, description,
                                                   announce, restrict, size, participants, left_at, updated_at)
                    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::jsonb, NULL, $12)
                    ON CONFLICT (session_id, jid) DO UPDATE SET
                      subject = EXCLUDED.subject, owner = EXCLUDED.owner, creation = EXCLUDED.creation,
                      description = EXCLUDED.description, announce = EXCLUDED.announce,
                      restrict = EXCLUDED.restrict, size = EXCLUDED.size, participants = EXCLUDED.participants,
                      left_at = NULL, updated_at = EXCLUDED.updated_at""",
                sid, g.id, pl.tenant_id, g.subject, g.owner, g.creation, g.desc, g.announce, g.restrict, g.size,
                # The jsonb column keeps the participants in their wire form ({"id", "admin"}), as ``changed`` does.
                orjson.dumps([m.model_dump(by_alias=True, mode="json") for m in g.participants]).decode(), at)
        return
    row = await conn.fetchrow(
        f"SELECT participants::text AS p FROM {schema}.rm_groups WHERE session_id = $1 AND jid = $2 FOR UPDATE",
        sid, pl.id)
    if row is None:
        return  # a change to a group never listed: its metadata comes with the next sync
    participants = changed(orjson.loads(row["p"]), pl.action, pl.participants)
    await conn.execute(
        f"""UPDATE {schema}.rm_groups SET participants = $3::jsonb, size = $4, updated_at = $5,
              left_at = CASE WHEN $6 THEN $5 ELSE left_at END
            WHERE session_id = $1 AND jid = $2""",
        sid, pl.id, orjson.dumps(participants).decode(), len(participants), at, pl.action == "leave")
