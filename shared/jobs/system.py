"""`system.selftest`: a job that exercises the machinery itself (progress, cancel, retries,
failure), so ops and the test suite can check a worker end to end without touching data."""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import BaseModel, Field

from shared.errors import InvalidInput
from shared.jobs.runner import JobKind, JobRun, Retryable


class SelftestParams(BaseModel):
    steps: int = Field(default=3, ge=1, le=1000)
    step_s: float = Field(default=0.0, ge=0, le=5)
    fail: bool = False
    transient_failures: int = Field(default=0, ge=0, le=10)


async def selftest(run: JobRun) -> dict[str, Any]:
    p = SelftestParams.model_validate(run.params)
    if run.attempt <= p.transient_failures:
        raise Retryable(f"planned transient failure {run.attempt} of {p.transient_failures}")
    for step in range(p.steps):
        if p.step_s:
            await asyncio.sleep(p.step_s)
        await run.report((step + 1) / p.steps)
    if p.fail:
        raise InvalidInput("planned failure")
    return {"steps": p.steps, "attempt": run.attempt}


SELFTEST = JobKind("system.selftest", selftest, timeout_s=120, max_tries=5)
