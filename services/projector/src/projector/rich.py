"""Locations, contact cards and polls on ``rm_messages``: ``rich`` from upserts that carry it, ``poll_tally``
from ``session.polls.vote``.

Both are rare next to plain messages, so the batch's set-based writes stay as they are and these are
applied afterwards, one statement each, in order (same transaction): the message row exists by then.
"""

from __future__ import annotations

import asyncpg
import orjson

from zapstream_contracts import payloads as p
from zapstream_contracts.envelope import Envelope

RICH_TYPES = frozenset({"session.messages.upsert", "session.history.sync", "session.polls.vote"})


async def apply(conn: asyncpg.Connection, schema: str, env: Envelope,
                pl: p.MessagesUpsert | p.HistorySync | p.PollVote) -> None:
    # The jsonb columns keep the wire form (camelCase, as the API returns them), dumped from the models.
    sid = env.session_id
    if isinstance(pl, p.PollVote):
        await conn.execute(
            f"UPDATE {schema}.rm_messages SET poll_tally = $3::jsonb WHERE session_id = $1 AND id = $2",
            sid, pl.poll_id, orjson.dumps([t.model_dump(by_alias=True, mode="json") for t in pl.tally]).decode())
        return
    for m in pl.messages:
        if m.rich:
            await conn.execute(
                f"UPDATE {schema}.rm_messages SET rich = $3::jsonb WHERE session_id = $1 AND id = $2 AND rich IS NULL",
                sid, m.id, orjson.dumps(m.rich.model_dump(by_alias=True, mode="json")).decode())
