"""Events → rows, a whole batch at a time, with set-based statements.

``project(conn, schema, envelopes)`` gives exactly the rows that applying the
events one by one, one statement per row, would give (``tests/support/
reference_projection.py`` is that per-row version, and the determinism test
compares the two). It works in three steps per batch:

1. **Load.** Collect every key the batch touches and read the existing rows in
   one statement per table (keys in, rows out, each as one JSON document).
2. **Fold.** Apply the events in order to those rows in memory, with the same
   rules the per-row SQL had: forward-only statuses (a ``read`` is never
   overwritten by ``delivered``), edits only move forward in time, reactions
   keep the newest, chats keep the newest last message, contacts keep the last
   non-null name. Several events for one row (upsert, then receipt, then edit
   of one message) are folded into one final row.
3. **Write.** New rows go in with ``COPY``; changed rows with one
   ``UPDATE … FROM json_to_recordset(...)`` per table (removed reactions with one
   ``DELETE … USING``); contacts and command outcomes, which need no reads, with
   ``INSERT … SELECT … FROM json_to_recordset(...) ON CONFLICT``.
   Unread counts are recounted from the rows once per batch, for the chats the
   batch touched, in the same statement that moves their last message.

Reading and then writing is safe because one projector owns a partition, and
``apply_batch`` holds its offset row ``FOR UPDATE`` for the whole transaction.
A chat-scope delete ("clear chat") touches every older message of the chat,
rows the batch never named: it splits the batch, pending rows are written
first, and it runs as set-based statements of its own.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

import asyncpg
import orjson
from pydantic import BaseModel

from projector import groups, rich
from zapstream_contracts import payloads as p
from zapstream_contracts.envelope import Envelope
from zapstream_contracts.events import SESSION_EVENTS
from zapstream_contracts.payloads import STATUS_RANK

SCHEMA_NAME = re.compile(r"^rm_v[0-9]{1,6}$")


def checked_schema(name: str) -> str:
    """Schema names end up in SQL text, so only the ``rm_vN`` shape is accepted."""
    if not SCHEMA_NAME.match(name):
        raise ValueError(f"not a read-model schema: {name!r}")
    return name


Row = dict[str, Any]
Key = tuple[str, ...]
Event = tuple[Envelope, BaseModel]
"""An envelope with its payload parsed into its contract model (once per envelope, in ``project``)."""

# (column, PostgreSQL type) in table order; the first ``key`` columns are the primary key.
MESSAGES = [("session_id", "uuid"), ("id", "text"), ("tenant_id", "text"), ("chat_jid", "text"),
            ("from_me", "boolean"), ("ts", "bigint"), ("type", "text"), ("text", "text"), ("participant", "text"),
            ("reply_to", "text"), ("status", "text"), ("status_rank", "smallint"), ("status_at", "bigint"),
            ("request_id", "text"), ("forwarded", "boolean"), ("push_name", "text"), ("is_edited", "boolean"),
            ("edited_at", "bigint"), ("is_deleted", "boolean"), ("deleted_at", "bigint"), ("unread", "boolean"),
            ("seq", "bigint"), ("media", "jsonb")]
MESSAGES_MUTABLE = ["text", "status", "status_rank", "status_at", "is_edited", "edited_at", "is_deleted",
                    "deleted_at", "unread", "media"]
CHATS = [("session_id", "uuid"), ("jid", "text"), ("tenant_id", "text"), ("last_message_id", "text"),
         ("last_message_text", "text"), ("last_message_at", "bigint"), ("unread_count", "integer"),
         ("cleared_at", "bigint")]
SESSIONS = [("id", "uuid"), ("tenant_id", "text"), ("name", "text"), ("status", "text"), ("phone", "text"),
            ("qr", "text"), ("qr_expires_at", "text"), ("connected_at", "text"), ("disconnected_at", "text"),
            ("disconnected_reason", "text"), ("created_at", "text"), ("updated_at", "text"), ("version", "bigint")]
SESSIONS_MUTABLE = ["status", "phone", "qr", "qr_expires_at", "connected_at", "disconnected_at",
                    "disconnected_reason", "updated_at", "version"]
REACTIONS = [("session_id", "uuid"), ("message_id", "text"), ("actor_jid", "text"), ("tenant_id", "text"),
             ("emoji", "text"), ("reacted_at", "bigint")]
CONTACTS = [("session_id", "uuid"), ("jid", "text"), ("tenant_id", "text"), ("name", "text"), ("notify", "text"),
            ("img_url", "text")]
COMMANDS = [("command_id", "text"), ("tenant_id", "text"), ("session_id", "uuid"), ("command_type", "text"),
            ("status", "text"), ("code", "text"), ("reason", "text"), ("result", "jsonb"), ("finished_at", "text")]


class Rows:
    """One table's rows for one batch: what was loaded, what the fold made of it."""

    def __init__(self, table: str, columns: list[tuple[str, str]], key: int, read: list[str]) -> None:
        self.table = table
        self.columns = columns
        self.names = [c for c, _ in columns]
        self.as_tuple = operator.itemgetter(*self.names)
        self.key = key
        key_names = self.names[:key]
        self.key_of: Callable[[Row], Key] = (
            operator.itemgetter(*key_names) if key > 1 else lambda row: (row[key_names[0]],))
        # What the fold reads or may change: existing rows are only ever updated, never rewritten whole.
        self.read = [(n, t) for n, t in columns[:key]] + [(n, t) for n, t in columns[key:] if n in read]
        self.rows: dict[Key, Row | None] = {}
        self.existing: set[Key] = set()
        self.dirty: dict[Key, None] = {}  # insertion-ordered set: rows are written in the order first touched

    def loaded(self, row: Row) -> None:
        k = self.key_of(row)
        self.rows[k] = row
        self.existing.add(k)

    def get(self, k: Key) -> Row | None:
        return self.rows.get(k)

    def put(self, k: Key, row: Row | None) -> None:
        self.rows[k] = row
        self.dirty[k] = None

    def touch(self, k: Key) -> None:
        self.dirty[k] = None

    def changes(self) -> tuple[list[Row], list[Row], list[Key]]:
        """(new rows, changed existing rows, deleted existing keys)."""
        new: list[Row] = []
        changed: list[Row] = []
        gone: list[Key] = []
        for k in self.dirty:
            row = self.rows[k]
            if k in self.existing:
                if row is None:
                    gone.append(k)
                else:
                    changed.append(row)
            elif row is not None:
                new.append(row)
        return new, changed, gone


