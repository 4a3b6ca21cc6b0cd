"""Domain errors. Services raise these; the API maps each to one problem+json answer."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any


@dataclass
class FieldError:
    loc: list[str | int]
    msg: str


class DomainError(Exception):
    status: int = 400
    title: str = "Bad request"
    slug: str = "bad-request"

    def __init__(
        self,
        detail: str | None = None,
        *,
        errors: list[FieldError] | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.errors = errors or []
        self.headers = headers or {}
        self.extra = extra or {}


class InvalidInput(DomainError):
    status, title, slug = 422, "Invalid input", "invalid-input"


class Unauthorized(DomainError):
    status, title, slug = 401, "Unauthorized", "unauthorized"


class Forbidden(DomainError):
    status, title, slug = 403, "Forbidden", "forbidden"


class NotFound(DomainError):
    status, title, slug = 404, "Not found", "not-found"


class Conflict(DomainError):
    status, title, slug = 409, "Conflict", "conflict"


class Unavailable(DomainError):
    status, title, slug = 503, "Service unavailable", "unavailable"


class UnsupportedMediaType(DomainError):
    status, title, slug = 415, "Unsupported media type", "unsupported-media-type"


class TooManyRequests(DomainError):
    status, title, slug = 429, "Too many requests", "too-many-requests"


class NotAcceptable(DomainError):
    status, title, slug = 406, "Not acceptable", "not-acceptable"


def parse_id(raw: str | uuid.UUID, what: str) -> uuid.UUID:
    """An id from a path or body. Ids are opaque to callers: anything that is not one of ours
    is simply not found (404 "No <what> with this id."), never a validation error."""
    if isinstance(raw, uuid.UUID):
        return raw
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise NotFound(f"No {what} with this id.") from None
