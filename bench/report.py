"""Render bench/README.md from bench/results/*.json (every figure next to its same-run baseline)."""

from __future__ import annotations

from typing import Any

import orjson

from bench import campaigns, media_upload
from bench.common import REPO, RESULTS

HEADER = """# Benchmarks

`make bench` (`uv run python -m bench`) runs the benchmarks below (figure 7, media upload memory, and
figure 8, campaigns, have sections of their own) against the Kafka broker and PostgreSQL of
`make infra-up`, on loopback only, each with its
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


def _load_note(r: dict[str, Any]) -> str:
    la = r.get("loadavg_1m")
    return f" Load average (1 min) during the run: {la['min']}–{la['max']}, mean {la['mean']}." if la else ""


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
    if r and "baseline_bare_pipeline" in r:
        z, b = r["zapstream"], r["baseline_bare_pipeline"]
        zs, bs = z["highest_sustained_rate"], b["highest_sustained_rate"]
        ratio = f"×{r['ratio']:.2f}" if r.get("ratio") is not None else "n/a (baseline sustained nothing)"
        rows.append(f"| 2 | End to end POST → WS event, {r['sessions']} sessions, open-loop sweep 50–1,000 msg/s | "
                    f"highest rate sustained 60 s with p99 ≤ 250 ms: **{zs} msg/s** | bare pipeline, same hops, "
                    f"no domain: {bs} msg/s | {ratio} |")
        notes.append("2. Goal: 500 msg/s sustained 60 s with p99 ≤ 250 ms, and ≥ 0.5 × the bare pipeline. "
                     + ("**Met.**" if zs >= 500 and (r.get("ratio") or 0) >= 0.5 else "**Not met** (see the sweep "
                        "table and *Where the end-to-end time goes*).") + " Sweep (delivered/s · p50 · p99):")
        notes.append("")
        notes.append("   | offered msg/s | zapstream | bare pipeline |")
        notes.append("   | ---: | --- | --- |")
        def cell(st: dict[str, Any]) -> str:
            if st["p99_ms"] is None:
                return f"{st['delivered_per_s']}/s · nothing delivered ({st['errors']} POST errors)"
            errs = f" · {st['errors']} POST errors" if st["errors"] else ""
            return f"{st['delivered_per_s']}/s · {st['p50_ms']:.0f} ms · {st['p99_ms']:.0f} ms{errs}"

        for zs_, bs_ in zip(z["steps"], b["steps"], strict=False):
            notes.append(f"   | {zs_['offered_rate']} | {cell(zs_)} | {cell(bs_)} |")
        notes.append("")
        notes.append(f"   ![p99 against offered rate](results/{r['plot']})")
        notes.append("")
    r = _load("3_projector")
    if r:
        z, b, rb = r["zapstream"], r["baseline_copy"], r.get("zapstream_rebuild_batch")
        rows.append(f"| 3 | Projector into the read model, {r['events']:,} events, {z.get('batch', 1000):,} per "
                    f"transaction | {z['events_per_s']:,.0f} events/s | asyncpg COPY of the same {r['rows']:,} rows: "
                    f"{b['events_per_s']:,.0f} events/s equiv. | ×{r['ratio']:.3f} (goal ×{r.get('goal', 0.3)}) |")
        extra = (f" With a rebuild's {rb['batch']:,} events per transaction: {rb['events_per_s']:,.0f} events/s, "
                 f"×{rb['ratio']:.3f} (same rows)." if rb else "")
        notes.append(f"3. {r['notes']}{extra}{_load_note(r)}")
    r = _load("4_replay")
    if r:
        z, b = r["zapstream"], r["baseline_raw_consume"]
        rows.append(f"| 4 | Replay (`make replay`: fresh projection from offset 0, then the swap), "
                    f"**{r['events']:,} events measured**, {r['sessions']:,} sessions, {r['tenants']} tenants | "
                    f"{z['events_per_s']:,.0f} events/s ({z['seconds']:,.0f} s; progress bar: "
                    f"{z['progress_bar_events_per_s']:,} ev/s) | raw read_committed consume + decode of the same "
                    f"topic: {b['events_per_s']:,.0f} events/s"
                    + (f" (before {b['before']['events_per_s']:,.0f}, after {b['after']['events_per_s']:,.0f})"
                       if "before" in b else "")
                    + f" | ×{r['ratio']:.3f} (goal ×{r['goal']}) |")
        notes.append(f"4. {r['notes']}{_load_note(r)}")
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
    r = _load("9_failover")
    if r:
        g = r["goals"]
        rows.append(f"| 9 | Failover, {r['sessions']:,} sessions over two runners, 5 SIGKILLs | last session back "
                    f"after SIGKILL: median **{g['last_session_back_after_sigkill_median_s']['measured']} s**; "
                    f"deep history (1,000 events/session): median {r['deep_history']['last_back_s']['median']} s | "
                    f"same kills with 10 events of history per session | ×{r['ratio']:.2f} (deep / shallow) |")
        notes.append("9. Goals and figures (same run):")
        notes.append("")
        notes.append("   | figure | goal | measured |")
        notes.append("   | --- | --- | --- |")
        labels = {"last_session_back_after_sigkill_median_s": "last session back after SIGKILL (median of 5), s",
                  "graceful_handover_gap_s": "graceful hand-over gap (max over moved sessions), s",
                  "healthy_sessions_disconnected": "healthy sessions disconnected by a rebalance",
                  "accepted_sends_failed": "accepted sends failed by a takeover",
                  "deep_vs_shallow_takeover": "takeover time, 1,000 vs 10 events of history per session"}
        for key, label in labels.items():
            notes.append(f"   | {label} | {g[key]['goal']} | {g[key]['measured']} |")
        sh, dp = r["shallow_history"], r["deep_history"]
        notes.append("")
        notes.append(f"   First/last reconnection after each SIGKILL (min/median/max, s): shallow "
                     f"{sh['first_back_s']['min']}/{sh['first_back_s']['median']}/{sh['first_back_s']['max']} and "
                     f"{sh['last_back_s']['min']}/{sh['last_back_s']['median']}/{sh['last_back_s']['max']}; deep "
                     f"{dp['first_back_s']['min']}/{dp['first_back_s']['median']}/{dp['first_back_s']['max']} and "
                     f"{dp['last_back_s']['min']}/{dp['last_back_s']['median']}/{dp['last_back_s']['max']}. "
                     f"Rolling restart of both runners under load: {r['rolling_restart']['seconds']} s, "
                     f"{r['rolling_restart']['sessions_with_a_gap']} sessions saw a gap (max "
                     f"{r['rolling_restart']['max_gap_s']} s). Sends: {r['sends_accepted']} accepted, "
                     f"{r['sends_failed']} failed. Deep history: {r['deep_history_setup']['events_written']:,} events "
                     f"appended, first start with a full replay took "
                     f"{r['deep_history_setup']['first_start_with_full_replay_s']} s (then checkpointed). "
                     f"Load average during the run: {r['load_average']}.")
    r = _load("10_runner_relay")
    if r:
        z, b = r["zapstream"], r["baseline_bare_transactional_relay"]
        rows.append(f"| 10 | Runner relay, {z['commands']:,} send commands, {z['sessions']} sessions, one runner | "
                    f"{z['commands_per_s']:,.0f} commands/s | bare transactional consume → produce, batch "
                    f"{b['batch']}: {b['commands_per_s']:,.0f}/s | ×{r['ratio']:.2f} |")
        notes.append(f"10. {r['what']}. Goal {r['goal']}: **{'met' if r['ratio'] >= 0.5 else 'not met'}**. "
                     "The runner's figure includes the simulator (a separate process on the same 2 cores) "
                     "answering every send.")
    stamps = sorted({(_load(n) or {}).get("at", "") for n in ("1_ingest", "2_end_to_end", "3_projector", "4_replay",
                                                              "5_ws_gateway", "6_runner_memory")} - {""})
    if stamps:
        notes.append(f"\nResults measured between {stamps[0]} and {stamps[-1]} (each JSON has its own `at`).")
    missing = 8 - len(rows)
    text = HEADER + "\n| # | figure | zapstream | baseline (same run) | ratio |\n| --- | --- | --- | --- | --- |\n"
    text += "\n".join(rows) + "\n"
    if missing:
        text += f"\n{missing} benchmark(s) have no result yet.\n"
    text += "\n## Notes\n\n" + "\n".join(notes) + "\n"
    # Hand-written analysis lives in its own file so regenerating the figures never loses it.
    text += "\n" + (REPO / "bench" / "end_to_end_notes.md").read_text()
    text += media_upload.readme_section()
    text += campaigns.readme_section()
    text += ("\n## Running\n\n```bash\nmake bench                       # all of them, ~45 minutes (the 1M replay and failover are the long ones)\n"
             "uv run python -m bench ingest e2e  # some of them\nuv run python -m bench.report    # README only\n```\n")
    (REPO / "bench" / "README.md").write_text(text)


if __name__ == "__main__":
    write_readme()
