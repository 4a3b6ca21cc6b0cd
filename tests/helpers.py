"""Small helpers tests share: auth headers, bounded polling, a burst worker run."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from arq import Worker


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def run_burst(make: Callable[..., Worker], **overrides: Any) -> Worker:
    """Run a real arq worker until the queue is empty, then close it."""
    worker = make(burst=True, **overrides)
    try:
        await asyncio.wait_for(worker.main(), timeout=60)
    finally:
        await worker.close()
    return worker


async def poll(
    check: Callable[[], Awaitable[Any]], *, timeout: float = 20.0, every: float = 0.05
) -> Any:
    """Wait for `check()` to return something truthy, bounded; fail loudly otherwise."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await check()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last: {value!r})")
        await asyncio.sleep(every)
