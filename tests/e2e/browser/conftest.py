"""Browser tests run in their own pytest process (`make test-browser`; `make test` runs them after the rest):
they start their own stack, and their SMTP inbox takes the port that tests/e2e/test_auth.py's inbox would."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from tests.e2e.test_auth import Inbox


@pytest.fixture(scope="session")
def mailbox(run_id: str) -> Iterator[Inbox]:
    """The SMTP server the test stack's command API sends to (port derived from run_id in tests/conftest.py)."""
    handler = Inbox()
    controller = Controller(handler, hostname="127.0.0.1", port=10000 + int(run_id, 16) % 20000)
    controller.start()
    yield handler
    controller.stop()


# --- console/RESULTS.md: the latest run's outcome, committed with the code ----------------------------

RESULTS = Path(__file__).resolve().parents[3] / "console" / "RESULTS.md"
_run: dict[str, Any] = {}


def pytest_sessionstart(session: pytest.Session) -> None:
    _run["start"] = time.monotonic()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Collected with other tests (e.g. a bare `pytest tests/e2e`), the browser tests are skipped: their SMTP
    inbox would take the port that tests/e2e/test_auth.py's inbox takes in the same process."""
    here = Path(__file__).parent
    ours = [item for item in items if here in Path(str(item.fspath)).parents]
    if ours and len(ours) < len(items):
        for item in ours:
            item.add_marker(pytest.mark.skip(reason="run on their own: make test-browser (or pytest tests/e2e/browser)"))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if "tests/e2e/browser/" not in report.nodeid:
        return
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        _run.setdefault("reports", []).append(report)


def _version(cmd: list[str]) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=20).stdout.strip() or "?"
    except (OSError, subprocess.SubprocessError):
        return "not installed"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    reports: list[pytest.TestReport] = _run.get("reports", [])
    if not reports or all(r.outcome == "skipped" for r in reports):
        return  # nothing ran here (skipped, or only other tests collected): keep the last real result
    lines = [
        "# Console browser tests: latest run",
        "",
        "Written by tests/e2e/browser/conftest.py at the end of every run (`make test-browser`, or `make test`).",
        "",
        f"- date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M:%S')} UTC",
        f"- result: {'PASS' if all(r.outcome == 'passed' for r in reports) else 'FAIL'}"
        f" ({sum(r.outcome == 'passed' for r in reports)} passed, {sum(r.outcome == 'failed' for r in reports)} failed,"
        f" {sum(r.outcome == 'skipped' for r in reports)} skipped)",
        f"- duration: {time.monotonic() - _run.get('start', time.monotonic()):.0f} s (stack start-up included)",
        f"- browser: {_version(['/usr/bin/chromium', '--version'])}, headless, driven by playwright-core on node"
        f" {_version(['node', '-v'])}",
        "- screenshots: docs/console/ (main pages); a failing step leaves docs/console/failure-<step>.png",
        "",
        "| test | outcome | seconds |",
        "| --- | --- | --- |",
        *(f"| {r.nodeid.split('::')[-1]} | {r.outcome} | {r.duration:.0f} |" for r in reports),
        "",
    ]
    RESULTS.write_text("\n".join(lines))
