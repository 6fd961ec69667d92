"""Composition root of the session runner: settings → driver → runner."""

from __future__ import annotations

import asyncio

from session_runner.drivers.port import WhatsAppDriver
from session_runner.runner import SessionRunner, install_signal_handlers
from session_runner.settings import Settings
from zapstream_platform import logs


def build_driver(settings: Settings) -> WhatsAppDriver:
    """Choosing the driver is one setting (``RUNNER_DRIVER``)."""
    from session_runner.drivers.sim import SimDriver

    driver: WhatsAppDriver = SimDriver(settings.sim_url)
    return driver


async def run(settings: Settings) -> None:
    driver = build_driver(settings)
    runner = SessionRunner(settings, driver)
    install_signal_handlers(runner)
    try:
        await runner.run()
    finally:
        await driver.aclose()


def main() -> None:
    settings = Settings()
    logs.configure("session-runner", settings.log_level)
    asyncio.run(run(settings))
