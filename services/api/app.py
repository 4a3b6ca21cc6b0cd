"""The FastAPI app factory: middleware, error handlers, routers, and what lives for the app's
lifetime (engine, Redis, the job queue), built at start-up and never at import."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.utils import get_openapi

from services.api import problems
from services.api.deps import refuse_nul_parameters
from services.api.middleware import BodyLimitMiddleware, RequestContextMiddleware
from services.api.routers import (
    analyses,
    api_keys,
    audit_log,
    customers,
    events,
    funnels,
    health,
    imports,
    interviews,
    jobs,
    orders,
    paths,
    personas,
    public,
    segmentations,
    segments,
    surveys,
    webhook_endpoints,
    webhook_secrets,
    webhooks,
)
from shared.db.engine import app_url, make_engine, make_sessionmaker
from shared.jobs.queue import JobQueue, make_redis
from shared.logging import setup_logging
from shared.ratelimit import RateLimiter
from shared.settings import Settings, get_settings

API_ROUTERS = (
    customers.router,
    orders.router,
    events.router,
    imports.router,
    analyses.router,
    segments.router,
    segmentations.router,
    surveys.router,
    interviews.router,
    personas.router,
    personas.customer_router,
    funnels.router,
    paths.router,
    jobs.router,
    api_keys.router,
    audit_log.router,
    webhook_secrets.router,
    webhook_endpoints.router,
)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(app_url(settings), settings)
        redis = make_redis(settings)
        sessionmaker = make_sessionmaker(engine)
        app.state.settings = settings
        app.state.engine = engine
        app.state.sessionmaker = sessionmaker
        app.state.queue = JobQueue(redis, sessionmaker, settings.worker.queue_name)
        app.state.ratelimiter = RateLimiter(redis)
        # Short transactions that a request runs beside its own (who a batch of events is):
        # a pool of their own, so requests that hold the main pool's connections can never
        # wait for one of them among themselves.
        side = make_engine(app_url(settings), settings, pool_size=4)
        app.state.side_sessionmaker = make_sessionmaker(side)
        try:
            yield
        finally:
            await redis.aclose()
            await side.dispose()
            await engine.dispose()

    app = FastAPI(
        title="Portrait",
        version="1.0.0",
        summary="Customer insights for ecommerce stores.",
        lifespan=lifespan,
        dependencies=[Depends(refuse_nul_parameters)],
    )
    problems.install(app)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.api.cors_origins,
        allow_methods=["GET", "POST", "PATCH", "PUT", "DELETE", "OPTIONS"],
        allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "X-Request-ID"],
        expose_headers=[
            "Location",
            "X-Request-ID",
            "Retry-After",
            "Idempotent-Replayed",
            "RateLimit-Limit",
            "RateLimit-Remaining",
            "RateLimit-Reset",
        ],
        max_age=600,
    )
    app.add_middleware(
        BodyLimitMiddleware,
        default=settings.api.max_body_bytes,
        imports=settings.api.max_import_bytes,
    )
    app.add_middleware(RequestContextMiddleware)
    app.include_router(health.router)
    app.include_router(webhooks.router)
    app.include_router(public.router)
    for router in API_ROUTERS:
        app.include_router(router, responses=problems.responses(*problems.COMMON))
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _openapi(app: FastAPI) -> dict[str, Any]:
    """The generated document, plus the Problem schema every error response refers to."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title, version=app.version, summary=app.summary, routes=app.routes
    )
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["Problem"] = problems.Problem.model_json_schema(
        ref_template="#/components/schemas/{model}"
    )
    for name, sub in components["Problem"].pop("$defs", {}).items():
        components.setdefault(name, sub)
    app.openapi_schema = schema
    return schema


def app_from_env() -> FastAPI:
    """uvicorn's factory entry point (`--factory services.api.app:app_from_env`)."""
    settings = get_settings()
    setup_logging(settings)
    app = create_app(settings)
    # What start-up made (modules, the app and its routes, pydantic and ORM classes) lives
    # as long as the process: out of the collector's sight, a full collection no longer walks
    # it, which under load showed as pauses of a few hundred milliseconds.
    gc.collect()
    gc.freeze()
    return app
