"""Builds a persona from a segment's facts: plain functions, no I/O.

Every field carries its evidence (sample size, share with a Wilson 95% interval, lift against
all customers, source); a field without enough evidence says so and names the survey question
that would fill it. The name and tagline come from what sets the segment apart most (the
highest-lift facts), so the same data always gives the same persona."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from shared.personas.evidence import FunnelDropoff, InterviewEvidence, QuestionEvidence

MIN_N = 5  # fewer known values than this is too little evidence
MIN_COVERAGE = 0.1  # ... or fewer than this share of the segment, unless MIN_N_ANYWAY are known
MIN_N_ANYWAY = 30
Z95 = 1.959964

# (survey library question key, or None when the library has none; the question): what a
# survey would ask to fill a field. Keys are those of the surveys domain's question library.
FILL_WITH: dict[str, tuple[str | None, str]] = {
    "age_band": ("age_band", "Which age group are you in?"),
    "gender": (None, "What is your gender?"),
    "marital_status": ("marital_status", "Are you married?"),
    "children": ("children", "How many children do you have?"),
    "income_band": ("income_band", "What is your household's yearly income?"),
    "education_level": (
        "education_level", "What is the highest level of education you completed?"
    ),
    "occupation": ("job_level", "Which best describes your job level?"),
    "industry": ("industry", "Which industry do you work in?"),
    "location": ("city", "Which city do you live in?"),
    "interests": ("interests", "What are you interested in?"),
    "values": ("values", "What matters most to you when you shop?"),
    "lifestyle": (None, "How would you describe your lifestyle?"),
    "motivations": ("motivations", "What makes you buy from us?"),
    "goals": ("goals", "What are you trying to achieve when you buy from us?"),
    "pain_points": ("frustrations", "What frustrates you when shopping online?"),
    "objections": (None, "What almost stopped you from buying from us?"),
    "decision_role": ("decision_role", "Who decides purchases in your household?"),
    "channels": ("preferred_channel", "How do you prefer to hear from us?"),
    "quotes": (None, "An open (long text) question, or interview notes with quotes"),
}  # fmt: skip

# Which survey topics (profile fact or library question a question maps to) feed a field.
TOPICS: dict[str, frozenset[str]] = {
    "goals": frozenset({"goals", "goal"}),
    "pain_points": frozenset({"frustrations", "frustration", "pain_points", "challenges"}),
    "objections": frozenset({"objections", "objection", "barriers", "barrier"}),
    "decision_role": frozenset({"decision_role", "purchase_decider", "who_decides"}),
    "motivations": frozenset({"motivations", "motivation"}),
    "interests": frozenset({"interests"}),
    "values": frozenset({"values"}),
    "lifestyle": frozenset({"lifestyle"}),
    "channels": frozenset({"preferred_channel", "channel", "channels"}),
}
INTERVIEW_TAGS: dict[str, frozenset[str]] = {
    "goals": frozenset({"goal", "goals"}),
    "pain_points": frozenset({"pain point", "pain_point", "pain", "frustration", "challenge"}),
    "objections": frozenset({"objection", "barrier"}),
    "motivations": frozenset({"motivation"}),
    "channels": frozenset({"channel"}),
}

SECTIONS: dict[str, tuple[str, ...]] = {
    "demographics": ("age_band", "gender", "marital_status", "children", "income_band",
                     "education_level", "occupation", "industry", "location"),
    "psychographics": ("interests", "values", "lifestyle", "motivations"),
    "behaviour": ("orders_per_year", "average_order_value", "predicted_clv", "recency_days",
                  "lifecycle_mix", "order_channel", "device", "top_categories", "weekday",
                  "hour"),
    "voice": ("goals", "pain_points", "objections", "decision_role", "channels", "quotes"),
}  # fmt: skip
FIELD_KEYS = tuple(k for keys in SECTIONS.values() for k in keys)
SECTION_OF = {k: s for s, keys in SECTIONS.items() for k in keys}

LABELS = {
    "age_band": "Age", "gender": "Gender", "marital_status": "Marital status",
    "children": "Children", "income_band": "Income band", "education_level": "Education",
    "occupation": "Occupation", "industry": "Industry", "location": "Location",
    "interests": "Interests", "values": "Values", "lifestyle": "Lifestyle",
    "motivations": "Motivations", "orders_per_year": "Orders per year",
    "average_order_value": "Average order value", "predicted_clv": "Predicted lifetime value",
    "recency_days": "Days since last order", "lifecycle_mix": "Lifecycle mix",
    "order_channel": "Orders via", "device": "Device", "top_categories": "Top categories",
    "weekday": "Day they buy (UTC)", "hour": "Time they buy (UTC)", "goals": "Goals",
    "pain_points": "Challenges and pain points", "objections": "Objections and barriers",
    "decision_role": "Decision role", "channels": "Preferred channels", "quotes": "Quotes",
}  # fmt: skip

# Profile dimension feeding each categorical field ("location" combines city and country).
DIMENSION_OF = {
    "age_band": "age_band", "gender": "gender", "marital_status": "marital_status",
    "children": "children", "income_band": "income_band", "education_level": "education_level",
    "occupation": "occupation", "industry": "industry", "location": "city",
    "interests": "interests", "values": "values", "lifestyle": "lifestyle",
    "motivations": "motivations", "lifecycle_mix": "lifecycle_stage",
    "order_channel": "order_channel", "device": "device", "top_categories": "top_categories",
    "weekday": "weekday", "hour": "hour", "channels": "preferred_channel",
    "decision_role": "decision_role",
}  # fmt: skip
MULTI = frozenset({"interests", "values", "lifestyle", "motivations", "top_categories"})
NUMERIC = ("orders_per_year", "average_order_value", "predicted_clv", "recency_days")
MONEY = frozenset({"average_order_value", "predicted_clv"})

# What sets a segment apart, in words: (dimension, value) -> adjective for the name.
ADJECTIVES: dict[tuple[str, str], str] = {
    ("top_categories", "deals"): "Frugal", ("top_categories", "household"): "Practical",
    ("top_categories", "kids"): "Family-first", ("top_categories", "home"): "Homely",
    ("top_categories", "skincare"): "Polished", ("top_categories", "fragrance"): "Luxe",
    ("top_categories", "fashion"): "Trendy", ("top_categories", "beauty"): "Glam",
    ("top_categories", "gifts"): "Generous", ("income_band", "150k+"): "Premium",
    ("income_band", "100k-150k"): "Premium", ("income_band", "<25k"): "Budget",
    ("income_band", "25k-50k"): "Budget", ("age_band", "18-24"): "Young",
    ("age_band", "55-64"): "Seasoned", ("age_band", "65+"): "Seasoned",
    ("device", "mobile"): "Mobile", ("device", "desktop"): "Deliberate",
    ("order_channel", "app"): "App-happy", ("preferred_channel", "social"): "Social",
    ("values", "price"): "Bargain-hunting", ("values", "family"): "Family-first",
    ("values", "quality"): "Quality-minded", ("lifecycle_stage", "new"): "New",
    ("lifecycle_stage", "churned"): "Lapsed", ("lifecycle_stage", "at_risk"): "Wavering",
    ("lifecycle_stage", "active"): "Loyal", ("rfm_segment", "champions"): "Champion",
    ("rfm_segment", "loyal"): "Loyal", ("marital_status", "married"): "Married",
    ("values", "thoughtfulness"): "Thoughtful", ("values", "convenience"): "Busy",
    ("values", "health"): "Healthy", ("values", "sustainability"): "Green",
    ("values", "exclusivity"): "Exclusive", ("values", "self-expression"): "Expressive",
    ("values", "novelty"): "Novelty-seeking", ("values", "status"): "Stylish",
    ("values", "practicality"): "Practical", ("values", "value for money"): "Value-seeking",
    ("values", "reliability"): "Reliable",
}  # fmt: skip
FIRST_NAMES: dict[str, tuple[str, ...]] = {
    "A": ("Alice", "Adam", "Ava", "Arjun"), "B": ("Ben", "Bella", "Bianca", "Bruno"),
    "C": ("Chloe", "Carlos", "Clara", "Cole"), "D": ("Dan", "Daisy", "Dev", "Dora"),
    "E": ("Emma", "Eli", "Esme", "Ezra"), "F": ("Fred", "Fiona", "Felix", "Freya"),
    "G": ("Grace", "Gus", "Gina", "Gabe"), "H": ("Hannah", "Henry", "Hugo", "Hazel"),
    "I": ("Iris", "Ivan", "Isla", "Ike"), "J": ("Jack", "Julia", "Jonah", "Jade"),
    "K": ("Kate", "Kai", "Kira", "Kurt"), "L": ("Lucy", "Leo", "Lena", "Luke"),
    "M": ("Mia", "Max", "Maya", "Milo"), "N": ("Nora", "Nate", "Nina", "Noel"),
    "O": ("Olivia", "Oscar", "Orla", "Otto"), "P": ("Priya", "Paul", "Petra", "Pete"),
    "Q": ("Quinn", "Queenie", "Quentin", "Quincy"), "R": ("Rosa", "Ravi", "Ruby", "Reid"),
    "S": ("Sophie", "Sam", "Sara", "Sid"), "T": ("Tara", "Tom", "Tess", "Theo"),
    "U": ("Uma", "Uri", "Una", "Ugo"), "V": ("Vera", "Vic", "Vida", "Vince"),
    "W": ("Wendy", "Will", "Willa", "Wes"), "X": ("Xena", "Xavi", "Xia", "Xander"),
    "Y": ("Yara", "Yusuf", "Yasmin", "Yves"), "Z": ("Zoe", "Zack", "Zara", "Zeke"),
}  # fmt: skip
PHRASES: dict[str, str] = {
    "top_categories": "buys {v}", "income_band": "earns {v}", "age_band": "aged {v}",
    "device": "shops on {v}", "order_channel": "orders via {v}",
    "preferred_channel": "prefers {v}", "values": "values {v}", "interests": "into {v}",
    "lifecycle_stage": "mostly {v} customers", "marital_status": "mostly {v}",
    "gender": "mostly {v}", "country": "based in {v}", "city": "based in {v}",
    "rfm_segment": "mostly {v}", "education_level": "{v} educated",
    "occupation": "often {v}", "industry": "works in {v}", "children": "{v} children",
}  # fmt: skip
# Share phrases for drift: "share of {subject} rose from 40% to 58%".
SUBJECTS: dict[str, str] = {
    "device": "{v} buyers", "top_categories": "{v} buyers", "age_band": "customers aged {v}",
    "income_band": "customers earning {v}", "lifecycle_mix": "{v} customers",
    "order_channel": "{v} orders", "channels": "customers preferring {v}",
    "weekday": "orders on {v}", "hour": "orders in the {v}",
    "decision_role": "“{v}” answers", "goals": "“{v}” answers",
    "pain_points": "“{v}” answers", "objections": "“{v}” answers",
}  # fmt: skip
DISTINCTIVE_DIMS = ("top_categories", "income_band", "age_band", "device", "order_channel",
                    "preferred_channel", "values", "lifecycle_stage", "interests",
                    "marital_status", "occupation", "education_level")  # fmt: skip
WEEKDAYS = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")


def wilson(count: int, n: int) -> tuple[float, float] | None:
    """Wilson score 95% interval of a share count/n (None without a sample)."""
    if n <= 0:
        return None
    p = count / n
    denom = 1 + Z95**2 / n
    centre = (p + Z95**2 / (2 * n)) / denom
    half = Z95 * math.sqrt(p * (1 - p) / n + Z95**2 / (4 * n * n)) / denom
    return (round(max(0.0, centre - half), 4), round(min(1.0, centre + half), 4))


@dataclass(frozen=True)
class Dist:
    """One value's counts in the segment and the store (from the segment profile)."""

    value: str
    count: int
    store_count: int


