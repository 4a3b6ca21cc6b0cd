"""Segments through the API, and a real worker to refresh them."""

from __future__ import annotations

from typing import Any

from tests.helpers import auth, run_burst


async def create_segment(client, tenant, worker_factory, body: dict[str, Any]) -> dict[str, Any]:
    r = await client.post("/v1/segments", json=body, headers=auth(tenant.api_key))
    assert r.status_code == 201, r.text
    await run_burst(worker_factory)
    got = await client.get(f"/v1/segments/{r.json()['id']}", headers=auth(tenant.api_key))
    return got.json()


async def member_ids(client, tenant, segment_id: str) -> set[str]:
    found, cursor = set(), None
    while True:
        url = f"/v1/segments/{segment_id}/members?limit=500" + (
            f"&cursor={cursor}" if cursor else ""
        )
        page = (await client.get(url, headers=auth(tenant.api_key))).json()
        found |= {m["external_id"] for m in page["items"]}
        cursor = page["next_cursor"]
        if not cursor:
            return found
