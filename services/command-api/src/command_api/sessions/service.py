"""Session lifecycle: create, start, stop, delete, pair by code; the session read model and command outcomes."""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from command_api.shared.access import Access
from command_api.shared.commands import Answer, Commands
from command_api.shared.idempotency import Idem
from command_api.shared.problems import Problem
from command_api.shared.qr import qr_data_url
from zapstream_contracts import commands as c
from zapstream_platform.tokens import Principal
from zapstream_platform.topics import partition_for


class SessionsStore(Protocol):
    async def register(self, tenant_id: str) -> str: ...
    async def mark_deleted(self, tenant_id: str, session_id: str) -> None: ...
    async def list(self, tenant_id: str) -> list[dict[str, Any]]: ...
    async def get(self, tenant_id: str, session_id: str) -> dict[str, Any] | None: ...
    async def command(self, tenant_id: str, command_id: str) -> dict[str, Any] | None: ...


class Liveness(Protocol):
    """Whether a session's partition has a live runner (None: cannot tell)."""

    async def owned(self) -> set[int] | None: ...


# Statuses that claim a live owner; a session in one of them whose partition has no runner is "unknown".
_OWNED_STATUSES = {"connected", "qr_pending", "reconnecting", "created"}


def present(who: Principal, view: dict[str, Any], owned: set[int] | None = None,
            partitions: int = 0) -> dict[str, Any]:
    """Status as a client should read it, and the QR (an admin's or a machine's business, not an agent's).

    ``reconnecting``: a new runner took the session over (``owner_lost``) and is re-linking it.
    ``unknown``: its runner died and none has taken over yet (Kafka's group says nobody owns it).
    """
    status = view.get("status")
    if status == "disconnected" and view.get("disconnectedReason") == "owner_lost":
        status = "reconnecting"
    if owned is not None and partitions and status in _OWNED_STATUSES \
            and partition_for(str(view["id"]), partitions) not in owned:
        status = "unknown"
    view = view | {"status": status}
    if who.is_agent or status == "unknown":  # a QR shown for an ownerless session would be stale
        return view | {"qr": None, "qrImage": None, "qrExpiresAt": None}
    return view | {"qrImage": qr_data_url(view["qr"]) if view.get("qr") else None}


class SessionsService:
    def __init__(self, store: SessionsStore, access: Access, commands: Commands,
                 pair_code_polls: int = 50, poll_interval_s: float = 0.1,
                 liveness: Liveness | None = None, partitions: int = 0) -> None:
        self.store = store
        self.access = access
        self.commands = commands
        self.liveness = liveness
        self.partitions = partitions
        self.pair_code_polls = pair_code_polls
        self.poll_interval_s = poll_interval_s

    async def create(self, who: Principal, idem: Idem, traceparent: str | None, name: str | None) -> Answer:
        self.access.manage_sessions(who, creating=True)

        async def produce(seed: str | None) -> dict[str, Any]:
            session_id = await self.store.register(who.tenant_id)
            return await self.commands.publish(who, c.CreateSession, session_id, seed, traceparent, name=name)

        return await self.commands.idempotent(who, idem, produce)

    async def _owned(self) -> set[int] | None:
        return await self.liveness.owned() if self.liveness is not None else None

    async def list(self, who: Principal) -> list[dict[str, Any]]:
        owned = await self._owned()
        return [present(who, v, owned, self.partitions) for v in await self.store.list(who.tenant_id)
                if self.access.in_scope(who, v["id"])]

    async def get(self, who: Principal, session_id: str) -> dict[str, Any]:
        sid = await self.access.owned(who, session_id)
        view = await self.store.get(who.tenant_id, sid)
        if view is None:
            raise Problem(404, "session not found")
        return present(who, view, await self._owned(), self.partitions)

    async def start(self, who: Principal, idem: Idem, traceparent: str | None, session_id: str) -> Answer:
        self.access.manage_sessions(who)
        sid = await self.access.owned(who, session_id)
        return await self.commands.accept(who, idem, traceparent, c.StartSession, sid)

    async def stop(self, who: Principal, idem: Idem, traceparent: str | None, session_id: str,
                   reason: str | None) -> Answer:
        """The reason goes to the runner as given: ``logout`` unlinks the device, others keep it linked."""
        self.access.manage_sessions(who)
        sid = await self.access.owned(who, session_id)
        return await self.commands.accept(who, idem, traceparent, c.StopSession, sid, reason=reason)

    async def delete(self, who: Principal, idem: Idem, traceparent: str | None, session_id: str,
                     purge: bool = False) -> Answer:
        """``purge``: the session's data goes from the read models too (``session.deleted`` says ``purged``).
        A session deleted earlier without it can still be purged (once: the runner refuses a second purge)."""
        self.access.manage_sessions(who)
        sid = await self.access.owned(who, session_id, deleted_ok=purge)
        answer = await self.commands.accept(who, idem, traceparent, c.DeleteSession, sid, purge=purge)
        # From now on the session is gone for the API (404, no QR), before the projector catches up.
        await self.store.mark_deleted(who.tenant_id, sid)
        self.access.forget(sid)
        return answer

    async def pair_code(self, who: Principal, idem: Idem, traceparent: str | None, session_id: str,
                        phone: str) -> tuple[dict[str, Any], bool, bool]:
        """Ask for a pairing code: (answer, replayed, done). Done: the code is in the answer; else poll."""
        self.access.manage_sessions(who)
        sid = await self.access.owned(who, session_id)
        accepted, replayed = await self.commands.accept(who, idem, traceparent, c.RequestPairCode, sid,
                                                        phone=phone)
        command_id = accepted["commandId"]
        for _ in range(self.pair_code_polls):  # the code comes back through Kafka and the projector
            outcome = await self.store.command(who.tenant_id, command_id)
            if outcome is not None:
                if outcome["status"] == "failed":
                    raise Problem(409, outcome["reason"] or "pairing failed", code=outcome["code"],
                                  commandId=command_id)
                # The success is on the event log, the code on the secrets topic: the projector may have
                # written the first before the second.
                code = outcome["result"].get("code")
                if code:
                    return {"commandId": command_id, "phone": phone, "code": code}, replayed, True
            await asyncio.sleep(self.poll_interval_s)
        return accepted, replayed, False

    async def command(self, who: Principal, command_id: str) -> dict[str, Any]:
        outcome = await self.store.command(who.tenant_id, command_id)
        if outcome is None or not await self.access.command_visible(who, outcome):
            raise Problem(404, "command not found or still pending")
        return outcome
