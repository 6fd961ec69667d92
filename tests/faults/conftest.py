"""Fault suite: real processes, real Kafka/PostgreSQL/simulator; SIGKILLs and infrastructure restarts.

Not part of ``make test``: it restarts the shared Kafka broker and PostgreSQL.
Run with ``make test-faults`` (``pytest tests/faults``). Every run rewrites
``tests/faults/RESULTS.md`` with what ran, how long it took and the figures
each test recorded.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Stack, Tenant
from tests.e2e.conftest import link_session
from tests.faults.support import Load, new_phone
from tests.support import stack as stack_module
from tests.support.clients import WsCollector

RESULTS = Path(__file__).with_name("RESULTS.md")

# .data/test-logs is shared by every concurrent test run and Proc names its logs
# <name>.<n>.log, so runs overwrite each other's logs. The fault suite's
# processes log into a directory of their own.
stack_module.LOG_DIR = stack_module.REPO / ".data" / "test-logs" / f"faults-{os.getpid()}"
_figures: dict[str, dict[str, Any]] = {}
_reports: dict[str, tuple[str, float]] = {}
_started = time.monotonic()


@pytest.fixture
def record(request: pytest.FixtureRequest) -> Callable[..., None]:
    """``record(key=value, ...)``: figures shown next to the test in RESULTS.md."""

    def add(**figures: Any) -> None:
        _figures.setdefault(request.node.nodeid, {}).update(figures)

    return add


@pytest.fixture
async def sim(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.sim_url, timeout=30) as client:
        yield client


@pytest.fixture
def make_load(stack: Stack, tenant: Tenant, sim: httpx.AsyncClient) -> Callable[..., Any]:
    """Link ``n`` sessions for the test's tenant and return a :class:`Load` to one silent contact."""

    async def make(n: int) -> Load:
        url = f"{stack.ws_url}/ws/sessions?accessToken={tenant.key}"
        async with WsCollector(url) as ws:
            sids = [(await link_session(stack, tenant, ws))[0] for _ in range(n)]
        contact = new_phone()
        r = await sim.post(f"/control/contacts/{contact}", json={"autoReply": False, "autoRead": False})
        r.raise_for_status()
        # A long client timeout: a POST during an outage should resolve, not become "uncertain".
        http = httpx.AsyncClient(base_url=stack.api_url, headers=dict(tenant.http.headers), timeout=90)
        return Load(http, sids, contact)

    return make


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if "tests/faults/" not in report.nodeid:
        return
    outcome, duration = _reports.get(report.nodeid, ("passed", 0.0))
    duration += report.duration
    if report.failed:
        outcome = f"FAILED ({report.when})"
    elif report.skipped:
        outcome = "skipped"
    _reports[report.nodeid] = (outcome, duration)


# The 3-broker cluster test (make test-faults-cluster) runs on its own; its results are a section of
# RESULTS.md after this marker, and each kind of run rewrites only its own part of the file.
CLUSTER_TEST = "test_5_broker_loss.py"
CLUSTER_MARK = "<!-- 3-broker cluster section: written by make test-faults-cluster -->"


def _render(title: str, target: str, reports: dict[str, tuple[str, float]], level: str) -> list[str]:
    lines = [
        f"{level} {title}",
        "",
        f"Written by {target} at the end of every run; commit it.",
        "",
        f"- run at: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- machine: {os.cpu_count()} cores, {platform.python_implementation()} {platform.python_version()}, "
        "shared with other engineers' test runs",
        f"- wall time of the session: {time.monotonic() - _started:.0f} s",
        "",
        "| test | outcome | duration (s) |",
        "| --- | --- | ---: |",
    ]
    for nodeid, (outcome, duration) in reports.items():
        lines.append(f"| `{nodeid.split('tests/faults/')[-1]}` | {outcome} | {duration:.1f} |")
    lines += ["", f"{level}# Figures recorded by each test", ""]
    for nodeid, figures in _figures.items():
        if nodeid not in reports:
            continue
        lines.append(f"{level}## `{nodeid.split('tests/faults/')[-1]}`")
        lines.append("")
        for key, value in figures.items():
            lines.append(f"- **{key}**: {value}")
        lines.append("")
    return lines


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not _reports:
        return
    main = {k: v for k, v in _reports.items() if CLUSTER_TEST not in k}
    clustered = {k: v for k, v in _reports.items() if CLUSTER_TEST in k}
    old = RESULTS.read_text() if RESULTS.exists() else ""
    old_main, _, old_cluster = old.partition(CLUSTER_MARK)
    text = ("\n".join(_render("Fault suite: latest results", "`make test-faults` (`pytest tests/faults`)", main, "#"))
            if main else old_main.rstrip()) + "\n"
    if clustered:
        text += "\n" + CLUSTER_MARK + "\n\n" + "\n".join(_render(
            "3-broker cluster: broker loss under load", "`make test-faults-cluster`", clustered, "##")) + "\n"
    elif old_cluster:
        text += "\n" + CLUSTER_MARK + old_cluster
    RESULTS.write_text(text)


@pytest.fixture(autouse=True)
def revive_services(stack: Stack, record: Callable[..., None]) -> None:
    """A service that died in an earlier fault test is restarted, so one failure does not cascade."""
    dead = [name for name, p in stack.procs.items() if p.popen is None or p.popen.poll() is not None]
    for name in dead:
        stack.procs[name].start()
    if dead:
        record(restarted_before_test=dead)
