"""Personal data in the logs: which payload fields hold it, and the pure AES-GCM codec that shreds it.

A payload model marks a personal field with ``json_schema_extra=PII`` (``"x-pii": true`` in ``schemas/``).
Writers encrypt those fields with their data subject's key (:func:`encrypt_payload`); readers decrypt them
with the keys they were granted (:func:`decrypt_payload`). An encrypted field stays a string::

    zsenc:1:<subjectId>:<base64url(12-byte nonce ‖ AES-256-GCM ciphertext and tag)>

so the schemas keep ``type: string`` and a record stays readable, minus that field, without the key. The
GCM associated data is ``<subjectId>|<field name>`` (the field's wire name, e.g. ``text``), so a ciphertext
moved to another field or subject does not decrypt.

Crypto-shredding: erasing a subject destroys its key. A field whose key is gone decrypts to ``None`` and
its payload gets ``"erased": true``. A field whose key is present but which does not authenticate is not
an erasure but corruption or tampering: :class:`PiiError`.

Pure: no I/O. Where keys come from (PostgreSQL's ``pii_keys``) is :mod:`zapstream_platform.pii`'s business.
"""

from __future__ import annotations

import base64
import dataclasses
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Protocol, TypeVar, get_args

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import BaseModel

from .events import ALL_EVENTS
from .payloads import PII

__all__ = [
    "ERASED", "PII", "PREFIX", "PiiError", "decrypt", "decrypt_payload", "encrypt", "encrypt_fields",
    "encrypt_payload", "is_encrypted", "new_key", "open_envelope", "pii_fields", "reveal", "seal_envelope",
    "subject_of", "subjects_in", "subjects_of",
]

PREFIX = "zsenc:1:"
ERASED = "[erased]"
"""What :func:`reveal` (the generic, schema-less reader) shows for an erased value."""
_NONCE = 12


class PiiError(ValueError):
    """An encrypted field that its subject's key does not open: not an erasure, corruption or tampering."""


# -- AES-GCM primitives ----------------------------------------------------------------------------------

def new_key() -> bytes:
    return AESGCM.generate_key(bit_length=256)


def is_encrypted(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(PREFIX)


def subject_of(value: str) -> str:
    """The subject whose key encrypted ``value`` (a ``zsenc:1:`` string)."""
    return value[len(PREFIX):].split(":", 1)[0]


@lru_cache(maxsize=1024)
def _cipher(key: bytes) -> AESGCM:
    """One AESGCM per key: building one (its key schedule) costs more than sealing a short field."""
    return AESGCM(key)


@lru_cache(maxsize=4096)
def _aad(subject_id: str, field: str) -> bytes:
    return f"{subject_id}|{field}".encode()


def encrypt(key: bytes, subject_id: str, field: str, plaintext: str) -> str:
    nonce = os.urandom(_NONCE)
    sealed = _cipher(key).encrypt(nonce, plaintext.encode(), _aad(subject_id, field))
    return f"{PREFIX}{subject_id}:{base64.urlsafe_b64encode(nonce + sealed).decode().rstrip('=')}"


def decrypt(key: bytes, field: str, value: str) -> str:
    """Raises ``cryptography.exceptions.InvalidTag`` (or ``ValueError``) when ``value`` does not authenticate."""
    subject_id, blob = value[len(PREFIX):].split(":", 1)
    return _open(key, subject_id, field, blob)


def _open(key: bytes, subject_id: str, field: str, blob: str) -> str:
    raw = base64.urlsafe_b64decode(blob + "=" * (-len(blob) % 4))
    return _cipher(key).decrypt(raw[:_NONCE], raw[_NONCE:], _aad(subject_id, field)).decode()


def encrypt_fields(payload: dict[str, Any], fields: Iterable[str], key: bytes, subject_id: str) -> dict[str, Any]:
    """A copy of ``payload`` with the top-level ``fields`` (those that are strings) encrypted for ``subject_id``."""
    out = dict(payload)
    for name in fields:
        if isinstance(out.get(name), str) and not is_encrypted(out[name]):
            out[name] = encrypt(key, subject_id, name, out[name])
    return out


def subjects_in(value: Any) -> set[str]:
    """Subjects of every encrypted string anywhere in ``value`` (dicts and lists walked)."""
    found: set[str] = set()
    if is_encrypted(value):
        found.add(subject_of(value))
    elif isinstance(value, dict):
        for v in value.values():
            found |= subjects_in(v)
    elif isinstance(value, list):
        for v in value:
            found |= subjects_in(v)
    return found


def reveal(value: Any, keys: Mapping[str, bytes], field: str = "") -> Any:
    """Schema-less: every encrypted string anywhere in ``value`` decrypted when its key is in ``keys``, else
    :data:`ERASED` (the export's ``--reveal`` and the identity topic use this)."""
    if is_encrypted(value):
        key = keys.get(subject_of(value))
        if key is None:
            return ERASED
        try:
            return decrypt(key, field, value)
        except (InvalidTag, ValueError):
            return ERASED
    if isinstance(value, dict):
        return {k: reveal(v, keys, k) for k, v in value.items()}
    if isinstance(value, list):
        return [reveal(v, keys, field) for v in value]
    return value


# -- which fields: plans derived from the payload models' ``x-pii`` marks --------------------------------

@dataclass(frozen=True, slots=True)
class _Plan:
    """The personal fields of one model (wire names), and the models nested under its other fields."""

    fields: frozenset[str] = frozenset()
    # wire name → the nested model's plan by its ``kind`` (None: a single model, no discriminator)
    nested: Mapping[str, Mapping[str | None, _Plan]] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not self.fields and not self.nested


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in get_args(annotation) for m in _models_in(arg)]


