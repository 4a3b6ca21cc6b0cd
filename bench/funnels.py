"""Funnels at scale: the `funnels.run` job against DuckDB computing the same funnel in memory,
in the same run.

`python -m bench.funnels [--customers N] [--events M] [--seed S] [--repeat R]`; the issue's
size is `--customers 1000000 --events 10000000` (loading takes a few minutes).

- Data (seeded numpy, reproducible): N customers and 0.3 N anonymous visitors; sessions
  spread uniformly over 90 days, each on one device (desktop, mobile, tablet), with 1-3
  page views and then a path down product_view -> add_to_cart -> checkout_started ->
  purchase that stops early at random (mobile a little more often at checkout and payment);
  a person has ~2 sessions, so a cart may be paid for days later. Times have microseconds
  (ties are rare). The compact columns are COPYed into a staging table and expanded into
  `events` by one INSERT ... SELECT in time order, as a live store appends them (the owner;
  indexes rebuilt after; VACUUM ANALYZE).
- The funnel: product_view -> add_to_cart -> checkout_started -> purchase, `ordered`,
  window 7 days, date range the 90 days; with no breakdown, and by device.
- The job: from the request (run row and job written, committed) to the stored result
  committed, through `shared.jobs.runner.run` with the worker's engine settings in this
  process (what the arq worker calls; the queue hop is left out). The worker's columnar copy
  of the events (shared.funnels.columns) starts missing: the first run builds it (cold,
  reported apart); then the median of R warm runs; then one run after 100k new events
  arrived (the incremental sync), and one reading PostgreSQL as before the copy (its
  events query alone is timed too).
- Baseline: DuckDB (in memory, 2 threads) over the funnel's events exported once from
  PostgreSQL (export not counted; the person as a 64-bit key, times as integers): an
  ASOF-join chain (greedy earliest next step after the previous one, within the window from
  the first), best attempt per person, counts per step (and by the device of the best
  attempt's first event). Both answers are compared.

Target (the issue): the job within 3x of DuckDB. Prints a table; writes the same to
bench/results/funnels-<time>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import duckdb
import numpy as np

from bench import common, load_store
from shared.db.engine import unit_of_work
from shared.db.migrate import upgrade
from shared.funnels import repository
from shared.funnels import service as funnels
from shared.funnels.schemas import FunnelCreate, RunCreate
from shared.jobs import repository as jobs_repo
from shared.jobs.runner import run as run_job
from shared.settings import Settings, get_settings

# Its own database: the other benchmarks' `portrait_bench` may be in use by someone else.
common.BENCH_DB = "portrait_bench_funnels"
TARGET_RATIO = 3.0
END = datetime(2026, 11, 1, tzinfo=UTC)
DAYS, WINDOW_S = 90, 7 * 86_400
STEPS = ("product_view", "add_to_cart", "checkout_started", "purchase")
NAMES = ("page_view", *STEPS)
DEVICES = ("desktop", "mobile", "tablet")


def generate(customers: int, events: int, seed: int) -> dict[str, np.ndarray]:
    """Compact event columns: actor (customers first, then anonymous visitors), session,
    name code, device code, time (Unix microseconds)."""
    rng = np.random.default_rng(seed)
    actors = customers + int(0.3 * customers)
    per_session = 2.0 + 0.55 * (1 + 0.4 * (1 + 0.53 * (1 + 0.58)))  # mean events a session
    n = int(events / per_session)
    actor = rng.integers(0, actors, n)
    device = rng.choice(3, n, p=[0.45, 0.45, 0.10])
    start = (END.timestamp() - rng.random(n) * DAYS * 86_400) * 1e6
    views = rng.integers(1, 4, n)
    mobile = device == 1
    p = np.stack(
        [
            np.full(n, 0.55),
            np.full(n, 0.40),
            np.where(mobile, 0.45, 0.60),
            np.where(mobile, 0.50, 0.65),
        ],
        axis=1,
    )
    depth = np.cumprod(rng.random((n, 4)) < p, axis=1).sum(axis=1)
    count = views + depth
    sess = np.repeat(np.arange(n), count)
    k = np.arange(len(sess)) - np.repeat(np.cumsum(count) - count, count)
    name = np.where(k < views[sess], 0, k - views[sess] + 1)
    gaps = rng.exponential(90e6, len(sess))
    gaps[k == 0] = 0
    at = start[sess] + _segmented_cumsum(gaps, count)
    # Stored in the order they happened, as a live store's append-only events are (the heap
    # then follows time, which the events index scan relies on).
    order = np.argsort(at, kind="stable")
    return {
        "actor": actor[sess][order],
        "session": sess[order],
        "name": name.astype(np.int16)[order],
        "device": device[sess].astype(np.int16)[order],
        "at": at.astype(np.int64)[order],
        "customers": np.array([customers]),
    }


def _segmented_cumsum(x: np.ndarray, counts: np.ndarray) -> np.ndarray:
    total = np.cumsum(x)
    offsets = np.repeat(total[np.cumsum(counts) - counts] - x[np.cumsum(counts) - counts], counts)
    return total - offsets


_EXPAND = """
INSERT INTO events (tenant_id, external_id, name, customer_id, anonymous_id, session_id,
                    occurred_at, device, channel, properties)
