"""A reproducible synthetic store (customers, orders, events, survey answers) with planted buyers.

`portrait demo` loads it, tests check that analytics recover the planted kinds of buyer, and
benchmarks draw up to a million customers from it. Everything is vectorised with numpy and drawn
from generators seeded by `DemoConfig.seed`, so one config always yields byte-identical data and
nothing depends on today's date. The generator does no I/O.

Each table is a mapping of column name to numpy array: text as ASCII bytes (dtype ``S``), times
as ``datetime64[us]`` in UTC, money as integer cents, links both as external ids and as row
numbers (``*_row``, -1 for none). Ids and labels are built from compact codes only when a column
(or, with `Table.rows`, a slice of rows) is asked for, so ten million orders and events fit in a
few hundred megabytes and can be streamed to ``COPY``. The ``iter_*`` functions give API.md's
JSON shapes one dict at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import islice
from typing import Any, NamedTuple

import numpy as np

Array = np.ndarray[Any, Any]
KINDS = ("loyal_parent", "bargain_hunter", "premium_professional", "young_trendsetter",
         "one_time_gifter")  # fmt: skip
PROSPECT = "prospect"
DEFAULT_END = datetime(2026, 10, 31, tzinfo=UTC)
DEFAULT_SHARES = {"loyal_parent": 0.2, "bargain_hunter": 0.25, "premium_professional": 0.12,
                  "young_trendsetter": 0.2, "one_time_gifter": 0.23}  # fmt: skip
INCOME_BANDS = ("<25k", "25k-50k", "50k-75k", "75k-100k", "100k-150k", "150k+")
EDUCATION_LEVELS = ("high_school", "some_college", "bachelor", "master", "doctorate")
JOB_LEVELS = ("student", "entry", "mid", "senior", "executive")
GENDERS = ("female", "male", "non_binary")
MARITAL_STATUSES = ("single", "married", "divorced", "widowed")
PREFERRED_CHANNELS = ("email", "sms", "push", "social")
SOURCES = ("direct", "email", "social", "search", "ads")
DEVICES = ("desktop", "mobile", "tablet")
STATUSES = ("placed", "paid", "fulfilled", "cancelled", "refunded")
STEPS = ("page_view", "product_view", "add_to_cart", "checkout_started", "purchase")
# fmt: off
CATALOG: dict[str, tuple[tuple[str, int], ...]] = {  # category -> (name, price in cents)
    "home": (("Linen Throw", 3900), ("Ceramic Vase", 2950), ("Scented Candle", 1800),
             ("Bath Towel Set", 4500), ("Oak Serving Board", 3400), ("Table Lamp", 7900)),
    "kids": (("Kids Rain Boots", 3200), ("Wooden Puzzle", 1950), ("Storybook Set", 2400),
             ("Plush Bear", 1600), ("Kids Backpack", 2900), ("Art Supplies Kit", 2200)),
    "deals": (("Clearance Mug", 499), ("Socks 3-Pack", 699), ("Charging Cable", 549),
              ("Value Notebook", 299), ("Water Bottle", 799), ("Canvas Tote", 849)),
    "household": (("Dish Soap Refill", 599), ("Paper Towels 6-Pack", 949), ("Laundry Pods", 1199),
                  ("Trash Bags", 449), ("Sponge Multipack", 349), ("Glass Cleaner", 399)),
    "skincare": (("Vitamin C Serum", 6800), ("Night Cream", 8500), ("Retinol Oil", 9200),
                 ("Gentle Cleanser", 3800), ("Eye Cream", 7400), ("SPF 50 Fluid", 4600)),
    "fragrance": (("Eau de Parfum", 14500), ("Cologne Intense", 16000), ("Oud Extrait", 24000),
                  ("Travel Spray Set", 8800), ("Body Mist Luxe", 7200), ("Discovery Set", 12000)),
    "fashion": (("Graphic Tee", 2400), ("Wide-Leg Jeans", 5800), ("Bucket Hat", 1900),
                ("Cropped Hoodie", 4400), ("Platform Sneakers", 7200), ("Slip Dress", 4900)),
    "beauty": (("Lip Tint", 1400), ("Glitter Liner", 1200), ("Sheet Mask Pack", 1600),
               ("Blush Stick", 1800), ("Brow Gel", 1500), ("Nail Set", 1100)),
    "gifts": (("Gift Card", 5000), ("Gift Box Deluxe", 6500), ("Holiday Hamper", 8900),
              ("Chocolate Tin", 2800), ("Wine Glass Set", 4200), ("Photo Frame", 3600)),
}
# country, region, city, postcode, timezone, phone prefix, random phone digits, weight.
# The phone ranges are those reserved for fiction (555-01xx, Ofcom's and ACMA's drama numbers).
GEO = (("US", "NY", "New York", "10001", "America/New_York", "+121255501", 2, 8),
       ("US", "CA", "Los Angeles", "90012", "America/Los_Angeles", "+121355501", 2, 7),
       ("US", "IL", "Chicago", "60601", "America/Chicago", "+131255501", 2, 5),
       ("US", "TX", "Austin", "73301", "America/Chicago", "+151255501", 2, 4),
       ("US", "WA", "Seattle", "98101", "America/Los_Angeles", "+120655501", 2, 4),
       ("CA", "ON", "Toronto", "M5H 2N2", "America/Toronto", "+141655501", 2, 4),
       ("CA", "BC", "Vancouver", "V6B 1A1", "America/Vancouver", "+160455501", 2, 2),
       ("GB", "ENG", "London", "EC1A 1BB", "Europe/London", "+442079460", 3, 5),
       ("GB", "ENG", "Manchester", "M1 1AE", "Europe/London", "+441614960", 3, 2),
       ("AU", "NSW", "Sydney", "2000", "Australia/Sydney", "+6125550", 4, 3),
       ("AU", "VIC", "Melbourne", "3000", "Australia/Melbourne", "+6135550", 4, 2),
       ("VN", "HCM", "Ho Chi Minh City", "700000", "Asia/Ho_Chi_Minh", "+8428", 8, 3),
       ("VN", "HN", "Hanoi", "100000", "Asia/Ho_Chi_Minh", "+8424", 8, 2))
FIRST_NAMES = (("Emma", "Olivia", "Ava", "Sophia", "Mia", "Isabella", "Chloe", "Grace", "Lily",
                "Hannah", "Linh", "Mai", "Priya", "Sofia", "Zoe", "Amelia"),
               ("Liam", "Noah", "James", "Lucas", "Ethan", "Oliver", "Daniel", "Henry", "Jack",
                "Leo", "Minh", "Duc", "Arjun", "Mateo", "Samuel", "Owen"),
               ("Alex", "Jordan", "Taylor", "Riley", "Sam", "Quinn", "Avery", "Robin"))
LAST_NAMES = ("Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis",
              "Wilson", "Anderson", "Taylor", "Thomas", "Moore", "Martin", "Lee", "Walker",
              "Nguyen", "Tran", "Le", "Pham", "Patel", "Singh", "Kim", "Chen", "Wong", "Murphy",
              "Kelly", "Schmidt", "Rossi", "Lopez")
_MONTH_WEIGHT = (0.85, 0.8, 0.9, 0.95, 1.0, 0.95, 0.9, 0.95, 1.0, 1.05, 1.7, 2.0)  # Jan..Dec
_HOUR_WEIGHT = (0.3, 0.2, 0.15, 0.1, 0.1, 0.15, 0.3, 0.5, 0.7, 0.85, 0.9, 1.0,
                1.1, 1.0, 0.95, 0.95, 1.0, 1.1, 1.3, 1.5, 1.6, 1.5, 1.1, 0.6)  # UTC hour
# fmt: on
CATEGORIES = tuple(CATALOG)
PRODUCT_IDS = tuple(f"p-{i + 1:03d}" for i in range(6 * len(CATALOG)))
PRODUCT_NAMES = tuple(name for items in CATALOG.values() for name, _ in items)
PRODUCT_PRICES = np.array([p for items in CATALOG.values() for _, p in items], np.int64)


class _Kind(NamedTuple):
    """One planted kind of buyer: every draw for a customer of this kind comes from here.

    Probability tuples follow the order of the matching module constant (GENDERS, ...).
    """

    age: tuple[int, int]
    gender: tuple[float, ...]
    marital: tuple[float, ...]
    children: tuple[int, int]
    income: tuple[float, ...]
    education: tuple[float, ...]
    job_level: tuple[float, ...]
    jobs: tuple[str, ...]  # "occupation/industry"
    tenure_days: tuple[int, int]  # (0, 0): the account is made at the only order
    orders_per_year: float
    items_qty: tuple[float, float]  # Poisson means of extra lines per order, extra units per line
    categories: tuple[float, ...]
    devices: tuple[float, ...]
    app_share: float  # chance that a customer who shops on mobile does so in the app
    preferred: tuple[float, ...]
    sources: tuple[float, ...]
    browse_per_month: float  # sessions that end without an order
    depth: tuple[float, ...]  # where those sessions stop: page_view .. checkout_started
    refund_rate: float
    marketing: float
    price_sensitivity: float
    referred: float  # chance that someone referred this customer
    referrer_weight: float  # how likely this kind is to be the one who refers
    interests: tuple[str, ...]
    values: tuple[str, ...]
    decides: float
    motivations: tuple[str, ...]
    frustrations: tuple[str, ...]
    goals: tuple[str, ...]
    nps: float


# fmt: off
_MIXED_JOBS = ("teacher/education", "sales manager/retail", "engineer/manufacturing",
               "nurse/healthcare", "consultant/consulting", "retired/none")
_PROFILES = (  # in the order of KINDS, then the prospects
    _Kind(  # loyal_parent: a settled family that restocks the home every month
        age=(35, 44), gender=(.62, .36, .02), marital=(.03, .9, .06, .01), children=(1, 3),
        income=(0, .1, .45, .35, .1, 0), education=(.15, .25, .45, .13, .02),
        job_level=(0, .1, .6, .28, .02),
        jobs=("teacher/education", "nurse/healthcare", "accountant/finance",
              "software engineer/technology", "pharmacist/healthcare",
              "project manager/construction"),
        tenure_days=(500, 1500), orders_per_year=12.0, items_qty=(1.2, .15),
        categories=(.4, .38, 0, .17, 0, 0, 0, 0, .05), devices=(.7, .2, .1), app_share=.3,
        preferred=(.75, .15, .05, .05), sources=(.3, .4, .05, .2, .05), browse_per_month=6.0,
        depth=(.45, .3, .1, .15), refund_rate=.02, marketing=.85, price_sensitivity=.45,
        referred=.3, referrer_weight=5.0,
        interests=("cooking", "gardening", "family travel", "home decor", "crafts",
                   "board games"),
        values=("family", "quality", "reliability", "convenience"), decides=.85,
        motivations=("keep the family stocked", "save time", "quality that lasts",
                     "kid-safe products"),
        frustrations=("items out of stock", "slow delivery", "too many emails"),
        goals=("an organised home", "happy kids", "one-stop shop"), nps=8.5),
    _Kind(  # bargain_hunter: buys often, in the app, only what is on sale
        age=(25, 44), gender=(.5, .48, .02), marital=(.4, .4, .18, .02), children=(0, 2),
        income=(.4, .45, .15, 0, 0, 0), education=(.45, .35, .18, .02, 0),
        job_level=(.05, .55, .35, .05, 0),
        jobs=("retail associate/retail", "delivery driver/logistics",
              "warehouse operative/logistics", "administrative assistant/public sector",
              "line cook/hospitality", "call centre agent/telecommunications"),
        tenure_days=(400, 1100), orders_per_year=14.0, items_qty=(1.0, .6),
        categories=(0, 0, .55, .4, 0, 0, 0, .05, 0), devices=(.12, .85, .03), app_share=.85,
        preferred=(.15, .25, .55, .05), sources=(.35, .1, .05, .15, .35), browse_per_month=10.0,
        depth=(.4, .3, .12, .18), refund_rate=.02, marketing=.9, price_sensitivity=.9,
        referred=.15, referrer_weight=2.0,
        interests=("couponing", "diy", "thrifting", "meal prep", "gaming"),
        values=("price", "value for money", "practicality"), decides=.7,
        motivations=("lowest price", "stacking discounts", "free shipping threshold",
                     "bulk savings"),
        frustrations=("hidden fees", "expired coupons", "shipping costs"),
        goals=("stretch the budget", "never pay full price", "stock up on sales"), nps=7.0),
    _Kind(  # premium_professional: rare, considered, expensive orders from a desktop
        age=(35, 54), gender=(.55, .43, .02), marital=(.3, .55, .13, .02), children=(0, 2),
        income=(0, 0, 0, .1, .4, .5), education=(0, 0, .15, .6, .25),
        job_level=(0, 0, .1, .55, .35),
        jobs=("lawyer/legal", "physician/healthcare", "finance director/finance",
              "management consultant/consulting", "architect/construction",
              "product director/technology"),
        tenure_days=(250, 1200), orders_per_year=3.0, items_qty=(1.0, .05),
        categories=(0, 0, 0, 0, .55, .45, 0, 0, 0), devices=(.75, .15, .1), app_share=.2,
        preferred=(.8, .1, .05, .05), sources=(.35, .4, .05, .15, .05), browse_per_month=3.0,
        depth=(.45, .35, .08, .12), refund_rate=.03, marketing=.55, price_sensitivity=.15,
        referred=.2, referrer_weight=3.0,
        interests=("wellness", "wine", "travel", "art", "golf", "yoga"),
        values=("quality", "health", "exclusivity", "sustainability"), decides=.9,
        motivations=("clinically proven ingredients", "premium brands", "expert advice",
                     "self-care ritual"),
        frustrations=("counterfeit worries", "generic recommendations",
                      "slow customer service"),
        goals=("healthy skin", "a curated routine", "trusted picks"), nps=8.0),
    _Kind(  # young_trendsetter: new, on the phone, led by social media, fills carts and leaves
        age=(18, 24), gender=(.6, .34, .06), marital=(.95, .05, 0, 0), children=(0, 0),
        income=(.55, .35, .1, 0, 0, 0), education=(.35, .55, .1, 0, 0),
        job_level=(.6, .38, .02, 0, 0),
        jobs=("student/education", "barista/hospitality", "content creator/media",
              "sales assistant/retail", "marketing intern/marketing", "junior designer/media"),
        tenure_days=(20, 240), orders_per_year=8.0, items_qty=(.6, .05),
        categories=(0, 0, .05, 0, 0, 0, .55, .4, 0), devices=(.06, .92, .02), app_share=.45,
        preferred=(.05, .1, .2, .65), sources=(.1, .05, .65, .1, .1), browse_per_month=10.0,
        depth=(.35, .25, .28, .12), refund_rate=.08, marketing=.7, price_sensitivity=.6,
        referred=.25, referrer_weight=2.0,
        interests=("fashion", "music", "streetwear", "photography", "festivals", "k-beauty"),
        values=("self-expression", "novelty", "sustainability", "status"), decides=.45,
        motivations=("new drops first", "looks seen on social", "express my style",
                     "limited editions"),
        frustrations=("sizes sell out", "returns are a hassle", "shipping takes too long"),
        goals=("stand out", "stay on trend", "a wardrobe on a budget"), nps=6.5),
    _Kind(  # one_time_gifter: anyone, one holiday present, never back
        age=(25, 70), gender=(.4, .58, .02), marital=(.3, .5, .12, .08), children=(0, 3),
        income=(.1, .2, .25, .2, .15, .1), education=(.2, .25, .35, .15, .05),
        job_level=(.05, .2, .4, .25, .1), jobs=_MIXED_JOBS,
        tenure_days=(0, 0), orders_per_year=0.0, items_qty=(.5, .2),
        categories=(.2, 0, 0, 0, 0, 0, .1, .1, .6), devices=(.7, .25, .05), app_share=.1,
        preferred=(.6, .2, .05, .15), sources=(.2, .1, .1, .4, .2), browse_per_month=.5,
        depth=(.6, .3, .05, .05), refund_rate=.04, marketing=.25, price_sensitivity=.45,
        referred=.05, referrer_weight=.2,
        interests=("reading", "movies", "sports", "cooking", "travel"),
        values=("convenience", "thoughtfulness"), decides=.6,
        motivations=("find a gift fast", "gift wrapping", "delivery before the holiday"),
        frustrations=("hard to choose", "late delivery", "forced account creation"),
        goals=("the perfect present", "no stress"), nps=5.0),
    _Kind(  # prospects: signed up (newsletter, account) but never ordered
        age=(18, 65), gender=(.52, .45, .03), marital=(.45, .4, .1, .05), children=(0, 2),
        income=(.15, .25, .25, .15, .12, .08), education=(.2, .3, .35, .12, .03),
        job_level=(.15, .3, .35, .15, .05), jobs=_MIXED_JOBS,
        tenure_days=(1, 365), orders_per_year=0.0, items_qty=(.5, .1),
        categories=(.15, .1, .1, .1, .1, .1, .15, .15, .05), devices=(.35, .6, .05),
        app_share=.15, preferred=(.5, .15, .1, .25), sources=(.2, .05, .25, .3, .2),
        browse_per_month=1.5, depth=(.55, .3, .1, .05), refund_rate=0.0, marketing=.6,
        price_sensitivity=.5, referred=.1, referrer_weight=.2,
        interests=("reading", "movies", "fashion", "cooking", "travel", "fitness"),
        values=("convenience", "value for money", "quality"), decides=.6,
        motivations=("good deals", "browsing for ideas"),
        frustrations=("unclear sizing", "shipping costs"), goals=("find the right product",),
        nps=6.0),
)
# fmt: on
_GIFTER, _PROSPECT = KINDS.index("one_time_gifter"), len(KINDS)
_DAY, _YEAR_HOURS = 86_400, 8766.0
_PATHS = ("/", *(f"/collections/{k}" for k in CATEGORIES), "/cart", "/checkout",
          "/checkout/thank-you", *(f"/products/{p}" for p in PRODUCT_IDS))  # fmt: skip
Column = Callable[[slice], Array]


@dataclass(frozen=True)
class DemoConfig:
    """What to generate; the same config always gives the same store."""

    n_customers: int = 1000
    seed: int = 42
    end: datetime = DEFAULT_END  # the observation window ends here (a fixed date by default)
    years: float = 2.0  # length of the window that holds every order
    events: bool = True
    event_days: int = 21  # clickstream tracking covers only the window's last weeks
    prospect_share: float = 0.1  # customers without any order
    visitor_share: float = 0.3  # purely anonymous visitors, per customer
    kind_shares: Mapping[str, float] | None = None  # of the customers with orders


class Table(Mapping[str, Array]):
    """Named columns of one table. Columns that are functions of a row range (ids, labels) are
    computed on access, so a big store holds only codes; names starting with ``_`` are those
    codes, left out of iteration. As a Mapping, len() counts columns; `n_rows` counts rows."""

    def __init__(self, n_rows: int, columns: Mapping[str, Array | Column]) -> None:
        self.n_rows, self._columns = n_rows, dict(columns)

    def __getitem__(self, name: str) -> Array:
        col = self._columns[name]
        return col if isinstance(col, np.ndarray) else col(slice(0, self.n_rows))

    def __iter__(self) -> Iterator[str]:
        return (name for name in self._columns if not name.startswith("_"))

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def rows(self, lo: int, hi: int, names: Iterable[str] | None = None) -> dict[str, Array]:
        """Rows ``lo:hi`` of the public (or the named) columns: the unit for chunked COPY."""
        part = slice(lo, min(hi, self.n_rows))
        cols = {name: self._columns[name] for name in (names or self)}
        return {k: c[part] if isinstance(c, np.ndarray) else c(part) for k, c in cols.items()}


@dataclass
class DemoStore:
    """The generated store; `customers["kind"]` is the planted truth analytics should find."""

    config: DemoConfig
    customers: Table
    orders: Table
    order_items: Table
    events: Table
    survey_answers: Table

    @property
    def sizes(self) -> dict[str, int]:
        names = ("customers", "orders", "order_items", "events", "survey_answers")
        return {name: getattr(self, name).n_rows for name in names}


class _Window:
    """The observation window (all orders), its tracked tail (all events), and a seasonal,
    time-of-day shaped activity curve over it for sampling times in any span."""

    def __init__(self, config: DemoConfig) -> None:
        self.end = int(config.end.timestamp())
        self.start = self.end - int(config.years * 365.25 * _DAY)
        self.track = self.end - config.event_days * _DAY
        first, last = min(self.start, self.track) // 3600, -(-self.end // 3600)
        hours = np.arange(first, last, dtype=np.int64).astype("datetime64[h]")
        month = hours.astype("datetime64[M]").astype(np.int64) % 12
        w = np.take(_MONTH_WEIGHT, month) * np.take(_HOUR_WEIGHT, hours.astype(np.int64) % 24)
        self.x = np.arange(first, last + 1, dtype=np.float64) * 3600
        self.cum = np.concatenate([[0.0], np.cumsum(w / w.mean())])
        # gift seasons: 10 November to Christmas Eve, ending two months before the window does
        years = [
            str(y) for y in range(config.end.year - int(config.years) - 1, config.end.year + 1)
        ]
        lo = np.array([y + "-11-10" for y in years], "datetime64[s]").astype(np.int64)
        hi = np.array([y + "-12-24" for y in years], "datetime64[s]").astype(np.int64)
        lo, hi = np.maximum(lo, self.start), np.minimum(hi, self.end - 60 * _DAY)
        fallback = [[self.start, (self.start + self.end) // 2]]
        self.gift_seasons = np.c_[lo, hi][lo < hi] if (lo < hi).any() else np.array(fallback)

    def mass(self, lo: Array) -> Array:
        """Expected activity from `lo` to the end, in years (1.0 = an average year)."""
        return np.asarray(self.cum[-1] - np.interp(lo, self.x, self.cum)) / _YEAR_HOURS

    def sample(self, rng: np.random.Generator, lo: Array, hi: Array | int) -> Array:
        a, b = np.interp(lo, self.x, self.cum), np.interp(hi, self.x, self.cum)
        return np.asarray(np.interp(a + rng.random(len(a)) * (b - a), self.cum, self.x), np.int64)


def _pick(rng: np.random.Generator, group: Array, probs: Any) -> Array:
    """Draw one category per row from its group's distribution, for all rows at once."""
    p = np.asarray(probs, np.float64)
    cum = np.cumsum(p / p.sum(axis=1, keepdims=True), axis=1)
    cum[:, -1] = 1.0
    flat = (cum + np.arange(len(p))[:, None]).ravel()
    idx = np.searchsorted(flat, group + rng.random(len(group)), side="right")
    return np.asarray(np.minimum(idx - group * p.shape[1], p.shape[1] - 1), np.uint8)


