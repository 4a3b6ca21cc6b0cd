"""Plumbing shared by benchmarks: servers, a dedicated database, child processes, CPU use,
and results as a table and a JSON file.

Benchmarks never touch the user's data: they use the servers named by DATABASE_URL and
REDIS_URL (else embedded ones in a temporary directory, removed afterwards; other PORTRAIT_*
URLs are ignored), but always their own database `portrait_bench` on that server (wiped at the
start of a run) and their own queue. Two benchmarks on one server at once would collide.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from sqlalchemy.engine import make_url

from shared import embedded

BENCH_DB = "portrait_bench"
RESULTS = Path(__file__).parent / "results"
_TICK = os.sysconf("SC_CLK_TCK")
_OTHER_URLS = ("PORTRAIT_DATABASE_URL", "PORTRAIT_DATABASE__URL", "PORTRAIT_DATABASE__APP_URL",
               "PORTRAIT_REDIS_URL", "PORTRAIT_REDIS__URL")  # fmt: skip


@dataclass
class Env:
    """Where a run happens: the bench database (as its owner), Redis, and a scratch folder."""

    database_url: str
    redis_url: str
    embedded: list[str]
    scratch: Path
    children: list[Child] = field(default_factory=list)

    def child_env(self, queue: str) -> dict[str, str]:
        return {
            **os.environ,
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis_url,
            "PORTRAIT_WORKER__QUEUE_NAME": queue,
            "PORTRAIT_LOG_LEVEL": "WARNING",  # no log line per request in the measurement
        }


@contextmanager
def servers() -> Iterator[Env]:
    """Yield an Env; embedded servers and child processes are stopped at the end, always."""
    for name in _OTHER_URLS:  # they would win over DATABASE_URL and point at real data
        os.environ.pop(name, None)
    scratch = Path(tempfile.mkdtemp(prefix="portrait-bench-"))
    stops: list[Any] = []
    started: list[str] = []
    env: Env | None = None
    try:
        db = os.environ.get("DATABASE_URL")
        if not db:
            db, handle = embedded.start_postgres(scratch / "pg")
            stops.append(handle.cleanup)
            started.append("postgres")
        redis = os.environ.get("REDIS_URL")
        if not redis:
            server = embedded.EmbeddedRedis(scratch / "redis", persist=False)
            redis = server.start()
            stops.append(server.stop)
            started.append("redis")
        url = make_url(db).set(database=BENCH_DB).render_as_string(hide_password=False)
        _server["postmaster"] = _postmaster(db)
        env = Env(url, redis, started, scratch)
        yield env
    except BaseException:
        for child in env.children if env else []:
            print(f"--- last lines of the {child.name} log:\n{child.tail()}", file=sys.stderr)
        raise
    finally:
        for child in reversed(env.children if env else []):
            child.stop()
        for stop in reversed(stops):
            with suppress(Exception):
                stop()
        shutil.rmtree(scratch, ignore_errors=True)


async def fresh_database(env: Env) -> None:
    """Drop and recreate the bench database, migrated: a run depends on no earlier run, not
    even on the planner statistics an earlier run left (TRUNCATE keeps them)."""
    from shared.db.migrate import create_database_if_missing, upgrade
    from shared.settings import Settings

    server = make_url(env.database_url).set(drivername="postgresql", database="postgres")
    conn = await asyncpg.connect(server.render_as_string(hide_password=False))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)')
    finally:
        await conn.close()
    settings = Settings(DATABASE_URL=env.database_url)
    await create_database_if_missing(env.database_url, settings)
    await upgrade(settings)


class Child:
    """A `portrait` command run as a child process, its output kept in a log file."""

    def __init__(self, env: Env, name: str, args: Sequence[str], queue: str) -> None:
        self.name = name
        self.log = env.scratch / f"{name}.log"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "services.cli", *args],
                env=env.child_env(queue),
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        env.children.append(self)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def tail(self, lines: int = 20) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def last_error(self) -> str | None:
        """The exception line of the last traceback in the child's (JSON lines) log."""
        for line in reversed(self.log.read_text(errors="replace").splitlines()):
            with suppress(ValueError, AttributeError):
                if exc := json.loads(line).get("exc"):
                    found = re.findall(r"^[\w.]+(?:Error|Exception)\b.*$", str(exc), re.M)
                    return (found or [str(exc)])[-1][:500]
        return None

    def stop(self, timeout: float = 30) -> None:
        if not self.alive():
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def cpu(self) -> float:
        """CPU seconds of the child and its own children (uvicorn's worker processes)."""
        return sum(cpu_seconds(pid) for pid in _tree(self.proc.pid))


