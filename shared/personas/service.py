"""Persona rules: generation from segments (a job), living updates with versions and drift,
a marketer's locked edits, and which persona a customer fits best."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from shared import errors
from shared.customers import service as customers
from shared.errors import FieldError, InvalidInput, NotFound
from shared.jobs.runner import JobKind, JobRun
from shared.models import Persona, PersonaVersion, Segment
from shared.outbound.emit import emit
from shared.outbound.schemas import EventType
from shared.personas import build, evidence, repository
from shared.personas.schemas import (
    Alternative,
    Change,
    CustomerPersona,
    PersonaBrief,
    PersonaRead,
    PersonaUpdate,
    VersionRead,
)
from shared.segments import profile as segment_profile
from shared.segments import service as segments
from shared.segments.schemas import CompareRequest

GENERATE = "personas.generate"
MAX_COMPARED = 50


def parse_id(raw: str | uuid.UUID) -> uuid.UUID:
    return errors.parse_id(raw, "persona")


async def get(session: AsyncSession, tenant_id: uuid.UUID, raw: str | uuid.UUID) -> Persona:
    persona = await repository.get(session, tenant_id, parse_id(raw))
    if persona is None:
        raise NotFound("No persona with this id.")
    return persona


# --- generation -----------------------------------------------------------------------------


async def check_segments(
    session: AsyncSession, tenant_id: uuid.UUID, raw_ids: Sequence[str]
) -> list[str]:
    """The request's segments exist (a 422 pointing at the one that does not)."""
    out = []
    for n, raw in enumerate(raw_ids):
        try:
            segment = await segments.get(session, tenant_id, raw)
        except NotFound:
            raise InvalidInput(
                "No segment with this id.",
                errors=[FieldError(["body", "segment_ids", n], "no segment with this id")],
            ) from None
        out.append(str(segment.id))
    return list(dict.fromkeys(out))


async def top_segments(session: AsyncSession, tenant_id: uuid.UUID, top: int) -> list[uuid.UUID]:
    """The top non-empty segments by the STP score (segments' compare, default weights).
    The store's own segments (rule, static, segmentation) come first; the built-in
    core-customer segments are considered only when there are no others."""
    rows = await session.execute(
        text(
            "SELECT id FROM segments WHERE tenant_id = :t AND size > 0 AND (kind <> 'builtin' "
            "OR NOT EXISTS (SELECT 1 FROM segments o WHERE o.tenant_id = :t AND o.size > 0 "
            "AND o.kind <> 'builtin')) ORDER BY size DESC, id LIMIT :n"
        ),
        {"t": tenant_id, "n": MAX_COMPARED},
    )
    ids = [str(i) for i in rows.scalars()]
    if not ids:
        return []
    ranked = await segment_profile.compare(session, tenant_id, CompareRequest(segment_ids=ids))
    return [s.segment_id for s in ranked.ranking[:top]]


async def gather(session: AsyncSession, tenant_id: uuid.UUID, segment: Segment) -> build.Facts:
    members, total, known = await repository.coverage(session, tenant_id, segment.id)
    dists = await repository.distributions(session, tenant_id, segment.id, members, total)
    when, when_known = await repository.when_they_buy(session, tenant_id, segment.id)
    return build.Facts(
        segment_id=str(segment.id),
        segment_name=segment.name,
        members=members,
        customers=total,
        dists={**dists, **when},
        known={**known, **when_known},
        numbers=await repository.numbers(session, tenant_id, segment.id),
        surveys=await evidence.survey_evidence(session, tenant_id, segment.id),
        interviews=await evidence.interview_evidence(session, tenant_id, segment.id),
        dropoffs=await evidence.funnel_dropoffs(session, tenant_id, segment.id),
        value_analysed=await repository.value_analysed(session, tenant_id),
    )


def compose(facts: build.Facts, taken: Sequence[str], current: str | None = None) -> dict[str, Any]:
    """The generated persona (name, tagline, narrative, fields) from a segment's facts."""
    fields = build.build_fields(facts)
    traits = build.distinctive(facts)
    name = build.make_name(facts, traits, taken, current)
    return {
        "name": name,
        "tagline": build.make_tagline(traits),
        "narrative": build.make_narrative(name, facts, fields),
        "fields": fields,
        "covered_customers": facts.members,
        "traits": [
            {
                "dimension": t.dim,
                "value": t.value,
                "share": round(t.share, 4),
                "lift": round(t.lift, 3),
            }  # fmt: skip
            for t in traits[:5]
        ],
    }


