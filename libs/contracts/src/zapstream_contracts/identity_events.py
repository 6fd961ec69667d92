"""The identity topic's events (``<prefix>.identity.events``): what the command API's outbox relay publishes.

Value: ``{type, eventId, occurredOn, tenantId, payload}`` (keyed by tenant). These models are the
schema of each payload; ``schemas/identity/`` is generated from them. Fields named in ``PII_FIELDS``
are written encrypted (see :mod:`zapstream_platform.pii`): on the wire they are strings either way.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

IDENTITY_SCHEMA_BASE = "https://zapstream.dev/schemas/identity"
IDENTITY_SOURCE = "/zapstream/command-api"


def identity_dataschema(type_: str, version: int = 1) -> str:
    """The ``ce_dataschema`` URI of an identity event type (matches ``schemas/identity``)."""
    return f"{IDENTITY_SCHEMA_BASE}/{type_}.v{version}.json"


class IdentityPayload(BaseModel):
    """camelCase on the wire; unknown keys tolerated (a newer producer may add optional fields)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True, extra="ignore")
    TYPE: ClassVar[str] = ""
    class_version: ClassVar[int] = 1


class TenantCreated(IdentityPayload):
    TYPE = "tenant.created"
    tenant_id: str
    name: str | None = Field(default=None, description="The tenant's name; encrypted with the owner's data key "
                             "(zsenc:1:…) when it defaulted to the owner's name.")


class _UserRef(IdentityPayload):
    user_id: str


ENCRYPTED = ("Personal data, encrypted with the user's data key: zsenc:1:<userId>:<base64url>. Reads as "
             "[erased] once the user is erased (docs/events.md).")


class UserRegistered(_UserRef):
    """A person signed up (owner of a new tenant). ``email`` and ``name`` are personal data: encrypted."""

    TYPE = "user.registered"
    email: str = Field(description=ENCRYPTED)
    name: str = Field(description=ENCRYPTED)
    role: str


class UserCreated(UserRegistered):
    """An owner or admin created a user (an agent) in its tenant."""

    TYPE = "user.created"
    created_by: str | None = None


class UserVerificationRequested(_UserRef):
    TYPE = "user.verification_requested"


class UserEmailVerified(_UserRef):
    TYPE = "user.email_verified"


class UserLoggedIn(_UserRef):
    TYPE = "user.logged_in"


class UserLoggedOutEverywhere(_UserRef):
    TYPE = "user.logged_out_everywhere"


class UserRefreshTokenReused(_UserRef):
    TYPE = "user.refresh_token_reused"
    family_id: str


class UserPasswordResetRequested(_UserRef):
    TYPE = "user.password_reset_requested"


class UserPasswordReset(_UserRef):
    TYPE = "user.password_reset"


class UserDisabled(_UserRef):
    TYPE = "user.disabled"
    by: str | None = None


class UserEnabled(_UserRef):
    TYPE = "user.enabled"
    by: str | None = None


class UserErased(_UserRef):
    """The user's personal data was erased: its data key is destroyed, so every earlier copy is unreadable."""

    TYPE = "user.erased"
    by: str | None = None


class ChatAssigned(_UserRef):
    TYPE = "chat.assigned"
    chat_jid: str
    by: str | None = None


class ChatUnassigned(_UserRef):
    TYPE = "chat.unassigned"
    chat_jid: str
    by: str | None = None


class ApiKeyCreated(IdentityPayload):
    TYPE = "apikey.created"
    key_id: str
    name: str | None = None
    session_ids: list[str] | None = None
    by: str | None = None


class ApiKeyRevoked(IdentityPayload):
    TYPE = "apikey.revoked"
    key_id: str
    by: str | None = None


class TenantDeleted(IdentityPayload):
    """The tenant was deleted: its data keys and its users' are destroyed (crypto-shredding), so its messages'
    text, names and phone numbers in the session event log, and its users' e-mails and names here, are
    unreadable from now on; its users are erased (``user.erased`` each) and its API keys revoked."""

    TYPE = "tenant.deleted"
    tenant_id: str
    by: str | None = None


class WebhookEndpointDisabled(IdentityPayload):
    """Written by the webhooks service (through the same outbox) when an endpoint keeps dead-lettering."""

    TYPE = "webhook.endpoint.disabled"
    endpoint_id: str
    reason: str
    consecutive_dead_letters: int


IDENTITY_EVENTS: tuple[type[IdentityPayload], ...] = (
    TenantCreated,
    UserRegistered,
    UserCreated,
    UserVerificationRequested,
    UserEmailVerified,
    UserLoggedIn,
    UserLoggedOutEverywhere,
    UserRefreshTokenReused,
    UserPasswordResetRequested,
    UserPasswordReset,
    UserDisabled,
    UserEnabled,
    UserErased,
    ChatAssigned,
    ChatUnassigned,
    ApiKeyCreated,
    ApiKeyRevoked,
    TenantDeleted,
    WebhookEndpointDisabled,
)
IDENTITY_EVENTS_BY_TYPE: dict[str, type[IdentityPayload]] = {cls.TYPE: cls for cls in IDENTITY_EVENTS}

PII_FIELDS: dict[str, tuple[str, ...]] = {
    "user.registered": ("email", "name"),
    "user.created": ("email", "name"),
}
"""Payload fields holding a user's personal data, encrypted with that user's data key (``userId``)."""