@dataclass(frozen=True)
class Numeric:
    """A per-customer number's median in the segment and the store."""

    median: float | None
    n: int
    store_median: float | None
    store_n: int


@dataclass
class Facts:
    """Everything known about one segment, gathered by the service."""

    segment_id: str
    segment_name: str
    members: int
    customers: int
    dists: dict[str, list[Dist]]  # by profile dimension
    known: dict[str, tuple[int, int]]  # dimension -> (members with a value, customers)
    numbers: dict[str, Numeric]
    surveys: list[QuestionEvidence] = field(default_factory=list)
    interviews: list[InterviewEvidence] = field(default_factory=list)
    dropoffs: list[FunnelDropoff] = field(default_factory=list)
    value_analysed: bool = True


def _pct(x: float) -> str:
    return f"{round(x * 100):d}%"


def _enough(known: int, members: int) -> bool:
    if known < MIN_N:
        return False
    return known >= MIN_N_ANYWAY or known >= MIN_COVERAGE * members


def _too_little(key: str, known: int, why: str | None = None) -> dict[str, Any]:
    library, question = FILL_WITH.get(key, (None, ""))
    reason = why or (
        f"Too little evidence: {known} customer{'s' if known != 1 else ''} with this fact, "
        f"at least {MIN_N} (and a tenth of the segment) needed."
    )
    return {
        "status": "too_little_evidence",
        "summary": reason,
        "fill_with": {"library_question": library, "question": question},
    }


