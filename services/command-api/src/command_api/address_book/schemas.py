"""Request and response models of the address book (seed 004's keys: numero, nombre, sustantivo, grupo)."""

from __future__ import annotations

from pydantic import AliasChoices, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel


class Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


class ContactIn(Model):
    """A contact to create or replace; the number is normalised with the tenant's default country."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore",
                              json_schema_extra={"examples": [{"phone": "0981 123456", "nombre": "María", "sustantivo": "Sra.", "grupo": "clientes"}]})


    phone: str = Field(min_length=3, max_length=40, validation_alias=AliasChoices("phone", "numero"))
    nombre: str | None = Field(default=None, max_length=200)
    sustantivo: str | None = Field(default=None, max_length=200)
    grupo: str | None = Field(default=None, max_length=200)


class ContactOut(Model):
    id: str
    phone: str
    numero: str
    nombre: str | None
    sustantivo: str | None
    grupo: str | None
    created_at: str
    updated_at: str


class ContactPage(Model):
    contacts: list[ContactOut]
    next_cursor: str | None


class GroupCount(Model):
    grupo: str | None
    contacts: int


class Groups(Model):
    groups: list[GroupCount]


class RowError(Model):
    line: int
    reason: str


class ImportOut(Model):
    """An import's progress (while it runs) or result."""

    import_id: str
    status: str
    rows_read: int
    imported: int
    rejected: int
    errors: list[RowError]
    created_at: str
    finished_at: str | None


class ImportList(Model):
    imports: list[ImportOut]
