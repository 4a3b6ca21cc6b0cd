"""Bulk imports: CSV or NDJSON files of customers, orders or events, parsed row by row into
the same shapes the API takes. Pure parsing here (no I/O); `shared.ingest.jobs` streams the
stored file through it and applies the valid rows in batches.

CSV conventions: a header row of field names; empty cells are "not given"; list fields take
`a;b;c` or a JSON array; object fields (`traits`, `properties`) take JSON, or dotted columns
(`properties.path`). Orders take one row per line item (`item_product_id`, `item_name`,
`item_category`, `item_quantity`, `item_unit_price`): consecutive rows with the same order
`external_id` make one order. NDJSON: one JSON object per line, exactly as the API takes it.
"""

from __future__ import annotations

import codecs
import csv
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ValidationError

from shared.customers.schemas import CustomerIn
from shared.ingest.schemas import EventIn, OrderIn

MAX_ERRORS_KEPT = 1000
_ITEM_PREFIX = "item_"


class ImportKind(StrEnum):
    customers = "customers"
    orders = "orders"
    events = "events"


class ImportFormat(StrEnum):
    csv = "csv"
    ndjson = "ndjson"


MODELS: dict[ImportKind, type[BaseModel]] = {
    ImportKind.customers: CustomerIn,
    ImportKind.orders: OrderIn,
    ImportKind.events: EventIn,
}
_LIST_FIELDS = {"interests", "values", "lifestyle", "motivations"}
_OBJECT_FIELDS = {"traits", "properties", "items"}


@dataclass
class RowError:
    line: int
    errors: list[dict[str, Any]]


@dataclass
class Parsed:
    """One row: a valid model, or the reasons it was rejected, with its line number."""

    line: int
    model: BaseModel | None = None
    error: RowError | None = None


@dataclass
class Lines:
    """Decoded lines of a byte stream, with the numbers of lines that were not UTF-8."""

    invalid: set[int] = field(default_factory=set)


async def decode_lines(chunks: AsyncIterator[bytes], lines: Lines) -> AsyncIterator[str]:
    """Split a byte stream into lines, decoding each on its own: a line with invalid UTF-8 is
    replaced (and remembered) instead of failing the file."""
    buffer = b""
    number = 0
    async for chunk in chunks:
        buffer += chunk
        *complete, buffer = buffer.split(b"\n")
        for raw in complete:
            number += 1
            yield _decode(raw + b"\n", number, lines)
    if buffer:
        yield _decode(buffer, number + 1, lines)


def _decode(raw: bytes, number: int, lines: Lines) -> str:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        lines.invalid.add(number)
        text = raw.decode("utf-8", errors="replace")
    if number == 1 and text.startswith(codecs.BOM_UTF8.decode()):
        text = text[1:]
    return text


def _validation_errors(exc: ValidationError) -> list[dict[str, Any]]:
    return [
        {"loc": [p if isinstance(p, int) else str(p) for p in e["loc"]], "msg": e["msg"]}
        for e in exc.errors()
    ]


def _validate(kind: ImportKind, line: int, data: Any) -> Parsed:
    if not isinstance(data, dict):
        return Parsed(line, error=RowError(line, [{"loc": [], "msg": "not a JSON object"}]))
    try:
        return Parsed(line, model=MODELS[kind].model_validate(data))
    except ValidationError as exc:
        return Parsed(line, error=RowError(line, _validation_errors(exc)))


def _validate_json(kind: ImportKind, line: int, text: str) -> Parsed:
    """One NDJSON line, parsed and validated by pydantic-core in one pass (no dicts built
    in Python first); the two whole-line errors keep their plain wording."""
    try:
        return Parsed(line, model=MODELS[kind].model_validate_json(text))
    except ValidationError as exc:
        kinds = {e["type"] for e in exc.errors() if not e["loc"]}
        if "json_invalid" in kinds:
            return Parsed(line, error=RowError(line, [{"loc": [], "msg": "not valid JSON"}]))
        if "model_type" in kinds:
            return Parsed(line, error=RowError(line, [{"loc": [], "msg": "not a JSON object"}]))
        return Parsed(line, error=RowError(line, _validation_errors(exc)))


