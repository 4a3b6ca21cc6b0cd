"""Customer value at scale: the `analytics.customer_value` job end to end on a generated store,
and its feature step against a hand-written GROUP BY and DuckDB, in the same run.

`python -m bench.customer_value [--customers N] [--seed S] [--repeat R]`; the issue's size is
`python -m bench.customer_value --customers 1000000` (~11.6M orders; loading takes ~10 min).

- Data: a seeded demo store (`shared.ingest.demo`), COPYed in by `bench.load_store` with the
  customers' behaviour facts filled, then VACUUM ANALYZE. The job reads orders as of the
  store's fixed end date, so every run sees the same data.
- Feature step: `shared.analytics.features.load` as the job runs it: the app role under
  row-level security, the tenant set, the worker's engine options (statement timeout, custom
  plans). Best of `--repeat` runs; also the execution time of `FEATURES_SQL` on the server
  alone (EXPLAIN ANALYZE, timing off), so the hand-over's share (transfer, decoding, arrays)
  shows.
- Hand-written GROUP BY, the floor for data that lives in PostgreSQL: per buyer recency,
  frequency (distinct purchase days) and monetary over purchase orders, in the simplest SQL,
  on the same connection, fetched with asyncpg `fetch` (a row per buyer) then numpy arrays;
  its server time and bare `fetch` time too.
- DuckDB in memory (2 threads): the same three features, and the app's own feature SQL
  (time zone casts dropped: DuckDB holds UTC timestamps), over the same orders and customers
  exported once from PostgreSQL (export time reported apart, not counted).
- Whole job: one `portrait api` and one `portrait worker`; `POST /v1/analyses/customer-value`,
  then `GET /v1/jobs/{id}` every 0.1 s (bounded), keeping the progress values seen; time from
  the POST to `succeeded`; the worker's peak resident memory (VmHWM); CPU seconds of the
  worker and PostgreSQL. The follow-up segment refreshes the job queues are waited for and
  reported apart. Every customer must have a `customer_values` row afterwards.

Targets (the issue): feature step within 2x of the hand-written query; the whole job under
180 s on this 2-core machine; the worker's peak memory under 4 GB. Prints a table; writes
the same to bench/results/customer_value-<time>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import asyncpg
import duckdb
import httpx
import numpy as np

from bench import common, load_store
from shared.analytics import features
from shared.db.engine import set_tenant
from shared.embedded import free_port
from shared.ingest.demo import DemoConfig, DemoStore, generate

TARGETS = {"feature_ratio": 2.0, "job_seconds": 180.0, "peak_mib": 4096.0}
PURCHASE = "('placed', 'paid', 'fulfilled')"

# The floor: the three RFM features in the simplest SQL, for buyers only.
HAND_SQL = f"""
SELECT customer_id,
       $2::date - max((placed_at AT TIME ZONE 'UTC')::date) AS recency_days,
       count(DISTINCT (placed_at AT TIME ZONE 'UTC')::date) AS frequency,
       sum(total)::float8 AS monetary
FROM orders
WHERE tenant_id = $1 AND customer_id IS NOT NULL AND placed_at <= $2 AND status IN {PURCHASE}
GROUP BY customer_id
"""
DUCK_RFM = f"""
SELECT customer_id,
       $2::date - max(placed_at::date) AS recency_days,
       count(DISTINCT placed_at::date) AS frequency,
       sum(total)::double AS monetary