def _table(field: str) -> Array:
    return np.array([getattr(k, field) for k in _PROFILES], np.float64)


def _ids(prefix: str, numbers: Array, width: int) -> Array:
    """Zero-padded ids like ``o-0000042``, built digit by digit: far faster than formatting."""
    n = np.asarray(numbers, np.int64).copy()
    out = np.empty((len(n), len(prefix) + width), np.uint8)
    out[:, : len(prefix)] = np.frombuffer(prefix.encode(), np.uint8)
    for col in range(out.shape[1] - 1, len(prefix) - 1, -1):
        out[:, col] = n % 10 + 48
        n //= 10
    return out.view(f"S{out.shape[1]}").ravel()


def _id_column(prefix: str, size: int, width: int, rows: Array | None = None) -> Column:
    """Ids of rows in a table of `size` rows: its own rows, or the given row numbers (-1 gives
    an empty id). The width depends only on `size`, so every slice agrees."""
    width = max(width, len(str(size)))

    def column(part: slice) -> Array:
        if rows is None:
            return _ids(prefix, np.arange(*part.indices(size)) + 1, width)
        out = _ids(prefix, np.maximum(rows[part], 0) + 1, width)
        out[rows[part] < 0] = b""
        return out

    return column


def _label_column(vocab: Any, codes: Array) -> Column:
    """Labels for codes into `vocab`; code -1 gives an empty label."""
    labels = np.array([*vocab, ""], "S")
    return lambda part: labels[codes[part]]


