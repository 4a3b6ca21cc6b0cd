"""Shopify webhook payloads mapped to Portrait's customer, order and event shapes."""

import copy
import json
from decimal import Decimal
from pathlib import Path

import pytest

from shared.ingest.shopify import (
    TOPICS,
    Mapped,
    MappingError,
    channel_from_source,
    map_delivery,
    order_status,
    read_headers,
)

FIXTURES = Path(__file__).parent / "fixtures" / "shopify"


def fixture(topic):
    return json.loads((FIXTURES / f"{topic.replace('/', '_')}.json").read_text())


def only(mapped, kind):
    found = [m for m in mapped if m.kind == kind]
    assert len(found) == 1, mapped
    return found[0]


def test_every_supported_topic_has_a_fixture():
    names = {p.stem for p in FIXTURES.glob("*.json")}
    assert names == {t.replace("/", "_") for t in TOPICS}


@pytest.mark.parametrize("topic", sorted(TOPICS))
def test_fixture_maps_without_touching_the_payload(topic):
    payload = fixture(topic)
    before = copy.deepcopy(payload)
    mapped = map_delivery(topic, payload)
    assert mapped
    assert all(isinstance(m, Mapped) for m in mapped)
    assert payload == before


# --- customers ----------------------------------------------------------------------------


def test_customer_create_maps_to_a_full_customer_upsert():
    [mapped] = map_delivery("customers/create", fixture("customers/create"))
    assert mapped == Mapped(
        kind="customer.upsert",
        data={
            "external_id": "706405506930370084",
            "email": "bob@biller.com",
            "phone": "+16135550135",
            "first_name": "Bob",
            "last_name": "Biller",
            "created_at": "2026-01-05T09:00:00-05:00",
            "updated_at": "2026-01-05T09:00:00-05:00",
            "accepts_marketing": True,
            "country": "CA",
            "region": "ON",
            "city": "Ottawa",
            "postcode": "K2P 2L8",
            "traits": {"shopify_tags": ["newsletter", "vip"], "shopify_state": "disabled"},
        },
        updated_at="2026-01-05T09:00:00-05:00",
    )


def test_customer_update_carries_the_new_address_consent_and_tags():
    [mapped] = map_delivery("customers/update", fixture("customers/update"))
    assert mapped.kind == "customer.upsert"
    assert mapped.updated_at == "2026-03-01T10:00:00-05:00"
    data = mapped.data
    assert data["accepts_marketing"] is False
    assert (data["country"], data["region"], data["city"], data["postcode"]) == (
        "CA",
        "QC",
        "Montréal",
        "H2X 1Z4",
    )
    assert data["traits"] == {
        "shopify_tags": ["newsletter", "vip", "wholesale"],
        "shopify_state": "enabled",
    }


@pytest.mark.parametrize(
    ("consent", "legacy", "expected"),
    [
        ({"state": "subscribed"}, None, True),
        ({"state": "not_subscribed"}, None, False),
        ({"state": "unsubscribed"}, True, False),
        ({"state": "pending"}, None, False),
        (None, True, True),
        (None, False, False),
        ({"state": None}, True, True),
    ],
)
def test_accepts_marketing_prefers_consent_state_over_legacy_flag(consent, legacy, expected):
    payload = {"id": 1, "email_marketing_consent": consent}
    if legacy is not None:
        payload["accepts_marketing"] = legacy
    [mapped] = map_delivery("customers/update", payload)
    assert mapped.data["accepts_marketing"] is expected


def test_unknown_marketing_consent_is_left_out_rather_than_set_false():
    [mapped] = map_delivery("customers/update", {"id": 1, "email_marketing_consent": None})
    assert "accepts_marketing" not in mapped.data


def test_fields_absent_from_the_payload_are_absent_from_the_customer():
    # Apps without protected-customer-data access get payloads without name, email, address.
    [mapped] = map_delivery(
        "customers/update", {"id": 5, "updated_at": "2026-03-01T10:00:00-05:00", "tags": ""}
    )
    assert mapped.data == {
        "external_id": "5",
        "updated_at": "2026-03-01T10:00:00-05:00",
        "traits": {"shopify_tags": []},
    }


def test_explicit_nulls_clear_fields():
    payload = {"id": 5, "phone": None, "default_address": None}
    [mapped] = map_delivery("customers/update", payload)
    assert mapped.data == {
        "external_id": "5",
        "phone": None,
        "country": None,
        "region": None,
        "city": None,
        "postcode": None,
    }


def test_default_address_falls_back_to_the_address_flagged_default():
    payload = {
        "id": 5,
        "addresses": [
            {"country_code": "US", "province_code": "NY", "city": "New York", "zip": "10001"},
            {
                "country_code": "VN",
                "province_code": "SG",
                "city": "Ho Chi Minh City",
                "zip": "700000",
                "default": True,
            },
        ],
    }
    [mapped] = map_delivery("customers/update", payload)
    assert mapped.data["country"] == "VN"
    assert mapped.data["postcode"] == "700000"


