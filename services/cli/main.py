"""`portrait up | api | worker | migrate | tenants create SLUG | demo`.

`up` is the zero set-up path: with no DATABASE_URL / REDIS_URL it starts embedded PostgreSQL
and Redis with their data under PORTRAIT_DATA_DIR (default ./.portrait), migrates, then runs
the API and the worker as child processes, restarting either if it dies.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shared.settings import Settings, get_settings


def _settings() -> Settings:
    get_settings.cache_clear()
    return get_settings()


@dataclass
class Servers:
    """Embedded servers this process started (or joined); kept alive while referenced."""

    handles: list[Any] = field(default_factory=list)
    redis: Any = None

    def stop(self) -> None:
        if self.redis is not None:
            self.redis.stop()


def ensure_servers(*, redis: bool) -> Servers:
    """Fill DATABASE_URL (and REDIS_URL) with embedded servers when they are not given."""
    from shared import embedded

    servers = Servers()
    data_dir = Path(os.environ.get("PORTRAIT_DATA_DIR", ".portrait")).resolve()
    if not os.environ.get("DATABASE_URL"):
        url, handle = embedded.start_postgres(data_dir / "postgres")
        servers.handles.append(handle)
        os.environ["DATABASE_URL"] = url
    if redis and not os.environ.get("REDIS_URL"):
        servers.redis = embedded.EmbeddedRedis(data_dir / "redis")
        os.environ["REDIS_URL"] = servers.redis.start()
    return servers


def cmd_migrate(_: argparse.Namespace) -> None:
    from shared.db.migrate import upgrade

    servers = ensure_servers(redis=False)
    asyncio.run(upgrade(_settings()))
    print("database migrated to head", file=sys.stderr)
    del servers


def cmd_tenants_create(args: argparse.Namespace) -> None:
    from shared.db.engine import make_engine, make_sessionmaker, owner_url, unit_of_work
    from shared.db.migrate import upgrade
    from shared.errors import DomainError
    from shared.tenants import service as tenants
    from shared.tenants.schemas import TenantCreate

    servers = ensure_servers(redis=False)
    settings = _settings()
    try:
        data = TenantCreate(slug=args.slug, name=args.name)
    except ValueError:
        sys.exit("portrait: a slug is 2-63 lowercase letters, digits and dashes")

    async def create() -> dict[str, str]:
        await upgrade(settings)
        engine = make_engine(owner_url(settings), settings, pool_size=1)
        try:
            async with unit_of_work(make_sessionmaker(engine)) as session:
                created = await tenants.create(session, data)
        finally:
            await engine.dispose()
        return created.model_dump(mode="json")

    try:
        result = asyncio.run(create())
    except DomainError as exc:
        sys.exit(f"portrait: {exc.detail}")
    print("Tenant created. Keep the API key and webhook secret: they are shown only now.")
    print(json.dumps(result))
    del servers


def cmd_demo(args: argparse.Namespace) -> None:
    """Create a tenant (as the owner, like `tenants create`) and load a generated store into it
    as the app role, so the load runs under row-level security exactly as ingest does."""
    from shared.db.engine import app_url, make_engine, make_sessionmaker, owner_url, unit_of_work
    from shared.db.migrate import upgrade
    from shared.errors import DomainError
    from shared.ingest import demo_loader
    from shared.ingest.demo import DemoConfig, DemoStore, generate
    from shared.tenants import service as tenants
    from shared.tenants.schemas import TenantCreate

    if args.customers < 1:
        sys.exit("portrait: --customers must be at least 1")
    try:
        data = TenantCreate(slug=args.slug, name=f"Demo store (seed {args.seed})")
    except ValueError:
        sys.exit("portrait: a slug is 2-63 lowercase letters, digits and dashes")
    servers = ensure_servers(redis=False)
    settings = _settings()
    shown: dict[str, int] = {}
    clock = {"since": time.monotonic()}

    def report(kind: str, done: int, total: int) -> None:
        """A line per tenth of each kind, and its rate when it is done."""
        tenth = done * 10 // max(total, 1)
        if done < total and tenth <= shown.get(kind, 0):
            return
        shown[kind] = tenth
        line = f"  {kind}: {done}/{total}"
        if done == total:
            now = time.monotonic()
            took, clock["since"] = now - clock["since"], now
            line += f" in {took:.1f} s ({done / max(took, 1e-9):.0f}/s)"
        print(line, flush=True)

    async def create() -> dict[str, str]:
        await upgrade(settings)
        engine = make_engine(owner_url(settings), settings, pool_size=1)
        try:
            async with unit_of_work(make_sessionmaker(engine)) as session:
                created = await tenants.create(session, data)
        finally:
            await engine.dispose()
        return created.model_dump(mode="json")

    async def load(tenant_id: str, store: DemoStore) -> dict[str, int]:
        engine = make_engine(app_url(settings), settings, pool_size=1)
        try:
            return await demo_loader.load(
                make_sessionmaker(engine), tenant_id, store, progress=report
            )
        finally:
            await engine.dispose()

    try:
        result = asyncio.run(create())
    except DomainError as exc:
        sys.exit(f"portrait: {exc.detail} Pick another with --slug.")
    print(f"Tenant {args.slug!r} created.", flush=True)
    try:
        store = generate(DemoConfig(n_customers=args.customers, seed=args.seed))
        sizes = store.sizes
        print(
            f"Loading a demo store (seed {args.seed}): {sizes['customers']} customers, "
            f"{sizes['orders']} orders, {sizes['events']} events.",
            flush=True,
        )
        started = clock["since"] = time.monotonic()
        counts = asyncio.run(load(result["tenant_id"], store))
    except (Exception, KeyboardInterrupt) as exc:
        # The tenant exists, so its key must not be lost: show it with the failure.
        print(json.dumps(result))
        sys.exit(
            f"portrait: loading the demo store into {args.slug!r} stopped "
            f"({type(exc).__name__}: {exc}); the tenant keeps what was loaded, and its key is "
            "the JSON line above."
        )
    print(
        f"Loaded {counts['customers']} customers, {counts['orders']} orders "
        f"({counts['order_items']} items) and {counts['events']} events "
        f"in {time.monotonic() - started:.1f} s.",
        flush=True,
    )
    print("Keep the API key and webhook secret: they are shown only now.")
    print(json.dumps(result))
    del servers


def cmd_api(args: argparse.Namespace) -> None:
    import uvicorn

    uvicorn.run(
        "services.api.app:app_from_env",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=20,
    )


def cmd_worker(args: argparse.Namespace) -> None:
    from services.worker.main import check_health, run_worker

    if args.check:
        sys.exit(0 if asyncio.run(check_health(_settings())) else 1)
    run_worker()


def cmd_up(args: argparse.Namespace) -> None:
    from shared.db.migrate import upgrade

    servers = ensure_servers(redis=True)
    asyncio.run(upgrade(_settings()))
    python = sys.executable
    commands = {
        "api": [python, "-m", "services.cli", "api", "--host", args.host, "--port", str(args.port)],
        "worker": [python, "-m", "services.cli", "worker"],
    }
    children: dict[str, subprocess.Popen[bytes]] = {
        name: subprocess.Popen(cmd) for name, cmd in commands.items()
    }
    url = f"http://{args.host}:{args.port}"
    print(
        f"\nPortrait is starting on {url} (API docs: {url}/docs)\n"
        f"Create a store and its API key in another terminal:\n"
        f"    {Path(python).parent / 'portrait'} tenants create my-store\n",
        flush=True,
    )
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        while not stopping:
            time.sleep(0.5)
            for name, child in children.items():
                if child.poll() is not None and not stopping:
                    print(f"portrait: {name} exited ({child.returncode}); restarting", flush=True)
                    time.sleep(1)
                    children[name] = subprocess.Popen(commands[name])
    finally:
        for child in children.values():
            child.send_signal(signal.SIGTERM)
        for child in children.values():
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.kill()
        servers.stop()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="portrait", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="start everything for local use")
    up.add_argument("--host", default="127.0.0.1")
    up.add_argument("--port", type=int, default=8000)
    up.set_defaults(func=cmd_up)

    api = sub.add_parser("api", help="run the HTTP API")
    api.add_argument("--host", default="127.0.0.1")
    api.add_argument("--port", type=int, default=8000)
    api.add_argument("--workers", type=int, default=1)
    api.set_defaults(func=cmd_api)

    worker = sub.add_parser("worker", help="run the arq worker")
    worker.add_argument(
        "--check", action="store_true", help="exit 0 if a worker reported in the last minute"
    )
    worker.set_defaults(func=cmd_worker)
    sub.add_parser("migrate", help="upgrade the database to head").set_defaults(func=cmd_migrate)

    tenants = sub.add_parser("tenants", help="manage tenants").add_subparsers(
        dest="tenants_command", required=True
    )
    create = tenants.add_parser("create", help="create a tenant; prints its key as JSON")
    create.add_argument("slug")
    create.add_argument("--name")
    create.set_defaults(func=cmd_tenants_create)

    demo = sub.add_parser("demo", help="create a tenant holding a realistic demo store")
    demo.add_argument(
        "--customers", type=int, default=2000, help="customers to generate (default 2000)"
    )
    demo.add_argument("--seed", type=int, default=42, help="the same seed, the same store")
    demo.add_argument("--slug", default="demo", help="the new tenant's slug (default demo)")
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    args.func(args)