def _text(vocab: Any, codes: Array) -> Array:
    return np.array(vocab, "S")[codes]


def _tags(rng: np.random.Generator, group: Array, field: str, most: int, noise: float) -> Array:
    """One to `most` tags per row from its kind's pool (the first one sometimes from anyone's),
    as tuples shared between rows with the same set."""
    pools = [getattr(k, field) for k in _PROFILES]
    vocab = tuple(dict.fromkeys(t for pool in pools for t in pool))
    width = max(map(len, pools))
    table = np.array([[vocab.index(t) for t in p] + [-1] * (width - len(p)) for p in pools])
    keys = rng.random((len(group), width)) + (table[group] < 0) * 2.0
    chosen = table[group[:, None], np.argsort(keys, axis=1)[:, :most]]
    stray = rng.random(len(group)) < noise
    chosen[stray, 0] = rng.integers(0, len(vocab), int(stray.sum()))
    keep = (np.arange(most) < rng.integers(most - 1, most + 1, len(group))[:, None]) & (chosen >= 0)
    masks = ((np.uint64(1) << np.maximum(chosen, 0).astype(np.uint64)) * keep).sum(axis=1)
    uniq, inverse = np.unique(masks, return_inverse=True)
    sets = np.empty(len(uniq), object)
    sets[:] = [tuple(t for i, t in enumerate(vocab) if int(m) >> i & 1) for m in uniq]
    return sets[inverse.ravel()]


