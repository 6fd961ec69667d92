"""Identity and access against the real stack: PostgreSQL, Kafka, the services as processes, and an SMTP server.

Codes are read from the mails the command API sends to a local aiosmtpd server.
Each test uses its own e-mail addresses and its own client IP (``X-Forwarded-For``,
which the test stack trusts), so rate limits never leak between tests.
"""

from __future__ import annotations

import asyncio
import base64
import email
import os
import random
import re
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import Message
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
from aiosmtpd.controller import Controller
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.conftest import Stack, Tenant, service_env
from tests.e2e.conftest import link_session, new_phone
from tests.support.clients import WsCollector, eventually
from tests.support.stack import REPO
from zapstream_platform import pii
from zapstream_platform.settings import KafkaSettings
from zapstream_platform.topics import read_all

PASSWORD = "correct horse battery staple"


# --- SMTP ------------------------------------------------------------------------------------------


@dataclass
class Inbox:
    messages: list[Message] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # aiosmtpd handler hook
        msg = email.message_from_bytes(envelope.content)
        self.messages.append(msg)
        return "250 OK"

    def to(self, address: str) -> list[Message]:
        return [m for m in self.messages if m["To"] == address]

    async def wait(self, address: str, count: int = 1, timeout: float = 20) -> Message:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            mails = self.to(address)
            if len(mails) >= count:
                return mails[count - 1]
            await asyncio.sleep(0.05)
        raise AssertionError(f"no mail #{count} for {address} within {timeout}s")


def body(msg: Message) -> str:
    payload = msg.get_payload(decode=True)
    assert isinstance(payload, bytes)
    return payload.decode()


def code_in(msg: Message) -> str:
    match = re.search(r"code is: (\d{6})", body(msg))
    assert match, "no code in the mail"
    return match.group(1)


def user_id_in(msg: Message) -> str:
    """POST /users answers the same for new and existing addresses; the user id comes in the mail's link."""
    match = re.search(r"userId=([0-9a-f-]{36})", body(msg))
    assert match, "no user id in the mail"
    return match.group(1)


def token_in(msg: Message) -> str:
    match = re.search(r"token=([A-Za-z0-9_\-]+)", body(msg))
    assert match, "no token in the mail"
    return match.group(1)


@pytest.fixture(scope="session")
def inbox(run_id: str) -> Iterator[Inbox]:
    """The SMTP server the test stack's command API sends to (its port is derived from run_id in conftest)."""
    handler = Inbox()
    controller = Controller(handler, hostname="127.0.0.1", port=10000 + int(run_id, 16) % 20000)
    controller.start()
    yield handler
    controller.stop()


# --- helpers ---------------------------------------------------------------------------------------


def new_ip() -> str:
    return f"10.{random.randrange(256)}.{random.randrange(256)}.{random.randrange(1, 255)}"


def new_email(tag: str = "u") -> str:
    return f"{tag}-{uuid.uuid4().hex[:10]}@example.com"


def anon(stack: Stack) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=stack.api_url, headers={"X-Forwarded-For": new_ip()}, timeout=15)


@dataclass
class User:
    id: str
    tenant_id: str
    email: str
    access: str
    http: httpx.AsyncClient  # authenticated with the access token; carries the refresh cookie

    def as_tenant(self) -> Tenant:
        return Tenant(self.tenant_id, self.access, self.http)


async def login(http: httpx.AsyncClient, address: str, password: str = PASSWORD) -> httpx.Response:
    return await http.post("/auth/login", json={"email": address, "password": password})


async def owner(stack: Stack, inbox: Inbox, clients: list[httpx.AsyncClient]) -> User:
    """Register, verify through the mailed code, log in."""
    http = anon(stack)
    clients.append(http)
    address = new_email("owner")
    r = await http.post("/users", json={"name": "Ada", "email": address, "password": PASSWORD})
    assert r.status_code == 202, r.text
    mail = await inbox.wait(address)
    r = await http.post(f"/users/{user_id_in(mail)}/verify", json={"code": code_in(mail)})
    assert r.status_code == 200, r.text
    user = r.json()
    r = await login(http, address)
    assert r.status_code == 200, r.text
    access = r.json()["accessToken"]
    http.headers["Authorization"] = f"Bearer {access}"
    return User(user["id"], user["tenantId"], address, access, http)


async def agent_of(stack: Stack, admin: User, clients: list[httpx.AsyncClient]) -> User:
    address = new_email("agent")
    r = await admin.http.post("/agents", json={"name": "Station 1", "email": address, "password": PASSWORD})
    assert r.status_code == 202, r.text
    http = anon(stack)
    clients.append(http)
    r = await login(http, address)
    assert r.status_code == 200, r.text
    assert r.json()["user"]["role"] == "agent" and r.json()["user"]["tenantId"] == admin.tenant_id
    access = r.json()["accessToken"]
    http.headers["Authorization"] = f"Bearer {access}"
    return User(r.json()["user"]["id"], admin.tenant_id, address, access, http)


