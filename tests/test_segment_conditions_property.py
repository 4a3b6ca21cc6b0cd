"""Property-based: random condition trees compiled to SQL select exactly the customers a
plain Python reading of the same tree selects."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter
from sqlalchemy import select

from shared.db.engine import app_url as app_db_url
from shared.db.engine import make_engine, make_sessionmaker, unit_of_work
from shared.models import Customer
from shared.segments import conditions, repository
from tests.factories.store import customer, order
from tests.helpers import auth

COUNTRIES = ["VN", "US", "DE", "FR"]
INTERESTS = ["yoga", "cooking", "running", "travel"]

leaf = st.one_of(
    st.builds(lambda v: {"fact": "country", "op": "eq", "value": v}, st.sampled_from(COUNTRIES)),
    st.builds(lambda v: {"fact": "country", "op": "neq", "value": v}, st.sampled_from(COUNTRIES)),
    st.builds(
        lambda vs: {"fact": "country", "op": "in", "value": vs},
        st.lists(st.sampled_from(COUNTRIES), min_size=1, max_size=3, unique=True),
    ),
    st.builds(
        lambda v: {"fact": "interests", "op": "contains", "value": v}, st.sampled_from(INTERESTS)
    ),
    st.builds(
        lambda op, v: {"fact": "order_count", "op": op, "value": v},
        st.sampled_from(["eq", "gt", "gte", "lt", "lte"]),
        st.integers(0, 3),
    ),
    st.builds(lambda v: {"fact": "accepts_marketing", "op": "eq", "value": v}, st.booleans()),
    st.builds(lambda v: {"fact": "city", "op": "exists", "value": v}, st.booleans()),
)
trees = st.recursive(
    leaf,
    lambda children: st.one_of(
        st.builds(lambda cs: {"all": cs}, st.lists(children, min_size=1, max_size=3)),
        st.builds(lambda cs: {"any": cs}, st.lists(children, min_size=1, max_size=3)),
        st.builds(lambda c: {"not": c}, children),
    ),
    max_leaves=6,
)


def reference(tree: dict[str, Any], c: dict[str, Any]) -> bool:
    """The meaning of a tree, written plainly. SQL NULL semantics: a comparison with an
    unknown fact is not a match (and `not` of a non-match is a match)."""
    if "all" in tree:
        return all(reference(t, c) for t in tree["all"])
    if "any" in tree:
        return any(reference(t, c) for t in tree["any"])
    if "not" in tree:
        return not reference(tree["not"], c)
    value, op, want = c.get(tree["fact"]), tree["op"], tree["value"]
    if op == "exists":
        return (value is not None) == want
    if op == "contains":
        return want in (value or [])
    if value is None:
        return op == "neq"
    if op == "in":
        return value in want
    compare = {
        "eq": value.__eq__,
        "neq": value.__ne__,
        "gt": value.__gt__,
        "gte": value.__ge__,
        "lt": value.__lt__,
        "lte": value.__le__,
    }[op]
    return bool(compare(want))


async def test_compiled_conditions_match_a_reference_reading(client, tenant, settings):
    rng = random.Random(1)
    h = auth(tenant.api_key)
    people: dict[str, dict[str, Any]] = {}
    for n in range(30):
        facts: dict[str, Any] = {
            "country": rng.choice([*COUNTRIES, None]),
            "interests": rng.sample(INTERESTS, rng.randint(0, 3)),
            "accepts_marketing": rng.choice([True, False, None]),
            "city": rng.choice(["Hanoi", None]),
        }
        await client.post("/v1/customers", json=customer(f"p{n}", **facts), headers=h)
        orders = rng.randint(0, 3)
        for _ in range(orders):
            await client.post("/v1/orders", json=order(f"p{n}"), headers=h)
        people[f"p{n}"] = {**facts, "order_count": orders}
    adapter: TypeAdapter[Any] = TypeAdapter(conditions.Condition)

    def run_in_thread() -> None:
        loop = asyncio.new_event_loop()
        engine = make_engine(app_db_url(settings), settings, pool_size=1)
        sessionmaker = make_sessionmaker(engine)

        async def select_ids(tree: dict[str, Any]) -> set[str]:
            node = adapter.validate_python(tree)
            ctx = conditions.Context(tenant.tenant_id, datetime.now(UTC))
            compiled = conditions.compile_condition(node, ctx)
            async with unit_of_work(sessionmaker, tenant.tenant_id) as session:
                ids = repository.matching(tenant.tenant_id, compiled).subquery()
                rows = await session.execute(
                    select(Customer.external_id).where(Customer.id.in_(select(ids.c.id)))
                )
                return set(rows.scalars())

        @settings_for_db
        @given(tree=trees)
        def check(tree: dict[str, Any]) -> None:
            expected = {ext for ext, c in people.items() if reference(tree, c)}
            assert loop.run_until_complete(select_ids(tree)) == expected, tree

        try:
            check()
        finally:
            loop.run_until_complete(engine.dispose())
            loop.close()

    await asyncio.to_thread(run_in_thread)


settings_for_db = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
