"""One page type and one pagination dependency for every list: `?limit=&cursor=`."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from dataclasses import dataclass
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Depends, Query
from pydantic import BaseModel

from shared.errors import FieldError, InvalidInput
from shared.settings import get_settings

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None


def encode_cursor(key: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(key, separators=(",", ":")).encode()).decode()


@dataclass(frozen=True)
class PageParams:
    limit: int
    cursor: dict[str, Any] | None

    def after_id(self) -> uuid.UUID | None:
        """The id a cursor of the form `{"id": ...}` points after."""
        if self.cursor is None:
            return None
        try:
            return uuid.UUID(str(self.cursor.get("id")))
        except ValueError:
            raise _invalid_cursor() from None

    def page(self, items: list[T], key: Any) -> Page[T]:
        """`key(item)` gives the sort key of an item; the last one becomes the next cursor.
        One extra row is fetched by callers (`limit + 1`) to know whether more follow."""
        more = len(items) > self.limit
        items = items[: self.limit]
        cursor = encode_cursor(key(items[-1])) if more and items else None
        return Page[T](items=items, next_cursor=cursor)


def _decode(cursor: str) -> dict[str, Any]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        value = None
    if not isinstance(value, dict):
        raise _invalid_cursor()
    return value


def _invalid_cursor() -> InvalidInput:
    return InvalidInput(
        "The cursor is not one this API gave out.",
        errors=[FieldError(["query", "cursor"], "Invalid cursor.")],
    )


def page_params(
    limit: Annotated[int, Query(ge=1, le=500, description="Items per page (max 500).")] = 50,
    cursor: Annotated[
        str | None, Query(max_length=500, description="`next_cursor` of the previous page.")
    ] = None,
) -> PageParams:
    limit = min(limit, get_settings().api.max_page_size)
    return PageParams(limit=limit, cursor=_decode(cursor) if cursor else None)


async def _page(
    limit: Annotated[int, Query(ge=1, le=500, description="Items per page (max 500).")] = 50,
    cursor: Annotated[
        str | None, Query(max_length=500, description="`next_cursor` of the previous page.")
    ] = None,
) -> PageParams:
    """`page_params` as a dependency: async, as FastAPI runs a plain function's dependency in
    a thread pool (a thread hop per request)."""
    return page_params(limit, cursor)


PageDep = Annotated[PageParams, Depends(_page)]