def _share_item(value: str, count: int, n: int, store_count: int, store_n: int) -> dict[str, Any]:
    share = count / n if n else 0.0
    store_share = store_count / store_n if store_n else 0.0
    return {
        "value": value,
        "count": count,
        "share": round(share, 4),
        "ci95": wilson(count, n),
        "store_share": round(store_share, 4),
        "lift": round(share / store_share, 3) if store_share else None,
    }


def _categorical(key: str, facts: Facts, source: str) -> dict[str, Any]:
    dim = DIMENSION_OF[key]
    known, store_known = facts.known.get(dim, (0, 0))
    dist = facts.dists.get(dim, [])
    items = [_share_item(d.value, d.count, known, d.store_count, store_known) for d in dist]
    items = [i for i in items if i["count"] > 0]
    base: dict[str, Any] = {"distribution": items}
    if not _enough(known, facts.members) or not items:
        return {**base, **_too_little(key, known), "evidence": {"n": known, "source": source}}
    top = items[0]
    shown = items[:3] if key in MULTI else items[:1]
    summary = ", ".join(f"{i['value']} ({_pct(i['share'])})" for i in shown)
    if key == "location":
        countries = facts.dists.get("country", [])
        if countries:
            summary += f"; countries: {', '.join(c.value for c in countries[:3])}"
    return {
        **base,
        "status": "ok",
        "value": [i["value"] for i in shown] if key in MULTI else top["value"],
        "summary": summary,
        "evidence": {
            "n": known,
            "count": top["count"],
            "share": top["share"],
            "ci95": top["ci95"],
            "store_share": top["store_share"],
            "lift": top["lift"],
            "source": source,
        },
    }


