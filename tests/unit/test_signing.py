"""Webhook signature checks: Standard Webhooks and Shopify."""

import base64
import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.ingest.signing import (
    InvalidSignature,
    new_webhook_secret,
    sign_shopify,
    sign_standard,
    verify_shopify,
    verify_standard,
)

# The test vector published with the Standard Webhooks libraries.
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TS = 1614265330
SPEC_BODY = b'{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

NOW = 1_760_000_000
BODY = b'{"type":"order.created","data":{"external_id":"o-5001","total":"59.45"}}'


def standard_headers(secret, body=BODY, msg_id="msg_1", ts=NOW):
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": sign_standard(secret, msg_id, ts, body),
    }


def reason_of(excinfo):
    return excinfo.value.reason


# --- Standard Webhooks ----------------------------------------------------------------


def test_published_test_vector_signature_matches():
    assert sign_standard(SPEC_SECRET, SPEC_ID, SPEC_TS, SPEC_BODY) == SPEC_SIGNATURE


def test_published_test_vector_verifies():
    headers = {
        "webhook-id": SPEC_ID,
        "webhook-timestamp": str(SPEC_TS),
        "webhook-signature": SPEC_SIGNATURE,
    }
    assert verify_standard([SPEC_SECRET], headers, SPEC_BODY, now=SPEC_TS) == SPEC_ID


def test_signed_delivery_round_trips_and_returns_the_webhook_id():
    secret = new_webhook_secret()
    headers = standard_headers(secret, msg_id="msg_abc")
    assert verify_standard([secret], headers, BODY, now=NOW) == "msg_abc"


def test_tampered_body_is_rejected():
    secret = new_webhook_secret()
    headers = standard_headers(secret)
    tampered = BODY.replace(b"59.45", b"5.45")
    with pytest.raises(InvalidSignature) as excinfo:
        verify_standard([secret], headers, tampered, now=NOW)
    assert reason_of(excinfo) == "no_matching_signature"


def test_tampered_webhook_id_is_rejected():
    secret = new_webhook_secret()
    headers = standard_headers(secret) | {"webhook-id": "msg_other"}
    with pytest.raises(InvalidSignature):
        verify_standard([secret], headers, BODY, now=NOW)


def test_wrong_secret_is_rejected():
    headers = standard_headers(new_webhook_secret())
    with pytest.raises(InvalidSignature) as excinfo:
        verify_standard([new_webhook_secret()], headers, BODY, now=NOW)
    assert reason_of(excinfo) == "no_matching_signature"


def test_no_configured_secret_matches_nothing():
    headers = standard_headers(new_webhook_secret())
    with pytest.raises(InvalidSignature):
        verify_standard([], headers, BODY, now=NOW)


def test_timestamp_older_than_five_minutes_is_rejected():
    secret = new_webhook_secret()
    headers = standard_headers(secret, ts=NOW - 301)
    with pytest.raises(InvalidSignature) as excinfo:
        verify_standard([secret], headers, BODY, now=NOW)
    assert reason_of(excinfo) == "timestamp_too_old"


def test_timestamp_more_than_five_minutes_ahead_is_rejected():
    secret = new_webhook_secret()
    headers = standard_headers(secret, ts=NOW + 301)
    with pytest.raises(InvalidSignature) as excinfo:
        verify_standard([secret], headers, BODY, now=NOW)
    assert reason_of(excinfo) == "timestamp_too_new"


@pytest.mark.parametrize("skew", [-300, -1, 0, 1, 300])
def test_timestamp_within_tolerance_is_accepted(skew):
    secret = new_webhook_secret()
    headers = standard_headers(secret, ts=NOW + skew)
    assert verify_standard([secret], headers, BODY, now=NOW) == "msg_1"


def test_tolerance_is_configurable():
    secret = new_webhook_secret()
    headers = standard_headers(secret, ts=NOW - 60)
    with pytest.raises(InvalidSignature):
        verify_standard([secret], headers, BODY, now=NOW, tolerance_s=30)


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_missing_header_is_rejected(missing):
    secret = new_webhook_secret()
    headers = standard_headers(secret)
    del headers[missing]
    with pytest.raises(InvalidSignature) as excinfo:
        verify_standard([secret], headers, BODY, now=NOW)
    assert reason_of(excinfo) == "missing_headers"


