"""Render bench/README.md from bench/results/*.json (every figure next to its same-run baseline)."""

from __future__ import annotations

from typing import Any

import orjson

from bench import campaigns, media_upload
from bench.common import REPO, RESULTS

HEADER = """# Benchmarks

`make bench` (`uv run python -m bench`) runs seven short benchmarks against the
Kafka broker and PostgreSQL of `make infra-up`, on loopback only, each with its
own topic prefix and database. Each writes `bench/results/<n>_<name>.json`; this
file is regenerated from them (`python -m bench.report`). Every figure is shown
next to a **baseline measured in the same run**, and as a ratio to it.

**Caveat — the machine.** 2 cores, shared with other engineers running test
suites while these ran; the load generators run on the same 2 cores as the
services, the broker and PostgreSQL. Treat the figures as a baseline to compare
later runs against on this machine, not as capacity numbers.
"""


def _load(name: str) -> dict[str, Any] | None:
    path = RESULTS / f"{name}.json"
    return orjson.loads(path.read_bytes()) if path.exists() else None


def write_readme() -> None:
    rows: list[str] = []
    notes: list[str] = []
    r = _load("1_ingest")
    if r:
        z, b = r["zapstream"], r["baseline_bare_fastapi"]
        rows.append(f"| 1 | Command ingest, {r['concurrency']} connections, {r['seconds']:.0f} s | "
                    f"{z['accepted_per_s']:.0f} accepted/s, p99 {z['p99_ms']:.0f} ms | "
                    f"bare FastAPI endpoint, same uvicorn: {b['accepted_per_s']:.0f}/s, p99 {b['p99_ms']:.0f} ms | "
                    f"×{r['ratio_throughput']:.2f} throughput, ×{r['ratio_p99']:.1f} p99 |")
        notes.append(f"1. {r['notes']}")
    r = _load("2_end_to_end")
    if r:
        z, b, t = r["zapstream"], r["baseline_one_kafka_hop"], r["at_target_rate"]
        rows.append(f"| 2 | End to end POST → WS event, {r['sessions']} sessions, **{z['offered_rate']:.0f} msg/s** "
                    f"(scaled down from 500) | p50 {z['p50_ms']:.0f} ms, p99 {z['p99_ms']:.0f} ms "
                    f"({z['delivered_on_ws']}/{z['offered']} delivered) | one Kafka hop (acks=all → read_committed): "
                    f"p50 {b['p50_ms']:.1f} ms, p99 {b['p99_ms']:.1f} ms | ×{r['ratio_p50']} p50, ×{r['ratio_p99']} p99 |")
        notes.append(f"2. At the asked-for 500 msg/s for {t['offered'] // 500} s: reached {t['achieved_rate']} msg/s "
                     f"delivered on the WebSocket, p50 {t['p50_ms']:.0f} ms, p99 {t['p99_ms']:.0f} ms, "
                     f"{t['errors']} POST errors — {'sustained' if t['sustained'] else 'not sustained'} on this "
                     f"machine, hence the scaled-down headline. {r['notes']}")
    r = _load("3_projector")
    if r:
        z, b = r["zapstream"], r["baseline_copy"]
        rows.append(f"| 3 | Projector into the read model, {r['events']:,} events | {z['events_per_s']:,.0f} events/s | "
                    f"asyncpg COPY of the same {r['rows']:,} rows: {b['events_per_s']:,.0f} events/s equiv. | "
                    f"×{r['ratio']:.3f} |")
        notes.append(f"3. {r['notes']}")
    r = _load("4_replay")
    if r:
        z, b = r["zapstream"], r["baseline_raw_consume"]
        rows.append(f"| 4 | Replay (fresh projection from offset 0), **measured on {r['events_measured']:,} events, "
                    f"extrapolated to 1M** | {z['events_per_s']:,.0f} events/s (≈{z['extrapolated_seconds_for_1M']:,} s "
                    f"for 1M, extrapolated) | raw read_committed consume + decode: {b['events_per_s']:,.0f} events/s | "
                    f"×{r['ratio']:.3f} |")
        notes.append(f"4. {r['notes']}")
    r = _load("5_ws_gateway")
    if r:
        z, b = r["zapstream"], r["baseline_bare_fastapi_ws"]
        rows.append(f"| 5 | ws-gateway, {r['clients']:,} WS clients | {z['connections_held']:,} held, "
                    f"{z['frames_per_s']:,.0f} frames/s delivered (event × socket) ({z['frames_delivered']:,}/{z['frames_offered']:,}) | "
                    f"bare FastAPI WS fan-out: {b['connections_held']:,} held, {b['frames_per_s']:,.0f} frames/s "
                    f"({b['frames_delivered']:,}/{b['frames_offered']:,}) | ×{r['ratio_frames_per_s']:.2f} events/s, "
                    f"×{r['ratio_connections_held']:.2f} held |")
        notes.append(f"5. {r['what']}. Connecting all clients took {z['connect_seconds']} s (baseline "
                     f"{b['connect_seconds']} s); gateway RSS {z['gateway_rss_mb']} MB. Offered: "
                     f"{z['frames_offered'] // 10:,} frames/s for 10 s; a figure equal to that means it kept up (the "
                     f"baseline's may be capped by the offered rate, so the ratio is an upper bound). {r['notes']}")
    r = _load("6_runner_memory")
    if r:
        z, b = r["zapstream"], r["baseline_bare_websocket_clients"]
        rows.append(f"| 6 | Runner memory, {r['sessions']:,} linked sessions on one runner | "
                    f"{z['per_session_kb']:.1f} KB/session (RSS {z['rss_before_mb']} → {z['rss_after_mb']} MB) | "
                    f"bare websockets client, one connection per session: {b['per_session_kb']:.1f} KB | "
                    f"×{r['ratio']:.2f} |")
        notes.append(f"6. {r['notes']} Linking the {r['sessions']:,} sessions took {z['link_seconds']} s.")
    stamps = sorted({(_load(n) or {}).get("at", "") for n in ("1_ingest", "2_end_to_end", "3_projector", "4_replay",
                                                              "5_ws_gateway", "6_runner_memory")} - {""})
    if stamps:
        notes.append(f"\nResults measured between {stamps[0]} and {stamps[-1]} (each JSON has its own `at`).")
    missing = 6 - len(rows)
    text = HEADER + "\n| # | figure | zapstream | baseline (same run) | ratio |\n| --- | --- | --- | --- | --- |\n"
    text += "\n".join(rows) + "\n"
    if missing:
        text += f"\n{missing} benchmark(s) have no result yet.\n"
    text += "\n## Notes\n\n" + "\n".join(notes) + "\n"
    # Hand-written analysis lives in its own file so regenerating the figures never loses it.
    text += "\n" + (REPO / "bench" / "end_to_end_notes.md").read_text()
    text += media_upload.readme_section()
    text += campaigns.readme_section()
    text += ("\n## Running\n\n```bash\nmake bench                       # all seven, ~8 minutes\n"
             "uv run python -m bench ingest e2e  # some of them\nuv run python -m bench.report    # README only\n```\n")
    (REPO / "bench" / "README.md").write_text(text)


if __name__ == "__main__":
    write_readme()
