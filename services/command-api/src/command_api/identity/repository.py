"""Identity's SQL: tenants, users, refresh tokens, one-time codes, rate-limit counters.

Flows that must be atomic take a connection inside :meth:`IdentityRepository.transaction`;
each function is one statement.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, TypeAlias

import asyncpg

from command_api.shared.security import KeyAuth, UserAuth

Conn: TypeAlias = asyncpg.Connection

# A deleted tenant's rows go from these tables (docs/events.md, "Erasing"). The command API's own, deleted in
# the deletion's transaction (webhook_endpoints cascades to deliveries, queues, attempts and replays):
API_TABLES = ("address_book_contacts", "address_book_imports", "suppressions", "campaign_tenant_settings",
              "webhook_endpoints", "idempotency_keys", "declared_sessions", "chat_assignments")
# Written by other services, purged after the commit and until the purge settles:
FOREIGN_TABLES = ("campaign_recipients", "campaigns", "analytics_buckets", "projector_dead_letters",
                  "webhook_deliveries")


class IdentityRepository:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Conn]:
        async with self.pool.acquire() as conn, conn.transaction():
            yield conn

    # -- principals (the authenticator's source) --

    async def user_auth(self, user_id: uuid.UUID) -> UserAuth | None:
        row = await self.pool.fetchrow(
            """SELECT u.tenant_id, u.role, u.token_version, u.disabled_at IS NOT NULL AS disabled, t.plan
               FROM users u JOIN tenants t ON t.id = u.tenant_id WHERE u.id = $1""", user_id)
        if row is None:
            return None
        return UserAuth(row["tenant_id"], row["role"], row["token_version"], row["disabled"], row["plan"])

    async def key_auth(self, digest: bytes) -> KeyAuth | None:
        row = await self.pool.fetchrow(
            """SELECT k.id, k.tenant_id, k.session_ids, t.plan FROM api_keys k JOIN tenants t ON t.id = k.tenant_id
               WHERE k.key_hash = $1 AND k.revoked_at IS NULL""", digest)
        if row is None:
            return None
        scope = None if row["session_ids"] is None else frozenset(str(s) for s in row["session_ids"])
        return KeyAuth(str(row["id"]), str(row["tenant_id"]), scope, row["plan"])

    # -- rate-limit counters (fixed windows in PostgreSQL, for the unauthenticated routes) --

    async def hit(self, bucket: str, window_s: float) -> tuple[int, float]:
        """Count one hit in ``bucket``; (hits in the current window, seconds left in it)."""
        row = await self.pool.fetchrow(
            """INSERT INTO rate_limits AS r (bucket, window_start, hits) VALUES ($1, now(), 1)
               ON CONFLICT (bucket) DO UPDATE SET
                 window_start = CASE WHEN r.window_start <= now() - make_interval(secs => $2)
                                     THEN now() ELSE r.window_start END,
                 hits = CASE WHEN r.window_start <= now() - make_interval(secs => $2) THEN 1 ELSE r.hits + 1 END
               RETURNING hits, extract(epoch FROM (window_start + make_interval(secs => $2) - now()))::float8 AS left""",
            bucket, window_s,
        )
        assert row is not None
        return int(row["hits"]), float(row["left"])

    # -- users --

    async def insert_tenant(self, conn: Conn, tenant_id: str, name: str) -> None:
        await conn.execute("INSERT INTO tenants (id, name) VALUES ($1, $2)", tenant_id, name)

    async def insert_user(self, conn: Conn, user_id: uuid.UUID, tenant_id: str, email: str, name: str,
                          password_hash: str, role: str, verified: bool = False,
                          created_by: uuid.UUID | None = None) -> asyncpg.Record:
        row = await conn.fetchrow(
            f"""INSERT INTO users (id, tenant_id, email, name, password_hash, role, email_verified_at, created_by)
                VALUES ($1, $2, $3, $4, $5, $6, {'now()' if verified else 'NULL'}, $7) RETURNING *""",
            user_id, tenant_id, email, name, password_hash, role, created_by)
        assert row is not None
        return row

    async def user_by_email(self, conn: Conn | asyncpg.Pool | None, email: str,
                            lock: bool = False) -> asyncpg.Record | None:
        return await (conn or self.pool).fetchrow(
            f"SELECT * FROM users WHERE lower(email) = lower($1) {'FOR UPDATE' if lock else ''}", email)

    async def user_by_id(self, conn: Conn | asyncpg.Pool | None, user_id: uuid.UUID,
                         lock: bool = False) -> asyncpg.Record | None:
        return await (conn or self.pool).fetchrow(
            f"SELECT * FROM users WHERE id = $1 {'FOR UPDATE' if lock else ''}", user_id)

    async def mark_verified(self, conn: Conn, user_id: uuid.UUID) -> asyncpg.Record:
        row = await conn.fetchrow(
            "UPDATE users SET email_verified_at = coalesce(email_verified_at, now()), updated_at = now() "
            "WHERE id = $1 RETURNING *", user_id)
        assert row is not None
        return row

    async def set_password(self, conn: Conn | None, user_id: uuid.UUID, password_hash: str,
                           verify: bool = False) -> None:
        await (conn or self.pool).execute(
            f"UPDATE users SET password_hash = $2{', email_verified_at = coalesce(email_verified_at, now())' if verify else ''}"
            " WHERE id = $1", user_id, password_hash)

    async def bump_token_version(self, conn: Conn, user_id: uuid.UUID) -> None:
        await conn.execute("UPDATE users SET token_version = token_version + 1, updated_at = now() WHERE id = $1",
                           user_id)

    async def anonymize_user(self, conn: Conn, user_id: uuid.UUID, erased: str) -> None:
        """Erasure: the row stays (references, audit) but holds nothing personal and can never sign in again."""
        row = await conn.fetchrow("SELECT email FROM users WHERE id = $1", user_id)
        if row is not None:
            # Sent mails too: their body is gone, but the recipient column is the address itself.
            await conn.execute("DELETE FROM mail_outbox WHERE lower(recipient) = lower($1)", row["email"])
        await conn.execute(
            """UPDATE users SET email = $2, name = $3, password_hash = '!', token_version = token_version + 1,
                      disabled_at = coalesce(disabled_at, now()), updated_at = now() WHERE id = $1""",
            user_id, f"erased-{user_id}@erased.invalid", erased)
        await conn.execute("DELETE FROM one_time_codes WHERE user_id = $1", user_id)
        await conn.execute("DELETE FROM chat_assignments WHERE user_id = $1", user_id)
        await self.revoke_user_tokens(conn, user_id)

    async def users_of_tenant(self, conn: Conn, tenant_id: str) -> list[asyncpg.Record]:
        return list(await conn.fetch("SELECT id, role FROM users WHERE tenant_id = $1 ORDER BY created_at FOR UPDATE",
                                     tenant_id))

    async def lock_tenant(self, conn: Conn, tenant_id: str) -> bool:
        return bool(await conn.fetchval("SELECT true FROM tenants WHERE id = $1 FOR UPDATE", tenant_id))

    async def forget_tenant_name(self, conn: Conn, tenant_id: str, erased: str) -> None:
        """A tenant is often named after its owner: the name goes with the tenant."""
        await conn.execute("UPDATE tenants SET name = $2 WHERE id = $1", tenant_id, erased)

    async def close_tenant_sessions(self, conn: Conn, tenant_id: str) -> list[str]:
        """Mark every session of the tenant deleted (if not already); the ids of all of them."""
        rows = await conn.fetch(
            """UPDATE session_registry SET deleted_at = coalesce(deleted_at, now()) WHERE tenant_id = $1
               RETURNING id""", tenant_id)
        return sorted(str(r["id"]) for r in rows)

    async def delete_tenant_rows(self, conn: Conn, tenant_id: str) -> list[str]:
        """Tenant deletion, in its transaction: every row of the tenant in the tables the command API owns
        (the address book, its imports, suppressions, campaign settings, media uploads, webhook endpoints with
        their deliveries, queues, attempts and replays, idempotency answers, declared sessions, chat
        assignments). The stored media keys of the deleted uploads, for the purge that follows the commit.

        Deleting the endpoints here is what stops the webhooks service for good: it reads a tenant's endpoints
        for every batch, so it can never enqueue a delivery for this tenant again (an enqueue racing this
        transaction fails its foreign key and is retried against no endpoints).
        """
        keys = [str(r["key"]) for r in await conn.fetch(
            "DELETE FROM media_uploads WHERE tenant_id = $1 RETURNING key", tenant_id)]
        for table in API_TABLES:
            await conn.execute(f"DELETE FROM {table} WHERE tenant_id = $1", tenant_id)
        return keys

    async def queue_tenant_purge(self, conn: Conn, tenant_id: str, settle_s: float) -> None:
        """Record the purge that follows the commit (S3, other services' rows); a repeat keeps the first."""
        await conn.execute(
            """INSERT INTO tenant_purges (tenant_id, settle_at) VALUES ($1, now() + make_interval(secs => $2))
               ON CONFLICT (tenant_id) DO NOTHING""", tenant_id, settle_s)

    async def pending_tenant_purges(self) -> list[str]:
        rows = await self.pool.fetch(
            "SELECT tenant_id FROM tenant_purges WHERE done_at IS NULL ORDER BY requested_at LIMIT 100")
        return [str(r["tenant_id"]) for r in rows]

    async def purge_rows(self, tenant_id: str) -> bool:
        """Delete the tenant's rows that other services write (campaign runner: campaigns, recipients;
        analytics: buckets; projector: dead letters; webhooks: deliveries), and again those of the API's own
        tables (a request authenticated before the deletion may still have been writing). True when this run
        counts as the last one (it started after the purge's settle time), so the purge may be marked done."""
        async with self.pool.acquire() as conn, conn.transaction():
            settled = bool(await conn.fetchval(
                "SELECT settle_at <= now() FROM tenant_purges WHERE tenant_id = $1", tenant_id))
            for table in (*FOREIGN_TABLES, "media_uploads", *API_TABLES):
                await conn.execute(f"DELETE FROM {table} WHERE tenant_id = $1", tenant_id)
        return settled

    async def tenant_purge_ran(self, tenant_id: str, error: str | None, done: bool) -> None:
        await self.pool.execute(
            """UPDATE tenant_purges SET attempts = attempts + 1, last_run_at = now(), last_error = $2,
                      done_at = CASE WHEN $3 THEN now() END WHERE tenant_id = $1""", tenant_id, error, done)

    async def revoke_tenant_keys(self, conn: Conn, tenant_id: str) -> list[str]:
        """Revoke every API key of the tenant still valid; their ids."""
        rows = await conn.fetch(
            "UPDATE api_keys SET revoked_at = now() WHERE tenant_id = $1 AND revoked_at IS NULL RETURNING id",
            tenant_id)
        return [str(r["id"]) for r in rows]

    # -- refresh tokens --

    async def insert_refresh(self, conn: Conn, family: uuid.UUID, user_id: uuid.UUID, token_hash: bytes,
                             ttl_s: float) -> None:
        await conn.execute(
            """INSERT INTO refresh_tokens (id, family_id, user_id, token_hash, expires_at)
               VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5))""",
            uuid.uuid4(), family, user_id, token_hash, ttl_s)

    async def refresh_for_update(self, conn: Conn, token_hash: bytes) -> asyncpg.Record | None:
        return await conn.fetchrow("SELECT * FROM refresh_tokens WHERE token_hash = $1 FOR UPDATE", token_hash)

    async def mark_rotated(self, conn: Conn, token_id: Any) -> None:
        await conn.execute("UPDATE refresh_tokens SET rotated_at = now() WHERE id = $1", token_id)

    async def revoke_family(self, conn: Conn | None, family: Any) -> None:
        await (conn or self.pool).execute(
            "UPDATE refresh_tokens SET revoked_at = now() WHERE family_id = $1 AND revoked_at IS NULL", family)

    async def revoke_family_of(self, token_hash: bytes) -> None:
        await self.pool.execute(
            """UPDATE refresh_tokens SET revoked_at = now() WHERE revoked_at IS NULL
               AND family_id = (SELECT family_id FROM refresh_tokens WHERE token_hash = $1)""", token_hash)

    async def revoke_user_tokens(self, conn: Conn, user_id: uuid.UUID) -> None:
        await conn.execute("UPDATE refresh_tokens SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL",
                           user_id)

    # -- one-time codes --

    async def put_code(self, conn: Conn, user_id: uuid.UUID, purpose: str, code_hash: bytes, token_hash: bytes,
                       ttl_s: float) -> None:
        await conn.execute(
            """INSERT INTO one_time_codes (user_id, purpose, code_hash, token_hash, expires_at)
               VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5))
               ON CONFLICT (user_id, purpose) DO UPDATE SET code_hash = EXCLUDED.code_hash,
                 token_hash = EXCLUDED.token_hash, attempts = 0, expires_at = EXCLUDED.expires_at, created_at = now()""",
            user_id, purpose, code_hash, token_hash, ttl_s)

    async def code_for_update(self, conn: Conn, user_id: uuid.UUID, purpose: str) -> asyncpg.Record | None:
        return await conn.fetchrow(
            "SELECT * FROM one_time_codes WHERE user_id = $1 AND purpose = $2 FOR UPDATE", user_id, purpose)

    async def delete_code(self, conn: Conn, user_id: uuid.UUID, purpose: str) -> None:
        await conn.execute("DELETE FROM one_time_codes WHERE user_id = $1 AND purpose = $2", user_id, purpose)

    async def count_code_attempt(self, conn: Conn, user_id: uuid.UUID, purpose: str) -> None:
        await conn.execute("UPDATE one_time_codes SET attempts = attempts + 1 WHERE user_id = $1 AND purpose = $2",
                           user_id, purpose)
