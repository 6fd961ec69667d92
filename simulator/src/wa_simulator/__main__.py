"""``python -m wa_simulator``: run the simulator with settings from ``SIM_*``."""

from __future__ import annotations

import logging

import uvicorn

from wa_simulator.app import create_app
from wa_simulator.config import Settings


def main() -> None:
    """Start the simulator and block until it is stopped (SIGINT/SIGTERM)."""
    settings = Settings()
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        # The sans-I/O implementation avoids the deprecated legacy websockets server.
        ws="websockets-sansio",
        ws_per_message_deflate=False,
        access_log=False,
        timeout_graceful_shutdown=5,
    )


if __name__ == "__main__":
    main()
