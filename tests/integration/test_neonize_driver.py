"""``NeonizeDriver`` without WhatsApp: no-network behaviour, guards, worker supervision.

* Unreachable WhatsApp is made deterministic with the driver's ``proxy`` option: a closed port
  (refused at once) or a black hole (accepts, never answers: the dial hangs).
* Supervision is tested with a fake host (``FakeHost``) loaded in the worker processes instead
  of neonize (``host_factory``), so a crash can be provoked on demand.
* Media calls are tested on a real ``SessionHost`` whose neonize client is replaced by
  ``FakeMediaClient`` (upload/send/download answer with real neonize protobufs), and against a
  real worker process for the guards.
* ``test_live_smoke`` runs only when ``ZAPSTREAM_NEONIZE_LIVE_SESSION`` names a linked session.

``NeonizeAdapter`` at the bottom is the adapter for the shared contract suite.
"""

from __future__ import annotations

import asyncio
import base64
import importlib.util
import os
import shutil
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

from neonize.exc import DownloadError, UploadError  # noqa: E402
from neonize.proto import Neonize_pb2 as N  # noqa: E402
from neonize.proto.waE2E import WAWebProtobufsE2E_pb2 as E  # noqa: E402
from neonize.utils.enum import MediaType  # noqa: E402
from PIL import Image  # noqa: E402

from session_runner.drivers import neonize_mapping as nm  # noqa: E402
from session_runner.drivers.neonize_driver import NeonizeDriver  # noqa: E402
from session_runner.drivers.neonize_worker import SessionHost, _Session, media_preview  # noqa: E402
from session_runner.drivers.port import (  # noqa: E402
    Connected,
    Disconnected,
    DriverError,
    DriverEvent,
    IncomingMedia,
    OutcomeUnknown,
    OutgoingMedia,
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
        driver.send_media(
            sid, to, OutgoingMedia("/nonexistent.png", "image", "image/png", 1), message_id="m"
        ),
        driver.download_media(sid, IncomingMedia("image", "image/png", "nz1:"), "/tmp/never-written"),
    ]
    for call in calls:
        with pytest.raises(DriverError, match="not connected"):
            await call
    await driver.ack(sid, 1)  # no-op
    await driver.disconnect(sid)  # idempotent
    assert driver.supports_client_message_ids is False


# ------------------------------------------------------------------------------ media

ME, ALICE = "5511999990000", "5511988887777"
TS = 1_717_000_000


def png(path: Path, size: tuple[int, int] = (64, 48)) -> Path:
    Image.new("RGB", size, (200, 30, 30)).save(path, format="PNG")
    return path


def an_image_handle() -> str:
    handle = nm.media_handle(
        E.Message(imageMessage=E.ImageMessage(directPath="/v/t62/x", mediaKey=b"k" * 32))
    )
    assert handle is not None
    return handle


async def test_media_calls_without_a_connection_fail_fast_and_the_worker_survives(
    drivers: list[NeonizeDriver], tmp_path: Path
) -> None:
    driver = new_driver(drivers, tmp_path, proxy=f"http://127.0.0.1:{free_port()}", connect_timeout=10)
    sid, to = "nz-media-offline", f"{ALICE}@s.whatsapp.net"
    with pytest.raises(DriverError, match="WhatsApp"):
        await driver.connect(sid, Recorder())
    (worker,) = driver._workers  # up, with the real neonize loaded
    media = OutgoingMedia(str(png(tmp_path / "p.png")), "image", "image/png", 1)
    incoming = IncomingMedia("image", "image/png", an_image_handle())
    dest = tmp_path / "out.bin"
    started = time.monotonic()

    with pytest.raises(DriverError, match="not connected"):
        await driver.send_media(sid, to, media, message_id="m1", reply_to_id="r", forwarded=True)
    with pytest.raises(DriverError, match="not connected"):
        await driver.download_media(sid, incoming, str(dest))
    # Past the driver's own check, the worker refuses too, before any native call: one for a
    # client that is not logged in would panic Go and take the worker down.
    with pytest.raises(DriverError, match="not connected"):
        await worker.call(
            "send_media", session_id=sid, to_jid=to, media=media, reply_to_id=None, forwarded=False
        )
    with pytest.raises(DriverError, match="not connected"):
        await worker.call("download_media", session_id=sid, handle=incoming.handle, dest_path=str(dest))

    assert time.monotonic() - started < 5
    assert worker.alive and worker.process.is_alive()
    await worker.call("disconnect", session_id=sid)  # still answering
    assert not dest.exists()


