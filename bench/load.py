"""Load: signed webhooks and API reads at a fixed rate against a running stack.

`python -m bench load [--duration 60] [--rate 300] [--api-workers 2]` starts the API (several
uvicorn workers) and an arq worker as child processes, like `portrait up`, preloads a few
hundred customers, then sends requests open-loop: request n leaves at start + n / rate
whatever the earlier ones are doing, and its latency counts from that planned time, so a
slow server cannot slow the sender down and hide its own queueing. `--warmup` seconds of the
same load come first and are reported apart (new processes open their database connections
and fill their caches then). Requests are rendered as bytes on keep-alive connections: httpx
would spend a millisecond of CPU a request on the two cores the server needs. The mix: half generic
webhooks (Standard Webhooks signatures: tracked events, customer updates, orders), half
reads (customer list, profile by external id, orders, jobs).

Reported: requests/s achieved, p50/p99/max latency in all and by kind, errors (any answer
other than 2xx, or none within 10 s), and whether every accepted event and customer is in
the database once the worker has drained the inbox. Target: 0 errors and p99 < 200 ms at
300 requests/s. Its own database (`portrait_bench_load`), queue and tenant.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import random
import re
import statistics
import time
import uuid
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
from sqlalchemy.engine import make_url

from bench import common
from shared.embedded import free_port
from shared.ingest.signing import sign_standard

DATABASE = "portrait_bench_load"
TARGET_P99_MS = 200.0
TIMEOUT_S = 10.0
# Requests in flight at most (the connection pool's size). Past it the server is hopelessly
# behind: a request is counted as an error (`backlog`) instead of being sent, so the sender
# stays on schedule and the run ends on time.
MAX_IN_FLIGHT = 256
PRELOADED = 300


async def fresh_database(env: common.Env) -> common.Env:
    """This benchmark's own database, dropped and migrated anew (not `portrait_bench`, so it
    can run beside the other benchmarks)."""
    from shared.db.migrate import create_database_if_missing, upgrade
    from shared.settings import Settings

    url = make_url(env.database_url)
    server = url.set(drivername="postgresql", database="postgres")
    conn = await asyncpg.connect(server.render_as_string(hide_password=False))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
    finally:
        await conn.close()
    own = url.set(database=DATABASE).render_as_string(hide_password=False)
    settings = Settings(DATABASE_URL=own)
    await create_database_if_missing(own, settings)
    await upgrade(settings)
    return dataclasses.replace(env, database_url=own)


def _customer(n: int, **extra: Any) -> dict[str, Any]:
    return {"external_id": f"load-c-{n}", "email": f"load{n}@example.com", "first_name": "An",
            "country": "VN", "created_at": "2026-01-05T09:00:00Z", **extra}  # fmt: skip


@dataclasses.dataclass
class Plan:
    """What the run sends, and what it expects to find in the database afterwards."""

    tenant: dict[str, str]
    run: str = dataclasses.field(default_factory=lambda: uuid.uuid4().hex[:8])
    accepted_events: set[str] = dataclasses.field(default_factory=set)
    updated_customers: dict[str, str] = dataclasses.field(default_factory=dict)
    accepted_orders: set[str] = dataclasses.field(default_factory=set)

    def webhook(self, n: int, rng: random.Random) -> tuple[str, dict[str, Any]]:
        now = datetime.now(UTC)
        roll = rng.random()
        if roll < 0.6:
            data = {"id": f"load-e-{self.run}-{n}", "name": "page_view",
                    "customer_external_id": f"load-c-{rng.randrange(PRELOADED)}",
                    "occurred_at": now.isoformat(), "properties": {"path": f"/p/{n}"}}  # fmt: skip
            return "event", {"type": "event.tracked", "data": data}
        if roll < 0.85:
            data = _customer(rng.randrange(PRELOADED), city=f"City {n}",
                             updated_at=(now + timedelta(microseconds=n)).isoformat())  # fmt: skip
            return "customer", {"type": "customer.updated", "data": data}
        data = {"external_id": f"load-o-{self.run}-{n}",
                "customer_external_id": f"load-c-{rng.randrange(PRELOADED)}", "status": "paid",
                "currency": "USD", "total": "19.90", "placed_at": now.isoformat(),
                "items": [{"product_id": "p-1", "quantity": 1, "unit_price": "19.90"}]}  # fmt: skip
        return "order", {"type": "order.created", "data": data}

    def signed(self, payload: dict[str, Any], n: int) -> tuple[bytes, dict[str, str]]:
        body = json.dumps(payload).encode()
        msg_id, ts = f"msg_load_{self.run}_{n}", int(time.time())
        return body, {
            "content-type": "application/json",
            "webhook-id": msg_id,
            "webhook-timestamp": str(ts),
            "webhook-signature": sign_standard(self.tenant["webhook_secret"], msg_id, ts, body),
        }


def _read(n: int, rng: random.Random) -> tuple[str, str]:
    roll = rng.random()
    if roll < 0.4:
        return "read:profile", f"/v1/customers/ext:load-c-{rng.randrange(PRELOADED)}"
    if roll < 0.7:
        return "read:customers", "/v1/customers?limit=20"
    if roll < 0.9:
        return "read:orders", "/v1/orders?limit=20"
    return "read:jobs", "/v1/jobs?limit=10"


class Connections:
    """Keep-alive HTTP/1.1 connections to the API, each carrying one request at a time: an
    idle one is reused, else a new one is opened. Requests are rendered as bytes and answers
    read by their Content-Length: httpx spends about a millisecond of CPU a request, which on
    two cores shared with the server would be what is measured (see `common.load`)."""

    # uvicorn closes a connection idle for 5 s: one idle longer is not reused, or the request
    # could cross the server's close on the wire (a client artifact, not a server error).
    MAX_IDLE_S = 3.0

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]] = []

    async def exchange(self, request: bytes) -> tuple[int, bytes]:
        while self.idle and self.idle[0][2] < time.monotonic() - self.MAX_IDLE_S:
            self.idle.pop(0)[1].close()  # the oldest idle ones are at the front
        if self.idle:
            reader, writer, _ = self.idle.pop()
        else:
            reader, writer = await asyncio.open_connection(self.host, self.port)
        try:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
            body = await reader.readexactly(int(length.group(1)) if length else 0)
        except BaseException:
            writer.close()
            raise
        self.idle.append((reader, writer, time.monotonic()))
        return int(head[9:12]), body

    def close(self) -> None:
        for _, writer, _ in self.idle:
            writer.close()


def _render(method: str, path: str, headers: dict[str, str], body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "host: 127.0.0.1", f"content-length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def drive(
    connections: Connections,
    plan: Plan,
    rate: float,
    duration: float,
    read_share: float,
    first: int = 0,
) -> dict[str, Any]:
    """Open loop: request n is sent at start + n / rate; latency counts from that moment."""
    rng = random.Random(7)
    hook_path = f"/v1/webhooks/generic/{plan.tenant['tenant_id']}"
    auth = {"authorization": f"Bearer {plan.tenant['api_key']}"}
    latencies: dict[str, list[float]] = defaultdict(list)
    errors: Counter[str] = Counter()
    tasks: set[asyncio.Task[None]] = set()
    timeline: dict[int, list[float]] = defaultdict(list)  # second of the run -> latencies

    async def one(n: int, planned: float) -> None:
        if rng.random() < read_share:
            kind, url = _read(n, rng)
            request = _render("GET", url, auth)
            payload = None
        else:
            what, payload = plan.webhook(n, rng)
            kind = f"webhook:{what}"
            body, headers = plan.signed(payload, n)
            request = _render("POST", hook_path, headers, body)
        try:
            status, answer = await asyncio.wait_for(connections.exchange(request), TIMEOUT_S)
        except Exception as exc:  # any failure to answer is an error of the run
            errors[f"{kind} {type(exc).__name__}"] += 1
            return
        latencies[kind].append(time.perf_counter() - planned)
        timeline[int(planned - start)].append(time.perf_counter() - planned)
        if not 200 <= status < 300:
            errors[f"{kind} {status}"] += 1
            return
        if payload is not None and json.loads(answer).get("outcome") in ("accepted", "applied"):
            data = payload["data"]
            if kind == "webhook:event":
                plan.accepted_events.add(data["id"])
            elif kind == "webhook:customer":
                plan.updated_customers[data["external_id"]] = data["updated_at"]
            else:
                plan.accepted_orders.add(data["external_id"])

    start = time.perf_counter()
    total = int(rate * duration)
    for n in range(total):
        planned = start + n / rate
        delay = planned - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        if len(tasks) >= MAX_IN_FLIGHT:
            errors["backlog (not sent)"] += 1
            continue
        task = asyncio.create_task(one(first + n, planned))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    await asyncio.gather(*tasks)
    took = time.perf_counter() - start
    every = [x for xs in latencies.values() for x in xs]
    return {
        "planned": total,
        "seconds": round(took, 2),
        "requests_per_s": round(total / took, 1),
        "errors": sum(errors.values()),
        "errors_by_kind": dict(errors),
        "all": _summary(every),
        "by_kind": {k: _summary(v) for k, v in sorted(latencies.items())},
        "p99_ms_by_second": [
            round(statistics.quantiles(v, n=100)[98] * 1000, 1) if len(v) > 1 else None
            for _, v in sorted(timeline.items())
        ],
    }


def _summary(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"n": 0}
    cuts = statistics.quantiles(values, n=100) if len(values) > 1 else [values[0]] * 99
    ms = [round(x * 1000, 1) for x in (cuts[49], cuts[98], max(values))]
    return {"n": len(values), "p50_ms": ms[0], "p99_ms": ms[1], "max_ms": ms[2]}


async def check_stored(conn: asyncpg.Connection, plan: Plan) -> dict[str, Any]:
    """Every accepted event, order and customer update is in the database, once, after the
    worker has emptied the inbox."""
    tenant = uuid.UUID(plan.tenant["tenant_id"])
    started = time.perf_counter()
    while await conn.fetchval("SELECT count(*) FROM webhook_inbox WHERE tenant_id = $1", tenant):
        if time.perf_counter() - started > 120:
            break
        await asyncio.sleep(0.2)
    drained = round(time.perf_counter() - started, 2)
    events = await conn.fetch(
        "SELECT external_id, count(*) AS n FROM events WHERE tenant_id = $1 "
        "AND external_id = ANY($2::text[]) GROUP BY external_id",
        tenant,
        list(plan.accepted_events),
    )
    orders = await conn.fetchval(
        "SELECT count(*) FROM orders WHERE tenant_id = $1 AND external_id = ANY($2::text[])",
        tenant,
        list(plan.accepted_orders),
    )
    stale = 0
    for ext, at in plan.updated_customers.items():
        stored = await conn.fetchval(
            "SELECT source_updated_at FROM customers WHERE tenant_id = $1 AND external_id = $2",
            tenant,
            ext,
        )
        if stored is None or stored < datetime.fromisoformat(at):
            stale += 1
    return {
        "inbox_drained_s": drained,
        "events_accepted": len(plan.accepted_events),
        "events_stored": len(events),
        "events_stored_twice": sum(1 for r in events if r["n"] > 1),
        "orders_accepted": len(plan.accepted_orders),
        "orders_stored": orders,
        "customers_updated": len(plan.updated_customers),
        "customers_missing_their_last_update": stale,
    }


async def run(args: argparse.Namespace, env: common.Env) -> dict[str, Any]:
    env = await fresh_database(env)
    queue = f"portrait:bench-load:{uuid.uuid4().hex[:8]}"
    tenant = json.loads(common.run_cli(env, ["tenants", "create", "load"], queue))
    port = free_port()
    api = common.Child(
        env, "api", ["api", "--port", str(port), "--workers", str(args.api_workers)], queue
    )
    worker = common.Child(env, "worker", ["worker"], queue)
    base_url = f"http://127.0.0.1:{port}"
    await common.wait_ready(base_url, api)
    plan = Plan(tenant)
    limits = httpx.Limits(max_connections=MAX_IN_FLIGHT, max_keepalive_connections=MAX_IN_FLIGHT)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=TIMEOUT_S) as client:
        auth = {"authorization": f"Bearer {tenant['api_key']}"}
        for n in range(PRELOADED):
            r = await client.post("/v1/customers", json=_customer(n), headers=auth)
            r.raise_for_status()
        print(
            f"{PRELOADED} customers preloaded; {args.rate:.0f} req/s for {args.duration:.0f} s "
            f"against {args.api_workers} API workers ...",
            flush=True,
        )
    connections = Connections("127.0.0.1", port)
    try:
        # Not counted: the same load for a few seconds first, as a deployed server has had:
        # every API process opens its pool's connections and fills its statement caches.
        warmup = await drive(connections, plan, args.rate, args.warmup, args.read_share)
        meter = common.Meter([api, worker])
        first = int(args.rate * args.warmup)
        result = await drive(
            connections, plan, args.rate, args.duration, args.read_share, first=first
        )
    finally:
        connections.close()
    result["warmup"] = {k: warmup[k] for k in ("planned", "errors", "all")}
    result["cpu"] = meter.done()
    dsn = make_url(env.database_url).set(drivername="postgresql")
    conn = await asyncpg.connect(dsn.render_as_string(hide_password=False))
    try:
        result["stored"] = await check_stored(conn, plan)
    finally:
        await conn.close()
    for child in (api, worker):
        if not child.alive():
            result.setdefault("died", []).append(child.name)
    return result


def report(args: argparse.Namespace, out: dict[str, Any]) -> bool:
    rows = [{"kind": "all", **out["all"]}] + [{"kind": k, **v} for k, v in out["by_kind"].items()]
    print("\n" + common.table(rows, ["kind", "n", "p50_ms", "p99_ms", "max_ms"]) + "\n")
    stored = out["stored"]
    met = (
        out["errors"] == 0
        and out["all"].get("p99_ms", 1e9) < TARGET_P99_MS
        and out["requests_per_s"] >= 0.97 * args.rate
        and stored["events_stored"] == stored["events_accepted"]
        and stored["events_stored_twice"] == 0
        and stored["orders_stored"] == stored["orders_accepted"]
        and stored["customers_missing_their_last_update"] == 0
    )
    print(
        f"{out['requests_per_s']} requests/s over {out['seconds']} s; p50 "
        f"{out['all'].get('p50_ms')} ms, p99 {out['all'].get('p99_ms')} ms; "
        f"errors {out['errors']} {out['errors_by_kind'] or ''}"
    )
    print(f"p99 ms by second of the run: {out['p99_ms_by_second']}")
    print(f"warm-up before it (not counted): {json.dumps(out['warmup'])}")
    print(f"stored: {json.dumps(stored)}")
    print(f"cpu seconds: {json.dumps(out['cpu'])}")
    print(
        f"target (0 errors, p99 < {TARGET_P99_MS:.0f} ms at {args.rate:.0f} req/s, everything "
        f"accepted stored once): {'met' if met else 'NOT met'}"
    )
    return met


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench load",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--duration", type=float, default=60, help="seconds of load (60)")
    parser.add_argument("--rate", type=float, default=300, help="requests per second (300)")
    parser.add_argument("--api-workers", type=int, default=2, help="uvicorn workers (2)")
    parser.add_argument(
        "--warmup", type=float, default=5, help="seconds of the same load first, not counted (5)"
    )
    parser.add_argument("--read-share", type=float, default=0.5, help="share of reads (0.5)")
    args = parser.parse_args(argv)
    commit = common.git_commit()
    common.BENCH_DB = DATABASE  # whose PostgreSQL processes the CPU meter counts
    with common.servers() as env:
        where = f"embedded {', '.join(env.embedded)}" if env.embedded else "given servers"
        print(f"servers: {where}; database {DATABASE}; code {commit}", flush=True)
        out = asyncio.run(run(args, env))
    met = report(args, out)
    payload = {**out, "commit": commit, "args": vars(args), "target_met": met}
    print(f"written to {common.write_results('load', payload)}")


if __name__ == "__main__":
    main()