def _recordset(columns: list[tuple[str, str]]) -> str:
    """``json_to_recordset`` over one JSON parameter: the rows' dicts go to PostgreSQL as one orjson string,
    which costs far less than encoding one array per column value by value. jsonb columns travel as text
    (the row holds them as JSON text) and are cast where they are written."""
    cols = ", ".join(f"{n} {'text' if t == 'jsonb' else t}" for n, t in columns)
    return f"json_to_recordset($1::json) AS u({cols})"


def _value(name: str, pgtype: str) -> str:
    return f"u.{name}::jsonb" if pgtype == "jsonb" else f"u.{name}"


def _select(columns: list[tuple[str, str]]) -> str:
    # Read back as JSON: uuids as strings, jsonb as its text (as the fold keeps it).
    return ", ".join(f"t.{n}::text AS {n}" if t == "jsonb" else f"t.{n}" for n, t in columns)


def _keys(columns: list[tuple[str, str]]) -> str:
    """The batch's keys as one JSON array of arrays (``orjson.dumps`` of the key tuples)."""
    cols = ", ".join(f"(e->>{i})::{t} AS {n}" for i, (n, t) in enumerate(columns))
    return f"(SELECT {cols} FROM json_array_elements($1::json) AS e)"


async def _fetch_json(conn: asyncpg.Connection, query: str, *args: Any) -> list[Row]:
    """Rows as dicts in one JSON document: one ``orjson.loads`` instead of a Record and a dict per row."""
    text = await conn.fetchval(f"SELECT coalesce(json_agg(r), '[]')::text FROM ({query}) AS r", *args)
    rows: list[Row] = orjson.loads(text)
    return rows


async def _load(conn: asyncpg.Connection, schema: str, rows: Rows, keys: Iterable[Key]) -> None:
    wanted = [k for k in dict.fromkeys(keys) if k not in rows.rows]
    if not wanted:
        return
    kcols = rows.columns[:rows.key]
    on = " AND ".join(f"t.{n} = k.{n}" for n, _ in kcols)
    found = await _fetch_json(
        conn, f"SELECT {_select(rows.read)} FROM {_keys(kcols)} AS k JOIN {schema}.{rows.table} t ON {on}",
        orjson.dumps(wanted).decode(),
    )
    for k in wanted:
        rows.rows[k] = None  # known absent unless the query returned it
    for r in found:
        rows.loaded(r)