class FakeMediaClient:
    """The parts of neonize's ``NewAClient`` that media calls use; answers with real protobufs."""

    def __init__(
        self,
        *,
        upload_error: Exception | None = None,
        send_delay: float = 0.0,
        download: bytes = b"",
        download_error: Exception | None = None,
    ) -> None:
        self.upload_error, self.send_delay = upload_error, send_delay
        self.download, self.download_error = download, download_error
        self.on_upload: Any = None
        self.uploads: list[tuple[bytes, Any]] = []
        self.sent: list[tuple[N.JID, E.Message]] = []
        self.downloads: list[E.Message] = []

    async def upload(self, binary: bytes, media_type: Any = None) -> N.UploadResponse:
        self.uploads.append((binary, media_type))
        if self.on_upload is not None:
            self.on_upload()
        if self.upload_error is not None:
            raise self.upload_error
        return N.UploadResponse(
            url="https://mmg.whatsapp.net/v/t62/up.enc",
            DirectPath="/v/t62/up.enc",
            MediaKey=b"m" * 32,
            FileEncSHA256=b"e" * 32,
            FileSHA256=b"s" * 32,
            FileLength=len(binary),
        )

    async def send_message(self, to: N.JID, message: E.Message) -> N.SendResponse:
        self.sent.append((to, message))
        await asyncio.sleep(self.send_delay)
        return N.SendResponse(ID="3EB0SENT", Timestamp=TS)

    async def download_any(self, message: E.Message) -> bytes:
        self.downloads.append(message)
        if self.download_error is not None:
            raise self.download_error
        return self.download

    async def stop(self) -> None:
        pass


def host_with(client: FakeMediaClient, *, state: str = "online", request_timeout: float = 5.0) -> SessionHost:
    """A real SessionHost holding session ``s1`` on ``client`` (logged in unless ``state`` says)."""
    host = SessionHost(lambda sid, event: None, request_timeout=request_timeout)
    me = N.Device(JID=N.JID(User=ME, Server="s.whatsapp.net", Device=3)) if state == "online" else None
    host._sessions["s1"] = _Session("s1", client, state=state, me=me)
    return host


async def test_send_image_uploads_as_image_and_quotes_like_a_text(tmp_path: Path) -> None:
    client = FakeMediaClient()
    host = host_with(client)
    alice = N.JID(User=ALICE, Server="s.whatsapp.net", Device=2)
    host._sessions["s1"].remember("ORIG1", alice, alice, E.Message(conversation="q?"))
    path = png(tmp_path / "photo.png", (640, 480))
    media = OutgoingMedia(str(path), "image", "image/png", path.stat().st_size, caption="look")

    result = await host.send_media("s1", f"{ALICE}@s.whatsapp.net", media, "ORIG1", True)

    assert result == SendResult(message_id="3EB0SENT", timestamp=TS)
    assert client.uploads == [(path.read_bytes(), MediaType.MediaImage)]
    ((to, message),) = client.sent
    assert (to.User, to.Server) == (ALICE, "s.whatsapp.net")
    image = message.imageMessage
    assert (image.caption, image.mimetype, image.fileLength) == ("look", "image/png", path.stat().st_size)
    assert (image.width, image.height) == (640, 480)  # read from the file: the caller left them out
    assert image.JPEGThumbnail.startswith(b"\xff\xd8")
    assert (image.directPath, image.mediaKey) == ("/v/t62/up.enc", b"m" * 32)
    ctx = image.contextInfo
    assert (ctx.stanzaID, ctx.participant, ctx.isForwarded) == ("ORIG1", f"{ALICE}@s.whatsapp.net", True)
    assert ctx.quotedMessage == E.Message(conversation="q?")
    assert "3EB0SENT" in host._sessions["s1"].messages  # can be quoted, revoked, reacted to


