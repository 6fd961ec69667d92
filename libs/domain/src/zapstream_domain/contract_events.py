"""What the aggregates' event classes share: each names its entry in the contract's event table."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel

from zapstream_contracts.events import EventSpec


class NamesItsContract:
    """Base of an aggregate's ``Event``: a concrete event class sets ``SPEC = ev.SOME_EVENT`` and gets
    ``TYPE`` and ``PAYLOAD`` from it, so a type's name, payload model and version are declared once (in
    :mod:`zapstream_contracts.events`) and the class adds only its ``apply`` (the evolve function)."""

    SPEC: ClassVar[EventSpec[Any]]
    TYPE: ClassVar[str] = ""
    PAYLOAD: ClassVar[type[BaseModel]] = BaseModel

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        spec = cls.__dict__.get("SPEC")
        if spec is not None:
            cls.TYPE = spec.type
            cls.PAYLOAD = spec.payload
