"""Composition root of the WebSocket gateway."""

from __future__ import annotations

import uvicorn

from ws_gateway.app import create_app
from ws_gateway.settings import Settings
from zapstream_platform import logs


def main() -> None:
    settings = Settings()
    logs.configure("ws-gateway", settings.log_level)
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_config=None, access_log=False,
                ws_max_size=65536)
