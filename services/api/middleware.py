"""ASGI middleware: a request id on every answer and log line, Prometheus metrics, access log.

Plain ASGI rather than BaseHTTPMiddleware: it costs less per request and does not buffer.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import Any

from prometheus_client import Counter, Histogram
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.api import problems
from shared.logging import request_id_var

log = logging.getLogger("portrait.access")

REQUESTS = Counter("portrait_http_requests_total", "HTTP requests", ["method", "route", "status"])
LATENCY = Histogram(
    "portrait_http_request_duration_seconds",
    "HTTP request latency",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1, 2, 5),
)
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if _SAFE_ID.match(incoming) else uuid.uuid4().hex
        token = request_id_var.set(request_id)
        start = time.perf_counter()
        status = 500
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                status, started = message["status"], True
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            if started:
                raise
            route = scope.get("route")
            await problems.unexpected(exc, getattr(route, "path", "unmatched"))(
                scope, receive, send_with_id
            )
        finally:
            elapsed = time.perf_counter() - start
            route = scope.get("route")
            # The route's template, never the raw path: paths carry ids and survey tokens.
            template = getattr(route, "path", None) or "unmatched"
            method = scope["method"]
            REQUESTS.labels(method, template, str(status)).inc()
            LATENCY.labels(method, template).observe(elapsed)
            log.info(
                "request",
                extra={
                    "method": method,
                    "route": template,
                    "status": status,
                    "ms": round(elapsed * 1000, 1),
                },
            )
            request_id_var.reset(token)


class _TooLarge(HTTPException):
    """An HTTPException, so FastAPI's body parsing passes it on instead of calling it a 400."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"The body is larger than this endpoint accepts ({limit} bytes).")


class BodyLimitMiddleware:
    """Refuse bodies over the limit with a 413 problem, before or while they stream in, so a
    50 MB post cannot tie up memory. Bulk imports get their own, larger, limit."""

    def __init__(self, app: ASGIApp, *, default: int, imports: int) -> None:
        self.app = app
        self.default = default
        self.imports = imports

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.imports if scope["path"].startswith("/v1/imports") else self.default
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _too_large(limit)(scope, receive, send)
            return
        seen = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _TooLarge(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _TooLarge:
            if started:
                raise
            await _too_large(limit)(scope, receive, send)


def _too_large(limit: int) -> Any:
    return problems.problem_response(
        413,
        "payload-too-large",
        "Payload too large",
        f"The body is larger than this endpoint accepts ({limit} bytes).",
    )
