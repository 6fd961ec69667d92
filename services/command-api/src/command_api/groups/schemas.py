"""Request and response models of the groups slice."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from command_api.shared.bodies import Body, Jid, SessionRef, View

GROUP = "120363025246125486@g.us"


class CreateGroupBody(Body):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"subject": "Ventas Lima", "participants": ["51988887777", "51977776666@s.whatsapp.net"]}]})

    subject: str = Field(min_length=1, max_length=100)
    participants: list[Jid] = Field(min_length=1, max_length=1024)
    session_id: SessionRef = None


class ParticipantsBody(Body):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"action": "add", "participants": ["51988887777"]},
        {"action": "promote", "participants": ["51988887777@s.whatsapp.net"]}]})

    action: Literal["add", "remove", "promote", "demote"]
    participants: list[Jid] = Field(min_length=1, max_length=1024)
    session_id: SessionRef = None


class GroupSessionBody(Body):
    model_config = ConfigDict(json_schema_extra={"examples": [{}]})

    session_id: SessionRef = None


class InviteLink(View):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "commandId": "0f8e0c1e-3c2b-4a59-9a55-63d8a0b1c2d3", "groupJid": GROUP,
        "inviteLink": "https://chat.whatsapp.com/AbCdEfGhIjK"}]})

    command_id: str
    group_jid: str
    invite_link: str
