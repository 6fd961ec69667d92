"""Request and response models of the suppression list."""

from __future__ import annotations

from pydantic import AliasChoices, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel


class Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


class SuppressionIn(Model):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore",
                              json_schema_extra={"examples": [{"phone": "595981123456", "reason": "asked by phone"}]})

    phone: str = Field(min_length=3, max_length=40, validation_alias=AliasChoices("phone", "numero"))
    reason: str = Field(default="added by hand", min_length=1, max_length=200)


class SuppressionOut(Model):
    phone: str
    reason: str
    source: str  # reply (the contact answered a stop word) | manual
    created_at: str


class SuppressionPage(Model):
    suppressions: list[SuppressionOut]
    next_cursor: str | None
