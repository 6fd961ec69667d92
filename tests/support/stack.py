"""Start zapstream's services as real processes against the real Kafka and PostgreSQL."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]
# One folder per pytest process, so concurrent runs never overwrite each other's logs.
LOG_DIR = REPO / ".data" / "test-logs" / str(os.getpid())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Proc:
    name: str
    module: str
    env: dict[str, str]
    health: str | None = None
    popen: subprocess.Popen[bytes] | None = None
    log_path: Path = field(default_factory=Path)
    starts: int = 0

    def start(self) -> None:
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        self.starts += 1
        self.log_path = LOG_DIR / f"{self.name}.{self.starts}.log"
        log = self.log_path.open("wb")
        env = {**os.environ, **self.env}
        self.popen = subprocess.Popen([sys.executable, "-m", self.module], env=env, stdout=log,
                                      stderr=subprocess.STDOUT, cwd=REPO)
        log.close()
        if self.health:
            wait_http(self.health, self, timeout=60)

    def kill(self) -> None:
        """SIGKILL: no clean-up, no goodbye; the crash the guarantees are about."""
        if self.popen and self.popen.poll() is None:
            self.popen.send_signal(signal.SIGKILL)
            self.popen.wait(10)

    def stop(self, timeout: float = 20) -> None:
        if self.popen and self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()

    def tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def wait_http(url: str, proc: Proc | None = None, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc and proc.popen and proc.popen.poll() is not None:
            raise RuntimeError(f"{proc.name} exited with {proc.popen.returncode}:\n{proc.tail()}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} not ready after {timeout}s:\n{proc.tail() if proc else ''}")
