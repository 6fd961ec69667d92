"""What the analytics app counts (pure; no faust here, so it is tested on its own).

A recipient outcome in ``campaign.recipients.updated`` (sent, delivered, read,
failed) counts once for the tenant, once for the recipient's group and once
for the contact (phone), in the tumbling window that holds the record's time.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

METRICS = ("sent", "delivered", "read", "failed")
HOUR = 3600
DAY = 86_400
SEP = "\x1f"


@dataclass(frozen=True, slots=True)
class Fact:
    tenant_id: str
    dim: str  # all | group | contact
    key: str
    metric: str

    def table_key(self, partition: int) -> str:
        """Faust keeps one in-memory dict per worker: the source partition in the key keeps each count in
        exactly one partition's shard (and its changelog), whichever worker owns it."""
        return SEP.join((str(partition), self.tenant_id, self.dim, self.key, self.metric))


def window_start(timestamp: float, size: int) -> float:
    """The start of the tumbling window of ``size`` seconds holding ``timestamp`` (faust's alignment)."""
    return timestamp - timestamp % size


def recipient_key(campaign_id: str, recipient_id: str) -> str:
    return f"{campaign_id}:{recipient_id}"


def recipients_added(envelope: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """(table key, "group␟phone") for each recipient that will be sent to."""
    cid = envelope["campaignId"]
    for r in envelope["payload"]["recipients"]:
        if not r.get("skipReason"):
            yield recipient_key(cid, r["id"]), f"{r.get('grupo') or ''}{SEP}{r['phone']}"


def facts(envelope: Mapping[str, Any], lookup: Mapping[str, str | None]) -> Iterator[Fact]:
    """The facts of one ``campaign.recipients.updated`` envelope (``lookup``: recipient key → group␟phone)."""
    payload = envelope["payload"]
    tenant = payload["tenantId"]
    for u in payload["updates"]:
        if u.get("part") is not None or u["status"] not in METRICS:
            continue
        info = lookup.get(recipient_key(envelope["campaignId"], u["recipientId"]))
        group, _, phone = (info or SEP).partition(SEP)
        metrics = [u["status"]]
        if u["status"] in ("delivered", "read") and u.get("messageId"):
            metrics.insert(0, "sent")  # a receipt overtook the send's outcome: the message was sent as well
        for metric in metrics:
            yield Fact(tenant, "all", "", metric)
            yield Fact(tenant, "group", group, metric)
            if phone:
                yield Fact(tenant, "contact", phone, metric)
