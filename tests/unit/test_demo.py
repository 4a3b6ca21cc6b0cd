"""The demo store generator: reproducible, shaped like API.md, and with its planted kinds of
buyer recoverable, since persona, segmentation and funnel tests all build on it."""

import re
from collections import Counter
from datetime import datetime
from decimal import Decimal

import numpy as np
import pytest

from shared.ingest import demo
from shared.ingest.demo import DemoConfig, DemoStore, generate

TABLES = ("customers", "orders", "order_items", "events", "survey_answers")
CUSTOMER_KEYS = {
    "external_id", "email", "phone", "first_name", "last_name", "created_at", "updated_at",
    "accepts_marketing", "birth_date", "gender", "marital_status", "children", "income_band",
    "occupation", "industry", "job_level", "education_level", "country", "region", "city",
    "postcode", "timezone", "interests", "values", "preferred_channel", "referred_by", "traits",
}  # fmt: skip
ORDER_KEYS = {"external_id", "customer_external_id", "status", "currency", "total", "channel",
              "placed_at", "updated_at", "items"}  # fmt: skip
ITEM_KEYS = {"product_id", "name", "category", "quantity", "unit_price"}
EVENT_KEYS = {"id", "name", "customer_external_id", "anonymous_id", "occurred_at", "session_id",
              "device", "channel", "properties"}  # fmt: skip
MONEY = re.compile(r"^\d+\.\d{2}$")
SECOND = np.timedelta64(1_000_000, "us")
DAY = 86_400 * SECOND


@pytest.fixture(scope="module")
def store() -> DemoStore:
    return generate(DemoConfig(n_customers=3000, seed=7))


def _timestamp(text: str) -> datetime:
    parsed = datetime.fromisoformat(text)
    assert parsed.utcoffset() is not None, text
    return parsed


def _days(delta: np.ndarray) -> np.ndarray:
    return delta.astype(np.int64) / 86_400e6


def _columns(store: DemoStore) -> dict[str, dict[str, np.ndarray]]:
    return {t: dict(getattr(store, t)) for t in TABLES}


def test_same_seed_gives_identical_store() -> None:
    first, second = (
        _columns(generate(DemoConfig(1500, seed=3))),
        _columns(generate(DemoConfig(1500, seed=3))),
    )
    for table, columns in first.items():
        assert columns.keys() == second[table].keys()
        for name, values in columns.items():
            other = second[table][name]
            assert values.dtype == other.dtype, (table, name)
            assert np.array_equal(values, other), (table, name)


def test_different_seed_gives_different_store() -> None:
    a, b = generate(DemoConfig(1500, seed=3)), generate(DemoConfig(1500, seed=4))
    assert not np.array_equal(a.customers["kind"], b.customers["kind"])
    assert a.orders.n_rows != b.orders.n_rows or not np.array_equal(
        a.orders["total_cents"], b.orders["total_cents"]
    )


def test_turning_events_off_leaves_the_other_tables_unchanged() -> None:
    with_events = _columns(generate(DemoConfig(800, seed=5)))
    without = _columns(generate(DemoConfig(800, seed=5, events=False)))
    assert not without["events"]["id"].size
    assert with_events["events"]["id"].size
    for table in ("customers", "orders", "order_items", "survey_answers"):
        for name, values in with_events[table].items():
            assert np.array_equal(values, without[table][name]), (table, name)


def test_customers_have_the_api_shape(store: DemoStore) -> None:
    customers = list(demo.iter_customers(store))
    assert len(customers) == store.customers.n_rows
    ids = {c["external_id"] for c in customers}
    assert len(ids) == len(customers)
    emails = [c["email"] for c in customers]
    assert len(set(emails)) == len(emails)
    for c in customers:
        assert set(c) == CUSTOMER_KEYS
        assert c["email"].endswith(("@example.com", "@example.org"))
        assert c["phone"].startswith("+")
        assert c["phone"][1:].isdigit()
        assert _timestamp(c["created_at"]) <= _timestamp(c["updated_at"])
        datetime.strptime(c["birth_date"], "%Y-%m-%d")
        assert c["gender"] in demo.GENDERS
        assert c["marital_status"] in demo.MARITAL_STATUSES
        assert c["income_band"] in demo.INCOME_BANDS
        assert c["job_level"] in demo.JOB_LEVELS
        assert c["education_level"] in demo.EDUCATION_LEVELS
        assert c["preferred_channel"] in demo.PREFERRED_CHANNELS
        assert isinstance(c["children"], int)
        assert isinstance(c["accepts_marketing"], bool)
        assert c["interests"]
        assert all(isinstance(i, str) for i in c["interests"])
        assert c["referred_by"] is None or c["referred_by"] in ids
        assert isinstance(c["traits"], dict)


