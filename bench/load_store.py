"""Bulk loading of a big generated store for the analytics benchmarks, and their small helpers.

`bench.customer_value` and `bench.segments` need a million customers with ten million orders
and events in PostgreSQL in minutes, not the hours the API would take. So, as the owner
(a superuser bypasses row-level security): the bench database is dropped and migrated afresh,
a tenant is made with `portrait tenants create`, then the generated columns are COPYed
(asyncpg `copy_records_to_table`) straight into `customers`, `orders`, `order_items` and
`events`, with the secondary indexes dropped and foreign-key triggers off while it runs
(the data is consistent by construction), the indexes rebuilt from their own definitions,
the customers' computed behaviour facts filled by one set-based UPDATE over orders, items
and events (what `shared.customers.stats` keeps current on ingest), and every table vacuumed
and analysed, as a store's tables would be in steady state.

Ids are UUIDv7-like (the row's own creation time, then random bits), as `new_id()` makes
them, so index locality is as in a live store. Nothing is cached on disk beyond the run.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bench import common
from shared.db.engine import app_url, make_engine, make_sessionmaker, set_tenant
from shared.db.migrate import upgrade
from shared.ingest.demo import CATEGORIES, PRODUCT_IDS, PRODUCT_NAMES, PRODUCT_PRICES, DemoStore
from shared.settings import Settings

CHUNK = 100_000  # rows converted and COPYed at a time: flat memory for any store size
TABLES = ("customers", "orders", "order_items", "events")
PURCHASE = "('placed', 'paid', 'fulfilled')"
Progress = Callable[[str], None]

# The behaviour facts `shared.customers.stats` computes on ingest, for every customer at once.
BEHAVIOUR_SQL = f"""
WITH o AS (
    SELECT customer_id,
           count(*) FILTER (WHERE status IN {PURCHASE}) AS n,
           coalesce(sum(total) FILTER (WHERE status IN {PURCHASE}), 0) AS spent,
           min(placed_at) FILTER (WHERE status IN {PURCHASE}) AS first_at,
           max(placed_at) FILTER (WHERE status IN {PURCHASE}) AS last_at,
           count(*) FILTER (WHERE status = 'refunded') AS refunds,
           coalesce(sum(total) FILTER (WHERE status = 'refunded'), 0) AS refunded,
           mode() WITHIN GROUP (ORDER BY channel) FILTER (WHERE status IN {PURCHASE}) AS channel
    FROM orders WHERE tenant_id = $1 AND customer_id IS NOT NULL
    GROUP BY customer_id
),
qty AS (
    SELECT o.customer_id, i.category, sum(i.quantity) AS qty
    FROM orders o JOIN order_items i ON i.tenant_id = o.tenant_id AND i.order_id = o.id
    WHERE o.tenant_id = $1 AND i.tenant_id = $1 AND o.customer_id IS NOT NULL
      AND o.status IN {PURCHASE} AND i.category IS NOT NULL
    GROUP BY o.customer_id, i.category
),
cat AS (
    SELECT customer_id, (array_agg(category ORDER BY qty DESC, category))[1:3] AS top,
           jsonb_object_agg(category, qty) AS quantities
    FROM qty GROUP BY customer_id
),
ev AS (
    SELECT customer_id, mode() WITHIN GROUP (ORDER BY device) AS device,
           mode() WITHIN GROUP (ORDER BY channel) AS channel
    FROM events WHERE tenant_id = $1 AND customer_id IS NOT NULL
    GROUP BY customer_id
),
ref AS (
    SELECT referred_by, count(*) AS n FROM customers
    WHERE tenant_id = $1 AND referred_by IS NOT NULL GROUP BY referred_by
)
UPDATE customers c SET
    order_count = coalesce(o.n, 0),
    total_spent = coalesce(o.spent, 0),
    average_order_value = CASE WHEN o.n > 0 THEN round(o.spent / o.n, 2) END,
    first_order_at = o.first_at,
    last_order_at = o.last_at,
    refund_count = coalesce(o.refunds, 0),
    refunded_amount = coalesce(o.refunded, 0),
    order_channel = o.channel,
    top_categories = cat.top,
    category_quantities = coalesce(cat.quantities, '{{}}'),
    preferred_device = ev.device,
    event_channel = ev.channel,
    referral_count = coalesce(ref.n, 0),
    stats_updated_at = now()
