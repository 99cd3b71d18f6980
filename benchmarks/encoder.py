"""The two encoder baselines: the model bare in-process, and Triton alone under concurrent requests."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

BARE_BATCH_SIZES = (16, 32, 64)
# (texts per request, requests in flight): one text per request is what dynamic batching is for;
# larger requests are what a worker sends (one request per Kafka batch).
TRITON_LOADS = ((1, 32), (16, 8), (64, 2))


@dataclass(frozen=True)
class Throughput:
    texts_per_s: float
    setting: str  # how it was achieved: batch size, or request size x concurrency


def bare_encoder(
    texts: list[str], text_model: str, threads: int, cache_dir: Path
) -> tuple[Throughput, dict[int, float]]:
    """Texts per second of one encoder path in-process at each batch size; the best and all."""
    from inference.encoder_paths import encoder_path, load_encoder

    encoder = load_encoder(encoder_path(text_model), cache_dir, threads=threads)
    encoder.encode(texts[:32])  # first call allocates
    rates: dict[int, float] = {}
    for size in BARE_BATCH_SIZES:
        start = time.perf_counter()
        encoder.encode(texts, batch_size=size)
        rates[size] = round(len(texts) / (time.perf_counter() - start), 1)
    best = max(rates, key=lambda s: rates[s])
    return Throughput(rates[best], f"batch {best}"), rates


def every_bare_encoder(texts: list[str], threads: int, cache_dir: Path) -> dict[str, dict]:
    """Every encoder path the machine has, in-process: the bench's baseline is the fastest."""
    from inference.encoder_paths import ENCODER_PATHS

    out: dict[str, dict] = {}
    for path in ENCODER_PATHS:
        best, rates = bare_encoder(texts, path.triton_model, threads, cache_dir)
        out[path.triton_model] = {
            "label": path.label,
            "texts_per_s": best.texts_per_s,
            "best": best.setting,
            "by_batch": rates,
        }
    return out


async def _triton_load(url: str, model: str, texts: list[str], per_request: int, concurrency: int) -> float:
    import tritonclient.grpc.aio as grpcclient

    client = grpcclient.InferenceServerClient(url=url)
    chunks = [texts[i : i + per_request] for i in range(0, len(texts), per_request)]
    queue: asyncio.Queue[list[str]] = asyncio.Queue()
    for chunk in chunks:
        queue.put_nowait(chunk)

    async def one(chunk: list[str]) -> None:
        data = np.array([[t.encode("utf-8")] for t in chunk], dtype=np.object_)
        tensor = grpcclient.InferInput("TEXT", list(data.shape), "BYTES")
        tensor.set_data_from_numpy(data)
        result = await client.infer(model, [tensor], outputs=[grpcclient.InferRequestedOutput("EMBEDDING")])
        assert result.as_numpy("EMBEDDING").shape == (len(chunk), 384)

    async def worker() -> None:
        while not queue.empty():
            await one(queue.get_nowait())

    try:
        await one(texts[:8])  # warm the channel
        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return len(texts) / (time.perf_counter() - start)
    finally:
        await client.close()


def triton_alone(url: str, model: str, texts: list[str]) -> tuple[Throughput, dict[str, float]]:
    """Texts per second through Triton for each (request size, concurrency); the best and all."""
    rates: dict[str, float] = {}
    for per_request, concurrency in TRITON_LOADS:
        rate = asyncio.run(_triton_load(url, model, texts, per_request, concurrency))
        rates[f"{per_request} texts x {concurrency} in flight"] = round(rate, 1)
    best = max(rates, key=lambda s: rates[s])
    return Throughput(rates[best], best), rates


def quality_against_reference(
    texts: list[str], text_model: str, threads: int, cache_dir: Path, k: int = 10
) -> dict[str, float]:
    """How far an encoder path's vectors are from torch fp32 on the same texts: cosine to the
    reference vector, and overlap of each text's top-k neighbours among the others (what
    candidate generation sees)."""
    from inference.encoder_paths import REFERENCE_PATH, encoder_path, load_encoder

    reference = load_encoder(REFERENCE_PATH, cache_dir, threads=threads).encode(texts)
    fast_encoder = load_encoder(encoder_path(text_model), cache_dir, threads=threads)
    start = time.perf_counter()
    fast = fast_encoder.encode(texts)
    fast_rate = len(texts) / (time.perf_counter() - start)
    cosines = (reference * fast).sum(axis=1)

    def neighbours(vectors: np.ndarray) -> np.ndarray:
        sims = vectors @ vectors.T
        np.fill_diagonal(sims, -np.inf)
        return np.argpartition(-sims, k, axis=1)[:, :k]

    ref_nn, fast_nn = neighbours(reference), neighbours(fast)
    overlap = np.mean([len(set(a) & set(b)) / k for a, b in zip(ref_nn, fast_nn, strict=True)])
    top1 = np.mean(
        (reference @ reference.T - np.eye(len(texts)) * 9).argmax(1)
        == (fast @ fast.T - np.eye(len(texts)) * 9).argmax(1)
    )
    return {
        "texts": len(texts),
        "cosine_mean": round(float(cosines.mean()), 5),
        "cosine_p1": round(float(np.percentile(cosines, 1)), 5),
        "cosine_min": round(float(cosines.min()), 5),
        f"top{k}_neighbour_overlap": round(float(overlap), 4),
        "top1_neighbour_agreement": round(float(top1), 4),
        "texts_per_s_unbatched_run": round(fast_rate, 1),
    }
