"""Schemathesis against the running API's own OpenAPI document: every operation, all default
checks (no 5xx, responses match their schema, only documented status codes and content
types), a bounded and seeded number of examples so it fits in CI."""

from __future__ import annotations

import json
from collections.abc import Iterator
from urllib.parse import quote

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings

from services.api.app import create_app
from shared.settings import Settings
from tests.helpers import auth
from tests.openapi_bodies import request_body, resolve
from tests.processes import start_api

MAX_EXAMPLES = 12


@pytest.fixture(scope="module")
def api_url(settings, owner_engine, tmp_path_factory) -> Iterator[str]:
    process, url = start_api(tmp_path_factory.mktemp("schemathesis"))
    yield url
    process.stop()


# The document is built from the same code the server runs (the test below checks that the
# served one is identical); loading it at collection gives one test per operation.
DOCUMENT = create_app(Settings()).openapi()
schema = schemathesis.openapi.from_dict(DOCUMENT)
# The coverage phase enumerates every boundary of every field (hundreds of cases for a big
# body, minutes in all); the seeded fuzzing phase with a bounded count is what CI can afford.
schema.config.phases.update(phases=["examples", "fuzzing"])
# Every check stays on. "Schema-valid data is accepted" also accepts 422: the API enforces
# rules JSON Schema does not say (no NUL characters, ISO 4217 / 3166 codes, timestamps after
# 1970 and not in the future, rules across fields, opaque cursors), and refuses them at the
# edge with a 422 that names the field. Every other check is as shipped.
schema.config.checks.positive_data_acceptance.expected_statuses = [
    *schema.config.checks.positive_data_acceptance.expected_statuses,
    "422",
]


def test_the_served_document_is_the_one_tested(api_url):
    assert httpx.get(api_url + "/openapi.json", timeout=10).json() == DOCUMENT


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    phases=[Phase.explicit, Phase.generate],
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_keeps_its_contract(case, api_url, tenant):
    # A negative case may be "no Authorization header" (the bearer scheme is a required
    # header to schemathesis); adding the key back would send a valid request instead.
    headers = {} if _drops_authorization(case) else auth(tenant.api_key)
    case.call_and_validate(base_url=api_url, headers=headers, timeout=10)


def _drops_authorization(case) -> bool:
    meta = case.meta
    if meta is None or not meta.generation.mode.is_negative:
        return False
    data = meta.phase.data
    named = [getattr(data, "parameter", None)]
    named += [getattr(m, "parameter", None) for m in getattr(data, "mutations", None) or []]
    return "Authorization" in named


def _string_properties(document, schema) -> list[str]:
    schema = resolve(document, schema)
    props = schema.get("properties", {})
    names = []
    for name, prop in props.items():
        prop = resolve(document, prop)
        options = [resolve(document, p) for p in prop.get("anyOf", [prop])]
        if any(o.get("type") == "string" and "enum" not in o for o in options):
            names.append(name)
    return names


async def test_nul_characters_are_refused_everywhere(client, tenant):
    """A NUL in any path parameter, query parameter or body string is a 4xx, never a 500 (it
    would be a 500 if it reached PostgreSQL). One field at a time, the rest left valid."""
    h = auth(tenant.api_key)
    document = (await client.get("/openapi.json")).json()
    nul = "a\x00b"
    tried = 0
    for path, item in document["paths"].items():
        for method, operation in item.items():
            params = operation.get("parameters", [])
            path_values = {p["name"]: "x" for p in params if p["in"] == "path"}
            if "source" in path_values:
                path_values["source"] = "generic"
            body = request_body(document, operation)
            schema = operation.get("requestBody", {}).get("content", {})
            schema = schema.get("application/json", {}).get("schema", {})
            probes: list[tuple[dict[str, str], dict[str, str], object]] = []
            for name in path_values:
                probes.append(({**path_values, name: nul}, {}, body and body[1]))
            for p in params:
                if p["in"] == "query" and "string" in json.dumps(p.get("schema", {})):
                    probes.append((path_values, {p["name"]: nul}, body and body[1]))
            if body is not None and body[0] == "application/json" and isinstance(body[1], dict):
                for name in _string_properties(document, schema):
                    probes.append((path_values, {}, {**body[1], name: nul}))
            for values, query, payload in probes:
                url = path
                for name, value in values.items():
                    url = url.replace("{" + name + "}", quote(value, safe=""))
                kwargs = {"headers": h, "params": query}
                if payload is not None:
                    kwargs["json"] = payload
                r = await client.request(method.upper(), url, **kwargs)
                assert r.status_code < 500, f"{method.upper()} {url} {query} {payload}: {r.text}"
                tried += 1
    assert tried > 50


@pytest.mark.parametrize(
    "url",
    [
        "/v1/jobs?kind=a%00b",  # NUL reached PostgreSQL: a 500
        "/v1/customers?min_tenure_days=12184478811",  # overflowed a date: a 500
        "/v1/customers?min_orders=99999999999999999999",  # past bigint
        "/v1/orders?placed_after=2.1804555558577778e-07",  # read as Unix seconds: accepted
        "/v1/customers?created_after=1700000000",
        "/v1/segments?=false",  # a nameless parameter: ignored
    ],
)
async def test_what_schemathesis_found_is_refused_at_the_edge(client, tenant, url):
    """Cases random seeds found once; kept here so a seeded run cannot lose them."""
    r = await client.get(url, headers=auth(tenant.api_key))
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["errors"]


async def test_an_order_count_past_postgresqls_integer_is_a_422(client, tenant):
    """Found by a seeded run: `max_count` of 1.35e15 reached PostgreSQL as an integer (a 500)."""
    body = {"condition": {"orders": {"max_count": 1353101298633360, "within_last_days": 1007}}}
    r = await client.post("/v1/segments/preview", json=body, headers=auth(tenant.api_key))
    assert r.status_code == 422, r.text
    loc = r.json()["errors"][0]["loc"]
    assert loc[:3] == ["body", "condition", "orders"], loc
    assert loc[-1] == "max_count", loc
