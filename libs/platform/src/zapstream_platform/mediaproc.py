"""Media probing and conversion with ffprobe/ffmpeg run as child processes.

Every call is ``asyncio.create_subprocess_exec`` (never a shell) with a timeout that kills the child.
Sources are local paths or http(s) URLs (presigned S3 GETs work: ffmpeg reads them with range
requests). Each child may only use the protocols its source needs (``file`` for a path;
``http,https,tcp,tls`` for a URL), so a crafted playlist or a path such as ``concat:...`` cannot make
ffmpeg read anything else.

Errors are :class:`MediaProcessingError`: ``str(exc)`` is a short reason for a client, ``exc.stderr``
what ffmpeg said (for logs).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

FFMPEG = "ffmpeg"
FFPROBE = "ffprobe"

# Decoders of single pictures. Motion JPEG or PNG inside a real video container (avi, mov) is video,
# hence the container check in _is_still as well.
STILL_CODECS = frozenset({"png", "apng", "mjpeg", "jpegls", "webp", "gif", "bmp", "tiff", "jpeg2000", "qoi"})
# Duration padding that codecs add (mp3 frames, opus pre-skip) is not a second of content.
DURATION_SLACK_S = 0.05
STDERR_KEEP = 4096
VOICE_NOTE_BITRATE = "32k"


FETCH_FAILED = "could not fetch the media URL"


class MediaProcessingError(Exception):
    """The file could not be probed or converted; str(exc) is a short reason fit for a client.

    ``transient`` is True when the file is not to blame (the tool is missing, it timed out, the URL
    could not be fetched): callers answer "try again", not "bad file".
    """

    def __init__(self, reason: str, stderr: str = "", *, transient: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.stderr = stderr
        self.transient = transient or reason == FETCH_FAILED


@dataclass(frozen=True, slots=True)
class Probe:
    """What ffprobe found. Width/height are as displayed (a 90° rotation swaps them)."""

    format: str | None  # ffprobe format_name, e.g. "ogg", "mov,mp4,m4a,3gp,3g2,mj2", "png_pipe"
    codec: str | None  # first audio codec for audio-only files, else first video codec
    width: int | None
    height: int | None
    duration: int | None  # whole seconds, rounded up; None for still images


def ffmpeg_available() -> bool:
    """Both ffmpeg and ffprobe are on PATH."""
    return shutil.which(FFMPEG) is not None and shutil.which(FFPROBE) is not None


@contextlib.contextmanager
def scratch_dir(prefix: str) -> Iterator[Path]:
    """A private temporary directory, removed with everything in it when the block exits."""
    with tempfile.TemporaryDirectory(prefix=prefix, ignore_cleanup_errors=True) as name:
        yield Path(name)


def is_voice_note_ready(p: Probe) -> bool:
    """An OGG container with Opus audio: what WhatsApp plays as a voice note."""
    return p.format is not None and "ogg" in p.format.split(",") and p.codec == "opus"


# ------------------------------------------------------------------------------------------ children


def _input(source: str) -> tuple[str, str]:
    """``(ffmpeg input, protocol whitelist)`` for a local path or an http(s) URL."""
    scheme = source.split(":", 1)[0].lower() if "://" in source else ""
    if scheme in ("http", "https"):
        return source, "http,https,tcp,tls"
    if scheme:
        raise MediaProcessingError(f"unsupported source scheme {scheme!r}")
    # "file:" keeps a path like "concat:a|b" or "-x" from being read as a protocol or an option.
    return "file:" + os.path.abspath(source), "file"


def _reason(stderr: str, arg: str, names: tuple[str, ...], fallback: str) -> str:
    """A short reason from what ffmpeg printed, without the server's paths or a URL's signature."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    if not lines:
        return fallback
    text = "\n".join(lines)
    if re.search(r"Server returned [45]\d\d|HTTP error [45]\d\d", text):
        return FETCH_FAILED
    if "matches no streams" in text:
        return "no audio stream"
    # "<input>: <why>" is how ffmpeg reports an input it could not open or make sense of
    # ("Invalid data found when processing input", "End of file", "Invalid argument", ...).
    opened = [ln.removeprefix(f"{arg}: ") for ln in lines if ln.startswith(f"{arg}: ")]
    if opened:
        if arg.startswith(("http://", "https://")) and "Invalid data" not in opened[-1]:
            return FETCH_FAILED
        if "No such file or directory" in opened[-1]:
            return "file not found"
        if "Permission denied" in opened[-1]:
            return "file not readable"
        return "unrecognised or corrupt media"
    last = lines[-1]
    for name in names:
        last = last.replace(name, "input")
    last = re.sub(r"https?://\S+", "<url>", last)
    last = re.sub(r"(?:file:)?/[^\s:,]+", "<path>", last)
    return f"{fallback}: {last}"[:200]


async def _run(args: list[str], timeout_s: float, what: str) -> tuple[int, bytes, str]:
    """Run a child to completion: ``(exit status, stdout, last bytes of stderr)``; killed on timeout or cancel."""
    try:
        proc = await asyncio.create_subprocess_exec(
            *args, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except FileNotFoundError as exc:
        raise MediaProcessingError(f"{what} is not available on this server", str(exc), transient=True) from exc
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout_s)
    except TimeoutError as exc:
        raise MediaProcessingError(f"{what} timed out after {timeout_s:g} s", transient=True) from exc
    finally:
        # On a timeout or a cancel the child must not outlive the call.
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode, out, err.decode("utf-8", "replace")[-STDERR_KEEP:]