async def _write(conn: asyncpg.Connection, schema: str, rows: Rows, mutable: list[str]) -> None:
    new, changed, gone = rows.changes()
    kcols = rows.columns[:rows.key]
    knames = [n for n, _ in kcols]
    if gone:
        on = " AND ".join(f"t.{n} = k.{n}" for n in knames)
        await conn.execute(f"DELETE FROM {schema}.{rows.table} t USING {_keys(kcols)} AS k WHERE {on}",
                           orjson.dumps(gone).decode())
    if changed:
        cols = kcols + [(n, t) for n, t in rows.columns if n in mutable]
        sets = ", ".join(f"{n} = {_value(n, t)}" for n, t in cols[len(kcols):])
        on = " AND ".join(f"t.{n} = u.{n}" for n in knames)
        await conn.execute(f"UPDATE {schema}.{rows.table} t SET {sets} FROM {_recordset(cols)} WHERE {on}",
                           orjson.dumps(changed).decode())
    if new:
        await conn.copy_records_to_table(rows.table, schema_name=schema, columns=rows.names,
                                         records=list(map(rows.as_tuple, new)))


class Batch:
    """The fold of one run of events (up to a chat clear, or the end of the batch)."""

    def __init__(self) -> None:
        self.messages = Rows("rm_messages", MESSAGES, 2, ["chat_jid", *MESSAGES_MUTABLE])
        self.chats = Rows("rm_chats", CHATS, 2, ["last_message_id", "last_message_text", "last_message_at"])
        self.sessions = Rows("rm_sessions", SESSIONS, 1, SESSIONS_MUTABLE)
        self.reactions = Rows("rm_reactions", REACTIONS, 3, ["tenant_id", "emoji", "reacted_at"])
        self.contacts: dict[Key, Row] = {}
        self.commands: dict[str, Row] = {}
        self.session_chats: dict[str, list[Row]] = {}  # every chat row of the batch, per session (edits, deletes)
        self.recount: dict[Key, None] = {}

    # ----- load -----------------------------------------------------------------------------------------------

    async def load(self, conn: asyncpg.Connection, schema: str, events: Sequence[Event]) -> None:
        messages: list[Key] = []
        chats: list[Key] = []
        last_ids: list[Key] = []
        sessions: list[Key] = []
        reactions: list[Key] = []
        for env, pl in events:
            sid = env.session_id
            # Most frequent first: this runs once per event of every batch.
            if isinstance(pl, p.MessagesUpdate):
                messages += [(sid, u.message_id) for u in pl.updates]
            elif isinstance(pl, (p.MessagesUpsert, p.HistorySync)):
                for m in pl.messages:
                    messages.append((sid, m.id))
                    chats.append((sid, m.remote_jid))
            elif env.type in KEYLESS:
                continue
            elif isinstance(pl, p.MessagesEdit):
                messages += [(sid, e.message_id) for e in pl.edits]
                last_ids += [(sid, e.message_id) for e in pl.edits]
            elif isinstance(pl, p.MessagesDelete):
                messages += [(sid, d.message_id) for d in pl.deletes]
                last_ids += [(sid, d.message_id) for d in pl.deletes]
            elif isinstance(pl, p.MessagesMedia):
                messages += [(sid, m.message_id) for m in pl.media]
            elif isinstance(pl, p.MessagesReaction):
                reactions += [(sid, r.message_id, r.actor_jid) for r in pl.reactions]
            elif env.type in SESSION_UPDATES or env.type == "session.created":
                sessions.append((sid,))
        await _load(conn, schema, self.messages, messages)
        await _load(conn, schema, self.chats, chats)
        if last_ids:
            # Chats whose last message an edit or delete names (the per-row version updated them by that id).
            by_message = _keys([("session_id", "uuid"), ("message_id", "text")])
            found = await _fetch_json(
                conn,
                f"SELECT {_select(self.chats.read)} FROM {by_message} AS k "
                f"JOIN {schema}.rm_chats t ON t.session_id = k.session_id AND t.last_message_id = k.message_id",
                orjson.dumps(list(dict.fromkeys(last_ids))).decode(),
            )
            for r in found:
                if (r["session_id"], r["jid"]) not in self.chats.existing:
                    self.chats.loaded(r)
        await _load(conn, schema, self.sessions, sessions)
        await _load(conn, schema, self.reactions, reactions)
        for (sid, _), row in self.chats.rows.items():
            if row is not None:
                self.session_chats.setdefault(sid, []).append(row)

    # ----- fold -----------------------------------------------------------------------------------------------

    def apply(self, env: Envelope, pl: BaseModel | None = None) -> None:
        """Fold one event; ``pl`` is its payload when the caller parsed it already (see ``parse``)."""
        fold = FOLDS.get(env.type)
        if fold is not None:
            fold(self, env, parse(env) if pl is None else pl)

    def upsert_messages(self, env: Envelope, pl: p.MessagesUpsert | p.HistorySync, live: bool) -> None:
        # The hottest loop of a replay: locals instead of attribute lookups.
        sid = env.session_id
        tenant = pl.tenant_id
        request_id = pl.request_id if isinstance(pl, p.MessagesUpsert) else None
        messages, touched = self.messages.rows, self.messages.dirty
        chats, touched_chats = self.chats.rows, self.chats.dirty
        recount, rank_of = self.recount, STATUS_RANK.get
        seq = env.version * 10_000
        for m in pl.messages:
            status, mid, jid, ts, text = m.status, m.id, m.remote_jid, m.timestamp, m.text
            rank = rank_of(status or "", -1)
            k = (sid, mid)
            row = messages.get(k)
            if row is None:
                from_me = m.from_me
                messages[k] = {
                    "session_id": sid, "id": mid, "tenant_id": tenant, "chat_jid": jid, "from_me": from_me, "ts": ts,
                    "type": m.type, "text": text, "participant": m.participant,
                    "reply_to": m.reply_to_message_id, "status": status, "status_rank": rank, "status_at": None,
                    "request_id": request_id, "forwarded": bool(m.forwarded), "push_name": m.push_name,
                    "is_edited": False, "edited_at": None, "is_deleted": False, "deleted_at": None,
                    "unread": live and not from_me, "seq": seq, "media": None,
                }
                touched[k] = None
            elif rank > row["status_rank"]:
                row["status"], row["status_rank"] = status, rank
                touched[k] = None
            seq += 1
            ck = (sid, jid)
            chat = chats.get(ck)
            if chat is None:
                chat = chats[ck] = {"session_id": sid, "jid": jid, "tenant_id": tenant, "last_message_id": mid,
                                    "last_message_text": text, "last_message_at": ts, "unread_count": 0,
                                    "cleared_at": None}
                touched_chats[ck] = None
                self.session_chats.setdefault(sid, []).append(chat)
            elif ts >= chat["last_message_at"]:
                chat["last_message_id"], chat["last_message_text"], chat["last_message_at"] = mid, text, ts
                touched_chats[ck] = None
            recount[ck] = None

    def upsert_live(self, env: Envelope, pl: p.MessagesUpsert) -> None:
        self.upsert_messages(env, pl, live=pl.upsert_type == "notify")

    def upsert_history(self, env: Envelope, pl: p.HistorySync) -> None:
        self.upsert_messages(env, pl, live=False)

    def update_messages(self, env: Envelope, pl: p.MessagesUpdate) -> None:
        sid = env.session_id
        read = pl.source == "read"
        for u in pl.updates:
            k = (sid, u.message_id)
            row = self.messages.get(k)
            if read:
                # This account read an incoming message: it stops counting as unread.
                if row is not None:
                    row["unread"] = False
                    self.messages.touch(k)
                    if row["chat_jid"]:
                        self.recount[(sid, row["chat_jid"])] = None
                continue
            rank = STATUS_RANK.get(u.status, -1)
            if row is not None and row["status_rank"] < rank:
                row["status"], row["status_at"], row["status_rank"] = u.status, u.status_at, rank
                self.messages.touch(k)

    def _chats_with_last(self, sid: str, message_id: str) -> list[Row]:
        """The session's chats whose last message this is (all of them are in the batch: see ``load``)."""
        return [row for row in self.session_chats.get(sid, ()) if row["last_message_id"] == message_id]

    def edit_messages(self, env: Envelope, pl: p.MessagesEdit) -> None:
        sid = env.session_id
        for e in pl.edits:
            k = (sid, e.message_id)
            row = self.messages.get(k)
            if row is not None and (row["edited_at"] is None or row["edited_at"] <= e.edited_at):
                row["text"], row["is_edited"], row["edited_at"] = e.text, True, e.edited_at
                self.messages.touch(k)
            for chat in self._chats_with_last(sid, e.message_id):
                chat["last_message_text"] = e.text
                self.chats.touch((sid, chat["jid"]))

    def delete_messages(self, env: Envelope, pl: p.MessagesDelete) -> None:
        sid = env.session_id
        for d in pl.deletes:
            k = (sid, d.message_id)
            row = self.messages.get(k)
            if row is None:
                continue
            row.update(is_deleted=True, deleted_at=d.deleted_at, unread=False, text=None)
            self.messages.touch(k)
            if row["chat_jid"]:
                self.recount[(sid, row["chat_jid"])] = None
                for chat in self._chats_with_last(sid, d.message_id):
                    chat["last_message_text"] = None
                    self.chats.touch((sid, chat["jid"]))

    def react(self, env: Envelope, pl: p.MessagesReaction) -> None:
        sid = env.session_id
        for r in pl.reactions:
            k = (sid, r.message_id, r.actor_jid)
            row = self.reactions.get(k)
            if r.removed or not r.emoji:
                if row is not None and row["reacted_at"] <= r.reacted_at:
                    self.reactions.put(k, None)
            elif row is None:
                self.reactions.put(k, {"session_id": sid, "message_id": r.message_id, "actor_jid": r.actor_jid,
                                       "tenant_id": pl.tenant_id, "emoji": r.emoji, "reacted_at": r.reacted_at})
            elif row["reacted_at"] <= r.reacted_at:
                row["emoji"], row["reacted_at"] = r.emoji, r.reacted_at
                self.reactions.touch(k)

    def attach_media(self, env: Envelope, pl: p.MessagesMedia) -> None:
        for m in pl.media:
            k = (env.session_id, m.message_id)
            row = self.messages.get(k)
            if row is not None:
                # The jsonb column holds the item in its wire form (what the API returns as the message's media).
                row["media"] = orjson.dumps(m.model_dump(by_alias=True, mode="json")).decode()
                self.messages.touch(k)

    def upsert_contacts(self, env: Envelope, pl: p.ContactsUpsert) -> None:
        # INSERT … ON CONFLICT keeps the first tenant and, per field, the last non-null value: fold the same way.
        for ct in pl.contacts:
            k = (env.session_id, ct.id)
            row = self.contacts.get(k)
            if row is None:
                self.contacts[k] = {"session_id": env.session_id, "jid": ct.id, "tenant_id": pl.tenant_id,
                                    "name": ct.name, "notify": ct.notify, "img_url": ct.img_url}
                continue
            for col, value in (("name", ct.name), ("notify", ct.notify), ("img_url", ct.img_url)):
                if value is not None:
                    row[col] = value

    def command_succeeded(self, env: Envelope, pl: p.CommandSucceeded) -> None:
        self._command_outcome(env, pl, "succeeded", None, None, pl.result)

    def command_failed(self, env: Envelope, pl: p.CommandFailed) -> None:
        self._command_outcome(env, pl, "failed", pl.code, pl.reason, {})

    def _command_outcome(self, env: Envelope, pl: p.CommandSucceeded | p.CommandFailed, status: str,
                         code: str | None, reason: str | None, result: dict[str, str]) -> None:
        self.commands.setdefault(pl.command_id, {
            "command_id": pl.command_id, "tenant_id": pl.tenant_id, "session_id": env.session_id,
            "command_type": pl.command_type, "status": status, "code": code, "reason": reason,
            "result": orjson.dumps(result).decode(), "finished_at": env.occurred_on,
        })

    def session_created(self, env: Envelope, pl: p.SessionCreated) -> None:
        k = (env.session_id,)
        if self.sessions.get(k) is None:
            self.sessions.put(k, {
                "id": env.session_id, "tenant_id": pl.tenant_id, "name": pl.name, "status": pl.status,
                "phone": None, "qr": None, "qr_expires_at": None, "connected_at": None, "disconnected_at": None,
                "disconnected_reason": None, "created_at": pl.created_at, "updated_at": pl.created_at,
                "version": env.version,
            })

    def session_update(self, env: Envelope, pl: BaseModel) -> None:
        k = (env.session_id,)
        row = self.sessions.get(k)
        if row is None or not row["version"] < env.version:
            return
        row.update(SESSION_UPDATES[env.type](pl))
        row["updated_at"], row["version"] = env.occurred_on, env.version
        self.sessions.touch(k)

    # ----- write ----------------------------------------------------------------------------------------------

    async def write(self, conn: asyncpg.Connection, schema: str) -> None:
        await _write(conn, schema, self.sessions, SESSIONS_MUTABLE)
        await _write(conn, schema, self.messages, MESSAGES_MUTABLE)
        await self._write_chats(conn, schema)
        await _write(conn, schema, self.reactions, ["tenant_id", "emoji", "reacted_at"])
        if self.contacts:
            rows = list(self.contacts.values())
            await conn.execute(
                f"""INSERT INTO {schema}.rm_contacts (session_id, jid, tenant_id, name, notify, img_url)
                    SELECT {', '.join(_value(n, t) for n, t in CONTACTS)} FROM {_recordset(CONTACTS)}
                    ON CONFLICT (session_id, jid) DO UPDATE SET
                      name = COALESCE(EXCLUDED.name, rm_contacts.name),
                      notify = COALESCE(EXCLUDED.notify, rm_contacts.notify),
                      img_url = COALESCE(EXCLUDED.img_url, rm_contacts.img_url)""",
                orjson.dumps(rows).decode(),
            )
        if self.commands:
            rows = list(self.commands.values())
            await conn.execute(
                f"""INSERT INTO {schema}.rm_commands ({', '.join(n for n, _ in COMMANDS)})
                    SELECT {', '.join(_value(n, t) for n, t in COMMANDS)} FROM {_recordset(COMMANDS)}
                    ON CONFLICT (command_id) DO NOTHING""",
                orjson.dumps(rows).decode(),
            )


    async def _write_chats(self, conn: asyncpg.Connection, schema: str) -> None:
        """New chats by COPY; then one statement for changed last messages and the unread recount.

        The recount runs after the messages are written, so it counts this batch's rows, and rewrites a
        chat only when its last message or its count actually changed.
        """
        new, changed, _ = self.chats.changes()
        if new:
            await conn.copy_records_to_table(
                "rm_chats", schema_name=schema, columns=self.chats.names,
                records=list(map(self.chats.as_tuple, new)),
            )
        # Changed chats go as they are (extra keys are ignored); recount-only ones as their key. A row
        # without last_message_at (NOT NULL in the table) keeps its last message.
        updates: dict[Key, Row] = {(r["session_id"], r["jid"]): r for r in changed}
        for k in self.recount:
            row = updates.get(k)
            if row is None:
                updates[k] = {"session_id": k[0], "jid": k[1], "recount": True}
            else:
                row["recount"] = True
        if not updates:
            return
        await conn.execute(
            f"""WITH u AS (
                  SELECT u.*, u.last_message_at IS NOT NULL AS set_last, CASE WHEN u.recount THEN (
                           SELECT count(*) FROM {schema}.rm_messages m
                           WHERE m.session_id = u.session_id AND m.chat_jid = u.jid AND m.unread) END AS n
                  FROM json_to_recordset($1::json) AS u(session_id uuid, jid text, last_message_id text,
                       last_message_text text, last_message_at bigint, recount boolean))
                UPDATE {schema}.rm_chats t SET
                  last_message_id = CASE WHEN u.set_last THEN u.last_message_id ELSE t.last_message_id END,
                  last_message_text = CASE WHEN u.set_last THEN u.last_message_text ELSE t.last_message_text END,
                  last_message_at = CASE WHEN u.set_last THEN u.last_message_at ELSE t.last_message_at END,
                  unread_count = coalesce(u.n, t.unread_count)
                FROM u
                WHERE t.session_id = u.session_id AND t.jid = u.jid
                  AND (u.set_last OR (u.n IS NOT NULL AND u.n <> t.unread_count))""",
            orjson.dumps(list(updates.values())).decode(),
        )