def _micros(seconds: Array) -> Array:
    return (np.asarray(seconds, np.int64) * 1_000_000).astype("datetime64[us]")


def _kind_counts(config: DemoConfig) -> Array:
    """Exact head counts per kind (largest remainder), so small stores hold every kind."""
    shares = dict(config.kind_shares if config.kind_shares is not None else DEFAULT_SHARES)
    if set(shares) - set(KINDS) or min(shares.values(), default=-1) < 0 or not sum(shares.values()):
        raise ValueError(f"kind_shares needs non-negative shares of {KINDS}, got {shares}")
    if not 0 <= config.prospect_share <= 1 or config.n_customers < 0 or config.years <= 0:
        raise ValueError("need 0 <= prospect_share <= 1, n_customers >= 0 and years > 0")
    n_prospects = round(config.n_customers * config.prospect_share)
    p = np.array([shares.get(k, 0.0) for k in KINDS]) / sum(shares.values())
    raw = p * (config.n_customers - n_prospects)
    counts = np.floor(raw).astype(np.int64)
    counts[np.argsort(counts - raw, kind="stable")[: int(raw.sum() - counts.sum() + 0.5)]] += 1
    return np.append(counts, n_prospects)


def _anonymous_size(config: DemoConfig, n_customers: int) -> int:
    """Customers' devices and purely anonymous visitors share one run of anonymous ids."""
    return n_customers + round(config.visitor_share * n_customers)


