"""Scheduler implementations: asyncio for the server, virtual time for unit tests."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)


class AsyncioScheduler:
    """Wall clock plus ``loop.call_later`` on the running loop."""

    def now(self) -> float:
        return time.time()

    def call_later(self, delay: float, fn: Callable[..., None], *args: Any) -> asyncio.TimerHandle:
        return asyncio.get_running_loop().call_later(delay, self._run, fn, args)

    @staticmethod
    def _run(fn: Callable[..., None], args: tuple[Any, ...]) -> None:
        try:
            fn(*args)
        except Exception:
            # A failing timer must not take the simulator down; tests see it in the log.
            log.exception("scheduled simulator callback failed")


class _ManualTimer:
    __slots__ = ("cancelled",)

    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class ManualScheduler:
    """Virtual time: nothing runs until :meth:`advance` (for deterministic tests)."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = start
        self._queue: list[tuple[float, int, _ManualTimer, Callable[..., None], tuple[Any, ...]]] = []
        self._counter = itertools.count()

    def now(self) -> float:
        return self._now

    def call_later(self, delay: float, fn: Callable[..., None], *args: Any) -> _ManualTimer:
        timer = _ManualTimer()
        heapq.heappush(self._queue, (self._now + max(delay, 0.0), next(self._counter), timer, fn, args))
        return timer

    def advance(self, seconds: float = 0.0) -> None:
        """Move time forward, running every callback that falls due (in order)."""
        deadline = self._now + seconds
        while self._queue and self._queue[0][0] <= deadline:
            when, _, timer, fn, args = heapq.heappop(self._queue)
            self._now = max(self._now, when)
            if not timer.cancelled:
                fn(*args)
        self._now = deadline

    @property
    def pending(self) -> int:
        return sum(1 for entry in self._queue if not entry[2].cancelled)
