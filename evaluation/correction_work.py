"""How much re-resolution work corrections cost per event, and what they do to quality.

Streams a dataset in a shuffled order through ``BatchResolver`` twice (corrections on, and off),
optionally with curator feedback drawn from the truth for a share of the records, and prints the
entities re-examined per event (max, p99, mean) and the pairwise F1 of each run.

    .venv/bin/python -m evaluation.correction_work --dataset ../shared/data/musicbrainz-20k [--feedback 0.02]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from pathlib import Path
from typing import Any

import numpy as np

from evaluation.datasets import load_dataset
from evaluation.embedding_cache import minilm_cache
from evaluation.metrics import pairwise_prf
from inference.text_encoder import TEXT_DIM
from resolution.candidates import CandidateFinder, InMemoryVectorIndex
from resolution.corrections import CorrectionLimits, Corrector
from resolution.entities import EntityStore
from resolution.feedback import Feedback
from resolution.matcher import RuleScorer
from resolution.model import ContentItem
from resolution.policy import DecisionPolicy, Thresholds
from settings import WorkerSettings

OFF = CorrectionLimits(bind_threshold=2.0, conflict_threshold=-1.0)  # no trigger can fire


async def stream(
    items: list[ContentItem], feedback: dict[int, list[Feedback]], encoder: Any, limits: CorrectionLimits, batch: int
) -> tuple[dict[str, str], list[int], float]:
    from resolution.resolver import BatchResolver

    table: dict[str, Any] = {}
    store = EntityStore(table)
    finder = CandidateFinder(InMemoryVectorIndex(TEXT_DIM), 10, WorkerSettings.recent_rows, TEXT_DIM)
    thresholds = Thresholds()
    resolver = BatchResolver(
        encoder, finder, RuleScorer(), DecisionPolicy(thresholds), store, 10, Corrector(store, limits)
    )
    work: list[int] = []
    started = time.perf_counter()
    for n, start in enumerate(range(0, len(items), batch)):
        result = await resolver.resolve(items[start : start + batch], feedback.get(n, []))
        work.extend(result.reexamined)
    seconds = time.perf_counter() - started
    return {i.content_id: store.entity_of(i.content_id) or i.content_id for i in items}, work, seconds


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--dataset", required=True)
    p.add_argument("--limit", type=int)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--feedback", type=float, default=0.0, help="share of records given a curator verdict")
    args = p.parse_args(argv)
    ds = load_dataset(Path(args.dataset), limit=args.limit)
    assert ds.truth is not None, "the dataset needs truth.csv"
    items = [i for i in ds.items if i.content_id in ds.truth]
    rng = random.Random(args.seed)
    rng.shuffle(items)
    truth = {i.content_id: ds.truth[i.content_id].entity_id for i in items}
    # Feedback: a verdict on a random pair of records (same entity or not, as the truth says),
    # sent at a random point of the stream, possibly before either record arrives.
    batches = (len(items) + args.batch - 1) // args.batch
    feedback: dict[int, list[Feedback]] = {}
    by_entity: dict[str, list[str]] = {}
    for cid, entity in truth.items():
        by_entity.setdefault(entity, []).append(cid)
    for k in range(int(len(items) * args.feedback)):
        left = rng.choice(items).content_id
        mates = [c for c in by_entity[truth[left]] if c != left]
        right = rng.choice(mates) if mates and rng.random() < 0.5 else rng.choice(items).content_id
        if right == left:
            continue
        verdict = "same" if truth[left] == truth[right] else "different"
        feedback.setdefault(rng.randrange(batches), []).append(Feedback(f"fb-{k}", left, right, verdict, "truth"))
    encoder = minilm_cache(Path(".cache/embeddings"))
    from resolution.normalise import normalise

    encoder.prefill([normalise(i).embed_text for i in items], progress=False)
    for label, limits in (
        ("corrections on", CorrectionLimits()),
        ("evidence triggers off (feedback still applied)", OFF),
    ):
        entity_of, work, seconds = asyncio.run(stream(items, feedback, encoder, limits, args.batch))
        prf = pairwise_prf(entity_of, truth)
        arr = np.asarray(work or [0])
        print(
            f"{ds.name} {len(items)} records, {sum(len(v) for v in feedback.values())} feedback, {label}: "
            f"pairwise P {prf.precision:.4f} R {prf.recall:.4f} F1 {prf.f1:.4f}; entities re-examined per event "
            f"max {int(arr.max())} p99 {np.percentile(arr, 99):.0f} mean {arr.mean():.3f} "
            f"(events with any: {int((arr > 0).sum())}); {len(items) / seconds:.0f} events/s"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
