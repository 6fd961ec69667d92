"""Rate limits per API key (or user) and per tenant, by plan: token buckets counted in process.

Each bucket holds ``hits`` tokens and refills at ``hits / window_s`` per second. Buckets are
checked in memory before any database work, so a tenant that floods the API is refused
cheaply and never queues behind, or ahead of, another tenant's requests. With several
worker processes each counts on its own (the effective limit is per process).
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from command_api.settings import ApiRateLimits, Limit
from command_api.shared.problems import Problem


@dataclass(slots=True)
class Bucket:
    tokens: float
    at: float


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    policy: str
    limit: Limit
    remaining: int
    retry_after: int

    def headers(self) -> dict[str, str]:
        headers = {"RateLimit-Policy": f'"{self.policy}";q={self.limit.hits};w={self.limit.window_s}',
                   "RateLimit": f'"{self.policy}";r={self.remaining};t={self.retry_after}'}
        if not self.allowed:
            headers["Retry-After"] = str(self.retry_after)
        return headers


class RateLimiter:
    def __init__(self, settings: ApiRateLimits, clock: Callable[[], float] = time.monotonic,
                 max_buckets: int = 200_000) -> None:
        self.settings = settings
        self.clock = clock
        self.max_buckets = max_buckets
        self.buckets: OrderedDict[str, Bucket] = OrderedDict()
        self.plans = {name: (Limit.parse(p.per_key), Limit.parse(p.per_tenant))
                      for name, p in settings.plans.items()}

    def _take(self, name: str, limit: Limit) -> tuple[bool, float]:
        now = self.clock()
        rate = limit.hits / limit.window_s
        bucket = self.buckets.get(name)
        if bucket is None:
            bucket = self.buckets[name] = Bucket(float(limit.hits), now)
            if len(self.buckets) > self.max_buckets:
                self.buckets.popitem(last=False)  # the oldest bucket; it would have refilled by now anyway
        else:
            bucket.tokens = min(float(limit.hits), bucket.tokens + (now - bucket.at) * rate)
            bucket.at = now
            self.buckets.move_to_end(name)
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return True, bucket.tokens
        return False, (1 - bucket.tokens) / rate

    def check(self, plan: str, tenant_id: str, caller: str) -> None:
        """Spend one token from the caller's and the tenant's buckets; 429 when either is empty."""
        if not self.settings.enabled:
            return
        per_key, per_tenant = self.plans.get(plan) or self.plans["default"]
        for policy, name, limit in (("key", f"k:{caller}", per_key), ("tenant", f"t:{tenant_id}", per_tenant)):
            ok, value = self._take(name, limit)
            if not ok:
                verdict = Verdict(False, policy, limit, 0, max(1, math.ceil(value)))
                raise Problem(429, f"rate limit of the {policy} exceeded; retry later", headers=verdict.headers())