def test_referrers_signed_up_before_those_they_referred(store: DemoStore) -> None:
    customers = store.customers
    referred = np.flatnonzero(customers["referred_by"] != b"")
    assert 0.05 < len(referred) / customers.n_rows < 0.4
    position = {cid: i for i, cid in enumerate(customers["external_id"].tolist())}
    referrers = np.array([position[r] for r in customers["referred_by"][referred].tolist()])
    assert (referrers < referred).all()
    by_kind = Counter(customers["kind"][referrers].tolist())
    share = Counter(customers["kind"].tolist())
    assert (
        by_kind[b"loyal_parent"] / share[b"loyal_parent"]
        > by_kind[b"bargain_hunter"] / share[b"bargain_hunter"]
    )


def test_orders_have_the_api_shape_and_totals_equal_their_items(store: DemoStore) -> None:
    orders = list(demo.iter_orders(store))
    assert len(orders) == store.orders.n_rows
    customer_ids = set(store.customers["external_id"].astype(str).tolist())
    for order in orders:
        assert set(order) == ORDER_KEYS
        assert order["customer_external_id"] in customer_ids
        assert order["status"] in demo.STATUSES
        assert order["currency"] == "USD"
        assert order["channel"] in ("web", "app")
        assert _timestamp(order["placed_at"]) <= _timestamp(order["updated_at"])
        assert order["items"]
        assert MONEY.match(order["total"])
        for item in order["items"]:
            assert set(item) == ITEM_KEYS
            assert MONEY.match(item["unit_price"])
            assert item["category"] in demo.CATEGORIES
            assert item["quantity"] >= 1
        lines = sum(Decimal(i["unit_price"]) * i["quantity"] for i in order["items"])
        assert Decimal(order["total"]) == lines
    statuses = Counter(o["status"] for o in orders)
    assert 0 < statuses["refunded"] + statuses["cancelled"] < 0.1 * len(orders)
    assert statuses["fulfilled"] > 0.8 * len(orders)


def test_order_ids_follow_time(store: DemoStore) -> None:
    placed = store.orders["placed_at"]
    assert (np.diff(placed) >= np.timedelta64(0, "us")).all()
    end = np.datetime64(demo.DEFAULT_END.replace(tzinfo=None), "us")
    assert placed.max() <= end
    assert placed.min() >= end - int(2 * 365.25 + 1) * DAY


def test_customers_sign_up_before_their_first_order(store: DemoStore) -> None:
    orders = store.orders
    first = np.full(store.customers.n_rows, np.datetime64("2100-01-01", "us"))
    np.minimum.at(first, orders["customer_row"], orders["placed_at"])
    buyers = np.unique(orders["customer_row"])
    assert (store.customers["created_at"][buyers] < first[buyers]).all()


def test_one_time_gifters_order_once_in_a_gift_season_long_ago(store: DemoStore) -> None:
    kind = store.customers["kind"]
    counts = np.bincount(store.orders["customer_row"], minlength=store.customers.n_rows)
    gifters = kind == b"one_time_gifter"
    assert gifters.sum() > 100
    assert (counts[gifters] == 1).all()
    placed = store.orders["placed_at"][
        np.isin(store.orders["customer_row"], np.flatnonzero(gifters))
    ]
    months = placed.astype("datetime64[M]").astype(int) % 12 + 1
    assert set(months.tolist()) <= {11, 12}
    end = np.datetime64(demo.DEFAULT_END.replace(tzinfo=None), "us")
    assert (end - placed >= 60 * DAY).all()


def test_prospects_have_no_orders_but_some_browse(store: DemoStore) -> None:
    kind = store.customers["kind"]
    prospects = np.flatnonzero(kind == b"prospect")
    assert len(prospects) == 300
    assert not np.isin(store.orders["customer_row"], prospects).any()
    events = store.events
    theirs = np.isin(events["customer_row"], prospects)
    assert theirs.any()
    assert (events["name"][theirs] != b"purchase").all()