def _money(x: float) -> str:
    return f"{x:,.2f}"


def _numeric(key: str, facts: Facts) -> dict[str, Any]:
    num = facts.numbers.get(key, Numeric(None, 0, None, 0))
    source = {
        "orders_per_year": "computed from orders (orders since the first order, per year)",
        "average_order_value": "computed from orders (median of customers' average order)",
        "predicted_clv": "customer value analysis (BG/NBD and Gamma-Gamma, median)",
        "recency_days": "computed from orders (median days since the last order)",
    }[key]
    evidence = {"n": num.n, "store_n": num.store_n, "source": source}
    if key == "predicted_clv" and not facts.value_analysed:
        return {
            "status": "too_little_evidence",
            "summary": "Not analysed yet: run POST /v1/analyses/customer-value.",
            "evidence": evidence,
        }
    if num.median is None or num.n < MIN_N:
        return {**_too_little(key, num.n), "evidence": evidence}
    lift = round(num.median / num.store_median, 3) if num.store_median else None
    digits = 0 if key == "recency_days" else 2
    value = round(num.median, digits)
    shown = _money(value) if key in MONEY else f"{value:g}"
    store = (
        ""
        if num.store_median is None
        else (_money(num.store_median) if key in MONEY else f"{round(num.store_median, digits):g}")
    )
    return {
        "status": "ok",
        "value": value,
        "summary": f"{shown} (all customers: {store})" if store else shown,
        "evidence": {
            **evidence,
            "median": value,
            "store_median": None if num.store_median is None else round(num.store_median, 2),
            "lift": lift,
        },
    }