@pytest.fixture
async def clients() -> Any:
    made: list[httpx.AsyncClient] = []
    yield made
    for http in made:
        await http.aclose()


def problem(r: httpx.Response, *statuses: int) -> None:
    assert r.status_code in statuses, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/problem+json"), r.headers["content-type"]


# --- flows -----------------------------------------------------------------------------------------


async def test_register_verify_login_refresh_rotation_and_reuse(stack: Stack, inbox: Inbox, clients: list) -> None:
    http = anon(stack)
    clients.append(http)
    address = new_email()
    r = await http.post("/users", json={"name": "Ada", "email": address, "password": PASSWORD})
    assert r.status_code == 202, r.text
    assert "password" not in r.text and address not in r.text
    first_mail = await inbox.wait(address)
    user = {"id": user_id_in(first_mail)}
    # The same answer for an address that has an account: its owner gets a notice, not a verification.
    again = await http.post("/users", json={"name": "Ada", "email": address.upper(), "password": PASSWORD})
    assert again.status_code == 202 and again.json() == r.json()
    notice = await inbox.wait(address, 2)
    assert "already has one" in body(notice) and not re.search(r"code is: \d{6}", body(notice))

    # Not verified yet: the right password is not enough.
    problem(await login(http, address), 403)
    # Resend: a third mail with a new code; the first code is dead.
    first = code_in(first_mail)
    r = await http.post("/auth/resend-verification", json={"email": address})
    assert r.status_code == 202
    second = code_in(await inbox.wait(address, 3))
    if first != second:
        problem(await http.post(f"/users/{user['id']}/verify", json={"code": first}), 422)
    problem(await http.post(f"/users/{user['id']}/verify", json={}), 422)
    problem(await http.post(f"/users/{uuid.uuid4()}/verify", json={"code": second}), 422)
    r = await http.post(f"/users/{user['id']}/verify", json={"code": second})
    assert r.status_code == 200 and r.json()["emailVerified"] is True, r.text
    assert r.json()["role"] == "owner"

    problem(await login(http, address, "wrong password!"), 401)
    problem(await login(http, "nobody-" + address), 401)
    r = await login(http, address)
    assert r.status_code == 200, r.text
    token = r.json()
    assert token["tokenType"] == "Bearer" and token["expiresIn"] == 900
    cookie = r.headers["set-cookie"]
    assert cookie.startswith("refresh_token=") and "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert "Path=/auth" in cookie and "Secure" not in cookie
    header = orjson.loads(base64.urlsafe_b64decode(token["accessToken"].split(".")[0] + "=="))
    assert header["alg"] == "HS256" and header["kid"]

    bearer = {"Authorization": f"Bearer {token['accessToken']}"}
    r = await http.get("/users/me", headers=bearer)
    assert r.status_code == 200 and r.json()["id"] == user["id"] and r.json()["email"] == address
    r = await http.get("/sessions", headers=bearer)  # the access token works on every route
    assert r.status_code == 200 and r.json() == {"sessions": []}

    # Rotation: each refresh answers a new access token and a new refresh cookie.
    first_refresh = http.cookies["refresh_token"]
    r = await http.post("/auth/refresh")
    assert r.status_code == 200, r.text
    second_refresh = http.cookies["refresh_token"]
    assert second_refresh != first_refresh
    assert (await http.get("/users/me", headers={"Authorization": f"Bearer {r.json()['accessToken']}"})).status_code == 200

    # Reuse detection: presenting the rotated token revokes the whole family, the newest token too.
    stolen = httpx.AsyncClient(base_url=stack.api_url, headers={"X-Forwarded-For": new_ip()}, timeout=15,
                               cookies={"refresh_token": first_refresh})
    clients.append(stolen)
    problem(await stolen.post("/auth/refresh"), 401)
    problem(await http.post("/auth/refresh"), 401)
    assert "refresh_token" not in http.cookies  # cleared

    # A new login is a new family; logout ends it.
    assert (await login(http, address)).status_code == 200
    assert (await http.post("/auth/refresh")).status_code == 200
    kept = http.cookies["refresh_token"]
    r = await http.post("/auth/logout")
    assert r.status_code == 204
    again = httpx.AsyncClient(base_url=stack.api_url, timeout=15, cookies={"refresh_token": kept})
    clients.append(again)
    problem(await again.post("/auth/refresh"), 401)
    problem(await http.post("/auth/refresh"), 401)  # no cookie at all