def test_every_buyer_but_prospects_has_an_order(store: DemoStore) -> None:
    buyers = np.flatnonzero(store.customers["kind"] != b"prospect")
    assert np.isin(buyers, store.orders["customer_row"]).all()


def test_orders_are_seasonal(store: DemoStore) -> None:
    placed = store.orders["placed_at"]
    month = placed.astype("datetime64[M]").astype(int) % 12 + 1
    days = np.arange(np.datetime64("2024-11-01"), np.datetime64("2026-10-31"))
    in_season = np.isin(days.astype("datetime64[M]").astype(int) % 12 + 1, [11, 12])
    window = (placed >= np.datetime64("2024-11-01")) & (placed < np.datetime64("2026-10-31"))
    festive = np.isin(month, [11, 12]) & window
    per_day_festive = festive.sum() / in_season.sum()
    per_day_other = (window & ~festive).sum() / (~in_season).sum()
    assert per_day_festive > 1.3 * per_day_other


def test_events_have_the_api_shape(store: DemoStore) -> None:
    events = list(demo.iter_events(store))
    assert len(events) == store.events.n_rows
    assert len({e["id"] for e in events}) == len(events)
    for event in events:
        assert set(event) == EVENT_KEYS
        assert event["name"] in demo.STEPS
        assert event["device"] in demo.DEVICES
        assert event["channel"] in ("web", "app")
        assert event["anonymous_id"]
        _timestamp(event["occurred_at"])
        assert event["properties"]["path"].startswith("/")
        if event["name"] in ("add_to_cart", "checkout_started", "purchase"):
            assert event["properties"]["cart_value"] > 0


def test_every_purchase_event_is_an_order_of_that_customer(store: DemoStore) -> None:
    events, orders = store.events, store.orders
    purchase = events["name"] == b"purchase"
    rows = events["order_row"][purchase]
    assert purchase.sum() > 100
    assert (rows >= 0).all()
    assert len(np.unique(rows)) == len(rows)
    assert np.array_equal(events["customer_row"][purchase], orders["customer_row"][rows])
    assert np.array_equal(events["occurred_at"][purchase], orders["placed_at"][rows])
    assert np.array_equal(events["cart_value_cents"][purchase], orders["total_cents"][rows])
    assert np.array_equal(events["order_external_id"][purchase], orders["external_id"][rows])
    tracked = orders["placed_at"] >= orders["placed_at"].max() - 20 * DAY
    assert np.isin(np.flatnonzero(tracked), rows).mean() > 0.95


def test_funnel_drops_off_and_many_checkouts_are_abandoned(store: DemoStore) -> None:
    counts = Counter(store.events["name"].tolist())
    steps = [counts[s.encode()] for s in demo.STEPS]
    assert steps == sorted(steps, reverse=True)
    assert len(set(steps)) == len(steps)
    assert counts[b"checkout_started"] > 1.8 * counts[b"purchase"]


def test_sessions_walk_the_funnel_in_order(store: DemoStore) -> None:
    events = store.events
    session, names = events["session_id"], events["name"]
    starts = np.r_[True, session[1:] != session[:-1]]
    assert (names[starts] == b"page_view").all()
    same = ~starts[1:]
    assert (np.diff(events["occurred_at"])[same] > np.timedelta64(0, "us")).all()
    step = np.searchsorted(np.array(demo.STEPS, "S"), names, sorter=np.argsort(demo.STEPS))
    assert (np.diff(np.argsort(np.argsort(demo.STEPS))[step])[same] == 1).all()


def test_devices_and_channels_follow_the_kind(store: DemoStore) -> None:
    events = store.events
    known = events["customer_row"] >= 0
    kind = store.customers["kind"][events["customer_row"][known]]
    mobile = events["device"][known] == b"mobile"
    assert mobile[kind == b"young_trendsetter"].mean() > 0.8
    assert mobile[kind == b"premium_professional"].mean() < 0.3
    app = events["channel"][known] == b"app"
    assert app[kind == b"bargain_hunter"].mean() > app[kind == b"loyal_parent"].mean()


