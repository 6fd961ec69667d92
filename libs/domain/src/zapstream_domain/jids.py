"""Phone numbers and JIDs: accept E.164 digits or full JIDs, emit canonical JIDs."""

from __future__ import annotations

import re

from .errors import InvalidJid

USER_SERVER = "s.whatsapp.net"
_SERVERS = frozenset({USER_SERVER, "g.us", "lid", "broadcast", "newsletter"})
_PHONE = re.compile(r"^\+?[1-9]\d{6,14}$")
_USER = re.compile(r"^[0-9A-Za-z.\-:_]{1,64}$")


def normalize_phone(value: str) -> str:
    """Return the bare E.164 digits of ``value`` (spaces, dashes, brackets and ``+`` dropped)."""
    compact = re.sub(r"[\s\-().]", "", value)
    if not _PHONE.match(compact):
        raise InvalidJid(f"not an E.164 phone number: {value!r}")
    return compact.lstrip("+")


def normalize_jid(value: str) -> str:
    """Canonicalize a phone number or JID to ``user@server``; raise :class:`InvalidJid` otherwise."""
    value = value.strip()
    if "@" not in value:
        return f"{normalize_phone(value)}@{USER_SERVER}"
    user, _, server = value.partition("@")
    server = server.lower()
    if server == "c.us":  # the legacy user server WhatsApp Web still accepts
        server = USER_SERVER
    if server not in _SERVERS or not _USER.match(user):
        raise InvalidJid(f"not a WhatsApp JID: {value!r}")
    if server == USER_SERVER:
        device_free = user.split(":", 1)[0]
        return f"{normalize_phone(device_free)}@{USER_SERVER}"
    return f"{user}@{server}"


def phone_of(jid: str) -> str:
    """The user part of a JID (the phone digits for user JIDs)."""
    return jid.partition("@")[0]
