"""Response models of the dead-letters slice (operator routes)."""

from __future__ import annotations

from typing import Any

from command_api.shared.bodies import View


class DeadLetters(View):
    commands: list[dict[str, Any]]
    events: list[dict[str, Any]]


class Redriven(View):
    status: str
    id: str | int
