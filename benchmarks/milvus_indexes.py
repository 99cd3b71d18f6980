"""The Milvus index study: index types and consistency levels, with real title embeddings.

Vectors: the reference encoder's embeddings of every distinct title/artist/release text in the
shared datasets (cached on disk). Larger sizes are filled with *variants* of those vectors: a real
vector plus Gaussian noise, renormalised, at a cosine of 0.85-0.97 to its parent, so the data keeps
the clustered shape of a catalogue (random vectors would be far harder for graph indexes).
Queries are real records held out of the index. Recall@k is against exact search over the same
rows (numpy), so it measures the index, not the encoder. Collections are named ``bench_*`` and
dropped at the end.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.stats import percentile
from settings import REPO_ROOT, Settings

K = 10
QUERIES = 256
QUERY_BATCH = 64  # what a worker batch sends in one search call
INSERT_CHUNK = 5000
BUILD_TIMEOUT_S = 120.0


def _say(message: str) -> None:
    print(message, flush=True)


@dataclass(frozen=True)
class IndexChoice:
    name: str
    build: dict[str, Any]
    search: dict[str, Any]


def index_choices(size: int) -> list[IndexChoice]:
    nlist = max(64, int(4 * np.sqrt(size)))  # the usual rule of thumb
    nprobe = 16
    return [
        IndexChoice("FLAT", {}, {}),
        IndexChoice("IVF_FLAT", {"nlist": nlist}, {"nprobe": nprobe}),
        IndexChoice("IVF_SQ8", {"nlist": nlist}, {"nprobe": nprobe}),
        IndexChoice("IVF_PQ", {"nlist": nlist, "m": 48, "nbits": 8}, {"nprobe": nprobe}),
        IndexChoice("HNSW", {"M": 16, "efConstruction": 128}, {"ef": 64}),
        # SCANN is accepted by this server (Milvus 2.3.5 lite) but never built: 0 rows indexed after
        # 4 minutes at 20k (docs/performance.md); DISKANN needs a disk-enabled query node.
        IndexChoice("SCANN", {"nlist": nlist, "with_raw_data": True}, {"nprobe": nprobe, "reorder_k": 50}),
        IndexChoice("DISKANN", {}, {"search_list": 64}),
    ]


def real_texts(data_root: Path) -> list[str]:
    """Every distinct embedding text of the shared datasets, in a fixed order."""
    from evaluation.datasets import load_dataset
    from resolution.normalise import normalise

    seen: dict[str, None] = {}
    for folder in sorted(p for p in data_root.iterdir() if (p / "records.csv").exists()):
        for item in load_dataset(folder).items:
            seen.setdefault(normalise(item).embed_text, None)
    return list(seen)


def real_vectors(data_root: Path) -> np.ndarray:
    from evaluation.embedding_cache import minilm_cache

    texts = real_texts(data_root)
    return minilm_cache(REPO_ROOT / ".cache" / "embeddings").vectors(texts)


def variants(parents: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` noisy copies of random parents at cosine 0.85-0.97 to them, unit length."""
    dim = parents.shape[1]
    picks = parents[rng.integers(0, len(parents), size=count)]
    target = rng.uniform(0.85, 0.97, size=(count, 1))
    # For a unit vector plus isotropic noise of norm r, cos = 1 / sqrt(1 + r^2).
    r = np.sqrt(1 / target**2 - 1)
    noise = rng.standard_normal((count, dim)).astype(np.float32)
    noise *= (r / np.linalg.norm(noise, axis=1, keepdims=True)).astype(np.float32)
    out = picks + noise
    return (out / np.linalg.norm(out, axis=1, keepdims=True)).astype(np.float32)


