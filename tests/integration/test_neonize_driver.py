"""``NeonizeDriver`` without WhatsApp: no-network behaviour, guards, worker supervision.

* Unreachable WhatsApp is made deterministic with the driver's ``proxy`` option: a closed port
  (refused at once) or a black hole (accepts, never answers: the dial hangs).
* Supervision is tested with a fake host (``FakeHost``) loaded in the worker processes instead
  of neonize (``host_factory``), so a crash can be provoked on demand.
* ``test_live_smoke`` runs only when ``ZAPSTREAM_NEONIZE_LIVE_SESSION`` names a linked session.

``NeonizeAdapter`` at the bottom is the adapter for the shared contract suite.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

if importlib.util.find_spec("neonize") is None:
    pytest.skip("neonize is not installed (session-runner's neonize dependency)", allow_module_level=True)

from session_runner.drivers.neonize_worker import import_neonize

import_neonize()  # the safe way: no download, bot badge off, neonize's import-time pipe leak absorbed

from session_runner.drivers.neonize_driver import NeonizeDriver  # noqa: E402
from session_runner.drivers.port import (  # noqa: E402
    Connected,
    Disconnected,
    DriverError,
    DriverEvent,
    OutcomeUnknown,
    QrCode,
    SendResult,
    WhatsAppDriver,
)

REPO = Path(__file__).resolve().parents[2]
LIVE_ENV = "ZAPSTREAM_NEONIZE_LIVE_SESSION"


class Recorder:
    def __init__(self) -> None:
        self.events: list[DriverEvent] = []
        self._changed = asyncio.Event()

    async def __call__(self, session_id: str, event: DriverEvent) -> None:
        self.events.append(event)
        self._changed.set()

    async def wait_for(
        self, kind: type[Any], pred: Any = None, *, since: int = 0, timeout: float = 10.0
    ) -> Any:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            for event in self.events[since:]:
                if isinstance(event, kind) and (pred is None or pred(event)):
                    return event
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise AssertionError(f"no {kind.__name__} within {timeout}s; got {self.events!r}")
            self._changed.clear()
            try:
                async with asyncio.timeout(remaining):
                    await self._changed.wait()
            except TimeoutError:
                pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def black_hole() -> Iterator[str]:
    """A proxy that accepts connections and never answers: the WhatsApp dial hangs."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                return
            held.append(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        server.close()
        for conn in held:
            conn.close()


@pytest.fixture
async def drivers(tmp_path: Path) -> AsyncIterator[list[NeonizeDriver]]:
    made: list[NeonizeDriver] = []
    yield made
    for driver in made:
        await driver.aclose()


def new_driver(made: list[NeonizeDriver], store: Path, **kwargs: Any) -> NeonizeDriver:
    driver = NeonizeDriver(str(store), **kwargs)
    made.append(driver)
    return driver


# --------------------------------------------------------------------- import / env


def test_import_downloads_nothing_and_disables_the_bot_badge() -> None:
    """Importing neonize the driver's way opens no socket and sets NEONIZE_BOT_TAG=off first."""
    code = (
        "import socket, os\n"
        "def refuse(*a, **k):\n"
        "    raise SystemExit('network used at import')\n"
        "socket.socket.connect = refuse\n"
        "socket.create_connection = refuse\n"
        "os.environ.pop('NEONIZE_BOT_TAG', None)\n"
        "from session_runner.drivers.neonize_worker import import_neonize\n"
        "import_neonize()\n"
        "import neonize.aioze.client\n"
        "print('BOT_TAG=' + os.environ['NEONIZE_BOT_TAG'])\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([*sys.path, str(REPO)])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "BOT_TAG=off" in out.stdout


# ---------------------------------------------------------------- no network, guards


async def test_unreachable_whatsapp_raises_fast(drivers: list[NeonizeDriver], tmp_path: Path) -> None:
    driver = new_driver(drivers, tmp_path, proxy=f"http://127.0.0.1:{free_port()}", connect_timeout=10)
    started = time.monotonic()

    with pytest.raises(DriverError, match=r"cannot connect to WhatsApp|no answer from WhatsApp"):
        await driver.connect("nz-refused", Recorder())

    assert time.monotonic() - started < 20  # worker start-up included
    with pytest.raises(DriverError):
        await driver.send_text("nz-refused", "1@s.whatsapp.net", "x", message_id="m1")


async def test_hanging_network_is_bounded_by_connect_timeout(
    drivers: list[NeonizeDriver], tmp_path: Path, black_hole: str
) -> None:
    driver = new_driver(drivers, tmp_path, proxy=black_hole, connect_timeout=3)
    started = time.monotonic()

    with pytest.raises(DriverError, match="no answer from WhatsApp within 3"):
        await driver.connect("nz-hang", Recorder())

    assert time.monotonic() - started < 15
    closing = time.monotonic()
    await driver.aclose()
    assert time.monotonic() - closing < 15  # a hung dial does not block shutdown


async def test_default_network_failure_is_a_driver_error(
    drivers: list[NeonizeDriver], tmp_path: Path
) -> None:
    """Whatever this machine's network does (no DNS, no route, or WhatsApp itself), connect is bounded."""
    driver = new_driver(drivers, tmp_path, connect_timeout=8)
    started = time.monotonic()
    rec = Recorder()
    try:
        await driver.connect("nz-default", rec)
    except DriverError as exc:
        assert "WhatsApp" in str(exc)
    else:  # this machine reaches WhatsApp: an unlinked device shows a QR code
        await rec.wait_for(QrCode)
        await driver.disconnect("nz-default")
    assert time.monotonic() - started < 25


async def test_calls_before_connect_raise_driver_error(drivers: list[NeonizeDriver], tmp_path: Path) -> None:
    driver = new_driver(drivers, tmp_path)
    sid, to = "nz-never", "5511988887777@s.whatsapp.net"
    calls = [
        driver.send_text(sid, to, "x", message_id="m"),
        driver.send_text(sid, to, "x", message_id="m", reply_to_id="r", forwarded=True),
        driver.edit_message(sid, to, "m", "y"),
        driver.revoke_message(sid, to, "m"),
        driver.react(sid, to, "m", "👍"),
        driver.mark_read(sid, to, ["m"]),
        driver.subscribe_presence(sid, to),
        driver.send_chat_presence(sid, to, "composing"),
        driver.pair_code(sid, "+5511988887777"),
        driver.logout(sid),
    ]
    for call in calls:
        with pytest.raises(DriverError, match="not connected"):
            await call
    await driver.ack(sid, 1)  # no-op
    await driver.disconnect(sid)  # idempotent
    assert driver.supports_client_message_ids is False


# ------------------------------------------------------------------------ supervision


class FakeHost:
    """Stands in for SessionHost in worker processes: QR on connect, ``"crash"`` kills the worker."""

    def __init__(self, emit: Any, **_: Any) -> None:
        self.emit = emit
        self.sessions: set[str] = set()

    async def connect(self, session_id: str, store: str, jid: str | None, new_device: bool) -> str:
        self.sessions.add(session_id)
        self.emit(session_id, QrCode(seq=0, code=f"2@{os.getpid()}", expires_at_ms=0))
        return "pairing"

    async def send_text(
        self, session_id: str, to_jid: str, text: str, reply_to_id: str | None, forwarded: bool
    ) -> SendResult:
        if text == "crash":
            os._exit(3)  # what a Go panic does to the process
        return SendResult(message_id=f"{os.getpid()}-{text}", timestamp=int(time.time()))

    async def disconnect(self, session_id: str) -> None:
        self.sessions.discard(session_id)

    async def aclose(self) -> None:
        self.sessions.clear()


async def test_crashed_worker_is_reported_restarted_and_isolated(
    drivers: list[NeonizeDriver], tmp_path: Path
) -> None:
    driver = new_driver(
        drivers,
        tmp_path,
        host_factory=f"{__name__}:FakeHost",
        sessions_per_worker=1,
        restart_initial_delay=0.2,
    )
    victim, bystander = Recorder(), Recorder()
    await driver.connect("nz-victim", victim)
    await driver.connect("nz-bystander", bystander)
    first_qr = await victim.wait_for(QrCode)
    mark = len(victim.events)

    with pytest.raises(OutcomeUnknown, match="worker crashed"):
        await driver.send_text("nz-victim", "1@s.whatsapp.net", "crash", message_id="m1")

    crashed = await victim.wait_for(Disconnected, since=mark)
    assert crashed.seq == 0 and crashed.reason.startswith("worker crashed (exit code 3)")
    again = await victim.wait_for(QrCode, since=mark, timeout=20)  # restarted and reconnected
    assert again.code != first_qr.code  # another process
    assert again.seq > first_qr.seq  # seq keeps growing across restarts
    ok = await driver.send_text("nz-victim", "1@s.whatsapp.net", "after", message_id="m2")
    assert ok.message_id.endswith("-after")
    other = await driver.send_text("nz-bystander", "1@s.whatsapp.net", "still here", message_id="m3")
    assert other.message_id.endswith("-still here")
    assert not [e for e in bystander.events if isinstance(e, Disconnected)]


# ------------------------------------------------------------------------------- live


async def test_live_smoke(drivers: list[NeonizeDriver], tmp_path: Path) -> None:
    """Against real WhatsApp: ``ZAPSTREAM_NEONIZE_LIVE_SESSION`` (a linked session id) and
    ``ZAPSTREAM_NEONIZE_STORE`` (its store: postgres:// DSN or directory). Sends one text to the
    account's own chat only when ``ZAPSTREAM_NEONIZE_LIVE_SEND=1``."""
    session_id = os.environ.get(LIVE_ENV)
    store = os.environ.get("ZAPSTREAM_NEONIZE_STORE")
    if not session_id or not store:
        pytest.skip(
            f"live neonize smoke test skipped: set {LIVE_ENV} to a linked session id and "
            "ZAPSTREAM_NEONIZE_STORE to its device store to run it against real WhatsApp"
        )
    driver = NeonizeDriver(store, connect_timeout=30)
    drivers.append(driver)
    rec = Recorder()
    await driver.connect(session_id, rec)
    connected = await rec.wait_for(Connected, timeout=60)
    assert connected.phone.isdigit()
    if os.environ.get("ZAPSTREAM_NEONIZE_LIVE_SEND") == "1":
        result = await driver.send_text(
            session_id, f"{connected.phone}@s.whatsapp.net", "zapstream live smoke test", message_id="unused"
        )
        assert result.message_id and result.timestamp > 0
    await driver.disconnect(session_id)


# --------------------------------------------------------------- contract-suite adapter


class _SkipWhenOffline(NeonizeDriver):
    """Turns "WhatsApp unreachable" on connect into a skip: the contract needs the real server."""

    async def connect(self, session_id: str, on_event: Any) -> None:
        try:
            await super().connect(session_id, on_event)
        except DriverError as exc:
            if "WhatsApp" in str(exc) and ("cannot connect" in str(exc) or "no answer" in str(exc)):
                pytest.skip(f"needs a network path to WhatsApp: {exc}")
            raise


class NeonizeAdapter:
    """Contract-suite adapter: real drivers; world actions need a real phone and skip."""

    name = "neonize"

    def __init__(self, store: str) -> None:
        self.store = store
        self._drivers: list[NeonizeDriver] = []

    def driver(self, request_timeout: float = 5.0) -> WhatsAppDriver:
        driver = _SkipWhenOffline(self.store, request_timeout=request_timeout, connect_timeout=15)
        self._drivers.append(driver)
        return driver

    def unreachable_driver(self) -> WhatsAppDriver:
        driver = NeonizeDriver(self.store, proxy=f"http://127.0.0.1:{free_port()}", connect_timeout=5)
        self._drivers.append(driver)
        return driver

    def new_phone(self) -> str:
        return "55119" + str(uuid.uuid4().int)[:8]

    def new_session_id(self) -> str:
        return f"nz-contract-{uuid.uuid4().hex[:8]}"

    @staticmethod
    def _needs_phone(what: str) -> None:
        pytest.skip(f"neonize: {what} needs a real phone and WhatsApp account")

    async def scan_qr(self, code: str, phone: str) -> None:
        self._needs_phone("scanning a QR code")

    async def pair(self, code: str) -> None:
        self._needs_phone("entering a pairing code")

    async def contact_says(self, contact: str, to: str, text: str) -> str:
        self._needs_phone("a contact writing")
        raise AssertionError("unreachable")

    async def configure_contact(self, phone: str, **flags: bool) -> None:
        self._needs_phone("a scripted contact")

    async def received_by(self, phone: str) -> list[dict[str, Any]]:
        self._needs_phone("reading a contact's inbox")
        raise AssertionError("unreachable")

    async def drop(self, session_id: str) -> None:
        self._needs_phone("dropping the server connection")

    async def logout_from_phone(self, session_id: str) -> None:
        self._needs_phone("unlinking from the phone")

    async def slow_network(self, ms: int) -> None:
        self._needs_phone("slowing WhatsApp down")

    async def aclose(self) -> None:
        for driver in self._drivers:
            await driver.aclose()