def test_graphql_style_ids_are_reduced_to_the_numeric_id():
    [mapped] = map_delivery("customers/create", {"id": "gid://shopify/Customer/42"})
    assert mapped.data["external_id"] == "42"


# --- orders -------------------------------------------------------------------------------


def test_order_create_maps_to_an_order_and_ensures_its_customer_first():
    mapped = map_delivery("orders/create", fixture("orders/create"))
    assert [m.kind for m in mapped] == ["customer.ensure", "order.upsert"]
    ensure, order = mapped
    assert ensure == Mapped(
        "customer.ensure",
        {
            "external_id": "115310627314723954",
            "email": "john@example.com",
            "first_name": "John",
            "last_name": "Smith",
        },
        None,
    )
    assert order.updated_at == "2026-03-01T09:58:43-05:00"
    assert order.data == {
        "external_id": "820982911946154508",
        "customer_external_id": "115310627314723954",
        "status": "placed",
        "currency": "USD",
        "total": "254.97",
        "channel": "web",
        "placed_at": "2026-03-01T09:58:40-05:00",
        "updated_at": "2026-03-01T09:58:43-05:00",
        "items": [
            {
                "product_id": "632910392",
                "variant_id": "39072856",
                "sku": "AV-GLD-GRN",
                "name": "Aviator sunglasses",
                "category": None,
                "quantity": 1,
                "unit_price": "89.99",
            },
            {
                "product_id": "921728736",
                "variant_id": "457924702",
                "sku": "SKU2006-035",
                "name": "Coffee table",
                "category": None,
                "quantity": 1,
                "unit_price": "119.99",
            },
            {
                "product_id": "632910393",
                "variant_id": "808950810",
                "sku": "LC-2",
                "name": "Lens cloth",
                "category": None,
                "quantity": 1,
                "unit_price": "14.99",
            },
        ],
    }


@pytest.mark.parametrize(
    ("topic", "status", "channel"),
    [
        ("orders/create", "placed", "web"),
        ("orders/paid", "paid", "web"),
        ("orders/updated", "fulfilled", "web"),
        ("orders/cancelled", "cancelled", "app"),
    ],
)
def test_order_topics_map_status_and_channel(topic, status, channel):
    order = only(map_delivery(topic, fixture(topic)), "order.upsert")
    assert order.data["status"] == status
    assert order.data["channel"] == channel
    assert order.updated_at == order.data["updated_at"]


def test_cancelled_order_keeps_its_original_total_and_items():
    order = only(map_delivery("orders/cancelled", fixture("orders/cancelled")), "order.upsert")
    assert order.data["external_id"] == "450789469"
    assert order.data["total"] == "179.98"
    assert order.data["items"][0]["quantity"] == 2


@pytest.mark.parametrize(
    ("cancelled_at", "financial", "fulfilment", "expected"),
    [
        (None, "pending", None, "placed"),
        (None, "authorized", None, "placed"),
        (None, "partially_paid", None, "placed"),
        (None, "expired", None, "placed"),
        (None, None, None, "placed"),
        (None, "pending", "fulfilled", "placed"),
        (None, "paid", None, "paid"),
        (None, "paid", "partial", "paid"),
        (None, "paid", "fulfilled", "fulfilled"),
        (None, "partially_refunded", None, "paid"),
        (None, "partially_refunded", "fulfilled", "fulfilled"),
        (None, "refunded", "fulfilled", "refunded"),
        (None, "voided", None, "cancelled"),
        ("2026-03-02T11:05:12-05:00", "paid", "fulfilled", "cancelled"),
        ("2026-03-02T11:05:12-05:00", "refunded", None, "cancelled"),
    ],
)
def test_order_status_table(cancelled_at, financial, fulfilment, expected):
    payload = {
        "cancelled_at": cancelled_at,
        "financial_status": financial,
        "fulfillment_status": fulfilment,
    }
    assert order_status(payload) == expected


@pytest.mark.parametrize(
    ("source", "channel"),
    [
        ("web", "web"),
        ("pos", "pos"),
        ("iphone", "app"),
        ("android", "app"),
        ("shopify_draft_order", "shopify_draft_order"),
        ("580111", "580111"),
        (None, None),
        ("", None),
    ],
)
def test_channel_from_source_name(source, channel):
    assert channel_from_source(source) == channel


def order_payload(**overrides):
    payload = {
        "id": 1001,
        "created_at": "2026-03-01T10:00:00Z",
        "updated_at": "2026-03-01T10:05:00Z",
        "financial_status": "paid",
        "currency": "EUR",
        "total_price": "59.45",
        "line_items": [{"product_id": 7, "title": "Serum", "quantity": 1, "price": "49.00"}],
    }
    payload.update(overrides)
    return payload


