"""Users and their credentials: registration, e-mail verification, login, refresh rotation, logout, resets.

Hardening: argon2id password hashes (verified in a worker thread, and against a
dummy hash when the account does not exist, so timing does not tell);
refresh tokens are random, stored as SHA-256 digests, rotated on every use, and
a rotated token presented again revokes its whole family; verification and
reset codes are stored hashed, expire, and die after a few wrong attempts;
login, verification and reset are rate-limited per account and per IP;
registration, reset and resend answers are the same whether or not the account exists.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import math
import secrets
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import urlencode

import asyncpg
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from command_api.identity.repository import Conn, IdentityRepository
from command_api.identity.schemas import EmailBody, LoginBody, RegisterBody, ResetConfirmBody, VerifyBody
from command_api.settings import AuthSettings, Limit
from command_api.shared import mailer, outbox
from command_api.shared.bus import CommandBus
from command_api.shared.problems import Problem
from zapstream_contracts import commands as c
from zapstream_platform import pii
from zapstream_platform.tokens import Principal, TokenSigner

log = logging.getLogger(__name__)

_hasher = PasswordHasher()  # argon2id, the library's (RFC 9106 low-memory) defaults
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))
# Namespace of the ids of the session.delete commands a tenant's deletion publishes: one id per (tenant, session),
# so a retried deletion publishes the same commands again, recognisably.
TENANT_PURGE = uuid.UUID("1d6a3f52-0c4e-4b7a-9a51-7e2f0d9c8b14")
# How long after a tenant's deletion its purge keeps running: events of the tenant already in flight (its
# sessions' last events, a campaign's last outcomes) may re-create rows in other services' tables until then.
PURGE_SETTLE_S = 600.0
PURGE_SWEEP_S = 30.0


class ObjectStore(Protocol):
    """The part of the media store a tenant's purge uses (zapstream_platform.storage.MediaStore)."""

    async def delete_prefix(self, prefix: str) -> int: ...


def tenant_prefix(tenant_id: str) -> str:
    """Every object of a tenant (uploads and messages' media) is stored under this prefix (storage.upload_key,
    storage.message_key)."""
    return f"tenants/{tenant_id}/"


CHECK_YOUR_EMAIL = {"status": "accepted",
                    "detail": "check your e-mail: if the address can be used, a message is on its way"}


def sha256(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


def account_key(email: str) -> str:
    """Rate-limit buckets name accounts by a digest of the e-mail, never the address itself."""
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()[:32]


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_hasher.hash, password)


async def verify_password(stored: str | None, password: str) -> bool:
    def check() -> bool:
        try:
            return _hasher.verify(stored or _DUMMY_HASH, password) and stored is not None
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    return await asyncio.to_thread(check)


def user_view(r: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": str(r["id"]), "tenantId": r["tenant_id"], "email": r["email"], "name": r["name"], "role": r["role"],
        "emailVerified": r["email_verified_at"] is not None, "disabled": r["disabled_at"] is not None,
        "createdAt": r["created_at"].isoformat(),
    }


def user_event(r: asyncpg.Record) -> dict[str, Any]:
    return {"userId": str(r["id"]), "email": r["email"], "name": r["name"], "role": r["role"]}


@dataclass(frozen=True, slots=True)
class Codes:
    code: str
    token: str