def _tree(root: int) -> list[int]:
    parents: dict[int, int] = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        with suppress(OSError, IndexError, ValueError):
            stat = Path(f"/proc/{pid}/stat").read_text()
            parents[int(pid)] = int(stat[stat.rfind(")") + 2 :].split()[1])
    found, todo = [root], [root]
    while todo:
        parent = todo.pop()
        kids = [pid for pid, ppid in parents.items() if ppid == parent]
        found += kids
        todo += kids
    return found


def run_cli(env: Env, args: Sequence[str], queue: str, timeout: float = 120) -> str:
    """Run a `portrait` command to its end; return its last line of output."""
    done = subprocess.run(
        [sys.executable, "-m", "services.cli", *args],
        env=env.child_env(queue),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"portrait {' '.join(args)} failed: {done.stderr[-2000:]}")
    return done.stdout.strip().splitlines()[-1]


async def wait_ready(base_url: str, child: Child, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(base_url=base_url, timeout=2) as client:
        while time.monotonic() < deadline:
            if not child.alive():
                raise RuntimeError(f"{child.name} exited early:\n{child.tail()}")
            with suppress(httpx.HTTPError):
                if (await client.get("/readyz")).status_code == 200:
                    return
            await asyncio.sleep(0.2)
    raise RuntimeError(f"{child.name} was not ready in {timeout:.0f} s:\n{child.tail()}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process, from /proc (0 when it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat[stat.rfind(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


_server = {"postmaster": 0}  # the server in use, so that other servers' backends are not counted


def _postmaster(url: str) -> int:
    """The pid of the server's postmaster, when it runs on this machine (else 0)."""

    async def parent_of_backend() -> int:
        dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        conn = await asyncpg.connect(dsn)
        try:
            stat = Path(f"/proc/{await conn.fetchval('SELECT pg_backend_pid()')}/stat").read_text()
            return int(stat[stat.rfind(")") + 2 :].split()[1])
        finally:
            await conn.close()

    with suppress(Exception):
        return asyncio.run(parent_of_backend())
    return 0


def postgres_cpu() -> dict[int, float]:
    """CPU time of each PostgreSQL process working for the bench database on the server in use
    (its backends and autovacuum workers; the server's shared processes are left out). A
    process that ends takes its time with it: compare two readings with `cpu_delta`."""
    found = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        with suppress(OSError, IndexError, ValueError):
            title = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].split()
            if title[:1] != [b"postgres:"] or BENCH_DB.encode() not in title:
                continue
            stat = Path(f"/proc/{pid}/stat").read_text()
            parent = int(stat[stat.rfind(")") + 2 :].split()[1])
            if parent == _server["postmaster"] or not _server["postmaster"]:
                found[int(pid)] = cpu_seconds(int(pid))
    return found


def cpu_delta(before: dict[int, float], after: dict[int, float]) -> float:
    return sum(max(t - before.get(pid, 0.0), 0.0) for pid, t in after.items())


class Meter:
    """Wall time and CPU seconds over a stretch of work: each child, PostgreSQL (the bench
    database's processes), this process (`client`), and `others`: everything else busy on the
    machine meanwhile, which on a shared machine is the noise to read the figures against."""

    def __init__(self, children: list[Child]) -> None:
        self.children, self.pg = children, postgres_cpu()
        self.start = self._now()

    def _now(self) -> dict[str, float]:
        now = {c.name: c.cpu() for c in self.children}
        return {**now, "client": time.process_time(), "wall": time.perf_counter(),
                "machine": machine_busy()}  # fmt: skip

    def done(self) -> dict[str, float]:
        end, pg = self._now(), cpu_delta(self.pg, postgres_cpu())
        spent = {k: round(end[k] - self.start[k], 2) for k in end}
        ours = sum(v for k, v in spent.items() if k not in ("wall", "machine")) + pg
        others = max(spent["machine"] - ours, 0.0)
        return {**spent, "postgres": round(pg, 2), "others": round(others, 2)}


def machine_busy() -> float:
    """CPU seconds the whole machine has spent busy (all cores, not idle or waiting on I/O)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq = fields[:7]  # guest time is in user
    return (user + nice + system + irq + softirq) / _TICK


async def attempt(way: Callable[[], Awaitable[dict[str, Any]]], *children: Child) -> dict[str, Any]:
    """Run one measured step; a failure is a result too (its table says so), and the other
    steps still run. The children's last logged exceptions say why."""
    try:
        return await way()
    except Exception as exc:
        logs = {c.name: err for c in children if (err := c.last_error())}
        return {"rows": 0, "seconds": 0.0, "failed": f"{exc!r}"[:500], "logs": logs}


async def load(
    host: str,
    port: int,
    request: Callable[[int], bytes],
    classify: Callable[[int, bytes], str],
    clients: int,
    seconds: float,
) -> tuple[list[float], Counter[str]]:
    """A light HTTP/1.1 load generator: `clients` keep-alive connections, each sending the
    rendered `request(n)` (n counts across them) and reading the answer, for `seconds`.
    httpx spends about a millisecond of CPU a request, which on two cores would cap what is
    measured; this spends a tenth of that. Returns latencies, and answers by `classify`."""
    numbers, stop = itertools.count(), time.perf_counter() + seconds
    latencies: list[float] = []
    answers: Counter[str] = Counter()

    async def exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sent = time.perf_counter()
        writer.write(request(next(numbers)))
        head = await reader.readuntil(b"\r\n\r\n")
        length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
        body = await reader.readexactly(int(length.group(1)) if length else 0)
        latencies.append(time.perf_counter() - sent)
        answers[classify(int(head[9:12]), body)] += 1

    async def client() -> None:
        while time.perf_counter() < stop:  # (re)connect, then send until the time is up
            try:
                reader, writer = await asyncio.open_connection(host, port)
            except OSError as exc:
                answers[type(exc).__name__] += 1
                await asyncio.sleep(0.1)
                continue
            try:
                while time.perf_counter() < stop:
                    await asyncio.wait_for(exchange(reader, writer), timeout=30)
            except (OSError, asyncio.IncompleteReadError, TimeoutError) as exc:
                answers[type(exc).__name__] += 1
            finally:
                writer.close()

    await asyncio.gather(*(client() for _ in range(clients)))
    return latencies, answers


def line_batches(path: Path, size: int) -> Iterator[list[bytes]]:
    with path.open("rb") as f:
        while lines := list(itertools.islice(f, size)):
            yield lines


async def file_range(path: Path, lo: int, hi: int) -> AsyncIterator[bytes]:
    with path.open("rb") as f:
        f.seek(lo)
        while lo < hi:
            chunk = f.read(min(1 << 20, hi - lo))
            lo += len(chunk)
            yield chunk


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    cells = [[str(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.rjust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)


def git_commit() -> str:
    """The commit measured, with `+dirty` when the work tree has changes."""
    git = ["git", "-C", str(Path(__file__).parent)]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run([*git, "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True)  # fmt: skip
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def write_results(name: str, payload: dict[str, Any]) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    return path