SELECT $1, 'e-' || s.n, ($2::text[])[s.name + 1], m.id,
       CASE WHEN m.id IS NULL THEN 'a-' || s.actor END, 's-' || s.session,
       to_timestamp(s.at / 1e6), ($3::text[])[s.device + 1], 'web', '{}'::jsonb
FROM bench_stage s LEFT JOIN bench_people m ON m.n = s.actor
"""


async def load(env: common.Env, tenant_id: uuid.UUID, data: dict[str, np.ndarray]) -> float:
    started = time.perf_counter()
    conn = await asyncpg.connect(load_store.owner_dsn(env))
    try:
        await conn.execute("SET maintenance_work_mem = '1GB'; SET work_mem = '256MB'")
        indexes = await conn.fetch(load_store._SECONDARY_INDEXES, ["events", "customers"])
        for row in indexes:
            await conn.execute(f"DROP INDEX {row['name']}")
        customers = int(data["customers"][0])
        await conn.execute(
            "CREATE UNLOGGED TABLE bench_people AS SELECT g - 1 AS n, gen_random_uuid() AS id "
            "FROM generate_series(1, $1::int) g",
            customers,
        )
        await conn.execute(
            "INSERT INTO customers (tenant_id, id, external_id, traits, fact_sources) "
            "SELECT $1, id, 'c-' || n, '{}', '{}' FROM bench_people",
            tenant_id,
        )
        await conn.execute("CREATE UNIQUE INDEX ON bench_people (n)")
        await conn.execute(
            "CREATE UNLOGGED TABLE bench_stage (n bigint, actor bigint, session bigint, "
            "name smallint, device smallint, at bigint)"
        )
        n = len(data["actor"])
        chunk = 1_000_000
        for lo in range(0, n, chunk):
            cols = [
                np.arange(lo, min(n, lo + chunk)).tolist(),
                *(data[c][lo : lo + chunk].tolist() for c in ("actor", "session", "name")),
                data["device"][lo : lo + chunk].tolist(),
                data["at"][lo : lo + chunk].tolist(),
            ]
            await conn.copy_records_to_table("bench_stage", records=zip(*cols, strict=True))
        await conn.execute("ALTER TABLE events DISABLE TRIGGER ALL")
        await conn.execute(_EXPAND + " ORDER BY s.n", tenant_id, list(NAMES), list(DEVICES))
        await conn.execute("ALTER TABLE events ENABLE TRIGGER ALL")
        await conn.execute("DROP TABLE bench_stage; DROP TABLE bench_people")
        for row in indexes:
            await conn.execute(row["definition"])
        await conn.execute("VACUUM (ANALYZE) events")
        await conn.execute("VACUUM (ANALYZE) customers")
    finally:
        await conn.close()
    return time.perf_counter() - started


def funnel_definition() -> FunnelCreate:
    return FunnelCreate.model_validate(
        {
            "name": "Bench checkout",
            "steps": [{"event": s} for s in STEPS],
            "order": "ordered",
            "window_seconds": WINDOW_S,
            "date_range": {
                "from": (END - timedelta(days=DAYS)).isoformat(),
                "to": END.isoformat(),
            },
        }
    )


async def one_job(
    sessionmaker: Any, tenant_id: uuid.UUID, funnel_id: uuid.UUID, params: RunCreate
) -> tuple[float, dict[str, Any], dict[str, Any]]:
    """One run from the request (run row and job committed) to the stored result committed:
    (seconds, the stored result, the job's own report)."""
    started = time.perf_counter()
    async with unit_of_work(sessionmaker, tenant_id) as session:
        run, job = await funnels.create_run(session, _NoQueue(), tenant_id, str(funnel_id), params)
    await run_job(sessionmaker, funnels.RUN_KIND, job.id, tenant_id)
    took = time.perf_counter() - started
    async with load_store.tenant_session(sessionmaker, tenant_id) as session:
        stored = await repository.get_run_by_id(session, tenant_id, run.id)
        assert stored is not None
        assert stored.result is not None, "the job did not store a result"
        result = stored.result
        done = await jobs_repo.get(session, tenant_id, job.id)
        report = (done.result or {}) if done else {}
    return took, result, report


async def measure_job(
    settings: Any, tenant_id: uuid.UUID, funnel_id: uuid.UUID, params: RunCreate, repeat: int
) -> dict[str, Any]:
    """The first run (with the columnar copy missing: cold, it builds it), then R warm runs."""
    times, result, phases, first = [], None, [], None
    async with load_store.app_sessions(settings, worker=True) as sessionmaker:
        for i in range(repeat + 1):
            took, result, report = await one_job(sessionmaker, tenant_id, funnel_id, params)
            parts = {k: report.get(k) for k in ("seconds", "source", "synced")}
            if i:
                times.append(took)
                phases.append(parts)
            else:
                first = {**parts, "phases": parts["seconds"], "seconds": round(took, 3)}
            print(f"  job {i}: {took:.2f} s {parts}", flush=True)
        # Where the time goes: the events query alone.
        q_times = []
        d = funnel_definition()
        start, end = funnels.date_window(d, END)
        for _ in range(2):
            async with load_store.tenant_session(sessionmaker, tenant_id) as session:
                started = time.perf_counter()
                records = await repository.funnel_events(
                    session, tenant_id, d.steps, d.exclusions, start,
                    end + timedelta(seconds=d.window_seconds), sessions=False,
                )  # fmt: skip
                q_times.append(time.perf_counter() - started)
    assert result is not None
    return {
        "seconds": round(statistics.median(times), 3),
        "first": first,
        "runs": [round(t, 3) for t in times],
        "events_query_seconds": round(min(q_times), 3),
        "phases": phases,
        "funnel_rows": len(records),
        "result": result,
    }


class _NoQueue:
    """The job is run directly here; nothing is pushed to Redis."""

    async def push_committed(self, *args: Any) -> None:
        return None


DUCK_FUNNEL = """
WITH s1 AS (SELECT actor, ts AS t1, device FROM ev WHERE name = 'product_view'
            AND ts >= $start AND ts < $end),
s2 AS (SELECT actor, ts FROM ev WHERE name = 'add_to_cart'),
s3 AS (SELECT actor, ts FROM ev WHERE name = 'checkout_started'),
s4 AS (SELECT actor, ts FROM ev WHERE name = 'purchase'),
j2 AS (SELECT s1.*, CASE WHEN s2.ts - s1.t1 <= $w THEN s2.ts END AS t2
       FROM s1 ASOF LEFT JOIN s2 ON s1.actor = s2.actor AND s2.ts > s1.t1),
j3 AS (SELECT j2.*, CASE WHEN s3.ts - j2.t1 <= $w THEN s3.ts END AS t3
       FROM j2 ASOF LEFT JOIN s3 ON j2.actor = s3.actor AND s3.ts > j2.t2),
j4 AS (SELECT j3.*, CASE WHEN s4.ts - j3.t1 <= $w THEN s4.ts END AS t4
       FROM j3 ASOF LEFT JOIN s4 ON j3.actor = s4.actor AND s4.ts > j3.t3),
attempts AS (SELECT actor, t1, device, 1 + (t2 IS NOT NULL)::int + (t3 IS NOT NULL)::int
                    + (t4 IS NOT NULL)::int AS reached FROM j4),
best AS (SELECT actor, arg_max(reached, reached * 1e16 - t1) AS reached,
                arg_max(device, reached * 1e16 - t1) AS device
         FROM attempts GROUP BY actor)
SELECT {by}, count(*) FILTER (WHERE reached >= 1), count(*) FILTER (WHERE reached >= 2),
       count(*) FILTER (WHERE reached >= 3), count(*) FILTER (WHERE reached >= 4)
FROM best GROUP BY ALL ORDER BY 1
"""


async def measure_duckdb(env: common.Env, tenant_id: uuid.UUID, repeat: int) -> dict[str, Any]:
    """Export the funnel's events once; DuckDB in memory, 2 threads."""
    started = time.perf_counter()
    path = env.scratch / "funnel_events.csv"
    start_dt, end_dt = END - timedelta(days=DAYS), END + timedelta(seconds=WINDOW_S)
    conn = await asyncpg.connect(load_store.owner_dsn(env))
    try:
        await conn.copy_from_query(
            "SELECT hashtextextended(coalesce(customer_id::text, 'a:' || anonymous_id), 0), "
            "(extract(epoch FROM occurred_at) * 1e6)::int8, name, device FROM events "
            "WHERE tenant_id = $1 AND name = ANY($2::text[]) AND occurred_at >= $3 "
            "AND occurred_at < $4",
            tenant_id, list(STEPS), start_dt, end_dt, output=str(path), format="csv",
        )  # fmt: skip
    finally:
        await conn.close()
    exported = time.perf_counter() - started
    duck = duckdb.connect(config={"threads": 2})
    duck.execute(
        f"CREATE TABLE ev AS SELECT * FROM read_csv('{path}', header=false, columns="
        "{'actor': 'BIGINT', 'ts': 'BIGINT', 'name': 'VARCHAR', 'device': 'VARCHAR'})"
    )
    path.unlink()
    params = {"start": int(start_dt.timestamp() * 1e6), "end": int(END.timestamp() * 1e6),
              "w": WINDOW_S * 1_000_000}  # fmt: skip
    out: dict[str, Any] = {"export_seconds": round(exported, 2)}
    for label, by in (("plain", "'all'"), ("by_device", "device")):
        times, rows = [], []
        for i in range(repeat + 1):
            started = time.perf_counter()
            rows = duck.execute(DUCK_FUNNEL.format(by=by), params).fetchall()
            if i:
                times.append(time.perf_counter() - started)
        out[label] = {
            "seconds": round(statistics.median(times), 3),
            "counts": {str(r[0]): list(r[1:]) for r in rows},
        }
    duck.close()
    return out


async def run(args: argparse.Namespace, env: common.Env) -> dict[str, Any]:
    queue = f"portrait:bench:{os.getpid()}"
    reused = await _reusable(env, args) if args.reuse else None
    if reused is None:
        started = time.perf_counter()
        data = generate(args.customers, args.events, args.seed)
        generated = time.perf_counter() - started
        print(f"generated {len(data['actor'])} events in {generated:.1f} s", flush=True)
        settings = await load_store.fresh_database(env)
        tenant = load_store.create_tenant(env, queue)
        tenant_id = uuid.UUID(tenant["tenant_id"])
        loaded = await load(env, tenant_id, data)
        print(f"loaded in {loaded:.1f} s", flush=True)
        n_events: int = len(data["actor"])
        del data
        await _remember(env, tenant_id, args)
    else:
        settings = Settings(DATABASE_URL=env.database_url)
        await upgrade(settings)  # a store loaded before a newer migration gets it
        tenant_id, n_events, loaded = reused, await _count(env, reused), 0.0
        print(f"reusing the loaded store ({n_events} events)", flush=True)
    async with load_store.app_sessions(settings) as sessionmaker:
        async with unit_of_work(sessionmaker, tenant_id) as session:
            funnel = await funnels.create(session, tenant_id, funnel_definition())
    out: dict[str, Any] = {"events": n_events, "load_seconds": round(loaded, 1),
                           "reused_store": reused is not None}  # fmt: skip
    # The worker's columnar copy starts missing: the first run builds it (cold).
    worker = get_settings().worker
    worker.cache_dir, worker.funnel_cache = env.scratch / "worker-cache", True
    print("job, no breakdown (first run cold) ...", flush=True)
    out["job_plain"] = await measure_job(settings, tenant_id, funnel.id, RunCreate(), args.repeat)
    print("job, by device ...", flush=True)
    by_device = RunCreate.model_validate({"breakdown": {"by": "device"}})
    out["job_by_device"] = await measure_job(settings, tenant_id, funnel.id, by_device, args.repeat)
    async with load_store.app_sessions(settings, worker=True) as sessionmaker:
        print(f"job after {NEW_EVENTS} new events arrived ...", flush=True)
        await append_events(env, tenant_id, NEW_EVENTS)
        try:
            took, _, report = await one_job(sessionmaker, tenant_id, funnel.id, RunCreate())
        finally:
            await remove_appended(env, tenant_id)
        out["job_after_new_events"] = {**report, "phases": report.get("seconds"),
                                       "seconds": round(took, 3)}  # fmt: skip
        print(f"  {took:.2f} s {report.get('synced')}", flush=True)
        print("job reading PostgreSQL (no columnar copy; the path before) ...", flush=True)
        worker.funnel_cache = False
        took, _, report = await one_job(sessionmaker, tenant_id, funnel.id, RunCreate())
        worker.funnel_cache = True
        out["job_postgresql"] = {**report, "phases": report.get("seconds"),
                                 "seconds": round(took, 3)}  # fmt: skip
        print(f"  {took:.2f} s {report.get('seconds')}", flush=True)
    print("DuckDB ...", flush=True)
    out["duckdb"] = await measure_duckdb(env, tenant_id, args.repeat)
    return out


NEW_EVENTS = 100_000  # about a day of this store's traffic


async def append_events(env: common.Env, tenant_id: uuid.UUID, n: int) -> None:
    """Page views (not funnel steps, so the counts stay comparable) in the funnel's range,
    appended as ingestion appends them (triggers on)."""
    conn = await asyncpg.connect(load_store.owner_dsn(env))
    try:
        await conn.execute(
            "INSERT INTO events (tenant_id, external_id, name, anonymous_id, session_id, "
            "occurred_at, device, channel, properties) SELECT $1, 'bench-new-' || g, "
            "'page_view', 'a-new-' || (g % 5000), 's-new-' || g, "
            "$2::timestamptz - g * interval '1 second', "
            "'mobile', 'web', '{}' FROM generate_series(1, $3::int) g",
            tenant_id, END - timedelta(days=1), n,
        )  # fmt: skip
    finally:
        await conn.close()


async def remove_appended(env: common.Env, tenant_id: uuid.UUID) -> None:
    conn = await asyncpg.connect(load_store.owner_dsn(env))
    try:
        await conn.execute(
            "DELETE FROM events WHERE tenant_id = $1 AND external_id LIKE 'bench-new-%'", tenant_id
        )
        await conn.execute("DELETE FROM event_changes WHERE tenant_id = $1", tenant_id)
    finally:
        await conn.close()


def _key(args: argparse.Namespace) -> str:
    return f"{args.customers}/{args.events}/{args.seed}"


async def _remember(env: common.Env, tenant_id: uuid.UUID, args: argparse.Namespace) -> None:
    await load_store.set_database_note(env, f"{_key(args)} {tenant_id}")


async def _reusable(env: common.Env, args: argparse.Namespace) -> uuid.UUID | None:
    """The tenant of a store this benchmark loaded before with the same sizes and seed."""
    note = await load_store.database_note(env)
    if not note or note.split()[0] != _key(args):
        return None
    return uuid.UUID(note.split()[1])


async def _count(env: common.Env, tenant_id: uuid.UUID) -> int:
    conn = await asyncpg.connect(load_store.owner_dsn(env))
    try:
        return int(
            await conn.fetchval("SELECT count(*) FROM events WHERE tenant_id = $1", tenant_id)
        )
    finally:
        await conn.close()


def report(args: argparse.Namespace, out: dict[str, Any]) -> None:
    rows = []
    for label, job_key in (("plain", "job_plain"), ("by_device", "job_by_device")):
        job, duck = out[job_key], out["duckdb"][label]
        ratio = job["seconds"] / duck["seconds"]
        if label == "plain":
            ours = {"all": [s["entered"] for s in job["result"]["steps"]]}
        else:
            ours = {
                g["value"]: [s["entered"] for s in g["steps"]]
                for g in job["result"]["breakdown"]["groups"]
            }
        same = ours == duck["counts"]
        rows.append({"funnel": f"{label}, warm", "job s": f"{job['seconds']:.2f}",
                     "SQL query s": f"{job['events_query_seconds']:.2f}",
                     "DuckDB s": f"{duck['seconds']:.2f}", "ratio": f"{ratio:.2f}x",
                     "target": f"<= {TARGET_RATIO:.0f}x",
                     "met?": "yes" if ratio <= TARGET_RATIO else "NO",
                     "same counts?": "yes" if same else f"NO {ours} vs {duck['counts']}",
                     })  # fmt: skip
    duck = out["duckdb"]["plain"]["seconds"]
    for label, seconds in (
        ("plain, cold (builds the copy)", out["job_plain"]["first"]["seconds"]),
        (f"plain, after {NEW_EVENTS} new events", out["job_after_new_events"]["seconds"]),
        ("plain, reading PostgreSQL", out["job_postgresql"]["seconds"]),
    ):
        rows.append({"funnel": label, "job s": f"{seconds:.2f}", "SQL query s": "",
                     "DuckDB s": f"{duck:.2f}", "ratio": f"{seconds / duck:.2f}x",
                     "target": "", "met?": "", "same counts?": ""})  # fmt: skip
    print("\n" + common.table(rows, list(rows[0])) + "\n")
    print(f"events {out['events']}, funnel rows {out['job_plain']['funnel_rows']}, "
          f"load {out['load_seconds']} s, DuckDB export {out['duckdb']['export_seconds']} s "
          "(not counted)")  # fmt: skip
    payload = {"benchmark": "funnels", "at": datetime.now(UTC).isoformat(timespec="seconds"),
               "args": vars(args), "machine": load_store.machine(out.pop("commit")),
               "target_ratio": TARGET_RATIO, "table": rows, **out}  # fmt: skip
    print(f"\nwritten to {common.write_results('funnels', payload)}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.funnels",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--customers", type=int, default=100_000, help="customers (100000)")
    parser.add_argument("--events", type=int, default=1_000_000, help="events (1000000)")
    parser.add_argument("--seed", type=int, default=42, help="the same seed, the same data")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of each (3)")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="keep the store a previous run loaded with the same sizes and seed (development)",
    )
    args = parser.parse_args(argv)
    commit = common.git_commit()
    with common.servers() as env:
        out = {**asyncio.run(run(args, env)), "commit": commit}
    report(args, out)


if __name__ == "__main__":
    main()