def _survey_questions(facts: Facts, key: str) -> list[QuestionEvidence]:
    topics = TOPICS.get(key, frozenset())
    return [
        q for q in facts.surveys if q.topic.lower() in topics or q.question_key.lower() in topics
    ]


def _quote_items(facts: Facts, key: str) -> list[dict[str, Any]]:
    tags = INTERVIEW_TAGS.get(key, frozenset())
    return [
        {
            "text": i.text,
            "source": f"interview {i.interview_id} ({i.interviewed_at[:10]})",
            "customer_id": i.customer_id,
        }
        for i in facts.interviews
        if tags & {t.lower() for t in i.tags}
    ][:5]


def _survey_items(key: str, facts: Facts) -> tuple[list[dict[str, Any]], int, list[str]]:
    items: list[dict[str, Any]] = []
    n, sources = 0, []
    for q in _survey_questions(facts, key):
        n = max(n, q.respondents)
        if q.respondents < MIN_N:
            continue
        src = f"survey '{q.survey_title}', question '{q.question_text}'"
        if q.self_reported:
            src += " (self-reported)"
        sources.append(src)
        for a in q.answers[:5]:
            item = _share_item(a.value, a.count, q.respondents, a.store_count, q.store_respondents)
            if item["count"] > 0:
                items.append({**item, "text": a.value, "source": src})
    return items, n, sources


def _dropoff_items(facts: Facts) -> tuple[list[dict[str, Any]], int]:
    """Funnel steps after which this segment leaves more often than the store does."""
    items, n = [], 0
    for d in facts.dropoffs:
        if d.reached < MIN_N:
            continue
        rate = d.dropped / d.reached
        store_rate = d.store_dropped / d.store_reached if d.store_reached else 0.0
        if rate >= 0.2 and (not store_rate or rate / store_rate >= 1.1):
            items.append(
                {
                    "text": f"stops after {d.from_step} (does not go on to {d.to_step})",
                    "value": f"{d.funnel_name}: {d.from_step} -> {d.to_step}",
                    "count": d.dropped,
                    "share": round(rate, 4),
                    "ci95": wilson(d.dropped, d.reached),
                    "store_share": round(store_rate, 4),
                    "lift": round(rate / store_rate, 3) if store_rate else None,
                    "source": f"funnel '{d.funnel_name}', step {d.step}",
                }
            )
            n = max(n, d.reached)
    return items, n


def _voice(key: str, facts: Facts) -> dict[str, Any]:
    """Goals, pain points, objections, decision role, motivations from survey answers and
    interview tags (objections also from funnel drop-offs)."""
    items, n, sources = _survey_items(key, facts)
    quotes = _quote_items(facts, key)
    if key == "objections":
        more, reached = _dropoff_items(facts)
        items += more
        n = max(n, reached)
        if more:
            sources.append("funnel drop-offs")
    items.sort(key=lambda i: (-(i["share"] or 0), i["text"]))
    # The few answers that matter: at most five, none given by under 5% (but at least one).
    items = items[:1] + [i for i in items[1:5] if (i["share"] or 0) >= 0.05]
    if not items and not quotes:
        out = _too_little(key, n)
        if n == 0:
            out["summary"] = "Too little evidence: no survey answers or interview notes yet."
        return {**out, "evidence": {"n": n, "source": "survey answers, interviews"}}
    top = items[0] if items else None
    if top is None:
        n = len(quotes)  # the evidence is the interview quotes themselves
    summary = "; ".join(f"{i['text']} ({_pct(i['share'])})" for i in items[:3])
    if not summary and quotes:
        summary = "; ".join(q["text"] for q in quotes[:2])
    return {
        "status": "ok",
        "value": top["text"] if key == "decision_role" and top else [i["text"] for i in items],
        "summary": summary,
        "items": items,
        "quotes": quotes,
        "distribution": items,
        "evidence": {
            "n": n,
            "count": top["count"] if top else len(quotes),
            "share": top["share"] if top else None,
            "ci95": top["ci95"] if top else None,
            "store_share": top["store_share"] if top else None,
            "lift": top["lift"] if top else None,
            "source": "; ".join(sources) or "interviews",
        },
    }


