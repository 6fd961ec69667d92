"""CSV parsing and phone normalisation for the address book and campaigns (pure: no I/O).

Two forms (seed 004): a header ``numero,sustantivo,nombre,grupo`` (any order,
extra columns ignored), or a bare list of numbers, one per line. Numbers are
normalised with ``phonenumbers`` against the tenant's default country
(595, Paraguay, in seed 004): ``0981 123456``, ``981123456``,
``595981123456`` and ``+595 981 123 456`` are the same number. Bad rows are
reported with their line number and the reason; good rows go on.
"""

from __future__ import annotations

import codecs
import csv
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import phonenumbers

HEADER_NAMES = {
    "numero": "numero", "número": "numero", "number": "numero", "phone": "numero", "telefono": "numero",
    "teléfono": "numero", "celular": "numero",
    "sustantivo": "sustantivo", "nombre": "nombre", "name": "nombre", "grupo": "grupo", "group": "grupo",
}
MAX_FIELD = 200


class InvalidPhone(ValueError):
    pass


def normalize(raw: str, country: int) -> str:
    """E.164 digits without ``+`` for ``raw``, or :class:`InvalidPhone` with the reason."""
    text = raw.strip()
    digits = "".join(ch for ch in text if ch.isdigit())
    if not digits:
        raise InvalidPhone("no digits")
    if len(digits) > 17:
        raise InvalidPhone("too long")
    region = phonenumbers.region_code_for_country_code(country)
    candidates = []
    if text.startswith("+") or text.startswith("00"):
        candidates.append("+" + digits.removeprefix("00") if text.startswith("00") else "+" + digits)
    else:
        if digits.startswith(str(country)):
            candidates.append("+" + digits)
        candidates.append(digits)
        candidates.append("+" + digits)  # an international number written without '+'
    for candidate in candidates:
        try:
            number = phonenumbers.parse(candidate, None if candidate.startswith("+") else region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(number):
            return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164).lstrip("+")
    raise InvalidPhone("not a valid phone number")


@dataclass(frozen=True, slots=True)
class Row:
    line: int
    phone: str
    nombre: str | None = None
    sustantivo: str | None = None
    grupo: str | None = None


@dataclass(frozen=True, slots=True)
class BadRow:
    line: int
    reason: str


def _clean(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    return value[:MAX_FIELD] or None


class CsvParser:
    """Feed lines (or byte chunks through :meth:`feed_bytes`); yields a :class:`Row` or :class:`BadRow` each."""

    def __init__(self, country: int) -> None:
        self.country = country
        self.columns: dict[str, int] | None = None
        self.line = 0
        self.started = False

    def parse_lines(self, lines: Iterator[str]) -> Iterator[Row | BadRow]:
        for cells in csv.reader(lines):
            self.line += 1
            if not cells or all(not c.strip() for c in cells):
                continue
            if not self.started:
                self.started = True
                names = [HEADER_NAMES.get(c.strip().lower().lstrip("\ufeff")) for c in cells]
                if "numero" in names:
                    self.columns = {n: i for i, n in enumerate(names) if n is not None}
                    continue
                # no header: the bare list (extra columns in the seed's order: sustantivo, nombre, grupo)
                self.columns = {"numero": 0, "sustantivo": 1, "nombre": 2, "grupo": 3}
            yield self._row(cells)

    def _row(self, cells: list[str]) -> Row | BadRow:
        assert self.columns is not None

        def cell(name: str) -> str | None:
            i = self.columns.get(name) if self.columns else None
            return cells[i] if i is not None and i < len(cells) else None

        raw = cell("numero")
        if raw is None or not raw.strip():
            return BadRow(self.line, "missing number")
        try:
            phone = normalize(raw, self.country)
        except InvalidPhone as exc:
            return BadRow(self.line, f"{exc}: {raw.strip()[:40]!r}")
        return Row(self.line, phone, _clean(cell("nombre")), _clean(cell("sustantivo")), _clean(cell("grupo")))


def parse_text(text: str, country: int) -> list[Row | BadRow]:
    return list(CsvParser(country).parse_lines(iter(text.splitlines())))


async def parse_stream(chunks: AsyncIterator[bytes], country: int) -> AsyncIterator[Row | BadRow]:
    """Parse a CSV arriving in byte chunks without holding it whole (UTF-8, BOM tolerated)."""
    decoder = codecs.getincrementaldecoder("utf-8-sig")(errors="replace")
    parser = CsvParser(country)
    tail = ""
    async for chunk in chunks:
        text = tail + decoder.decode(chunk)
        lines = text.split("\n")
        tail = lines.pop()
        for item in parser.parse_lines(iter(lines)):
            yield item
    tail += decoder.decode(b"", final=True)
    if tail:
        for item in parser.parse_lines(iter([tail])):
            yield item
