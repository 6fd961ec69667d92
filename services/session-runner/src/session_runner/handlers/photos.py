"""Profile photos: fetched from WhatsApp through the driver and stored at the key the API chose (its cache).

The contact then carries ``imgUrl`` = ``/chats/{jid}/photo``, the API route that serves the cached copy
(a stable URL; the stored object's own URLs are presigned and expire).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import quote

from session_runner.handlers.base import Context, Handler
from zapstream_contracts import commands as c
from zapstream_contracts import payloads as p
from zapstream_domain.jids import normalize_jid

MAX_PHOTO_BYTES = 5 * 1024 * 1024


async def fetch(ctx: Context) -> None:
    session = ctx.decide()
    cmd: c.FetchProfilePhoto = ctx.command
    if ctx.media is None:
        ctx.failed("media_unavailable", "this runner has no media storage configured")
        return

    async def call() -> tuple[str, bytes | None]:
        jid = normalize_jid(cmd.jid)
        return jid, await ctx.driver.profile_photo(session.session_id, jid)

    done = await ctx.effect(call)
    if done is None:
        return
    jid, data = done
    if not data:
        ctx.succeeded({"jid": jid, "key": ""})
        return

    async def one() -> AsyncIterator[bytes]:
        yield data

    await ctx.media.store.put_stream(cmd.key, one(), "image/jpeg", max_bytes=MAX_PHOTO_BYTES)
    session.record_contacts(ctx.at, [p.Contact(id=jid, img_url=f"/chats/{quote(jid, safe='@.')}/photo")])
    ctx.succeeded({"jid": jid, "key": cmd.key})


HANDLERS: dict[type, Handler] = {c.FetchProfilePhoto: fetch}
