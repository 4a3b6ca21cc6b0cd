"""API key format: `ptk_<tenant id hex>_<secret>`. The key names its tenant, so the lookup runs
under that tenant's row-level security like every other query; only a SHA-256 digest of the
whole key is stored (the secret is 256 random bits, so a slow hash adds nothing)."""

from __future__ import annotations

import base64
import hashlib
import secrets
import uuid
from dataclasses import dataclass

PREFIX = "ptk_"


@dataclass(frozen=True)
class ParsedKey:
    tenant_id: uuid.UUID
    digest: bytes


def new_key(tenant_id: uuid.UUID) -> tuple[str, str]:
    """Returns (the full key, shown once; its visible prefix, kept to recognise it)."""
    secret = secrets.token_urlsafe(32)
    key = f"{PREFIX}{tenant_id.hex}_{secret}"
    return key, f"{PREFIX}{secret[:8]}"


def digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def tenant_of(body: str) -> uuid.UUID | None:
    """The tenant a credential names: `body` is what follows its prefix, `<tenant hex>_<secret>`
    (API keys here, survey tokens in `shared.surveys.tokens`)."""
    tenant_hex, sep, secret = body.partition("_")
    if not sep or len(tenant_hex) != 32 or not secret:
        return None
    try:
        return uuid.UUID(hex=tenant_hex)
    except ValueError:
        return None


def parse(key: str) -> ParsedKey | None:
    if not key.startswith(PREFIX) or len(key) > 200:
        return None
    tenant_id = tenant_of(key[len(PREFIX) :])
    return None if tenant_id is None else ParsedKey(tenant_id, digest(key))


def new_webhook_secret() -> str:
    """Standard Webhooks style: `whsec_` and base64 of 32 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
