"""Request models of the calls slice."""

from __future__ import annotations

from pydantic import ConfigDict, Field

from command_api.shared.bodies import Body


class CallSettingsBody(Body):
    """``rejectCalls: true`` rejects every incoming call; ``replyText`` then answers the caller in chat."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"rejectCalls": True, "replyText": "No atendemos llamadas; escríbenos por aquí."},
        {"rejectCalls": False}]})

    reject_calls: bool
    reply_text: str | None = Field(default=None, min_length=1, max_length=4096)
