"""The persona card: self-contained, escaped HTML that a real headless Chromium renders as a
one-page card with the persona's name and bar charts; and Markdown."""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import numpy as np
import pytest

from shared.ingest.demo import DemoConfig, generate
from shared.ingest.demo_loader import load
from tests.helpers import auth, run_burst
from tests.test_personas import generate_personas

WIDTH, HEIGHT = 794, 1123  # A4 at 96 dpi


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is not installed (CI must install Debian's chromium package)")
        pytest.skip("chromium is not installed")
    return found


def _run_chromium(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--no-first-run",
            "--disable-dev-shm-usage",
            *args,
        ],  # fmt: skip
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )


def decode_png(data: bytes) -> np.ndarray:
    """A minimal PNG decoder (8-bit RGB or RGBA, not interlaced): enough to look at pixels."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width = 8, b"", 0
    height = channels = 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8
            assert interlace == 0
            channels = {2: 3, 6: 4}[colour]
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(height, width * channels + 1)
    out = np.zeros((height, width * channels), np.int32)
    prev = np.zeros(width * channels, np.int32)
    for y in range(height):
        f, line = raw[y, 0], raw[y, 1:].astype(np.int32)
        row = np.zeros_like(line)
        if f == 0:
            row = line
        elif f == 2:
            row = (line + prev) % 256
        else:
            for x in range(len(line)):
                a = row[x - channels] if x >= channels else 0
                b = prev[x]
                c = prev[x - channels] if x >= channels else 0
                if f == 1:
                    pred = a
                elif f == 3:
                    pred = (a + b) // 2
                else:
                    p = a + b - c
                    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                    pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                row[x] = (line[x] + pred) % 256
        out[y], prev = row, row
    return out.reshape(height, width, channels)[:, :, :3]


@pytest.fixture(scope="module")
def demo():
    return generate(DemoConfig(n_customers=400, seed=11))


async def _persona_id(app, client, tenant, worker_factory, demo) -> str:
    h = auth(tenant.api_key)
    await load(app.state.sessionmaker, tenant.tenant_id, demo)
    await client.post("/v1/analyses/customer-value", json={}, headers=h)
    r = await client.post(
        "/v1/segmentations", json={"method": "kmeans", "k": 5, "seed": 1}, headers=h
    )
    assert r.status_code == 202, r.text
    await run_burst(worker_factory)
    run = (await client.get(r.headers["location"], headers=h)).json()
    made = await generate_personas(
        client, tenant, worker_factory, {"segment_ids": [s["id"] for s in run["segments"]]}
    )
    premium = [p for p in made["personas"] if p["name"].startswith(("Luxe", "Premium"))]
    return (premium or made["personas"])[0]["persona_id"]


async def test_card_renders_in_headless_chromium_as_one_clean_page(
    app, client, tenant, worker_factory, demo, tmp_path: Path
):
    h = auth(tenant.api_key)
    pid = await _persona_id(app, client, tenant, worker_factory, demo)
    persona = (await client.get(f"/v1/personas/{pid}", headers=h)).json()
    r = await client.get(f"/v1/personas/{pid}/card", headers={**h, "Accept": "text/html"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    page = r.text
    assert persona["name"] in page
    assert page.count("<svg") == 6
    # Self-contained: no scripts, stylesheets, images or fonts fetched from anywhere.
    for needle in ("<script", "<link", "<img", "src=", "url(", "@import"):
        assert needle not in page
    card = tmp_path / "card.html"
    card.write_text(page, encoding="utf-8")
    shot = tmp_path / "card.png"
    _run_chromium(f"--screenshot={shot}", f"--window-size={WIDTH},{HEIGHT}", card.as_uri())
    pixels = decode_png(shot.read_bytes())
    assert pixels.shape == (HEIGHT, WIDTH, 3)
    ink = (pixels < 200).any(axis=2).mean()  # text, bars, rules
    assert 0.03 < ink < 0.5, ink
    blue_bars = ((pixels[:, :, 2] > 200) & (pixels[:, :, 0] < 120)).sum()
    assert blue_bars > 500  # the SVG bars were drawn
    # The page's bottom half holds content too (the charts), so the layout is not collapsed.
    assert (pixels[HEIGHT // 2 :] < 200).any(axis=2).mean() > 0.01
    dom = _run_chromium("--dump-dom", card.as_uri()).stdout
    assert persona["name"] in dom
    assert "<svg" in dom
    if os.environ.get("PERSONA_CARD_PNG"):
        shutil.copy(shot, os.environ["PERSONA_CARD_PNG"])
    # Printed on A4, it is one page.
    pdf = tmp_path / "card.pdf"
    _run_chromium(f"--print-to-pdf={pdf}", "--no-pdf-header-footer", card.as_uri())
    assert len(re.findall(rb"/Type\s*/Page(?![a-z])", pdf.read_bytes())) == 1


async def test_card_escapes_everything_and_has_a_markdown_twin(
    app, client, tenant, worker_factory, demo
):
    h = auth(tenant.api_key)
    pid = await _persona_id(app, client, tenant, worker_factory, demo)
    evil = '<script>alert("x")</script> Sam & "Co"'
    r = await client.patch(
        f"/v1/personas/{pid}",
        json={"name": evil, "fields": {"goals": {"text": "<img src=x onerror=alert(1)>"}}},
        headers=h,
    )
    assert r.status_code == 200, r.text
    page = (await client.get(f"/v1/personas/{pid}/card", headers=h)).text
    assert "<script" not in page
    assert "<img" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; Sam &amp; &quot;Co&quot;" in page
    md = await client.get(f"/v1/personas/{pid}/card", headers={**h, "Accept": "text/markdown"})
    assert md.status_code == 200
    assert md.headers["content-type"].startswith("text/markdown")
    text = md.text
    assert text.startswith("# &lt;script&gt;alert")
    assert "<script" not in text
    assert "<img" not in text
    for heading in ("## Key facts", "## Goals", "## Objections and barriers", "## Quotes"):
        assert heading in text
    assert "| Income band |" in text
    # The browser's usual Accept header gets HTML.
    browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
    r = await client.get(f"/v1/personas/{pid}/card", headers={**h, "Accept": browser})
    assert r.headers["content-type"].startswith("text/html")
