"""The web console in a real headless Chromium (Debian's `chromium`, driven by playwright-core from Node)
against the real stack: the command API serving the built console, the gateway, runner, projector and the
simulator as processes.

The browser part is console/e2e/console.e2e.mjs; this test starts the stack, reads the verification mail
and hands the link to the browser. Screenshots of the main pages go to docs/console/; a failing run leaves
docs/console/failure-<step>.png.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import uuid
from pathlib import Path

import httpx
import pytest

from tests.conftest import Stack
from tests.e2e.test_auth import PASSWORD, Inbox, body, code_in, new_email, new_ip, user_id_in
from tests.e2e.test_campaigns import analytics, campaign_runner  # noqa: F401  (fixtures: the campaign services)

REPO = Path(__file__).resolve().parents[3]
CONSOLE = REPO / "console"
SHOTS = REPO / "docs" / "console"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")

pytestmark = pytest.mark.skipif(
    shutil.which("node") is None or not Path(CHROMIUM).exists(),
    reason="needs node and Debian's chromium (infra/bin/bootstrap.sh installs both)",
)


@pytest.fixture(scope="module")
def built_console() -> Path:
    """Builds the console unless it is there (`make test-browser` builds it first, with npm ci)."""
    if not (CONSOLE / "dist" / "index.html").is_file() or not (CONSOLE / "node_modules" / "playwright-core").is_dir():
        subprocess.run(["bash", str(REPO / "infra" / "bin" / "console.sh"), "build"], check=True)
    if not (CONSOLE / "node_modules" / "playwright-core").is_dir():
        pytest.skip("the console is not built: it needs Node.js 20.19+ (see infra/bin/console.sh)")
    return CONSOLE / "dist"


async def browser(step: str, stack: Stack, **env: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        "node", "e2e/console.e2e.mjs", step, cwd=CONSOLE,
        env=os.environ | {"BASE_URL": stack.api_url, "SIM_URL": stack.sim_url, "SHOTS_DIR": str(SHOTS),
                          "CHROMIUM": CHROMIUM} | env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await proc.communicate()
    text = out.decode()
    print(text)
    assert proc.returncode == 0, f"browser step {step} failed (screenshot: {SHOTS}/failure-{step}.png):\n{text}"
    return text


async def registered(stack: Stack, mailbox: Inbox) -> str:
    """A second tenant's owner, registered and verified over HTTP."""
    address = new_email("other")
    async with httpx.AsyncClient(base_url=stack.api_url, headers={"X-Forwarded-For": new_ip()}, timeout=15) as http:
        r = await http.post("/users", json={"name": "Other", "email": address, "password": PASSWORD})
        assert r.status_code == 202, r.text
        mail = await mailbox.wait(address)
        r = await http.post(f"/users/{user_id_in(mail)}/verify", json={"code": code_in(mail)})
        assert r.status_code == 200, r.text
    return address


@pytest.mark.usefixtures("campaign_runner", "analytics")
async def test_register_link_a_number_by_qr_chat_upload_campaign_dashboard_and_tenant_isolation(
        stack: Stack, mailbox: Inbox, built_console: Path) -> None:
    address = f"browser-{uuid.uuid4().hex[:10]}@example.com"
    await browser("register", stack, EMAIL=address, PASSWORD=PASSWORD)
    mail = await mailbox.wait(address)
    link = re.search(r"(/verify\?\S+)", body(mail))
    assert link, body(mail)
    other = await registered(stack, mailbox)
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=15) as http:
        campaigns = "/campaigns" in (await http.get("/openapi.json")).json()["paths"]
    out = await browser("main", stack, EMAIL=address, PASSWORD=PASSWORD, VERIFY_URL=stack.api_url + link.group(1),
                        OTHER_EMAIL=other, OTHER_PASSWORD=PASSWORD, CAMPAIGNS="1" if campaigns else "0")
    for check in ("QR image shown", "status turned connected", "sent message appeared", "ticks reached read",
                  "image uploaded and sent", "language switch", "second tenant sees no sessions"):
        assert check in out
    if campaigns:
        for check in ("CSV imported", "template previewed", "progress bar reached 100", "dashboard counts"):
            assert check in out
