"""``python -m bench [names...]``: run the benchmarks, write bench/results/*.json and bench/README.md.

Names: ingest, projector, runner_memory, e2e, ws, replay, media_upload, campaigns (default: all, in that order).
Needs Kafka and PostgreSQL from ``make infra-up``; everything else it starts itself.
"""

from __future__ import annotations

import asyncio
import sys
import time
import traceback
from collections.abc import Awaitable, Callable
from typing import Any

from bench import campaigns, e2e, failover, ingest, media_upload, projection, relay, runner_memory, ws_fanout
from bench.report import write_readme

BENCHES: dict[str, Callable[[], Awaitable[dict[str, Any]]]] = {
    "ingest": ingest.run,
    "projector": projection.bench_projector,
    "runner_memory": runner_memory.run,
    "e2e": e2e.run,
    "ws": ws_fanout.run,
    "replay": projection.bench_replay,
    "media_upload": media_upload.run,
    "relay": relay.run,
    "failover": failover.run,
    "campaigns": campaigns.run,
}


def main() -> int:
    names = sys.argv[1:] or list(BENCHES)
    failed = []
    for name in names:
        t0 = time.monotonic()
        print(f"== {name}", flush=True)
        try:
            asyncio.run(BENCHES[name]())
            print(f"   done in {time.monotonic() - t0:.0f} s", flush=True)
        except Exception:  # one broken bench must not hide the others' figures
            traceback.print_exc()
            failed.append(name)
    write_readme()
    print("bench/README.md updated" + (f"; FAILED: {failed}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
