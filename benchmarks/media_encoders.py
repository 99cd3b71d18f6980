"""Media encoder throughput: chroma and image hash through Triton against the same code in-process.

``resolver bench --media SIZE``: loads the generated set's clips and frames once (ffmpeg), then
runs each encoder bare in this process and through Triton (``audio_chroma``, ``image_hash``) on
the same inputs, several rounds, and prints items/s and the ratio Triton / bare, with the CPU
flags and the load average (other processes on the machine change everything). Checks that
Triton's outputs equal the in-process ones.
"""

from __future__ import annotations

import asyncio
import os
import time

import numpy as np

from inference.triton_client import TritonMediaEncoder
from media.chroma import chroma_embedding
from media.generated_set import generate
from media.image_hash import image_hash_bits
from media.loading import MediaLoader


def _cpu_flags() -> str:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return "unknown"
    wanted = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "fma", "sse4_2")
    for line in lines:
        if line.startswith("flags"):
            return " ".join(f for f in line.split(":", 1)[1].split() if f in wanted)
    return "unknown"


def run_media_bench(triton_url: str, size: str = "small", seed: int = 12, rounds: int = 3) -> dict[str, float]:
    media_set = generate(seed, size)
    loader = MediaLoader()
    clips = [loader.audio(i.audio_ref).samples for i in media_set.items]
    frames = [loader.image(i.image_ref) for i in media_set.items]
    encoder = TritonMediaEncoder(triton_url)
    figures: dict[str, float] = {"items": len(clips), "audio_seconds": sum(len(c) for c in clips) / 11025}

    async def through_triton() -> tuple[np.ndarray, np.ndarray, float, float]:
        await encoder.chroma(clips[:2])  # warm: model load, connection
        await encoder.image_hashes(frames[:2])
        t0 = time.perf_counter()
        for _ in range(rounds):
            chroma = await encoder.chroma(clips)
        t1 = time.perf_counter()
        for _ in range(rounds):
            hashes = await encoder.image_hashes(frames)
        t2 = time.perf_counter()
        await encoder.close()
        return chroma, hashes, t1 - t0, t2 - t1

    t0 = time.perf_counter()
    for _ in range(rounds):
        bare_chroma = np.stack([chroma_embedding(c) for c in clips])
    t1 = time.perf_counter()
    for _ in range(rounds):
        bare_hashes = np.stack([image_hash_bits(f) for f in frames])
    t2 = time.perf_counter()
    chroma, hashes, audio_s, image_s = asyncio.run(through_triton())
    n = len(clips) * rounds
    figures.update(
        {
            "chroma_bare_clips_per_s": n / (t1 - t0),
            "chroma_triton_clips_per_s": n / audio_s,
            "image_bare_per_s": n / (t2 - t1),
            "image_triton_per_s": n / image_s,
            "chroma_max_abs_diff": float(np.abs(chroma - bare_chroma).max()),
            "hash_bits_differing": float((hashes != bare_hashes).sum()),
        }
    )
    figures["chroma_ratio_triton_over_bare"] = figures["chroma_triton_clips_per_s"] / figures["chroma_bare_clips_per_s"]
    figures["image_ratio_triton_over_bare"] = figures["image_triton_per_s"] / figures["image_bare_per_s"]
    figures["load_average_1m"] = os.getloadavg()[0]
    print(f"[bench] CPU flags: {_cpu_flags()}; load average {figures['load_average_1m']:.2f}")
    return figures
