"""Composition root of the session runner: settings → driver → runner."""

from __future__ import annotations

import logging

from session_runner.drivers.port import WhatsAppDriver
from session_runner.media import MediaPipeline
from session_runner.runner import SessionRunner, install_signal_handlers
from session_runner.settings import Settings
from zapstream_platform import logs
from zapstream_platform.db import create_pool
from zapstream_platform.metrics import Metrics
from zapstream_platform.observed import run_observed
from zapstream_platform.pii import KeyRing
from zapstream_platform.storage import MediaStore

log = logging.getLogger(__name__)


def build_driver(settings: Settings) -> WhatsAppDriver:
    """Choosing the driver is one setting (``RUNNER_DRIVER``: ``sim`` or ``neonize``)."""
    # Imported here so the simulator path never loads neonize's native library.
    if settings.driver == "neonize":
        from session_runner.drivers.neonize_driver import NeonizeDriver

        neonize: WhatsAppDriver = NeonizeDriver(
            settings.neonize_store or "./.data/neonize",
            sessions_per_worker=settings.neonize_sessions_per_worker,
            max_workers=settings.neonize_max_workers,
            connect_timeout=settings.neonize_connect_timeout_s,
            request_timeout=settings.neonize_request_timeout_s,
            proxy=settings.neonize_proxy,
            log_level=settings.log_level,
        )
        return neonize
    from session_runner.drivers.sim import SimDriver

    driver: WhatsAppDriver = SimDriver(settings.sim_url)
    return driver


async def run(settings: Settings, metrics: Metrics | None = None) -> None:
    driver = build_driver(settings)
    store = MediaStore(settings.s3)
    pool = await create_pool(settings.postgres)
    keys = KeyRing(pool, ttl_s=settings.pii_key_ttl_s)
    runner = SessionRunner(settings, driver, MediaPipeline(store, settings.media_scratch_dir), metrics, keys=keys)
    install_signal_handlers(runner)
    try:
        await runner.run()
    finally:
        await driver.aclose()
        store.close()
        await pool.close()


def main() -> None:
    settings = Settings()
    logs.configure("session-runner", settings.log_level)
    run_observed("session-runner", settings, lambda metrics: run(settings, metrics))
