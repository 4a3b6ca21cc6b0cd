"""Real API and worker processes for tests that need them (schemathesis over HTTP, faults):
started with the test session's environment, waited for with a bound, stopped by pid."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from shared.embedded import free_port

ROOT = Path(__file__).resolve().parent.parent


def portrait_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment a child process gets: this process's (the session's settings are in
    os.environ) plus `extra`."""
    env = dict(os.environ)
    env.setdefault("PORTRAIT_LOG_JSON", "false")
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


@dataclass
class Process:
    """One `python -m services.cli ...` child; its output goes to a file a failure can show."""

    args: list[str]
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False)

    def start(self) -> Process:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "services.cli", *self.args],
            env=self.env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def kill9(self) -> None:
        """SIGKILL to the whole process group: no shutdown code runs anywhere in it."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self, timeout: float = 20.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:]


def start_api(
    log_dir: Path, env: Mapping[str, str] | None = None, *, workers: int = 1, timeout: float = 30
) -> tuple[Process, str]:
    """An API process on a free port; returns it and its base URL once /healthz answers."""
    port = free_port()
    process = Process(
        ["api", "--port", str(port), "--workers", str(workers)],
        portrait_env(env),
        log_dir / f"api-{port}.log",
    ).start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return process, url
        except httpx.HTTPError:
            pass
        assert process.proc is not None
        if process.proc.poll() is not None or time.monotonic() > deadline:
            process.stop()
            raise AssertionError(f"the API did not start:\n{process.output()}")
        time.sleep(0.1)


def start_worker(log_dir: Path, env: Mapping[str, str] | None = None) -> Process:
    name = f"worker-{time.monotonic_ns()}.log"
    return Process(["worker"], portrait_env(env), log_dir / name).start()