class IdentityService:
    def __init__(self, repo: IdentityRepository, auth: AuthSettings, signer: TokenSigner, app_base_url: str,
                 bus: CommandBus, evict: Callable[[str], None] = lambda tenant_id: None,
                 store: ObjectStore | None = None, purge_settle_s: float = PURGE_SETTLE_S,
                 purge_sweep_s: float = PURGE_SWEEP_S,
                 cancel_campaigns: Callable[[str], Awaitable[None]] | None = None) -> None:
        self.repo = repo
        self.cancel_campaigns = cancel_campaigns  # the campaigns slice's, so none runs on after the deletion
        self.store = store  # the tenant's stored media files go with it
        self.purge_settle_s = purge_settle_s
        self.purge_sweep_s = purge_sweep_s
        self.bus = bus  # a tenant's deletion deletes (and purges) its WhatsApp sessions
        self.auth = auth
        self.signer = signer
        self.app_base_url = app_base_url
        # Drops a tenant's cached principals in this process (other processes hear the identity event).
        self.evict = evict

    # -- rate limits --

    async def limit(self, bucket: str, spec: str) -> None:
        limit = Limit.parse(spec)
        hits, left = await self.repo.hit(bucket, float(limit.window_s))
        if hits > limit.hits:
            retry = max(1, math.ceil(left))
            raise Problem(429, "too many attempts; retry later", headers={"Retry-After": str(retry)})

    async def limit_both(self, action: str, email: str | None, ip: str, account: str, per_ip: str) -> None:
        # Count both before refusing, so a flood from one IP also spends that IP's budget.
        errors: list[Problem] = []
        buckets = [(f"{action}:ip:{ip}", per_ip)]
        if email:
            buckets.append((f"{action}:acct:{account_key(email)}", account))
        for bucket, lim in buckets:
            try:
                await self.limit(bucket, lim)
            except Problem as exc:
                errors.append(exc)
        if errors:
            retry = max(int((e.headers or {}).get("Retry-After", "1")) for e in errors)
            raise Problem(429, "too many attempts; retry later", headers={"Retry-After": str(retry)})

    # -- codes --

    async def new_codes(self, conn: Conn, user_id: uuid.UUID, purpose: str, ttl_s: int) -> Codes:
        codes = Codes(f"{secrets.randbelow(10**6):06d}", secrets.token_urlsafe(32))
        await self.repo.put_code(conn, user_id, purpose, sha256(f"{user_id}:{purpose}:{codes.code}"),
                                 sha256(codes.token), float(ttl_s))
        return codes

    async def consume_code(self, conn: Conn, user_id: uuid.UUID, purpose: str,
                           code: str | None, token: str | None) -> bool:
        """Inside a transaction: True (and the code is gone) when ``code`` or ``token`` matches a live code."""
        row = await self.repo.code_for_update(conn, user_id, purpose)
        if row is None or row["expires_at"] <= datetime.now(UTC) or row["attempts"] >= self.auth.code_max_attempts:
            return False
        ok = False
        if token is not None:
            ok = hmac.compare_digest(bytes(row["token_hash"]), sha256(token))
        elif code is not None:
            ok = hmac.compare_digest(bytes(row["code_hash"]), sha256(f"{user_id}:{purpose}:{code.strip()}"))
        if ok:
            await self.repo.delete_code(conn, user_id, purpose)
        else:
            await self.repo.count_code_attempt(conn, user_id, purpose)
        return ok

    def link(self, path: str, **params: str) -> str:
        return f"{self.app_base_url.rstrip('/')}{path}?{urlencode(params)}"

    async def send_verification(self, conn: Conn, user: asyncpg.Record) -> None:
        codes = await self.new_codes(conn, user["id"], "verify", self.auth.verification_ttl_s)
        subject, body = mailer.verification_mail(
            user["name"], codes.code, self.link("/verify", userId=str(user["id"]), token=codes.token))
        await mailer.enqueue(conn, user["email"], subject, body)
        await outbox.record(conn, "user.verification_requested", user["tenant_id"], {"userId": str(user["id"])})

    # -- flows --

    async def register(self, body: RegisterBody, ip: str) -> dict[str, Any]:
        """Always the same answer; an address that has an account gets a notice instead of a verification."""
        await self.limit(f"register:ip:{ip}", self.auth.rate_limits.register_ip)
        password_hash = await hash_password(body.password)
        tenant_id, user_id = str(uuid.uuid4()), uuid.uuid4()
        try:
            async with self.repo.transaction() as conn:
                await self.repo.insert_tenant(conn, tenant_id, body.tenant_name or body.name)
                user = await self.repo.insert_user(conn, user_id, tenant_id, str(body.email), body.name,
                                                   password_hash, "owner")
                # A tenant named after its owner carries personal data: encrypted with the owner's key.
                await outbox.record(conn, "tenant.created", tenant_id,
                                    {"tenantId": tenant_id, "name": body.tenant_name or body.name},
                                    pii=() if body.tenant_name else ("name",), subject=str(user_id))
                await outbox.record(conn, "user.registered", tenant_id, user_event(user))
                await self.send_verification(conn, user)
        except asyncpg.UniqueViolationError:
            await self.notify_existing(str(body.email))
        return CHECK_YOUR_EMAIL

    async def notify_existing(self, email: str) -> None:
        """Someone tried to register an address that has an account: tell its owner, nobody else."""
        async with self.repo.transaction() as conn:
            user = await self.repo.user_by_email(conn, email)
            if user is not None:
                subject, text = mailer.existing_account_mail(user["name"], self.link("/login"),
                                                             self.link("/reset-password", email=user["email"]))
                await mailer.enqueue(conn, user["email"], subject, text)

    async def verify(self, user_id: str, body: VerifyBody, ip: str) -> dict[str, Any]:
        if (body.code is None) == (body.token is None):
            raise Problem(422, "send exactly one of code or token")
        try:
            uid = uuid.UUID(user_id)
        except ValueError as exc:
            raise Problem(422, "invalid or expired code") from exc
        await self.limit_both("verify", str(uid), ip, self.auth.rate_limits.code_account,
                              self.auth.rate_limits.code_ip)
        async with self.repo.transaction() as conn:
            user = await self.repo.user_by_id(conn, uid, lock=True)
            if user is None or not await self.consume_code(conn, uid, "verify", body.code, body.token):
                raise Problem(422, "invalid or expired code")
            user = await self.repo.mark_verified(conn, uid)
            await outbox.record(conn, "user.email_verified", user["tenant_id"], {"userId": str(uid)})
        return user_view(user)

    async def _issue(self, conn: Conn, user: asyncpg.Record, family: uuid.UUID) -> tuple[str, str, int]:
        """(access token, refresh token, access expiry) for ``user``, the refresh token in ``family``."""
        refresh = secrets.token_urlsafe(32)
        await self.repo.insert_refresh(conn, family, user["id"], sha256(refresh), float(self.auth.refresh_token_ttl_s))
        access, exp = self.signer.issue(str(user["id"]), user["tenant_id"], user["role"], user["token_version"],
                                        self.auth.access_token_ttl_s)
        return access, refresh, exp

    async def login(self, body: LoginBody, ip: str) -> tuple[dict[str, Any], str]:
        await self.limit_both("login", str(body.email), ip, self.auth.rate_limits.login_account,
                              self.auth.rate_limits.login_ip)
        user = await self.repo.user_by_email(None, str(body.email))
        ok = await verify_password(user["password_hash"] if user else None, body.password)
        if user is None or not ok or user["disabled_at"] is not None:
            raise Problem(401, "invalid e-mail or password")
        if self.auth.require_verified_email and user["email_verified_at"] is None:
            raise Problem(403, "e-mail address not verified")
        if _hasher.check_needs_rehash(user["password_hash"]):
            await self.repo.set_password(None, user["id"], await hash_password(body.password))
        async with self.repo.transaction() as conn:
            access, refresh, exp = await self._issue(conn, user, uuid.uuid4())
            await outbox.record(conn, "user.logged_in", user["tenant_id"], {"userId": str(user["id"])})
        return self.token_body(access, exp, user), refresh

    def token_body(self, access: str, exp: int, user: asyncpg.Record) -> dict[str, Any]:
        return {"accessToken": access, "tokenType": "Bearer", "expiresIn": self.auth.access_token_ttl_s,
                "expiresAt": exp, "user": user_view(user)}

    async def refresh(self, token: str) -> tuple[dict[str, Any], str]:
        """Rotate ``token``. A token already rotated or revoked revokes its whole family (reuse detection)."""
        reused = False
        async with self.repo.transaction() as conn:
            row = await self.repo.refresh_for_update(conn, sha256(token))
            if row is None:
                raise Problem(401, "invalid refresh token")
            user = await self.repo.user_by_id(conn, row["user_id"])
            assert user is not None
            if row["rotated_at"] is not None or row["revoked_at"] is not None:
                if row["rotated_at"] is not None:  # a stolen copy, or the thief's: nobody keeps this family
                    reused = True
                    await self.repo.revoke_family(conn, row["family_id"])
                    await outbox.record(conn, "user.refresh_token_reused", user["tenant_id"],
                                        {"userId": str(user["id"]), "familyId": str(row["family_id"])})
            elif row["expires_at"] > datetime.now(UTC) and user["disabled_at"] is None:
                await self.repo.mark_rotated(conn, row["id"])
                access, refresh, exp = await self._issue(conn, user, row["family_id"])
                return self.token_body(access, exp, user), refresh
        if reused:
            log.warning("refresh token reuse detected; family revoked", extra={"fields": {"userId": str(user["id"])}})
        raise Problem(401, "invalid refresh token")

    async def logout(self, token: str) -> None:
        await self.repo.revoke_family_of(sha256(token))

    async def revoke_everything(self, conn: Conn, user_id: uuid.UUID, tenant_id: str) -> None:
        """End every login of the user: refresh families revoked, access tokens outdated."""
        await self.repo.revoke_user_tokens(conn, user_id)
        await self.repo.bump_token_version(conn, user_id)
        self.evict(tenant_id)

    async def logout_all(self, who: Principal) -> None:
        assert who.user_id is not None
        async with self.repo.transaction() as conn:
            await self.revoke_everything(conn, uuid.UUID(who.user_id), who.tenant_id)
            await outbox.record(conn, "user.logged_out_everywhere", who.tenant_id, {"userId": who.user_id})
        self.evict(who.tenant_id)

    async def resend_verification(self, body: EmailBody, ip: str) -> None:
        await self.limit_both("mail", str(body.email), ip, self.auth.rate_limits.mail_account,
                              self.auth.rate_limits.mail_ip)
        async with self.repo.transaction() as conn:
            user = await self.repo.user_by_email(conn, str(body.email), lock=True)
            if user is not None and user["email_verified_at"] is None and user["disabled_at"] is None:
                await self.send_verification(conn, user)

    async def password_reset(self, body: EmailBody, ip: str) -> None:
        await self.limit_both("mail", str(body.email), ip, self.auth.rate_limits.mail_account,
                              self.auth.rate_limits.mail_ip)
        async with self.repo.transaction() as conn:
            user = await self.repo.user_by_email(conn, str(body.email), lock=True)
            if user is not None and user["disabled_at"] is None:
                codes = await self.new_codes(conn, user["id"], "reset", self.auth.password_reset_ttl_s)
                subject, text = mailer.reset_mail(
                    user["name"], codes.code, self.link("/reset-password", email=user["email"], token=codes.token))
                await mailer.enqueue(conn, user["email"], subject, text)
                await outbox.record(conn, "user.password_reset_requested", user["tenant_id"],
                                    {"userId": str(user["id"])})

    async def password_reset_confirm(self, body: ResetConfirmBody, ip: str) -> None:
        if (body.code is None) == (body.token is None):
            raise Problem(422, "send exactly one of code or token")
        await self.limit_both("reset", str(body.email), ip, self.auth.rate_limits.code_account,
                              self.auth.rate_limits.code_ip)
        password_hash = await hash_password(body.new_password)
        async with self.repo.transaction() as conn:
            user = await self.repo.user_by_email(conn, str(body.email), lock=True)
            if user is None or user["disabled_at"] is not None or not await self.consume_code(
                    conn, user["id"], "reset", body.code, body.token):
                raise Problem(422, "invalid or expired code")
            await self.repo.set_password(conn, user["id"], password_hash, verify=True)
            await self.revoke_everything(conn, user["id"], user["tenant_id"])
            await outbox.record(conn, "user.password_reset", user["tenant_id"], {"userId": str(user["id"])})
        self.evict(user["tenant_id"])

    async def erase(self, who: Principal, user_id: str) -> None:
        """Erase a user: destroy its data key (every e-mail and name it left in the identity topic becomes
        unreadable: crypto-shredding), anonymize its row, end its sessions, and record ``user.erased``.

        The user itself may (its own account deletion), and so may the owner or an admin of its tenant; an
        admin cannot erase an owner. Another tenant's user looks missing (404). Erasing twice is a no-op.
        """
        actor = who.user_id
        if actor is None:
            raise Problem(403, "API keys are not users")
        if actor != user_id and not who.is_admin:
            raise Problem(403, "only the tenant's owner and admins may erase another user")
        try:
            uid = uuid.UUID(user_id)
        except ValueError:
            raise Problem(404, "no such user") from None
        async with self.repo.transaction() as conn:
            user = await self.repo.user_by_id(conn, uid, lock=True)
            if user is None or user["tenant_id"] != who.tenant_id:
                raise Problem(404, "no such user")
            if actor != user_id and user["role"] == "owner" and who.role != "owner":
                raise Problem(403, "only an owner may erase an owner")
            if await pii.erase(conn, user_id, who.tenant_id, "user", by=actor):
                await self.repo.anonymize_user(conn, uid, pii.ERASED)
                await outbox.record(conn, "user.erased", who.tenant_id, {"userId": user_id, "by": actor})
        self.evict(who.tenant_id)

    async def delete_tenant(self, who: Principal) -> None:
        """Delete the caller's tenant (its owner only): destroy the tenant's data key (the personal fields of
        its session events become unreadable in every copy of the log) and its users' keys, erase its users
        (as :meth:`erase`), revoke its API keys, record ``tenant.deleted``, and delete every session of it
        with a purge (``session.delete`` with ``purge``: the runner unlinks it, the projector removes its
        rows from the read models). Running it again is a no-op.
        """
        actor = who.user_id
        if actor is None:
            raise Problem(403, "only the tenant's owner may delete it; API keys may not")
        if who.role != "owner":
            raise Problem(403, "only the tenant's owner may delete it")
        tenant = who.tenant_id
        async with self.repo.transaction() as conn:
            if not await self.repo.lock_tenant(conn, tenant):
                raise Problem(404, "no such tenant")
            users = await self.repo.users_of_tenant(conn, tenant)
            for user in users:
                uid = str(user["id"])
                if await pii.erase(conn, uid, tenant, "user", by=actor):
                    await self.repo.anonymize_user(conn, user["id"], pii.ERASED)
                    await outbox.record(conn, "user.erased", tenant, {"userId": uid, "by": actor})
            # The tenant's own key (session events) and any other subject of the tenant.
            shredded = await pii.erase_tenant(conn, tenant, by=actor)
            for key_id in await self.repo.revoke_tenant_keys(conn, tenant):
                await outbox.record(conn, "apikey.revoked", tenant, {"keyId": key_id, "by": actor})
            if tenant in shredded:
                await self.repo.forget_tenant_name(conn, tenant, pii.ERASED)
                await outbox.record(conn, "tenant.deleted", tenant, {"tenantId": tenant, "by": actor})
            # Every session of the tenant, those deleted earlier included (they were not purged): marked
            # deleted here (the API answers 404 for them at once), and their commands published last, before
            # the commit. A failure to publish rolls everything back, so the owner's credentials still work
            # and the call can be retried; a commit that fails after the publish is retried the same way,
            # and publishes the same commands (same ids) again, which the runner rejects as already deleted.
            await self.repo.delete_tenant_rows(conn, tenant)
            if self.cancel_campaigns is not None:  # published before the commit, as the sessions' deletes
                await self.cancel_campaigns(tenant)
            await self.repo.queue_tenant_purge(conn, tenant, self.purge_settle_s)
            await self.purge_sessions(tenant, await self.repo.close_tenant_sessions(conn, tenant))
        self.evict(tenant)
        # After the commit: S3 is not in the transaction. A failure here is recorded and the sweep retries it.
        await self.run_purge(tenant)

    async def run_purge(self, tenant: str) -> bool:
        """One run of a deleted tenant's purge: its stored files (by prefix: uploads and messages' media) and
        the rows other services wrote for it. Idempotent; True when the purge is done for good."""
        try:
            if self.store is not None:
                await self.store.delete_prefix(tenant_prefix(tenant))
            done = await self.repo.purge_rows(tenant)
        except Exception as exc:  # S3 or the database down: the sweep tries again
            log.warning("tenant purge failed; will retry", extra={"fields": {"tenantId": tenant,
                                                                             "error": repr(exc)[:300]}})
            with contextlib.suppress(Exception):
                await self.repo.tenant_purge_ran(tenant, repr(exc)[:300], done=False)
            return False
        await self.repo.tenant_purge_ran(tenant, None, done=done)
        return done

    async def sweep_purges(self, stopping: asyncio.Event, interval_s: float | None = None) -> None:
        """Finish every pending tenant purge (at start, then every ``interval_s``): a purge cut short by a
        crash or an S3 outage, and the repeats that catch rows written by events still in flight."""
        interval_s = self.purge_sweep_s if interval_s is None else interval_s
        while not stopping.is_set():
            try:
                for tenant in await self.repo.pending_tenant_purges():
                    await self.run_purge(tenant)
            except Exception as exc:
                log.warning("tenant purge sweep failed", extra={"fields": {"error": repr(exc)[:300]}})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), interval_s)

    async def purge_sessions(self, tenant: str, session_ids: list[str]) -> None:
        """Publish ``session.delete`` with ``purge`` for each session, every one acknowledged by Kafka."""
        await asyncio.gather(*(
            self.bus.send(c.DeleteSession, tenant, sid, None,
                          command_id=str(uuid.uuid5(TENANT_PURGE, f"{tenant}\0{sid}")), purge=True)
            for sid in session_ids))

    async def me(self, who: Principal) -> dict[str, Any]:
        assert who.user_id is not None
        row = await self.repo.user_by_id(None, uuid.UUID(who.user_id))
        if row is None:
            raise Problem(401, "missing or invalid credentials")
        return user_view(row)
