"""Request and response models of the identity slice (users and their logins)."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, ConfigDict, Field

from command_api.shared.bodies import Body, View

Password = Annotated[str, Field(min_length=8, max_length=256)]
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s.]+(\.[^@\s.]+)+$")


def _email(value: str) -> str:
    value = value.strip()
    if not _EMAIL.match(value):
        raise ValueError("not a valid e-mail address")
    return value


Email = Annotated[str, Field(max_length=254, examples=["ada@example.com"]), AfterValidator(_email)]


class RegisterBody(Body):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"name": "Ada Lovelace", "email": "ada@example.com", "password": "SuperSecure123!"}]})

    name: str = Field(min_length=1, max_length=200)
    email: Email
    password: Password
    tenant_name: str | None = Field(default=None, max_length=200)


class LoginBody(Body):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"email": "ada@example.com", "password": "SuperSecure123!"}]})

    email: Email
    password: str = Field(min_length=1, max_length=256)


class EmailBody(Body):
    model_config = ConfigDict(json_schema_extra={"examples": [{"email": "ada@example.com"}]})

    email: Email


class VerifyBody(Body):
    model_config = ConfigDict(json_schema_extra={"examples": [{"code": "123456"}, {"token": "<token>"}]})

    code: str | None = Field(default=None, min_length=1, max_length=32)
    token: str | None = Field(default=None, min_length=1, max_length=256)


class ResetConfirmBody(VerifyBody):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"email": "ada@example.com", "token": "<token>", "newPassword": "NewPassword123!"}]})

    email: Email
    new_password: Password


class UserView(View):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "id": "2f1d3c4b-5a69-4877-8695-a4b3c2d1e0f9", "tenantId": "9e3a5b9c-56b9-4b8d-9e2b-5c3a1f4b9a12",
        "email": "ada@example.com", "name": "Ada Lovelace", "role": "owner", "emailVerified": True,
        "disabled": False, "createdAt": "2026-01-01T00:00:00+00:00"}]})

    id: str
    tenant_id: str
    email: str
    name: str
    role: str
    email_verified: bool
    disabled: bool
    created_at: str


class TokenAnswer(View):
    access_token: str
    token_type: str = "Bearer"
    expires_in: int
    expires_at: int
    user: UserView


class Accepted(View):
    """The same answer whether or not the account exists (no account enumeration)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "status": "accepted", "detail": "check your e-mail"}]})

    status: str = "accepted"
    detail: str
