"""Work that must commit with a route's own writes but needs the finished answer: the stored
reply of an idempotent create, the audit entry of a change.

FastAPI builds the response (body serialised) before it leaves the function-scoped
dependencies, so the request's unit of work is still open when the route handler returns: a
hook's writes commit, or roll back, together with the route's. Routers opt in with
`APIRouter(route_class=Route)`; a hook registered on a route without it fails loudly.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any

from fastapi import Request, Response, params
from fastapi.routing import APIRoute

Hook = Callable[[Response], Awaitable[None]]

# Responses a dependency can give, added to the OpenAPI entry of every route that uses it.
_DEPENDENCY_RESPONSES: dict[Callable[..., Any], dict[int | str, dict[str, Any]]] = {}


def declare_responses(
    dependency: Callable[..., Any], responses: dict[int | str, dict[str, Any]]
) -> None:
    _DEPENDENCY_RESPONSES[dependency] = responses


def before_commit(request: Request, hook: Hook) -> None:
    """Run `hook(response)` after the route answered successfully (< 400), before commit."""
    if not getattr(request.state, "hooks_installed", False):
        raise RuntimeError("this route's router needs `route_class=Route` (services/api/hooks)")
    hooks: list[Hook] = request.state.before_commit
    hooks.append(hook)


class ShortCircuit(Exception):
    """Raised by a dependency to answer with `response` without running the route."""

    def __init__(self, response: Response) -> None:
        super().__init__("short circuit")
        self.response = response


class Route(APIRoute):
    def __init__(
        self,
        path: str,
        endpoint: Callable[..., Any],
        *,
        dependencies: Sequence[params.Depends] | None = None,
        responses: dict[int | str, dict[str, Any]] | None = None,
        **kwargs: Any,
    ) -> None:
        merged = dict(responses or {})
        for dep in dependencies or ():
            for code, entry in _DEPENDENCY_RESPONSES.get(dep.dependency, {}).items():  # type: ignore[arg-type]
                merged.setdefault(code, entry)
        super().__init__(path, endpoint, dependencies=dependencies, responses=merged, **kwargs)

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def app(request: Request) -> Response:
            request.state.hooks_installed = True
            request.state.before_commit = []
            try:
                response = await handler(request)
            except ShortCircuit as exc:
                return exc.response
            if response.status_code < 400:
                for hook in request.state.before_commit:
                    await hook(response)
            return response

        return app