def _qr_updated(pl: p.QrUpdated) -> Row:
    # The code itself is not on the event log (v2): projector.secrets fills ``qr`` from the secrets topic.
    return {"status": "qr_pending", "qr": None, "qr_expires_at": pl.expires_at}


def _connected(pl: p.StatusConnected) -> Row:
    return {"status": "connected", "phone": pl.phone, "connected_at": pl.connected_at, "qr": None,
            "qr_expires_at": None}


def _disconnected(pl: p.StatusDisconnected) -> Row:
    return {"status": "disconnected", "disconnected_at": pl.disconnected_at, "disconnected_reason": pl.reason,
            "qr": None, "qr_expires_at": None}


def _logged_out(pl: p.StatusLoggedOut) -> Row:
    return {"status": "logged_out", "disconnected_at": pl.logged_out_at, "disconnected_reason": pl.reason,
            "phone": None, "qr": None, "qr_expires_at": None}


# Each function takes its type's payload model (``parse`` gives the right one; ``Any`` here only because one
# table holds them all).
SESSION_UPDATES: dict[str, Callable[[Any], Row]] = {
    "session.qr.updated": _qr_updated,
    "session.status.connected": _connected,
    "session.status.disconnected": _disconnected,
    "session.status.logged_out": _logged_out,
    "session.deleted": lambda pl: {"status": "deleted"},
    "session.started": lambda pl: {},
}

