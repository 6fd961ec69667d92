"""Composition root of the projector: settings → pool → projector."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

import orjson

from projector.app import Projector, install_signal_handlers
from projector.replay import compare, replay
from projector.secrets import SecretsApplier
from projector.settings import Settings
from zapstream_platform import logs
from zapstream_platform.db import create_pool
from zapstream_platform.metrics import Metrics
from zapstream_platform.observed import run_observed
from zapstream_platform.pii import KeyRing

log = logging.getLogger(__name__)


async def run(settings: Settings, metrics: Metrics | None = None) -> None:
    pool = await create_pool(settings.postgres)
    stopping = asyncio.Event()
    try:
        projector = Projector(settings, pool, metrics=metrics, keys=KeyRing(pool))
        install_signal_handlers(projector)
        # QR and pairing codes from the secrets topic (best effort, beside the event projection).
        applier = asyncio.create_task(SecretsApplier(settings.kafka, pool, settings.projection,
                                                     settings.secrets_lookback_s).run(stopping))
        try:
            await projector.run()
        finally:
            stopping.set()
            applier.cancel()
            await asyncio.gather(applier, return_exceptions=True)
    finally:
        await pool.close()


def main() -> None:
    settings = Settings()
    logs.configure("projector", settings.log_level)
    run_observed("projector", settings, lambda metrics: run(settings, metrics))


async def _replay(settings: Settings, keep_old: bool) -> None:
    pool = await create_pool(settings.postgres)
    try:
        summary = await replay(settings, pool, keep_old=keep_old)
        print(orjson.dumps(summary).decode())
    finally:
        await pool.close()


async def _check(settings: Settings, a: str, b: str) -> bool:
    pool = await create_pool(settings.postgres)
    try:
        report = await compare(pool, a, b)
    finally:
        await pool.close()
    width = max(len(t) for t in report)
    for table, r in report.items():
        mark = "equal" if r["equal"] else "DIFFERENT"
        print(f"{table:<{width}}  rows {r['rows'][0]:>9} / {r['rows'][1]:<9} {mark}")  # type: ignore[index]
    return all(bool(r["equal"]) for r in report.values())


def main_cli(argv: list[str]) -> None:
    """``replay [--projection main] [--keep-old]`` and ``check SCHEMA_A SCHEMA_B``."""
    parser = argparse.ArgumentParser(prog="python -m projector")
    sub = parser.add_subparsers(dest="cmd", required=True)
    rp = sub.add_parser("replay", help="rebuild a projection from offset 0 and swap it in with no downtime")
    rp.add_argument("--projection", default="main")
    rp.add_argument("--keep-old", action="store_true", help="keep the previous schema (for `check`)")
    ck = sub.add_parser("check", help="compare two read-model schemas by row counts and checksums")
    ck.add_argument("a")
    ck.add_argument("b")
    args = parser.parse_args(argv)
    settings = Settings()
    logs.configure("projector", "WARNING")
    if args.cmd == "replay":
        asyncio.run(_replay(settings.model_copy(update={"projection": args.projection}), args.keep_old))
    elif not asyncio.run(_check(settings, args.a, args.b)):
        sys.exit(1)
