"""A persona as a printable one-page card: self-contained HTML (inline CSS and SVG bar charts,
no external assets, every value escaped) and Markdown."""

from __future__ import annotations

import html as _html
import re
from typing import Any

from shared.errors import NotAcceptable
from shared.personas.schemas import PersonaRead

HTML, MARKDOWN = "text/html", "text/markdown"
KEY_FACTS = ("age_band", "gender", "marital_status", "children", "income_band", "occupation",
             "location", "interests", "values", "motivations", "orders_per_year",
             "average_order_value", "predicted_clv", "recency_days", "top_categories", "device",
             "order_channel", "weekday", "hour")  # fmt: skip
VOICE = ("goals", "pain_points", "objections", "decision_role", "channels")
CHARTS = ("age_band", "income_band", "top_categories", "device", "lifecycle_mix", "weekday")


def negotiate(accept: str | None) -> str:
    """HTML unless the client asks for Markdown; 406 when it accepts neither."""
    if not accept:
        return HTML
    ranked = []
    for n, part in enumerate(accept.split(",")):
        pieces = [p.strip() for p in part.split(";")]
        media, q = pieces[0].lower(), 1.0
        for p in pieces[1:]:
            if p.startswith("q="):
                try:
                    q = float(p[2:])
                except ValueError:
                    q = 0.0
        ranked.append((-q, n, media))
    for negq, _, media in sorted(ranked):
        if negq >= 0:
            continue
        if media in (MARKDOWN, "text/x-markdown"):
            return MARKDOWN
        if media in (HTML, "text/*", "*/*", "application/xhtml+xml"):
            return HTML
    raise NotAcceptable("The card is served as text/html or text/markdown.")


def _e(value: Any) -> str:
    return _html.escape(str(value), quote=True)


def _pct(x: Any) -> str:
    return f"{round(float(x) * 100)}%" if isinstance(x, int | float) else ""


def _evidence_note(f: dict[str, Any]) -> str:
    ev = f.get("evidence") or {}
    bits = []
    if ev.get("n") is not None:
        bits.append(f"n={ev['n']}")
    if ev.get("ci95"):
        lo, hi = ev["ci95"]
        bits.append(f"CI {_pct(lo)}–{_pct(hi)}")
    if ev.get("lift") is not None:
        bits.append(f"lift {ev['lift']:.1f}×")
    return " · ".join(bits)