def exact_top_k(base: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    sims = queries @ base.T
    top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    return np.take_along_axis(top, np.argsort(-np.take_along_axis(sims, top, axis=1), axis=1), axis=1)


def recall_at_k(found: list[list[int]], exact: np.ndarray) -> float:
    hits = sum(len(set(f) & set(e.tolist())) for f, e in zip(found, exact, strict=True))
    return hits / exact.size


class StudyCollection:
    """One ``bench_*`` collection: id and vector only, filled once, re-indexed per choice."""

    def __init__(self, settings: Settings, size: int) -> None:
        from pymilvus import MilvusClient

        w = settings.worker
        self.client = MilvusClient(uri=w.milvus_uri, token=w.milvus_token, timeout=600)
        self.name = f"bench_index_{size}_{uuid.uuid4().hex[:6]}"

    def create(self, dim: int, consistency: str = "Bounded") -> None:
        from pymilvus import DataType, MilvusClient

        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
        self.client.create_collection(self.name, schema=schema, consistency_level=consistency)

    def insert(self, vectors: np.ndarray, first_id: int = 0) -> None:
        for start in range(0, len(vectors), INSERT_CHUNK):
            chunk = vectors[start : start + INSERT_CHUNK]
            rows = [{"id": first_id + start + i, "vector": v.tolist()} for i, v in enumerate(chunk)]
            self.client.insert(self.name, rows)
        self.client.flush(self.name)

    def build(self, choice: IndexChoice) -> float:
        self.client.release_collection(self.name)
        for existing in self.client.list_indexes(self.name):
            self.client.drop_index(self.name, existing)
        params = self.client.prepare_index_params()
        params.add_index(field_name="vector", index_type=choice.name, metric_type="IP", params=choice.build)
        start = time.perf_counter()
        self.client.create_index(self.name, params, timeout=BUILD_TIMEOUT_S)  # waits for the build, bounded
        self._wait_built()
        self.client.load_collection(self.name)
        return time.perf_counter() - start

    def _wait_built(self, timeout_s: float = BUILD_TIMEOUT_S) -> None:
        # Some index types are accepted but never built by a server without the right engine
        # (SCANN on this Milvus build stays "InProgress" with 0 rows indexed): bound the wait.
        deadline = time.monotonic() + timeout_s
        while True:
            info = self.client.describe_index(self.name, "vector") or {}  # None until the request lands
            state = str(info.get("state", ""))
            if state == "Finished":
                return
            if state == "Failed":
                raise RuntimeError(f"index build failed: {info.get('index_state_fail_reason', '')}")
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"index not built after {timeout_s:.0f}s (state {state}, {info.get('indexed_rows')} rows)"
                )
            time.sleep(1.0)

    def search(self, queries: np.ndarray, params: dict[str, Any], consistency: str) -> tuple[list[list[int]], float]:
        start = time.perf_counter()
        res = self.client.search(
            self.name,
            data=[q.tolist() for q in queries],
            limit=K,
            search_params={"metric_type": "IP", "params": params},
            consistency_level=consistency,
        )
        return [[int(h["id"]) for h in hits] for hits in res], time.perf_counter() - start

    def drop(self) -> None:
        self.client.drop_collection(self.name)


def _measure(col: StudyCollection, queries: np.ndarray, exact: np.ndarray, params: dict, consistency: str) -> dict:
    found: list[list[int]] = []
    batch_ms: list[float] = []
    for start in range(0, len(queries), QUERY_BATCH):
        ids, seconds = col.search(queries[start : start + QUERY_BATCH], params, consistency)
        found.extend(ids)
        batch_ms.append(seconds * 1000)
    single_ms = [col.search(queries[i : i + 1], params, consistency)[1] * 1000 for i in range(32)]
    return {
        f"recall@{K}": round(recall_at_k(found, exact), 4),
        "batch64_ms_p50": round(percentile(batch_ms, 50), 1),
        "single_ms_p50": round(percentile(single_ms, 50), 1),
        "single_ms_p95": round(percentile(single_ms, 95), 1),
    }


def study_size(settings: Settings, size: int, real: np.ndarray, say: Any = _say, only: set[str] | None = None) -> dict:
    rng = np.random.default_rng(size)
    order = rng.permutation(len(real))
    queries = real[order[:QUERIES]]
    held_in = real[order[QUERIES:]]
    if size <= len(held_in):
        base = held_in[:size]
        source = "real"
    else:
        base = np.concatenate([held_in, variants(held_in, size - len(held_in), rng)])
        source = f"{len(held_in)} real + {size - len(held_in)} variants"
    exact = exact_top_k(base, queries, K)
    col = StudyCollection(settings, size)
    out: dict = {"entities": size, "vectors": source, "indexes": {}}
    try:
        col.create(base.shape[1])
        start = time.perf_counter()
        col.insert(base)
        out["insert_s"] = round(time.perf_counter() - start, 1)
        say(f"[milvus] {size}: inserted ({source}) in {out['insert_s']}s")
        for choice in index_choices(size):
            if only and choice.name not in only:
                continue
            try:
                build_s = col.build(choice)
            except Exception as exc:  # an index type this server does not offer or is not set up for
                out["indexes"][choice.name] = {"error": str(exc).splitlines()[0][:200]}
                say(f"[milvus] {size}: {choice.name} not available: {out['indexes'][choice.name]['error']}")
                continue
            row = {"build_s": round(build_s, 1), "params": {**choice.build, **choice.search}}
            row |= _measure(col, queries, exact, choice.search, "Bounded")
            out["indexes"][choice.name] = row
            say(f"[milvus] {size}: {choice.name} {row}")
            if choice.name == "HNSW":  # the worker's index: consistency is measured on it
                out["consistency"] = consistency_study(col, base, rng)
                say(f"[milvus] {size}: consistency {out['consistency']}")
    finally:
        col.drop()
    return out