FROM customers x
LEFT JOIN o ON o.customer_id = x.id
LEFT JOIN cat ON cat.customer_id = x.id
LEFT JOIN ev ON ev.customer_id = x.id
LEFT JOIN ref ON ref.referred_by = x.external_id
WHERE c.tenant_id = $1 AND x.tenant_id = $1 AND c.id = x.id
"""

_SECONDARY_INDEXES = """
SELECT i.indexrelid::regclass::text AS name, pg_get_indexdef(i.indexrelid) AS definition
FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid
WHERE t.relname = ANY($1::text[]) AND t.relnamespace = 'public'::regnamespace
  AND NOT i.indisprimary
  AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)
"""


def owner_dsn(env: common.Env, database: str | None = None) -> str:
    url = make_url(env.database_url).set(drivername="postgresql")
    if database:
        url = url.set(database=database)
    return url.render_as_string(hide_password=False)


async def fresh_database(env: common.Env) -> Settings:
    """Drop the bench database (a crashed run cannot leave it without its indexes), create
    it and migrate it; return settings that point at it."""
    conn = await asyncpg.connect(owner_dsn(env, "postgres"))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{common.BENCH_DB}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{common.BENCH_DB}"')
    finally:
        await conn.close()
    settings = Settings(DATABASE_URL=env.database_url)
    await upgrade(settings)
    return settings


async def database_note(env: common.Env) -> str | None:
    """The note (`COMMENT ON DATABASE`) a run left on the bench database: which store it holds.
    None when the database or the note is missing."""
    try:
        conn = await asyncpg.connect(owner_dsn(env))
    except asyncpg.InvalidCatalogNameError:
        return None
    try:
        note: str | None = await conn.fetchval(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database "
            "WHERE datname = current_database()"
        )
        return note
    finally:
        await conn.close()


async def set_database_note(env: common.Env, note: str) -> None:
    conn = await asyncpg.connect(owner_dsn(env))
    try:
        quoted = note.replace("'", "''")
        await conn.execute(f"COMMENT ON DATABASE \"{common.BENCH_DB}\" IS '{quoted}'")
    finally:
        await conn.close()


def create_tenant(env: common.Env, queue: str) -> dict[str, str]:
    """A tenant made the way operators make one; its id, API key and webhook secret."""
    return json.loads(common.run_cli(env, ["tenants", "create", "bench"], queue))  # type: ignore[no-any-return]


@asynccontextmanager
async def app_sessions(settings: Settings, *, worker: bool = False) -> Any:
    """Sessions as the API (or, with `worker`, the worker) opens them: the app role, subject to
    row-level security, with the same engine options (statement timeout, custom plans)."""
    timeout = settings.worker.statement_timeout_ms if worker else None
    engine = make_engine(app_url(settings), settings, pool_size=2, statement_timeout_ms=timeout)
    try:
        yield make_sessionmaker(engine)
    finally:
        await engine.dispose()


@asynccontextmanager
async def tenant_session(
    sessionmaker: async_sessionmaker[AsyncSession], tenant_id: uuid.UUID
) -> Any:
    """One transaction scoped to the tenant, rolled back at the end (reads leave no trace)."""
    async with sessionmaker() as session:
        await set_tenant(session, tenant_id)
        try:
            yield session
        finally:
            await session.rollback()


async def raw_connection(session: AsyncSession) -> asyncpg.Connection:
    """The asyncpg connection under a session (for timing plain SQL on the same footing)."""
    conn = await session.connection()
    raw = (await conn.get_raw_connection()).driver_connection
    assert raw is not None
    return raw


def peak_rss_mb(pid: int) -> float | None:
    """A process's peak resident memory (VmHWM) in MiB, or None when it is gone."""
    return _status_mb(pid, "VmHWM")


def rss_mb(pid: int) -> float | None:
    return _status_mb(pid, "VmRSS")


def _status_mb(pid: int, key: str) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def machine(commit: str) -> dict[str, Any]:
    import platform

    return {"cpus": os.cpu_count(), "python": platform.python_version(),
            "load_avg": os.getloadavg(), "commit": commit,
            "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30,
                                1)}  # fmt: skip


