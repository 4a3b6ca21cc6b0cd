"""Webhook signatures: Standard Webhooks (generic deliveries) and Shopify's HMAC header.

Pure functions over bytes and header mappings, so the router, the tests and the benchmark
all exercise the same code. Every failure raises one exception type; its ``reason`` is for
logs only, and the HTTP layer must answer every failure (and an unknown tenant) the same way.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets as _secrets
from collections.abc import Mapping, Sequence
from typing import Literal

__all__ = [
    "InvalidSignature",
    "Reason",
    "SECRET_PREFIX",
    "new_webhook_secret",
    "sign_shopify",
    "sign_standard",
    "verify_shopify",
    "verify_standard",
]

SECRET_PREFIX = "whsec_"
DEFAULT_TOLERANCE_S = 300

Reason = Literal[
    "missing_headers",
    "invalid_timestamp",
    "timestamp_too_old",
    "timestamp_too_new",
    "no_matching_signature",
]

# Generous bounds that no honest sender reaches; they keep a hostile header cheap to reject.
_MAX_TIMESTAMP_DIGITS = 15
_MAX_SIGNATURE_HEADER = 8192


class InvalidSignature(Exception):
    """A delivery that cannot be shown to come from the holder of the secret."""

    def __init__(self, reason: Reason) -> None:
        super().__init__(reason)
        self.reason: Reason = reason


def new_webhook_secret() -> str:
    """A fresh Standard Webhooks secret: 32 random bytes, base64, with the ``whsec_`` prefix."""
    return SECRET_PREFIX + base64.b64encode(_secrets.token_bytes(32)).decode("ascii")


def _standard_key(secret: str) -> bytes:
    # The spec's libraries strip the prefix when present and base64-decode the rest either way.
    raw = secret[len(SECRET_PREFIX) :] if secret.startswith(SECRET_PREFIX) else secret
    try:
        key = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("webhook secret is not valid base64 after the whsec_ prefix") from exc
    if not key:
        raise ValueError("webhook secret is empty")
    return key


def _standard_digest(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    signed = b"%s.%d.%s" % (msg_id.encode("utf-8"), timestamp, body)
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def sign_standard(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header value for one delivery (a single ``v1`` entry)."""
    return "v1," + _standard_digest(_standard_key(secret), msg_id, timestamp, body)


def _lower_keys(headers: Mapping[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def _bytes(value: str) -> bytes:
    # compare_digest refuses non-ASCII str; a header full of junk must still just "not match".
    return value.encode("utf-8", "replace")


def verify_standard(
    secrets: Sequence[str],
    headers: Mapping[str, str],
    body: bytes,
    now: float,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
) -> str:
    """Check a Standard Webhooks delivery and return its ``webhook-id``.

    Any of ``secrets`` may match, so a rotated secret and its predecessor both work during
    the overlap. The timestamp window bounds replays; deduplicating by the returned id
    within that window is the caller's job.
    """
    h = _lower_keys(headers)
    msg_id = h.get("webhook-id", "").strip()
    ts_raw = h.get("webhook-timestamp", "").strip()
    sig_header = h.get("webhook-signature", "").strip()
    if not msg_id or not ts_raw or not sig_header:
        raise InvalidSignature("missing_headers")
    if len(ts_raw) > _MAX_TIMESTAMP_DIGITS or not ts_raw.isascii() or not ts_raw.isdigit():
        raise InvalidSignature("invalid_timestamp")
    timestamp = int(ts_raw)
    if timestamp < now - tolerance_s:
        raise InvalidSignature("timestamp_too_old")
    if timestamp > now + tolerance_s:
        raise InvalidSignature("timestamp_too_new")
    if len(sig_header) > _MAX_SIGNATURE_HEADER:
        raise InvalidSignature("no_matching_signature")

    offered = [
        _bytes(sig)
        for version, _, sig in (entry.partition(",") for entry in sig_header.split())
        if version == "v1" and sig
    ]
    matched = False
    for secret in secrets:
        expected = _bytes(_standard_digest(_standard_key(secret), msg_id, timestamp, body))
        for candidate in offered:
            # No early exit: the time taken does not depend on which entry matched.
            matched |= hmac.compare_digest(expected, candidate)
    if not matched:
        raise InvalidSignature("no_matching_signature")
    return msg_id


def _shopify_key(secret: str) -> bytes:
    if not secret:
        raise ValueError("webhook secret is empty")
    return secret.encode("utf-8")


def sign_shopify(secret: str, body: bytes) -> str:
    """The ``X-Shopify-Hmac-Sha256`` header value Shopify would send for ``body``."""
    digest = hmac.new(_shopify_key(secret), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def verify_shopify(secrets: Sequence[str], headers: Mapping[str, str], body: bytes) -> None:
    """Check Shopify's HMAC over the raw body with any of ``secrets`` (used as utf-8 bytes).

    Shopify signs no timestamp, so replays are bounded only by deduplicating on
    ``X-Shopify-Event-Id`` / ``X-Shopify-Webhook-Id`` and by the payloads' ``updated_at``.
    """
    offered = _lower_keys(headers).get("x-shopify-hmac-sha256", "").strip()
    if not offered:
        raise InvalidSignature("missing_headers")
    candidate = _bytes(offered)
    matched = False
    for secret in secrets:
        matched |= hmac.compare_digest(_bytes(sign_shopify(secret, body)), candidate)
    if not matched:
        raise InvalidSignature("no_matching_signature")
