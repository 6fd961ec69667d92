"""Webhook endpoint management for one tenant at a time; delivery itself is services/webhooks."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import asyncpg
from fastapi import HTTPException
from pydantic import BaseModel, Field

from command_api.webhooks.repository import WebhooksRepository
from command_api.webhooks.schemas import EndpointCreate, EndpointUpdate, Redrive, RotateSecret
from zapstream_platform.webhooks import UnsafeUrl, check_url, new_secret


class WebhooksConfig(BaseModel):
    """The slice's settings; the command API's Settings nests it as ``webhooks`` (COMMAND_API_WEBHOOKS__*)."""

    # Receivers on loopback / private / link-local addresses, or plain http: only if the operator allows.
    allow_private_networks: bool = False
    allow_http: bool = False
    max_endpoints_per_tenant: int = Field(default=20, ge=1)


def not_found() -> HTTPException:
    # Another tenant's endpoint answers exactly like a missing one.
    return HTTPException(404, "webhook endpoint not found")


def view(row: asyncpg.Record) -> dict[str, Any]:
    return {"id": row["id"], "url": row["url"], "description": row["description"],
            "eventTypes": list(row["event_types"]), "sessionIds": list(row["session_ids"]),
            "status": row["status"], "disabledReason": row["disabled_reason"],
            "previousSecretExpiresAt": row["previous_expires_at"],
            "createdAt": row["created_at"], "updatedAt": row["updated_at"]}


class WebhooksService:
    def __init__(self, repo: WebhooksRepository, config: WebhooksConfig) -> None:
        self.repo = repo
        self.config = config

    async def _checked_url(self, url: str) -> str:
        try:
            await check_url(url, allow_private=self.config.allow_private_networks, allow_http=self.config.allow_http)
        except UnsafeUrl as exc:
            raise HTTPException(422, str(exc)) from exc
        return url

    async def create(self, tenant_id: str, body: EndpointCreate) -> dict[str, Any]:
        url = await self._checked_url(body.url)
        if await self.repo.count(tenant_id) >= self.config.max_endpoints_per_tenant:
            raise HTTPException(409, f"at most {self.config.max_endpoints_per_tenant} webhook endpoints per tenant")
        secret = new_secret()
        row = await self.repo.create(tenant_id, url, body.event_types, [str(s) for s in body.session_ids],
                                     body.description, secret)
        return view(row) | {"secret": secret}  # the only time the secret is shown, with rotation's

    async def list(self, tenant_id: str) -> dict[str, Any]:
        return {"webhooks": [view(r) for r in await self.repo.all(tenant_id)]}

    async def get(self, tenant_id: str, endpoint_id: uuid.UUID) -> dict[str, Any]:
        row = await self.repo.get(tenant_id, endpoint_id)
        if row is None:
            raise not_found()
        return view(row)

    async def update(self, tenant_id: str, endpoint_id: uuid.UUID, body: EndpointUpdate) -> dict[str, Any]:
        changes: dict[str, Any] = {}
        if body.url is not None:
            changes["url"] = await self._checked_url(body.url)
        if body.event_types is not None:
            changes["event_types"] = body.event_types
        if body.session_ids is not None:
            changes["session_ids"] = [str(s) for s in body.session_ids]
        if "description" in body.model_fields_set:
            changes["description"] = body.description
        row = await self.repo.update(tenant_id, endpoint_id, changes)
        if row is None:
            raise not_found()
        return view(row)

    async def set_status(self, tenant_id: str, endpoint_id: uuid.UUID, status: str) -> dict[str, Any]:
        row = await self.repo.set_status(tenant_id, endpoint_id, status)
        if row is None:
            raise not_found()
        return view(row)

    async def delete(self, tenant_id: str, endpoint_id: uuid.UUID) -> None:
        if not await self.repo.delete(tenant_id, endpoint_id):
            raise not_found()

    async def rotate(self, tenant_id: str, endpoint_id: uuid.UUID, body: RotateSecret) -> dict[str, Any]:
        secret = new_secret()
        expires: datetime | None = await self.repo.rotate(tenant_id, endpoint_id, secret, body.grace_seconds)
        if expires is None:
            raise not_found()
        return {"secret": secret, "previousSecretExpiresAt": expires}

    async def _owned(self, tenant_id: str, endpoint_id: uuid.UUID) -> None:
        if await self.repo.get(tenant_id, endpoint_id) is None:
            raise not_found()

    async def deliveries(self, tenant_id: str, endpoint_id: uuid.UUID, status: str | None,
                         limit: int) -> dict[str, Any]:
        await self._owned(tenant_id, endpoint_id)
        rows = await self.repo.deliveries(tenant_id, endpoint_id, status, limit)
        return {"deliveries": [
            {"id": r["id"], "eventId": r["event_id"], "eventType": r["event_type"], "sessionId": r["session_id"],
             "status": r["status"], "attempts": r["attempts"], "lastStatusCode": r["last_status_code"],
             "lastError": r["last_error"], "lastAttemptAt": r["last_attempt_at"],
             "nextAttemptAt": r["next_attempt_at"], "deliveredAt": r["delivered_at"], "deadAt": r["dead_at"]}
            for r in rows]}

    async def attempts(self, tenant_id: str, endpoint_id: uuid.UUID, limit: int) -> dict[str, Any]:
        await self._owned(tenant_id, endpoint_id)
        rows = await self.repo.attempts(tenant_id, endpoint_id, limit)
        return {"attempts": [
            {"deliveryId": r["delivery_id"], "eventId": r["event_id"], "attempt": r["attempt"],
             "statusCode": r["status_code"], "error": r["error"], "latencyMs": r["latency_ms"],
             "attemptedAt": r["attempted_at"]}
            for r in rows]}

    async def redrive(self, tenant_id: str, endpoint_id: uuid.UUID, body: Redrive) -> dict[str, Any]:
        await self._owned(tenant_id, endpoint_id)
        return {"redriven": await self.repo.redrive(tenant_id, endpoint_id, body.ids)}

    async def replay(self, tenant_id: str, endpoint_id: uuid.UUID, since: datetime) -> dict[str, Any]:
        if since.tzinfo is None:
            raise HTTPException(422, "'from' needs a timezone (e.g. 2026-01-01T00:00:00Z)")
        replay_id = await self.repo.request_replay(tenant_id, endpoint_id, since)
        if replay_id is None:
            raise not_found()
        return {"replayId": replay_id}
