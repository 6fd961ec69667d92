"""Request and response models of the agents slice (seed 003's "stations" and their chats)."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from command_api.identity.schemas import Email, Password, UserView
from command_api.shared.bodies import Body, View


class NewAgentBody(Body):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"name": "Station 1", "email": "station1@example.com", "password": "SuperSecure123!"},
        {"name": "Lead", "email": "lead@example.com", "password": "SuperSecure123!", "role": "admin"}]})

    name: str = Field(min_length=1, max_length=200)
    email: Email
    password: Password
    role: Literal["agent", "admin"] = "agent"


class AssignBody(Body):
    model_config = ConfigDict(json_schema_extra={"examples": [{"chatJid": "51988887777@s.whatsapp.net"}]})

    chat_jid: str = Field(min_length=1, max_length=200)


class AgentList(View):
    agents: list[UserView]


class Assignment(View):
    chat_jid: str
    assigned_at: str


class Assignments(View):
    user_id: str
    chats: list[Assignment]


class Assigned(View):
    user_id: str
    chat_jid: str


class AgentAccepted(View):
    """The same answer whether the address was free or not (no account enumeration across tenants)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "status": "accepted", "email": "station1@example.com",
        "detail": "the agent can sign in with this address and password unless it already had an account"}]})

    status: str = "accepted"
    email: str
    detail: str
