"""Small but real media files for tests, made with ffmpeg (a synthetic picture and a 440 Hz tone).

``png()``, ``mp4(seconds=2)`` … return the bytes; ``*_path()`` the file. Each distinct call runs ffmpeg
once per process (``functools.cache``); files live in one temp dir removed at exit. Needs ffmpeg with
libx264, aac, libmp3lame, libopus and libwebp (Debian's ``ffmpeg`` package has them all); a missing
encoder fails loudly with ffmpeg's message.
"""

from __future__ import annotations

import atexit
import functools
import shutil
import subprocess
import tempfile
from pathlib import Path


@functools.cache
def _dir() -> Path:
    path = Path(tempfile.mkdtemp(prefix="zs-media-samples-"))
    atexit.register(shutil.rmtree, path, True)
    return path


def _ffmpeg(name: str, *args: str) -> Path:
    out = _dir() / name
    proc = subprocess.run(["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args, str(out)],
                          capture_output=True, timeout=120, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"ffmpeg could not make {name}: {proc.stderr.decode(errors='replace').strip()}")
    return out


def _picture(w: int, h: int) -> list[str]:
    return ["-f", "lavfi", "-i", f"testsrc2=size={w}x{h}:rate=1", "-frames:v", "1"]


def _tone(seconds: float, rate: int = 44100) -> list[str]:
    return ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate={rate}", "-t", f"{seconds:g}"]


# --------------------------------------------------------------------------------------------- paths


@functools.cache
def png_path(w: int = 64, h: int = 48) -> Path:
    return _ffmpeg(f"{w}x{h}.png", *_picture(w, h))


@functools.cache
def jpeg_path(w: int = 64, h: int = 48) -> Path:
    return _ffmpeg(f"{w}x{h}.jpg", *_picture(w, h), "-q:v", "5")


@functools.cache
def webp_path(w: int = 512, h: int = 512) -> Path:
    """A still WebP; the 512x512 default is a sticker's size."""
    return _ffmpeg(f"{w}x{h}.webp", *_picture(w, h), "-c:v", "libwebp", "-quality", "60")


@functools.cache
def mp4_path(seconds: float = 2, w: int = 160, h: int = 120) -> Path:
    """H.264 + AAC with the moov atom first (``+faststart``); ``w`` and ``h`` must be even (yuv420p)."""
    return _ffmpeg(f"{seconds:g}s-{w}x{h}.mp4",
                   "-f", "lavfi", "-i", f"testsrc2=size={w}x{h}:rate=25", *_tone(seconds),
                   "-t", f"{seconds:g}", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
                   "-c:a", "aac", "-b:a", "64k", "-movflags", "+faststart")


@functools.cache
def mp3_path(seconds: float = 3) -> Path:
    return _ffmpeg(f"{seconds:g}s.mp3", *_tone(seconds), "-c:a", "libmp3lame", "-b:a", "64k")


@functools.cache
def m4a_path(seconds: float = 3) -> Path:
    return _ffmpeg(f"{seconds:g}s.m4a", *_tone(seconds), "-c:a", "aac", "-b:a", "64k")


@functools.cache
def wav_path(seconds: float = 3) -> Path:
    return _ffmpeg(f"{seconds:g}s.wav", *_tone(seconds, 16000), "-c:a", "pcm_s16le")


@functools.cache
def ogg_opus_path(seconds: float = 3) -> Path:
    """Already a voice note: OGG/Opus, mono, 48 kHz."""
    return _ffmpeg(f"{seconds:g}s.ogg", *_tone(seconds, 48000), "-c:a", "libopus", "-b:a", "32k",
                   "-application", "voip")


@functools.cache
def pdf_path() -> Path:
    out = _dir() / "one-page.pdf"
    out.write_bytes(pdf())
    return out


# --------------------------------------------------------------------------------------------- bytes


def png(w: int = 64, h: int = 48) -> bytes:
    return png_path(w, h).read_bytes()


def jpeg(w: int = 64, h: int = 48) -> bytes:
    return jpeg_path(w, h).read_bytes()


def webp(w: int = 512, h: int = 512) -> bytes:
    return webp_path(w, h).read_bytes()


def mp4(seconds: float = 2, w: int = 160, h: int = 120) -> bytes:
    return mp4_path(seconds, w, h).read_bytes()


def mp3(seconds: float = 3) -> bytes:
    return mp3_path(seconds).read_bytes()


def m4a(seconds: float = 3) -> bytes:
    return m4a_path(seconds).read_bytes()


def wav(seconds: float = 3) -> bytes:
    return wav_path(seconds).read_bytes()


def ogg_opus(seconds: float = 3) -> bytes:
    return ogg_opus_path(seconds).read_bytes()


@functools.cache
def pdf() -> bytes:
    """A valid one-page PDF ("zapstream test document" in Helvetica) with a correct xref table."""
    text = b"BT /F1 18 Tf 72 720 Td (zapstream test document) Tj ET"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(text), text),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    # The binary comment line tells tools the file is not plain text.
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)
