"""The linking QR as an image: a PNG data URL (seed 003's clients put it straight into ``<img src>``)."""

from __future__ import annotations

from functools import lru_cache

import segno


@lru_cache(maxsize=256)  # a QR rotates every ~20 s and is polled far more often than that
def qr_data_url(qr: str) -> str:
    return str(segno.make(qr, error="m", micro=False).png_data_uri(scale=4, border=4))
