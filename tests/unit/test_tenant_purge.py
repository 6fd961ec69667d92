"""A deleted tenant's purge (its S3 files, other services' rows): an outage is recorded and retried, a repeat
is harmless, and the purge is done only once a run started after its settle time."""

from __future__ import annotations

import asyncio

from command_api.identity.service import IdentityService, tenant_prefix
from command_api.settings import AuthSettings
from tests.unit.command_api_fakes import FakeBus, signer


class Store:
    def __init__(self, keys: list[str]) -> None:
        self.objects = set(keys)
        self.down = False

    async def delete_prefix(self, prefix: str) -> int:
        if self.down:
            raise ConnectionError("S3 down")
        gone = {k for k in self.objects if k.startswith(prefix)}
        self.objects -= gone
        return len(gone)


class Purges:
    def __init__(self) -> None:
        self.settled = False
        self.pending = {"t1"}
        self.rows_purged = 0
        self.runs: list[tuple[str, str | None, bool]] = []
        self.finished = asyncio.Event()

    async def pending_tenant_purges(self) -> list[str]:
        return sorted(self.pending)

    async def purge_rows(self, tenant_id: str) -> bool:
        self.rows_purged += 1
        return self.settled

    async def tenant_purge_ran(self, tenant_id: str, error: str | None, done: bool) -> None:
        self.runs.append((tenant_id, error, done))
        if done:
            self.pending.discard(tenant_id)
            self.finished.set()


def service(repo: Purges, store: Store) -> IdentityService:
    return IdentityService(repo, AuthSettings(), signer(), "http://app", FakeBus(), store=store)


async def test_purge_retries_after_an_outage_and_is_done_only_once_settled() -> None:
    store = Store([f"{tenant_prefix('t1')}uploads/a/x.png", f"{tenant_prefix('t1')}sessions/s/messages/m/y.jpg",
                   f"{tenant_prefix('t10')}uploads/b/z.png"])  # t10 shares the first characters, not the prefix
    repo = Purges()
    svc = service(repo, store)
    store.down = True
    assert not await svc.run_purge("t1")
    assert repo.runs[-1][2] is False and "S3 down" in (repo.runs[-1][1] or "")
    assert len(store.objects) == 3
    store.down = False
    assert not await svc.run_purge("t1")  # files gone, but events in flight may still write rows
    assert store.objects == {f"{tenant_prefix('t10')}uploads/b/z.png"}
    repo.settled = True
    assert await svc.run_purge("t1")
    assert repo.runs[-1] == ("t1", None, True)
    assert await svc.run_purge("t1")  # a repeat is harmless
    assert repo.rows_purged == 3


async def test_the_sweep_finishes_pending_purges_until_stopped() -> None:
    store = Store([f"{tenant_prefix('t1')}uploads/a/x.png"])
    repo = Purges()
    repo.settled = True
    svc = service(repo, store)
    stopping = asyncio.Event()
    sweep = asyncio.create_task(svc.sweep_purges(stopping, interval_s=0.01))
    await repo.finished.wait()
    stopping.set()
    await sweep
    assert not store.objects and repo.runs[-1] == ("t1", None, True)
