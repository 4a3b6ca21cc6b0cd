"""Ingest throughput: the same generated events loaded three ways, and signed webhooks.

`python -m bench.ingest [--customers N] [--seed S] [--seconds T]`, or `make bench`.

- Data: a seeded demo store (`shared.ingest.demo`): customers and ~11 events each, some of
  them anonymous only. Customers are COPYed in once, untimed. Before each way the events and
  identities tables are emptied and a CHECKPOINT taken, so every way loads the same rows
  from the same start; the state it leaves (events, events tied to a customer, identities)
  is checked against COPY's.
- COPY, the baseline and the floor: asyncpg `copy_records_to_table` into `events` and
  `identities`, as the owner. Rows are fully prepared beforehand, untimed: customer ids
  resolved and anonymous sessions stitched in Python. Only the COPY calls are timed, and no
  customer facts are refreshed, which the API does.
- Batch events: `POST /v1/events`, 1,000 events a request, from a few concurrent keep-alive
  clients to ONE API process (`portrait api`). Rows/s counts events the API accepted.
- Import: the same events as an NDJSON upload (`POST /v1/imports?kind=events`, in parts under
  1 GiB) run by one `portrait worker`, timed from the upload's start to the job's `succeeded`.
- Webhooks: single signed `event.tracked` deliveries (Standard Webhooks, a distinct event and
  webhook-id each; a seeded random draw, so deliveries in flight together come from different
  visitors) from many clients for `--seconds` to the same API process. Rate: answers
  `applied` or `accepted`; then `inbox_drained_s`, the time the worker took to apply the
  accepted ones, and `stored`, the webhook events in the table.

Targets (the issue): batch events >= 25% of COPY's rows/s, imports >= 50%, webhooks >= 500/s.
CPU seconds of the API, the worker, PostgreSQL and this client are kept per way, to show which
one limits, and of everything else on the machine (`others`: on a shared two-core machine, the
noise to read the figures against). Prints a table; writes bench/results/ingest-<time>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import statistics
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from sqlalchemy.engine import make_url

from bench import common
from shared.db.base import new_id
from shared.embedded import free_port
from shared.ingest.demo import DemoConfig, DemoStore, generate, iter_events
from shared.ingest.signing import sign_standard

EVENT_COLUMNS = ("tenant_id", "external_id", "name", "customer_id", "anonymous_id",
                 "session_id", "occurred_at", "device", "channel", "properties")  # fmt: skip
TARGETS = {"events": 0.25, "import": 0.50}
WEBHOOK_TARGET = 500.0
JSON = {"content-type": "application/json"}
PART_BYTES = 1 << 30  # an import part stays under the API's 2 GiB upload limit
CHUNK = 50_000  # rows a COPY call, so a million-customer store streams with flat memory
STORED_HOOKS = "SELECT count(*) FROM events WHERE tenant_id = $1 AND external_id LIKE 'wh-%'"


@dataclass
class Data:
    path: Path  # every event, one JSON object a line, in the generator's order
    rows: int
    parts: list[tuple[int, int]]  # byte ranges of the file, one import each
    customers: dict[str, uuid.UUID]  # external id -> id
    links: dict[str, str]  # anonymous id -> customer external id (the first seen wins)
    sample: list[dict[str, Any]]  # events re-sent as webhooks: a seeded draw, shuffled


async def prepare(
    conn: asyncpg.Connection, tenant: uuid.UUID, store: DemoStore, path: Path
) -> Data:
    """COPY the customers in (untimed), and write the events file with what COPY needs."""
    names = ("external_id", "email", "first_name", "last_name", "country", "city",
             "created_at", "updated_at")  # fmt: skip
    customers: dict[str, uuid.UUID] = {}
    for lo in range(0, store.customers.n_rows, CHUNK):
        cols = store.customers.rows(lo, lo + CHUNK, names)
        text = [cols[n].astype("U").tolist() for n in names[:6]]
        times = [[t.replace(tzinfo=UTC) for t in cols[n].tolist()] for n in names[6:]]
        records = []
        for row in zip(*text, *times, strict=True):
            customers[row[0]] = cid = new_id()
            records.append((tenant, cid, *row, "{}", "{}"))
        columns = ("tenant_id", "id", *names, "traits", "fact_sources")
        await conn.copy_records_to_table("customers", records=records, columns=columns)
    await conn.execute("ANALYZE customers")
    data = Data(path, 0, [], customers, {}, [])
    rng = random.Random(store.config.seed)  # webhooks from many visitors at once, as in a store
    picked = set(rng.sample(range(store.events.n_rows), min(store.events.n_rows, 10_000)))
    start = pos = 0
    with path.open("wb") as f:
        for ev in iter_events(store):
            line = json.dumps(ev, separators=(",", ":")).encode() + b"\n"
            if pos + len(line) - start > PART_BYTES:
                data.parts.append((start, pos))
                start = pos
            f.write(line)
            pos += len(line)
            data.rows += 1
            if ev["customer_external_id"] and ev["anonymous_id"]:
                data.links.setdefault(ev["anonymous_id"], ev["customer_external_id"])
            if data.rows - 1 in picked:
                data.sample.append(ev)
    data.parts.append((start, pos))
    rng.shuffle(data.sample)
    return data


async def reset(conn: asyncpg.Connection) -> int:
    """Empty the tables a way loads, and write out what the last way left in the buffers
    (CHECKPOINT): each way starts with none of the previous one's writing to do, and far
    from the next checkpoint the server's WAL size would force (one in the middle of a
    way took it up to a fifth longer). The planner then knows `events` only by the
    statistics of its last analysis (if any) until autovacuum analyzes it again; the ingest
    plans depend on that, so each way records how often it was analyzed meanwhile
    (`events_analyzed`)."""
    await conn.execute("TRUNCATE events, identities")
    await conn.execute("VACUUM ANALYZE customers")
    try:
        await conn.execute("CHECKPOINT")
    except asyncpg.InsufficientPrivilegeError:  # a role without pg_checkpoint: go on without
        print("note: no CHECKPOINT between ways (the role may not); figures vary more")
    return await analyzed(conn)


async def analyzed(conn: asyncpg.Connection) -> int:
    return await conn.fetchval(
        "SELECT autoanalyze_count + analyze_count FROM pg_stat_user_tables WHERE relname = 'events'"
    )


async def state(conn: asyncpg.Connection, tenant: uuid.UUID) -> list[int]:
    row = await conn.fetchrow(
        "SELECT (SELECT count(*) FROM events WHERE tenant_id = $1),"
        " (SELECT count(customer_id) FROM events WHERE tenant_id = $1),"
        " (SELECT count(*) FROM identities WHERE tenant_id = $1)",
        tenant,
    )
    return list(row)


async def way_copy(conn: asyncpg.Connection, tenant: uuid.UUID, data: Data) -> dict[str, Any]:
    ids, links = data.customers, data.links
    took = 0.0
    for lines in common.line_batches(data.path, CHUNK):
        records = []
        for e in map(json.loads, lines):
            ext = e["customer_external_id"] or links.get(e["anonymous_id"])
            at = datetime.fromisoformat(e["occurred_at"])
            records.append((tenant, e["id"], e["name"], ids[ext] if ext else None,
                            e["anonymous_id"], e["session_id"], at, e["device"], e["channel"],
                            json.dumps(e["properties"])))  # fmt: skip
        started = time.perf_counter()
        await conn.copy_records_to_table("events", records=records, columns=EVENT_COLUMNS)
        took += time.perf_counter() - started
    records = [(tenant, a, ids[c]) for a, c in links.items()]
    started = time.perf_counter()
    await conn.copy_records_to_table(
        "identities", records=records, columns=("tenant_id", "anonymous_id", "customer_id")
    )
    took += time.perf_counter() - started
    return {"rows": data.rows, "seconds": took}


async def way_events(
    client: httpx.AsyncClient, data: Data, batch: int, clients: int
) -> dict[str, Any]:
    bodies = (
        b'{"events":[' + b",".join(line.rstrip(b"\n") for line in lines) + b"]}"
        for lines in common.line_batches(data.path, batch)
    )
    accepted, failed = 0, 0
    errors: Counter[str] = Counter()

    async def send() -> None:
        nonlocal accepted, failed
        for body in bodies:  # shared: each body goes to one client
            for attempt in range(4):  # a client retries a refused batch: it is idempotent
                try:
                    r = await client.post("/v1/events", content=body, headers=JSON)
                    if r.status_code == 202:
                        accepted += r.json()["accepted"]
                        break
                    errors[str(r.status_code)] += 1
                except httpx.HTTPError as exc:
                    errors[type(exc).__name__] += 1
                await asyncio.sleep(0.5 * (attempt + 1))
            else:
                failed += 1

    started = time.perf_counter()
    await asyncio.gather(*(send() for _ in range(clients)))
    took = time.perf_counter() - started
    return {"rows": accepted, "seconds": took, "errors": dict(errors), "batches_lost": failed}


async def way_import(client: httpx.AsyncClient, data: Data) -> dict[str, Any]:
    started = time.perf_counter()
    jobs = []
    for lo, hi in data.parts:
        headers = {"content-type": "application/x-ndjson", "content-length": str(hi - lo)}
        r = await client.post(
            "/v1/imports?kind=events", content=common.file_range(data.path, lo, hi), headers=headers
        )
        if r.status_code != 202:
            raise RuntimeError(f"import upload refused: {r.status_code} {r.text[:500]}")
        jobs.append(r.json()["job_id"])
    uploaded = time.perf_counter() - started
    deadline = time.monotonic() + 120 + data.rows / 200  # bounded: even at 200 rows/s
    results = []
    for job_id in jobs:
        while (job := (await client.get(f"/v1/jobs/{job_id}")).json())["status"] != "succeeded":
            if job["status"] in ("failed", "cancelled") or time.monotonic() > deadline:
                raise RuntimeError(
                    f"import {job['status']} at {job['progress']:.0%}: {job['error']}"
                )
            # Seen within 25 ms of the finish, without a poll every 25 ms all along (the
            # API answering them would take CPU from the import).
            await asyncio.sleep(0.025 if job["progress"] >= 0.98 else 0.25)
        results.append(job["result"])
    took = time.perf_counter() - started
    rows, rejected = (sum(r[k] for r in results) for k in ("imported", "rejected"))
    return {"rows": rows, "seconds": took, "upload_seconds": round(uploaded, 2),
            "jobs": len(jobs), "rejected": rejected}  # fmt: skip


async def way_webhooks(
    port: int, tenant: dict[str, str], data: Data, seconds: float, clients: int
) -> dict[str, Any]:
    secret, run = tenant["webhook_secret"], uuid.uuid4().hex[:8]
    head = f"POST /v1/webhooks/generic/{tenant['tenant_id']} HTTP/1.1\r\nHost: 127.0.0.1\r\n"

    def delivery(n: int) -> bytes:
        event = {**data.sample[n % len(data.sample)], "id": f"wh-{run}-{n}"}
        body = json.dumps({"type": "event.tracked", "data": event}).encode()
        msg_id, ts = f"msg_bench_{run}_{n}", int(time.time())
        return (f"{head}content-type: application/json\r\ncontent-length: {len(body)}\r\n"
                f"webhook-id: {msg_id}\r\nwebhook-timestamp: {ts}\r\n"
                f"webhook-signature: {sign_standard(secret, msg_id, ts, body)}\r\n\r\n"
                ).encode() + body  # fmt: skip

    def outcome(status: int, body: bytes) -> str:
        return f"{status} {json.loads(body).get('outcome') if status == 200 else body[:80]!r}"

    started = time.perf_counter()
    latencies, answers = await common.load("127.0.0.1", port, delivery, outcome, clients, seconds)
    took = time.perf_counter() - started
    ok = answers.pop("200 'applied'", 0) + answers.pop("200 'accepted'", 0)
    cuts = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    return {"rows": ok, "seconds": took, "errors": dict(answers), "clients": clients,
            "p50_ms": round(cuts[49] * 1000, 1), "p99_ms": round(cuts[98] * 1000, 1)}  # fmt: skip


async def inbox_drained(conn: asyncpg.Connection, tenant: uuid.UUID) -> float | None:
    """Seconds until the worker has applied every accepted webhook (the inbox is empty): 0
    where deliveries are applied by the API itself, None if not within five minutes."""
    if not await conn.fetchval("SELECT to_regclass('webhook_inbox') IS NOT NULL"):
        return 0.0
    started = time.perf_counter()
    while time.perf_counter() - started < 300:
        if not await conn.fetchval(
            "SELECT count(*) FROM webhook_inbox WHERE tenant_id = $1", tenant
        ):
            return round(time.perf_counter() - started, 2)
        await asyncio.sleep(0.1)
    return None


async def run(args: argparse.Namespace, env: common.Env, store: DemoStore) -> dict[str, Any]:
    queue = f"portrait:bench:{os.getpid()}"
    await common.fresh_database(env)
    dsn = make_url(env.database_url).set(drivername="postgresql")
    conn = await asyncpg.connect(dsn.render_as_string(hide_password=False))
    try:
        tenant = json.loads(common.run_cli(env, ["tenants", "create", "bench"], queue))
        tenant_id = uuid.UUID(tenant["tenant_id"])
        data = await prepare(conn, tenant_id, store, env.scratch / "events.ndjson")
        print(f"{data.rows} events ready ({data.path.stat().st_size >> 20} MiB NDJSON)")
        ways: dict[str, dict[str, Any]] = {}
        await reset(conn)
        meter = common.Meter([])
        ways["copy"] = {**await way_copy(conn, tenant_id, data), "cpu": meter.done()}
        ways["copy"]["state"] = await state(conn, tenant_id)
        port = free_port()
        api = common.Child(env, "api", ["api", "--port", str(port)], queue)
        worker = common.Child(env, "worker", ["worker"], queue)
        base_url = f"http://127.0.0.1:{port}"
        await common.wait_ready(base_url, api)
        auth = {"authorization": f"Bearer {tenant['api_key']}"}
        limits = httpx.Limits(max_connections=args.clients, max_keepalive_connections=args.clients)
        async with httpx.AsyncClient(
            base_url=base_url, headers=auth, limits=limits, timeout=600
        ) as client:
            todo = {"events": partial(way_events, client, data, args.batch, args.clients),
                    "import": partial(way_import, client, data)}  # fmt: skip
            for name, way in todo.items():
                if name not in args.ways:
                    continue
                before = await reset(conn)
                print(f"loading {data.rows} events: {name} ...", flush=True)
                meter = common.Meter([api, worker])
                ways[name] = {**await common.attempt(way, api, worker), "cpu": meter.done()}
                ways[name]["state"] = await state(conn, tenant_id)
                ways[name]["events_analyzed"] = await analyzed(conn) - before
                if ways[name].get("errors"):
                    ways[name]["logs"] = {c.name: e for c in (api, worker) if (e := c.last_error())}
        if "webhooks" in args.ways:
            print(f"webhooks for {args.seconds:.0f} s ...", flush=True)
            meter = common.Meter([api, worker])
            hooks = partial(way_webhooks, port, tenant, data, args.seconds, args.webhook_clients)
            ways["webhooks"] = w = await common.attempt(hooks, api, worker)
            w["inbox_drained_s"] = await inbox_drained(conn, tenant_id)
            w["cpu"], w["stored"] = meter.done(), await conn.fetchval(STORED_HOOKS, tenant_id)
        server = await conn.fetchval("SHOW server_version")
    finally:
        await conn.close()
    return {"ways": ways, "postgres": server}


def report(
    args: argparse.Namespace, env: common.Env, store: DemoStore, out: dict[str, Any]
) -> None:
    ways, rows = out["ways"], []
    floor = ways["copy"]["rows"] / max(ways["copy"]["seconds"], 1e-9)
    for name, w in ways.items():
        rate = w["rows"] / w["seconds"] if w["seconds"] else 0.0
        if name == "copy":
            target, met = "baseline", None
        elif name == "webhooks":
            target, met = f">= {WEBHOOK_TARGET:.0f}/s", rate >= WEBHOOK_TARGET
        else:
            target, met = f">= {TARGETS[name]:.0%} of COPY", rate >= TARGETS[name] * floor
        w.update(rows_per_s=round(rate), ratio_to_copy=round(rate / floor, 3), target=target)
        w["met"], state = met, w.get("state", ways["copy"]["state"])
        w["same_state_as_copy"] = state == ways["copy"]["state"]
        rows.append({"way": name, "rows": w["rows"], "seconds": f"{w['seconds']:.2f}",
                     "rows/s": f"{rate:,.0f}", "vs COPY": f"{rate / floor:.1%}", "target": target,
                     "met?": {True: "yes", False: "NO"}.get(met, "-")})  # fmt: skip
    print("\n" + common.table(rows, list(rows[0])) + "\n")
    details = ("errors", "batches_lost", "rejected", "upload_seconds", "p50_ms", "p99_ms",
               "inbox_drained_s", "stored", "state", "events_analyzed", "failed",
               "logs")  # fmt: skip
    for name, w in ways.items():
        cpu = ", ".join(f"{k} {v:.1f}" for k, v in w["cpu"].items() if k not in ("wall", "machine"))
        extra = json.dumps({k: w[k] for k in details if k in w})
        differs = "" if w["same_state_as_copy"] else "  STATE DIFFERS FROM COPY"
        print(f"{name}: cpu s ({cpu}); {extra}{differs}")
    machine = {"cpus": os.cpu_count(), "python": platform.python_version(),
               "load_avg": os.getloadavg(), "commit": out["commit"]}  # fmt: skip
    payload = {"benchmark": "ingest", "at": datetime.now(UTC).isoformat(timespec="seconds"),
               "args": vars(args), "sizes": store.sizes, "machine": machine, "ways": ways,
               "servers": {"embedded": env.embedded, "postgres": out["postgres"]}}  # fmt: skip
    print(f"\nwritten to {common.write_results('ingest', payload)}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.ingest",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--customers", type=int, default=20_000, help="store size (20000)")
    parser.add_argument("--seed", type=int, default=42, help="the same seed, the same data")
    parser.add_argument("--seconds", type=float, default=15, help="webhook run length (15)")
    parser.add_argument("--batch", type=int, default=1000, help="events a POST (1000)")
    parser.add_argument("--clients", type=int, default=4, help="concurrent batch posters (4)")
    parser.add_argument(
        "--ways",
        type=lambda v: v.split(","),
        default=["events", "import", "webhooks"],
        help="ways to run besides COPY, comma-separated (events,import,webhooks)",
    )
    parser.add_argument("--webhook-clients", type=int, default=24, help="concurrent senders")
    args = parser.parse_args(argv)
    if not 1 <= args.customers <= 1_000_000 or not 1 <= args.batch <= 1000:
        parser.error("need 1 <= --customers <= 1000000 and 1 <= --batch <= 1000")
    started, commit = time.perf_counter(), common.git_commit()  # the code as the run starts
    store = generate(DemoConfig(n_customers=args.customers, seed=args.seed))
    print(f"store (seed {args.seed}): {store.sizes} in {time.perf_counter() - started:.1f} s")
    with common.servers() as env:
        where = f"embedded {', '.join(env.embedded)}" if env.embedded else "given servers"
        print(f"servers: {where}; database {common.BENCH_DB}; code {commit}")
        out = {**asyncio.run(run(args, env, store)), "commit": commit}
    report(args, env, store, out)


if __name__ == "__main__":
    main()
