"""zapstream_platform.mediaproc and tests.support.media_samples against the real ffmpeg/ffprobe.

ffmpeg is a system package that infra/bin/bootstrap.sh installs; when it is missing these tests
fail, never skip.
"""

from __future__ import annotations

import asyncio
import functools
import http.server
import socket
import subprocess
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.support import media_samples as samples
from zapstream_platform import mediaproc
from zapstream_platform.mediaproc import (
    MediaProcessingError,
    Probe,
    ffmpeg_available,
    is_voice_note_ready,
    probe,
    scratch_dir,
    to_voice_note,
)
from zapstream_platform.storage import sniff_mime

MP4_FORMAT = "mov,mp4,m4a,3gp,3g2,mj2"


def test_ffmpeg_is_installed() -> None:
    assert ffmpeg_available(), "ffmpeg/ffprobe missing: run infra/bin/bootstrap.sh (apt-get install ffmpeg)"


# ------------------------------------------------------------------------------------------- samples

SAMPLES: dict[str, tuple[Any, str, Probe]] = {
    "png": (samples.png_path, "image/png", Probe("png_pipe", "png", 64, 48, None)),
    "jpeg": (samples.jpeg_path, "image/jpeg", Probe("jpeg_pipe", "mjpeg", 64, 48, None)),
    "webp": (samples.webp_path, "image/webp", Probe("webp_pipe", "webp", 512, 512, None)),
    "mp4": (samples.mp4_path, "video/mp4", Probe(MP4_FORMAT, "h264", 160, 120, 2)),
    "mp3": (samples.mp3_path, "audio/mpeg", Probe("mp3", "mp3", None, None, 3)),
    "m4a": (samples.m4a_path, "audio/mp4", Probe(MP4_FORMAT, "aac", None, None, 3)),
    "wav": (samples.wav_path, "audio/wav", Probe("wav", "pcm_s16le", None, None, 3)),
    "ogg_opus": (samples.ogg_opus_path, "audio/ogg", Probe("ogg", "opus", None, None, 3)),
}


@pytest.mark.parametrize("name", list(SAMPLES))
async def test_probe_each_sample(name: str) -> None:
    path_of, mime, expected = SAMPLES[name]
    path = path_of()
    assert await probe(str(path)) == expected
    # The upload path sniffs the same type from the first bytes.
    assert sniff_mime(path.read_bytes()[:512]) == mime


def test_sample_bytes_match_paths_and_are_cached() -> None:
    assert samples.png() == samples.png_path().read_bytes()
    assert samples.png_path() is samples.png_path()
    assert samples.mp4(seconds=1, w=96, h=64) != samples.mp4()


async def test_sample_sizes_and_durations_follow_arguments() -> None:
    assert await probe(str(samples.png_path(320, 200))) == Probe("png_pipe", "png", 320, 200, None)
    # ffprobe picks jpeg_pipe or image2 for a JPEG depending on its content; both are still images.
    big_jpeg = await probe(str(samples.jpeg_path(640, 480)))
    assert big_jpeg.format in ("jpeg_pipe", "image2") and big_jpeg.duration is None
    assert (big_jpeg.codec, big_jpeg.width, big_jpeg.height) == ("mjpeg", 640, 480)
    assert await probe(str(samples.webp_path(96, 96))) == Probe("webp_pipe", "webp", 96, 96, None)
    assert await probe(str(samples.mp4_path(5, 320, 240))) == Probe(MP4_FORMAT, "h264", 320, 240, 5)
    assert (await probe(str(samples.mp3_path(7)))).duration == 7
    assert (await probe(str(samples.wav_path(1.5)))).duration == 2  # rounded up


def test_mp4_sample_is_faststart_h264_aac() -> None:
    data = samples.mp4()
    assert data[4:8] == b"ftyp"
    assert data.index(b"moov") < data.index(b"mdat")
    assert [s["codec_name"] for s in _streams(samples.mp4_path())["streams"]] == ["h264", "aac"]


def test_pdf_sample_is_a_well_formed_one_page_pdf() -> None:
    data = samples.pdf()
    assert sniff_mime(data[:512]) == "application/pdf"
    assert data.startswith(b"%PDF-1.4\n") and data.endswith(b"%%EOF\n")
    assert data.count(b"/Type /Page ") == 1
    xref_at = int(data.rsplit(b"startxref\n", 1)[1].split(b"\n", 1)[0])
    assert data[xref_at:].startswith(b"xref\n0 6\n")
    entries = data[xref_at:].split(b"\n")[3:8]
    for number, entry in enumerate(entries, start=1):
        offset = int(entry[:10])
        assert data[offset:].startswith(b"%d 0 obj\n" % number), (number, offset)
    assert samples.pdf_path().read_bytes() == data