async def test_verify_by_link_token_logout_all_and_password_reset(stack: Stack, inbox: Inbox, clients: list) -> None:
    http = anon(stack)
    clients.append(http)
    address = new_email()
    assert (await http.post("/users", json={"name": "Bo", "email": address, "password": PASSWORD})).status_code == 202
    mail = await inbox.wait(address)
    user = {"id": user_id_in(mail)}
    problem(await http.post(f"/users/{user['id']}/verify", json={"token": "x" * 43}), 422)
    assert (await http.post(f"/users/{user['id']}/verify", json={"token": token_in(mail)})).status_code == 200

    # Two logins (two families), then logout-all from one of them.
    laptop, phone = anon(stack), anon(stack)
    clients += [laptop, phone]
    a = (await login(laptop, address)).json()["accessToken"]
    b = (await login(phone, address)).json()["accessToken"]
    r = await laptop.post("/auth/logout-all", headers={"Authorization": f"Bearer {a}"})
    assert r.status_code == 204
    for token in (a, b):
        problem(await http.get("/users/me", headers={"Authorization": f"Bearer {token}"}), 401)
    problem(await laptop.post("/auth/refresh"), 401)
    problem(await phone.post("/auth/refresh"), 401)

    # Reset: the answer does not tell whether the account exists.
    known = await http.post("/auth/password-reset", json={"email": address})
    unknown = await http.post("/auth/password-reset", json={"email": new_email("ghost")})
    assert known.status_code == unknown.status_code == 202 and known.json() == unknown.json()
    unknown = await http.post("/auth/resend-verification", json={"email": new_email("ghost")})
    assert unknown.status_code == 202 and unknown.json() == known.json()
    mail = await inbox.wait(address, 2)
    assert "reset" in mail["Subject"].lower()
    new_password = "a much better passphrase"
    problem(await http.post("/auth/password-reset/confirm",
                            json={"email": address, "code": "000000" if code_in(mail) != "000000" else "111111",
                                  "newPassword": new_password}), 422)
    problem(await http.post("/auth/password-reset/confirm",
                            json={"email": address, "token": token_in(mail), "newPassword": "short"}), 422)
    r = await http.post("/auth/password-reset/confirm",
                        json={"email": address, "token": token_in(mail), "newPassword": new_password})
    assert r.status_code == 204, r.text
    # The token is single-use.
    problem(await http.post("/auth/password-reset/confirm",
                            json={"email": address, "token": token_in(mail), "newPassword": new_password}), 422)
    problem(await login(http, address), 401)
    assert (await login(http, address, new_password)).status_code == 200


async def test_rate_limits_answer_429_with_retry_after(stack: Stack, inbox: Inbox, clients: list) -> None:
    u = await owner(stack, inbox, clients)
    # Per account: from many IPs, the 11th login attempt in the window (owner() made the first) is refused,
    # even with the right password.
    for _ in range(9):
        async with anon(stack) as http:
            problem(await login(http, u.email, "not the password"), 401)
    async with anon(stack) as http:
        r = await login(http, u.email)
        problem(r, 429)
        assert 1 <= int(r.headers["Retry-After"]) <= 300

    # Per account, e-mail sending: 3 per window, whether or not the account exists.
    async with anon(stack) as http:
        ghost = new_email("ghost")
        for _ in range(3):
            assert (await http.post("/auth/password-reset", json={"email": ghost})).status_code == 202
        r = await http.post("/auth/password-reset", json={"email": ghost})
        problem(r, 429)
        assert int(r.headers["Retry-After"]) >= 1

    # Per IP: 30 mails per window from one address, whatever the accounts.
    async with anon(stack) as http:
        for _ in range(30):
            assert (await http.post("/auth/resend-verification", json={"email": new_email("x")})).status_code == 202
        problem(await http.post("/auth/resend-verification", json={"email": new_email("x")}), 429)

    # Verification codes: per account.
    async with anon(stack) as http:
        address = new_email()
        assert (await http.post("/users", json={"name": "C", "email": address, "password": PASSWORD})).status_code == 202
    user = {"id": user_id_in(await inbox.wait(address))}
    statuses = []
    for _ in range(11):
        async with anon(stack) as http:
            statuses.append((await http.post(f"/users/{user['id']}/verify", json={"code": "999999x"})).status_code)
    assert statuses[:10] == [422] * 10 and statuses[10] == 429


