"""Sending (text, replies, forwards, media, albums, seed 002's PDFs), editing, deleting and reacting."""

from __future__ import annotations

from typing import Any, Protocol

from command_api.media.service import PLAYABLE_AUDIO, MediaLibrary
from command_api.messages.schemas import ChatSendBody, MediaSpec
from command_api.shared.access import Access
from command_api.shared.commands import Answer, Commands
from command_api.shared.idempotency import Idem
from command_api.shared.problems import Problem
from zapstream_contracts import commands as c
from zapstream_contracts import payloads as p
from zapstream_platform.tokens import Principal


class MessagesStore(Protocol):
    async def message_text(self, tenant_id: str, session_id: str, message_id: str) -> tuple[bool, str | None]: ...


def check_kinds(kinds: list[str | None], caption: str | None, ptt: bool) -> None:
    """What WhatsApp would refuse. Checked on the declared kinds before anything is stored (None:
    not declared, passes), then again on the uploads' real kinds."""
    if len(kinds) > 1 and any(k not in (None, "image") for k in kinds):
        raise Problem(422, "several files in one request must all be images")
    if ptt and any(k not in (None, "audio") for k in kinds):
        raise Problem(422, "ptt (voice note) needs an audio file")
    if caption and kinds[0] in ("audio", "sticker"):
        raise Problem(422, f"{kinds[0]} messages cannot have a caption")


class MessagesService:
    def __init__(self, store: MessagesStore, access: Access, commands: Commands, library: MediaLibrary) -> None:
        self.store = store
        self.access = access
        self.commands = commands
        self.library = library

    async def send_to_session(self, who: Principal, idem: Idem, traceparent: str | None, session_id: str,
                              to: str, body: ChatSendBody) -> Answer:
        sid = await self.access.owned(who, session_id)
        return await self.send(who, idem, traceparent, sid, to, body)

    async def send_to_chat(self, who: Principal, idem: Idem, traceparent: str | None, chat: str,
                           body: ChatSendBody) -> Answer:
        await self.access.chat(who, chat)
        sid = await self.access.session_or_404(who, body.session_id)
        return await self.send(who, idem, traceparent, sid, chat, body)

    async def send_pdf(self, who: Principal, idem: Idem, traceparent: str | None, session: str, to: str,
                       pdf_base64: str, file_name: str, caption: str | None) -> Answer:
        sid = await self.access.declared_or_owned(who, session)
        spec = MediaSpec(base64=pdf_base64, kind="document", mime="application/pdf", file_name=file_name)
        return await self.send(who, idem, traceparent, sid, to, ChatSendBody(media=spec, caption=caption))

    async def send(self, who: Principal, idem: Idem, traceparent: str | None, sid: str, to: str,
                   body: ChatSendBody) -> Answer:
        await self.access.chat(who, to)
        if body.rich is not None:
            return await self.commands.accept(who, idem, traceparent, c.SendMessage, sid, to=to, rich=body.rich,
                                              reply_to_message_id=body.reply_to_message_id)
        if body.media is not None:
            return await self._send_media(who, idem, traceparent, sid, to, body)
        content, forwarded = body.content, False
        if body.forward_message_id is not None:
            await self.access.forward_source(who, sid, body.forward_message_id)
            found, original = await self.store.message_text(who.tenant_id, sid, body.forward_message_id)
            if not found:
                raise Problem(404, "message to forward not found")
            if original is None:
                raise Problem(422, "only text messages can be forwarded")
            content, forwarded = original, True
        return await self.commands.accept(who, idem, traceparent, c.SendMessage, sid, to=to, content=content,
                                          reply_to_message_id=body.reply_to_message_id, forwarded=forwarded,
                                          mentions=body.mentions or None)

    async def _resolve(self, who: Principal, sid: str, spec: MediaSpec, ptt: bool) -> p.MediaRef:
        if spec.base64 is not None:
            assert spec.kind is not None
            upload = await self.library.store_base64(who.tenant_id, spec.base64, kind=spec.kind,
                                                     declared=spec.mime, file_name=spec.file_name, session_id=sid)
        elif spec.media_id is not None:
            upload = await self.library.get(who.tenant_id, spec.media_id)
        else:
            assert spec.url is not None
            upload = await self.library.by_url(who.tenant_id, spec.url)
        if upload.session_id is not None and not self.access.in_scope(who, upload.session_id):
            raise Problem(404, "media not found")
        if spec.kind is not None and spec.kind != upload.kind:
            raise Problem(422, f"media {upload.id} was uploaded as {upload.kind}, not {spec.kind}")
        return upload.ref(ptt)

    async def _send_media(self, who: Principal, idem: Idem, traceparent: str | None, sid: str, to: str,
                          body: ChatSendBody) -> Answer:
        specs = body.media if isinstance(body.media, list) else [body.media] if body.media else []
        most = self.library.settings.images_per_request
        if len(specs) > most:
            raise Problem(422, f"at most {most} files per request")
        caption = body.caption if body.caption is not None else body.content
        check_kinds([s.kind for s in specs], caption, body.ptt)

        async def produce(seed: str | None) -> dict[str, Any]:
            refs: list[p.MediaRef] = []
            try:
                for spec in specs:
                    refs.append(await self._resolve(who, sid, spec, body.ptt))
                check_kinds([r.kind for r in refs], caption, body.ptt)
                first = refs[0]
                if first.kind == "audio" and not body.ptt and first.mime not in PLAYABLE_AUDIO:
                    raise Problem(415, f"{first.mime} plays only as a voice note: send it with ptt: true",
                                  accepted=sorted(PLAYABLE_AUDIO))
            except BaseException:
                # Base64 files were stored only for this request: a refused one leaves nothing behind.
                for spec, ref in zip(specs, refs, strict=False):
                    if spec.base64 is not None and ref.media_id:
                        await self.library.discard(who.tenant_id, ref.media_id)
                raise
            sent = []
            for i, ref in enumerate(refs):
                sent.append(await self.commands.publish(
                    who, c.SendMessage, sid, seed, traceparent, index=i, to=to, media=ref,
                    content=caption if i == 0 else None,
                    reply_to_message_id=body.reply_to_message_id if i == 0 else None))
            out = dict(sent[0])
            if isinstance(body.media, list):
                out["commandIds"] = [b["commandId"] for b in sent]
                out["messageIds"] = [b["messageId"] for b in sent]
            return out

        return await self.commands.idempotent(who, idem, produce)

    async def edit(self, who: Principal, idem: Idem, traceparent: str | None, chat: str, message_id: str,
                   content: str, session_id: str | None) -> Answer:
        await self.access.chat(who, chat)
        sid = await self.access.session_or_404(who, session_id)
        return await self.commands.accept(who, idem, traceparent, c.EditMessage, sid, chat_jid=chat,
                                          message_id=message_id, content=content)

    async def delete(self, who: Principal, idem: Idem, traceparent: str | None, chat: str, message_id: str,
                     session_id: str | None) -> Answer:
        await self.access.chat(who, chat)
        sid = await self.access.session_or_404(who, session_id)
        return await self.commands.accept(who, idem, traceparent, c.DeleteMessage, sid, chat_jid=chat,
                                          message_id=message_id)

    async def react(self, who: Principal, idem: Idem, traceparent: str | None, chat: str, message_id: str,
                    emoji: str | None, session_id: str | None) -> Answer:
        await self.access.chat(who, chat)
        sid = await self.access.session_or_404(who, session_id)
        return await self.commands.accept(who, idem, traceparent, c.ReactToMessage, sid, chat_jid=chat,
                                          message_id=message_id, emoji=emoji)
