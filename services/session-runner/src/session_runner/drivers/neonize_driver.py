"""``NeonizeDriver``: the :class:`WhatsAppDriver` port over real WhatsApp, through neonize.

neonize (Python bindings over whatsmeow, a Go library loaded with ctypes) runs in **worker
processes** (``multiprocessing``, *spawn*), a few sessions each: a Go panic aborts its whole
process, so it must never be the runner's. The driver is the supervisor:

* it places each session on a worker with room (``sessions_per_worker``), starting workers on
  demand (at most ``max_workers``);
* when a worker dies, every call in flight on it fails (sends with :class:`OutcomeUnknown`), each
  of its sessions gets ``Disconnected(seq=0, reason="worker crashed ...")``, and the worker is
  restarted with exponential backoff and its sessions reconnected;
* events of one session are handed to the handler one at a time, in order, by a dispatcher task,
  so a handler may call the driver without deadlocking.

``isolation="inline"`` hosts the clients in this process instead (same code, no supervisor):
for debugging only.

Device credentials live in neonize's store, given as ``store``:

* ``postgres://...`` — whatsmeow's SQL store in PostgreSQL (tables ``whatsmeow_*``). All sessions
  share it; which device belongs to which session is kept in ``neonize_session_devices`` in the
  same database, so a session can move to another runner.
* anything else is a directory: one SQLite file per session (development, tests).

Delivery: whatsmeow acknowledges messages to WhatsApp itself, as soon as they are decrypted, so
:meth:`ack` is a no-op and the server does **not** redeliver after a crash; ``seq`` numbers are
assigned by this driver per session (monotonic for the driver's lifetime).
``supports_client_message_ids`` is False: neonize's ``SendMessage`` takes no ``SendRequestExtra``
(so no caller-chosen ``ID``); WhatsApp picks the id, and a resend after :class:`OutcomeUnknown`
may duplicate. The same holds for :meth:`NeonizeDriver.send_media`.

Media never crosses the pipe to a worker: ``send_media`` passes the file's path and the worker
reads and uploads it; ``download_media`` passes the destination path and the worker writes it.
Workers run on the same host, so paths are made absolute here and mean the same there.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
import multiprocessing
import os
import re
import threading
import time
from pathlib import Path
from typing import Any

from session_runner.drivers.port import (
    Disconnected,
    DriverError,
    DriverEvent,
    EventHandler,
    GroupAction,
    HistorySync,
    IncomingMedia,
    LoggedOut,
    OutcomeUnknown,
    OutgoingMedia,
    Presence,
    Rich,
    SendResult,
)
from zapstream_contracts.payloads import GroupInfo

log = logging.getLogger(__name__)

_STOP = object()
_MUTATING = frozenset({"send_text", "send_rich", "send_media", "create_group", "update_group_participants",
                       "leave_group", "edit_message", "revoke_message", "react"})
_SAFE_SESSION_ID = re.compile(r"[^A-Za-z0-9_.-]")


def _absolute(path: str) -> str:
    """``path`` as the worker must see it: its working directory may differ (no disk access here)."""
    return os.path.abspath(path)


# ------------------------------------------------------------------------ device directory


class _DeviceDirectory:
    """Which whatsmeow device (JID) belongs to which session, next to neonize's own store."""

    def __init__(self, store: str) -> None:
        self.store = store
        self.postgres = store.startswith(("postgres://", "postgresql://"))
        self._pool: Any = None
        self._lock = asyncio.Lock()

    def store_for(self, session_id: str) -> str:
        if self.postgres:
            return self.store
        directory = Path(self.store)
        directory.mkdir(parents=True, exist_ok=True)
        return str(directory / f"{_SAFE_SESSION_ID.sub('_', session_id)}.db")

    async def _db(self) -> Any:
        async with self._lock:
            if self._pool is None:
                import asyncpg

                try:
                    self._pool = await asyncpg.create_pool(self.store, min_size=0, max_size=2, timeout=10)
                    await self._pool.execute(
                        "CREATE TABLE IF NOT EXISTS neonize_session_devices ("
                        " session_id text PRIMARY KEY, device_jid text NOT NULL,"
                        " updated_at timestamptz NOT NULL DEFAULT now())"
                    )
                except Exception as exc:
                    self._pool = None
                    raise DriverError(f"cannot open the neonize device store: {exc}") from exc
            return self._pool

    async def lookup(self, session_id: str) -> tuple[str | None, bool]:
        """``(jid, new_device)`` to pass to neonize for this session."""
        if not self.postgres:
            return None, False  # one SQLite file per session: its only device, or a new one
        pool = await self._db()
        jid = await pool.fetchval(
            "SELECT device_jid FROM neonize_session_devices WHERE session_id = $1", session_id
        )
        return (jid, False) if jid else (None, True)

    async def remember(self, session_id: str, jid: str) -> None:
        if self.postgres and jid:
            pool = await self._db()
            await pool.execute(
                "INSERT INTO neonize_session_devices (session_id, device_jid) VALUES ($1, $2)"
                " ON CONFLICT (session_id) DO UPDATE SET device_jid = $2, updated_at = now()",
                session_id,
                jid,
            )

    async def forget(self, session_id: str) -> None:
        if self.postgres:
            pool = await self._db()
            await pool.execute("DELETE FROM neonize_session_devices WHERE session_id = $1", session_id)
        else:
            await asyncio.to_thread(Path(self.store_for(session_id)).unlink, missing_ok=True)

    async def aclose(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None


# ------------------------------------------------------------------------------- workers


class _Worker:
    """One worker process (or, inline, a SessionHost in this process) and its pending calls."""

    def __init__(self, driver: NeonizeDriver, index: int) -> None:
        self.driver = driver
        self.index = index
        self.sessions: set[str] = set()
        self.pending: dict[int, tuple[str, asyncio.Future[Any]]] = {}
        self.alive = False
        self.ready: asyncio.Future[None] | None = None
        self.process: Any = None
        self.conn: Any = None
        self.host: Any = None  # inline mode
        self.crashes = 0
        self.started_at = 0.0
        self.restarting: asyncio.Task[None] | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.ready = loop.create_future()
        self.started_at = time.monotonic()
        if self.driver._isolation == "inline":
            from session_runner.drivers.neonize_worker import make_host

            def emit(sid: str, item: Any) -> None:
                self._on_message(
                    ("device", sid, item[1]) if isinstance(item, tuple) else ("event", sid, item)
                )

            try:
                self.host = make_host(emit, self.driver._worker_options())
            except DriverError:
                raise
            except Exception as exc:
                raise DriverError(f"cannot load neonize: {exc}") from exc
            self.alive = True
            self.ready.set_result(None)
            return
        from session_runner.drivers.neonize_worker import worker_main

        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe(duplex=True)
        self.process = ctx.Process(
            target=worker_main,
            args=(child, self.driver._worker_options()),
            name=f"neonize-worker-{self.index}",
            daemon=True,
        )
        self.process.start()
        child.close()
        self.conn = parent
        self.alive = True
        threading.Thread(
            target=self._reader, args=(loop, parent), name=f"neonize-read-{self.index}", daemon=True
        ).start()
        try:
            async with asyncio.timeout(self.driver._worker_start_timeout):
                await self.ready
        except TimeoutError:
            self.kill()
            raise DriverError(
                f"neonize worker did not start within {self.driver._worker_start_timeout}s"
            ) from None

    def _reader(self, loop: asyncio.AbstractEventLoop, conn: Any) -> None:
        while True:
            try:
                msg = conn.recv()
            except (EOFError, OSError):
                break
            except Exception:  # an unpicklable message: log and go on
                log.exception("neonize worker %d sent an unreadable message", self.index)
                continue
            try:
                loop.call_soon_threadsafe(self._on_message, msg)
            except RuntimeError:  # loop closed
                return
        try:
            loop.call_soon_threadsafe(self._on_exit, conn)
        except RuntimeError:
            pass

    def _on_message(self, msg: tuple[Any, ...]) -> None:
        kind = msg[0]
        if kind == "ready":
            if self.ready is not None and not self.ready.done():
                self.ready.set_result(None)
        elif kind == "fatal":
            if self.ready is not None and not self.ready.done():
                self.ready.set_exception(DriverError(f"neonize worker cannot start: {msg[1]}"))
        elif kind == "result":
            _, rid, ok, value = msg
            entry = self.pending.pop(rid, None)
            if entry is None or entry[1].done():
                return
            if ok:
                entry[1].set_result(value)
            else:
                err_kind, text = value
                entry[1].set_exception(OutcomeUnknown(text) if err_kind == "unknown" else DriverError(text))
        elif kind == "event":
            self.driver._deliver(msg[1], msg[2])
        elif kind == "device":
            self.driver._device_linked(msg[1], msg[2])

    def _on_exit(self, conn: Any) -> None:
        if conn is not self.conn or not self.alive:
            return
        self.alive = False
        code = None
        if self.process is not None:
            self.process.join(timeout=1)
            code = self.process.exitcode
        if self.ready is not None and not self.ready.done():
            self.ready.set_exception(DriverError(f"neonize worker exited while starting (exit code {code})"))
        for method, future in self.pending.values():
            if not future.done():
                exc_type = OutcomeUnknown if method in _MUTATING else DriverError
                future.set_exception(exc_type(f"neonize worker crashed (exit code {code}) during {method}"))
        self.pending.clear()
        self.driver._worker_died(self, code)

    async def call(self, method: str, **kwargs: Any) -> Any:
        if not self.alive:
            raise DriverError("the neonize worker hosting this session is restarting; retry later")
        if self.host is not None:
            return await getattr(self.host, method)(**kwargs)
        rid = next(self.driver._rids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.pending[rid] = (method, future)
        try:
            self.conn.send(("call", rid, method, kwargs))
        except (OSError, ValueError) as exc:
            self.pending.pop(rid, None)
            raise DriverError(f"the neonize worker is gone: {exc}") from exc
        try:
            return await future
        finally:
            self.pending.pop(rid, None)

    async def stop(self) -> None:
        self.alive = False
        if self.host is not None:
            await self.host.aclose()
            return
        if self.conn is not None:
            try:
                self.conn.send(("exit",))
            except (OSError, ValueError):
                pass
        if self.process is not None:
            await asyncio.to_thread(self.process.join, 10)
            self.kill()
        if self.conn is not None:
            self.conn.close()

    def kill(self) -> None:
        if self.process is not None and self.process.is_alive():
            self.process.kill()
            self.process.join(5)


# ------------------------------------------------------------------------------ sessions


class _Session:
    def __init__(self, session_id: str, handler: EventHandler) -> None:
        self.session_id = session_id
        self.handler = handler
        self.worker: _Worker | None = None
        self.seq = 0
        self.events: asyncio.Queue[Any] = asyncio.Queue()
        self.dispatcher: asyncio.Task[None] | None = None
        self.opened = asyncio.Event()
        self.open_error: DriverError | None = None
        self.closing = False
        self.ended = False


class NeonizeDriver:
    """WhatsApp driver over neonize, with clients isolated in supervised worker processes."""

    supports_client_message_ids = False

    def __init__(
        self,
        store: str,
        *,
        sessions_per_worker: int = 4,
        max_workers: int = 64,
        isolation: str = "process",
        connect_timeout: float = 20.0,
        request_timeout: float = 30.0,
        worker_start_timeout: float = 30.0,
        restart_initial_delay: float = 1.0,
        restart_max_delay: float = 60.0,
        log_level: str = "WARNING",
        proxy: str | None = None,
        host_factory: str | None = None,
    ) -> None:
        """``store``: ``postgres://`` DSN or a directory; ``proxy``: ``http://``/``socks5://`` URL for
        WhatsApp traffic; ``host_factory``: ``"module:Name"`` replacing the neonize host (tests)."""
        if isolation not in ("process", "inline"):
            raise ValueError("isolation must be 'process' or 'inline'")
        if not store:
            raise ValueError("store must be a postgres:// DSN or a directory for SQLite files")
        self._devices = _DeviceDirectory(store)
        self._per_worker = max(1, sessions_per_worker)
        self._max_workers = max(1, max_workers)
        self._isolation = isolation
        self._connect_timeout = connect_timeout
        self._request_timeout = request_timeout
        self._worker_start_timeout = worker_start_timeout
        self._restart_initial = restart_initial_delay
        self._restart_max = restart_max_delay
        self._log_level = log_level
        self._proxy = proxy
        self._host_factory = host_factory
        self._workers: list[_Worker] = []
        self._sessions: dict[str, _Session] = {}
        self._rids = itertools.count(1)
        self._indexes = itertools.count(1)
        self._closed = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._place_lock = asyncio.Lock()

    def _worker_options(self) -> dict[str, Any]:
        return {
            "sessions_per_worker": self._per_worker,
            "connect_timeout": self._connect_timeout,
            "request_timeout": self._request_timeout,
            "log_level": self._log_level,
            "proxy": self._proxy,
            "host_factory": self._host_factory,
        }

    # -------------------------------------------------------------- port calls

    async def connect(self, session_id: str, on_event: EventHandler) -> None:
        """Open the device; returns once QR codes are flowing (unlinked) or it is online (linked).

        Raises :class:`DriverError` within ``connect_timeout`` when WhatsApp is unreachable.
        Calling it again for a live session with the same handler is a no-op.
        """
        if self._closed:
            raise DriverError("the driver is closed")
        existing = self._sessions.get(session_id)
        if existing is not None:
            if not existing.ended and not existing.closing:
                if existing.handler == on_event:
                    await existing.opened.wait()
                    if existing.open_error is not None:
                        raise existing.open_error
                    return
                raise DriverError(
                    f"session {session_id!r} is already connected with another handler; disconnect() it first"
                )
            await self._shutdown(existing)
        session = _Session(session_id, on_event)
        self._sessions[session_id] = session
        session.dispatcher = asyncio.create_task(
            self._dispatch(session), name=f"neonize-dispatch-{session_id}"
        )
        try:
            await self._open(session)
        except BaseException as exc:
            session.open_error = (
                exc if isinstance(exc, DriverError) else DriverError(f"connect aborted: {exc!r}")
            )
            await self._shutdown(session, drain=False)
            raise
        finally:
            session.opened.set()

    async def pair_code(self, session_id: str, phone: str) -> str:
        return str(await self._call(session_id, "pair_code", phone=phone))

    async def send_text(
        self,
        session_id: str,
        to_jid: str,
        text: str,
        *,
        message_id: str,
        reply_to_id: str | None = None,
        forwarded: bool = False,
        mentions: tuple[str, ...] = (),
    ) -> SendResult:
        """Send a text; ``message_id`` is not honoured (WhatsApp assigns the id, see the module doc)."""
        result: SendResult = await self._call(
            session_id, "send_text", to_jid=to_jid, text=text, reply_to_id=reply_to_id, forwarded=forwarded,
            mentions=mentions,
        )
        return result

    async def send_rich(
        self,
        session_id: str,
        to_jid: str,
        content: Rich,
        *,
        message_id: str,
        reply_to_id: str | None = None,
    ) -> SendResult:
        """A location, contact card or poll; ``message_id`` is not honoured, as for :meth:`send_text`."""
        result: SendResult = await self._call(session_id, "send_rich", to_jid=to_jid, content=content,
                                              reply_to_id=reply_to_id)
        return result

    async def create_group(self, session_id: str, subject: str, participants: list[str]) -> GroupInfo:
        info: GroupInfo = await self._call(session_id, "create_group", subject=subject, participants=participants)
        return info

    async def update_group_participants(self, session_id: str, group_jid: str, action: GroupAction,
                                        participants: list[str]) -> list[str]:
        changed: list[str] = await self._call(session_id, "update_group_participants", group_jid=group_jid,
                                              action=action, participants=participants)
        return changed

    async def profile_photo(self, session_id: str, jid: str) -> bytes | None:
        data: bytes | None = await self._call(session_id, "profile_photo", jid=jid)
        return data

    async def reject_call(self, session_id: str, caller_jid: str, call_id: str) -> None:
        await self._call(session_id, "reject_call", caller_jid=caller_jid, call_id=call_id)

    async def leave_group(self, session_id: str, group_jid: str) -> None:
        await self._call(session_id, "leave_group", group_jid=group_jid)

    async def group_invite_link(self, session_id: str, group_jid: str, reset: bool = False) -> str:
        return str(await self._call(session_id, "group_invite_link", group_jid=group_jid, reset=reset))

    async def joined_groups(self, session_id: str) -> list[GroupInfo]:
        groups: list[GroupInfo] = await self._call(session_id, "joined_groups")
        return groups

    async def send_media(
        self,
        session_id: str,
        to_jid: str,
        media: OutgoingMedia,
        *,
        message_id: str,
        reply_to_id: str | None = None,
        forwarded: bool = False,
    ) -> SendResult:
        """Upload ``media.path`` and send it; ``message_id`` is not honoured, as for :meth:`send_text`.

        :class:`DriverError` when the file cannot be read or the upload fails (nothing was sent),
        :class:`OutcomeUnknown` when the send's answer is lost or the worker dies meanwhile.
        """
        media = dataclasses.replace(media, path=_absolute(media.path))
        result: SendResult = await self._call(
            session_id,
            "send_media",
            to_jid=to_jid,
            media=media,
            reply_to_id=reply_to_id,
            forwarded=forwarded,
        )
        return result

    async def download_media(self, session_id: str, media: IncomingMedia, dest_path: str) -> int:
        """Fetch and decrypt ``media`` into ``dest_path`` (written whole or not at all); returns its size.

        :class:`DriverError` when WhatsApp no longer has it (media expires after some weeks), the
        handle is not a neonize one, or the bytes do not match the message's hashes.
        """
        return int(
            await self._call(
                session_id, "download_media", handle=media.handle, dest_path=_absolute(dest_path)
            )
        )

    async def edit_message(self, session_id: str, chat_jid: str, message_id: str, text: str) -> int:
        return int(
            await self._call(session_id, "edit_message", chat_jid=chat_jid, message_id=message_id, text=text)
        )

    async def revoke_message(self, session_id: str, chat_jid: str, message_id: str) -> int:
        return int(await self._call(session_id, "revoke_message", chat_jid=chat_jid, message_id=message_id))

    async def react(self, session_id: str, chat_jid: str, message_id: str, emoji: str) -> int:
        return int(
            await self._call(session_id, "react", chat_jid=chat_jid, message_id=message_id, emoji=emoji)
        )

    async def subscribe_presence(self, session_id: str, jid: str) -> None:
        await self._call(session_id, "subscribe_presence", jid=jid)

    async def send_chat_presence(self, session_id: str, chat_jid: str, presence: Presence) -> None:
        await self._call(session_id, "send_chat_presence", chat_jid=chat_jid, presence=presence)

    async def mark_read(self, session_id: str, chat_jid: str, message_ids: list[str]) -> None:
        await self._call(session_id, "mark_read", chat_jid=chat_jid, message_ids=list(message_ids))

    async def ack(self, session_id: str, seq: int) -> None:
        """No-op: whatsmeow acknowledges to WhatsApp by itself once a message is decrypted."""

    async def disconnect(self, session_id: str) -> None:
        """Close the connection (the device stays linked); a no-op for unknown sessions."""
        session = self._sessions.get(session_id)
        if session is not None:
            await self._shutdown(session)

    async def logout(self, session_id: str) -> None:
        """Unlink the device; the handler receives ``LoggedOut`` before this returns."""
        session = self._live(session_id)
        await self._call(session_id, "logout")
        await self._devices.forget(session_id)
        await self._shutdown(session)

    async def aclose(self) -> None:
        """Close every session and stop the workers; the driver cannot be used afterwards."""
        self._closed = True
        await asyncio.gather(
            *(self._shutdown(s) for s in list(self._sessions.values())), return_exceptions=True
        )
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*(w.stop() for w in self._workers), return_exceptions=True)
        self._workers.clear()
        await self._devices.aclose()

    # -------------------------------------------------------------- internals

    def _live(self, session_id: str) -> _Session:
        session = self._sessions.get(session_id)
        if session is None or session.ended or session.closing:
            raise DriverError(f"session {session_id!r} is not connected; call connect() first")
        if session.worker is None or not session.worker.alive:
            raise DriverError(
                f"session {session_id!r} is not connected (its worker is restarting); retry later"
            )
        return session

    async def _call(self, session_id: str, method: str, **kwargs: Any) -> Any:
        session = self._live(session_id)
        assert session.worker is not None
        return await session.worker.call(method, session_id=session_id, **kwargs)

    async def _place(self, session: _Session) -> _Worker:
        async with self._place_lock:
            candidates = [w for w in self._workers if w.alive and len(w.sessions) < self._per_worker]
            if candidates:
                worker = min(candidates, key=lambda w: len(w.sessions))
            elif len(self._workers) < self._max_workers:
                worker = _Worker(self, next(self._indexes))
                try:
                    await worker.start()
                except BaseException:
                    worker.kill()
                    raise
                self._workers.append(worker)
            else:
                raise DriverError(
                    f"no room for session {session.session_id!r}: {self._max_workers} neonize workers "
                    f"with {self._per_worker} sessions each are busy"
                )
            worker.sessions.add(session.session_id)
            session.worker = worker
            return worker

    async def _open(self, session: _Session) -> None:
        worker = session.worker if session.worker is not None and session.worker.alive else None
        if worker is None:
            worker = await self._place(session)
        jid, new_device = await self._devices.lookup(session.session_id)
        await worker.call(
            "connect",
            session_id=session.session_id,
            store=self._devices.store_for(session.session_id),
            jid=jid,
            new_device=new_device,
        )

    def _deliver(self, session_id: str, event: DriverEvent) -> None:
        session = self._sessions.get(session_id)
        if session is None or (session.closing and not isinstance(event, LoggedOut)):
            return
        if not isinstance(event, Disconnected):
            session.seq += 1
            if isinstance(event, HistorySync):
                event = dataclasses.replace(
                    event,
                    seq=session.seq,
                    messages=tuple(dataclasses.replace(m, seq=session.seq) for m in event.messages),
                )
            else:
                event = dataclasses.replace(event, seq=session.seq)
        if isinstance(event, LoggedOut) or (isinstance(event, Disconnected) and event.replaced):
            session.ended = True  # whatsmeow will not reconnect this one
            if isinstance(event, LoggedOut):
                self._spawn(self._devices.forget(session_id))
        session.events.put_nowait(event)

    def _device_linked(self, session_id: str, jid: str) -> None:
        self._spawn(self._devices.remember(session_id, jid))

    def _worker_died(self, worker: _Worker, code: int | None) -> None:
        if self._closed or worker not in self._workers:
            return
        uptime = time.monotonic() - worker.started_at
        worker.crashes = 0 if uptime > 5 * self._restart_max else worker.crashes + 1
        delay = min(self._restart_initial * 2 ** max(worker.crashes - 1, 0), self._restart_max)
        log.error("neonize worker %d died (exit code %s); restarting in %.1fs", worker.index, code, delay)
        for sid in list(worker.sessions):
            session = self._sessions.get(sid)
            if session is not None and not session.closing and not session.ended:
                session.events.put_nowait(
                    Disconnected(
                        seq=0, reason=f"worker crashed (exit code {code}); restarting in {delay:.0f}s"
                    )
                )
        worker.restarting = self._spawn(self._restart(worker, delay))

    async def _restart(self, worker: _Worker, delay: float) -> None:
        while not self._closed:
            await asyncio.sleep(delay)
            try:
                await worker.start()
                break
            except DriverError as exc:
                log.error("restarting neonize worker %d failed: %s", worker.index, exc)
                delay = min(delay * 2, self._restart_max)
        for sid in list(worker.sessions):
            session = self._sessions.get(sid)
            if session is None or session.closing or session.ended:
                worker.sessions.discard(sid)
                continue
            self._spawn(self._reconnect(session))

    async def _reconnect(self, session: _Session) -> None:
        delay = self._restart_initial
        while not (self._closed or session.closing or session.ended):
            try:
                await self._open(session)
                return
            except DriverError as exc:
                session.events.put_nowait(Disconnected(seq=0, reason=f"reconnect failed: {exc}"))
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._restart_max)

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _dispatch(self, session: _Session) -> None:
        while True:
            event = await session.events.get()
            if event is _STOP:
                return
            try:
                await session.handler(session.session_id, event)
            except Exception:
                log.exception(
                    "session %s: event handler failed on %s", session.session_id, type(event).__name__
                )

    async def _shutdown(self, session: _Session, *, drain: bool = True) -> None:
        if session.closing and session.dispatcher is None:
            return
        session.closing = True
        worker = session.worker
        if worker is not None:
            if worker.alive:
                try:
                    await worker.call("disconnect", session_id=session.session_id)
                except DriverError:
                    pass
            worker.sessions.discard(session.session_id)
        session.worker = None
        dispatcher, session.dispatcher = session.dispatcher, None
        if dispatcher is not None:
            session.events.put_nowait(_STOP)
            if drain and asyncio.current_task() is not dispatcher:
                await dispatcher
            elif asyncio.current_task() is not dispatcher:
                dispatcher.cancel()
        if self._sessions.get(session.session_id) is session:
            del self._sessions[session.session_id]
