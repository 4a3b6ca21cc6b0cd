"""Tenant and key shapes."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import StrEnum

from pydantic import BaseModel, Field


class Scope(StrEnum):
    read = "read"
    write = "write"
    admin = "admin"


# A scope grants the ones below it: admin can write, write can read.
IMPLIED = {
    Scope.read: {Scope.read},
    Scope.write: {Scope.read, Scope.write},
    Scope.admin: {Scope.read, Scope.write, Scope.admin},
}

SLUG_PATTERN = r"^[a-z0-9][a-z0-9-]{1,62}$"


class TenantCreate(BaseModel):
    slug: str = Field(pattern=SLUG_PATTERN)
    name: str | None = Field(default=None, max_length=200)


class TenantCreated(BaseModel):
    tenant_id: uuid.UUID
    api_key: str
    webhook_secret: str


@dataclass(frozen=True)
class Principal:
    """Who is calling: one key of one tenant, with its granted scopes expanded."""

    tenant_id: uuid.UUID
    key_id: uuid.UUID
    scopes: frozenset[Scope]

    def allows(self, scope: Scope) -> bool:
        return scope in self.scopes