def test_order_without_customer_yields_only_the_order():
    mapped = map_delivery("orders/paid", order_payload())
    assert [m.kind for m in mapped] == ["order.upsert"]
    assert mapped[0].data["customer_external_id"] is None
    assert mapped[0].data["placed_at"] == "2026-03-01T10:00:00Z"


def test_ensured_customer_falls_back_to_the_order_email():
    mapped = map_delivery(
        "orders/create", order_payload(email="an@example.com", customer={"id": 9})
    )
    ensure = only(mapped, "customer.ensure")
    assert ensure.data == {"external_id": "9", "email": "an@example.com"}


def test_category_comes_from_product_type_when_present():
    items = [
        {
            "product_id": 7,
            "title": "Serum",
            "product_type": "Skincare",
            "quantity": 1,
            "price": "49.00",
        },
        {"product_id": 8, "title": "Mask", "product_type": "", "quantity": 1, "price": "5.00"},
        {"product_id": None, "title": "Gift wrap", "quantity": 1, "price": "2.00"},
    ]
    order = only(map_delivery("orders/create", order_payload(line_items=items)), "order.upsert")
    assert [i["category"] for i in order.data["items"]] == ["Skincare", None, None]
    assert order.data["items"][2]["product_id"] is None


@pytest.mark.parametrize(
    "amount", ["59.45", "0.10", "1234567890123456789.987654321", "0", "19.999"]
)
def test_money_stays_the_exact_decimal_string(amount):
    items = [{"product_id": 7, "title": "Serum", "quantity": 3, "price": amount}]
    order = only(
        map_delivery("orders/paid", order_payload(total_price=amount, line_items=items)),
        "order.upsert",
    )
    assert order.data["total"] == amount
    assert order.data["items"][0]["unit_price"] == amount
    assert isinstance(order.data["total"], str)


def test_money_sent_as_a_json_number_is_not_rounded_through_float():
    payload = json.loads('{"id": 1, "created_at": "2026-03-01T10:00:00Z", "total_price": 0.1}')
    order = only(map_delivery("orders/paid", payload), "order.upsert")
    assert order.data["total"] == "0.1"
    assert Decimal(order.data["total"]) == Decimal("0.1")


@pytest.mark.parametrize("amount", ["abc", "NaN", "Infinity", True, "1,00"])
def test_malformed_money_is_a_mapping_error(amount):
    with pytest.raises(MappingError, match="total_price"):
        map_delivery("orders/paid", order_payload(total_price=amount))


def test_malformed_timestamp_is_a_mapping_error():
    with pytest.raises(MappingError, match="updated_at"):
        map_delivery("orders/paid", order_payload(updated_at="yesterday"))


def test_timestamp_without_offset_is_a_mapping_error():
    with pytest.raises(MappingError, match="offset"):
        map_delivery("orders/paid", order_payload(created_at="2026-03-01T10:00:00"))


def test_order_without_any_timestamp_is_a_mapping_error():
    with pytest.raises(MappingError, match="processed_at"):
        map_delivery("orders/paid", order_payload(created_at=None))


@pytest.mark.parametrize("quantity", [None, "two", 1.5, True])
def test_bad_line_item_quantity_is_a_mapping_error(quantity):
    items = [{"product_id": 7, "title": "Serum", "quantity": quantity, "price": "1.00"}]
    with pytest.raises(MappingError, match=r"line_items\[0\]\.quantity"):
        map_delivery("orders/paid", order_payload(line_items=items))


def test_float_id_is_refused_because_it_has_lost_digits():
    with pytest.raises(MappingError, match="order id"):
        map_delivery("orders/paid", order_payload(id=8.209829119461545e17))


# --- checkouts ----------------------------------------------------------------------------


def test_checkout_create_maps_to_a_checkout_started_event():
    mapped = map_delivery("checkouts/create", fixture("checkouts/create"))
    assert [m.kind for m in mapped] == ["customer.ensure", "event"]
    event = mapped[1]
    assert event.data == {
        "id": "shopify-checkout-123123123-created",
        "name": "checkout_started",
        "customer_external_id": "115310627314723954",
        "anonymous_id": None,
        "occurred_at": "2026-03-01T09:52:10-05:00",
        "session_id": None,
        "device": None,
        "channel": "web",
        "properties": {"cart_value": "442.02", "currency": "USD", "item_count": 3},
    }
    assert event.updated_at == "2026-03-01T09:52:11-05:00"


def test_guest_checkout_event_is_anonymous_by_checkout_token():
    payload = fixture("checkouts/create")
    payload["customer"] = None
    [event] = map_delivery("checkouts/create", payload)
    assert event.kind == "event"
    assert event.data["customer_external_id"] is None
    assert event.data["anonymous_id"] == "shopify-checkout:123123123"