FROM orders
WHERE tenant_id = $1 AND customer_id IS NOT NULL AND placed_at <= $2 AND status IN {PURCHASE}
GROUP BY customer_id
"""
# The app's feature SQL as DuckDB reads it: its timestamps are already UTC, without a zone.
DUCK_APP = (
    features.FEATURES_SQL.replace("(placed_at AT TIME ZONE 'UTC')::date", "placed_at::date")
    .replace("($2::timestamptz AT TIME ZONE 'UTC')::date", "$2::date")
    .replace("(c.created_at AT TIME ZONE 'UTC')::date", "c.created_at::date")
)


def _rfm_arrays(rows: list[Any]) -> dict[str, np.ndarray]:
    n = len(rows)
    return {
        "recency_days": np.fromiter((r[1] for r in rows), np.int64, n),
        "frequency": np.fromiter((r[2] for r in rows), np.int64, n),
        "monetary": np.fromiter((r[3] for r in rows), np.float64, n),
    }


def _check(buyers: int, frequency: int, monetary: float) -> dict[str, Any]:
    """What every way must agree on: buyers, purchase days, money spent."""
    return {"buyers": int(buyers), "purchase_days": int(frequency),
            "spent": round(float(monetary), 2)}  # fmt: skip


def _rows_and_check(out: Any) -> tuple[int, dict[str, Any]]:
    if isinstance(out, features.Features):
        buyers = out.purchase_days > 0
        return len(out), _check(buyers.sum(), out.purchase_days.sum(), out.spent.sum())
    rows = len(out["frequency"])
    return rows, _check(rows, out["frequency"].sum(), out["monetary"].sum())


async def _in_turns(
    fns: dict[str, Callable[[], Awaitable[Any]]],
    repeat: int,
    reset: Callable[[], Awaitable[None]],
) -> tuple[dict[str, list[float]], dict[str, Any], dict[str, str]]:
    """`repeat` rounds running each way once in turn (a burst of load elsewhere on the machine
    hits every way alike): times, last outputs, and the ways dropped for a timeout."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    outs: dict[str, Any] = {}
    failed: dict[str, str] = {}
    for _ in range(repeat):
        for name, fn in fns.items():
            if name in failed:
                continue
            try:
                started = time.perf_counter()
                outs[name] = await fn()
                times[name].append(round(time.perf_counter() - started, 3))
            except (asyncpg.QueryCanceledError, TimeoutError) as exc:
                failed[name] = f"{exc!r}"[:300]
                await reset()
    return times, outs, failed


async def _timed(fn: Callable[[], Awaitable[Any]], repeat: int) -> tuple[list[float], Any]:
    times, out = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        out = await fn()
        times.append(round(time.perf_counter() - started, 3))
    return times, out


async def measure_sql(
    settings: Any, tenant_id: uuid.UUID, as_of: datetime, repeat: int
) -> dict[str, Any]:
    """The feature step and the hand-written GROUP BY, in turns, on one app connection."""
    ways: dict[str, Any] = {}
    async with (
        load_store.app_sessions(settings, worker=True) as sessions,
        load_store.tenant_session(sessions, tenant_id) as session,
    ):
        raw = await load_store.raw_connection(session)

        async def app() -> Any:
            return await features.load(session, tenant_id, as_of)

        async def hand() -> Any:
            return _rfm_arrays(await raw.fetch(HAND_SQL, tenant_id, as_of))

        plans: dict[str, Any] = {}

        async def server(sql: str) -> float:
            """Execution time on the server alone (no transfer, no decoding)."""
            plan = await raw.fetchval(
                f"EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON) {sql}", tenant_id, as_of
            )
            # SQLAlchemy's asyncpg connections decode json already; a bare one gives text.
            plans[sql] = plan = (json.loads(plan) if isinstance(plan, str) else plan)[0]
            return float(plan["Execution Time"]) / 1000

        async def fetch(sql: str) -> Any:
            return await raw.fetch(sql, tenant_id, as_of)

        async def reset() -> None:  # after a statement timeout the transaction is aborted
            nonlocal raw
            await session.rollback()
            await set_tenant(session, tenant_id)
            raw = await load_store.raw_connection(session)

        todo = {"features": (app, features.FEATURES_SQL), "hand_written": (hand, HAND_SQL)}
        times, outs, failed = await _in_turns({k: v[0] for k, v in todo.items()}, repeat, reset)
        ways.update({name: {"failed": why, "seconds": None} for name, why in failed.items()})
        for name, (_fn, sql) in todo.items():
            if name in ways:
                continue
            runs = max(1, repeat - 1)
            server_times = [await server(sql) for _ in range(runs)]
            fetch_times: list[float] = []
            if name == "hand_written":  # the feature step's own hand-over is in `seconds`
                fetch_times, _ = await _timed(lambda sql=sql: fetch(sql), runs)  # type: ignore[misc]
            rows, check = _rows_and_check(outs[name])
            plan = plans[sql]
            ways[name] = {"seconds": min(times[name]), "runs": times[name], "rows": rows,
                          "server_seconds": round(min(server_times), 3),
                          "fetch_seconds": min(fetch_times, default=None), "check": check,
                          "jit": plan.get("JIT", {}).get("Timing")}  # fmt: skip
            # Where the server's time goes, node by node (one run with timing on).
            text = await raw.fetch(f"EXPLAIN (ANALYZE, BUFFERS) {sql}", tenant_id, as_of)
            ways[name]["plan"] = [r[0] for r in text]
        # The statement the step really sends, when it wraps FEATURES_SQL (arrays, one row).
        wrapped = getattr(features, "_ARRAYS_SQL", None)
        if "seconds" in ways.get("features", {}) and wrapped:
            ways["features"]["server_seconds_as_sent"] = round(await server(wrapped), 3)
    return ways