# ------------------------------------------------------------------------------------------- probing


async def test_probe_reports_displayed_dimensions_of_a_rotated_video(tmp_path: Path) -> None:
    rotated = tmp_path / "portrait.mp4"
    _ffmpeg("-i", str(samples.mp4_path()), "-c", "copy", "-metadata:s:v:0", "rotate=90", str(rotated))
    assert await probe(str(rotated)) == Probe(MP4_FORMAT, "h264", 120, 160, 2)


async def test_probe_ignores_cover_art_of_an_mp3(tmp_path: Path) -> None:
    covered = tmp_path / "covered.mp3"
    _ffmpeg("-i", str(samples.mp3_path()), "-i", str(samples.jpeg_path()), "-map", "0", "-map", "1",
            "-c", "copy", "-disposition:v", "attached_pic", str(covered))
    assert await probe(str(covered)) == Probe("mp3", "mp3", None, None, 3)


async def test_probe_of_garbage_missing_and_odd_sources(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.dat"
    garbage.write_bytes(b"this is not media\n" * 200)
    with pytest.raises(MediaProcessingError) as caught:
        await probe(str(garbage))
    assert str(caught.value) == "unrecognised or corrupt media"
    assert caught.value.stderr  # what ffprobe said, for the logs
    with pytest.raises(MediaProcessingError, match="file not found"):
        await probe(str(tmp_path / "missing.mp4"))
    with pytest.raises(MediaProcessingError, match="unsupported source scheme"):
        await probe("ftp://127.0.0.1/x.mp4")
    # A path that looks like a protocol is still only a path.
    with pytest.raises(MediaProcessingError, match="file not found"):
        await probe(f"concat:{samples.mp3_path()}|{samples.mp3_path()}")


async def test_probe_over_http(tmp_path: Path) -> None:
    (tmp_path / "clip.mp4").write_bytes(samples.mp4())
    with _HttpServer(tmp_path) as base:
        assert await probe(f"{base}/clip.mp4?X-Amz-Signature=abc&x=1") == Probe(MP4_FORMAT, "h264", 160, 120, 2)
        with pytest.raises(MediaProcessingError) as caught:
            await probe(f"{base}/missing.mp4?X-Amz-Signature=secret")
    assert str(caught.value) == "could not fetch the media URL"
    with pytest.raises(MediaProcessingError, match=r"^could not fetch the media URL$"):
        await probe(f"http://127.0.0.1:{_closed_port()}/clip.mp4")


def test_is_voice_note_ready() -> None:
    assert is_voice_note_ready(Probe("ogg", "opus", None, None, 3))
    assert not is_voice_note_ready(Probe("ogg", "vorbis", None, None, 3))
    assert not is_voice_note_ready(Probe("matroska,webm", "opus", None, None, 3))
    assert not is_voice_note_ready(Probe(None, None, None, None, None))


# ---------------------------------------------------------------------------------------- conversion


@pytest.mark.parametrize("name", ["mp3", "m4a", "wav", "ogg_opus", "mp4"])
async def test_to_voice_note(name: str, tmp_path: Path) -> None:
    path_of, _, expected = SAMPLES[name]
    dst = tmp_path / "voice.ogg"
    result = await to_voice_note(str(path_of()), str(dst))
    assert is_voice_note_ready(result)
    assert result == Probe("ogg", "opus", None, None, expected.duration)
    assert await probe(str(dst)) == result
    info = _streams(dst)
    assert [(s["codec_type"], s["codec_name"], s["channels"], s["sample_rate"]) for s in info["streams"]] == [
        ("audio", "opus", 1, "48000")
    ]
    assert not info["format"].get("tags"), "metadata must be dropped"
    assert _names(tmp_path) == ["voice.ogg"]  # no temp file left
    kbit_s = dst.stat().st_size * 8 / 1000 / float(info["format"]["duration"])
    assert kbit_s < 48, kbit_s


async def test_to_voice_note_overwrites_dst(tmp_path: Path) -> None:
    dst = tmp_path / "voice.ogg"
    dst.write_bytes(b"old")
    await to_voice_note(str(samples.wav_path()), str(dst))
    assert dst.read_bytes().startswith(b"OggS")


@pytest.mark.parametrize(("make", "reason"), [
    (lambda d: _write(d / "garbage.mp3", b"\x00\x01garbage" * 5000), "unrecognised or corrupt media"),
    (lambda d: _write(d / "empty.wav", b""), "unrecognised or corrupt media"),
    (lambda d: samples.png_path(), "no audio stream"),
    (lambda d: samples.pdf_path(), "unrecognised or corrupt media"),
])
async def test_to_voice_note_rejects_undecodable_input(make: Any, reason: str, tmp_path: Path) -> None:
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    src = make(tmp_path)
    with pytest.raises(MediaProcessingError) as caught:
        await to_voice_note(str(src), str(out_dir / "voice.ogg"))
    assert str(caught.value) == reason
    assert str(tmp_path) not in str(caught.value)
    assert _names(out_dir) == []  # neither dst nor a partial temp file


async def test_to_voice_note_keeps_an_existing_dst_on_failure(tmp_path: Path) -> None:
    dst = tmp_path / "voice.ogg"
    dst.write_bytes(b"previous")
    with pytest.raises(MediaProcessingError):
        await to_voice_note(str(samples.png_path()), str(dst))
    assert dst.read_bytes() == b"previous"


# ------------------------------------------------------------------------------------------ timeouts


@pytest.fixture
async def stalled_url() -> AsyncIterator[str]:
    """An HTTP server that accepts and then never answers."""
    held: list[asyncio.StreamWriter] = []

    async def accept(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/media/clip.mp4"
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


@pytest.fixture
def children(monkeypatch: pytest.MonkeyPatch) -> list[asyncio.subprocess.Process]:
    """Every child process mediaproc starts during the test."""
    started: list[asyncio.subprocess.Process] = []
    real = asyncio.create_subprocess_exec

    async def spy(*args: Any, **kwargs: Any) -> asyncio.subprocess.Process:
        proc = await real(*args, **kwargs)
        started.append(proc)
        return proc

    monkeypatch.setattr(mediaproc.asyncio, "create_subprocess_exec", spy)
    return started


async def test_probe_timeout_kills_the_child(stalled_url: str, children: list[asyncio.subprocess.Process]) -> None:
    t0 = time.monotonic()
    with pytest.raises(MediaProcessingError, match=r"ffprobe timed out after 1 s"):
        await probe(stalled_url, timeout_s=1)
    assert time.monotonic() - t0 < 10
    assert len(children) == 1
    assert children[0].returncode is not None and children[0].returncode < 0  # killed by a signal
    assert not _alive(children[0].pid)


async def test_voice_note_timeout_kills_the_child_and_leaves_nothing(
        stalled_url: str, children: list[asyncio.subprocess.Process], tmp_path: Path) -> None:
    with pytest.raises(MediaProcessingError, match=r"ffmpeg timed out after 0.5 s"):
        await to_voice_note(stalled_url, str(tmp_path / "voice.ogg"), timeout_s=0.5)
    assert [c.returncode is not None and c.returncode < 0 for c in children] == [True]
    assert _names(tmp_path) == []


async def test_cancel_kills_the_child(stalled_url: str, children: list[asyncio.subprocess.Process]) -> None:
    task = asyncio.create_task(probe(stalled_url, timeout_s=60))
    for _ in range(100):
        if children:
            break
        await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert children and children[0].returncode is not None


def test_scratch_dir_is_removed_even_on_error() -> None:
    with pytest.raises(RuntimeError), scratch_dir("zs-test-") as path:
        assert path.is_dir() and path.name.startswith("zs-test-")
        (path / "sub").mkdir()
        (path / "sub" / "f").write_bytes(b"x")
        kept = path
        raise RuntimeError("boom")
    assert not kept.exists()


# ------------------------------------------------------------------------------------------- helpers


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def _alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args], check=True,
                   capture_output=True, timeout=60)


def _streams(path: Path) -> dict[str, Any]:
    out = subprocess.run(["ffprobe", "-v", "error", "-print_format", "json", "-show_format", "-show_streams",
                          str(path)], check=True, capture_output=True, timeout=60).stdout
    return orjson.loads(out)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class _HttpServer:
    """A plain HTTP file server on a free port for the duration of a ``with`` block."""

    def __init__(self, root: Path) -> None:
        handler = functools.partial(_QuietHandler, directory=str(root))
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)