async def server_settings(conn: asyncpg.Connection) -> dict[str, str]:
    names = ("server_version", "shared_buffers", "work_mem", "max_parallel_workers_per_gather",
             "effective_cache_size", "jit")  # fmt: skip
    return {n: await conn.fetchval(f"SHOW {n}") for n in names}


# --- ids and columns -------------------------------------------------------------------------

_HEX = np.frombuffer(b"0123456789abcdef", np.uint8)
_HEX_AT = [i for i in range(36) if i not in (8, 13, 18, 23)]


def uuid7_bytes(at: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(n, 16) bytes of UUIDv7s: the row's time in ms, then random bits, as `new_id()`."""
    ms = at.astype("datetime64[ms]").astype(np.int64)
    out = rng.integers(0, 256, (len(ms), 16), dtype=np.uint8)
    out[:, :6] = (ms[:, None] >> np.arange(40, -8, -8)) & 0xFF
    out[:, 6] = 0x70 | (out[:, 6] & 0x0F)
    out[:, 8] = 0x80 | (out[:, 8] & 0x3F)
    return out


def uuid_strings(raw: np.ndarray) -> np.ndarray:
    """Canonical text of (n, 16) uuid bytes, as an object array of str (asyncpg takes str)."""
    text = np.full((len(raw), 36), ord("-"), np.uint8)
    text[:, _HEX_AT[0::2]] = _HEX[raw >> 4]
    text[:, _HEX_AT[1::2]] = _HEX[raw & 15]
    return text.view("S36").ravel().astype("U36").astype(object)


def _text(col: np.ndarray) -> list[str | None]:
    """Generator text (ASCII bytes) as str, with the empty string as NULL."""
    out = col.astype("U").astype(object)
    out[col == b""] = None
    return out.tolist()  # type: ignore[no-any-return]


def _cents(cents: np.ndarray) -> list[str]:
    """Integer cents as exact decimal strings (asyncpg's numeric codec parses them)."""
    return [f"{c // 100}.{c % 100:02d}" for c in cents.tolist()]


def _times(col: np.ndarray) -> list[Any]:
    # Naive datetimes: the process runs with TZ=UTC (see `load`), so asyncpg reads them as UTC.
    return col.astype("datetime64[us]").tolist()  # type: ignore[no-any-return]


def _anon_numbers(ids: np.ndarray) -> np.ndarray:
    """`a-0000042` -> 41: the anonymous id's row number, digit by digit, vectorised."""
    width = ids.dtype.itemsize
    digits = ids.view(np.uint8).reshape(len(ids), width)[:, 2:].astype(np.int64) - 48
    return digits @ (10 ** np.arange(width - 3, -1, -1, dtype=np.int64)) - 1


# --- the load --------------------------------------------------------------------------------


async def load(
    dsn: str, tenant_id: uuid.UUID, store: DemoStore, say: Progress = print
) -> dict[str, float]:
    """COPY the store into the tenant as the owner `dsn`; returns seconds per step. Two
    connections share the work (PostgreSQL is the bottleneck here, and there are two cores)."""
    os.environ["TZ"] = "UTC"  # naive datetimes are read as local time by asyncpg's codec
    time.tzset()
    took: dict[str, float] = {}
    rng = np.random.default_rng(store.config.seed)
    a, b = await asyncpg.connect(dsn), await asyncpg.connect(dsn)
    try:
        for conn in (a, b):
            await conn.execute("SET work_mem = '256MB'")
            await conn.execute("SET maintenance_work_mem = '1GB'")
        indexes = await a.fetch(_SECONDARY_INDEXES, list(TABLES))
        for row in indexes:
            await a.execute(f"DROP INDEX {row['name']}")
        try:
            await _copy_all(a, b, tenant_id, store, rng, took, say)
            await a.execute(f"ANALYZE {', '.join(TABLES)}")
            # Before the indexes are back: all 5 of customers' would be updated for every row.
            started = time.perf_counter()
            await a.execute(BEHAVIOUR_SQL, tenant_id)
            took["behaviour_update"] = time.perf_counter() - started
            say(f"  behaviour facts (one UPDATE) in {took['behaviour_update']:.1f} s")
        finally:
            started = time.perf_counter()
            await asyncio.gather(*(_run(conn, [r["definition"] for r in indexes[i::2]])
                                   for i, conn in enumerate((a, b))))  # fmt: skip
            took["indexes"] = time.perf_counter() - started
        say(f"  {len(indexes)} secondary indexes rebuilt in {took['indexes']:.1f} s")
        started = time.perf_counter()
        halves = (["orders", "customers"], ["order_items", "events"])
        await asyncio.gather(*(_run(conn, [f"VACUUM (ANALYZE) {t}" for t in half])
                               for conn, half in zip((a, b), halves, strict=True)))  # fmt: skip
        took["vacuum_analyze"] = time.perf_counter() - started
        say(f"  VACUUM ANALYZE in {took['vacuum_analyze']:.1f} s")
    finally:
        await a.close()
        await b.close()
    return {k: round(v, 2) for k, v in took.items()}


async def _run(conn: asyncpg.Connection, statements: list[str]) -> None:
    for sql in statements:
        await conn.execute(sql)


async def _copy_all(
    a: asyncpg.Connection,
    b: asyncpg.Connection,
    tenant_id: uuid.UUID,
    store: DemoStore,
    rng: np.random.Generator,
    took: dict[str, float],
    say: Progress,
) -> None:
    for conn in (a, b):
        try:
            await conn.execute("SET session_replication_role = replica")  # no FK triggers
        except asyncpg.InsufficientPrivilegeError:
            say("  (not a superuser: foreign keys are checked row by row)")
    customer_ids = uuid7_bytes(store.customers["created_at"], rng)
    order_ids = uuid7_bytes(store.orders["placed_at"], rng)

    async def timed(name: str, step: Any) -> None:
        started = time.perf_counter()
        rows = await step
        took[f"copy_{name}"] = time.perf_counter() - started
        say(f"  {name}: {rows:,} rows in {took[f'copy_{name}']:.1f} s")

    async def orders_then_items() -> None:
        await timed("orders", _orders(a, tenant_id, store, customer_ids, order_ids))
        await timed("order_items", _items(a, tenant_id, store, order_ids))

    started = time.perf_counter()
    await timed("customers", _customers(a, tenant_id, store, customer_ids))
    await asyncio.gather(orders_then_items(),
                         timed("events", _events(b, tenant_id, store, customer_ids)))  # fmt: skip
    took["copy"] = time.perf_counter() - started
    for conn in (a, b):
        await conn.execute("RESET session_replication_role")


def _chunks(n: int) -> Iterator[tuple[int, int]]:
    for lo in range(0, n, CHUNK):
        yield lo, min(lo + CHUNK, n)


async def _copy(
    conn: asyncpg.Connection, table: str, columns: tuple[str, ...], cols: list[Any]
) -> None:
    await conn.copy_records_to_table(table, records=zip(*cols, strict=False), columns=columns)


async def _customers(
    conn: asyncpg.Connection, tenant: uuid.UUID, store: DemoStore, ids: np.ndarray
) -> int:
    texts = ("external_id", "email", "phone", "first_name", "last_name", "gender",
             "marital_status", "income_band", "occupation", "industry", "job_level",
             "education_level", "country", "region", "city", "postcode", "timezone",
             "preferred_channel", "referred_by")  # fmt: skip
    plain = ("accepts_marketing", "birth_date", "children", "interests", "values")
    columns = ("tenant_id", "id", *texts, *plain, "created_at", "updated_at", "traits",
               "fact_sources")  # fmt: skip
    t = store.customers
    for lo, hi in _chunks(t.n_rows):
        c = t.rows(lo, hi, [*texts, *plain, "created_at", "updated_at", "price_sensitivity",
                            "loyalty_member"])  # fmt: skip
        traits = [
            f'{{"price_sensitivity": {p:.2f}, "loyalty_member": {str(m).lower()}}}'
            for p, m in zip(
                c["price_sensitivity"].tolist(), c["loyalty_member"].tolist(), strict=True
            )  # fmt: skip
        ]
        cols = [itertools.repeat(tenant), uuid_strings(ids[lo:hi]).tolist(),
                *(_text(c[n]) for n in texts), *(c[n].tolist() for n in plain),
                _times(c["created_at"]), _times(c["updated_at"]), traits,
                itertools.repeat("{}")]  # fmt: skip
        await _copy(conn, "customers", columns, cols)
    return t.n_rows


async def _orders(
    conn: asyncpg.Connection,
    tenant: uuid.UUID,
    store: DemoStore,
    customer_ids: np.ndarray,
    ids: np.ndarray,
) -> int:
    columns = ("tenant_id", "id", "external_id", "customer_id", "status", "currency", "total",
               "channel", "placed_at", "updated_at", "source_updated_at")  # fmt: skip
    t = store.orders
    for lo, hi in _chunks(t.n_rows):
        c = t.rows(lo, hi, ["external_id", "customer_row", "status", "total_cents", "channel",
                            "placed_at", "updated_at"])  # fmt: skip
        updated = _times(c["updated_at"])
        cols = [itertools.repeat(tenant), uuid_strings(ids[lo:hi]).tolist(),
                _text(c["external_id"]), uuid_strings(customer_ids[c["customer_row"]]).tolist(),
                _text(c["status"]), itertools.repeat("USD"), _cents(c["total_cents"]),
                _text(c["channel"]), _times(c["placed_at"]), updated, updated]  # fmt: skip
        await _copy(conn, "orders", columns, cols)
    return t.n_rows


async def _items(
    conn: asyncpg.Connection, tenant: uuid.UUID, store: DemoStore, order_ids: np.ndarray
) -> int:
    columns = ("tenant_id", "order_id", "line", "product_id", "name", "category", "quantity",
               "unit_price")  # fmt: skip
    t = store.order_items
    rows = t["order_row"]
    first = np.r_[0, np.flatnonzero(np.diff(rows)) + 1]  # each order's first line
    line = np.arange(len(rows)) - np.repeat(first, np.diff(np.r_[first, len(rows)])) + 1
    product_ids, names = np.array(PRODUCT_IDS, object), np.array(PRODUCT_NAMES, object)
    categories = np.array(CATEGORIES, object)
    prices = np.array(_cents(PRODUCT_PRICES), object)
    for lo, hi in _chunks(t.n_rows):
        product = t.rows(lo, hi, ["_product"])["_product"].astype(np.int64)
        cols = [itertools.repeat(tenant), uuid_strings(order_ids[rows[lo:hi]]).tolist(),
                line[lo:hi].tolist(), product_ids[product].tolist(), names[product].tolist(),
                categories[product // 6].tolist(), t["quantity"][lo:hi].tolist(),
                prices[product].tolist()]  # fmt: skip
        await _copy(conn, "order_items", columns, cols)
    return t.n_rows


async def _events(
    conn: asyncpg.Connection, tenant: uuid.UUID, store: DemoStore, customer_ids: np.ndarray
) -> int:
    """Events as ingest leaves them: a customer's anonymous steps (before sign-up, logged
    out) are tied to them once any of their events identified them, as stitching does."""
    columns = ("tenant_id", "external_id", "name", "customer_id", "anonymous_id", "session_id",
               "occurred_at", "device", "channel", "properties")  # fmt: skip
    t, n_customers = store.events, store.customers.n_rows
    row = t["customer_row"]
    identified = np.zeros(n_customers + 1, bool)
    identified[row[row >= 0]] = True
    ids = uuid_strings(customer_ids)
    for lo, hi in _chunks(t.n_rows):
        c = t.rows(lo, hi, ["id", "name", "customer_row", "anonymous_id", "session_id",
                            "occurred_at", "device", "channel", "path"])  # fmt: skip
        who = c["customer_row"].astype(np.int64)
        device_of = _anon_numbers(c["anonymous_id"])
        stitched = (who < 0) & (device_of < n_customers)
        stitched &= identified[np.where(stitched, device_of, n_customers)]
        who = np.where(stitched, device_of, who)
        customer = np.where(who >= 0, ids[np.maximum(who, 0)], None)
        props = np.char.add(np.char.add(b'{"path": "', c["path"]), b'"}')
        cols = [itertools.repeat(tenant), _text(c["id"]), _text(c["name"]), customer.tolist(),
                _text(c["anonymous_id"]), _text(c["session_id"]), _times(c["occurred_at"]),
                _text(c["device"]), _text(c["channel"]), props.astype("U").tolist()]  # fmt: skip
        await _copy(conn, "events", columns, cols)
    return t.n_rows