def test_checkout_event_id_is_stable_across_redeliveries():
    first = map_delivery("checkouts/create", fixture("checkouts/create"))
    again = map_delivery("checkouts/create", fixture("checkouts/create"))
    assert first == again


# --- privacy ------------------------------------------------------------------------------


def test_customer_data_request_maps_to_an_export():
    [mapped] = map_delivery("customers/data_request", fixture("customers/data_request"))
    assert mapped == Mapped(
        "customer.export",
        {
            "customer_external_id": "191167",
            "email": "john@example.com",
            "phone": "555-625-1199",
            "order_external_ids": ["299938", "280263", "220458"],
            "shop_id": "954889",
            "shop_domain": "example-store.myshopify.com",
            "data_request_id": "9999",
        },
        None,
    )


def test_customer_redact_maps_to_an_erasure_with_its_orders():
    [mapped] = map_delivery("customers/redact", fixture("customers/redact"))
    assert mapped.kind == "customer.erase"
    assert mapped.data["customer_external_id"] == "191167"
    assert mapped.data["order_external_ids"] == ["299938", "280263", "220458"]
    assert mapped.updated_at is None


def test_customer_redact_with_only_an_email_is_still_honoured():
    payload = {"shop_id": 1, "customer": {"email": "only@example.com"}, "orders_to_redact": []}
    [mapped] = map_delivery("customers/redact", payload)
    assert mapped.data["customer_external_id"] is None
    assert mapped.data["email"] == "only@example.com"


def test_customer_redact_without_any_identifier_is_a_mapping_error():
    with pytest.raises(MappingError, match="customer"):
        map_delivery("customers/redact", {"shop_id": 1, "customer": {}})


def test_shop_redact_maps_to_a_tenant_erasure():
    [mapped] = map_delivery("shop/redact", fixture("shop/redact"))
    assert mapped == Mapped(
        "tenant.erase", {"shop_id": "954889", "shop_domain": "example-store.myshopify.com"}, None
    )


def test_shop_redact_without_a_shop_is_a_mapping_error():
    with pytest.raises(MappingError):
        map_delivery("shop/redact", {})


# --- topics, required fields, headers -------------------------------------------------------


@pytest.mark.parametrize("topic", ["products/create", "app/uninstalled", "orders/delete", ""])
def test_unknown_topic_is_ignored(topic):
    assert map_delivery(topic, {"id": 1}) == [Mapped("ignored", {"topic": topic}, None)]


def test_topic_is_matched_case_insensitively():
    [mapped] = map_delivery(" Customers/Create ", {"id": 3})
    assert mapped.kind == "customer.upsert"


@pytest.mark.parametrize(
    "topic",
    [
        "customers/create",
        "customers/update",
        "orders/create",
        "orders/updated",
        "orders/paid",
        "orders/cancelled",
    ],
)
@pytest.mark.parametrize("bad_id", ["missing", None, "", "  "])
def test_payload_without_id_is_a_mapping_error(topic, bad_id):
    payload = fixture(topic)
    if bad_id == "missing":
        del payload["id"]
    else:
        payload["id"] = bad_id
    with pytest.raises(MappingError, match="id is required"):
        map_delivery(topic, payload)


def test_checkout_without_token_is_a_mapping_error():
    payload = fixture("checkouts/create")
    del payload["token"]
    with pytest.raises(MappingError, match="token"):
        map_delivery("checkouts/create", payload)


def test_non_object_payload_is_a_mapping_error():
    with pytest.raises(MappingError, match="object"):
        map_delivery("orders/create", [1, 2, 3])


def test_mapping_error_is_a_value_error():
    assert issubclass(MappingError, ValueError)


def test_read_headers_is_case_insensitive_and_prefers_the_event_id():
    headers = read_headers(
        {
            "x-shopify-topic": "orders/create",
            "X-Shopify-Shop-Domain": "example-store.myshopify.com",
            "X-SHOPIFY-WEBHOOK-ID": "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
            "X-Shopify-Event-Id": "98880550-7158-44d4-b7cd-2c97c8a091b5",
            "X-Shopify-Triggered-At": "2026-03-01T14:58:43.123456Z",
            "X-Shopify-API-Version": "2025-07",
        }
    )
    assert headers.topic == "orders/create"
    assert headers.shop_domain == "example-store.myshopify.com"
    assert headers.delivery_id == "98880550-7158-44d4-b7cd-2c97c8a091b5"
    assert headers.triggered_at == "2026-03-01T14:58:43.123456Z"
    assert headers.api_version == "2025-07"


def test_read_headers_falls_back_to_the_webhook_id():
    headers = read_headers({"X-Shopify-Webhook-Id": "abc"})
    assert headers.delivery_id == "abc"
    assert headers.topic is None
