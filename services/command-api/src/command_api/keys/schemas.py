"""Request and response models of the API keys slice."""

from __future__ import annotations

from pydantic import ConfigDict, Field

from command_api.shared.bodies import Body, View


class ApiKeyBody(Body):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"name": "crm"}, {"name": "tienda", "sessionIds": ["4b1a9c08-6b70-4c1c-9d5b-2b7d8fd5b901"]}]})

    name: str = Field(min_length=1, max_length=200)
    session_ids: list[str] | None = Field(default=None, max_length=100,
                                          description="Limit the key to these sessions; all when absent.")


class ApiKeyView(View):
    id: str
    name: str
    last4: str | None = None
    session_ids: list[str] | None = None
    created_at: str
    revoked_at: str | None = None
    created_by: str | None = None


class NewApiKey(ApiKeyView):
    key: str = Field(description="The key itself: shown only in this answer, stored hashed.")


class ApiKeyList(View):
    api_keys: list[ApiKeyView]