def _merge(fact_field: dict[str, Any], survey_field: dict[str, Any]) -> dict[str, Any]:
    """A psychographic field: survey answers when there are enough, else the profile fact."""
    if survey_field["status"] == "ok":
        return {**survey_field, "also": fact_field if fact_field["status"] == "ok" else None}
    if fact_field["status"] == "ok":
        return fact_field
    return {**fact_field, "fill_with": survey_field.get("fill_with")}


def _quotes(facts: Facts) -> dict[str, Any]:
    quotes = [
        {"text": t, "source": f"survey '{q.survey_title}', question '{q.question_text}'"}
        for q in facts.surveys
        for t in q.texts
    ]
    quotes += [
        {"text": i.text, "source": f"interview {i.interview_id} ({i.interviewed_at[:10]})"}
        for i in facts.interviews
    ]
    quotes = quotes[:5]
    if not quotes:
        out = _too_little("quotes", 0)
        out["summary"] = "Too little evidence: no free-text answers or interview quotes yet."
        return {**out, "evidence": {"n": 0, "source": "survey answers, interviews"}}
    return {
        "status": "ok",
        "value": [q["text"] for q in quotes],
        "summary": f"{len(quotes)} quote{'s' if len(quotes) != 1 else ''}",
        "items": quotes,
        "evidence": {"n": len(quotes), "source": "survey free text, interviews"},
    }


def build_fields(facts: Facts) -> dict[str, dict[str, Any]]:
    fact_src = "profile fact (store data or survey answers)"
    out: dict[str, dict[str, Any]] = {}
    for key in SECTIONS["demographics"]:
        out[key] = _categorical(key, facts, fact_src)
    for key in SECTIONS["psychographics"]:
        out[key] = _merge(_categorical(key, facts, fact_src), _voice(key, facts))
    for key in SECTIONS["behaviour"]:
        if key in NUMERIC:
            out[key] = _numeric(key, facts)
        else:
            src = "customer value analysis" if key == "lifecycle_mix" else "computed from orders"
            if key == "device":
                src = "computed from events and orders"
            out[key] = _categorical(key, facts, src)
    for key in ("goals", "pain_points", "objections"):
        out[key] = _voice(key, facts)
    # Decision role: the survey question's answers, else the profile fact (which a mapped
    # survey answer or a manual edit sets).
    out["decision_role"] = _merge(
        _categorical("decision_role", facts, "profile fact decision_role"),
        _voice("decision_role", facts),
    )
    out["channels"] = _merge(
        _categorical("channels", facts, "profile fact preferred_channel"), _voice("channels", facts)
    )
    out["quotes"] = _quotes(facts)
    if not facts.value_analysed and out["lifecycle_mix"]["status"] != "ok":
        out["lifecycle_mix"]["summary"] = "Not analysed yet: run POST /v1/analyses/customer-value."
    for key, f in out.items():
        f["key"] = key
        f["label"] = LABELS[key]
        f["section"] = SECTION_OF[key]
    return out


# --- name, tagline, narrative --------------------------------------------------------------


@dataclass(frozen=True)
class Trait:
    dim: str
    value: str
    share: float
    lift: float

    @property
    def score(self) -> float:
        return self.share * math.log(self.lift)


def distinctive(facts: Facts) -> list[Trait]:
    """Facts that set the segment apart: common in it (a quarter or more of those with a
    value) and more common than in the whole store, best first."""
    traits = []
    for dim in DISTINCTIVE_DIMS:
        known, store_known = facts.known.get(dim, (0, 0))
        if known < 3 or not store_known:
            continue
        for d in facts.dists.get(dim, []):
            share, store = d.count / known, d.store_count / store_known
            if d.count >= 3 and share >= 0.25 and store and share / store >= 1.15:
                traits.append(Trait(dim, d.value, share, share / store))
    traits.sort(key=lambda t: (-t.score, t.dim, t.value))
    return traits


def _adjective(trait: Trait | None) -> str:
    if trait is None:
        return "Typical"
    found = ADJECTIVES.get((trait.dim, trait.value))
    if found:
        return found
    word = trait.value.replace("_", " ").strip()
    if trait.dim == "interests":
        return f"{word.capitalize()}-loving"
    return word[:1].upper() + word[1:] if word else "Typical"