async def generate_one(
    session: AsyncSession, tenant_id: uuid.UUID, segment: Segment, job_id: uuid.UUID | None
) -> tuple[Persona, list[dict[str, Any]]]:
    """Create the segment's persona, or update it in place as a new version."""
    persona = await repository.get_by_segment(session, tenant_id, segment.id)
    taken = [
        n for sid, n in (await repository.names(session, tenant_id)).items() if sid != segment.id
    ]
    facts = await gather(session, tenant_id, segment)
    made = compose(facts, taken, persona.name if persona is not None else None)
    now = datetime.now(UTC)
    if persona is None:
        persona = Persona(
            tenant_id=tenant_id, segment_id=segment.id, overrides={}, current_version=0
        )
        session.add(persona)
        previous = None
    else:
        previous = {
            "name": persona.name,
            "tagline": persona.tagline,
            "fields": persona.fields,
            "covered_customers": persona.covered_customers,
        }
    changes = build.drift(previous, made)
    persona.segment_name = segment.name
    persona.name = made["name"]
    persona.tagline = made["tagline"]
    persona.narrative = made["narrative"]
    persona.fields = made["fields"]
    persona.covered_customers = made["covered_customers"]
    persona.current_version = (persona.current_version or 0) + 1
    persona.generated_at = now
    persona.updated_at = now
    await session.flush()
    session.add(
        PersonaVersion(
            tenant_id=tenant_id,
            persona_id=persona.id,
            version=persona.current_version,
            job_id=job_id,
            snapshot={k: made[k] for k in ("name", "tagline", "narrative", "fields", "traits")},
            changes=changes,
            covered_customers=made["covered_customers"],
        )
    )
    await session.flush()
    await emit(
        session,
        tenant_id,
        EventType.persona_updated,
        {"persona_id": str(persona.id), "version": persona.current_version},
    )
    return persona, changes


async def generate(run: JobRun) -> dict[str, Any]:
    tenant_id = run.tenant_id
    raw = run.params.get("segment_ids")
    if raw:
        ids = [uuid.UUID(s) for s in raw]
    else:
        ids = await top_segments(run.session, tenant_id, int(run.params.get("top", 5)))
    made, skipped = [], []
    for n, segment_id in enumerate(ids, start=1):
        segment = await run.session.get(Segment, (tenant_id, segment_id))
        if segment is None:
            skipped.append({"segment_id": str(segment_id), "reason": "the segment is gone"})
            continue
        persona, changes = await generate_one(run.session, tenant_id, segment, run.job_id)
        made.append(
            {
                "persona_id": str(persona.id),
                "segment_id": str(segment.id),
                "name": persona.name,
                "version": persona.current_version,
                "covered_customers": persona.covered_customers,
                "changes": [c["text"] for c in changes],
            }
        )
        await run.report(n / len(ids))
    return {"personas": made, "skipped": skipped}


GENERATE_KIND = JobKind(GENERATE, generate, timeout_s=600, max_tries=3)


# --- reading and editing --------------------------------------------------------------------


def _merged_fields(persona: Persona) -> dict[str, dict[str, Any]]:
    out = {}
    for key, generated in (persona.fields or {}).items():
        edit = (persona.overrides or {}).get(key)
        if edit is None:
            out[key] = {**generated, "locked": False}
        else:
            out[key] = {
                **generated,
                "locked": True,
                "edited": edit,
                "summary": edit["text"],
                "current": {k: generated.get(k) for k in ("status", "summary", "value")},
            }
    return out


def to_read(persona: Persona, segment_size: int | None) -> PersonaRead:
    overrides = persona.overrides or {}

    def top(key: str, generated: str) -> str:
        edit = overrides.get(key)
        return str(edit["text"]) if edit else generated

    return PersonaRead(
        id=persona.id,
        segment_id=persona.segment_id,
        segment_name=persona.segment_name,
        status="current" if segment_size is not None else "segment_deleted",
        name=top("name", persona.name),
        tagline=top("tagline", persona.tagline),
        narrative=top("narrative", persona.narrative),
        fields=_merged_fields(persona),
        locked=sorted(overrides),
        current_version=persona.current_version,
        covered_customers=segment_size if segment_size is not None else 0,
        generated_at=persona.generated_at,
        created_at=persona.created_at,
        updated_at=persona.updated_at,
    )


async def read_many(
    session: AsyncSession, tenant_id: uuid.UUID, personas: Sequence[Persona]
) -> list[PersonaRead]:
    sizes = await repository.existing_segments(session, tenant_id, [p.segment_id for p in personas])
    return [to_read(p, sizes.get(p.segment_id)) for p in personas]


async def read(session: AsyncSession, tenant_id: uuid.UUID, raw: str) -> PersonaRead:
    return (await read_many(session, tenant_id, [await get(session, tenant_id, raw)]))[0]


