"""Field types for everything that comes in from outside: strings PostgreSQL will store
(no NUL, bounded), exact money, ISO currency and country codes, timestamps with an offset
and not from the future."""

from __future__ import annotations

import math
import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any

import pycountry
from pydantic import AfterValidator, BeforeValidator, Field, StringConstraints

FUTURE_TOLERANCE = timedelta(days=1)
MAX_MONEY = Decimal("1e12")


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


def _jsonb_safe(value: Any) -> Any:
    """JSON objects (traits, event properties) go to jsonb, which refuses NUL as well, and
    NaN or Infinity (which Python's JSON reader takes). Walked in place: nothing is rebuilt
    (a copy of every object cost more than the check)."""
    if isinstance(value, str):
        _no_nul(value)
    elif isinstance(value, dict):
        for k, v in value.items():
            _no_nul(str(k))
            _jsonb_safe(v)
    elif isinstance(value, list):
        for v in value:
            _jsonb_safe(v)
    elif isinstance(value, float) and not math.isfinite(value):
        raise ValueError("must not hold NaN or Infinity (JSON has no such numbers)")
    return value


def text(max_length: int) -> Any:
    return Annotated[str, StringConstraints(max_length=max_length), AfterValidator(_no_nul)]


Str32 = text(32)
Str64 = text(64)
Str100 = text(100)
Str255 = text(255)
Str500 = text(500)
Id = Annotated[
    str,
    StringConstraints(min_length=1, max_length=255, strip_whitespace=True),
    AfterValidator(_no_nul),
]
Tag = Annotated[str, StringConstraints(min_length=1, max_length=100), AfterValidator(_no_nul)]
Tags = Annotated[list[Tag], Field(max_length=100)]
JsonObject = Annotated[dict[str, Any], AfterValidator(_jsonb_safe)]


def _money(value: Decimal) -> Decimal:
    if not value.is_finite():
        raise ValueError("must be a finite amount")
    if value < 0:
        raise ValueError("must not be negative")
    if value >= MAX_MONEY:
        raise ValueError("is too large")
    if value.as_tuple().exponent < -4:  # type: ignore[operator]
        raise ValueError("has more than 4 decimal places")
    return value


def _exact(value: Any) -> Any:
    # A JSON number arrives as a float: go through its shortest repr, never binary arithmetic.
    if isinstance(value, float):
        return Decimal(repr(value))
    return value


Money = Annotated[Decimal, BeforeValidator(_exact), AfterValidator(_money)]


def _currency(value: str) -> str:
    code = value.upper()
    if len(code) != 3 or pycountry.currencies.get(alpha_3=code) is None:
        raise ValueError("is not an ISO 4217 currency code")
    return code


Currency = Annotated[str, StringConstraints(min_length=3, max_length=3), AfterValidator(_currency)]


def _country(value: str) -> str:
    code = value.upper()
    if len(code) != 2 or pycountry.countries.get(alpha_2=code) is None:
        raise ValueError("is not an ISO 3166-1 alpha-2 country code")
    return code


Country = Annotated[str, StringConstraints(min_length=2, max_length=2), AfterValidator(_country)]


_RFC3339_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _rfc3339(value: Any) -> Any:
    """pydantic's lax mode reads a number (or a numeric string such as "2.1e-07") as Unix
    seconds; the contract says RFC 3339, so anything else is refused."""
    if isinstance(value, datetime | date):
        return value
    if isinstance(value, str) and _RFC3339_DATE.match(value):
        return value
    raise ValueError("must be an RFC 3339 timestamp")


# A timestamp in a query filter: RFC 3339, no other bound.
Instant = Annotated[datetime, BeforeValidator(_rfc3339)]


def _timestamp(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("must carry a UTC offset (RFC 3339)")
    value = value.astimezone(UTC)
    if value > datetime.now(UTC) + FUTURE_TOLERANCE:
        raise ValueError("is more than a day in the future")
    if value.year < 1970:
        raise ValueError("is before 1970")
    return value


Timestamp = Annotated[datetime, BeforeValidator(_rfc3339), AfterValidator(_timestamp)]


def _birth_date(value: date) -> date:
    today = datetime.now(UTC).date()
    if value > today or value.year < today.year - 130:
        raise ValueError("is not a plausible birth date")
    return value


BirthDate = Annotated[date, AfterValidator(_birth_date)]
