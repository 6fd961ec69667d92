"""Bench 7: command-API memory while streaming a 100 MB video through ``POST /media`` to S3.

Each size (10, 30, 100 MB; MB = 2^20 bytes as in the command API's settings) is uploaded to a fresh
command-API process after the same 1 MB warm-up upload, so every figure starts from the same state.
The file is a real 2 s H.264/AAC MP4 (ffmpeg, ``+faststart``) followed by a top-level ``free`` box of
random filler up to the size: it sniffs and decodes as video (the API ffprobes every video through
its presigned URL) and costs no encoding time. It is written to a scratch dir and sent as a streamed
multipart body (an async generator, never the whole body in memory). The API's RSS is sampled from
``/proc/<pid>/status`` every 50 ms; its VmHWM (reset before the upload through
``/proc/<pid>/clear_refs``) catches peaks between samples.

"Flat" means growth does not scale with size: the 10 MB upload of the same run is the baseline.
A second baseline is a bare uvicorn app that only drains the same 100 MB body
(``request.stream()``): the least memory and the most throughput any upload path here can have.
The video limit (16 MB by default) is raised to 128 MB with ``COMMAND_API_MEDIA__VIDEO_MAX_BYTES``.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import threading
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, BinaryIO

import httpx
import orjson

from bench.common import RESULTS, BenchEnv, Proc, bench_env, free_port, rss_bytes, write_result
from zapstream_platform.mediaproc import scratch_dir
from zapstream_platform.settings import S3Settings
from zapstream_platform.storage import MediaStore

MB = 1024 * 1024
VIDEO_MAX_BYTES = 128 * MB
SIZES_MB = (10, 30, 100)
KIND = "video"
WARMUP_MB = 1
CHUNK = 1 * MB  # client-side read and send size
SAMPLE_S = 0.05
CLIP_SECONDS = 2
NAME = "7_media_upload"

BARE_APP = '''
import sys, uvicorn
from fastapi import FastAPI, Request
app = FastAPI()
@app.post("/media", status_code=201)
async def media(request: Request) -> dict:
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
    return {"size": size}
@app.get("/healthz")
async def healthz() -> dict:
    return {"status": "ok"}
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_config=None, access_log=False)
'''


# ------------------------------------------------------------------------------------------ the file


def write_mp4(path: Path, size: int) -> Path:
    """``size`` bytes of valid MP4: a short real clip, then one ``free`` box of filler, written in chunks."""
    subprocess.run(["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
                    "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25", "-f", "lavfi", "-i", "sine=frequency=440",
                    "-t", str(CLIP_SECONDS), "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
                    "-c:a", "aac", "-movflags", "+faststart", "-f", "mp4", str(path)],
                   check=True, capture_output=True, timeout=120)
    clip = path.stat().st_size
    free = size - clip
    if not 8 <= free < 2**32:
        raise ValueError(f"cannot pad a {clip}-byte clip to {size} bytes")
    block = os.urandom(CHUNK)  # repeated: cheap, and nothing on the path compresses or deduplicates
    with path.open("ab") as out:
        out.write(free.to_bytes(4, "big") + b"free")
        left = free - 8
        while left > 0:
            n = min(left, len(block))
            out.write(block[:n])
            left -= n
    return path


def _open(path: Path) -> BinaryIO:
    return path.open("rb")


def multipart(path: Path, size: int, kind: str, boundary: str) -> tuple[AsyncIterator[bytes], int]:
    """The form (``kind`` first so its limit applies while streaming, then ``file``) and its length."""
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"kind\"\r\n\r\n{kind}\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{path.name}\"\r\n"
            f"Content-Type: video/mp4\r\n\r\n").encode()
    tail = f"\r\n--{boundary}--\r\n".encode()

    async def body() -> AsyncIterator[bytes]:
        yield head
        fh = await asyncio.to_thread(_open, path)
        try:
            while chunk := await asyncio.to_thread(fh.read, CHUNK):
                yield chunk
        finally:
            fh.close()
        yield tail

    return body(), len(head) + size + len(tail)


# ----------------------------------------------------------------------------------------------- RSS


def _status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} for {pid}")


def _reset_peak(pid: int) -> bool:
    """Reset VmHWM to the current RSS (Linux ≥ 4.0); False where that is not allowed."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


