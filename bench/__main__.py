"""``python -m bench [names...]``: run the benchmarks, write bench/results/*.json and bench/README.md.

Names: ingest, projector, runner_memory, e2e, ws, replay, media_upload (default: all, in that order).
Needs Kafka and PostgreSQL from ``make infra-up``; everything else it starts itself.
"""

from __future__ import annotations

import asyncio
import sys
import time
import traceback
from collections.abc import Awaitable, Callable
from typing import Any

from bench import e2e, ingest, media_upload, projection, runner_memory, ws_fanout
from bench.common import REPO
from bench.report import write_readme

BENCHES: dict[str, Callable[[], Awaitable[dict[str, Any]]]] = {
    "ingest": ingest.run,
    "projector": projection.bench_projector,
    "runner_memory": runner_memory.run,
    "e2e": e2e.run,
    "ws": ws_fanout.run,
    "replay": projection.bench_replay,
    "media_upload": media_upload.run,
}


def write_readme_with_media() -> None:
    """bench.report's README plus the media-upload section, which bench.report does not render yet."""
    write_readme()
    section = media_upload.readme_section()
    if section:
        readme = REPO / "bench" / "README.md"
        readme.write_text(readme.read_text() + section)


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
    write_readme_with_media()
    print("bench/README.md updated" + (f"; FAILED: {failed}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
