"""RFC 9457 problem+json for every error the API gives, and its place in the OpenAPI document.

Validation errors say where and what, never the submitted value (it can be personal data);
unexpected errors say nothing of their cause beyond the request id to quote to ops.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared.errors import DomainError, FieldError
from shared.logging import request_id_var

log = logging.getLogger(__name__)

MEDIA_TYPE = "application/problem+json"
TYPE_BASE = "https://portrait.dev/problems/"


class ProblemFieldError(BaseModel):
    loc: list[str | int]
    msg: str


class Problem(BaseModel):
    type: str = Field(examples=[TYPE_BASE + "not-found"])
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    request_id: str | None = None
    errors: list[ProblemFieldError] | None = None


def problem_response(
    status: int,
    slug: str,
    title: str,
    detail: str | None = None,
    *,
    errors: list[FieldError] | None = None,
    headers: dict[str, str] | None = None,
    request: Request | None = None,
    extra: dict[str, Any] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": TYPE_BASE + slug,
        "title": title,
        "status": status,
        "detail": detail or title,
    }
    if request is not None:
        body["instance"] = request.url.path
    request_id = request_id_var.get()
    if request_id:
        body["request_id"] = request_id
    if errors:
        body["errors"] = [{"loc": e.loc, "msg": e.msg} for e in errors]
    if extra:
        body.update(extra)
    return JSONResponse(body, status_code=status, headers=headers, media_type=MEDIA_TYPE)


def responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the problem answers a route can give."""
    return {
        code: {
            "model": Problem,
            "description": HTTPStatus(code).phrase,
            "content": {MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for code in codes
    }


# What any authenticated route can answer besides its own codes.
COMMON = (400, 401, 403, 422, 429, 500, 503)

_SLUGS = {
    400: "bad-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    406: "not-acceptable",
    409: "conflict",
    413: "payload-too-large",
    415: "unsupported-media-type",
    422: "invalid-input",
    429: "too-many-requests",
    500: "internal",
    503: "unavailable",
}


def _loc(raw: tuple[Any, ...]) -> list[str | int]:
    return [p if isinstance(p, int) else str(p) for p in raw]


def _validation_msg(err: dict[str, Any]) -> str:
    # pydantic's messages never quote the value; `input` and `ctx` (which may) are dropped.
    if err.get("type") == "json_invalid":
        return "The body is not valid JSON."
    return str(err.get("msg", "Invalid value."))


async def _domain(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)
    return problem_response(
        exc.status,
        exc.slug,
        exc.title,
        exc.detail,
        errors=exc.errors,
        headers=exc.headers,
        request=request,
        extra=exc.extra,
    )


async def _validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [FieldError(_loc(tuple(e.get("loc", ()))), _validation_msg(e)) for e in exc.errors()]
    return problem_response(
        422,
        "invalid-input",
        "Invalid input",
        "The request does not match the schema.",
        errors=errors,
        request=request,
    )


async def _http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
    detail = exc.detail if isinstance(exc.detail, str) else phrase
    if status == 404 and detail == "Not Found":
        detail = "No such resource."
    return problem_response(
        status,
        _SLUGS.get(status, "error"),
        phrase,
        detail,
        headers=getattr(exc, "headers", None),
        request=request,
    )


async def _database_down(request: Request, exc: Exception) -> JSONResponse:
    log.warning("database unavailable", extra={"error": type(exc).__name__})
    return problem_response(
        503,
        "unavailable",
        "Service unavailable",
        "The database cannot be reached right now; try again shortly.",
        headers={"Retry-After": "5"},
        request=request,
    )


# SQLSTATE classes that mean "the server is not there right now", not "this request is wrong":
# 08 connection exception, 57 operator intervention (57P01 shutting down, 57P03 starting up).
_UNAVAILABLE_SQLSTATE = ("08", "57")


def _unavailable(exc: Exception) -> bool:
    """The database (or another server) is away: a restart, a failover, a full pool. A socket
    that is gone surfaces as a bare OSError (FileNotFoundError for a unix socket) from the
    driver's connect, not wrapped by SQLAlchemy."""
    if isinstance(exc, OSError):
        return True
    if isinstance(exc, DBAPIError):
        sqlstate = str(getattr(exc.orig, "sqlstate", None) or "")
        return exc.connection_invalidated or sqlstate.startswith(_UNAVAILABLE_SQLSTATE)
    return False


def unexpected(exc: Exception, path: str) -> JSONResponse:
    """The answer to an exception nothing else handled. Called by the request middleware, which
    sits inside Starlette's outermost error handler, so the answer keeps its request id."""
    if _unavailable(exc):
        log.warning("database connection lost", extra={"error": type(exc).__name__})
        return problem_response(
            503,
            "unavailable",
            "Service unavailable",
            "The database cannot be reached right now; try again shortly.",
            headers={"Retry-After": "5"},
        )
    log.error("unhandled error", exc_info=exc, extra={"route": path})
    return problem_response(
        500,
        "internal",
        "Internal server error",
        "Something went wrong on our side; quote the request id to the operators.",
    )


def install(app: FastAPI) -> None:
    app.add_exception_handler(DomainError, _domain)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, _http)
    for exc_type in (OperationalError, InterfaceError, PoolTimeout, ConnectionError):
        app.add_exception_handler(exc_type, _database_down)
