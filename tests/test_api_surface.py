"""The HTTP surface frontends build on: problem+json everywhere, health, metrics, CORS,
request ids, and an OpenAPI document that declares it all."""

from __future__ import annotations

from tests.helpers import auth
from tests.test_auth import assert_problem


async def test_unknown_route_is_a_problem_404(client):
    body = assert_problem(await client.get("/v1/nothing-here"), 404)
    assert body["instance"] == "/v1/nothing-here"


async def test_wrong_method_is_a_problem_405(client):
    assert_problem(await client.delete("/healthz"), 405)


async def test_validation_error_points_at_the_field_and_never_echoes_the_value(client, tenant):
    secret = "jane.doe@example.com"
    response = await client.get(f"/v1/jobs?limit={secret}", headers=auth(tenant.api_key))
    body = assert_problem(response, 422)
    assert body["errors"][0]["loc"] == ["query", "limit"]
    assert secret not in response.text
    over = await client.get("/v1/jobs?limit=501", headers=auth(tenant.api_key))
    assert_problem(over, 422)


async def test_every_answer_carries_a_request_id(client):
    mine = await client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert mine.headers["x-request-id"] == "abc-123"
    fresh = await client.get("/v1/jobs")
    assert len(fresh.headers["x-request-id"]) == 32
    assert fresh.json()["request_id"] == fresh.headers["x-request-id"]
    hostile = await client.get("/healthz", headers={"X-Request-ID": 'x" onerror=1'})
    assert hostile.headers["x-request-id"] != 'x" onerror=1'


async def test_health_and_readiness(client):
    assert (await client.get("/healthz")).json() == {"status": "ok", "checks": {}}
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok", "redis": "ok"}


async def test_metrics_count_requests_by_route_template(client, tenant):
    await client.get("/v1/jobs/some-id", headers=auth(tenant.api_key))
    text = (await client.get("/metrics")).text
    assert 'route="/v1/jobs/{job_id}"' in text
    assert "some-id" not in text


async def test_cors_allows_the_configured_origin_only(client):
    def preflight(origin):
        return client.options(
            "/v1/jobs",
            headers={
                "Origin": origin,
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "authorization",
            },
        )

    allowed = await preflight("https://shop.example")
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://shop.example"
    denied = await preflight("https://evil.example")
    assert "access-control-allow-origin" not in denied.headers
    simple = await client.get("/healthz", headers={"Origin": "https://shop.example"})
    assert "x-request-id" in simple.headers["access-control-expose-headers"].lower()


async def test_openapi_declares_problem_responses(client):
    doc = (await client.get("/openapi.json")).json()
    assert "Problem" in doc["components"]["schemas"]
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    get_job = doc["paths"]["/v1/jobs/{job_id}"]["get"]["responses"]
    for code in ("401", "404", "422"):
        assert "application/problem+json" in get_job[code]["content"], code
    assert doc["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"


async def test_an_unexpected_error_is_a_500_problem_without_internals(settings):
    import httpx

    from services.api.app import create_app

    app = create_app(settings)

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("customer jane.doe@example.com broke it")

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        response = await c.get("/boom")
    body = assert_problem(response, 500)
    assert "jane.doe" not in response.text
    assert "Traceback" not in response.text
    assert body["request_id"] == response.headers["x-request-id"]


def test_log_lines_are_json_with_the_request_id():
    import json
    import logging

    from shared.logging import JsonFormatter, request_id_var

    token = request_id_var.set("req-42")
    try:
        record = logging.LogRecord("portrait", logging.INFO, __file__, 1, "hello", None, None)
        record.route = "/v1/jobs"
        line = json.loads(JsonFormatter().format(record))
    finally:
        request_id_var.reset(token)
    assert line["request_id"] == "req-42"
    assert line["msg"] == "hello"
    assert line["route"] == "/v1/jobs"