FOLDS: dict[str, Callable[[Batch, Envelope, Any], None]] = {
    "session.created": Batch.session_created,
    **{t: Batch.session_update for t in SESSION_UPDATES},
    "session.messages.upsert": Batch.upsert_live,
    "session.history.sync": Batch.upsert_history,
    "session.messages.update": Batch.update_messages,
    "session.messages.edit": Batch.edit_messages,
    "session.messages.delete": Batch.delete_messages,
    "session.messages.reaction": Batch.react,
    "session.messages.media": Batch.attach_media,
    "session.contacts.upsert": Batch.upsert_contacts,
    "session.command.succeeded": Batch.command_succeeded,
    "session.command.failed": Batch.command_failed,
}
PROJECTED = frozenset(FOLDS)
KEYLESS = frozenset({"session.contacts.upsert", "session.command.succeeded", "session.command.failed"})
"""Projected types whose rows need no read before the fold."""


def epoch_seconds(value: str | int | None) -> int:
    if value is None:
        return 0
    if isinstance(value, int):
        return value
    return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp())


ONE_BY_ONE = groups.GROUP_TYPES | rich.RICH_TYPES
PARSED = PROJECTED | ONE_BY_ONE


def parse(env: Envelope) -> BaseModel:
    """The payload as its type's contract model (raises ``pydantic.ValidationError`` when it does not fit,
    which parks the record like any other failure to project)."""
    model: type[BaseModel] = SESSION_EVENTS[env.type].payload
    return env.data(model)