def _customers(rng: np.random.Generator, config: DemoConfig, win: _Window) -> dict[str, Array]:
    """People first: kind, demographics, geography and sign-up time; ids follow sign-up order."""
    kind = rng.permutation(np.repeat(np.arange(len(_PROFILES)), _kind_counts(config)))
    n = len(kind)
    lo, hi = _table("tenure_days").T
    created = win.end - ((lo[kind] + rng.random(n) * (hi - lo)[kind]) * _DAY).astype(np.int64)
    gifter = np.flatnonzero(kind == _GIFTER)  # signs up at checkout, in a gift season
    season = win.gift_seasons[rng.integers(0, len(win.gift_seasons), len(gifter))]
    gift_at = np.full(n, -1, np.int64)
    gift_at[gifter] = win.sample(rng, season[:, 0], season[:, 1])
    created[gifter] = gift_at[gifter] - rng.integers(60, 1800, len(gifter))
    order = np.argsort(created, kind="stable")
    kind, created, gift_at = kind[order], created[order], gift_at[order]

    ages = _table("age")
    age_days = (ages[kind, 0] + rng.random(n) * (ages[kind, 1] + 1 - ages[kind, 0])) * 365.25
    gender = _pick(rng, kind, _table("gender"))
    sizes = np.array([len(f) for f in FIRST_NAMES])
    first = np.take(np.cumsum(sizes) - sizes, gender) + (rng.random(n) * sizes[gender]).astype(int)
    first_names = np.array(sum(FIRST_NAMES, ()), "S")
    last = rng.integers(0, len(LAST_NAMES), n)
    number = np.arange(1, n + 1)
    external_id = _id_column("c-", n, 6)(slice(0, n))
    email = np.char.lower(
        np.char.add(np.char.add(first_names[first], b"."), _text(LAST_NAMES, last))
    )
    email = np.char.add(np.char.add(email, b"."), number.astype("S"))
    email = np.char.add(email, _text(("@example.com", "@example.org"), rng.integers(0, 2, n)))
    geo = _pick(rng, np.zeros(n, np.int64), [[g[-1] for g in GEO]])
    phone = np.zeros(n, "S16")
    for i, (*_, prefix, digits, _weight) in enumerate(GEO):
        rows = np.flatnonzero(geo == i)
        local = _ids("", rng.integers(0, 10**digits, len(rows)), digits)
        phone[rows] = np.char.add(prefix.encode(), local)
    jobs = [k.jobs for k in _PROFILES]  # six per kind
    job = np.array(sum(jobs, ()), "S")[kind * 6 + rng.integers(0, 6, n)]
    occupation, _, industry = np.char.partition(job, b"/").T if n else (job, job, job)
    kids = _table("children")
    sens = np.clip(_table("price_sensitivity")[kind] + rng.normal(0, 0.08, n), 0, 1)
    weights = _table("referrer_weight")[kind].cumsum()  # referrers signed up before the referee
    referee = (rng.random(n) < _table("referred")[kind]) & (number > 1)
    referrer = np.searchsorted(weights, rng.random(n) * np.r_[0, weights[:-1]], side="right")
    geo_names = ("country", "region", "city", "postcode", "timezone")
    return {
        "external_id": external_id,
        "kind": _text((*KINDS, PROSPECT), kind),
        "email": email,
        "phone": phone,
        "first_name": first_names[first],
        "last_name": _text(LAST_NAMES, last),
        "created_at": _micros(created),
        "updated_at": _micros(created),  # moved to the last order by generate()
        "accepts_marketing": rng.random(n) < _table("marketing")[kind],
        "birth_date": (win.end // _DAY - age_days.astype(np.int64)).astype("datetime64[D]"),
        "gender": _text(GENDERS, gender),
        "marital_status": _text(MARITAL_STATUSES, _pick(rng, kind, _table("marital"))),
        "children": (kids[kind, 0] + rng.random(n) * (np.diff(kids)[kind, 0] + 1)).astype(np.int8),
        "income_band": _text(INCOME_BANDS, _pick(rng, kind, _table("income"))),
        "occupation": occupation,
        "industry": industry,
        "job_level": _text(JOB_LEVELS, _pick(rng, kind, _table("job_level"))),
        "education_level": _text(EDUCATION_LEVELS, _pick(rng, kind, _table("education"))),
        **{name: _text([g[i] for g in GEO], geo) for i, name in enumerate(geo_names)},
        "interests": _tags(rng, kind, "interests", 3, 0.15),
        "values": _tags(rng, kind, "values", 2, 0.1),
        "preferred_channel": _text(PREFERRED_CHANNELS, _pick(rng, kind, _table("preferred"))),
        "referred_by": np.where(referee, external_id[np.minimum(referrer, n - 1)], b""),
        "price_sensitivity": sens.round(2).astype(np.float32),
        "loyalty_member": rng.random(n) < np.where(kind == _GIFTER, 0.05, 0.5 - sens * 0.3),
        "anonymous_id": _id_column("a-", _anonymous_size(config, n), 7)(slice(0, n)),
        "_app_user": rng.random(n) < _table("app_share")[kind],
        "_kind": kind,
        "_created": created,
        "_gift_at": gift_at,
    }


def _orders(rng: np.random.Generator, c: dict[str, Array], win: _Window) -> tuple[Table, Table]:
    """Orders at seasonal times after sign-up, line items from the kind's categories."""
    kind, created = c["_kind"], c["_created"]
    begin = np.maximum(created + 60, win.start)
    rate = _table("orders_per_year")[kind] * rng.gamma(10.0, 1 / 10, len(kind))
    count = np.where(kind < _GIFTER, 1 + rng.poisson(rate * win.mass(begin)), kind == _GIFTER)
    cust = np.repeat(np.arange(len(kind)), count)
    placed = win.sample(rng, begin[cust], win.end)
    # accounts opened inside the window mostly open at a first checkout: order soon after
    soon = (np.cumsum(count) - count)[count > 0]
    soon = soon[created[cust[soon]] >= win.start]
    delay = 60 + rng.exponential(1.5 * _DAY, len(soon)).astype(np.int64)
    placed[soon] = np.minimum(created[cust[soon]] + delay, win.end - 60)
    gift = np.flatnonzero(kind[cust] == _GIFTER)
    placed[gift] = c["_gift_at"][cust[gift]]
    order = np.argsort(placed * (1 << 31) + cust)  # unique keys: time order, ties by customer
    cust, placed = cust[order].astype(np.int32), placed[order]
    okind, n = kind[cust], len(cust)

    extra_items, extra_qty = _table("items_qty").T
    lines = np.minimum(1 + rng.poisson(extra_items[okind]), 6).astype(np.int16)
    line_order = np.repeat(np.arange(n, dtype=np.int32), lines)
    line_kind = np.repeat(okind, lines)
    popular = 1 / np.arange(1, 7) ** 0.8  # a few best sellers in every category
    product = _pick(rng, line_kind, np.kron(_table("categories"), popular))
    qty = np.minimum(1 + rng.poisson(extra_qty[line_kind]), 5).astype(np.int16)
    total = np.add.reduceat(qty * PRODUCT_PRICES[product], np.cumsum(lines) - lines) if n else qty

    age, r = win.end - placed, rng.random(n)
    refund = _table("refund_rate")[okind]
    status = np.where(age < 6 * 3600, np.where(r < 0.5, 0, 1), np.where(age < 3 * _DAY, 1, 2))
    status = np.where(r < 0.02, 3, np.where((r < 0.02 + refund) & (age > 2 * _DAY), 4, status))
    wait = np.take(np.array([300, 600, 3 * _DAY, _DAY, 15 * _DAY]), status) * rng.random(n)
    device = _pick(rng, okind, _table("devices"))
    channel = ((device == 1) & c["_app_user"][cust]).astype(np.uint8)
    orders: dict[str, Array | Column] = {
        "external_id": _id_column("o-", n, 7),
        "customer_external_id": _id_column("c-", len(kind), 6, cust),
        "customer_row": cust,
        "status": _label_column(STATUSES, status.astype(np.uint8)),
        "currency": lambda part: np.full(len(range(*part.indices(n))), b"USD", "S3"),
        "total_cents": total.astype(np.int64),
        "channel": _label_column(("web", "app"), channel),
        "device": _label_column(DEVICES, device),
        "placed_at": _micros(placed),
        "updated_at": _micros(np.minimum(placed + 60 + wait.astype(np.int64), win.end)),
        "item_count": lines,
        "_device": device,
    }
    items: dict[str, Array | Column] = {
        "order_external_id": _id_column("o-", n, 7, line_order),
        "order_row": line_order,
        "product_id": _label_column(PRODUCT_IDS, product),
        "name": _label_column(PRODUCT_NAMES, product),
        "category": _label_column(CATEGORIES, product // 6),
        "quantity": qty,
        "unit_price_cents": lambda part: PRODUCT_PRICES[product[part]],
        "_product": product,
    }
    return Table(n, orders), Table(len(line_order), items)


def _sessions(rng: np.random.Generator, config: DemoConfig, c: dict[str, Array], orders: Table,
              items: Table, win: _Window) -> dict[str, Array]:  # fmt: skip
    """One session per tracked order, ending in its purchase, and many more that stop early
    (a good share at checkout): by customers, by prospects and by anonymous visitors."""
    kind, n_cust = c["_kind"], len(c["_kind"])
    placed = orders["placed_at"].astype(np.int64) // 1_000_000
    days = config.event_days if config.events else 0
    bought = np.flatnonzero(placed >= win.track + 3600) if days else np.zeros(0, np.int64)
    browse = rng.poisson(_table("browse_per_month")[kind] * days / 30)
    visitors = _anonymous_size(config, n_cust) - n_cust if days else 0
    v_sessions = 1 + rng.poisson(0.4, visitors)
    cust = np.r_[orders["customer_row"][bought], np.repeat(np.arange(n_cust), browse),
                 np.full(v_sessions.sum(), -1)].astype(np.int32)  # fmt: skip
    anon = cust.copy()
    anon[cust < 0] = n_cust + np.repeat(np.arange(visitors, dtype=np.int32), v_sessions)
    n_buy, n = len(bought), len(cust)
    who = np.maximum(cust, 0)
    skind = np.where(cust >= 0, kind[who] if n_cust else 0, _PROSPECT)
    device = _pick(rng, skind, _table("devices"))
    device[:n_buy] = orders["_device"][bought]
    product = _pick(rng, skind, _table("categories")) * 6 + rng.integers(0, 6, n, np.uint8)
    product = product.astype(np.int16)
    first_line = np.cumsum(orders["item_count"]) - orders["item_count"]
    product[:n_buy] = items["_product"][first_line[bought]]
    cart = PRODUCT_PRICES[product] * (1 + rng.poisson(0.3, n))
    cart[:n_buy] = orders["total_cents"][bought]
    offsets = np.cumsum(rng.exponential(50.0, (n, 5)).astype(np.int64) + 2, axis=1)
    offsets -= offsets[:, :1]  # seconds from the session's first event to each step
    anchor = np.r_[placed[bought], win.sample(rng, np.full(n - n_buy, win.track), win.end - 3600)]
    s = {
        "cust": cust,
        "anon": anon,
        "depth": np.r_[np.full(n_buy, 5, np.uint8), 1 + _pick(rng, skind[n_buy:], _table("depth"))],
        "device": device,
        "app": (device == 1) & (cust >= 0) & (c["_app_user"][who] if n_cust else False),
        "source": _pick(rng, skind, _table("sources")),
        "product": product,
        "cart": cart,
        "landing": np.where(rng.random(n) < 0.5, 0, 1 + product // 6),
        "logged_out": np.r_[np.zeros(n_buy, bool), rng.random(n - n_buy) < 0.15],
        "offsets": offsets,
        "begin": anchor - np.where(np.arange(n) < n_buy, offsets[:, 4], 0),
        "order": np.r_[bought, np.full(n - n_buy, -1)].astype(np.int32),
    }
    by_start = np.argsort(s["begin"], kind="stable")  # sessions numbered in the order they start
    return {k: v[by_start] for k, v in s.items()}


def _events(config: DemoConfig, c: dict[str, Array], orders: Table, s: dict[str, Array]) -> Table:
    """Spread the sessions into their funnel steps; steps taken before the visitor signed up,
    or while logged out, carry only the device's anonymous id."""
    n_cust, n = len(c["_kind"]), len(s["cust"])
    sess = np.repeat(np.arange(n, dtype=np.int32), s["depth"])
    step = np.arange(len(sess)) - np.repeat(np.cumsum(s["depth"]) - s["depth"], s["depth"])
    step = step.astype(np.uint8)
    at = s["begin"][sess] + s["offsets"][sess, step]
    row = s["cust"][sess]
    signed_up = at >= c["_created"][np.maximum(row, 0)] if n_cust else False
    row = np.where((row >= 0) & ~s["logged_out"][sess] & signed_up, row, -1).astype(np.int32)
    product = s["product"][sess]
    path = np.where(step == 1, len(CATEGORIES) + 4 + product, len(CATEGORIES) - 1 + step)
    path = np.where(step == 0, s["landing"][sess], path).astype(np.int16)
    order = np.where(step == 4, s["order"][sess], -1).astype(np.int32)
    columns: dict[str, Array | Column] = {
        "id": _id_column("e-", len(sess), 8),
        "name": _label_column(STEPS, step),
        "customer_external_id": _id_column("c-", n_cust, 6, row),
        "customer_row": row,
        "anonymous_id": _id_column("a-", _anonymous_size(config, n_cust), 7, s["anon"][sess]),
        "occurred_at": _micros(at),
        "session_id": _id_column("s-", n, 7, sess),
        "device": _label_column(DEVICES, s["device"][sess]),
        "channel": _label_column(("web", "app"), s["app"][sess].astype(np.uint8)),
        "source": _label_column(SOURCES, s["source"][sess]),
        "path": _label_column(_PATHS, path),
        "product_id": _label_column(PRODUCT_IDS, np.where((step == 1) | (step == 2), product, -1)),
        "cart_value_cents": np.where(step >= 2, s["cart"][sess], -1),
        "order_external_id": _id_column("o-", orders.n_rows, 7, order),
        "order_row": order,
    }
    return Table(len(sess), columns)


def _survey(rng: np.random.Generator, c: dict[str, Array], win: _Window) -> Table:
    """Answers from about 30% of buyers, drawn mostly from their own kind's voice."""
    kind = c["_kind"]
    rows = np.flatnonzero((kind != _PROSPECT) & (rng.random(len(kind)) < 0.3)).astype(np.int32)
    k, n = kind[rows], len(rows)
    since = np.maximum(c["_created"][rows], win.end - 180 * _DAY)
    decides = rng.random(n) < _table("decides")[k]
    nps = np.clip(np.rint(_table("nps")[k] + rng.normal(0, 1.3, n)), 0, 10).astype(np.int8)
    columns = {
        "customer_external_id": c["external_id"][rows],
        "customer_row": rows,
        "answered_at": _micros(since + (rng.random(n) * (win.end - since)).astype(np.int64)),
        "decision_role": np.where(decides, b"decides", b"influences"),
        **{f: _tags(rng, k, f, 2, 0.15) for f in ("motivations", "frustrations", "goals")},
        "nps": nps,
    }
    return Table(n, columns)


def generate(config: DemoConfig | None = None) -> DemoStore:
    """Build the whole store. Each table draws from its own child generator, so turning events
    off (or changing how they are drawn) leaves customers, orders and surveys unchanged."""
    config = config or DemoConfig()
    win = _Window(config)
    seeds = np.random.SeedSequence(config.seed).spawn(4)
    people, buying, clicks, asking = (np.random.default_rng(s) for s in seeds)
    c = _customers(people, config, win)
    orders, items = _orders(buying, c, win)
    last = np.full(len(c["_kind"]), np.iinfo(np.int64).min)
    np.maximum.at(last, orders["customer_row"], orders["placed_at"].astype(np.int64) // 10**6)
    c["updated_at"] = _micros(np.minimum(np.maximum(c["_created"], last) + 300, win.end))
    events = _events(config, c, orders, _sessions(clicks, config, c, orders, items, win))
    customers = Table(len(c["_kind"]), c)
    return DemoStore(config, customers, orders, items, events, _survey(asking, c, win))


def _chunks(table: Table, size: int = 10_000) -> Iterator[dict[str, list[Any]]]:
    """Turn columns into Python values a chunk at a time, keeping memory flat for big stores."""
    for lo in range(0, table.n_rows, size):
        out: dict[str, list[Any]] = {}
        for name, col in table.rows(lo, lo + size).items():
            if col.dtype.kind == "S":
                out[name] = col.astype("U").tolist()
            elif col.dtype == np.dtype("datetime64[D]"):
                out[name] = np.datetime_as_string(col).tolist()
            elif col.dtype.kind == "M":
                out[name] = [t + "Z" for t in np.datetime_as_string(col, unit="s").tolist()]
            else:
                out[name] = col.tolist()
        yield out


def _rows(table: Table) -> Iterator[dict[str, Any]]:
    for ch in _chunks(table):
        yield from (dict(zip(ch, values, strict=True)) for values in zip(*ch.values(), strict=True))


def _money(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


def iter_customers(store: DemoStore) -> Iterator[dict[str, Any]]:
    """Customers in API.md's shape (the planted kind is left out: analytics must find it)."""
    for row in _rows(store.customers):
        del row["kind"], row["anonymous_id"]
        traits = {"price_sensitivity": round(row.pop("price_sensitivity"), 2)}
        traits["loyalty_member"] = row.pop("loyalty_member")
        row.update(interests=list(row["interests"]), values=list(row["values"]))
        yield {**row, "referred_by": row["referred_by"] or None, "traits": traits}


def iter_orders(store: DemoStore) -> Iterator[dict[str, Any]]:
    """Orders in API.md's shape with their line items; money as exact decimal strings."""
    lines = _rows(store.order_items)
    for order in _rows(store.orders):
        items = [
            {
                "product_id": line["product_id"],
                "name": line["name"],
                "category": line["category"],
                "quantity": line["quantity"],
                "unit_price": _money(line["unit_price_cents"]),
            }
            for line in islice(lines, order["item_count"])
        ]
        yield {
            "external_id": order["external_id"],
            "customer_external_id": order["customer_external_id"],
            "status": order["status"],
            "currency": order["currency"],
            "total": _money(order["total_cents"]),
            "channel": order["channel"],
            "placed_at": order["placed_at"],
            "updated_at": order["updated_at"],
            "items": items,
        }


def iter_events(store: DemoStore) -> Iterator[dict[str, Any]]:
    """Events in API.md's shape. Identified events keep their device's anonymous_id too, as
    trackers send it, which is what lets a store stitch earlier anonymous sessions."""
    for ev in _rows(store.events):
        props: dict[str, Any] = {"path": ev["path"]}
        if ev["name"] == "page_view":
            props["source"] = ev["source"]
        if ev["product_id"]:
            props["product_id"] = ev["product_id"]
        if ev["cart_value_cents"] >= 0:
            props["cart_value"] = ev["cart_value_cents"] / 100
        if ev["order_external_id"]:
            props["order_id"] = ev["order_external_id"]
        yield {
            "id": ev["id"],
            "name": ev["name"],
            "customer_external_id": ev["customer_external_id"] or None,
            "anonymous_id": ev["anonymous_id"],
            "occurred_at": ev["occurred_at"],
            "session_id": ev["session_id"],
            "device": ev["device"],
            "channel": ev["channel"],
            "properties": props,
        }


def iter_survey_answers(store: DemoStore) -> Iterator[dict[str, Any]]:
    """One survey response per answering customer, shaped for the surveys domain."""
    for row in _rows(store.survey_answers):
        answers = {k: row[k] for k in ("decision_role", "motivations", "frustrations", "goals")}
        answers.update({k: list(v) for k, v in answers.items() if isinstance(v, tuple)})
        yield {
            "customer_external_id": row["customer_external_id"],
            "answered_at": row["answered_at"],
            "answers": {**answers, "nps": row["nps"]},
        }


def survey_vocabulary(field: str) -> tuple[str, ...]:
    """Every answer the generator can give to `motivations`, `frustrations` or `goals`: the
    choices of the demo survey's questions."""
    return tuple(dict.fromkeys(t for kind in _PROFILES for t in getattr(kind, field)))