def _bar_chart(title: str, dist: list[dict[str, Any]]) -> str:
    """Horizontal bars of the segment's shares, with a tick at the store's share."""
    rows = [d for d in dist if isinstance(d.get("share"), int | float)][:5]
    width, label_w, bar_w, row_h = 205, 72, 96, 15
    height = 18 + row_h * max(len(rows), 1)
    top = max([float(d["share"]) for d in rows] + [float(d.get("store_share") or 0) for d in rows]
              + [0.01])  # fmt: skip
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{_e(title)}">',
        f'<text x="0" y="12" class="ct">{_e(title)}</text>',
    ]
    if not rows:
        parts.append(f'<text x="0" y="{20 + 12}" class="cl">no data</text>')
    for i, d in enumerate(rows):
        y = 17 + i * row_h
        w = max(1.0, bar_w * float(d["share"]) / top)
        sx = label_w + bar_w * float(d.get("store_share") or 0) / top
        label = str(d["value"])
        label = label if len(label) <= 12 else label[:11] + "…"
        parts.append(f'<text x="0" y="{y + 11}" class="cl">{_e(label)}</text>')
        parts.append(
            f'<rect x="{label_w}" y="{y + 2}" width="{w:.1f}" height="11" rx="2" class="bar"/>'
        )
        parts.append(f'<line x1="{sx:.1f}" x2="{sx:.1f}" y1="{y}" y2="{y + 15}" class="store"/>')
        parts.append(
            f'<text x="{label_w + bar_w + 6}" y="{y + 11}" class="cl">{_pct(d["share"])}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _voice_block(f: dict[str, Any]) -> str:
    title = f"<h3>{_e(f.get('label', ''))}</h3>"
    if f.get("locked"):
        edit = f.get("edited") or {}
        items = edit.get("items") or []
        body = f"<p>{_e(edit.get('text', ''))}</p>"
        if items:
            body += "<ul>" + "".join(f"<li>{_e(i)}</li>" for i in items) + "</ul>"
        return f'<div class="voice">{title}{body}<p class="note">edited by hand</p></div>'
    if f.get("status") != "ok":
        ask = (f.get("fill_with") or {}).get("question", "")
        hint = f'<p class="note">Ask: “{_e(ask)}”</p>' if ask else ""
        return (
            f'<div class="voice missing">{title}<p class="gap">{_e(f.get("summary", ""))}</p>'
            f"{hint}</div>"
        )
    items = f.get("items") or []
    if items:
        lis = "".join(
            f"<li>{_e(i.get('text', i.get('value', '')))}"
            + (f' <span class="ev">{_pct(i["share"])}</span>' if "share" in i else "")
            + "</li>"
            for i in items[:4]
        )
        body = f"<ul>{lis}</ul>"
    else:
        body = f"<p>{_e(f.get('summary', ''))}</p>"
    return f'<div class="voice">{title}{body}<p class="note">{_e(_evidence_note(f))}</p></div>'


_CSS = """
@page { size: A4; margin: 8mm; }
* { box-sizing: border-box; }
body { margin: 0; font: 11px/1.3 "DejaVu Sans", Arial, Helvetica, sans-serif; color: #1f2933;
       background: #fff; }
.card { width: 210mm; margin: 0 auto; padding: 7mm 9mm; }
@media print { .card { width: auto; padding: 0; } }
header { border-bottom: 3px solid #3b5bdb; padding-bottom: 4px; margin-bottom: 6px; }
h1 { font-size: 26px; margin: 0; color: #1c2d7a; }
.tagline { font-size: 14px; margin: 1px 0 3px; color: #364fc7; font-style: italic; }
.meta { color: #616e7c; font-size: 10px; margin: 0; }
.deleted { background: #ffe3e3; color: #c92a2a; padding: 1px 5px; border-radius: 3px; }
.narrative { margin: 4px 0 6px; }
.cols { display: flex; gap: 14px; }
.col { flex: 1; min-width: 0; }
.col.facts { flex: 1.15; }
h2 { font-size: 11px; text-transform: uppercase; letter-spacing: .06em; color: #3b5bdb;
     margin: 6px 0 3px; }
h3 { font-size: 11px; margin: 0 0 1px; }
table { border-collapse: collapse; width: 100%; }
td { padding: 1px 3px; border-bottom: 1px solid #e4e7eb; vertical-align: top; }
td.k { color: #616e7c; width: 30%; }
.ev, .note { color: #7b8794; font-size: 9px; }
.gap { color: #9aa5b1; font-style: italic; margin: 0; }
.voice { margin-bottom: 5px; }
.voice ul { margin: 0; padding-left: 14px; }
.voice p { margin: 0; }
blockquote { margin: 0 0 3px; padding: 1px 6px; border-left: 3px solid #bac8ff; color: #323f4b; }
.charts { display: flex; flex-wrap: wrap; gap: 4px 12px; }
.ct { font: bold 10px sans-serif; fill: #1f2933; }
.cl { font: 9px sans-serif; fill: #3e4c59; }
.bar { fill: #5c7cfa; }
.store { stroke: #e8590c; stroke-width: 2; }
footer { margin-top: 4px; color: #9aa5b1; font-size: 9px; }
"""


def html(p: PersonaRead) -> str:
    f = p.fields
    rows = []
    for key in KEY_FACTS:
        field = f.get(key)
        if field is None:
            continue
        summary = (
            field.get("summary", "")
            if field.get("status") == "ok" or field.get("locked")
            else "too little evidence"
        )
        cls = "" if field.get("status") == "ok" or field.get("locked") else ' class="gap"'
        rows.append(
            f'<tr><td class="k">{_e(field.get("label", key))}</td><td{cls}>{_e(summary)}'
            f' <span class="ev">{_e(_evidence_note(field)) if not cls else ""}</span></td></tr>'
        )
    voice = "".join(_voice_block(f[k]) for k in VOICE if k in f)
    quotes_field = f.get("quotes") or {}
    if quotes_field.get("status") == "ok":
        quotes = "".join(
            f"<blockquote>“{_e(q.get('text', ''))}”"
            f'<br><span class="ev">{_e(q.get("source", ""))}</span></blockquote>'
            for q in (quotes_field.get("items") or [])[:3]
        )
    else:
        quotes = f'<p class="gap">{_e(quotes_field.get("summary", "No quotes yet."))}</p>'
    charts = "".join(
        _bar_chart(f[k].get("label", k), f[k].get("distribution") or []) for k in CHARTS if k in f
    )
    deleted = (
        ' <span class="deleted">segment deleted: last generated data</span>'
        if p.status == "segment_deleted"
        else ""
    )
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><title>{_e(p.name)}: persona</title>'
        f'<style>{_CSS}</style></head><body><article class="card">'
        f'<header><h1>{_e(p.name)}</h1><p class="tagline">{_e(p.tagline)}</p>'
        f'<p class="meta">Segment “{_e(p.segment_name)}” · covers {p.covered_customers} '
        f"customers · version {p.current_version} · generated "
        f"{_e(p.generated_at.date().isoformat())}{deleted}</p></header>"
        f'<p class="narrative">{_e(p.narrative)}</p>'
        f'<div class="cols"><section class="col facts"><h2>Key facts</h2><table>{"".join(rows)}'
        f'</table></section><section class="col"><h2>In their words</h2>{voice}'
        f"<h2>Quotes</h2>{quotes}</section></div>"
        f'<h2>Distributions</h2><div class="charts">{charts}</div>'
        "<footer>Bars: share of this segment; orange tick: share of all customers. "
        "n = customers with the fact; CI = Wilson 95% interval; lift = segment share / store "
        "share. Generated by Portrait from the store's data.</footer>"
        "</article></body></html>\n"
    )


