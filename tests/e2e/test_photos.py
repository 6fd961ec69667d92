"""Profile photos through the runner, cached in S3: the first GET fetches (``cached: false``), the next is served
from the cache; a hidden photo is ``url: null``; the contact then carries ``imgUrl``."""

from __future__ import annotations

import httpx

from tests.e2e.conftest import Linked, new_phone
from tests.support.clients import eventually

JPEG_MAGIC = b"\xff\xd8\xff"


async def test_profile_photo_is_fetched_once_then_cached(linked: Linked) -> None:
    contact = new_phone()
    r = await linked.tenant.http.get(f"/chats/{contact}/photo")
    assert r.status_code == 200, r.text
    first = r.json()
    assert first["cached"] is False and first["url"] and first["chatJid"] == f"{contact}@s.whatsapp.net"
    async with httpx.AsyncClient(timeout=10) as http:
        assert (await http.get(first["url"])).content.startswith(JPEG_MAGIC)
    again = (await linked.tenant.http.get(f"/chats/{contact}/photo")).json()
    assert again["cached"] is True and again["url"]

    async def contact_has_photo() -> bool:
        contacts = (await linked.tenant.http.get("/contacts", params={"sessionId": linked.sid})).json()["contacts"]
        return any(c["id"] == f"{contact}@s.whatsapp.net" and c["imgUrl"] == f"/chats/{contact}@s.whatsapp.net/photo"
                   for c in contacts)

    await eventually(contact_has_photo)

    hidden = new_phone()
    r = await linked.sim.post(f"/control/contacts/{hidden}/photo", json={"dataBase64": None})
    assert r.status_code == 200
    body = (await linked.tenant.http.get(f"/chats/{hidden}/photo")).json()
    assert body["url"] is None and body["cached"] is False
