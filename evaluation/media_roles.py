"""The issue's decisions on the generated media set, role by role, as the resolver takes them.

``resolver media evaluate`` measures the media evidence itself (retrieval, ROC AUC); this streams
the set through the worker's offline resolver (``resolver evaluate --ablation``) and asks of its
clustering what the issue asks: is each duplicate merged with its studio take, is each music
video linked ``video_of`` its recording (and not merged into it), is each live take under the
studio take's exact title kept apart from it, is each version kept apart but in the same work.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from evaluation.streaming import OfflineResolver, seeded_order, stream_items
from resolution.model import ContentItem


def media_roles(folder: Path) -> dict[str, dict[str, str]] | None:
    """content id -> role, recording and work of the set's items (None: not a generated media set)."""
    path = Path(folder) / "items.jsonl"
    if not path.exists():
        return None
    rows = [json.loads(line) for line in path.read_text().splitlines() if line]
    return {r["content_id"]: {"role": r["role"], "recording": r["recording_id"], "work": r["work_id"]} for r in rows}


def _linked(relations: dict[str, set[tuple[str, str]]], a: str, b: str, relation: str) -> bool:
    return (relation, b) in relations.get(a, set()) or (relation, a) in relations.get(b, set())


async def role_accuracy(
    items: list[ContentItem], roles: dict[str, dict[str, str]], offline: OfflineResolver, shuffles: int = 3
) -> dict[str, Any]:
    """Shares over ``shuffles`` seeded orders (the same orders as ``resolver evaluate``)."""
    studio_of = {r["recording"]: cid for cid, r in roles.items() if r["role"] == "studio"}
    counts: dict[str, list[int]] = {
        k: [0, 0]
        for k in ("duplicate_merged", "video_linked", "official_video_only_linked", "live_apart", "version_apart")
    }
    titles = {i.content_id: i.title for i in items}
    for seed in range(shuffles):
        async with offline.fresh() as (resolver, store):
            outcome = await stream_items(seeded_order(items, seed), resolver, store, offline.batch_size, False)
            entity = outcome.entity_of
            relations: dict[str, set[tuple[str, str]]] = {}
            for e in set(entity.values()):
                record = store.entity(e) or {}
                relations[e] = {(str(r), str(other)) for r, other in record.get("relations", [])}
        for cid, r in roles.items():
            studio = studio_of.get(r["recording"]) or next(
                (s for s, x in roles.items() if x["role"] == "studio" and x["work"] == r["work"]), None
            )
            if studio is None or cid == studio:
                continue
            same_entity = entity[cid] == entity[studio]
            if r["role"] == "duplicate":
                hit = same_entity
                counted = ["duplicate_merged"]
            elif r["role"] == "video":
                hit = not same_entity and _linked(relations, entity[cid], entity[studio], "video_of")
                counted = ["video_linked"] + (["official_video_only_linked"] if titles[cid] == "Official Video" else [])
            elif r["role"] == "live":
                hit = not same_entity
                counted = ["live_apart"]
            elif r["role"] == "version":
                hit = not same_entity
                counted = ["version_apart"]
            else:
                continue
            for key in counted:
                counts[key][0] += int(hit)
                counts[key][1] += 1
    return {k: {"share": (hit / n if n else float("nan")), "of": n} for k, (hit, n) in counts.items()}
