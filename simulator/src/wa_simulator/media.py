"""On-disk store behind the simulator's media CDN (``/v1/media``).

An upload is streamed to ``<dir>/<id>.part`` while it is hashed, then renamed to
``<dir>/<id>``, so a half-written upload is never served. Disk writes and hashing run
in worker threads, in batches of :data:`_FLUSH_BYTES`: a 100 MB upload neither sits in
memory nor stalls the event loop that serves every device WebSocket. Which uploads
exist (and their size, hash and type) is the core's business
(:meth:`wa_simulator.core.Simulator.add_media`); this module only holds bytes.
"""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import tempfile
from collections.abc import AsyncIterable
from pathlib import Path
from typing import BinaryIO

from wa_simulator.config import Settings
from wa_simulator.core import SimError, TooLarge

_FLUSH_BYTES = 1024 * 1024
_PART_SUFFIX = ".part"


def _flush(file: BinaryIO, digest: hashlib._Hash, data: bytearray | bytes) -> None:
    digest.update(data)  # hashlib releases the GIL on large buffers
    file.write(data)


class MediaStore:
    """Upload bytes, one file per media id, in one directory."""

    def __init__(self, root: Path, max_bytes: int, *, owned: bool) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self._owned = owned  # a temp dir we made: removed by close()

    @classmethod
    def from_settings(cls, settings: Settings) -> MediaStore:
        """The store in ``settings.media_dir``, or in a fresh temp dir when it is unset."""
        if settings.media_dir:
            root = Path(settings.media_dir)
            root.mkdir(parents=True, exist_ok=True)
            return cls(root, settings.max_media_bytes, owned=False)
        return cls(Path(tempfile.mkdtemp(prefix="wa-sim-media-")), settings.max_media_bytes, owned=True)

    def path(self, media_id: str) -> Path:
        """Where a finished upload's bytes are (ids are hex, so safe as file names)."""
        return self.root / media_id

    def _too_large(self) -> TooLarge:
        return TooLarge(f"media larger than the simulator's cap of {self.max_bytes} bytes")

    async def receive(self, media_id: str, chunks: AsyncIterable[bytes]) -> tuple[int, str]:
        """Stream ``chunks`` into upload ``media_id``; returns (size, sha256 hex).

        Raises :class:`TooLarge` past the cap and :class:`SimError` for an empty body;
        on any failure nothing is kept.
        """
        part = self.root / (media_id + _PART_SUFFIX)
        file = await asyncio.to_thread(part.open, "wb")
        digest = hashlib.sha256()
        size = 0
        buffer = bytearray()
        try:
            try:
                async for chunk in chunks:
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise self._too_large()
                    buffer += chunk
                    if len(buffer) >= _FLUSH_BYTES:
                        await asyncio.to_thread(_flush, file, digest, buffer)
                        buffer.clear()
                if buffer:
                    await asyncio.to_thread(_flush, file, digest, buffer)
            finally:
                file.close()
            if size == 0:
                raise SimError("empty upload: media must have at least one byte")
            await asyncio.to_thread(part.replace, self.path(media_id))
        except BaseException:
            part.unlink(missing_ok=True)
            raise
        return size, digest.hexdigest()

    async def store_bytes(self, media_id: str, data: bytes) -> tuple[int, str]:
        """Store ``data`` (already in memory) as upload ``media_id``; same rules as :meth:`receive`."""
        if len(data) > self.max_bytes:
            raise self._too_large()

        async def once() -> AsyncIterable[bytes]:
            yield data

        return await self.receive(media_id, once())

    async def remove(self, media_id: str) -> None:
        await asyncio.to_thread(self.path(media_id).unlink, missing_ok=True)

    async def clear(self) -> None:
        """Delete every finished upload (simulator reset); uploads still streaming finish normally."""

        def run() -> None:
            for entry in self.root.iterdir():
                if entry.is_file() and not entry.name.endswith(_PART_SUFFIX):
                    entry.unlink(missing_ok=True)

        await asyncio.to_thread(run)

    async def close(self) -> None:
        """Remove the directory if the store created it (a configured ``media_dir`` is kept)."""
        if self._owned:
            await asyncio.to_thread(shutil.rmtree, self.root, ignore_errors=True)
