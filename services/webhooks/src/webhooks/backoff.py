"""Retry schedule: exponential backoff with jitter, capped, over about a day with the defaults."""

from __future__ import annotations

import random


def delay(attempt: int, base_s: float, cap_s: float, jitter: float, rng: random.Random | None = None) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based) before the next one.

    ``base * 2**(attempt-1)`` capped at ``cap``, then scaled by a random factor in ``[1-jitter, 1+jitter]``
    so receivers that failed together are not all retried in the same instant.
    """
    nominal = float(min(cap_s, base_s * 2 ** max(0, attempt - 1)))
    if jitter <= 0:
        return nominal
    factor = (rng or random).uniform(1 - jitter, 1 + jitter)
    return nominal * float(factor)


def total_span(max_attempts: int, base_s: float, cap_s: float) -> float:
    """Seconds from the first attempt to the last, without jitter."""
    return sum(delay(a, base_s, cap_s, 0.0) for a in range(1, max_attempts))