async def measure_duckdb(
    env: common.Env, tenant_id: uuid.UUID, as_of: datetime, repeat: int
) -> dict[str, Any]:
    """Export orders and customers once (timed apart), then the features in DuckDB."""
    started = time.perf_counter()
    folder = env.scratch / "duck"
    folder.mkdir(exist_ok=True)
    conn = await asyncpg.connect(load_store.owner_dsn(env))
    try:
        exports = {
            "orders": "SELECT tenant_id, customer_id, status, total, "
            "placed_at AT TIME ZONE 'UTC' FROM orders WHERE tenant_id = $1",
            "customers": "SELECT tenant_id, id, created_at AT TIME ZONE 'UTC', referral_count "
            "FROM customers WHERE tenant_id = $1",
        }
        for name, sql in exports.items():
            await conn.copy_from_query(sql, tenant_id, output=folder / f"{name}.csv", format="csv")
    finally:
        await conn.close()
    exported = time.perf_counter() - started
    duck = duckdb.connect(config={"threads": os.cpu_count() or 2})
    started = time.perf_counter()
    duck.execute(
        f"CREATE TABLE orders AS SELECT * FROM read_csv('{folder / 'orders.csv'}', header=false, "
        "columns={'tenant_id': 'UUID', 'customer_id': 'UUID', 'status': 'VARCHAR', "
        "'total': 'DECIMAL(18,2)', 'placed_at': 'TIMESTAMP'})"
    )
    duck.execute(
        f"CREATE TABLE customers AS SELECT * FROM read_csv('{folder / 'customers.csv'}', "
        "header=false, columns={'tenant_id': 'UUID', 'id': 'UUID', 'created_at': 'TIMESTAMP', "
        "'referral_count': 'INTEGER'})"
    )
    read = time.perf_counter() - started
    for path in folder.iterdir():
        path.unlink()
    as_of_naive = as_of.replace(tzinfo=None)
    ways: dict[str, Any] = {}
    for name, sql in (("duckdb_rfm", DUCK_RFM), ("duckdb_app_sql", DUCK_APP)):
        times = []
        for _ in range(repeat):
            started = time.perf_counter()
            out = duck.execute(sql, [tenant_id, as_of_naive]).fetchnumpy()
            times.append(round(time.perf_counter() - started, 3))
        if name == "duckdb_rfm":
            check = _check(len(out["frequency"]), out["frequency"].sum(), out["monetary"].sum())
        else:
            days = np.asarray(out["purchase_days"])
            check = _check((days > 0).sum(), days.sum(), np.asarray(out["spent"]).sum())
        ways[name] = {"seconds": min(times), "runs": times, "rows": len(next(iter(out.values()))),
                      "check": check}  # fmt: skip
    duck.close()
    ways["duckdb_rfm"].update(export_seconds=round(exported, 2), load_seconds=round(read, 2))
    return ways