def _marked(info: Any) -> bool:
    extra = info.json_schema_extra
    return isinstance(extra, dict) and extra.get("x-pii") is True


_PLANS: dict[type[BaseModel], _Plan] = {}


def _plan(model: type[BaseModel]) -> _Plan:
    if model in _PLANS:
        return _PLANS[model]
    fields: set[str] = set()
    nested: dict[str, dict[str | None, _Plan]] = {}
    for name, info in model.model_fields.items():
        wire = info.alias or name
        if _marked(info):
            fields.add(wire)
            continue
        members = _models_in(info.annotation)
        plans: dict[str | None, _Plan] = {}
        for m in members:
            sub = _plan(m)
            kind = m.model_fields["kind"].default if len(members) > 1 and "kind" in m.model_fields else None
            if not sub.empty:
                plans[kind] = sub
        if plans:
            nested[wire] = plans
    plan = _PLANS[model] = _Plan(frozenset(fields), nested)
    return plan


def pii_fields(type_: str) -> _Plan | None:
    """The personal fields of an event type's payload; None when it has none (or the type is unknown)."""
    spec = ALL_EVENTS.get(type_)
    if spec is None:
        return None
    plan = _plan(spec.payload)
    return None if plan.empty else plan


Leaf = Callable[[str, str], "str | None"]


def _walk(plan: _Plan, obj: dict[str, Any], leaf: Leaf) -> dict[str, Any]:
    out = dict(obj)
    for name in plan.fields:
        value = out.get(name)
        if isinstance(value, str):
            out[name] = leaf(name, value)
        elif isinstance(value, list):
            out[name] = [leaf(name, v) if isinstance(v, str) else v for v in value]
    for name, plans in plan.nested.items():
        value = out.get(name)
        if isinstance(value, dict):
            out[name] = _walk_one(plans, value, leaf)
        elif isinstance(value, list):
            out[name] = [_walk_one(plans, v, leaf) if isinstance(v, dict) else v for v in value]
    return out


def _walk_one(plans: Mapping[str | None, _Plan], obj: dict[str, Any], leaf: Leaf) -> dict[str, Any]:
    plan = plans.get(None) or plans.get(obj.get("kind"))
    return obj if plan is None else _walk(plan, obj, leaf)


