"""The contract's personal-data codec: marked fields are encrypted per subject, erased keys read as null."""

from __future__ import annotations

import orjson
import pytest

from zapstream_contracts import payloads as p
from zapstream_contracts import pii
from zapstream_contracts.envelope import Envelope
from zapstream_contracts.events import SESSION_EVENTS

TENANT = "t-1"


def _upsert() -> dict[str, object]:
    return p.MessagesUpsert(
        tenant_id=TENANT, upsert_type="notify", messages_count=2, messages=[
            p.MessageSummary(id="m1", remote_jid="34600000001@s.whatsapp.net", from_me=False, timestamp=1,
                             text="hola Ana, mi DNI es 123", push_name="Ana"),
            p.MessageSummary(id="m2", remote_jid="34600000001@s.whatsapp.net", from_me=True, timestamp=2,
                             type="locationMessage",
                             rich=p.Location(latitude=40.4, longitude=-3.7, name="Casa de Ana", address="C/ Mayor 1")),
        ]).model_dump(by_alias=True, mode="json")


def test_marked_fields_round_trip_and_nothing_personal_stays_in_clear() -> None:
    key = pii.new_key()
    payload = _upsert()
    sealed = pii.encrypt_payload("session.messages.upsert", payload, key, TENANT)
    raw = orjson.dumps(sealed)
    for secret in (b"hola Ana", b"\"Ana\"", b"Casa de Ana", b"C/ Mayor"):
        assert secret not in raw
    # JIDs are join keys: they stay as they are (pseudonymizing them is later work).
    assert b"34600000001@s.whatsapp.net" in raw
    assert pii.subjects_of("session.messages.upsert", sealed) == {TENANT}
    assert pii.decrypt_payload("session.messages.upsert", sealed, {TENANT: key}) == payload
    assert payload == _upsert()  # the input is not modified


def test_lists_of_edits_contacts_and_required_fields_are_covered() -> None:
    key = pii.new_key()
    cases = {
        "session.messages.edit": p.MessagesEdit(tenant_id=TENANT, edits_count=1, edits=[
            p.MessageEdit(message_id="m1", text="corrected secret", edited_at=1)]),
        "session.contacts.upsert": p.ContactsUpsert(tenant_id=TENANT, contacts_count=1, contacts=[
            p.Contact(id="1@s.whatsapp.net", name="Ana Pérez", notify="Anita")]),
        "session.status.connected": p.StatusConnected(tenant_id=TENANT, phone="34611111111",
                                                      connected_at="2026-01-01T00:00:00.000Z"),
        "session.messages.send_requested": p.SendRequested(tenant_id=TENANT, command_id="c", message_id="m",
                                                           to="1@s.whatsapp.net", text="secret send"),
    }
    for type_, model in cases.items():
        payload = model.model_dump(by_alias=True, mode="json")
        sealed = pii.encrypt_payload(type_, payload, key, TENANT)
        raw = orjson.dumps(sealed)
        for secret in (b"corrected secret", b"Ana P", b"Anita", b"34611111111", b"secret send"):
            assert secret not in raw, type_
        assert pii.decrypt_payload(type_, sealed, {TENANT: key}) == payload


def test_an_erased_key_reads_as_null_with_erased_true_and_the_typed_model_still_parses() -> None:
    key = pii.new_key()
    sealed = pii.encrypt_payload("session.messages.upsert", _upsert(), key, TENANT)
    opened = pii.decrypt_payload("session.messages.upsert", sealed, {})
    assert opened["erased"] is True
    first, second = opened["messages"]
    assert first["text"] is None and first["pushName"] is None and first["id"] == "m1"
    assert second["rich"]["name"] is None and second["rich"]["latitude"] == 40.4
    model = p.MessagesUpsert.model_validate(opened)
    assert model.erased is True and model.messages[0].text is None
    # Required personal fields read as None too, and their models accept it.
    edit = pii.encrypt_payload("session.messages.edit", p.MessagesEdit(
        tenant_id=TENANT, edits_count=1, edits=[p.MessageEdit(message_id="m", text="x", edited_at=1)],
    ).model_dump(by_alias=True, mode="json"), key, TENANT)
    erased_edit = p.MessagesEdit.model_validate(pii.decrypt_payload("session.messages.edit", edit, {}))
    assert erased_edit.edits[0].text is None and erased_edit.erased
    # ``erased`` is a reader's mark: a payload model never writes it.
    assert "erased" not in erased_edit.model_dump(by_alias=True)


def test_a_ciphertext_for_another_subject_or_field_does_not_open() -> None:
    key = pii.new_key()
    sealed = pii.encrypt_payload("session.contacts.upsert", {"tenantId": TENANT, "contactsCount": 1, "contacts": [
        {"id": "1@s.whatsapp.net", "name": "Ana", "notify": "Anita"}]}, key, TENANT)
    contact = sealed["contacts"][0]
    swapped = {**sealed, "contacts": [{**contact, "name": contact["notify"], "notify": contact["name"]}]}
    with pytest.raises(pii.PiiError):
        pii.decrypt_payload("session.contacts.upsert", swapped, {TENANT: key})
    # The same key filed under another subject: the associated data names the subject, so it fails too.
    other = pii.encrypt_payload("session.contacts.upsert", sealed | {"contacts": [
        {"id": "1@s.whatsapp.net", "name": "Ana"}]}, key, "t-2")
    moved = other["contacts"][0]["name"].replace("zsenc:1:t-2:", f"zsenc:1:{TENANT}:")
    with pytest.raises(pii.PiiError):
        pii.decrypt_payload("session.contacts.upsert", {**other, "contacts": [{"id": "x", "name": moved}]},
                            {TENANT: key})
    with pytest.raises(pii.PiiError):
        pii.decrypt_payload("session.contacts.upsert", sealed, {TENANT: pii.new_key()})


def test_plain_records_written_before_encryption_still_read() -> None:
    payload = _upsert()
    assert pii.decrypt_payload("session.messages.upsert", payload, {}) == payload


def test_types_without_personal_fields_pass_through_and_the_marks_are_where_expected() -> None:
    payload = {"tenantId": TENANT, "deletedAt": "2026-01-01T00:00:00.000Z"}
    assert pii.encrypt_payload("session.deleted", payload, pii.new_key(), TENANT) is payload
    marked = {t for t in SESSION_EVENTS if pii.pii_fields(t) is not None}
    assert {"session.messages.upsert", "session.history.sync", "session.messages.edit",
            "session.messages.send_requested", "session.contacts.upsert", "session.status.connected"} <= marked
    assert "session.messages.update" not in marked


def test_envelopes_seal_and_open() -> None:
    key = pii.new_key()
    env = Envelope(type="session.messages.upsert", session_id="s", event_id="e",
                   occurred_on="2026-01-01T00:00:00.000Z", payload=_upsert(), version=3)
    sealed = pii.seal_envelope(env, key, TENANT)
    assert b"hola Ana" not in sealed.value() and sealed.version == 3
    back = Envelope.from_record(sealed.value(), sealed.headers("/x"))
    assert pii.open_envelope(back, {TENANT: key}).value() == env.value()
