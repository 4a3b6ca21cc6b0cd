"""The segment condition grammar (a JSON tree) and its compiler to one SQL condition.

A condition is `all` / `any` / `not` over leaves:
- `{"fact": NAME, "op": OP, "value": ...}` on any profile fact (demographic, geographic,
  psychographic, `traits.<key>`, computed behaviour and customer-value facts), with operators
  fitting the fact's type;
- `{"event": NAME, "where": [...], "min_count": N, "max_count": M, "within_last_days": D}`
  (or `"between": [from, to]`): did event X (with property filters) at least / at most N times;
- `{"orders": {"min_total": Y, "min_count": N, "within_last_days": D, ...}}`;
- `{"bought_category": Z, "within_last_days": D}`;
- `{"in_segment": SEGMENT_ID}`;
- `{"survey": {"survey_id": ID, "question": KEY, "op": OP, "value": ...}}`: answered question
  KEY of survey ID with the value (`eq`, `in`, `contains`), a number in range (`gte`, `lte`,
  `between`), or at all (`exists`).

Every leaf compiles to a condition on the customer row (or a semi-join on the customer id), so
a whole tree is one query PostgreSQL runs over the tenant's customers: never a loop in Python.
Validation errors carry the path to the offending node (`loc`).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, model_validator
from sqlalchemy import (
    ColumnElement,
    Numeric,
    Text,
    and_,
    case,
    cast,
    false,
    func,
    not_,
    or_,
    select,
    true,
)
from sqlalchemy.dialects.postgresql import ARRAY

from shared.models import (
    Customer,
    CustomerValue,
    Event,
    Order,
    OrderItem,
    SegmentMember,
    SurveyAnswer,
)
from shared.validation import Id, Str100, Timestamp

MAX_DEPTH = 8
MAX_CHILDREN = 50

FactType = Literal["text", "number", "bool", "date", "datetime", "list"]
Op = Literal[
    "eq",
    "neq",
    "in",
    "gt",
    "gte",
    "lt",
    "lte",
    "between",
    "contains",
    "exists",
    "within_last_days",
]
OPS: dict[str, frozenset[str]] = {
    "text": frozenset({"eq", "neq", "in", "contains", "exists"}),
    "number": frozenset({"eq", "neq", "in", "gt", "gte", "lt", "lte", "between", "exists"}),
    "bool": frozenset({"eq", "neq", "exists"}),
    "date": frozenset({"eq", "gt", "gte", "lt", "lte", "between", "within_last_days", "exists"}),
    "datetime": frozenset({"gt", "gte", "lt", "lte", "between", "within_last_days", "exists"}),
    "list": frozenset({"contains", "in", "exists"}),
}


@dataclass(frozen=True)
class Fact:
    type: FactType
    column: Callable[[], ColumnElement[Any]]


def _c(name: str) -> Callable[[], ColumnElement[Any]]:
    return lambda: getattr(Customer, name)


def _v(name: str) -> Callable[[], ColumnElement[Any]]:
    return lambda: getattr(CustomerValue, name)


def _age() -> ColumnElement[Any]:
    return func.date_part("year", func.age(func.current_date(), Customer.birth_date))


def _days_since_last_order() -> ColumnElement[Any]:
    return func.date_part("day", func.now() - Customer.last_order_at)


def _tenure_days() -> ColumnElement[Any]:
    start = func.coalesce(Customer.first_order_at, Customer.created_at)
    return func.date_part("day", func.now() - start)


FACTS: dict[str, Fact] = {
    **{
        n: Fact("text", _c(n))
        for n in (
            "email",
            "phone",
            "first_name",
            "last_name",
            "age_band",
            "gender",
            "marital_status",
            "income_band",
            "occupation",
            "industry",
            "job_level",
            "education_level",
            "decision_role",
            "country",
            "region",
            "city",
            "postcode",
            "timezone",
            "preferred_channel",
            "referred_by",
            "external_id",
            "preferred_device",
            "order_channel",
            "event_channel",
        )
    },
    **{
        n: Fact("list", _c(n))
        for n in (
            "interests",
            "values",
            "lifestyle",
            "motivations",
            "top_categories",
        )
    },
    **{
        n: Fact("number", _c(n))
        for n in (
            "children",
            "order_count",
            "total_spent",
            "average_order_value",
            "refund_count",
            "refunded_amount",
            "referral_count",
        )
    },
    "accepts_marketing": Fact("bool", _c("accepts_marketing")),
    "birth_date": Fact("date", _c("birth_date")),
    **{n: Fact("datetime", _c(n)) for n in ("created_at", "first_order_at", "last_order_at")},
    "age": Fact("number", _age),
    "days_since_last_order": Fact("number", _days_since_last_order),
    "tenure_days": Fact("number", _tenure_days),
    **{n: Fact("text", _v(n)) for n in ("rfm_segment", "lifecycle_stage")},
    **{
        n: Fact("number", _v(n))
        for n in (
            "recency_days",
            "r_score",
            "f_score",
            "m_score",
            "prob_alive",
            "expected_orders_90d",
            "expected_spend",
            "predicted_clv",
            "churn_risk",
        )
    },
    **{
        n: Fact("bool", _v(n))
        for n in (
            "longest_tenure",
            "referrer",
            "above_average_spender",
        )
    },
}

Scalar = str | int | float | bool | None


class _Node(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FactCondition(_Node):
    fact: Annotated[
        str, Field(min_length=1, max_length=120, description="A profile fact, or `traits.<key>`.")
    ]
    op: Op
    value: Scalar | list[Scalar] | None = None

    @model_validator(mode="after")
    def _fits(self) -> FactCondition:
        kind = fact_type(self.fact)
        if self.op not in OPS[kind]:
            allowed = ", ".join(sorted(OPS[kind]))
            raise ValueError(
                f"{self.op!r} does not apply to the {kind} fact {self.fact!r}; use one of {allowed}"
            )
        _check_value(kind, self.op, self.value)
        return self


class PropertyFilter(_Node):
    property: Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[^\x00]+$")]
    op: Literal["eq", "neq", "in", "contains", "starts_with", "gt", "gte", "lt", "lte", "exists"]
    value: Scalar | list[Scalar] | None = None

    @model_validator(mode="after")
    def _value(self) -> PropertyFilter:
        if self.op == "exists":
            return self
        if self.op == "in":
            if not isinstance(self.value, list) or not self.value:
                raise ValueError("'in' takes a non-empty list")
        elif self.op in ("gt", "gte", "lt", "lte"):
            if isinstance(self.value, bool) or not isinstance(self.value, int | float):
                raise ValueError(f"{self.op!r} takes a number")
        elif self.value is None or isinstance(self.value, list):
            raise ValueError(f"{self.op!r} takes one value")
        return self


class _Window(_Node):
    within_last_days: int | None = Field(default=None, ge=1, le=3650)
    between: tuple[Timestamp, Timestamp] | None = None

    @model_validator(mode="after")
    def _one_window(self) -> _Window:
        if self.within_last_days is not None and self.between is not None:
            raise ValueError("give within_last_days or between, not both")
        if self.between is not None and self.between[0] > self.between[1]:
            raise ValueError("between: the start is after the end")
        return self


class EventCondition(_Window):
    event: Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[^\x00]+$")]
    where: list[PropertyFilter] = Field(default_factory=list, max_length=20)
    min_count: int | None = Field(
        default=None,
        ge=0,
        le=1_000_000,
        description="At least this many (default 1, or 0 when only max_count is given).",
    )
    max_count: int | None = Field(default=None, ge=0, le=1_000_000)

    @model_validator(mode="after")
    def _counts(self) -> EventCondition:
        if self.min_count is None:
            self.min_count = 0 if self.max_count is not None else 1
        if self.max_count is not None and self.max_count < self.min_count:
            raise ValueError("max_count is below min_count")
        return self


class OrdersFilter(_Window):
    min_total: Decimal | None = Field(default=None, ge=0, allow_inf_nan=False)
    max_total: Decimal | None = Field(default=None, ge=0, allow_inf_nan=False)
    # Bounded like the event counts: a count past PostgreSQL's integer is a 422, not a 500.
    min_count: int | None = Field(default=None, ge=0, le=1_000_000)
    max_count: int | None = Field(default=None, ge=0, le=1_000_000)

    @model_validator(mode="after")
    def _something(self) -> OrdersFilter:
        if all(v is None for v in (self.min_total, self.max_total, self.min_count, self.max_count)):
            raise ValueError("give at least one of min_total, max_total, min_count, max_count")
        return self


class OrdersCondition(_Node):
    orders: OrdersFilter


class BoughtCondition(_Window):
    bought_category: Str100


class InSegmentCondition(_Node):
    in_segment: Id


SurveyOp = Literal["eq", "in", "gte", "lte", "between", "exists", "contains"]


class SurveyFilter(_Node):
    survey_id: Id
    question: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$", description="Its key.")]
    op: SurveyOp
    value: Scalar | list[Scalar] | None = None

    @model_validator(mode="after")
    def _value(self) -> SurveyFilter:
        v = self.value
        if self.op == "exists":
            if v not in (None, True, False):
                raise ValueError("'exists' takes true, false or no value")
        elif self.op == "in":
            if not isinstance(v, list) or not v:
                raise ValueError("'in' takes a non-empty list")
            for item in v:
                _check_answer_scalar(item)
        elif self.op in ("gte", "lte"):
            _check_scalar("number", v)
        elif self.op == "between":
            if not isinstance(v, list) or len(v) != 2:
                raise ValueError("'between' takes [low, high]")
            for item in v:
                _check_scalar("number", item)
        elif self.op == "contains":
            _check_scalar("text", v)
        else:
            _check_answer_scalar(v)
        return self


def _check_answer_scalar(v: Any) -> None:
    if isinstance(v, bool):
        return
    _check_scalar("number" if isinstance(v, int | float) else "text", v)


class SurveyCondition(_Node):
    survey: SurveyFilter


class AllOf(_Node):
    all: list[Condition] = Field(min_length=1, max_length=MAX_CHILDREN)


class AnyOf(_Node):
    any: list[Condition] = Field(min_length=1, max_length=MAX_CHILDREN)


class NotOf(_Node):
    not_: Condition = Field(alias="not")

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


_TAGS = (
    "all",
    "any",
    "not",
    "fact",
    "event",
    "orders",
    "bought_category",
    "in_segment",
    "survey",
)


def _tag(value: Any) -> str | None:
    if isinstance(value, dict):
        keys = [t for t in _TAGS if t in value]
        return keys[0] if len(keys) == 1 else None
    if isinstance(value, BaseModel):
        return {
            AllOf: "all",
            AnyOf: "any",
            NotOf: "not",
            FactCondition: "fact",
            EventCondition: "event",
            OrdersCondition: "orders",
            BoughtCondition: "bought_category",
            InSegmentCondition: "in_segment",
            SurveyCondition: "survey",
        }.get(type(value))
    return None


Condition = Annotated[
    Annotated[AllOf, Tag("all")]
    | Annotated[AnyOf, Tag("any")]
    | Annotated[NotOf, Tag("not")]
    | Annotated[FactCondition, Tag("fact")]
    | Annotated[EventCondition, Tag("event")]
    | Annotated[OrdersCondition, Tag("orders")]
    | Annotated[BoughtCondition, Tag("bought_category")]
    | Annotated[InSegmentCondition, Tag("in_segment")]
    | Annotated[SurveyCondition, Tag("survey")],
    Discriminator(
        _tag,
        custom_error_type="invalid_condition",
        custom_error_message=("A condition is an object with exactly one of: " + ", ".join(_TAGS)),
    ),
]

AllOf.model_rebuild()
AnyOf.model_rebuild()
NotOf.model_rebuild()


def fact_type(name: str) -> FactType:
    if name.startswith("traits.") and len(name) > 7:
        return "text"
    if name not in FACTS:
        raise ValueError(
            f"unknown fact {name!r}; known facts: {', '.join(sorted(FACTS))}, or traits.<key>"
        )
    return FACTS[name].type


def _check_value(kind: FactType, op: str, value: Any) -> None:
    if op == "exists":
        if value not in (None, True, False):
            raise ValueError("'exists' takes true, false or no value")
        return
    if op == "in":
        if not isinstance(value, list) or not value:
            raise ValueError("'in' takes a non-empty list")
        for v in value:
            _check_scalar(kind if kind != "list" else "text", v)
        return
    if op == "between":
        if not isinstance(value, list) or len(value) != 2:
            raise ValueError("'between' takes [low, high]")
        for v in value:
            _check_scalar(kind, v)
        return
    if op == "within_last_days":
        if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= 36500:
            raise ValueError("'within_last_days' takes a whole number of days, 1 to 36500")
        return
    _check_scalar("text" if kind == "list" else kind, value)


def _check_scalar(kind: FactType, value: Any) -> None:
    ok: Callable[[Any], bool] = {
        "text": lambda v: isinstance(v, str) and "\x00" not in v and len(v) <= 500,
        "number": lambda v: (
            isinstance(v, int | float) and not isinstance(v, bool) and abs(v) < 1e15
        ),
        "bool": lambda v: isinstance(v, bool),
        "date": lambda v: isinstance(v, str) and _parse_date(v) is not None,
        "datetime": lambda v: isinstance(v, str) and _parse_datetime(v) is not None,
    }[kind if kind != "list" else "text"]
    if not ok(value):
        raise ValueError(f"{value!r} is not a valid {kind} value here")


def _parse_date(v: str) -> date | None:
    try:
        return date.fromisoformat(v[:10])
    except ValueError:
        return None


def _parse_datetime(v: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(v)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


# --- compiler ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Context:
    tenant_id: uuid.UUID
    now: datetime


def depth(node: Any) -> int:
    if isinstance(node, AllOf | AnyOf):
        return 1 + max(depth(c) for c in (node.all if isinstance(node, AllOf) else node.any))
    if isinstance(node, NotOf):
        return 1 + depth(node.not_)
    return 1


def compile_condition(node: Any, ctx: Context) -> ColumnElement[bool]:
    """A SQL condition over `customers` (outer-joined to `customer_values`)."""
    if isinstance(node, AllOf):
        return and_(true(), *(compile_condition(c, ctx) for c in node.all))
    if isinstance(node, AnyOf):
        return or_(false(), *(compile_condition(c, ctx) for c in node.any))
    if isinstance(node, NotOf):
        # NOT over a fact that is unknown (NULL) counts the customer as not matching the
        # inner condition, i.e. matching the negation.
        return not_(func.coalesce(compile_condition(node.not_, ctx), false()))
    if isinstance(node, FactCondition):
        return _fact(node, ctx)
    if isinstance(node, EventCondition):
        return _event(node, ctx)
    if isinstance(node, OrdersCondition):
        return _orders(node.orders, ctx)
    if isinstance(node, BoughtCondition):
        return _bought(node, ctx)
    if isinstance(node, InSegmentCondition):
        return _in_segment(node, ctx)
    if isinstance(node, SurveyCondition):
        return _survey(node.survey, ctx)
    raise TypeError(f"not a condition: {node!r}")  # pragma: no cover


def _fact_column(name: str) -> Any:
    if name.startswith("traits."):
        return Customer.traits[name[7:]].astext
    return FACTS[name].column()


def _literal(kind: FactType, value: Any) -> Any:
    if kind == "date":
        return _parse_date(value)
    if kind == "datetime":
        return _parse_datetime(value)
    if kind == "number":
        return Decimal(str(value))
    return value


def _fact(node: FactCondition, ctx: Context) -> ColumnElement[bool]:
    kind = fact_type(node.fact)
    col: ColumnElement[Any] = _fact_column(node.fact)
    op, value = node.op, node.value
    if op == "exists":
        present: ColumnElement[bool] = col.is_not(None)
        if kind == "list":
            present = and_(present, func.cardinality(col) > 0)
        return present if value in (None, True) else not_(present)
    if kind == "list":
        items = value if isinstance(value, list) else [value]
        typed = cast(items, ARRAY(Text))
        return col.bool_op("@>")(typed) if op == "contains" else col.bool_op("&&")(typed)
    if op == "within_last_days":
        since = ctx.now - timedelta(days=int(value))  # type: ignore[arg-type]
        bound: Any = since.date() if kind == "date" else since
        recent: ColumnElement[bool] = col >= bound
        return recent
    if op == "in":
        return col.in_([_literal(kind, v) for v in value])  # type: ignore[union-attr]
    if op == "between":
        low, high = (_literal(kind, v) for v in value)  # type: ignore[union-attr]
        return col.between(low, high)
    if op == "contains":
        return col.ilike("%" + str(value).replace("%", r"\%").replace("_", r"\_") + "%")
    v = _literal(kind, value)
    comparisons: dict[str, Callable[[], ColumnElement[bool]]] = {
        "eq": lambda: col == v,
        "neq": lambda: or_(col != v, col.is_(None)),
        "gt": lambda: col > v,
        "gte": lambda: col >= v,
        "lt": lambda: col < v,
        "lte": lambda: col <= v,
    }
    return comparisons[op]()


def _window(column: Any, node: _Window, ctx: Context) -> list[ColumnElement[bool]]:
    if node.within_last_days is not None:
        return [column >= ctx.now - timedelta(days=node.within_last_days)]
    if node.between is not None:
        return [column >= node.between[0], column <= node.between[1]]
    return []


def _property(f: PropertyFilter) -> Any:
    prop = Event.properties[f.property]
    text_value = prop.astext
    if f.op == "exists":
        return Event.properties.has_key(f.property)
    if f.op in ("gt", "gte", "lt", "lte"):
        # Only JSON numbers compare as numbers; anything else is simply not a match.
        number = case((func.jsonb_typeof(prop) == "number", cast(prop, Numeric)))
        v = Decimal(str(f.value))
        return {"gt": number > v, "gte": number >= v, "lt": number < v, "lte": number <= v}[f.op]
    if f.op == "in":
        values: list[Scalar] = f.value if isinstance(f.value, list) else [f.value]
        return text_value.in_([_as_text(v) for v in values])
    if f.op == "starts_with":
        escaped = str(f.value).replace("%", r"\%").replace("_", r"\_")
        return text_value.like(escaped + "%")
    if f.op == "contains":
        escaped = str(f.value).replace("%", r"\%").replace("_", r"\_")
        return text_value.ilike("%" + escaped + "%")
    one = f.value if not isinstance(f.value, list) else None
    if f.op == "neq":
        return or_(text_value != _as_text(one), text_value.is_(None))
    return text_value == _as_text(one)


def _as_text(v: Scalar) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return "" if v is None else str(v)


def _event(node: EventCondition, ctx: Context) -> ColumnElement[bool]:
    """A semi-join: the customers with the right number of matching events. "At most N"
    (including zero) is the complement of "more than N", so customers with no events count."""
    where = [
        Event.tenant_id == ctx.tenant_id,
        Event.customer_id.is_not(None),
        Event.name == node.event,
        *_window(Event.occurred_at, node, ctx),
        *(_property(f) for f in node.where),
    ]
    base = select(Event.customer_id).where(*where).group_by(Event.customer_id)
    # "At least once" and "never" need no counting: a (NOT) EXISTS lets PostgreSQL pick a
    # semi- or anti-join, by index probe per customer or by hashing the matching events.
    any_event = select(Event.customer_id).where(*where, Event.customer_id == Customer.id).exists()
    parts: list[ColumnElement[bool]] = []
    if node.min_count == 1:
        parts.append(any_event)
    elif node.min_count:
        parts.append(Customer.id.in_(base.having(func.count() >= node.min_count)))
    if node.max_count == 0:
        parts.append(~any_event)
    elif node.max_count is not None:
        parts.append(Customer.id.not_in(base.having(func.count() > node.max_count)))
    return and_(true(), *parts)


def _orders(node: OrdersFilter, ctx: Context) -> ColumnElement[bool]:
    purchases = [
        Order.tenant_id == ctx.tenant_id,
        Order.customer_id.is_not(None),
        Order.status.in_(("placed", "paid", "fulfilled")),
        *_window(Order.placed_at, node, ctx),
    ]
    base = select(Order.customer_id).where(*purchases).group_by(Order.customer_id)
    total, count = func.sum(Order.total), func.count()
    parts: list[ColumnElement[bool]] = []
    if node.min_total is not None and node.min_total > 0:
        parts.append(Customer.id.in_(base.having(total >= node.min_total)))
    if node.min_count:
        parts.append(Customer.id.in_(base.having(count >= node.min_count)))
    if node.max_total is not None:
        parts.append(Customer.id.not_in(base.having(total > node.max_total)))
    if node.max_count is not None:
        parts.append(Customer.id.not_in(base.having(count > node.max_count)))
    return and_(true(), *parts)


def _bought(node: BoughtCondition, ctx: Context) -> ColumnElement[bool]:
    buyers = (
        select(Order.customer_id)
        .join(
            OrderItem, and_(OrderItem.tenant_id == Order.tenant_id, OrderItem.order_id == Order.id)
        )
        .where(
            Order.tenant_id == ctx.tenant_id,
            Order.customer_id.is_not(None),
            Order.status.in_(("placed", "paid", "fulfilled")),
            OrderItem.category == node.bought_category,
            *_window(Order.placed_at, node, ctx),
        )
    )
    return Customer.id.in_(buyers)


def _in_segment(node: InSegmentCondition, ctx: Context) -> ColumnElement[bool]:
    try:
        segment_id = uuid.UUID(node.in_segment)
    except ValueError:
        return false()
    members = select(SegmentMember.customer_id).where(
        SegmentMember.tenant_id == ctx.tenant_id,
        SegmentMember.segment_id == segment_id,
        SegmentMember.left_at.is_(None),
    )
    return Customer.id.in_(members)


def segment_refs(node: Any) -> set[str]:
    """Segments a condition refers to (checked to exist, and against cycles)."""
    if isinstance(node, AllOf | AnyOf):
        children = node.all if isinstance(node, AllOf) else node.any
        return set().union(*(segment_refs(c) for c in children))
    if isinstance(node, NotOf):
        return segment_refs(node.not_)
    if isinstance(node, InSegmentCondition):
        return {node.in_segment}
    return set()


def _survey(f: SurveyFilter, ctx: Context) -> ColumnElement[bool]:
    """An EXISTS over the customer's answers to one question of one survey."""
    try:
        survey_id = uuid.UUID(f.survey_id)
    except ValueError:
        return false()
    a = SurveyAnswer
    where: list[ColumnElement[bool]] = [
        a.tenant_id == ctx.tenant_id,
        a.survey_id == survey_id,
        a.question_key == f.question,
        a.customer_id == Customer.id,
    ]
    if f.op == "exists":
        answered = select(a.response_id).where(*where).exists()
        return answered if f.value in (None, True) else not_(answered)
    where.append(_answer_test(f))
    return select(a.response_id).where(*where).exists()


