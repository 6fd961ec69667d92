"""Operator API for dead letters: list both kinds and re-drive them.

Commands that kept failing sit in the command DLQ topic; re-driving produces the original
record to the command topic again. Events the projector could not apply sit in
``projector_dead_letters``; re-driving asks the projector to apply them again. Guarded by an
operator token (``COMMAND_API_OPERATOR_TOKEN``); without one configured the routes answer 404.
"""

from __future__ import annotations

import hmac
from typing import Any

from pydantic import SecretStr

from command_api.dead_letters.repository import DeadLettersRepository
from command_api.shared.problems import Problem


class DeadLettersService:
    def __init__(self, repo: DeadLettersRepository, operator_token: SecretStr | None) -> None:
        self.repo = repo
        self.operator_token = operator_token

    def require_operator(self, token: str | None) -> None:
        if self.operator_token is None or not self.operator_token.get_secret_value():
            raise Problem(404, "not found")
        if not token or not hmac.compare_digest(token.encode(), self.operator_token.get_secret_value().encode()):
            raise Problem(401, "operator token required")

    async def list(self, token: str | None) -> dict[str, Any]:
        self.require_operator(token)
        return {"commands": await self.repo.commands(), "events": await self.repo.events()}

    async def redrive_command(self, token: str | None, partition: int, offset: int) -> dict[str, Any]:
        self.require_operator(token)
        if not await self.repo.redrive_command(partition, offset):
            raise Problem(404, "dead letter not found")
        return {"status": "redriven", "id": f"{partition}:{offset}"}

    async def redrive_event(self, token: str | None, dead_letter_id: int) -> dict[str, Any]:
        self.require_operator(token)
        updated = await self.repo.request_event_redrive(dead_letter_id)
        if updated is None:
            raise Problem(404, "dead letter not found or already re-driven")
        return {"status": "redrive requested", "id": updated}