def _chat_cleared(pl: BaseModel) -> str | None:
    """The chat a chat-scope delete clears; None for anything else."""
    if not isinstance(pl, p.MessagesDelete) or pl.scope != "chat":
        return None
    if pl.chat_jid is None:
        raise ValueError("a chat-scope delete names no chat")
    return pl.chat_jid


async def _clear_chat(conn: asyncpg.Connection, schema: str, env: Envelope, pl: p.MessagesDelete,
                      chat_jid: str) -> None:
    """Everything up to ``deletedAt`` in the chat is gone: a range of rows the batch never named."""
    # The read model keeps epoch seconds, like every message timestamp; the payload says RFC 3339 (v2).
    cleared_at = epoch_seconds(pl.deleted_at)
    await conn.execute(
        f"""UPDATE {schema}.rm_messages SET is_deleted = true, deleted_at = $3, unread = false, text = NULL
            WHERE session_id = $1 AND chat_jid = $2 AND ts <= $3""",
        env.session_id, chat_jid, cleared_at,
    )
    await conn.execute(
        f"""UPDATE {schema}.rm_chats SET cleared_at = GREATEST(coalesce(cleared_at, 0), $3),
              last_message_text = CASE WHEN last_message_at <= $3 THEN NULL ELSE last_message_text END
            WHERE session_id = $1 AND jid = $2""",
        env.session_id, chat_jid, cleared_at,
    )


