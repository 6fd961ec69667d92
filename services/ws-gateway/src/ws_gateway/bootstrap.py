"""Composition root of the WebSocket gateway."""

from __future__ import annotations

import uvicorn

from ws_gateway.app import create_app
from ws_gateway.settings import Settings
from zapstream_platform import logs, telemetry
from zapstream_platform.metrics import Metrics


def main() -> None:
    settings = Settings()
    logs.configure("ws-gateway", settings.log_level)
    provider = telemetry.setup_tracing("ws-gateway", settings)
    uvicorn.run(create_app(settings, Metrics("ws-gateway")), host=settings.host, port=settings.port, log_config=None, access_log=False,
                ws_max_size=65536)
    if provider is not None:
        provider.shutdown()
