"""Run a worker service with its metrics port and tracing around it (runner, projector, campaign runner)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from . import telemetry
from .metrics import Metrics, serve

log = logging.getLogger(__name__)



def run_observed(service: str, settings: Any, main: Callable[[Metrics], Coroutine[Any, Any, None]]) -> None:
    """``asyncio.run(main(metrics))`` with ``/metrics`` on ``settings.metrics_port`` and tracing set up."""
    metrics = Metrics(service)
    server = None
    if settings.metrics_port:
        try:
            server = serve(metrics, settings.metrics_port, settings.metrics_host)[0]
        except OSError as exc:
            # The service's work matters more than its scrape target: run on, and say so loudly.
            log.error("metrics port unavailable; serving no metrics", extra={"fields": {
                "port": settings.metrics_port, "error": str(exc)}})
    provider = telemetry.setup_tracing(service, settings)
    try:
        asyncio.run(main(metrics))
    finally:
        if provider is not None:
            provider.shutdown()
        if server is not None:
            server.shutdown()
