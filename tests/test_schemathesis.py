"""Schemathesis against the running API's own OpenAPI document: every operation, all default
checks (no 5xx, responses match their schema, only documented status codes and content
types), a bounded and seeded number of examples so it fits in CI."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings

from services.api.app import create_app
from shared.settings import Settings
from tests.helpers import auth
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
    case.call_and_validate(base_url=api_url, headers=auth(tenant.api_key), timeout=10)