# ------------------------------------------------------------------------------------------- probing


def _rotation(stream: dict[str, Any]) -> int:
    for side in stream.get("side_data_list") or ():
        if "rotation" in side:
            with contextlib.suppress(TypeError, ValueError):
                return int(float(side["rotation"]))
    with contextlib.suppress(TypeError, ValueError):
        return int((stream.get("tags") or {}).get("rotate", 0))
    return 0


def _is_still(format_name: str | None, video: list[dict[str, Any]], audio: list[dict[str, Any]]) -> bool:
    if audio or not video or any(s.get("codec_name") not in STILL_CODECS for s in video):
        return False
    names = (format_name or "").split(",")
    # Image demuxers (png_pipe, jpeg_pipe, webp_pipe, image2, gif) report a frame rate and sometimes a
    # duration that mean nothing for one picture.
    return any(n.endswith("_pipe") or n in ("image2", "gif", "apng") for n in names)


def _seconds(value: Any) -> float | None:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def _parse(doc: dict[str, Any]) -> Probe:
    streams = doc.get("streams") or []
    fmt = doc.get("format") or {}
    # Cover art in an mp3/m4a is a "video" stream of one attached picture: not video.
    video = [s for s in streams if s.get("codec_type") == "video"
             and not (s.get("disposition") or {}).get("attached_pic")]
    audio = [s for s in streams if s.get("codec_type") == "audio"]
    if not video and not audio:
        raise MediaProcessingError("no audio or video stream")
    format_name = fmt.get("format_name") or None
    codec = (audio[0] if not video else video[0]).get("codec_name")
    width = height = None
    if video:
        width, height = video[0].get("width"), video[0].get("height")
        if _rotation(video[0]) % 180 == 90:
            width, height = height, width
    duration = None
    if not _is_still(format_name, video, audio):
        seconds = _seconds(fmt.get("duration"))
        if seconds is None:
            seconds = max((d for s in video + audio if (d := _seconds(s.get("duration"))) is not None),
                          default=None)
        if seconds is not None:
            duration = max(1, math.ceil(seconds - DURATION_SLACK_S)) if seconds > 0 else 0
    return Probe(format=format_name, codec=codec, width=width, height=height, duration=duration)


async def probe(source: str, *, timeout_s: float = 30) -> Probe:
    """Container, main codec, displayed dimensions and duration of a local file or an http(s) URL."""
    arg, protocols = _input(source)
    status, out, err = await _run([FFPROBE, "-v", "error", "-protocol_whitelist", protocols, "-print_format",
                                   "json", "-show_format", "-show_streams", arg], timeout_s, "ffprobe")
    if status != 0:
        raise MediaProcessingError(_reason(err, arg, (arg, source), "could not read media"), err)
    try:
        doc = orjson.loads(out)
    except orjson.JSONDecodeError as exc:
        raise MediaProcessingError("could not read media", err) from exc
    return _parse(doc)


# ---------------------------------------------------------------------------------------- conversion


async def to_voice_note(src: str, dst: str, *, timeout_s: float = 120) -> Probe:
    """Convert the first audio stream of ``src`` to a WhatsApp voice note at ``dst`` and probe it.

    OGG/Opus, mono, 48 kHz, ~32 kbit/s, ``voip`` application; video, subtitles and metadata dropped.
    ffmpeg writes a sibling temp file that is renamed on success, so ``dst`` is never partial and
    nothing is left behind on failure.
    """
    arg, protocols = _input(src)
    tmp = _sibling_temp(dst)
    out = "file:" + tmp
    try:
        status, _, err = await _run([
            FFMPEG, "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
            "-protocol_whitelist", protocols, "-i", arg,
            "-map", "0:a:0", "-vn", "-sn", "-dn", "-map_metadata", "-1", "-map_chapters", "-1",
            "-ac", "1", "-ar", "48000", "-c:a", "libopus", "-b:a", VOICE_NOTE_BITRATE, "-vbr", "on",
            "-application", "voip", "-fflags", "+bitexact", "-f", "ogg", out,
        ], timeout_s, "ffmpeg")
        if status != 0:
            raise MediaProcessingError(_reason(err, arg, (arg, src, out), "could not convert to a voice note"), err)
        result = await probe(tmp, timeout_s=max(5.0, timeout_s / 4))
        if not is_voice_note_ready(result) or not result.duration:
            raise MediaProcessingError("no audio to convert to a voice note")
        os.replace(tmp, dst)
        return result
    finally:
        _discard(tmp)


# Metadata-only file operations (microseconds): not worth a worker thread.
def _sibling_temp(dst: str) -> str:
    target = os.path.abspath(dst)
    fd, name = tempfile.mkstemp(prefix=f".{os.path.basename(target)}.", suffix=".part",
                                dir=os.path.dirname(target))
    os.close(fd)
    return name


def _discard(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