async def measure_job(
    env: common.Env,
    tenant: dict[str, str],
    as_of: datetime,
    queue: str,
    timeout: float,
) -> dict[str, Any]:
    """The job through a real API and worker, polled until it ends."""
    port = free_port()
    api = common.Child(env, "api", ["api", "--port", str(port)], queue)
    worker = common.Child(env, "worker", ["worker"], queue)
    base_url = f"http://127.0.0.1:{port}"
    await common.wait_ready(base_url, api)
    await asyncio.sleep(1.0)  # the worker's start-up (imports, pool) is not the job's time
    idle_mib = load_store.rss_mb(worker.proc.pid)
    auth = {"authorization": f"Bearer {tenant['api_key']}"}
    seen: list[dict[str, Any]] = []
    rss_max = 0.0
    meter = common.Meter([worker])
    async with httpx.AsyncClient(base_url=base_url, headers=auth, timeout=60) as client:
        started = time.perf_counter()
        r = await client.post("/v1/analyses/customer-value", json={"as_of": as_of.isoformat()})
        if r.status_code != 202:
            raise RuntimeError(f"customer-value refused: {r.status_code} {r.text[:300]}")
        job_id = r.json()["job_id"]
        deadline = time.monotonic() + timeout
        while True:
            job = (await client.get(f"/v1/jobs/{job_id}")).json()
            now = round(time.perf_counter() - started, 2)
            if not seen or (seen[-1]["status"], seen[-1]["progress"]) != (
                job["status"],
                job["progress"],
            ):
                seen.append({"at_s": now, "status": job["status"], "progress": job["progress"]})
            rss_max = max(rss_max, load_store.rss_mb(worker.proc.pid) or 0.0)
            if job["status"] in ("succeeded", "failed", "cancelled"):
                break
            if time.monotonic() > deadline or not worker.alive():
                raise RuntimeError(
                    f"job {job['status']} at {job['progress']:.0%} after {now:.0f} s; "
                    f"worker alive: {worker.alive()}; {worker.last_error()}"
                )
            await asyncio.sleep(0.1)
        took = time.perf_counter() - started
        cpu = meter.done()
        peak = load_store.peak_rss_mb(worker.proc.pid)
        out: dict[str, Any] = {
            "status": job["status"],
            "seconds": round(took, 2),
            "job_row_seconds": _span(job["started_at"], job["finished_at"]),
            "queued_seconds": _span(job["created_at"], job["started_at"]),
            "progress_seen": seen,
            "worker_idle_mib": round(idle_mib or 0, 1),
            "worker_rss_max_sampled_mib": round(rss_max, 1),
            "worker_peak_mib": round(peak or 0, 1),
            "cpu": cpu,
            "error": job["error"] or worker.last_error(),
        }
        if job["status"] == "succeeded":
            result = job["result"]
            out["result"] = {k: result[k] for k in ("customers", "total_predicted_clv")}
            out["models_usable"] = {k: v.get("usable") for k, v in result["models"].items()}
            out["follow_up"] = await _follow_ups(env, tenant, deadline=time.monotonic() + 300)
    api.stop()
    worker.stop()
    return out


def _span(a: str | None, b: str | None) -> float | None:
    if not a or not b:
        return None
    return round((datetime.fromisoformat(b) - datetime.fromisoformat(a)).total_seconds(), 2)


async def _follow_ups(env: common.Env, tenant: dict[str, str], deadline: float) -> dict[str, Any]:
    """The segment refreshes the job queued (built-in segments): wait, then their times."""
    conn = await asyncpg.connect(load_store.owner_dsn(env))
    sql = ("SELECT status, extract(epoch FROM finished_at - started_at) AS s FROM jobs "
           "WHERE tenant_id = $1 AND kind = 'segments.refresh'")  # fmt: skip
    try:
        while True:
            rows = await conn.fetch(sql, uuid.UUID(tenant["tenant_id"]))
            if all(r["status"] in ("succeeded", "failed", "cancelled") for r in rows):
                break
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        values = await conn.fetchval(
            "SELECT count(*) FROM customer_values WHERE tenant_id = $1",
            uuid.UUID(tenant["tenant_id"]),
        )
    finally:
        await conn.close()
    return {
        "customer_values_rows": values,
        "refresh_jobs": [
            {"status": r["status"], "seconds": round(float(r["s"]), 2) if r["s"] else None}
            for r in rows
        ],
    }


async def run(args: argparse.Namespace, env: common.Env, store: DemoStore) -> dict[str, Any]:
    queue = f"portrait:bench:{os.getpid()}"
    settings = await load_store.fresh_database(env)
    tenant = load_store.create_tenant(env, queue)
    tenant_id = uuid.UUID(tenant["tenant_id"])
    print(f"loading {store.sizes} ...", flush=True)
    loaded = await load_store.load(load_store.owner_dsn(env), tenant_id, store)
    as_of = store.config.end
    conn = await asyncpg.connect(load_store.owner_dsn(env))
    try:
        server = await load_store.server_settings(conn)
    finally:
        await conn.close()
    print(f"feature step and hand-written GROUP BY, {args.repeat} runs each ...", flush=True)
    ways = await measure_sql(settings, tenant_id, as_of, args.repeat)
    print("DuckDB ...", flush=True)
    ways.update(await measure_duckdb(env, tenant_id, as_of, args.repeat))
    print("the whole job through the API and a worker ...", flush=True)
    try:
        job = await measure_job(env, tenant, as_of, queue, args.timeout)
    except Exception as exc:
        job = {"status": "error", "seconds": None, "error": f"{exc!r}"[:1000]}
    return {"ways": ways, "job": job, "load": loaded, "postgres": server}


