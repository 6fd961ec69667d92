"""Request and response models of the media slice."""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict

from command_api.shared.bodies import View

# POST /media streams its multipart body itself (never held in memory), so the form is declared by hand.
UPLOAD_FORM: dict[str, Any] = {
    "required": True,
    "content": {"multipart/form-data": {
        "schema": {
            "type": "object", "required": ["file", "kind"],
            "properties": {
                "kind": {"type": "string", "enum": ["image", "video", "audio", "document", "sticker"],
                         "description": "Put it before `file` to have its limit enforced while streaming."},
                "sessionId": {"type": "string", "description": "Ties the upload to one session (optional)."},
                "file": {"type": "string", "format": "binary"},
            },
        },
        "encoding": {"file": {"contentType": "application/octet-stream"}},
    }},
}


class UploadView(View):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "mediaId": "0b6f7f2e-2a55-4d43-8f0e-3c3d2b1a0f99", "kind": "image", "mime": "image/jpeg", "size": 120483,
        "fileName": "photo.jpg", "sessionId": None, "key": "tenants/t1/uploads/0b6f7f2e/photo.jpg",
        "url": "http://127.0.0.1:19000/zapstream-media/tenants/t1/uploads/0b6f7f2e/photo.jpg?X-Amz-...",
        "width": 720, "height": 1280, "duration": None}]})

    media_id: str
    kind: str
    mime: str
    size: int
    file_name: str
    session_id: str | None = None
    key: str
    url: str
    width: int | None = None
    height: int | None = None
    duration: int | None = None