async def update(
    session: AsyncSession, tenant_id: uuid.UUID, raw: str, data: PersonaUpdate
) -> PersonaRead:
    persona = await get(session, tenant_id, raw)
    overrides = dict(persona.overrides or {})
    now = datetime.now(UTC).isoformat()
    for key in ("name", "tagline", "narrative"):
        value = getattr(data, key)
        if key in data.model_fields_set and value is not None:
            overrides[key] = {"text": value, "edited_at": now}
    for key, edit in (data.fields or {}).items():
        overrides[key] = {**edit.model_dump(exclude_none=True), "edited_at": now}
    for key in data.unlock or []:
        overrides.pop(key, None)
    persona.overrides = overrides
    persona.updated_at = datetime.now(UTC)
    await session.flush()
    return await read(session, tenant_id, str(persona.id))


async def delete(session: AsyncSession, tenant_id: uuid.UUID, raw: str) -> None:
    persona = await get(session, tenant_id, raw)
    await repository.delete_persona(session, tenant_id, persona.id)


async def versions(
    session: AsyncSession, tenant_id: uuid.UUID, raw: str, before: int | None, limit: int
) -> list[VersionRead]:
    persona = await get(session, tenant_id, raw)
    rows = await repository.versions(session, tenant_id, persona.id, before=before, limit=limit)
    return [
        VersionRead(
            version=v.version,
            job_id=v.job_id,
            name=str(v.snapshot.get("name", "")),
            tagline=str(v.snapshot.get("tagline", "")),
            covered_customers=v.covered_customers,
            changes=[Change.model_validate(c) for c in v.changes],
            created_at=v.created_at,
        )
        for v in rows
    ]


# --- which persona a customer fits ----------------------------------------------------------

# Persona field -> how to read the customer's value(s) for it.
_SIMILARITY: dict[str, Any] = {
    "gender": lambda c, v: [c.gender],
    "marital_status": lambda c, v: [c.marital_status],
    "income_band": lambda c, v: [c.income_band],
    "education_level": lambda c, v: [c.education_level],
    "occupation": lambda c, v: [c.occupation],
    "location": lambda c, v: [c.city],
    "interests": lambda c, v: c.interests or [],
    "values": lambda c, v: c.values or [],
    "top_categories": lambda c, v: c.top_categories or [],
    "device": lambda c, v: [c.preferred_device],
    "order_channel": lambda c, v: [c.order_channel],
    "channels": lambda c, v: [c.preferred_channel],
    "lifecycle_mix": lambda c, v: [v.lifecycle_stage if v is not None else None],
}


def similarity(customer: Any, value: Any, fields: dict[str, Any]) -> tuple[float, list[Any]]:
    """How typical the customer's facts are of a persona: per field, the share of the
    persona's segment with the customer's value relative to the field's most common value;
    averaged over the fields where both are known."""
    scores, matched = [], []
    for key, read_value in _SIMILARITY.items():
        dist = (fields.get(key) or {}).get("distribution") or []
        mine = [str(x) for x in read_value(customer, value) if x is not None]
        if not dist or not mine:
            continue
        shares = {str(i["value"]): float(i["share"]) for i in dist}
        best = max(shares.values()) or 1.0
        s = max(shares.get(x, 0.0) for x in mine) / best
        scores.append(s)
        matched.append({"field": key, "values": mine, "score": round(s, 3)})
    if not scores:
        return 0.0, []
    return sum(scores) / len(scores), matched


async def fit(session: AsyncSession, tenant_id: uuid.UUID, raw_customer: str) -> CustomerPersona:
    customer = await customers.resolve(session, tenant_id, raw_customer)
    personas = await repository.all_(session, tenant_id)
    sizes = await repository.existing_segments(session, tenant_id, [p.segment_id for p in personas])
    live = [p for p in personas if p.segment_id in sizes]
    if not live:
        raise NotFound("No personas yet: generate them with POST /v1/personas/generate.")
    member_of = await repository.memberships(
        session, tenant_id, customer.id, [p.segment_id for p in live]
    )
    value = (
        await session.execute(
            text(
                "SELECT lifecycle_stage FROM customer_values WHERE tenant_id = :t "
                "AND customer_id = :c"
            ),
            {"t": tenant_id, "c": customer.id},
        )
    ).one_or_none()
    scored = []
    for p in live:
        s, matched = similarity(customer, value, p.fields or {})
        member = p.segment_id in member_of
        scored.append((1.0 if member else round(s * 0.99, 4), member, s, matched, p))
    scored.sort(key=lambda x: (-x[0], -x[2], str(x[4].id)))
    best = scored[0]

    def brief(p: Persona) -> PersonaBrief:
        edits = p.overrides or {}
        return PersonaBrief(
            id=p.id,
            name=str(edits["name"]["text"]) if "name" in edits else p.name,
            tagline=str(edits["tagline"]["text"]) if "tagline" in edits else p.tagline,
            segment_id=p.segment_id,
        )

    return CustomerPersona(
        customer_id=customer.id,
        persona=brief(best[4]),
        score=round(best[0], 4),
        method="membership" if best[1] else "similarity",
        matched=best[3],
        alternatives=[Alternative(persona=brief(x[4]), score=x[0]) for x in scored[1:5]],
    )
