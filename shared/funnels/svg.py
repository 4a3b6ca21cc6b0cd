"""A funnel run as an SVG bar chart a marketer reads at a glance: one bar per step (how many
reached it), the part lost since the step before drawn faded above it with the count and
rate, and the largest drop-off in red."""

from __future__ import annotations

from typing import Any
from xml.sax.saxutils import escape

WIDTH, HEIGHT = 860, 420
TOP, BOTTOM, LEFT, RIGHT = 70, 90, 60, 30
BAR, INK, MUTED = "#3b6fd8", "#1f2933", "#616e7c"
LOST, LOST_EDGE = "#dbe4f7", "#9fb3e0"  # lost since the step before
WORST, WORST_EDGE, WORST_INK = "#f9d9d9", "#d64545", "#b42318"  # the largest drop-off


def _n(x: int) -> str:
    return f"{x:,}"


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}%"


def render(result: dict[str, Any], title: str) -> str:
    steps = result["steps"]
    n = len(steps)
    top = max(1, steps[0]["entered"])
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / n
    bar_w = min(110.0, slot * 0.62)
    y0 = TOP + plot_h
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" font-family="system-ui, sans-serif">',
        f"<title>{escape(title)}</title>",
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="#ffffff"/>',
        f'<text x="{LEFT}" y="30" font-size="18" font-weight="600" fill="{INK}">'
        f"{escape(title)}</text>",
        f'<text x="{LEFT}" y="52" font-size="13" fill="{MUTED}">'
        f"{_n(result['entered'])} entered · {_n(result['converted'])} converted · "
        f"{_pct(result['conversion'])} overall</text>",
    ]
    for frac in (0.25, 0.5, 0.75, 1.0):
        y = y0 - plot_h * frac
        out.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" '
            f'stroke="#e4e7eb" stroke-width="1"/>'
        )
        out.append(
            f'<text x="{LEFT - 8}" y="{y + 4:.1f}" font-size="11" text-anchor="end" '
            f'fill="{MUTED}">{_n(round(top * frac))}</text>'
        )
    out.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y0}" y2="{y0}" stroke="{MUTED}"/>')
    prev_h = None
    for k, s in enumerate(steps):
        cx = LEFT + slot * (k + 0.5)
        x = cx - bar_w / 2
        h = plot_h * s["entered"] / top
        if prev_h is not None and prev_h > h:
            worst = s["largest_dropoff"]
            fill, edge = (WORST, WORST_EDGE) if worst else (LOST, LOST_EDGE)
            out.append(
                f'<rect x="{x:.1f}" y="{y0 - prev_h:.1f}" width="{bar_w:.1f}" '
                f'height="{prev_h - h:.1f}" fill="{fill}" stroke="{edge}" '
                f'stroke-dasharray="4 3"><title>{_n(s["dropoff"])} dropped off</title></rect>'
            )
            # In the faded part when it is tall enough, else just above it.
            ly = y0 - (prev_h + h) / 2 + 4 if prev_h - h >= 20 else y0 - prev_h - 6
            weight = ' font-weight="700"' if worst else ""
            out.append(
                f'<text x="{cx:.1f}" y="{ly:.1f}" font-size="12" text-anchor="middle" '
                f'fill="{WORST_INK if worst else MUTED}"{weight}>'
                f"−{_n(s['dropoff'])} ({_pct(s['dropoff_rate'])})</text>"
            )
        out.append(
            f'<rect x="{x:.1f}" y="{y0 - h:.1f}" width="{bar_w:.1f}" height="{h:.1f}" '
            f'fill="{BAR}" stroke="none"><title>{escape(s["label"])}: {_n(s["entered"])}</title>'
            "</rect>"
        )
        # The count inside the bar's top when it fits, else above it.
        inside = h >= 24
        out.append(
            f'<text x="{cx:.1f}" y="{y0 - h + 17 if inside else y0 - h - 6:.1f}" font-size="12" '
            f'font-weight="600" text-anchor="middle" fill="{"#ffffff" if inside else INK}">'
            f"{_n(s['entered'])}</text>"
        )
        label = s["label"] if len(s["label"]) <= 22 else s["label"][:21] + "…"
        out.append(
            f'<text x="{cx:.1f}" y="{y0 + 20}" font-size="12" text-anchor="middle" '
            f'fill="{INK}">{k + 1}. {escape(label)}</text>'
        )
        out.append(
            f'<text x="{cx:.1f}" y="{y0 + 38}" font-size="11" text-anchor="middle" '
            f'fill="{MUTED}">{_pct(s["conversion_from_start"])} of start</text>'
        )
        prev_h = h
    out.append(
        f'<text x="{LEFT}" y="{HEIGHT - 18}" font-size="11" fill="{MUTED}">'
        "Faded: lost since the previous step; red: the largest drop-off.</text>"
    )
    out.append("</svg>")
    return "\n".join(out) + "\n"
