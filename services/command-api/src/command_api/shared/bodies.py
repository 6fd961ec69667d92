"""Types shared by the slices' request and response models."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Path
from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from command_api.shared.problems import Problem
from zapstream_domain.errors import InvalidJid
from zapstream_domain.jids import normalize_jid, normalize_phone


class Body(BaseModel):
    """A request body: camelCase on the wire, unknown keys ignored (clients may send more than we read)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


class View(BaseModel):
    """A response body: camelCase on the wire."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


def _checked(normalize: Callable[[str], str]) -> Callable[[str], str]:
    """A normaliser as a pydantic validator: its InvalidJid becomes a validation error (422)."""

    def check(value: str) -> str:
        try:
            return normalize(value)
        except InvalidJid as exc:
            raise ValueError(str(exc)) from exc

    return check


MessageId = Annotated[str, Field(min_length=1, max_length=200)]
Jid = Annotated[str, Field(min_length=1, max_length=200, examples=["51988887777@s.whatsapp.net"]),
                AfterValidator(_checked(normalize_jid))]
Phone = Annotated[str, Field(min_length=1, max_length=32, examples=["51999999999"]),
                  AfterValidator(_checked(normalize_phone))]
# A session id; the tenant's latest session when absent.
SessionRef = Annotated[str | None, Field(max_length=64, description="A session id; the tenant's latest when absent.")]

# Path parameters (bounded, so nothing unbounded reaches a query).
JidPath = Annotated[str, Path(min_length=1, max_length=200, description="A JID or E.164 phone number",
                              examples=["51988887777@s.whatsapp.net"])]
IdPath = Annotated[str, Path(min_length=1, max_length=200)]
MessageIdPath = Annotated[str, Path(min_length=1, max_length=200)]


def jid_or_422(raw: str) -> str:
    try:
        return normalize_jid(raw)
    except InvalidJid as exc:
        raise Problem(422, str(exc)) from exc


class CommandAccepted(View):
    """A command is durably on Kafka (acks=all); follow it with ``GET /commands/{commandId}``."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "commandId": "0f8e0c1e-3c2b-4a59-9a55-63d8a0b1c2d3", "status": "accepted",
        "sessionId": "4b1a9c08-6b70-4c1c-9d5b-2b7d8fd5b901"}]})

    command_id: str
    status: str = "accepted"
    session_id: str


IDEMPOTENCY_HEADERS = {
    "Idempotent-Replayed": {"description": "`true` when this answer replays the first one for the Idempotency-Key.",
                            "schema": {"type": "string", "enum": ["true"]}},
}