def consistency_study(col: StudyCollection, base: np.ndarray, rng: np.random.Generator) -> dict:
    """On the last index built: search latency Strong vs Bounded, and whether rows written just now
    are found, by Milvus alone (Strong, Bounded) and with the worker's recent-writes overlay."""
    from resolution.candidates import IndexedRow, RecentWrites

    fresh = variants(base, QUERY_BATCH, rng)
    first_id = len(base) + 10_000_000
    ids = list(range(first_id, first_id + len(fresh)))
    result: dict = {}
    params = {"ef": 64, "nprobe": 16, "search_list": 64}
    for level in ("Bounded", "Strong"):
        col.search(fresh, params, level)  # warm: the steady state is what is measured
        times = [col.search(fresh, params, level)[1] * 1000 for _ in range(10)]
        result[f"{level.lower()}_batch64_ms_p50"] = round(percentile(times, 50), 1)
    # Write, then search for the rows at once, as the next batch of a worker would.
    col.client.insert(col.name, [{"id": i, "vector": v.tolist()} for i, v in zip(ids, fresh, strict=True)])
    bounded, _ = col.search(fresh, params, "Bounded")
    strong, strong_s = col.search(fresh, params, "Strong")
    recent = RecentWrites(fresh.shape[1], rows=len(fresh))
    recent.add([IndexedRow(str(i), "", "", v, "", "", {}) for i, v in zip(ids, fresh, strict=True)])
    overlay = [
        {int(h.row.content_id) for h in hits} | set(b) for hits, b in zip(recent.search(fresh, K), bounded, strict=True)
    ]
    result["fresh_rows_found_bounded"] = round(np.mean([i in f for i, f in zip(ids, bounded, strict=True)]), 3)
    result["fresh_rows_found_strong"] = round(np.mean([i in f for i, f in zip(ids, strong, strict=True)]), 3)
    result["fresh_rows_found_bounded_plus_overlay"] = round(
        np.mean([i in f for i, f in zip(ids, overlay, strict=True)]), 3
    )
    result["strong_right_after_write_ms"] = round(strong_s * 1000, 1)
    col.client.delete(col.name, ids=ids)  # the next index types are measured on the same rows
    return result


def run_index_study(
    settings: Settings, sizes: list[int], data_root: Path, say: Any = _say, only: set[str] | None = None
) -> dict:
    """``only``: index types to measure (all by default); at 500k some take many minutes to build."""
    if not data_root.exists():
        raise SystemExit(f"no shared datasets at {data_root}: the study needs real titles")
    say(f"[milvus] embedding the real titles under {data_root} (cached in .cache/embeddings)")
    real = real_vectors(data_root)
    say(f"[milvus] {len(real)} distinct real texts")
    sizes_study: dict[str, Any] = {}
    study: dict[str, Any] = {"real_vectors": len(real), "k": K, "queries": QUERIES, "sizes": sizes_study}
    for size in sizes:
        sizes_study[str(size)] = study_size(settings, size, real, say, only)
    print(format_study(study))
    return study


def format_study(study: dict) -> str:
    lines = []
    for size, s in study["sizes"].items():
        lines.append(f"\n{size} entities ({s['vectors']}), insert {s.get('insert_s', '?')}s")
        lines.append(f"  {'index':10s} {'build s':>8s} {'recall@10':>10s} {'64 q ms':>8s} {'1 q ms':>7s}")
        for name, row in s["indexes"].items():
            if "error" in row:
                lines.append(f"  {name:10s} not available: {row['error'][:80]}")
                continue
            lines.append(
                f"  {name:10s} {row['build_s']:8.1f} {row['recall@10']:10.4f} "
                f"{row['batch64_ms_p50']:8.1f} {row['single_ms_p50']:7.1f}"
            )
        if "consistency" in s:
            lines.append(f"  consistency: {s['consistency']}")
    return "\n".join(lines)


__all__ = ["run_index_study"]