def _scan(plan: _Plan, obj: Mapping[str, Any], found: set[str]) -> None:
    """Read-only: the subjects of the encrypted values under ``plan`` (no copies, unlike :func:`_walk`)."""
    for name in plan.fields:
        value = obj.get(name)
        if isinstance(value, str):
            if value.startswith(PREFIX):
                found.add(subject_of(value))
        elif isinstance(value, list):
            found.update(subject_of(v) for v in value if isinstance(v, str) and v.startswith(PREFIX))
    for name, plans in plan.nested.items():
        value = obj.get(name)
        for item in (value if isinstance(value, list) else (value,)):
            if isinstance(item, dict):
                sub = plans.get(None) or plans.get(item.get("kind"))
                if sub is not None:
                    _scan(sub, item, found)


# -- the codec ---------------------------------------------------------------------------------------------

def encrypt_payload(type_: str, payload: dict[str, Any], key: bytes, subject: str) -> dict[str, Any]:
    """A copy of ``payload`` (a wire dict of event ``type_``) with its personal fields encrypted for ``subject``.

    Fields already encrypted, and ``None``, stay as they are; types without personal fields are returned as is.
    """
    plan = pii_fields(type_)
    if plan is None:
        return payload
    return _walk(plan, payload, lambda name, v: v if is_encrypted(v) else encrypt(key, subject, name, v))


def subjects_of(type_: str, payload: Mapping[str, Any]) -> set[str]:
    """The subjects whose keys :func:`decrypt_payload` needs for this payload."""
    plan = pii_fields(type_)
    found: set[str] = set()
    if plan is not None:
        _scan(plan, payload, found)
    return found


def decrypt_payload(type_: str, payload: dict[str, Any], keyring: Mapping[str, bytes]) -> dict[str, Any]:
    """A copy of ``payload`` with its personal fields decrypted with ``keyring`` (subject id → key).

    A field whose subject has no key in ``keyring`` (erased, or not granted) becomes ``None`` and the payload
    gets ``"erased": true``. Plain (never encrypted) values stay as they are. Raises :class:`PiiError` when a
    field does not open with its subject's key.
    """
    plan = pii_fields(type_)
    if plan is None:
        return payload
    erased = False

    def open_(name: str, value: str) -> str | None:
        nonlocal erased
        if not value.startswith(PREFIX):
            return value
        subject, _, blob = value[len(PREFIX):].partition(":")
        key = keyring.get(subject)
        if key is None:
            erased = True
            return None
        try:
            return _open(key, subject, name, blob)
        except (InvalidTag, ValueError) as exc:
            raise PiiError(f"{type_}: field {name!r} does not open with its subject's key") from exc

    out = _walk(plan, payload, open_)
    if erased:
        out["erased"] = True
    return out


class _Enveloped(Protocol):
    """A session :class:`~.envelope.Envelope` or a campaign ``CampaignEnvelope`` (both frozen dataclasses)."""

    @property
    def type(self) -> str: ...

    @property
    def payload(self) -> dict[str, Any]: ...


E = TypeVar("E", bound=_Enveloped)


def seal_envelope(env: E, key: bytes, subject: str) -> E:
    """``env`` (a session or campaign envelope) with its payload's personal fields encrypted (what a writer puts on the topic)."""
    sealed = encrypt_payload(env.type, env.payload, key, subject)
    return env if sealed is env.payload else dataclasses.replace(env, payload=sealed)  # type: ignore[type-var]


def open_envelope(env: E, keyring: Mapping[str, bytes]) -> E:
    """``env`` with its payload's personal fields decrypted (see :func:`decrypt_payload`)."""
    opened = decrypt_payload(env.type, env.payload, keyring)
    return env if opened is env.payload else dataclasses.replace(env, payload=opened)  # type: ignore[type-var]