async def test_bad_input_and_forged_tokens_are_problems_never_500(stack: Stack, inbox: Inbox, clients: list) -> None:
    u = await owner(stack, inbox, clients)
    async with anon(stack) as http:
        for path in ("/users", "/auth/login", "/auth/resend-verification", "/auth/password-reset",
                     "/auth/password-reset/confirm", f"/users/{u.id}/verify", "/users/nope/verify"):
            for raw in (b"", b"{", b"[]", b"null", b'{"email": 5}', b'{"email": "not-an-email"}',
                        b'{"email": "' + b"a" * 5000 + b'@x.com", "password": "x"}'):
                r = await http.post(path, content=raw, headers={"content-type": "application/json"})
                assert r.status_code in (401, 422, 429), (path, raw[:20], r.status_code, r.text)
                problem(r, r.status_code)
        head, claims, sig = u.access.split(".")
        none_alg = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
        other_kid = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT","kid":"nope"}').rstrip(b"=").decode()
        tampered = base64.urlsafe_b64encode(
            orjson.dumps(orjson.loads(base64.urlsafe_b64decode(claims + "==")) | {"role": "owner", "tid": "x"})
        ).rstrip(b"=").decode()
        for bad in (f"{none_alg}.{claims}.", f"{other_kid}.{claims}.{sig}", f"{head}.{tampered}.{sig}",
                    f"{head}.{claims}.{sig[:-4]}AAAA", "ey.ey.ey", "eyJ" + "A" * 5000, "zs_live_nope"):
            problem(await http.get("/users/me", headers={"Authorization": f"Bearer {bad}"}), 401)
            problem(await http.get("/sessions", headers={"Authorization": f"Bearer {bad}"}), 401)
        http.cookies.set("refresh_token", "x" * 1000)
        problem(await http.post("/auth/refresh"), 401)


async def test_outbox_publishes_identity_events_to_kafka(stack: Stack, inbox: Inbox, clients: list,
                                                         kafka: KafkaSettings, pg: asyncpg.Pool) -> None:
    u = await owner(stack, inbox, clients)
    topic = f"{kafka.topic_prefix}.identity.events"

    async def published() -> list[dict[str, Any]]:
        events = [e for e in await identity_events(kafka.bootstrap_servers, topic)
                  if e["tenantId"] == u.tenant_id]
        types = {e["type"] for e in events}
        return events if {"tenant.created", "user.registered", "user.email_verified", "user.logged_in"} <= types else []

    events = await eventually(published, timeout=30)
    registered = next(e for e in events if e["type"] == "user.registered")
    # Personal data is encrypted with the user's data key; a reader with access to the keys sees it.
    assert registered["payload"]["email"].startswith(pii.PREFIX) and u.email not in str(events)
    revealed = await pii.Revealer(pg).reveal(registered["payload"])
    assert revealed["email"] == u.email and revealed["name"] == "Ada" and registered["payload"]["role"] == "owner"
    assert registered["payload"]["userId"] == u.id and registered["eventId"] and registered["occurredOn"]
    text = b"".join(orjson.dumps(e["payload"]) for e in events).decode()
    assert PASSWORD not in text and "argon2" not in text and "code" not in text.lower()
    assert len({e["eventId"] for e in events}) == len(events)


async def test_erasing_users_makes_their_personal_data_unreadable_everywhere(
        stack: Stack, inbox: Inbox, clients: list, kafka: KafkaSettings, pg: asyncpg.Pool) -> None:
    admin = await owner(stack, inbox, clients)
    erased, kept = await agent_of(stack, admin, clients), await agent_of(stack, admin, clients)
    other = await owner(stack, inbox, clients)
    # Only users of the tenant, only the owner/admins (or the user itself), never an API key.
    problem(await other.http.delete(f"/users/{erased.id}"), 404)
    problem(await kept.http.delete(f"/users/{erased.id}"), 403)
    problem(await admin.http.delete("/users/not-a-uuid"), 404)

    assert (await admin.http.delete(f"/users/{erased.id}")).status_code == 204
    assert (await admin.http.delete(f"/users/{erased.id}")).status_code == 204  # idempotent
    fresh = anon(stack)
    clients.append(fresh)
    problem(await login(fresh, erased.email), 401)
    problem(await erased.http.get("/users/me"), 401)  # its access token ended at once
    # Its own account deletion, for the owner itself.
    assert (await other.http.delete("/users/me")).status_code == 204
    problem(await login(fresh, other.email), 401)

    topic = f"{kafka.topic_prefix}.identity.events"

    async def published() -> list[dict[str, Any]]:
        events = await identity_events(kafka.bootstrap_servers, topic)
        done = {e["payload"].get("userId") for e in events if e["type"] == "user.erased"}
        return events if {erased.id, other.id} <= done else []

    events = await eventually(published, timeout=30)
    raw = orjson.dumps(events).decode()
    for gone in (erased, other):
        assert gone.email not in raw
    revealer = pii.Revealer(pg)
    by_user = {e["payload"]["userId"]: await revealer.reveal(e["payload"]) for e in events
               if e["type"] in ("user.created", "user.registered")}
    assert by_user[erased.id]["email"] == pii.ERASED and by_user[erased.id]["name"] == pii.ERASED
    assert by_user[other.id]["email"] == pii.ERASED
    assert by_user[kept.id]["email"] == kept.email  # others are untouched
    # Nor is it left in the database: the row is anonymized and the key is gone.
    row = await pg.fetchrow("SELECT email, name FROM users WHERE id = $1", uuid.UUID(erased.id))
    assert row is not None and erased.email not in row["email"] and row["name"] == pii.ERASED
    assert await pg.fetchval("SELECT count(*) FROM pii_keys WHERE subject_id = $1", erased.id) == 0


