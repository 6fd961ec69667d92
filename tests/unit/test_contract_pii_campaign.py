"""The campaign topic's personal data: every campaign event type round-trips through the codec, and the
recipients' phones and names, the message text and suppressed numbers are never in clear on the wire."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from pydantic import BaseModel

from analytics.windows import SEP, facts, open_info, recipients_added, sealed_in
from zapstream_contracts import campaign_payloads as cp
from zapstream_contracts import pii
from zapstream_contracts.campaign_envelope import CampaignEnvelope
from zapstream_contracts.events import CAMPAIGN_EVENTS, SUPPRESSION_ADDED
from zapstream_contracts.payloads import MediaRef

TENANT = "t-1"
AT = "2026-01-01T00:00:00.000Z"
PHONE = "34600111222"
SECRETS = (PHONE.encode(), b"Ana Garcia", b"doctora", b"Vecinos del 5", b"Hola {nombre}, te escribe")


def _dump(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(by_alias=True, mode="json")


def _payloads() -> dict[str, dict[str, Any]]:
    """One payload per campaign event type (and the tenant-wide suppression)."""
    return {
        "campaign.created": _dump(cp.CampaignCreated(
            tenant_id=TENANT, name="Promo enero", sessions=[cp.CampaignSession(session_id="s1")],
            message=cp.CampaignMessage(text="Hola {nombre}, te escribe la {sustantivo}", media=[
                MediaRef(kind="image", key="t-1/a.jpg", mime="image/jpeg", size=10)]),
            pacing=cp.Pacing(), timezone="Europe/Madrid", expected_recipients=2, created_at=AT)),
        "campaign.recipients.added": _dump(cp.RecipientsAdded(tenant_id=TENANT, chunk=0, recipients=[
            cp.Recipient(id="r000001", seq=1, phone=PHONE, nombre="Ana Garcia", sustantivo="doctora",
                         grupo="Vecinos del 5"),
            cp.Recipient(id="r000002", seq=2, phone="34600111333", skip_reason="duplicate"),
        ])),
        "campaign.status": _dump(cp.StatusChanged(tenant_id=TENANT, status="running", previous="draft", at=AT)),
        "campaign.recipients.typing": _dump(cp.RecipientsTyping(tenant_id=TENANT, items=[
            cp.Typing(recipient_id="r000001", session_id="s1", send_at=AT)])),
        "campaign.recipients.dispatched": _dump(cp.RecipientsDispatched(tenant_id=TENANT, items=[
            cp.Dispatch(recipient_id="r000001", session_id="s1", attempt=1, command_ids=["c1"], parts=[0], at=AT)])),
        "campaign.recipients.updated": _dump(cp.RecipientsUpdated(tenant_id=TENANT, updates=[
            cp.RecipientUpdate(recipient_id="r000001", status="sent", at=AT, message_id="m1")])),
        "campaign.retry_requested": _dump(cp.RetryRequested(tenant_id=TENANT, recipient_ids=["r000001"], at=AT)),
        "campaign.progress": _dump(cp.Progressed(tenant_id=TENANT, status="running", counts=cp.Counts(total=2),
                                                 at=AT)),
        SUPPRESSION_ADDED.type: _dump(cp.SuppressionAdded(tenant_id=TENANT, phone=PHONE, reason="BAJA",
                                                          source="reply", session_id="s1", at=AT)),
    }


def test_every_campaign_type_is_covered() -> None:
    assert set(_payloads()) == {*CAMPAIGN_EVENTS, SUPPRESSION_ADDED.type}


@pytest.mark.parametrize("type_", sorted(_payloads()))
def test_each_campaign_type_round_trips_and_nothing_personal_stays_in_clear(type_: str) -> None:
    key = pii.new_key()
    payload = _payloads()[type_]
    sealed = pii.encrypt_payload(type_, payload, key, TENANT)
    raw = orjson.dumps(sealed)
    for secret in SECRETS:
        assert secret not in raw, (type_, secret)
    assert pii.decrypt_payload(type_, sealed, {TENANT: key}) == payload
    assert payload == _payloads()[type_]  # the input is not modified
    # The typed model still parses the sealed payload (the wire type stays a string).
    CAMPAIGN_EVENTS.get(type_, SUPPRESSION_ADDED).parse(sealed)


def test_the_marks_are_where_expected() -> None:
    marked = {t for t in _payloads() if pii.pii_fields(t) is not None}
    assert marked == {"campaign.created", "campaign.recipients.added", SUPPRESSION_ADDED.type}
    sealed = pii.encrypt_payload("campaign.recipients.added", _payloads()["campaign.recipients.added"],
                                 pii.new_key(), TENANT)
    first = sealed["recipients"][0]
    assert all(pii.is_encrypted(first[f]) for f in ("phone", "nombre", "sustantivo", "grupo"))
    # Ids, order and the skip reason are not personal: the aggregate and the read model join on them.
    assert (first["id"], first["seq"]) == ("r000001", 1)
    assert sealed["recipients"][1]["skipReason"] == "duplicate"
    created = pii.encrypt_payload("campaign.created", _payloads()["campaign.created"], pii.new_key(), TENANT)
    assert pii.is_encrypted(created["message"]["text"]) and created["name"] == "Promo enero"
    assert created["message"]["media"][0]["key"] == "t-1/a.jpg"


def test_an_erased_tenant_reads_as_null_with_erased_true() -> None:
    key = pii.new_key()
    sealed = pii.encrypt_payload("campaign.recipients.added", _payloads()["campaign.recipients.added"], key, TENANT)
    opened = pii.decrypt_payload("campaign.recipients.added", sealed, {})
    assert opened["erased"] is True
    added = cp.RecipientsAdded.model_validate(opened)
    assert added.recipients[0].phone is None and added.recipients[0].nombre is None
    supp = pii.decrypt_payload(SUPPRESSION_ADDED.type,
                               pii.encrypt_payload(SUPPRESSION_ADDED.type, _payloads()[SUPPRESSION_ADDED.type],
                                                   key, TENANT), {})
    assert cp.SuppressionAdded.model_validate(supp).phone is None


def test_campaign_envelopes_seal_and_open_through_a_record() -> None:
    key = pii.new_key()
    env = CampaignEnvelope(type="campaign.recipients.added", campaign_id="c1", event_id="e1", occurred_on=AT,
                           payload=_payloads()["campaign.recipients.added"], version=2)
    sealed = pii.seal_envelope(env, key, env.tenant_id)
    assert isinstance(sealed, CampaignEnvelope) and sealed.version == 2
    assert PHONE.encode() not in sealed.value()
    back = CampaignEnvelope.from_record(sealed.value(), sealed.headers())
    assert pii.subjects_of(back.type, back.payload) == {TENANT}
    assert pii.open_envelope(back, {TENANT: key}).value() == env.value()
    # A type without personal fields is the same object, untouched.
    progress = CampaignEnvelope(type="campaign.progress", campaign_id="c1", event_id="e2", occurred_on=AT,
                                payload=_payloads()["campaign.progress"], version=3)
    assert pii.seal_envelope(progress, key, TENANT) is progress
    # The generic reader (the export's --reveal) opens it too, without the schema.
    assert pii.reveal(orjson.loads(sealed.value()), {TENANT: key}) == orjson.loads(env.value())


def test_the_analytics_table_keeps_recipients_sealed_and_opens_them_to_count() -> None:
    key = pii.new_key()
    env = CampaignEnvelope(type="campaign.recipients.added", campaign_id="c1", event_id="e1", occurred_on=AT,
                           payload=_payloads()["campaign.recipients.added"], version=2)
    stored = dict(recipients_added(pii.seal_envelope(env, key, TENANT)))
    info = stored["c1:r000001"]
    assert PHONE not in info and "Vecinos" not in info and sealed_in(info) == {TENANT}
    assert open_info(info, {TENANT: key}) == f"Vecinos del 5{SEP}{PHONE}"
    assert open_info(info, {}) == SEP  # erased: counted for the tenant only
    assert open_info(f"G{SEP}595", {}) == f"G{SEP}595" and sealed_in(f"G{SEP}595") == set()  # older, clear
    updated = CampaignEnvelope(type="campaign.recipients.updated", campaign_id="c1", event_id="e2",
                               occurred_on=AT, payload=_payloads()["campaign.recipients.updated"], version=3)
    lookup = {k: open_info(v, {TENANT: key}) for k, v in stored.items()}
    assert {(f.dim, f.key) for f in facts(updated, lookup)} == {("all", ""), ("group", "Vecinos del 5"),
                                                                 ("contact", PHONE)}
