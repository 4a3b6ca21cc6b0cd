"""Tenant and key shapes."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


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
    # This key's own requests-per-minute limit; None means the configured default.
    rate_limit_per_minute: int | None = None

    def allows(self, scope: Scope) -> bool:
        return scope in self.scopes


class ApiKeyCreate(BaseModel):
    name: str = Field(min_length=1, max_length=200, pattern=r"^[^\x00]*$")
    scopes: list[Scope] = Field(min_length=1, max_length=3)
    rate_limit_per_minute: int | None = Field(
        default=None, ge=1, le=1_000_000, description="Default: the server's setting."
    )


class ApiKeyRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    prefix: str
    scopes: list[Scope]
    rate_limit_per_minute: int | None
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyRead):
    key: str = Field(description="The full key: shown only now, Portrait keeps a hash.")


class WebhookSecretRotated(BaseModel):
    webhook_secret: str = Field(description="The new secret: shown only now.")
    previous_valid_until: datetime = Field(
        description="Until then deliveries signed with the previous secret are accepted too."
    )