async def tables_containing(pg: asyncpg.Pool, needle: str) -> list[str]:
    """Every ``schema.table.column`` of the database (read models in every ``rm_v*`` schema included) whose
    text, JSON, array or bytes holds ``needle``, case-insensitively."""
    columns = await pg.fetch(
        """SELECT c.table_schema, c.table_name, c.column_name, c.data_type
             FROM information_schema.columns c
             JOIN information_schema.tables t USING (table_schema, table_name)
            WHERE t.table_type = 'BASE TABLE' AND c.table_schema NOT IN ('pg_catalog', 'information_schema')
              AND c.table_schema NOT LIKE 'pg\\_%'
              AND c.data_type IN ('text', 'character varying', 'character', 'json', 'jsonb', 'ARRAY', 'bytea')""")
    assert any(c["table_name"] == "users" for c in columns) and any(c["table_name"] == "rm_messages" for c in columns)
    found = []
    for c in columns:
        name = ".".join('"' + str(c[k]).replace('"', '""') + '"' for k in ("table_schema", "table_name", "column_name"))
        column = name.rsplit(".", 1)[1]
        if c["data_type"] == "bytea":  # raw bytes (e.g. dead-lettered records): the needle as UTF-8 bytes
            where = f"position(convert_to($1, 'UTF8') in {column}) > 0"
        else:
            where = f"strpos(lower({column}::text), $1) > 0"
        table = name.rsplit(".", 1)[0]
        if await pg.fetchval(f"SELECT EXISTS (SELECT 1 FROM {table} WHERE {where})", needle.lower()):
            found.append(f"{c['table_schema']}.{c['table_name']}.{c['column_name']}")
    return found


async def run_module(env: dict[str, str], *argv: str) -> str:
    """``python -m …`` as an operator runs it (the projector's and the campaign runner's replays)."""
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", *argv, env={**os.environ, **env}, cwd=REPO,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), 240)
    assert proc.returncode == 0, out.decode(errors="replace")
    return out.decode(errors="replace")


async def test_an_erased_email_is_nowhere_after_replaying_every_read_model(
        stack: Stack, inbox: Inbox, clients: list, kafka: KafkaSettings, pg: asyncpg.Pool, infra: str) -> None:
    """Issue 17's erase test: erase users, rebuild every read model from the log, then look for their e-mail in
    every text column of every table, and in every frame the tenant's WebSockets received across it all."""
    admin = await owner(stack, inbox, clients)
    agent, kept = await agent_of(stack, admin, clients), await agent_of(stack, admin, clients)
    solo = await owner(stack, inbox, clients)  # erases itself; its verification mail went out
    # The scan sees what is there: before the erasure, the addresses are in the database.
    assert "public.users.email" in await tables_containing(pg, agent.email)
    assert "public.mail_outbox.recipient" in await tables_containing(pg, solo.email)

    contact = new_phone()
    admin_ws = f"{stack.ws_url}/ws/sessions?accessToken={admin.access}"
    agent_ws = f"{stack.ws_url}/ws/sessions?accessToken={agent.access}"
    async with WsCollector(admin_ws) as ws_admin, WsCollector(agent_ws) as ws_agent:
        sid, _ = await link_session(stack, admin.as_tenant(), ws_admin)
        r = await admin.http.post(f"/agents/{agent.id}/chats", json={"chatJid": contact})
        assert r.status_code == 201, r.text

        async def send(who: User, text: str) -> None:
            r = await who.http.post(f"/sessions/{sid}/messages", json={"to": contact, "content": text})
            assert r.status_code == 202, r.text
            command = r.json()["commandId"]
            await ws_admin.wait_for(lambda e: e["type"] == "session.messages.upsert"
                                    and e["payload"].get("requestId") == command)

        await send(agent, "hola, soy su agente")  # the erased agent's own work stays; its identity does not
        assert (await admin.http.delete(f"/users/{agent.id}")).status_code == 204
        assert (await solo.http.delete("/users/me")).status_code == 204
        await send(admin, "seguimos")

        topic = f"{kafka.topic_prefix}.identity.events"

        async def erasures_published() -> bool:
            events = await identity_events(kafka.bootstrap_servers, topic)
            return {agent.id, solo.id} <= {e["payload"].get("userId") for e in events if e["type"] == "user.erased"}

        await eventually(erasures_published, timeout=30)
        # Replay everything: every read model rebuilt from offset 0 of its topic.
        projector_env = stack.procs["projector"].env
        await run_module(projector_env, "projector", "replay")
        await run_module(service_env("CAMPAIGN_RUNNER_", kafka, infra), "campaign_runner", "replay")
        await send(admin, "después de la reconstrucción")  # the live projection and socket go on

    frames = orjson.dumps(ws_admin.events + ws_agent.events).decode().lower()
    assert len(ws_admin.events) > 10
    for gone in (agent, solo):
        assert gone.email.lower() not in frames
        assert await tables_containing(pg, gone.email) == []
    assert "public.users.email" in await tables_containing(pg, kept.email)  # others are untouched
    # The rebuilt read model still has the erased agent's message (the work stays, the person goes).
    r = await admin.http.get(f"/chats/{contact}@s.whatsapp.net/messages", params={"sessionId": sid})
    assert r.status_code == 200 and "hola, soy su agente" in [m.get("text") for m in r.json()["messages"]]


