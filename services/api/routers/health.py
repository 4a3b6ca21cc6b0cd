"""Liveness, readiness and metrics: for orchestrators and Prometheus, without an API key."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from sqlalchemy import text

from services.api.problems import responses

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: str
    checks: dict[str, str] = {}


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    """The process is up (it says nothing of its dependencies)."""
    return Health(status="ok")


@router.get("/readyz", response_model=Health, responses={503: {"model": Health}})
async def readyz(request: Request, response: Response) -> Health:
    """Ready to serve: PostgreSQL and Redis both answer within a second."""
    checks = {
        "database": await _check(_ping_db(request)),
        "redis": await _check(request.app.state.queue.redis.ping()),
    }
    ok = all(v == "ok" for v in checks.values())
    response.status_code = 200 if ok else 503
    return Health(status="ok" if ok else "unavailable", checks=checks)


async def _ping_db(request: Request) -> None:
    async with request.app.state.engine.connect() as conn:
        await conn.execute(text("SELECT 1"))


async def _check(awaitable: object) -> str:
    try:
        await asyncio.wait_for(awaitable, timeout=1.0)  # type: ignore[arg-type]
    except Exception as exc:  # any failure means "not ready"; the kind is enough to report
        return f"unavailable: {type(exc).__name__}"
    return "ok"


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST.split(";")[0]: {}}}, **responses(500)},
)
async def metrics() -> Response:
    """Prometheus metrics of this API process."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