def _invalid_utf8(line: int) -> Parsed:
    return Parsed(line, error=RowError(line, [{"loc": [], "msg": "not valid UTF-8"}]))


async def parse_ndjson(kind: ImportKind, chunks: AsyncIterator[bytes]) -> AsyncIterator[Parsed]:
    lines = Lines()
    number = 0
    async for text in decode_lines(chunks, lines):
        number += 1
        if not text.strip():
            continue
        if number in lines.invalid:
            yield _invalid_utf8(number)
            continue
        yield _validate_json(kind, number, text)


def _cell(name: str, value: str) -> Any:
    value = value.strip()
    if name in _LIST_FIELDS:
        if value.startswith("["):
            return json.loads(value)
        return [v.strip() for v in value.split(";") if v.strip()]
    if name in _OBJECT_FIELDS:
        return json.loads(value)
    return value


def _row_dict(header: list[str], cells: list[str]) -> dict[str, Any]:
    """Cells to a nested dict; empty cells are left out (not given)."""
    if len(cells) != len(header):
        raise ValueError(f"has {len(cells)} cells where the header has {len(header)}")
    out: dict[str, Any] = {}
    for name, raw in zip(header, cells, strict=True):
        if raw.strip() == "":
            continue
        if "." in name:
            parent, child = name.split(".", 1)
            out.setdefault(parent, {})[child] = raw
        else:
            out[name] = _cell(name, raw)
    return out


async def _csv_records(
    chunks: AsyncIterator[bytes], lines: Lines
) -> AsyncIterator[tuple[int, int, list[str] | str]]:
    """(first line, last line, cells or an error) per CSV record. A record goes on over
    line breaks while a quoted field is open (an odd number of quotes so far)."""
    record: list[str] = []
    odd = False
    start = number = 0
    async for text in decode_lines(chunks, lines):
        number += 1
        if not record:
            start = number
        record.append(text)
        odd ^= text.count('"') % 2 == 1
        if odd:
            continue
        joined, record = "".join(record), []
        try:
            cells = next(csv.reader([joined]), [])
        except csv.Error as exc:
            yield start, number, str(exc)
            continue
        yield start, number, cells
    if record:
        yield start, number, "a quoted field is never closed"


class _OrderRows:
    """Line-item rows to orders: consecutive rows with one external_id are one order."""

    def __init__(self) -> None:
        self.pending: tuple[int, dict[str, Any]] | None = None

    def add(self, line: int, data: dict[str, Any]) -> tuple[int, dict[str, Any]] | None:
        item = {
            k[len(_ITEM_PREFIX) :]: data.pop(k) for k in list(data) if k.startswith(_ITEM_PREFIX)
        }
        if self.pending and self.pending[1].get("external_id") == data.get("external_id"):
            if item:
                self.pending[1].setdefault("items", []).append(item)
            return None
        done = self.pending
        if item:
            data.setdefault("items", []).append(item)
        self.pending = (line, data)
        return done


async def parse_csv(kind: ImportKind, chunks: AsyncIterator[bytes]) -> AsyncIterator[Parsed]:
    lines = Lines()
    header: list[str] | None = None
    orders = _OrderRows() if kind is ImportKind.orders else None
    async for start, end, cells in _csv_records(chunks, lines):
        if isinstance(cells, str):
            yield Parsed(start, error=RowError(start, [{"loc": [], "msg": cells}]))
            continue
        if header is None:
            header = [h.strip() for h in cells]
            continue
        if not any(c.strip() for c in cells):
            continue
        if any(n in lines.invalid for n in range(start, end + 1)):
            yield _invalid_utf8(start)
            continue
        try:
            data = _row_dict(header, cells)
        except ValueError as exc:
            yield Parsed(start, error=RowError(start, [{"loc": [], "msg": f"row {exc}"}]))
            continue
        if orders is None:
            yield _validate(kind, start, data)
        elif (done := orders.add(start, data)) is not None:
            yield _validate(kind, *done)
    if orders is not None and orders.pending is not None:
        yield _validate(kind, *orders.pending)


def parse(
    kind: ImportKind, fmt: ImportFormat, chunks: AsyncIterator[bytes]
) -> AsyncIterator[Parsed]:
    return parse_csv(kind, chunks) if fmt is ImportFormat.csv else parse_ndjson(kind, chunks)