PURGED = "purged"
"""``rm_sessions.disconnected_reason`` of a purged session (status ``deleted``): the mark later batches, and
replays, read to keep its data out."""
KEPT_AFTER_PURGE = frozenset({"session.command.succeeded", "session.command.failed"})
"""What a purged session still projects: command outcomes (the purging delete's own, and failures of commands
that arrive after it), written without their ``result``."""
PURGE_TABLES = ("rm_messages", "rm_chats", "rm_contacts", "rm_reactions", "rm_commands", "rm_groups")
"""Every read-model table with a ``session_id`` besides ``rm_sessions`` (messages hold media refs, rich
content and poll tallies; ``replay.TABLES`` is the whole list)."""


def purges(pl: BaseModel) -> bool:
    """A ``session.deleted`` whose session's data must go (``purged: true``)."""
    return isinstance(pl, p.SessionDeleted) and bool(pl.purged)


async def _purged_sessions(conn: asyncpg.Connection, schema: str, session_ids: Iterable[str]) -> set[str]:
    """Those of ``session_ids`` purged by an earlier batch."""
    ids = list(dict.fromkeys(session_ids))
    if not ids:
        return set()
    rows = await conn.fetch(
        f"""SELECT id::text AS id FROM {schema}.rm_sessions
            WHERE id = ANY($1::uuid[]) AND status = 'deleted' AND disconnected_reason = $2""", ids, PURGED)
    return {r["id"] for r in rows}


