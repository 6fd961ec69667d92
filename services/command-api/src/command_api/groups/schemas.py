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


class Participant(View):
    id: str
    admin: Literal["admin", "superadmin"] | None = None


class GroupView(View):
    """A group as WhatsApp describes it (Baileys' ``GroupMetadata`` keys); ``left``: this account left it."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "id": GROUP, "sessionId": "4b1a9c08-6b70-4c1c-9d5b-2b7d8fd5b901", "subject": "Ventas Lima",
        "owner": "51999999999@s.whatsapp.net", "creation": 1767220000, "desc": None, "announce": False,
        "restrict": False, "size": 2, "left": False,
        "participants": [{"id": "51999999999@s.whatsapp.net", "admin": "superadmin"},
                         {"id": "51988887777@s.whatsapp.net", "admin": None}]}]})

    id: str
    session_id: str
    subject: str
    owner: str | None
    creation: int | None
    desc: str | None
    announce: bool
    restrict: bool
    size: int
    participants: list[Participant]
    left: bool


class GroupList(View):
    session_id: str | None
    groups: list[GroupView]


class InviteLink(View):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "commandId": "0f8e0c1e-3c2b-4a59-9a55-63d8a0b1c2d3", "groupJid": GROUP,
        "inviteLink": "https://chat.whatsapp.com/AbCdEfGhIjK"}]})

    command_id: str
    group_jid: str
    invite_link: str