async def test_voice_note_and_document_upload_with_their_kind_media_type(tmp_path: Path) -> None:
    client = FakeMediaClient()
    host = host_with(client)
    note = tmp_path / "note.ogg"
    note.write_bytes(b"OggS" + bytes(200))
    voice = OutgoingMedia(str(note), "audio", "audio/ogg", 204, ptt=True, duration=3, caption="dropped")
    doc = tmp_path / "scratch-name"
    doc.write_bytes(b"%PDF-1.4\n" + bytes(100))
    pdf = OutgoingMedia(str(doc), "document", "application/pdf", 109, file_name="invoice.pdf", caption="here")

    await host.send_media("s1", ALICE, voice, None, False)
    await host.send_media("s1", ALICE, pdf, None, False)

    assert [t for _, t in client.uploads] == [MediaType.MediaAudio, MediaType.MediaDocument]
    audio = client.sent[0][1].audioMessage
    assert (audio.PTT, audio.seconds, audio.mimetype) == (True, 3, "audio/ogg; codecs=opus")
    assert not audio.HasField("contextInfo")
    document = client.sent[1][1].documentMessage
    assert (document.fileName, document.mimetype, document.caption) == (
        "invoice.pdf",
        "application/pdf",
        "here",
    )


async def test_send_media_failures_map_like_send_text(tmp_path: Path) -> None:
    photo = png(tmp_path / "p.png")
    media = OutgoingMedia(str(photo), "image", "image/png", photo.stat().st_size)

    client = FakeMediaClient()
    host = host_with(client)
    with pytest.raises(DriverError, match="cannot read media file") as missing:
        await host.send_media(
            "s1", ALICE, OutgoingMedia(str(tmp_path / "gone.png"), "image", "image/png", 1), None, False
        )
    (tmp_path / "empty.png").touch()
    with pytest.raises(DriverError, match="is empty") as empty:
        await host.send_media(
            "s1", ALICE, OutgoingMedia(str(tmp_path / "empty.png"), "image", "image/png", 0), None, False
        )
    assert not isinstance(missing.value, OutcomeUnknown) and not isinstance(empty.value, OutcomeUnknown)
    assert client.uploads == [] and client.sent == []

    refused = FakeMediaClient(upload_error=UploadError("media upload failed: 403"))
    with pytest.raises(DriverError, match="media upload failed") as upload:
        await host_with(refused).send_media("s1", ALICE, media, None, False)
    assert not isinstance(upload.value, OutcomeUnknown)  # nothing was sent
    assert refused.sent == []

    # A disconnect() while uploading: sending on the stopped client would panic Go, so nothing is sent.
    racing = FakeMediaClient()
    racing_host = host_with(racing)
    racing.on_upload = lambda: racing_host._sessions.pop("s1")
    with pytest.raises(DriverError, match="not connected"):
        await racing_host.send_media("s1", ALICE, media, None, False)
    assert len(racing.uploads) == 1 and racing.sent == []

    slow = FakeMediaClient(send_delay=5)
    with pytest.raises(OutcomeUnknown, match="no answer to send"):
        await host_with(slow, request_timeout=0.3).send_media("s1", ALICE, media, None, False)


