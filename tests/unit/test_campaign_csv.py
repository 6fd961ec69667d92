"""CSV parsing and phone normalisation for the address book (seed 004's two formats, default country 595)."""

from __future__ import annotations

import pytest

from analytics.windows import Fact, facts, recipients_added, window_start
from command_api.address_book.csvparse import BadRow, InvalidPhone, Row, normalize, parse_stream, parse_text
from zapstream_contracts import campaign_payloads as cp
from zapstream_contracts.campaign_envelope import CampaignEnvelope
from zapstream_contracts.payloads import Wire


@pytest.mark.parametrize("raw", ["595981123456", "0981 123456", "981123456", "+595 981 123 456", "(0981) 123-456",
                                 "00595981123456"])
def test_paraguayan_forms_normalise_to_one_number(raw: str) -> None:
    assert normalize(raw, 595) == "595981123456"


def test_other_countries_and_garbage() -> None:
    assert normalize("+51 987 654 321", 595) == "51987654321"
    assert normalize("987654321", 51) == "51987654321"
    for bad in ("", "abc", "123", "9" * 20):
        with pytest.raises(InvalidPhone):
            normalize(bad, 595)


def test_header_form_any_column_order_and_bad_rows_with_line_numbers() -> None:
    text = ("grupo,nombre,numero,sustantivo,extra\n"
            "VIP,Carlos Gómez,0981123456,Sr,x\n"
            "\n"
            "Premium,Ana,12,Sra,\n"
            ",José,+595991000111,,\n")
    rows = parse_text(text, 595)
    assert rows == [
        Row(2, "595981123456", "Carlos Gómez", "Sr", "VIP"),
        BadRow(4, "not a valid phone number: '12'"),
        Row(5, "595991000111", "José", None, None),
    ]


def test_bare_list_of_numbers() -> None:
    assert [r.phone for r in parse_text("595992756462\n595976947110\n", 595) if isinstance(r, Row)] == [
        "595992756462", "595976947110"]


async def test_stream_split_anywhere_gives_the_same_rows() -> None:
    text = "\ufeffnumero,nombre\n" + "".join(f"09811{i:05d},Ñandú {i}\r\n" for i in range(300))
    data = text.encode()

    async def chunks(size: int):  # type: ignore[no-untyped-def]
        for i in range(0, len(data), size):
            yield data[i:i + size]

    expected = parse_text(text.lstrip("\ufeff"), 595)
    for size in (1, 7, 4096):
        assert [r async for r in parse_stream(chunks(size), 595)] == expected
    assert len(expected) == 300 and expected[0].nombre == "Ñandú 0"  # type: ignore[union-attr]


def campaign_env(type_: str, payload: Wire) -> CampaignEnvelope:
    return CampaignEnvelope(type=type_, campaign_id="c", event_id="e", occurred_on="2026-01-01T00:00:00.000Z",
                            payload=payload.model_dump(by_alias=True, mode="json"))


def test_analytics_facts_per_tenant_group_and_contact() -> None:
    added = campaign_env("campaign.recipients.added", cp.RecipientsAdded(tenant_id="t", chunk=0, recipients=[
        cp.Recipient(id="r0", seq=0, phone="595981000001", grupo="VIP"), cp.Recipient(id="r1", seq=1, phone="595981000002"),
        cp.Recipient(id="r2", seq=2, phone="595981000003", skip_reason="suppressed")]))
    lookup = dict(recipients_added(added))
    assert set(lookup) == {"c:r0", "c:r1"}

    def updated(*updates: cp.RecipientUpdate) -> CampaignEnvelope:
        return campaign_env("campaign.recipients.updated", cp.RecipientsUpdated(tenant_id="t", updates=list(updates)))

    at = "2026-01-01T00:00:00.000Z"
    assert list(facts(updated(
        cp.RecipientUpdate(recipient_id="r0", status="sent", at=at),
        cp.RecipientUpdate(recipient_id="r1", status="sending", part=0, at=at),
        cp.RecipientUpdate(recipient_id="r1", status="retrying", at=at),
        cp.RecipientUpdate(recipient_id="r1", status="failed", at=at)), lookup)) == [
        Fact("t", "all", "", "sent"), Fact("t", "group", "VIP", "sent"), Fact("t", "contact", "595981000001", "sent"),
        Fact("t", "all", "", "failed"), Fact("t", "group", "", "failed"), Fact("t", "contact", "595981000002", "failed"),
    ]
    assert window_start(7300.5, 3600) == 7200
    overtaken = updated(cp.RecipientUpdate(recipient_id="r0", status="read", message_id="3EB0X", at=at),
                        cp.RecipientUpdate(recipient_id="r0", status="read", at=at))
    assert [f.metric for f in facts(overtaken, lookup) if f.dim == "all"] == ["sent", "read", "read"]
