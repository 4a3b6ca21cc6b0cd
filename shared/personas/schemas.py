"""Persona shapes: generation requests, personas with evidence, edits, versions, fit."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.personas.build import FIELD_KEYS
from shared.validation import Id, text

FieldKey = Literal[FIELD_KEYS]  # type: ignore[valid-type]
Lockable = Literal[("name", "tagline", "narrative", *FIELD_KEYS)]  # type: ignore[valid-type]


class GenerateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    segment_ids: list[Id] | None = Field(
        default=None,
        min_length=1,
        max_length=50,
        description="Target segments; default: the top segments by the STP score.",
    )
    top: int = Field(default=5, ge=1, le=20, description="How many segments by default.")


class FieldEdit(BaseModel):
    """A marketer's version of one field: free text, and optionally a list of items."""

    model_config = ConfigDict(extra="forbid")

    text: text(2000)  # type: ignore[valid-type]
    items: list[text(500)] | None = Field(default=None, max_length=20)  # type: ignore[valid-type]


class PersonaUpdate(BaseModel):
    """Edits lock what they touch: regeneration keeps them and shows current data beside."""

    model_config = ConfigDict(extra="forbid")

    name: text(200) | None = Field(default=None, min_length=1)  # type: ignore[valid-type]
    tagline: text(500) | None = None  # type: ignore[valid-type]
    narrative: text(5000) | None = None  # type: ignore[valid-type]
    fields: dict[FieldKey, FieldEdit] | None = Field(default=None, max_length=len(FIELD_KEYS))
    unlock: list[Lockable] | None = Field(
        default=None, max_length=len(FIELD_KEYS) + 3, description="Release these locks."
    )


class PersonaRead(BaseModel):
    id: uuid.UUID
    segment_id: uuid.UUID
    segment_name: str
    status: Literal["current", "segment_deleted"] = Field(
        description="`segment_deleted`: the segment is gone; the persona shows its last data."
    )
    name: str
    tagline: str
    narrative: str
    fields: dict[str, dict[str, Any]] = Field(
        description="Each field with `status`, `summary`, `value`, `evidence` (n, share, ci95, "
        "store_share, lift, source), `distribution`; locked fields carry `edited` and keep "
        "the generated data beside it."
    )
    locked: list[str]
    current_version: int
    covered_customers: int
    generated_at: datetime
    created_at: datetime
    updated_at: datetime


class Change(BaseModel):
    field: str
    kind: str
    text: str
    value: str | None = None
    from_: Any = Field(default=None, alias="from")
    to: Any = None

    model_config = ConfigDict(populate_by_name=True)


class VersionRead(BaseModel):
    version: int
    job_id: uuid.UUID | None
    name: str
    tagline: str
    covered_customers: int
    changes: list[Change]
    created_at: datetime


class PersonaBrief(BaseModel):
    id: uuid.UUID
    name: str
    tagline: str
    segment_id: uuid.UUID


class Alternative(BaseModel):
    persona: PersonaBrief
    score: float


class CustomerPersona(BaseModel):
    customer_id: uuid.UUID
    persona: PersonaBrief
    score: float = Field(description="0..1: 1 for a member of the persona's segment.")
    method: Literal["membership", "similarity"]
    matched: list[dict[str, Any]] = Field(
        description="The customer's facts and how common each is in the persona's segment."
    )
    alternatives: list[Alternative]