@pytest.mark.parametrize("value", ["", "  "])
def test_empty_header_counts_as_missing(value):
    secret = new_webhook_secret()
    headers = standard_headers(secret) | {"webhook-signature": value}
    with pytest.raises(InvalidSignature) as excinfo:
        verify_standard([secret], headers, BODY, now=NOW)
    assert reason_of(excinfo) == "missing_headers"


@pytest.mark.parametrize("value", ["17600000.5", "-1760000000", "1e9", "soon", "9" * 5000, "١٢٣"])
def test_malformed_timestamp_is_rejected(value):
    secret = new_webhook_secret()
    headers = standard_headers(secret) | {"webhook-timestamp": value}
    with pytest.raises(InvalidSignature) as excinfo:
        verify_standard([secret], headers, BODY, now=NOW)
    assert reason_of(excinfo) == "invalid_timestamp"


def test_header_names_are_case_insensitive():
    secret = new_webhook_secret()
    headers = {k.title(): v for k, v in standard_headers(secret).items()}
    assert "Webhook-Signature" in headers
    assert verify_standard([secret], headers, BODY, now=NOW) == "msg_1"


def test_old_and_new_secret_are_both_accepted_during_rotation():
    old, new = new_webhook_secret(), new_webhook_secret()
    for signer in (old, new):
        headers = standard_headers(signer)
        assert verify_standard([new, old], headers, BODY, now=NOW) == "msg_1"


def test_any_matching_entry_in_a_multi_signature_header_is_accepted():
    old, new = new_webhook_secret(), new_webhook_secret()
    both = " ".join(sign_standard(s, "msg_1", NOW, BODY) for s in (old, new))
    headers = standard_headers(new) | {"webhook-signature": both}
    assert verify_standard([new], headers, BODY, now=NOW) == "msg_1"
    assert verify_standard([old], headers, BODY, now=NOW) == "msg_1"


def test_signatures_of_other_schemes_and_junk_are_ignored():
    secret = new_webhook_secret()
    good = sign_standard(secret, "msg_1", NOW, BODY)
    digest = good.split(",", 1)[1]
    junk = f"v1a,{digest} v2,{digest} v1, nonsense v1,caf\u00e9 {good}"
    headers = standard_headers(secret) | {"webhook-signature": junk}
    assert verify_standard([secret], headers, BODY, now=NOW) == "msg_1"
    only_junk = f"v1a,{digest} v2,{digest} v1,caf\u00e9"
    with pytest.raises(InvalidSignature):
        verify_standard([secret], headers | {"webhook-signature": only_junk}, BODY, now=NOW)


def test_new_webhook_secret_is_prefixed_random_base64_of_32_bytes():
    first, second = new_webhook_secret(), new_webhook_secret()
    assert first != second
    assert first.startswith("whsec_")
    assert len(base64.b64decode(first.removeprefix("whsec_"), validate=True)) == 32


def test_secret_without_prefix_is_read_as_base64_like_the_reference_libraries():
    bare = SPEC_SECRET.removeprefix("whsec_")
    assert sign_standard(bare, SPEC_ID, SPEC_TS, SPEC_BODY) == SPEC_SIGNATURE


@pytest.mark.parametrize("secret", ["whsec_not base64!", "whsec_"])
def test_malformed_secret_is_a_configuration_error(secret):
    with pytest.raises(ValueError, match="secret"):
        sign_standard(secret, "msg_1", NOW, BODY)


def test_failure_reason_does_not_carry_signature_material():
    secret = new_webhook_secret()
    headers = standard_headers(secret)
    with pytest.raises(InvalidSignature) as excinfo:
        verify_standard([secret], headers, BODY + b" ", now=NOW)
    assert str(excinfo.value) == "no_matching_signature"
    assert headers["webhook-signature"] not in repr(excinfo.value)


