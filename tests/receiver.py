"""A real HTTP receiver for outbound webhooks, served by uvicorn on a free local port inside
the test's event loop. It checks each delivery's Standard Webhooks signature, records what it
got, and can be told to fail its first N requests (or all of them)."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from shared.ingest.signing import InvalidSignature, verify_standard


@dataclass
class Receiver:
    secret: str = ""
    fail_first: int = 0
    always_fail: bool = False
    requests: int = 0
    bad_signatures: int = 0
    received: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: Request) -> Response:
        self.requests += 1
        body = await request.body()
        try:
            msg_id = verify_standard([self.secret], request.headers, body, now=time.time())
        except InvalidSignature:
            self.bad_signatures += 1
            return Response(status_code=401)
        if self.always_fail or self.requests <= self.fail_first:
            return Response("boom", status_code=500)
        self.received.append({"id": msg_id, **json.loads(body)})
        return Response(status_code=204)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@asynccontextmanager
async def serve(receiver: Receiver) -> AsyncIterator[Receiver]:
    port = _free_port()
    app = Starlette(routes=[Route("/hook", receiver.handle, methods=["POST"])])
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    receiver.url = f"http://127.0.0.1:{port}/hook"
    try:
        yield receiver
    finally:
        server.should_exit = True
        await task