def report(
    args: argparse.Namespace, env: common.Env, sizes: dict[str, int], out: dict[str, Any]
) -> None:
    ways, job = out["ways"], out["job"]
    floor = ways.get("hand_written", {}).get("seconds")
    rows = []
    for name, w in ways.items():
        s = w.get("seconds")
        ratio = s / floor if s and floor else None
        w["ratio_to_hand_written"] = round(ratio, 2) if ratio else None
        target, met = "-", None
        if name == "features":
            target, met = (
                f"<= {TARGETS['feature_ratio']:.0f}x hand-written",
                (ratio is not None and ratio <= TARGETS["feature_ratio"]),
            )
        elif name == "hand_written":
            target = "baseline"
        rows.append({"what": name, "seconds": "failed" if s is None else f"{s:.2f}",
                     "server s": w.get("server_seconds", "-"),
                     "fetch s": w.get("fetch_seconds") or "-", "rows": w.get("rows", "-"),
                     "vs hand-written": f"{ratio:.2f}x" if ratio else "-", "target": target,
                     "met?": {True: "yes", False: "NO"}.get(met, "-")})  # fmt: skip
    js = job.get("seconds")
    ok = job.get("status") == "succeeded"
    rows.append({"what": "whole job", "seconds": f"{js:.2f}" if js else job.get("status"),
                 "server s": "-", "fetch s": "-",
                 "rows": (job.get("result") or {}).get("customers", "-"),
                 "vs hand-written": f"{js / floor:.1f}x" if js and floor else "-",
                 "target": f"< {TARGETS['job_seconds']:.0f} s",
                 "met?": "yes" if ok and js < TARGETS["job_seconds"] else "NO"})  # fmt: skip
    peak = job.get("worker_peak_mib")
    rows.append({"what": "worker peak memory", "seconds": f"{peak:.0f} MiB" if peak else "-",
                 "server s": "-", "fetch s": "-", "rows": "-", "vs hand-written": "-",
                 "target": f"< {TARGETS['peak_mib']:.0f} MiB",
                 "met?": "yes" if peak and peak < TARGETS["peak_mib"] else "NO"})  # fmt: skip
    print("\n" + common.table(rows, list(rows[0])) + "\n")
    for name, w in ways.items():
        print(
            f"{name}: runs {w.get('runs')} check {w.get('check')} jit {w.get('jit')} "
            f"{w.get('failed', '')}"
        )
    duck = ways.get("duckdb_rfm", {})
    print(f"duckdb export (not counted): {duck.get('export_seconds')} s from PostgreSQL, "
          f"{duck.get('load_seconds')} s into DuckDB")  # fmt: skip
    for name in ("features", "hand_written"):
        plan = ways.get(name, {}).get("plan") or []
        print(f"{name} plan:\n  " + "\n  ".join(line for line in plan if "Buffers" not in line))
    print(f"job progress seen: {job.get('progress_seen')}")
    extra = {k: job.get(k) for k in ("job_row_seconds", "queued_seconds", "worker_idle_mib",
                                     "cpu", "models_usable", "follow_up", "error")}  # fmt: skip
    print(f"job: {extra}")
    print(f"load: {out['load']}; postgres: {out['postgres']}")
    payload = {"benchmark": "customer_value", "at": datetime.now().astimezone().isoformat(),
               "args": vars(args), "sizes": sizes, "machine": load_store.machine(out["commit"]),
               "targets": TARGETS, "ways": ways, "job": job, "load": out["load"],
               "servers": {"embedded": env.embedded, "postgres": out["postgres"]}}  # fmt: skip
    print(f"\nwritten to {common.write_results('customer_value', payload)}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.customer_value",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--customers", type=int, default=200_000, help="store size (200000)")
    parser.add_argument("--seed", type=int, default=42, help="the same seed, the same data")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each query (3)")
    parser.add_argument("--timeout", type=float, default=900, help="give up on the job after")
    args = parser.parse_args(argv)
    if not 1_000 <= args.customers <= 1_000_000 or args.repeat < 1:
        parser.error("need 1000 <= --customers <= 1000000 and --repeat >= 1")
    started, commit = time.perf_counter(), common.git_commit()
    store = generate(DemoConfig(n_customers=args.customers, seed=args.seed))
    sizes = store.sizes
    print(f"store (seed {args.seed}): {sizes} in {time.perf_counter() - started:.1f} s")
    with common.servers() as env:
        where = f"embedded {', '.join(env.embedded)}" if env.embedded else "given servers"
        print(f"servers: {where}; database {common.BENCH_DB}; code {commit}")
        out = {**asyncio.run(run(args, env, store)), "commit": commit}
    report(args, env, sizes, out)


if __name__ == "__main__":
    main()