async def identity_events(bootstrap: str, topic: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for record in await read_all(bootstrap, topic):
        event = orjson.loads(record.value)
        assert dict(record.headers)["ce_id"].decode() == event["eventId"]
        out.append(event)
    return out


async def test_api_keys_for_machines(stack: Stack, inbox: Inbox, clients: list, tenant_factory: Any) -> None:
    admin = await owner(stack, inbox, clients)
    r = await admin.http.post("/sessions", json={})
    assert r.status_code == 202
    sid = r.json()["sessionId"]
    other_sid = (await admin.http.post("/sessions", json={})).json()["sessionId"]

    r = await admin.http.post("/api-keys", json={"name": "erp"})
    assert r.status_code == 201 and r.json()["key"].startswith("zs_live_"), r.text
    key, key_id = r.json()["key"], r.json()["id"]
    scoped = (await admin.http.post("/api-keys", json={"name": "lima", "sessionIds": [sid]})).json()
    problem(await admin.http.post("/api-keys", json={"name": "x", "sessionIds": [str(uuid.uuid4())]}), 404)
    problem(await admin.http.post("/api-keys", json={"name": "x", "sessionIds": ["nope"]}), 422)

    listed = (await admin.http.get("/api-keys")).json()["apiKeys"]
    assert {k["id"] for k in listed} == {key_id, scoped["id"]}
    assert key not in (await admin.http.get("/api-keys")).text and all(k["last4"] for k in listed)

    async with httpx.AsyncClient(base_url=stack.api_url, headers={"Authorization": f"Bearer {key}"}) as machine:
        # The session view comes from the read model, which may lag the 202 by a moment.
        async def projected() -> bool:
            return (await machine.get(f"/sessions/{other_sid}")).status_code == 200

        await eventually(projected)
        problem(await machine.get("/api-keys"), 403)  # machines do not manage credentials
        problem(await machine.post("/agents", json={}), 403)
        problem(await machine.get("/users/me"), 403)
    async with httpx.AsyncClient(base_url=stack.api_url, headers={"X-Api-Key": scoped["key"]}) as machine:
        assert (await machine.post(f"/sessions/{sid}/stop")).status_code == 202
        problem(await machine.get(f"/sessions/{other_sid}"), 404)
        problem(await machine.post(f"/sessions/{other_sid}/stop"), 404)
        problem(await machine.post("/sessions", json={}), 403)
        problem(await machine.get("/chats", params={"sessionId": other_sid}), 404)

    # Another tenant cannot see or revoke them.
    b = await tenant_factory()
    problem(await b.http.get("/api-keys"), 403)
    b_owner = await owner(stack, inbox, clients)
    problem(await b_owner.http.delete(f"/api-keys/{key_id}"), 404)
    assert all(k["id"] not in (key_id, scoped["id"]) for k in (await b_owner.http.get("/api-keys")).json()["apiKeys"])

    assert (await admin.http.delete(f"/api-keys/{key_id}")).status_code == 204
    async with httpx.AsyncClient(base_url=stack.api_url, headers={"Authorization": f"Bearer {key}"}) as machine:
        problem(await machine.get("/sessions"), 401)
    assert next(k for k in (await admin.http.get("/api-keys")).json()["apiKeys"] if k["id"] == key_id)["revokedAt"]
    problem(await admin.http.delete(f"/api-keys/{uuid.uuid4()}"), 404)


async def test_agents_see_and_act_only_on_assigned_chats(stack: Stack, inbox: Inbox, clients: list,
                                                         tenant_factory: Any) -> None:
    admin = await owner(stack, inbox, clients)
    ws_admin_url = f"{stack.ws_url}/ws/sessions?accessToken={admin.access}"
    async with WsCollector(ws_admin_url) as ws_admin:  # JWTs work on the WebSocket too
        sid, _ = await link_session(stack, admin.as_tenant(), ws_admin)
    agent = await agent_of(stack, admin, clients)
    mine, theirs = new_phone(), new_phone()
    mine_jid, theirs_jid = f"{mine}@s.whatsapp.net", f"{theirs}@s.whatsapp.net"
    r = await admin.http.post(f"/agents/{agent.id}/chats", json={"chatJid": mine})
    assert r.status_code == 201 and r.json()["chatJid"] == mine_jid
    assert (await admin.http.get(f"/agents/{agent.id}/chats")).json()["chats"][0]["chatJid"] == mine_jid
    listed = (await admin.http.get("/agents")).json()["agents"]
    assert [a["id"] for a in listed] == [agent.id]

    agent_ws_url = f"{stack.ws_url}/ws/sessions?accessToken={agent.access}"
    async with WsCollector(agent_ws_url) as ws_agent, WsCollector(ws_admin_url) as ws_admin:
        snap = ws_agent.of_type("session.snapshot")[0]["payload"]["session"]
        assert snap["id"] == sid and snap["qr"] is None
        # The admin writes to both chats; the scripted contacts answer.
        for phone in (theirs, mine):
            r = await admin.http.post(f"/sessions/{sid}/messages", json={"to": phone, "content": "hola"})
            assert r.status_code == 202, r.text
        admin_cmd = r.json()["commandId"]
        for jid in (theirs_jid, mine_jid):
            await ws_admin.wait_for(lambda e, j=jid: e["type"] == "session.messages.upsert"
                                    and not e["payload"]["messages"][0]["fromMe"]
                                    and e["payload"]["messages"][0]["remoteJid"] == j)
        await ws_agent.wait_for(lambda e: e["type"] == "session.messages.upsert"
                                and not e["payload"]["messages"][0]["fromMe"]
                                and e["payload"]["messages"][0]["remoteJid"] == mine_jid)

        # Queries: only the assigned chat.
        async def chats_projected() -> bool:
            r = await admin.http.get("/chats")
            return {mine_jid, theirs_jid} <= {c["jid"] for c in r.json()["chats"]}

        await eventually(chats_projected)
        r = await agent.http.get("/chats")
        assert r.status_code == 200 and [c["jid"] for c in r.json()["chats"]] == [mine_jid], r.text
        assert (await agent.http.get(f"/chats/{mine_jid}/messages")).status_code == 200
        assert all(c["id"] != theirs_jid for c in (await agent.http.get("/contacts")).json()["contacts"])
        assert (await agent.http.get(f"/sessions/{sid}")).json()["qr"] is None

        # Commands on its chat work; the agent's own command outcome is readable, the admin's is not.
        r = await agent.http.post(f"/chats/{mine_jid}/messages", json={"content": "from the agent"})
        assert r.status_code == 202, r.text
        agent_cmd = r.json()["commandId"]

        async def outcome() -> bool:
            return (await agent.http.get(f"/commands/{agent_cmd}")).status_code == 200

        await eventually(outcome)
        problem(await agent.http.get(f"/commands/{admin_cmd}"), 404)

        # Every route on the unassigned chat, and every admin route: 403/404, never data.
        theirs_msg = next(e for e in ws_admin.of_type("session.messages.upsert")
                          if e["payload"]["messages"][0]["remoteJid"] == theirs_jid)["payload"]["messages"][0]["id"]
        forbidden = [
            ("GET", f"/chats/{theirs_jid}/messages", None),
            ("POST", f"/chats/{theirs_jid}/messages", {"content": "x"}),
            ("POST", f"/chats/{mine_jid}/messages", {"forwardMessageId": theirs_msg}),
            ("POST", f"/sessions/{sid}/messages", {"to": theirs, "content": "x"}),
            ("POST", f"/chats/{theirs_jid}/read", {"messageIds": [theirs_msg]}),
            ("PATCH", f"/chats/{theirs_jid}/messages/{theirs_msg}", {"content": "x"}),
            ("DELETE", f"/chats/{theirs_jid}/messages/{theirs_msg}", None),
            ("POST", f"/chats/{theirs_jid}/messages/{theirs_msg}/reactions", {"emoji": "👍"}),
            ("POST", f"/chats/{theirs_jid}/presence", {"presence": "composing"}),
            ("POST", f"/chats/{theirs_jid}/presence/subscribe", {}),
            ("POST", "/sessions", {}),
            ("POST", f"/sessions/{sid}/stop", None),
            ("POST", f"/sessions/{sid}/start", None),
            ("DELETE", f"/sessions/{sid}", None),
            ("GET", "/agents", None),
            ("POST", "/agents", {"name": "x", "email": new_email(), "password": PASSWORD}),
            ("POST", f"/agents/{agent.id}/chats", {"chatJid": theirs}),
            ("DELETE", f"/agents/{agent.id}/chats/{mine_jid}", None),
            ("POST", f"/agents/{agent.id}/disable", None),
            ("GET", "/api-keys", None),
            ("POST", "/api-keys", {"name": "x"}),
        ]
        for method, path, payload in forbidden:
            r = await agent.http.request(method, path, json=payload)
            problem(r, 403, 404)
            text = orjson.dumps({k: v for k, v in r.json().items() if k != "instance"}).decode()
            assert theirs_jid not in text and "hola" not in text

        # Session status reaches the agent; the other chat's events never do.
        r = await admin.http.post(f"/sessions/{sid}/stop")
        assert r.status_code == 202
        await ws_agent.wait_for(lambda e: e["type"] == "session.status.disconnected")
        await asyncio.sleep(1)
        for e in ws_agent.events:
            assert e["type"] not in ("session.qr.updated", "session.created", "session.deleted",
                                     "session.command.succeeded", "session.command.failed"), e["type"]
            assert theirs_jid not in orjson.dumps(e).decode(), e
        assert ws_admin.of_type("session.messages.update")  # the admin got the rest

        # Unassigning takes effect on HTTP at once.
        assert (await admin.http.delete(f"/agents/{agent.id}/chats/{mine_jid}")).status_code == 204
        problem(await agent.http.get(f"/chats/{mine_jid}/messages"), 403)
        assert (await agent.http.get("/chats")).json()["chats"] == []

    # Isolation: another tenant (API key, and an owner's access token) with this tenant's ids.
    b_key = await tenant_factory()
    b_owner = await owner(stack, inbox, clients)
    for b_http in (b_key.http, b_owner.http):
        walk = [
            ("GET", f"/sessions/{sid}", None), ("POST", f"/sessions/{sid}/start", None),
            ("POST", f"/sessions/{sid}/stop", None), ("DELETE", f"/sessions/{sid}", None),
            ("POST", f"/sessions/{sid}/messages", {"to": mine, "content": "x"}),
            ("GET", f"/chats/{mine_jid}/messages?sessionId={sid}", None),
            ("GET", f"/chats?sessionId={sid}", None), ("GET", f"/contacts?sessionId={sid}", None),
            ("POST", f"/chats/{mine_jid}/messages", {"content": "x", "sessionId": sid}),
            ("POST", f"/chats/{mine_jid}/read", {"messageIds": ["x"], "sessionId": sid}),
            ("PATCH", f"/chats/{mine_jid}/messages/x", {"content": "x", "sessionId": sid}),
            ("DELETE", f"/chats/{mine_jid}/messages/x?sessionId={sid}", None),
            ("POST", f"/chats/{mine_jid}/messages/x/reactions", {"emoji": "x", "sessionId": sid}),
            ("POST", f"/chats/{mine_jid}/presence", {"presence": "paused", "sessionId": sid}),
            ("POST", f"/chats/{mine_jid}/presence/subscribe", {"sessionId": sid}),
            ("GET", f"/commands/{admin_cmd}", None), ("GET", f"/commands/{agent_cmd}", None),
            ("GET", f"/agents/{agent.id}/chats", None),
            ("POST", f"/agents/{agent.id}/chats", {"chatJid": mine}),
            ("DELETE", f"/agents/{agent.id}/chats/{mine_jid}", None),
            ("POST", f"/agents/{agent.id}/disable", None), ("POST", f"/agents/{agent.id}/enable", None),
        ]
        for method, path, payload in walk:
            r = await b_http.request(method, path, json=payload)
            problem(r, 403, 404)
            text = orjson.dumps({k: v for k, v in r.json().items() if k != "instance"}).decode()
            assert sid not in text and mine_jid not in text and "hola" not in text
        # Listings of B never contain A's things.
        for path in ("/sessions",):
            assert sid not in (await b_http.get(path)).text
    assert admin.id not in (await b_owner.http.get("/agents")).text
    # A's tokens used against B: B's ids are as unknown to A.
    b_sid = (await b_owner.http.post("/sessions", json={})).json()["sessionId"]
    problem(await admin.http.get(f"/sessions/{b_sid}"), 404)
    problem(await agent.http.get(f"/sessions/{b_sid}"), 404)

    # Disabling the agent ends its access token and its socket.
    async with WsCollector(agent_ws_url) as ws_agent:
        assert (await admin.http.post(f"/agents/{agent.id}/disable")).status_code == 200
        problem(await agent.http.get("/chats"), 401)
        problem(await login(agent.http, agent.email), 401)

        async def closed() -> bool:
            assert ws_agent._task is not None
            return ws_agent._task.done()  # the reader ends when the server closes the socket

        await eventually(closed, timeout=10)
    with pytest.raises((ConnectionClosed, InvalidStatus)):  # refused at the handshake
        async with connect(agent_ws_url, open_timeout=10) as conn:
            await conn.recv()
