"""Answers checked against their questions, and skip logic: plain functions, no I/O.

An answer is stored typed (`Stored`): `value_text` for single choice, yes/no ('yes'/'no'),
text and dates; `value_number` for ratings, NPS and numbers; `choices` for multiple choice.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from shared.surveys.schemas import Question


@dataclass(frozen=True)
class Stored:
    value_text: str | None = None
    value_number: Decimal | None = None
    choices: list[str] | None = None


class BadAnswer(ValueError):
    """An answer that does not fit its question; the message says why."""


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return (_is_int(v) or isinstance(v, float)) and math.isfinite(v)


def _single(q: Question, value: Any) -> Stored:
    if not isinstance(value, str) or value not in (q.choices or []):
        raise BadAnswer(f"must be one of: {', '.join(q.choices or [])}")
    return Stored(value_text=value)


def _multiple(q: Question, value: Any) -> Stored:
    if not isinstance(value, list) or not value:
        raise BadAnswer("must be a non-empty list of choices")
    if not all(isinstance(v, str) for v in value) or len(set(value)) != len(value):
        raise BadAnswer("must list distinct choices")
    if any(v not in (q.choices or []) for v in value):
        raise BadAnswer(f"unknown choice; choose from: {', '.join(q.choices or [])}")
    return Stored(choices=list(value))


def _scale(q: Question, value: Any) -> Stored:
    low, high = (0, 10) if q.type == "nps" else (q.scale_min or 0, q.scale_max or 0)
    if not _is_int(value) or not low <= value <= high:
        raise BadAnswer(f"must be a whole number from {low} to {high}")
    return Stored(value_number=Decimal(value))


def _number(q: Question, value: Any) -> Stored:
    if not _is_number(value) or abs(value) >= 1e12:
        raise BadAnswer("must be a number")
    if q.min is not None and value < q.min:
        raise BadAnswer(f"must be at least {q.min:g}")
    if q.max is not None and value > q.max:
        raise BadAnswer(f"must be at most {q.max:g}")
    if q.maps_to == "children" and not _is_int(value):
        raise BadAnswer("must be a whole number")
    return Stored(value_number=Decimal(repr(value) if isinstance(value, float) else value))


def _text(q: Question, value: Any) -> Stored:
    if not isinstance(value, str) or not value.strip():
        raise BadAnswer("must be non-empty text")
    if "\x00" in value:
        raise BadAnswer("must not contain NUL characters")
    if len(value) > (q.max_length or 0):
        raise BadAnswer(f"must be at most {q.max_length} characters")
    return Stored(value_text=value)


def _date(q: Question, value: Any) -> Stored:
    try:
        parsed = date.fromisoformat(value) if isinstance(value, str) and len(value) == 10 else None
    except ValueError:
        parsed = None
    if parsed is None:
        raise BadAnswer("must be a date, YYYY-MM-DD")
    return Stored(value_text=parsed.isoformat())


def _yes_no(q: Question, value: Any) -> Stored:
    if not isinstance(value, bool):
        raise BadAnswer("must be true or false")
    return Stored(value_text="yes" if value else "no")


_CHECKS: dict[str, Callable[[Question, Any], Stored]] = {
    "single_choice": _single,
    "multiple_choice": _multiple,
    "rating": _scale,
    "nps": _scale,
    "number": _number,
    "short_text": _text,
    "long_text": _text,
    "date": _date,
    "yes_no": _yes_no,
}


def check(q: Question, value: Any) -> Stored:
    """The stored form of `value` for `q`, or BadAnswer."""
    return _CHECKS[q.type](q, value)


def typed(q: Question, s: Stored) -> Any:
    """The answer as the respondent gave it (the inverse of `check`)."""
    if q.type == "multiple_choice":
        return list(s.choices or [])
    if q.type in ("rating", "nps"):
        return None if s.value_number is None else int(s.value_number)
    if q.type == "number":
        if s.value_number is None:
            return None
        n = s.value_number
        return int(n) if n == n.to_integral_value() else float(n)
    if q.type == "yes_no":
        return None if s.value_text is None else s.value_text == "yes"
    return s.value_text


def _matches(given: Any, wanted: Any) -> bool:
    if isinstance(given, bool) or isinstance(wanted, bool):
        return given is wanted
    if _is_number(given) and _is_number(wanted):
        return float(given) == float(wanted)
    return bool(given == wanted)


def shown(q: Question, answers: Mapping[str, Any]) -> bool:
    """Skip logic: is `q` shown, given the (visible) answers so far?"""
    if q.show_if is None:
        return True
    given = answers.get(q.show_if.question)
    if given is None:
        return False
    wanted = q.show_if.answer if isinstance(q.show_if.answer, list) else [q.show_if.answer]
    values = given if isinstance(given, list) else [given]
    return any(_matches(g, w) for g in values for w in wanted)


def visible_answers(questions: Sequence[Question], answers: Mapping[str, Any]) -> dict[str, Any]:
    """The answers that still count: those to questions shown, in question order."""
    out: dict[str, Any] = {}
    for q in questions:
        if q.key in answers and answers[q.key] is not None and shown(q, out):
            out[q.key] = answers[q.key]
    return out


def missing_required(questions: Sequence[Question], answers: Mapping[str, Any]) -> list[str]:
    visible = visible_answers(questions, answers)
    return [q.key for q in questions if q.required and shown(q, visible) and q.key not in visible]