@given(body=st.binary(min_size=1, max_size=512), data=st.data())
def test_any_single_byte_change_to_the_body_is_rejected(body, data):
    secret = SPEC_SECRET
    headers = standard_headers(secret, body=body)
    index = data.draw(st.integers(min_value=0, max_value=len(body) - 1))
    replacement = data.draw(
        st.integers(min_value=0, max_value=255).filter(lambda b: b != body[index])
    )
    mutated = body[:index] + bytes([replacement]) + body[index + 1 :]
    with pytest.raises(InvalidSignature):
        verify_standard([secret], headers, mutated, now=NOW)


@given(
    msg_id=st.text(st.characters(codec="utf-8"), min_size=1, max_size=40)
    .map(str.strip)
    .filter(bool),
    body=st.binary(max_size=512),
    skew=st.integers(min_value=-300, max_value=300),
)
def test_any_signed_delivery_within_tolerance_verifies(msg_id, body, skew):
    headers = standard_headers(SPEC_SECRET, body=body, msg_id=msg_id, ts=NOW + skew)
    assert verify_standard([SPEC_SECRET], headers, body, now=NOW) == msg_id


# --- Shopify ---------------------------------------------------------------------------

SHOP_SECRET = "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"
SHOP_BODY = b'{"id":820982911946154508,"email":"jon@example.com","total_price":"404.95"}'


def test_shopify_signature_is_base64_hmac_sha256_of_the_raw_body():
    expected = base64.b64encode(
        hmac.new(SHOP_SECRET.encode(), SHOP_BODY, hashlib.sha256).digest()
    ).decode()
    assert sign_shopify(SHOP_SECRET, SHOP_BODY) == expected


def test_shopify_signed_delivery_round_trips():
    headers = {"X-Shopify-Hmac-Sha256": sign_shopify(SHOP_SECRET, SHOP_BODY)}
    assert verify_shopify([SHOP_SECRET], headers, SHOP_BODY) is None


def test_shopify_header_name_is_case_insensitive():
    headers = {"x-shopify-hmac-sha256": sign_shopify(SHOP_SECRET, SHOP_BODY)}
    verify_shopify([SHOP_SECRET], headers, SHOP_BODY)


def test_shopify_tampered_body_is_rejected():
    headers = {"X-Shopify-Hmac-Sha256": sign_shopify(SHOP_SECRET, SHOP_BODY)}
    with pytest.raises(InvalidSignature) as excinfo:
        verify_shopify([SHOP_SECRET], headers, SHOP_BODY.replace(b"404.95", b"4.95"))
    assert reason_of(excinfo) == "no_matching_signature"


def test_shopify_wrong_secret_is_rejected():
    headers = {"X-Shopify-Hmac-Sha256": sign_shopify("another-secret", SHOP_BODY)}
    with pytest.raises(InvalidSignature):
        verify_shopify([SHOP_SECRET], headers, SHOP_BODY)


def test_shopify_missing_hmac_header_is_rejected():
    with pytest.raises(InvalidSignature) as excinfo:
        verify_shopify([SHOP_SECRET], {"X-Shopify-Topic": "orders/create"}, SHOP_BODY)
    assert reason_of(excinfo) == "missing_headers"


def test_shopify_old_and_new_secret_are_both_accepted_during_rotation():
    old, new = SHOP_SECRET, new_webhook_secret()
    for signer in (old, new):
        headers = {"X-Shopify-Hmac-Sha256": sign_shopify(signer, SHOP_BODY)}
        verify_shopify([new, old], headers, SHOP_BODY)


def test_shopify_uses_the_secret_string_as_raw_bytes_not_base64():
    # A Portrait tenant secret is a whsec_ string; for Shopify it is the HMAC key verbatim.
    secret = new_webhook_secret()
    expected = base64.b64encode(
        hmac.new(secret.encode(), SHOP_BODY, hashlib.sha256).digest()
    ).decode()
    assert sign_shopify(secret, SHOP_BODY) == expected


def test_shopify_empty_secret_is_a_configuration_error():
    with pytest.raises(ValueError, match="empty"):
        sign_shopify("", SHOP_BODY)