class RssSampler:
    """Samples a process's RSS every ``SAMPLE_S`` in a thread, so event-loop stalls do not skew it."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.samples.append(rss_bytes(self.pid))
            self._stop.wait(SAMPLE_S)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


# ---------------------------------------------------------------------------------------- one upload


async def upload(base_url: str, headers: dict[str, str], path: Path, size: int, kind: str) -> dict[str, Any]:
    boundary = f"zb{uuid.uuid4().hex}"
    body, length = multipart(path, size, kind, boundary)
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=600) as http:
        t0 = time.perf_counter()
        r = await http.post("/media", content=body, headers={
            "Content-Type": f"multipart/form-data; boundary={boundary}", "Content-Length": str(length)})
        seconds = time.perf_counter() - t0
    if r.status_code != 201:
        raise RuntimeError(f"POST /media ({kind}, {size} bytes) answered {r.status_code}: {r.text[:300]}")
    return {"seconds": seconds, "response": r.json()}


async def measure(pid: int, base_url: str, headers: dict[str, str], path: Path, size: int,
                  kind: str) -> dict[str, Any]:
    """RSS before (idle), during (sampled peak and VmHWM) and after one upload by process ``pid``."""
    await asyncio.sleep(1.0)  # let the warm-up's garbage settle
    before = min(rss_bytes(pid) for _ in range(3))
    hwm_ok = _reset_peak(pid)
    with RssSampler(pid) as sampler:
        done = await upload(base_url, headers, path, size, kind)
    hwm = _status_kb(pid, "VmHWM") * 1024 if hwm_ok else None
    await asyncio.sleep(1.0)
    after = rss_bytes(pid)
    peak = max([*sampler.samples, hwm or 0])
    return {
        "size_mb": round(size / MB, 1), "kind": kind,
        "rss_before_mb": round(before / MB, 1), "rss_peak_mb": round(peak / MB, 1),
        "rss_after_mb": round(after / MB, 1), "growth_mb": round((peak - before) / MB, 1),
        "sampled_peak_mb": round(max(sampler.samples) / MB, 1), "samples": len(sampler.samples),
        "vm_hwm_mb": round(hwm / MB, 1) if hwm is not None else None,
        "seconds": round(done["seconds"], 2), "mb_per_s": round(size / MB / done["seconds"], 1),
        "stored": done["response"],
    }


# ------------------------------------------------------------------------------------------- the run


def _start_api(env: BenchEnv) -> tuple[Proc, str]:
    port = free_port()
    proc = env.start(Proc("command-api-media", ["-m", "command_api"], env.env("COMMAND_API_")
                          | {"COMMAND_API_PORT": str(port), "COMMAND_API_MEDIA__VIDEO_MAX_BYTES": str(VIDEO_MAX_BYTES)},
                          health=f"http://127.0.0.1:{port}/healthz"))
    return proc, f"http://127.0.0.1:{port}"


def _check(stored: dict[str, Any], size: int) -> None:
    got = (stored["size"], stored["mime"], stored.get("duration", CLIP_SECONDS))
    if got != (size, "video/mp4", CLIP_SECONDS):
        raise RuntimeError(f"unexpected media reference for {size} bytes: {stored}")


async def run() -> dict[str, Any]:
    store = MediaStore(S3Settings())  # the API's defaults: the keys it answers are in this bucket
    zapstream: list[dict[str, Any]] = []
    try:
        with scratch_dir("zb-media-") as tmp:
            files = {s: await asyncio.to_thread(write_mp4, tmp / f"{s}mb.mp4", s * MB)
                     for s in (WARMUP_MB, *SIZES_MB)}
            async with bench_env() as env:
                _, key = await env.api_key()
                headers = {"Authorization": f"Bearer {key}"}
                for s in SIZES_MB:
                    api, url = _start_api(env)
                    warm = await upload(url, headers, files[WARMUP_MB], WARMUP_MB * MB, KIND)
                    await store.delete(warm["response"]["key"])
                    figures = await measure(api.pid, url, headers, files[s], s * MB, KIND)
                    stored = figures.pop("stored")
                    await store.delete(stored["key"])
                    _check(stored, s * MB)
                    zapstream.append(figures)
                    api.stop()
                    print(f"   {KIND} {s} MB: RSS {figures['rss_before_mb']} → peak {figures['rss_peak_mb']} MB "
                          f"(+{figures['growth_mb']}), {figures['mb_per_s']} MB/s", flush=True)
                port = free_port()
                bare = env.start(Proc("bare-upload", ["-c", BARE_APP, str(port)], {},
                                      health=f"http://127.0.0.1:{port}/healthz"))
                bare_url = f"http://127.0.0.1:{port}"
                await upload(bare_url, {}, files[WARMUP_MB], WARMUP_MB * MB, KIND)
                baseline = await measure(bare.pid, bare_url, {}, files[SIZES_MB[-1]], SIZES_MB[-1] * MB, KIND)
                baseline.pop("stored")
                bare.stop()
    finally:
        store.close()
    small, big = zapstream[0], zapstream[-1]
    result = {
        "what": "command-API RSS while one video streams through POST /media to S3 (S3Proxy on loopback)",
        "kind": KIND,
        "sizes_mb": list(SIZES_MB),
        "zapstream": zapstream,
        "baseline_bare_uvicorn_drain": baseline,
        "ratio_growth_largest_to_smallest": round(big["growth_mb"] / max(small["growth_mb"], 0.1), 2),
        "ratio_size_largest_to_smallest": round(big["size_mb"] / small["size_mb"], 1),
        "ratio_throughput_to_bare": round(big["mb_per_s"] / baseline["mb_per_s"], 3),
        "notes": ("Fresh command-API process per size, each after the same 1 MB warm-up upload; growth is the "
                  "peak (max of 50 ms VmRSS samples and VmHWM) minus the idle RSS before. The API holds about "
                  f"two S3 parts (part_size {S3Settings().part_size // MB} MB) per upload whatever the size. "
                  "Client, API, S3Proxy, Kafka and PostgreSQL share the machine's cores; the time is client → "
                  "API → S3Proxy → local disk, then the API's ffprobe of the stored object through its presigned "
                  "URL and the media_uploads insert, up to the 201."),
    }
    write_result(NAME, result)
    return result


# ------------------------------------------------------------------------------------- README section


def readme_section() -> str:
    """The README's media-upload section from ``bench/results/7_media_upload.json`` ("" if none)."""
    path = RESULTS / f"{NAME}.json"
    if not path.exists():
        return ""
    r = orjson.loads(path.read_bytes())
    b = r["baseline_bare_uvicorn_drain"]
    first = r["zapstream"][0]
    flat = ", ".join(f"{z['size_mb'] / first['size_mb']:g}× the bytes grew ×{z['growth_mb'] / first['growth_mb']:.2f} "
                     f"as much" for z in r["zapstream"][1:])
    rows = "\n".join(
        f"| {z['kind']}, {z['size_mb']:g} MB | {z['rss_before_mb']} MB | {z['rss_peak_mb']} MB | "
        f"**+{z['growth_mb']} MB** | {z['rss_after_mb']} MB | {z['mb_per_s']} MB/s ({z['seconds']} s) |"
        for z in r["zapstream"])
    rows += (f"\n| baseline: bare uvicorn app draining the body, {b['size_mb']:g} MB | {b['rss_before_mb']} MB | "
             f"{b['rss_peak_mb']} MB | +{b['growth_mb']} MB | {b['rss_after_mb']} MB | "
             f"{b['mb_per_s']} MB/s ({b['seconds']} s) |")
    return (
        "\n## 7. Media upload memory (`POST /media`)\n\n"
        "`uv run python -m bench media_upload`. One file streamed through the real command API "
        "(multipart parsed as it arrives, S3 multipart upload to S3Proxy, ffprobe of the stored object); "
        "the API process's RSS sampled every 50 ms, plus its VmHWM. MB = 2^20 bytes.\n\n"
        "| upload | RSS before | RSS peak | growth | RSS 1 s after | throughput |\n"
        "| --- | --- | --- | --- | --- | --- |\n"
        f"{rows}\n\n"
        f"Flat: against the {first['size_mb']:g} MB upload of the same run (the baseline), {flat}. "
        f"Growth is bounded by the S3 parts in flight, not by the file. Throughput of the largest: "
        f"×{r['ratio_throughput_to_bare']} of the bare drain's. {r['notes']} Measured {r['at']}.\n"
    )


if __name__ == "__main__":
    print(orjson.dumps(asyncio.run(run()), option=orjson.OPT_INDENT_2).decode())
