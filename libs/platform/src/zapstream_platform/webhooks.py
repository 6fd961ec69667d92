"""Webhook rules shared by the registration API and the delivery service.

Signatures follow Standard Webhooks (https://www.standardwebhooks.com), so receivers can use any
existing verifier: the secret is ``whsec_`` + base64 of random bytes; the signed content is
``{webhook-id}.{webhook-timestamp}.{body}``; ``webhook-signature`` is ``v1,<base64 HMAC-SHA256>``,
one per valid secret separated by spaces (two while a rotated-out secret is still honoured).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import ipaddress
import secrets
import socket
from collections.abc import Iterable, Sequence
from urllib.parse import urlsplit

SECRET_PREFIX = "whsec_"
# Event types a filter may name: the session events, plus webhook's own notices.
WILDCARD = "*"


class UnsafeUrl(ValueError):
    """The URL is not one webhooks may be sent to (scheme, host, or a private address)."""


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def _key(secret: str) -> bytes:
    raw = secret.removeprefix(SECRET_PREFIX)
    return base64.b64decode(raw)


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """One ``v1,<signature>`` entry for ``secret``."""
    content = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(_key(secret), content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers(secrets_: Sequence[str], msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers, signed with every secret in ``secrets_``."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(sign(s, msg_id, timestamp, body) for s in secrets_),
    }


def verify(secret: str, msg_id: str, timestamp: int, body: bytes, signature_header: str) -> bool:
    """True if any ``v1`` entry of the header matches ``secret`` (constant-time comparison)."""
    expected = sign(secret, msg_id, timestamp, body)
    return any(hmac.compare_digest(expected, part) for part in signature_header.split())


def valid_type_filter(entry: str, known: Iterable[str]) -> bool:
    """``*``, a known type, or a prefix of known types ending in ``.*`` (``session.messages.*``)."""
    if entry == WILDCARD:
        return True
    if entry.endswith(".*"):
        prefix = entry[:-1]
        return any(t.startswith(prefix) for t in known)
    return entry in set(known)


def wants(event_types: Sequence[str], session_ids: Sequence[str], event_type: str, session_id: str) -> bool:
    """Whether an endpoint with these filters (empty = everything) wants this event."""
    if session_ids and session_id not in session_ids:
        return False
    if not event_types:
        return True
    return any(f == WILDCARD or f == event_type or (f.endswith(".*") and event_type.startswith(f[:-1]))
               for f in event_types)


def _forbidden(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return (ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast or ip.is_reserved
            or ip.is_unspecified or not ip.is_global)


def check_url_shape(url: str, *, allow_http: bool) -> tuple[str, int]:
    """Scheme, host and credentials checks that need no DNS; returns (host, port)."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or (parts.scheme == "http" and not allow_http):
        raise UnsafeUrl("the URL must be https")
    if not parts.hostname:
        raise UnsafeUrl("the URL has no host")
    if parts.username or parts.password:
        raise UnsafeUrl("credentials in the URL are not allowed (they would be logged and stored)")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise UnsafeUrl("the URL's port is invalid") from exc
    return parts.hostname, port


async def check_url(url: str, *, allow_private: bool, allow_http: bool) -> None:
    """Refuse URLs that resolve to loopback, link-local, private or otherwise non-public addresses (SSRF).

    Checked at registration and again before every delivery (DNS can change). ``allow_private`` is for
    operators whose receivers live on their own network (and for tests on loopback).
    """
    host, port = check_url_shape(url, allow_http=allow_http)
    if allow_private:
        return
    try:
        literal = ipaddress.ip_address(host)
        addresses = [literal]
    except ValueError:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise UnsafeUrl(f"the host {host!r} does not resolve") from exc
        addresses = [ipaddress.ip_address(info[4][0]) for info in infos]
    if not addresses or any(_forbidden(a) for a in addresses):
        raise UnsafeUrl("the URL resolves to a loopback, link-local or private address")