def make_name(
    facts: Facts, traits: Sequence[Trait], taken: Iterable[str] = (), current: str | None = None
) -> str:
    """An alliterative name: the adjective of the most distinctive trait (or of the next one
    when another persona has that adjective), and a first name with the same initial, chosen
    by the segment id (skipping names other personas have)."""
    used = set(taken)
    taken_adjectives = {n.rsplit(" ", 1)[0] for n in used}
    adjectives = [_adjective(t) for t in traits[:5]] or [_adjective(None)]
    # Another persona already has the top trait's adjective: the next trait tells them apart.
    adjective = next((a for a in adjectives if a not in taken_adjectives), adjectives[0])
    if current and current.rsplit(" ", 1)[0] == adjective and current not in used:
        return current  # a regenerated persona keeps its name while its trait holds
    letter = next((ch.upper() for ch in adjective if ch.isalpha()), "T")
    names = FIRST_NAMES.get(letter, FIRST_NAMES["T"])
    start = int(hashlib.sha256(facts.segment_id.encode()).hexdigest(), 16) % len(names)
    first_names = {n.rsplit(" ", 1)[-1] for n in used}
    order = [names[(start + i) % len(names)] for i in range(len(names))]
    # A first name no other persona has, else a full name no other persona has.
    for first in [n for n in order if n not in first_names] + order:
        if f"{adjective} {first}" not in used:
            return f"{adjective} {first}"
    return f"{adjective} {names[start]} ({facts.segment_name})"


def make_tagline(traits: Sequence[Trait]) -> str:
    phrases: list[str] = []
    seen: set[str] = set()
    for t in traits:
        if t.dim in seen:
            continue
        seen.add(t.dim)
        value = t.value.replace("_", " ")
        phrases.append(PHRASES.get(t.dim, "{v}").format(v=value))
        if len(phrases) == 3:
            break
    if not phrases:
        return "Much like the store's customers as a whole."
    text = phrases[0] if len(phrases) == 1 else f"{', '.join(phrases[:-1])} and {phrases[-1]}"
    return text[:1].upper() + text[1:] + "."


def _ok(fields: Mapping[str, dict[str, Any]], key: str) -> dict[str, Any] | None:
    f = fields.get(key)
    return f if f is not None and f.get("status") == "ok" else None


def _who(fields: Mapping[str, dict[str, Any]]) -> list[str]:
    who = []
    for key, fmt in (("age_band", "aged {v}"), ("marital_status", "{v}"),
                     ("income_band", "earning {v}"), ("occupation", "often a {v}")):  # fmt: skip
        f = _ok(fields, key)
        if f is not None:
            who.append(fmt.format(v=f["value"]))
    return who


def _how(fields: Mapping[str, dict[str, Any]]) -> list[str]:
    how = []
    if (f := _ok(fields, "orders_per_year")) is not None:
        how.append(f"orders about {f['value']:g} times a year")
    if (f := _ok(fields, "average_order_value")) is not None:
        how.append(f"spends around {_money(f['value'])} an order")
    if (f := _ok(fields, "top_categories")) is not None:
        how.append(f"mostly on {' and '.join(f['value'][:2])}")
    if (f := _ok(fields, "device")) is not None:
        how.append(f"usually from a {f['value']}")
    return how


def make_narrative(name: str, facts: Facts, fields: Mapping[str, dict[str, Any]]) -> str:
    first = name.split()[-1]
    share = facts.members / facts.customers if facts.customers else 0.0
    parts = [
        f"{name} stands for {facts.members} customer{'s' if facts.members != 1 else ''} "
        f"({_pct(share)} of the store), segment '{facts.segment_name}'."
    ]
    who = _who(fields)
    if who:
        parts.append(f"Typically {', '.join(who)}.")
    how = _how(fields)
    if how:
        parts.append(f"{first} {', '.join(how)}.")
    if (f := _ok(fields, "lifecycle_mix")) is not None:
        stage = str(f["value"]).replace("_", " ")
        parts.append(f"Most are {stage} customers ({_pct(f['evidence']['share'])}).")
    if (f := _ok(fields, "interests")) is not None:
        parts.append(f"Interests: {', '.join(f['value'][:3])}.")
    if (f := _ok(fields, "goals")) is not None:
        parts.append(f"Goals: {'; '.join(str(v) for v in f['value'][:2])}.")
    if (f := _ok(fields, "pain_points")) is not None:
        parts.append(f"Pain points: {'; '.join(str(v) for v in f['value'][:2])}.")
    missing = [LABELS[k].lower() for k in ("goals", "pain_points", "objections")
               if _ok(fields, k) is None]  # fmt: skip
    if missing:
        parts.append(f"Too little evidence yet on {', '.join(missing)}: survey this segment.")
    return " ".join(parts)


