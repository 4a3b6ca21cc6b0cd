"""Funnels through the API and a real worker: definitions and their validation, a run's
counts, breakdown, trend, chart, drop-off lists and the segment made of them."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

from tests.factories.store import customer, event
from tests.helpers import auth, run_burst
from tests.test_auth import assert_problem

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(days=30)
STEPS = [
    {"event": "page_view", "filters": [{"property": "path", "op": "starts_with",
                                        "value": "/products"}], "label": "Product page"},
    {"event": "add_to_cart"},
    {"event": "checkout_started"},
    {"event": "order_placed", "label": "Paid"},
]  # fmt: skip


def _at(hours: float) -> str:
    return (T0 + timedelta(hours=hours)).isoformat()


def _ev(name, hours, who=None, anon=None, device="mobile", path="/products/p-1", session="s-1"):
    return event(
        name, customer_external_id=who, anonymous_id=anon, occurred_at=_at(hours),
        device=device, session_id=session, properties={"path": path},
    )  # fmt: skip


async def _store(client, h):
    for ext in ("ana", "bao", "cam", "dan"):
        await client.post("/v1/customers", json=customer(ext), headers=h)
    events = [
        # ana converts, on mobile; her events arrive out of order.
        _ev("order_placed", 3, "ana"), _ev("checkout_started", 2, "ana"),
        _ev("add_to_cart", 1, "ana"), _ev("page_view", 0, "ana"),
        # bao stops after the cart, on mobile.
        _ev("page_view", 0, "bao"), _ev("add_to_cart", 1, "bao"),
        # cam skips the cart (desktop): only step 1 in an ordered funnel; a home page view
        # does not match the first step's filter.
        _ev("page_view", 0, "cam", device="desktop"),
        _ev("page_view", 0.5, "cam", device="desktop", path="/"),
        _ev("checkout_started", 1, "cam", device="desktop"),
        # An anonymous visitor who views and carts, then is identified as dan, who checks out.
        _ev("page_view", 0, anon="anon-1", device="desktop"),
        _ev("add_to_cart", 1, anon="anon-1", device="desktop"),
        _ev("checkout_started", 2, "dan", device="desktop"),
        # A visitor who stays anonymous; only a product view.
        _ev("page_view", 5, anon="anon-2", device="desktop"),
        # Outside the window of 7 days: does not count for ana.
        _ev("page_view", 24 * 20, "ana"),
    ]  # fmt: skip
    r = await client.post("/v1/events", json={"events": events}, headers=h)
    assert r.status_code in (200, 201, 202), r.text
    r = await client.post(
        "/v1/identify", json={"anonymous_id": "anon-1", "customer_external_id": "dan"}, headers=h
    )
    assert r.status_code == 204, r.text


def _funnel(**over):
    body = {
        "name": "Checkout",
        "steps": STEPS,
        "window_seconds": 7 * 86400,
        "date_range": {"from": _at(-24), "to": _at(24)},
    }
    body.update(over)
    return body


async def _run(client, h, worker_factory, funnel_id, body=None):
    r = await client.post(f"/v1/funnels/{funnel_id}/runs", json=body or {}, headers=h)
    assert r.status_code == 202, r.text
    assert r.headers["Location"].startswith("/v1/jobs/")
    run_id = r.json()["run_id"]
    await run_burst(worker_factory)
    r = await client.get(f"/v1/funnels/{funnel_id}/runs/{run_id}", headers=h)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "succeeded", r.json()
    return run_id, r.json()["result"]


async def test_funnel_definitions_round_trip_and_update(client, tenant):
    h = auth(tenant.api_key)
    r = await client.post("/v1/funnels", json=_funnel(order="strict"), headers=h)
    assert r.status_code == 201, r.text
    f = r.json()
    assert f["order"] == "strict"
    assert f["steps"][0]["filters"][0]["op"] == "starts_with"
    r = await client.patch(f"/v1/funnels/{f['id']}", json={"window_seconds": 3600}, headers=h)
    assert r.status_code == 200, r.text
    assert r.json()["window_seconds"] == 3600
    assert r.json()["order"] == "strict"
    r = await client.get("/v1/funnels", headers=h)
    assert [x["id"] for x in r.json()["items"]] == [f["id"]]
    assert (await client.delete(f"/v1/funnels/{f['id']}", headers=h)).status_code == 204
    assert_problem(await client.get(f"/v1/funnels/{f['id']}", headers=h), 404)


async def test_bad_definitions_are_422_with_where(client, tenant):
    h = auth(tenant.api_key)
    cases = [
        (_funnel(steps=STEPS[:1]), ["body", "steps"]),
        (_funnel(steps=[{"event": "a"}] * 21), ["body", "steps"]),
        (_funnel(order="sideways"), ["body", "order"]),
        (_funnel(steps=[{"event": "a\x00"}, {"event": "b"}]), ["body", "steps", 0, "event"]),
        (_funnel(steps=[{"event": "a", "filters": [{"property": "p", "op": "gt",
                                                    "value": "x"}]}, {"event": "b"}]),
         ["body", "steps", 0, "filters", 0]),
        (
            _funnel(steps=[{"event": "a", "filters": [{"property": "p", "op": "in",
                                                       "value": ["ok", "x\x00"]}]},
                           {"event": "b"}]),
            ["body", "steps", 0, "filters", 0],
        ),
        (_funnel(date_range={"from": _at(1), "to": _at(0)}), ["body", "date_range"]),
        (_funnel(window_seconds=0), ["body", "window_seconds"]),
        (_funnel(count="households"), ["body", "count"]),
    ]  # fmt: skip
    for body, loc in cases:
        problem = assert_problem(await client.post("/v1/funnels", json=body, headers=h), 422)
        locs = [e["loc"][: len(loc)] for e in problem["errors"]]
        assert loc in locs, (loc, problem["errors"])
    r = await client.post("/v1/funnels", json=_funnel(), headers=h)
    fid = r.json()["id"]
    problem = assert_problem(
        await client.patch(f"/v1/funnels/{fid}", json={"steps": [{"event": "x"}]}, headers=h), 422
    )
    assert problem["errors"][0]["loc"][:2] == ["body", "steps"]
    problem = assert_problem(
        await client.post(f"/v1/funnels/{fid}/runs", json={"breakdown": {"by": "persona"}},
                          headers=h), 422)  # fmt: skip
    assert problem["errors"][0]["loc"][:2] == ["body", "breakdown"]
    assert "persona_ids" in problem["errors"][0]["msg"]


async def test_run_counts_steps_dropoffs_and_timings(client, tenant, worker_factory):
    h = auth(tenant.api_key)
    await _store(client, h)
    fid = (await client.post("/v1/funnels", json=_funnel(), headers=h)).json()["id"]
    run_id, result = await _run(client, h, worker_factory, fid, {"trend": "day"})
    steps = result["steps"]
    # ana, bao, cam, dan (merged from anon-1), anon-2 enter; ana, bao, dan cart; ana, dan
    # check out; ana pays.
    assert [s["entered"] for s in steps] == [5, 3, 2, 1]
    assert [s["dropoff"] for s in steps] == [0, 2, 1, 1]
    assert steps[1]["conversion_from_previous"] == 0.6
    assert result["conversion"] == 0.2
    assert [s["largest_dropoff"] for s in steps] == [False, True, False, False]
    assert steps[1]["time_from_previous"] == {"median_s": 3600.0, "p90_s": 3600.0}
    assert result["time_to_convert"]["median_s"] == 3 * 3600.0
    assert sum(p["entered"] for p in result["trend"]["periods"]) == 5

    r = await client.get(f"/v1/funnels/{fid}/runs/{run_id}/dropoffs?step=1", headers=h)
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert {i["external_id"] for i in items if i["external_id"]} == {"cam"}
    assert {i["anonymous_id"] for i in items if i["anonymous_id"]} == {"anon-2"}
    r = await client.get(f"/v1/funnels/{fid}/runs/{run_id}/dropoffs?step=2&limit=1", headers=h)
    assert [i["external_id"] for i in r.json()["items"]] == ["bao"]
    assert r.json()["next_cursor"] is None
    r = await client.get(f"/v1/funnels/{fid}/runs/{run_id}/dropoffs?step=1&limit=1", headers=h)
    first = r.json()
    r = await client.get(
        f"/v1/funnels/{fid}/runs/{run_id}/dropoffs?step=1&limit=1&cursor={first['next_cursor']}",
        headers=h,
    )
    assert first["items"] + r.json()["items"] == items
    assert_problem(
        await client.get(f"/v1/funnels/{fid}/runs/{run_id}/dropoffs?step=4", headers=h), 422
    )

    r = await client.post(
        f"/v1/funnels/{fid}/runs/{run_id}/dropoffs",
        json={"step": 1, "save_as_segment": {"name": "Looked, never carted"}},
        headers=h,
    )
    assert r.status_code == 201, r.text
    segment = r.json()
    assert segment["kind"] == "static"
    assert segment["size"] == 1  # cam; the anonymous visitor cannot be a member
    r = await client.get(f"/v1/segments/{segment['id']}/members", headers=h)
    assert [m["external_id"] for m in r.json()["items"]] == ["cam"]


async def test_run_chart_is_svg_with_the_steps(client, tenant, worker_factory):
    h = auth(tenant.api_key)
    await _store(client, h)
    fid = (await client.post("/v1/funnels", json=_funnel(), headers=h)).json()["id"]
    run_id, _ = await _run(client, h, worker_factory, fid)
    r = await client.get(
        f"/v1/funnels/{fid}/runs/{run_id}", headers={**h, "Accept": "image/svg+xml"}
    )
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("image/svg+xml")
    root = ET.fromstring(r.text)
    texts = " ".join(t.text or "" for t in root.iter("{http://www.w3.org/2000/svg}text"))
    assert "1. Product page" in texts
    assert "4. Paid" in texts
    assert "−2 (40.0%)" in texts  # the largest drop-off, marked


async def test_breakdown_by_device_with_significance(client, tenant, worker_factory):
    h = auth(tenant.api_key)
    await _store(client, h)
    fid = (await client.post("/v1/funnels", json=_funnel(), headers=h)).json()["id"]
    _, result = await _run(client, h, worker_factory, fid, {"breakdown": {"by": "device"}})
    groups = {g["value"]: g for g in result["breakdown"]["groups"]}
    assert set(groups) == {"mobile", "desktop"}
    assert groups["mobile"]["entered"] == 2
    assert groups["mobile"]["converted"] == 1
    assert groups["desktop"]["entered"] == 3
    assert [s["entered"] for s in groups["desktop"]["steps"]] == [3, 1, 1, 0]
    vs = groups["mobile"]["vs_rest"]
    assert vs["rest_conversion"] == 0.0
    assert 0 < vs["p_value"] <= 1
    assert vs["significant"] is False  # five people prove nothing


async def test_breakdown_by_segment_and_profile(client, tenant, worker_factory):
    h = auth(tenant.api_key)
    await _store(client, h)
    r = await client.post(
        "/v1/segments",
        json={"name": "A few", "kind": "static", "customer_ids": ["ext:ana", "ext:bao"]},
        headers=h,
    )
    seg = r.json()["id"]
    fid = (await client.post("/v1/funnels", json=_funnel(), headers=h)).json()["id"]
    _, result = await _run(
        client, h, worker_factory, fid, {"breakdown": {"by": "segment", "segment_ids": [seg]}}
    )
    groups = {g["value"]: g for g in result["breakdown"]["groups"]}
    assert groups["A few"]["entered"] == 2
    assert groups["(no segment)"]["entered"] == 3
    _, result = await _run(
        client, h, worker_factory, fid, {"breakdown": {"by": "profile", "property": "country"}}
    )
    groups = {g["value"]: g["entered"] for g in result["breakdown"]["groups"]}
    assert groups == {"VN": 4, "(none)": 1}  # the anonymous visitor has no profile
    problem = assert_problem(
        await client.post(
            f"/v1/funnels/{fid}/runs",
            json={"breakdown": {"by": "segment", "segment_ids": ["nope"]}},
            headers=h,
        ),
        422,
    )
    assert problem["errors"][0]["loc"] == ["body", "breakdown", "segment_ids", 0]


async def test_breakdown_by_persona_shows_the_personas_by_name(client, tenant, worker_factory):
    from tests.test_personas import generate_personas

    h = auth(tenant.api_key)
    await _store(client, h)
    r = await client.post(
        "/v1/segments",
        json={"name": "A few", "kind": "static", "customer_ids": ["ext:ana", "ext:bao"]},
        headers=h,
    )
    seg = r.json()["id"]
    made = await generate_personas(client, tenant, worker_factory, {"segment_ids": [seg]})
    persona = made["personas"][0]
    name = (await client.get(f"/v1/personas/{persona['persona_id']}", headers=h)).json()["name"]
    fid = (await client.post("/v1/funnels", json=_funnel(), headers=h)).json()["id"]
    body = {"breakdown": {"by": "persona", "persona_ids": [persona["persona_id"]]}}
    _, result = await _run(client, h, worker_factory, fid, body)
    groups = {g["value"]: g for g in result["breakdown"]["groups"]}
    assert groups[name]["entered"] == 2
    assert groups[name]["converted"] == 1  # ana pays, bao stops at the cart
    assert groups["(no segment)"]["entered"] == 3
    assert result["breakdown"]["persona_ids"] == [persona["persona_id"]]
    # An unknown persona, and one whose segment is gone, are 422 at the id.
    for ref in ("01900000-0000-7000-8000-000000000000", persona["persona_id"]):
        if ref == persona["persona_id"]:
            assert (await client.delete(f"/v1/segments/{seg}", headers=h)).status_code == 204
        problem = assert_problem(
            await client.post(
                f"/v1/funnels/{fid}/runs",
                json={"breakdown": {"by": "persona", "persona_ids": [ref]}},
                headers=h,
            ),
            422,
        )
        assert problem["errors"][0]["loc"] == ["body", "breakdown", "persona_ids", 0]


async def test_strict_order_exclusions_and_sessions(client, tenant, worker_factory):
    h = auth(tenant.api_key)
    await _store(client, h)
    # Strict: cam's home page view is not a funnel event (the filter), so it does not break
    # anything; nobody's order changes here. An exclusion on checkout_started between the
    # cart and payment stops ana at the cart... only if it lies between two matched steps.
    body = _funnel(
        steps=[{"event": "page_view"}, {"event": "add_to_cart"}, {"event": "order_placed"}],
        exclusions=[{"event": "checkout_started"}],
    )
    fid = (await client.post("/v1/funnels", json=body, headers=h)).json()["id"]
    _, result = await _run(client, h, worker_factory, fid)
    assert [s["entered"] for s in result["steps"]] == [5, 3, 0]
    body = _funnel(steps=[{"event": "page_view"}, {"event": "checkout_started"}], order="strict")
    fid = (await client.post("/v1/funnels", json=body, headers=h)).json()["id"]
    _, result = await _run(client, h, worker_factory, fid)
    # Strict: the cart is no funnel event here, so ana, cam (from her home page view) and dan
    # go straight from a view to checkout.
    assert [s["entered"] for s in result["steps"]] == [5, 3]
    body["steps"].insert(
        1, {"event": "page_view", "filters": [{"property": "path", "op": "eq", "value": "/"}]}
    )
    fid = (await client.post("/v1/funnels", json=body, headers=h)).json()["id"]
    _, result = await _run(client, h, worker_factory, fid)
    assert [s["entered"] for s in result["steps"]] == [5, 1, 1]  # only cam saw the home page
    fid = (await client.post("/v1/funnels", json=_funnel(count="sessions"), headers=h)).json()["id"]
    _, result = await _run(client, h, worker_factory, fid)
    assert result["unit"] == "sessions"
    assert [s["entered"] for s in result["steps"]] == [5, 3, 2, 1]


async def test_another_tenants_funnel_is_not_found(client, tenant, make_tenant):
    other = await make_tenant("other")
    fid = (await client.post("/v1/funnels", json=_funnel(), headers=auth(tenant.api_key))).json()[
        "id"
    ]
    assert_problem(await client.get(f"/v1/funnels/{fid}", headers=auth(other.api_key)), 404)
    assert_problem(
        await client.post(f"/v1/funnels/{fid}/runs", json={}, headers=auth(other.api_key)), 404
    )
