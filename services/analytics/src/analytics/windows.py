"""What the analytics app counts (pure; no faust here, so it is tested on its own).

A recipient outcome in ``campaign.recipients.updated`` (sent, delivered, read,
failed) counts once for the tenant, once for the recipient's group and once
for the contact (phone), in the tumbling window that holds the record's time.

The recipients' groups and phones are encrypted with the tenant's key on the campaign topic; the app keeps
them sealed in its ``recipients`` table (whose changelog is a Kafka topic too) and opens them only to count
(:func:`open_info`), so neither topic holds them in clear and an erased tenant's contacts count as none.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag

from zapstream_contracts import campaign_payloads as cp
from zapstream_contracts.campaign_envelope import CampaignEnvelope
from zapstream_contracts.pii import PREFIX, decrypt, is_encrypted, subject_of

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


def recipients_added(env: CampaignEnvelope) -> Iterator[tuple[str, str]]:
    """(table key, "group␟phone") for each recipient of a ``campaign.recipients.added`` that will be sent to
    (each part as on the topic: sealed with the tenant's key, or clear in records older than that)."""
    for r in env.data(cp.RecipientsAdded).recipients:
        if not r.skip_reason:
            yield recipient_key(env.campaign_id, r.id), f"{r.grupo or ''}{SEP}{r.phone or ''}"  # erased: no contact


def sealed_in(info: str | None) -> set[str]:
    """The subjects (tenants) whose keys :func:`open_info` needs for a stored ``group␟phone``."""
    if info is None or PREFIX not in info:
        return set()
    return {subject_of(part) for part in info.split(SEP) if is_encrypted(part)}


def _open(value: str, field: str, keys: Mapping[str, bytes]) -> str:
    if not is_encrypted(value):
        return value
    key = keys.get(subject_of(value))
    if key is None:
        return ""  # erased: the recipient still counts for the tenant, not for a group or a contact
    try:
        return decrypt(key, field, value)
    except (InvalidTag, ValueError):
        return ""  # does not authenticate: counted as unknown rather than stopping the dashboards


def open_info(info: str | None, keys: Mapping[str, bytes]) -> str | None:
    """A stored ``group␟phone`` in clear (the fields' wire names are ``grupo`` and ``phone``)."""
    if info is None or PREFIX not in info:
        return info
    group, _, phone = info.partition(SEP)
    return f"{_open(group, 'grupo', keys)}{SEP}{_open(phone, 'phone', keys)}"


def facts(env: CampaignEnvelope, lookup: Mapping[str, str | None]) -> Iterator[Fact]:
    """The facts of one ``campaign.recipients.updated`` envelope (``lookup``: recipient key → group␟phone)."""
    updated = env.data(cp.RecipientsUpdated)
    tenant = updated.tenant_id
    for u in updated.updates:
        if u.part is not None or u.status not in METRICS:
            continue
        info = lookup.get(recipient_key(env.campaign_id, u.recipient_id))
        group, _, phone = (info or SEP).partition(SEP)
        metrics: list[str] = [u.status]
        if u.status in ("delivered", "read") and u.message_id:
            metrics.insert(0, "sent")  # a receipt overtook the send's outcome: the message was sent as well
        for metric in metrics:
            yield Fact(tenant, "all", "", metric)
            yield Fact(tenant, "group", group, metric)
            if phone:
                yield Fact(tenant, "contact", phone, metric)