def _without_purged(events: list[Event], gone: set[str]) -> list[Event]:
    """Drop what a purged session would write after its purge: only its command outcomes stay, result-less.

    ``gone`` starts with the sessions purged by earlier batches and gains each purge in order, so the
    same events give the same rows whatever the batch boundaries (live, or a replay).
    """
    kept: list[Event] = []
    for env, pl in events:
        sid = env.session_id
        if sid not in gone:
            if purges(pl):
                gone.add(sid)
            kept.append((env, pl))
        elif isinstance(pl, p.CommandSucceeded):
            kept.append((env, pl.model_copy(update={"result": {}})))
        elif env.type in KEPT_AFTER_PURGE:
            kept.append((env, pl))
    return kept


async def _purge(conn: asyncpg.Connection, schema: str, env: Envelope) -> None:
    """The session's rows go; its ``rm_sessions`` row stays (the API answers 404 for it) as ``deleted``, with
    nothing personal left and the purge mark."""
    sid = env.session_id
    for table in PURGE_TABLES:
        await conn.execute(f"DELETE FROM {schema}.{table} WHERE session_id = $1", sid)
    await conn.execute(
        f"""UPDATE {schema}.rm_sessions SET status = 'deleted', name = NULL, phone = NULL, qr = NULL,
              qr_expires_at = NULL, disconnected_reason = $2, updated_at = $3, version = GREATEST(version, $4)
            WHERE id = $1""", sid, PURGED, env.occurred_on, env.version)


async def project(conn: asyncpg.Connection, schema: str, envelopes: Sequence[Envelope]) -> None:
    """Apply ``envelopes`` in order to the read models in ``schema``, inside the caller's transaction."""
    schema = checked_schema(schema)
    # Each payload is parsed once, here, before anything is written: one that does not fit its contract fails
    # the batch before its first statement.
    parsed = [(env, parse(env)) for env in envelopes if env.type in PARSED]
    # Every statement here joins one batch's keys (hundreds to thousands) to a table by an index. On a table
    # that grew since its last ANALYZE (a rebuild's fresh schema always has), the planner prefers a hash join
    # that scans the whole table, once per batch, so replay would slow down as the tables grow. Index probes
    # cost per key, not per row in the table.
    await conn.execute("SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off")
    gone = await _purged_sessions(conn, schema, (env.session_id for env, _ in parsed))
    if gone or any(purges(pl) for _, pl in parsed):
        parsed = _without_purged(parsed, gone)
    events = [e for e in parsed if e[0].type in PROJECTED]
    # Runs end at a chat clear (its range of rows needs what came before written) and at a purge (what came
    # before it goes, what follows it stays).
    barriers = [i for i, (env, pl) in enumerate(events)
                if purges(pl) or (env.type == "session.messages.delete" and _chat_cleared(pl) is not None)]
    start = 0
    for end in [*barriers, len(events)]:
        if end > start:
            batch = Batch()
            segment = events[start:end]
            await batch.load(conn, schema, segment)
            folds = FOLDS
            for env, pl in segment:
                folds[env.type](batch, env, pl)
            await batch.write(conn, schema)
        if end == len(events):
            break
        barrier, pl = events[end]
        if purges(pl):
            await _purge(conn, schema, barrier)
        else:
            # A chat clear: everything before it is written, so set-based statements see the right rows.
            assert isinstance(pl, p.MessagesDelete)
            chat_jid = _chat_cleared(pl)
            assert chat_jid is not None
            await _clear_chat(conn, schema, barrier, pl, chat_jid)
            # Its message-scope deletes (if any) fold like any other, in a run of their own.
            rest = Batch()
            await rest.load(conn, schema, [(barrier, pl)])
            rest.delete_messages(barrier, pl)
            rest.recount[(barrier.session_id, chat_jid)] = None
            await rest.write(conn, schema)
        start = end + 1
    for env, pl in parsed:  # rare: one by one, in order, after the set-based writes
        # A session purged in this batch: its rows are gone, and these ran after the purge would recreate some.
        if env.type not in ONE_BY_ONE or env.session_id in gone:
            continue
        if isinstance(pl, (p.GroupsUpsert, p.GroupParticipants)):
            await groups.apply(conn, schema, env, pl)
        elif isinstance(pl, p.PollVote) or (
                isinstance(pl, (p.MessagesUpsert, p.HistorySync)) and any(m.rich for m in pl.messages)):
            await rich.apply(conn, schema, env, pl)