_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]#|~])")


def _m(value: Any) -> str:
    """Markdown-escaped text, with angle brackets as entities so no HTML gets through."""
    text = str(value).replace("\r", " ").replace("\n", " ")
    text = text.replace("<", "&lt;").replace(">", "&gt;")
    return _MD_SPECIAL.sub(r"\\\1", text)


def _md_voice(field: dict[str, Any]) -> list[str]:
    out = ["", f"## {_m(field.get('label', ''))}", ""]
    if field.get("locked"):
        edit = field.get("edited") or {}
        out.append(_m(edit.get("text", "")))
        out += [f"- {_m(i)}" for i in edit.get("items") or []]
    elif field.get("status") != "ok":
        out.append(f"_{_m(field.get('summary', ''))}_")
        ask = (field.get("fill_with") or {}).get("question")
        if ask:
            out.append(f"Ask: “{_m(ask)}”")
    else:
        for i in (field.get("items") or [])[:5]:
            share = f" ({_pct(i['share'])})" if "share" in i else ""
            out.append(f"- {_m(i.get('text', i.get('value', '')))}{share}")
        if not field.get("items"):
            out.append(_m(field.get("summary", "")))
    return out


def markdown(p: PersonaRead) -> str:
    f = p.fields
    out = [f"# {_m(p.name)}", "", f"*{_m(p.tagline)}*", ""]
    meta = (
        f"Segment “{_m(p.segment_name)}” · covers {p.covered_customers} customers · "
        f"version {p.current_version} · generated {p.generated_at.date().isoformat()}"
    )
    if p.status == "segment_deleted":
        meta += " · **segment deleted: last generated data**"
    out += [meta, "", _m(p.narrative), "", "## Key facts", "", "| Fact | Value | Evidence |",
            "| --- | --- | --- |"]  # fmt: skip
    for key in KEY_FACTS:
        field = f.get(key)
        if field is None:
            continue
        ok = field.get("status") == "ok" or field.get("locked")
        summary = field.get("summary", "") if ok else "too little evidence"
        note = _evidence_note(field) if ok else ""
        out.append(f"| {_m(field.get('label', key))} | {_m(summary)} | {_m(note)} |")
    for key in VOICE:
        if key in f:
            out += _md_voice(f[key])
    out += ["", "## Quotes", ""]
    quotes = f.get("quotes") or {}
    if quotes.get("status") == "ok":
        for q in quotes["items"]:  # a blank line between quotes keeps them apart
            out += [f"> “{_m(q.get('text', ''))}”  ", f"> {_m(q.get('source', ''))}", ""]
    else:
        out.append(f"_{_m(quotes.get('summary', 'No quotes yet.'))}_")
    out += ["", "## Distributions", ""]
    for key in CHARTS:
        field = f.get(key)
        if field is None:
            continue
        shown = ", ".join(
            f"{_m(d['value'])} {_pct(d['share'])} (all {_pct(d.get('store_share'))})"
            for d in (field.get("distribution") or [])[:5]
        )
        out.append(f"- **{_m(field.get('label', key))}**: {shown or 'no data'}")
    return "\n".join(out) + "\n"
