"""The shared media index against the per-worker memory it replaces, on the generated set.

``resolver bench --media-index SIZE [--seed 12]``: reads every item's evidence once (the worker's
reader), loads all of it into each path, then asks each path, for every duplicate (the
transformations: mp3, gain, trim, noise, band-limit), for its 10 best items by sound:

- ``memory``: ``MediaMemory.similar`` (the posting look-up of the old per-partition memory);
- ``vector``: the retrieval vector alone (the in-memory index's exact inner product), no rescoring;
- ``index``: ``InMemoryMediaIndex.sounding_like`` (vector top ``media_search_k``, then the stored
  fingerprints rescored exactly): what ``resolver evaluate`` runs;
- ``milvus``: ``MilvusMediaIndex.sounding_like`` on the local Milvus (HNSW, the same rescoring):
  what the worker runs; left out when Milvus does not answer.

recall@10 is the share of each duplicate's same-recording items (studio take, other duplicates,
video) found among the 10. Then the per-batch cost: one batch of ``batch`` queries (every item,
repeated as needed) by sound and by picture, median of ``rounds``, per path, and Milvus' upsert of
the batch. The CPU flags and the load average are printed with the times.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
import uuid
from typing import Any

import numpy as np

from benchmarks.media_encoders import _cpu_flags
from media.generated_set import generate
from media.reader import MediaEvidenceReader
from resolution.media_evidence import MediaEvidence, MediaMemory
from resolution.media_index import InMemoryMediaIndex, MediaHit, MediaIndex, MediaRow, audio_vector
from resolution.model import ContentItem
from settings import Settings


def _recall(found: dict[str, list[str]], relevant: dict[str, set[str]]) -> dict[str, Any]:
    hit = sum(len(relevant[q] & set(ids[:10])) for q, ids in found.items())
    wanted = sum(len(relevant[q]) for q in found)
    return {"recall_at_10": hit / wanted if wanted else float("nan"), "queries": len(found), "relevant": wanted}


async def _index_paths(index: MediaIndex, queries: list[str], by_id: dict[str, MediaEvidence]) -> dict[str, list[str]]:
    hits: list[list[MediaHit]] = await index.sounding_like([by_id[q] for q in queries], 10, queries)
    return {q: [h.row.content_id for h in found] for q, found in zip(queries, hits, strict=True)}


async def _batch_seconds(index: MediaIndex, batch: list[MediaEvidence], ids: list[str], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        await asyncio.gather(index.sounding_like(batch, 3, ids), index.same_picture(batch, 3, ids))
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def run_media_index_bench(
    settings: Settings, size: str = "small", seed: int = 12, batch: int = 64, rounds: int = 5
) -> dict[str, Any]:
    media_set = generate(seed, size)
    items = media_set.items
    contents = [ContentItem.from_record(i.event()) for i in items]
    evidence = asyncio.run(MediaEvidenceReader(concurrency=2).read(contents))
    by_id = {c.content_id: e for c, e in zip(contents, evidence, strict=True)}
    recording = {c.content_id: i.recording_id for c, i in zip(contents, items, strict=True)}
    duplicates = [c.content_id for c, i in zip(contents, items, strict=True) if i.role == "duplicate"]
    relevant = {q: {c for c in recording if c != q and recording[c] == recording[q]} for q in duplicates}
    rows = [
        MediaRow(
            c.content_id,
            f"ent-{c.content_id}",
            f"work-{c.content_id}",
            by_id[c.content_id],
            {},
            np.zeros(0, np.float32),
        )
        for c in contents
    ]
    w = settings.worker
    out: dict[str, Any] = {
        "items": len(items),
        "size": size,
        "seed": seed,
        "search_k": w.media_search_k,
        "cpu_flags": _cpu_flags(),
    }

    memory = MediaMemory(len(rows) + 1)
    for r in rows:
        memory.add(r.content_id, r.evidence, {}, np.zeros(1, dtype=np.float32))
    found = {q: [cid for cid, _, _ in memory.similar(by_id[q], 10, q)] for q in duplicates}
    recalls = {"memory": _recall(found, relevant)}

    vectors = {r.content_id: audio_vector(r.evidence) for r in rows if r.evidence.fingerprint is not None}
    ids = sorted(vectors)
    matrix = np.stack([vectors[c] for c in ids])
    found = {}
    for q in duplicates:
        sims = matrix @ vectors[q]
        found[q] = [ids[j] for j in np.argsort(-sims, kind="stable") if ids[j] != q][:10]
    recalls["vector"] = _recall(found, relevant)

    exact = InMemoryMediaIndex(w.media_search_k)
    asyncio.run(exact.upsert(rows))
    recalls["index"] = _recall(asyncio.run(_index_paths(exact, duplicates, by_id)), relevant)

    queries = [rows[n % len(rows)] for n in range(batch)]
    batch_evidence = [r.evidence for r in queries]
    batch_ids = [f"query-{n}" for n in range(batch)]
    costs: dict[str, float] = {}
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for e, q in zip(batch_evidence, batch_ids, strict=True):
            memory.similar(e, 3, q)
            memory.same_picture(e, 3, q)
        times.append(time.perf_counter() - t0)
    costs["memory"] = statistics.median(times)
    costs["index"] = asyncio.run(_batch_seconds(exact, batch_evidence, batch_ids, rounds))

    from vector_index.milvus_connection import MilvusParams
    from vector_index.milvus_media import MilvusMediaIndex

    milvus = MilvusMediaIndex(
        MilvusParams.of(w, consistency="Strong", retry_max_s=5),
        f"bench_media_{uuid.uuid4().hex[:8]}",
        search_k=w.media_search_k,
    )

    async def through_milvus() -> None:
        try:
            t0 = time.perf_counter()
            await milvus.upsert(rows)
            out["milvus_upsert_all_s"] = time.perf_counter() - t0
            recalls["milvus"] = _recall(await _index_paths(milvus, duplicates, by_id), relevant)
            costs["milvus"] = await _batch_seconds(milvus, batch_evidence, batch_ids, rounds)
            upserts = []
            for n in range(rounds):
                fresh = [MediaRow(f"u{n}-{r.content_id}", "", "", r.evidence, {}, r.vector) for r in queries]
                t0 = time.perf_counter()
                await milvus.upsert(fresh)
                upserts.append(time.perf_counter() - t0)
            costs["milvus_upsert"] = statistics.median(upserts)
        finally:
            await milvus.drop()

    try:
        asyncio.run(through_milvus())
    except Exception as exc:  # no Milvus here: the in-process figures still stand
        out["milvus_error"] = f"{type(exc).__name__}: {exc}"[:300]
    out["recall"] = recalls
    out["batch"] = batch
    out["batch_seconds_median"] = costs
    out["load_average"] = os.getloadavg()
    return out


def format_media_index(figures: dict[str, Any]) -> str:
    lines = [
        f"media index on set-{figures['size']}-{figures['seed']} ({figures['items']} items; search_k "
        f"{figures['search_k']}); CPU flags {figures['cpu_flags']}; load average "
        + " ".join(f"{x:.2f}" for x in figures["load_average"]),
        f"path      same-recording recall@10   batch of {figures['batch']} by sound + picture (median)",
    ]
    for path, r in figures["recall"].items():
        cost = figures["batch_seconds_median"].get(path)
        shown = f"{1000 * cost:.1f} ms" if cost is not None else "-"
        lines.append(f"{path:<9} {r['recall_at_10']:.3f} ({r['queries']} queries)       {shown}")
    if "milvus_upsert" in figures["batch_seconds_median"]:
        lines.append(f"milvus upsert of a batch: {1000 * figures['batch_seconds_median']['milvus_upsert']:.1f} ms")
    if "milvus_error" in figures:
        lines.append(f"milvus: {figures['milvus_error']}")
    return "\n".join(lines)
