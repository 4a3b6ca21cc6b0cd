"""Journeys (`POST /v1/paths`): the most common sequences after or before an event, shaped
for a Sankey, with rare branches grouped; the pure functions and the job end to end."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from shared.funnels import paths
from tests.factories.store import customer, event
from tests.helpers import auth, run_burst
from tests.test_auth import assert_problem

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(days=5)


def test_journeys_follow_the_first_anchor_and_collapse_repeats():
    actors = ["a"] * 6 + ["b"] * 3
    names = ["home", "view", "view", "cart", "view", "pay", "view", "home", "view"]
    got = paths.journeys(actors, names, "view", 2, before=False, collapse=True,
                         anchor_ok=[True] * 9)  # fmt: skip
    assert got == [("view", "cart", "view"), ("view", "home", "view")]
    got = paths.journeys(actors, names, "view", 2, before=False, collapse=False,
                         anchor_ok=[True] * 9)  # fmt: skip
    assert got[0] == ("view", "view", "cart")
    got = paths.journeys(actors, names, "cart", 2, before=True, collapse=True,
                         anchor_ok=[True] * 9)  # fmt: skip
    assert got == [("home", "view", "cart")]


def test_sankey_groups_rare_branches_and_ends_short_journeys():
    journeys = [("view", "cart", "pay")] * 6 + [("view", "cart")] * 3 + [("view", "faq")]
    out = paths.sankey(journeys, 2, before=False, max_branches=5, min_share=0.2)
    nodes = {n["id"]: n["count"] for n in out["nodes"]}
    assert nodes == {"0:view": 10, "1:cart": 9, "1:(other)": 1, "2:pay": 6, "2:(end)": 4}
    links = {(x["source"], x["target"]): x["value"] for x in out["links"]}
    assert links[("0:view", "1:cart")] == 9
    assert links[("1:cart", "2:(end)")] == 3
    assert links[("1:(other)", "2:(end)")] == 1
    # Every node's inflow equals its count (a consistent Sankey).
    for node_id, count in nodes.items():
        if not node_id.startswith("0:"):
            assert sum(v for (_, t), v in links.items() if t == node_id) == count
    assert out["top_paths"][0] == {"events": ["view", "cart", "pay"], "count": 6, "share": 0.6}


async def test_paths_job_answers_a_sankey(client, tenant, worker_factory):
    h = auth(tenant.api_key)
    for ext in ("ana", "bao", "cam"):
        await client.post("/v1/customers", json=customer(ext), headers=h)

    def ev(name, minutes, who=None, anon=None):
        return event(name, customer_external_id=who, anonymous_id=anon,
                     occurred_at=(T0 + timedelta(minutes=minutes)).isoformat())  # fmt: skip

    events = [
        ev("home", 0, "ana"), ev("product_view", 1, "ana"), ev("add_to_cart", 2, "ana"),
        ev("purchase", 3, "ana"),
        ev("product_view", 0, "bao"), ev("add_to_cart", 1, "bao"),
        ev("product_view", 0, "cam"), ev("faq", 1, "cam"),
        # Arrives after bao's cart but happened before: bao's journey starts here.
        ev("home", -5, "bao"),
        ev("product_view", 0, anon="v-1"), ev("add_to_cart", 2, anon="v-1"),
    ]  # fmt: skip
    assert (await client.post("/v1/events", json={"events": events}, headers=h)).status_code < 300
    r = await client.post(
        "/v1/paths",
        json={"start_event": "product_view", "steps": 2, "max_branches": 1, "min_share": 0},
        headers=h,
    )
    assert r.status_code == 202, r.text
    job_id = r.json()["job_id"]
    await run_burst(worker_factory)
    job = (await client.get(f"/v1/jobs/{job_id}", headers=h)).json()
    assert job["status"] == "succeeded", job
    result = job["result"]
    assert result["journeys"] == 4
    nodes = {n["id"]: n["count"] for n in result["nodes"]}
    assert nodes["0:product_view"] == 4
    assert nodes["1:add_to_cart"] == 3
    assert nodes["1:(other)"] == 1  # faq, grouped: only one branch kept
    links = {(x["source"], x["target"]): x["value"] for x in result["links"]}
    assert links[("1:add_to_cart", "2:purchase")] == 1
    assert links[("1:add_to_cart", "2:(end)")] == 2

    r = await client.post("/v1/paths", json={"end_event": "add_to_cart", "steps": 2}, headers=h)
    await run_burst(worker_factory)
    result = (await client.get(f"/v1/jobs/{r.json()['job_id']}", headers=h)).json()["result"]
    tops = {tuple(p["events"]): p["count"] for p in result["top_paths"]}
    assert tops[("home", "product_view", "add_to_cart")] == 2  # ana and bao
    assert tops[("product_view", "add_to_cart")] == 1  # the anonymous visitor


async def test_paths_request_is_validated(client, tenant):
    h = auth(tenant.api_key)
    for body, loc in [
        ({"steps": 2}, ["body"]),
        ({"start_event": "a", "end_event": "b"}, ["body"]),
        ({"start_event": "a", "steps": 11}, ["body", "steps"]),
        ({"start_event": "a\x00"}, ["body", "start_event"]),
    ]:
        problem = assert_problem(await client.post("/v1/paths", json=body, headers=h), 422)
        assert problem["errors"][0]["loc"][: len(loc)] == loc
