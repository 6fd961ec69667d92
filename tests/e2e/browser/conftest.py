"""Browser tests run in their own pytest process (`make test-browser`; `make test` runs them after the rest):
they start their own stack, and their SMTP inbox takes the port that tests/e2e/test_auth.py's inbox would."""

from __future__ import annotations

from collections.abc import Iterator

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