# --- drift ----------------------------------------------------------------------------------


def _subject(key: str, value: str) -> str:
    template = SUBJECTS.get(key)
    if template is not None:
        return template.format(v=value)
    return f"customers with {LABELS.get(key, key).lower()} {value}"


def drift(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> list[dict[str, Any]]:
    """What changed between two generated snapshots, in words: shares that moved 5 points or
    more, medians that moved 10% or more, a new name or tagline, coverage."""
    if not old:
        return []
    changes: list[dict[str, Any]] = []
    for key in ("name", "tagline"):
        if old.get(key) != new.get(key):
            changes.append(
                {
                    "field": key,
                    "kind": "text",
                    "from": old.get(key),
                    "to": new.get(key),
                    "text": f"{key} changed from '{old.get(key)}' to '{new.get(key)}'",
                }  # fmt: skip
            )
    before, after = old.get("covered_customers", 0), new.get("covered_customers", 0)
    if before != after:
        way = "up" if after > before else "down"
        changes.append(
            {
                "field": "covered_customers",
                "kind": "count",
                "from": before,
                "to": after,
                "text": f"covers {after} customers, {way} from {before}",
            }  # fmt: skip
        )
    old_fields, new_fields = old.get("fields") or {}, new.get("fields") or {}
    for key in FIELD_KEYS:
        o, n = old_fields.get(key) or {}, new_fields.get(key) or {}
        if o and o.get("status") != n.get("status"):
            now_ok = n.get("status") == "ok"
            said = "now backed by evidence" if now_ok else "too little evidence now"
            changes.append(
                {
                    "field": key,
                    "kind": "status",
                    "from": o.get("status"),
                    "to": n.get("status"),
                    "text": f"{LABELS[key].lower()}: {said}",
                }  # fmt: skip
            )
        if key in NUMERIC:
            a, b = o.get("value"), n.get("value")
            if isinstance(a, int | float) and isinstance(b, int | float) and a:
                if abs(b - a) / abs(a) >= 0.1:
                    way = "rose" if b > a else "fell"
                    fa, fb = (_money(a), _money(b)) if key in MONEY else (f"{a:g}", f"{b:g}")
                    changes.append(
                        {
                            "field": key,
                            "kind": "median",
                            "from": a,
                            "to": b,
                            "text": f"median {LABELS[key].lower()} {way} from {fa} to {fb}",
                        }  # fmt: skip
                    )
            continue
        od = {i["value"]: i["share"] for i in o.get("distribution") or [] if "value" in i}
        nd = {i["value"]: i["share"] for i in n.get("distribution") or [] if "value" in i}
        if not od or not nd:
            continue  # a field that just gained (or lost) its evidence: said above
        moved = [
            (value, od.get(value, 0.0), nd.get(value, 0.0))
            for value in sorted(set(od) | set(nd))
            if abs(nd.get(value, 0.0) - od.get(value, 0.0)) >= 0.05
        ]
        # The three biggest moves per field, biggest first.
        for value, a, b in sorted(moved, key=lambda m: -abs(m[2] - m[1]))[:3]:
            way = "rose" if b > a else "fell"
            changes.append(
                {
                    "field": key,
                    "kind": "share",
                    "value": value,
                    "from": a,
                    "to": b,
                    "text": f"share of {_subject(key, str(value))} {way} "
                    f"from {_pct(a)} to {_pct(b)}",
                }
            )
    return changes


def hour_band(hour: int) -> str:
    if 5 <= hour < 12:
        return "morning"
    if 12 <= hour < 17:
        return "afternoon"
    if 17 <= hour < 22:
        return "evening"
    return "night"