def _answer_test(f: SurveyFilter) -> ColumnElement[bool]:
    a = SurveyAnswer
    v = f.value
    if f.op in ("gte", "lte"):
        n = Decimal(str(v))
        return a.value_number >= n if f.op == "gte" else a.value_number <= n
    if f.op == "between":
        low, high = (Decimal(str(x)) for x in v)  # type: ignore[union-attr]
        return a.value_number.between(low, high)
    if f.op == "contains":
        pattern = "%" + str(v).replace("%", r"\%").replace("_", r"\_") + "%"
        return or_(a.value_text.ilike(pattern), a.choices.bool_op("@>")(cast([v], ARRAY(Text))))
    items = v if isinstance(v, list) else [v]
    texts = [("yes" if x else "no") if isinstance(x, bool) else str(x) for x in items]
    numbers = [
        Decimal(str(x)) for x in items if isinstance(x, int | float) and not isinstance(x, bool)
    ]
    tests = [a.value_text.in_(texts), a.choices.bool_op("&&")(cast(texts, ARRAY(Text)))]
    if numbers:
        tests.append(a.value_number.in_(numbers))
    return or_(*tests)


def survey_refs(
    node: Any, loc: tuple[str | int, ...] = ()
) -> list[tuple[tuple[str | int, ...], SurveyFilter]]:
    """Survey conditions in a tree, with the path to each (checked against the surveys)."""
    if isinstance(node, AllOf | AnyOf):
        key = "all" if isinstance(node, AllOf) else "any"
        children = node.all if isinstance(node, AllOf) else node.any
        return [r for i, c in enumerate(children) for r in survey_refs(c, (*loc, key, i))]
    if isinstance(node, NotOf):
        return survey_refs(node.not_, (*loc, "not"))
    if isinstance(node, SurveyCondition):
        return [((*loc, "survey"), node.survey)]
    return []
