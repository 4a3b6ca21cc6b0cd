"""Survey tokens: `pts_<tenant id hex>_<secret>` for single-use invitations (and an anonymous
respondent's resume token), `psl_<tenant id hex>_<secret>` for anonymous links. Like API keys,
a token names its tenant, so its lookup runs under that tenant's row-level security, and only
a SHA-256 digest is stored (the secret is 256 random bits)."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from typing import Literal

from shared.tenants.keys import digest, tenant_of

INVITATION, LINK = "pts_", "psl_"


@dataclass(frozen=True)
class ParsedToken:
    kind: Literal["invitation", "link"]
    tenant_id: uuid.UUID
    digest: bytes


def new_token(tenant_id: uuid.UUID, prefix: str = INVITATION) -> tuple[str, bytes]:
    token = f"{prefix}{tenant_id.hex}_{secrets.token_urlsafe(32)}"
    return token, digest(token)


def parse(token: str) -> ParsedToken | None:
    if len(token) > 200 or token[:4] not in (INVITATION, LINK):
        return None
    tenant_id = tenant_of(token[4:])
    if tenant_id is None:
        return None
    kind: Literal["invitation", "link"] = "invitation" if token[:4] == INVITATION else "link"
    return ParsedToken(kind, tenant_id, digest(token))
