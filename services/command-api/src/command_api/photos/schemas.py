"""Response models of the photos slice."""

from __future__ import annotations

from pydantic import ConfigDict

from command_api.shared.bodies import View


class PhotoView(View):
    """``url`` is null when the chat has no photo or hides it; ``cached``: served from the cache."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "chatJid": "51988887777@s.whatsapp.net", "sessionId": "4b1a9c08-6b70-4c1c-9d5b-2b7d8fd5b901",
        "url": "https://storage.example.com/zapstream/tenants/t/sessions/s/photos/51988887777%40s.whatsapp.net/"
               "20453.jpg?X-Amz-Signature=…", "cached": True}]})

    chat_jid: str
    session_id: str
    url: str | None
    cached: bool
