"""Every successful change through the API leaves one audit entry, written in the change's own
transaction: the key that made it, an action named after the route (`segments.create`,
`customers.delete`, `segments.refresh`), the object's id and the request id.

Declared on a route as `dependencies=[Audited]`; tests/test_audit.py checks that every route
that changes something declares it (or is listed there as exempt, with the reason).
"""

from __future__ import annotations

import json
import uuid
from typing import Annotated, Any

from fastapi import Depends, Request, Response
from fastapi.routing import APIRoute

from services.api.deps import SessionDep, get_principal
from services.api.hooks import before_commit
from shared.audit import service as audit
from shared.logging import request_id_var
from shared.tenants.schemas import Principal

_VERBS = {"POST": "create", "PUT": "update", "PATCH": "update", "DELETE": "delete"}


def describe(method: str, template: str) -> tuple[str, str]:
    """(object type, action) for a route template: `/v1/segments/{segment_id}/refresh` is
    (`segments`, `segments.refresh`); `/v1/segments` with POST is `segments.create`."""
    parts = [p for p in template.split("/") if p and p != "v1"]
    object_type = parts[0] if parts else "unknown"
    last = parts[-1] if parts else ""
    if len(parts) <= 1 or last.startswith("{"):
        verb = _VERBS.get(method, method.lower())
    else:
        verb = last
    return object_type, f"{object_type}.{verb}"


def _uuid_or_none(value: Any) -> str | None:
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        return None


def _object_id(request: Request, response: Response, noted: str | None) -> str | None:
    if noted:
        return noted
    for value in request.path_params.values():
        found = _uuid_or_none(value)
        if found:
            return found
    body = getattr(response, "body", b"")
    if not body or "json" not in response.headers.get("content-type", ""):
        return None
    try:
        data = json.loads(bytes(body))
    except ValueError:
        return None
    if isinstance(data, dict):
        for candidate in (data, *[v for v in data.values() if isinstance(v, dict)]):
            for name in ("id", "job_id"):
                found = _uuid_or_none(candidate.get(name)) if name in candidate else None
                if found:
                    return found
    return None


async def audited(
    request: Request,
    session: SessionDep,
    principal: Annotated[Principal, Depends(get_principal)],
) -> None:
    draft = audit.start()

    async def write(response: Response) -> None:
        route = request.scope.get("route")
        template = route.path if isinstance(route, APIRoute) else request.url.path
        object_type, action = describe(request.method, template)
        await audit.record(
            session,
            principal.tenant_id,
            key_id=principal.key_id,
            action=action,
            object_type=object_type,
            object_id=_object_id(request, response, draft.object_id),
            method=request.method,
            route=template,
            status=response.status_code,
            request_id=request_id_var.get() or None,
        )

    before_commit(request, write)


Audited = Depends(audited)
