"""Property-based: random trees of survey-answer conditions compiled to SQL select exactly the
customers a plain Python reading of their answers selects."""

from __future__ import annotations

import asyncio
import random
import secrets
from datetime import UTC, datetime
from typing import Any

import httpx
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from pydantic import TypeAdapter
from sqlalchemy import select

from shared.db.engine import app_url as app_db_url
from shared.db.engine import make_engine, make_sessionmaker, unit_of_work
from shared.models import Customer
from shared.segments import conditions, repository
from tests.factories.store import customer
from tests.factories.surveys import active_survey, distribute
from tests.helpers import auth

ROLES = ["decides", "influences", "shares", "other"]
SID = "SURVEY"  # replaced by the survey's id


def _leaf(question: str, op: str, value: Any = None) -> dict[str, Any]:
    body: dict[str, Any] = {"survey_id": SID, "question": question, "op": op}
    if value is not None:
        body["value"] = value
    return {"survey": body}


leaf = st.one_of(
    st.builds(lambda v: _leaf("role", "eq", v), st.sampled_from(ROLES)),
    st.builds(
        lambda vs: _leaf("role", "in", vs),
        st.lists(st.sampled_from(ROLES), min_size=1, max_size=3, unique=True),
    ),
    st.builds(
        lambda op, v: _leaf("nps", op, v), st.sampled_from(["gte", "lte", "eq"]), st.integers(0, 10)
    ),
    st.builds(
        lambda lo, hi: _leaf("nps", "between", [min(lo, hi), max(lo, hi)]),
        st.integers(0, 10),
        st.integers(0, 10),
    ),
    st.builds(lambda v: _leaf("parent", "eq", v), st.booleans()),
    st.builds(lambda v: _leaf("nps", "exists", v), st.booleans()),
)
trees = st.recursive(
    leaf,
    lambda children: st.one_of(
        st.builds(lambda cs: {"all": cs}, st.lists(children, min_size=1, max_size=3)),
        st.builds(lambda cs: {"any": cs}, st.lists(children, min_size=1, max_size=3)),
        st.builds(lambda c: {"not": c}, children),
    ),
    max_leaves=5,
)


def reference(tree: dict[str, Any], answers: dict[str, Any]) -> bool:
    if "all" in tree:
        return all(reference(t, answers) for t in tree["all"])
    if "any" in tree:
        return any(reference(t, answers) for t in tree["any"])
    if "not" in tree:
        return not reference(tree["not"], answers)
    f = tree["survey"]
    given_ = answers.get(f["question"])
    if f["op"] == "exists":
        return (given_ is not None) == f.get("value", True)
    if given_ is None:
        return False
    want = f["value"]
    return {
        "eq": lambda: given_ == want,
        "in": lambda: given_ in want,
        "gte": lambda: given_ >= want,
        "lte": lambda: given_ <= want,
        "between": lambda: want[0] <= given_ <= want[1],
    }[f["op"]]()


def _with_id(tree: Any, survey_id: str) -> Any:
    if isinstance(tree, dict):
        return {k: (survey_id if v == SID else _with_id(v, survey_id)) for k, v in tree.items()}
    if isinstance(tree, list):
        return [_with_id(v, survey_id) for v in tree]
    return tree


async def test_survey_conditions_match_a_reference_reading(client, tenant, settings, app):
    rng = random.Random(5)
    h = auth(tenant.api_key)
    for n in range(24):
        await client.post("/v1/customers", json=customer(f"p{n}"), headers=h)
    survey = await active_survey(client, tenant)
    sent = await distribute(client, tenant, survey["id"], group="prospects")
    people: dict[str, dict[str, Any]] = {}
    transport = httpx.ASGITransport(
        app=app, client=(f"10.9.{secrets.randbelow(250)}.{secrets.randbelow(250) + 1}", 1)
    )
    async with httpx.AsyncClient(transport=transport, base_url="http://portrait.test") as public:
        for inv in sent["invitations"]:
            answers: dict[str, Any] = {}
            if rng.random() < 0.8:
                answers = {"role": rng.choice(ROLES)}
                if rng.random() < 0.8:
                    answers["nps"] = rng.randint(0, 10)
                if rng.random() < 0.5:
                    answers["parent"] = rng.choice([True, False])
                r = await public.post(
                    f"/v1/public/responses/{inv['token']}", json={"answers": answers}
                )
                assert r.status_code == 200, r.text
            people[inv["external_id"]] = answers
    adapter: TypeAdapter[Any] = TypeAdapter(conditions.Condition)

    def run_in_thread() -> None:
        loop = asyncio.new_event_loop()
        engine = make_engine(app_db_url(settings), settings, pool_size=1)
        sessionmaker = make_sessionmaker(engine)

        async def select_ids(tree: dict[str, Any]) -> set[str]:
            node = adapter.validate_python(_with_id(tree, survey["id"]))
            ctx = conditions.Context(tenant.tenant_id, datetime.now(UTC))
            compiled = conditions.compile_condition(node, ctx)
            async with unit_of_work(sessionmaker, tenant.tenant_id) as session:
                ids = repository.matching(tenant.tenant_id, compiled).subquery()
                rows = await session.execute(
                    select(Customer.external_id).where(Customer.id.in_(select(ids.c.id)))
                )
                return set(rows.scalars())

        @hypothesis_settings(
            max_examples=60,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=[HealthCheck.too_slow],
        )
        @given(tree=trees)
        def check(tree: dict[str, Any]) -> None:
            expected = {ext for ext, a in people.items() if reference(tree, a)}
            assert loop.run_until_complete(select_ids(tree)) == expected, tree

        try:
            check()
        finally:
            loop.run_until_complete(engine.dispose())
            loop.close()

    await asyncio.to_thread(run_in_thread)
