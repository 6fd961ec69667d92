"""What a session runner's own JSON log says it owns (tests and benchmarks that kill runners)."""

from __future__ import annotations

import orjson


def owned_partitions(log_text: str) -> set[int]:
    """The partitions a runner holds: assigned minus released, in the order it logged them."""
    owned: set[int] = set()
    for line in log_text.splitlines():
        try:
            entry = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if entry.get("msg") == "partition assigned":
            owned.add(int(entry["partition"]))
        elif entry.get("msg") == "partition released":
            owned.discard(int(entry["partition"]))
    return owned