async def test_media_calls_need_a_logged_in_session(tmp_path: Path) -> None:
    client = FakeMediaClient()
    host = host_with(client, state="pairing")
    photo = png(tmp_path / "p.png")
    media = OutgoingMedia(str(photo), "image", "image/png", 1)

    with pytest.raises(DriverError, match="not logged in"):
        await host.send_media("s1", ALICE, media, None, False)
    with pytest.raises(DriverError, match="not logged in"):
        await host.download_media("s1", an_image_handle(), str(tmp_path / "x"))
    with pytest.raises(DriverError, match="not connected"):
        await host.send_media("other", ALICE, media, None, False)
    assert client.uploads == [] and client.sent == [] and client.downloads == []


async def test_download_writes_the_file_and_returns_its_size(tmp_path: Path) -> None:
    image = E.ImageMessage(
        URL="https://mmg.whatsapp.net/d.enc", directPath="/v/t62/d.enc", mediaKey=b"k" * 32, fileLength=11
    )
    media = nm.message_media(E.Message(imageMessage=image))
    assert media is not None
    client = FakeMediaClient(download=b"hello bytes")
    dest = tmp_path / "media"

    size = await host_with(client).download_media("s1", media.handle, str(dest))

    assert size == 11 and dest.read_bytes() == b"hello bytes"
    assert client.downloads == [E.Message(imageMessage=image)]  # what download_any needs, as received
    assert await asyncio.to_thread(os.listdir, tmp_path) == ["media"]  # no temporary file left behind


async def test_download_failures_are_driver_errors(tmp_path: Path) -> None:
    dest = tmp_path / "media"
    gone = FakeMediaClient(download_error=DownloadError("download failed with status code 410"))
    with pytest.raises(DriverError, match="status code 410") as expired:
        await host_with(gone).download_media("s1", an_image_handle(), str(dest))
    assert not isinstance(expired.value, OutcomeUnknown)

    client = FakeMediaClient(download=b"x")
    host = host_with(client)
    with pytest.raises(DriverError, match="not a neonize media handle"):
        await host.download_media("s1", "/v1/media/abc", str(dest))
    text_only = (
        nm.MEDIA_HANDLE_PREFIX + base64.b64encode(E.Message(conversation="hi").SerializeToString()).decode()
    )
    with pytest.raises(DriverError, match="corrupt"):
        await host.download_media("s1", nm.MEDIA_HANDLE_PREFIX + "Cg==", str(dest))  # cut short
    with pytest.raises(DriverError, match="holds no media"):
        await host.download_media("s1", text_only, str(dest))
    with pytest.raises(DriverError, match="cannot write"):
        await host.download_media("s1", an_image_handle(), str(tmp_path / "no-such-dir" / "media"))
    assert not dest.exists() and not (tmp_path / "no-such-dir").exists()


@pytest.mark.skipif(shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None, reason="needs ffmpeg")
async def test_video_preview_reads_thumbnail_size_and_duration_with_ffmpeg(tmp_path: Path) -> None:
    clip = tmp_path / "clip.mp4"
    args = ["-f", "lavfi", "-i", "testsrc=d=2:s=96x64", "-pix_fmt", "yuv420p"]
    cmd = ["ffmpeg", "-y", "-loglevel", "error", *args, str(clip)]
    await asyncio.to_thread(subprocess.run, cmd, check=True, timeout=60)

    preview = await media_preview(OutgoingMedia(str(clip), "video", "video/mp4", clip.stat().st_size))

    assert (preview.width, preview.height, preview.duration) == (96, 64, 2)
    assert preview.thumbnail is not None and preview.thumbnail.startswith(b"\xff\xd8")
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video")
    assert (await media_preview(OutgoingMedia(str(broken), "video", "video/mp4", 11))).thumbnail is None


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
        self, session_id: str, to_jid: str, text: str, reply_to_id: str | None, forwarded: bool,
        mentions: list[str] | None = None,
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

    async def contact_sends_media(self, contact: str, to: str, data: bytes, *, kind: str, mime: str,
                                  caption: str | None = None, file_name: str | None = None,
                                  ptt: bool = False) -> str:
        self._needs_phone("a contact sending media")
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