def test_anonymous_events_cover_visitors_and_later_identified_customers(store: DemoStore) -> None:
    events = store.events
    anonymous = events["customer_external_id"] == b""
    assert (events["customer_row"][anonymous] == -1).all()
    device_of = dict(zip(store.customers["anonymous_id"].tolist(), range(3000), strict=True))
    owners = [device_of.get(a) for a in events["anonymous_id"][anonymous].tolist()]
    assert any(o is None for o in owners)
    assert any(o is not None for o in owners)
    identified = set(events["customer_row"][~anonymous].tolist())
    assert identified & {o for o in owners if o is not None}
    assert (events["name"][anonymous] != b"purchase").all()


def test_survey_answers_speak_for_their_kind(store: DemoStore) -> None:
    answers = list(demo.iter_survey_answers(store))
    buyers = (store.customers["kind"] != b"prospect").sum()
    assert 0.25 < len(answers) / buyers < 0.35
    kind_of = dict(zip(store.customers["external_id"].astype(str).tolist(),
                       store.customers["kind"].astype(str).tolist(), strict=True))  # fmt: skip
    nps: dict[str, list[int]] = {}
    for a in answers:
        body = a["answers"]
        assert body["decision_role"] in ("decides", "influences")
        assert 0 <= body["nps"] <= 10
        assert body["motivations"]
        assert body["frustrations"]
        assert body["goals"]
        nps.setdefault(kind_of[a["customer_external_id"]], []).append(body["nps"])
    assert kind_of.keys() >= {a["customer_external_id"] for a in answers}
    assert np.mean(nps["loyal_parent"]) > np.mean(nps["one_time_gifter"]) + 2
    premium = [a for a in answers if kind_of[a["customer_external_id"]] == "premium_professional"]
    own = set(demo._PROFILES[demo.KINDS.index("premium_professional")].motivations)
    assert np.mean([bool(own & set(a["answers"]["motivations"])) for a in premium]) > 0.8


def test_row_slices_agree_with_whole_columns(store: DemoStore) -> None:
    for table in (store.orders, store.order_items, store.events):
        part = table.rows(1000, 1700)
        for name in table:
            assert np.array_equal(part[name], table[name][1000:1700]), name


def test_kind_shares_are_configurable_and_checked() -> None:
    shares = {"loyal_parent": 1, "bargain_hunter": 1}
    kinds = Counter(generate(DemoConfig(200, kind_shares=shares)).customers["kind"].tolist())
    assert kinds == {b"loyal_parent": 90, b"bargain_hunter": 90, b"prospect": 20}
    with pytest.raises(ValueError, match="kind_shares"):
        generate(DemoConfig(10, kind_shares={"whales": 1.0}))


def test_kmeans_recovers_the_planted_kinds() -> None:
    sklearn = pytest.importorskip("sklearn")
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score
    from sklearn.preprocessing import StandardScaler

    assert sklearn
    store = generate(DemoConfig(n_customers=3000, seed=11, events=False))
    customers, orders = store.customers, store.orders
    n, row = customers.n_rows, orders["customer_row"]
    end = np.datetime64(demo.DEFAULT_END.replace(tzinfo=None), "us")
    last = np.full(n, np.datetime64("1970-01-01", "us"))
    np.maximum.at(last, row, orders["placed_at"])
    frequency = np.bincount(row, minlength=n)
    monetary = np.bincount(row, weights=orders["total_cents"] / 100, minlength=n)
    mobile = np.bincount(row, weights=orders["device"] == b"mobile", minlength=n)
    buyers = frequency > 0
    features = np.column_stack([
        _days(end - last),  # recency
        frequency,
        monetary,
        monetary / np.maximum(frequency, 1),  # average order value
        _days(end - customers["created_at"]),  # tenure
        (end.astype("datetime64[D]") - customers["birth_date"]).astype(int) / 365.25,  # age
        mobile / np.maximum(frequency, 1),  # mobile share
    ])[buyers]  # fmt: skip
    scaled = StandardScaler().fit_transform(features)
    labels = KMeans(n_clusters=5, n_init=10, random_state=0).fit_predict(scaled)
    truth = customers["kind"][buyers].astype(str)
    assert adjusted_rand_score(truth, labels) >= 0.8


def test_a_large_store_generates() -> None:
    store = generate(DemoConfig(n_customers=200_000))
    sizes = store.sizes
    assert sizes["customers"] == 200_000
    assert sizes["orders"] > 1_500_000
    assert sizes["events"] > 1_500_000
    assert store.events.rows(sizes["events"] - 3, sizes["events"])["id"].tolist()[-1] == (
        f"e-{sizes['events']:08d}".encode()
    )
