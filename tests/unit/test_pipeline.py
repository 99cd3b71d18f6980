"""The resolver's chunked pipeline: same decisions as one chunk, and the next embedding overlaps."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np

from evaluation.sample_catalogue import generate_catalogue
from resolution.candidates import CandidateFinder, InMemoryVectorIndex
from resolution.entities import EntityStore
from resolution.matcher import RuleScorer
from resolution.policy import DecisionPolicy, Thresholds
from resolution.resolver import BatchResolver
from tests.unit.text_fakes import BOW_DIM as DIM
from tests.unit.text_fakes import BagOfWordsEncoder


class RecordingEncoder(BagOfWordsEncoder):
    """Logs when each call starts and ends, with a pause that stands in for Triton's time."""

    def __init__(self, log: list[str]) -> None:
        self._log = log
        self._calls = 0

    async def encode(self, texts: list[str]) -> np.ndarray:
        n = self._calls
        self._calls += 1
        self._log.append(f"embed {n} start")
        await asyncio.sleep(0.01)
        self._log.append(f"embed {n} end")
        return await super().encode(texts)


class FailingScorer(RuleScorer):
    """The scorer of the second chunk raises, as an unreachable Triton would."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    async def score(self, pairs: list[Any]) -> list[Any]:
        self.calls += 1
        if self.calls == 2:
            raise ConnectionError("scorer down")
        return await super().score(pairs)


def resolver(chunk: int, encoder: Any = None, scorer: Any = None) -> tuple[BatchResolver, dict[str, Any]]:
    table: dict[str, Any] = {}
    finder = CandidateFinder(InMemoryVectorIndex(DIM), 10, 100_000, DIM)
    return (
        BatchResolver(
            encoder or BagOfWordsEncoder(),
            finder,
            scorer or RuleScorer(),
            DecisionPolicy(Thresholds()),
            EntityStore(table),
            max_candidates=10,
            pipeline_chunk=chunk,
        ),
        table,
    )


def test_chunked_batches_decide_as_one_chunk_does() -> None:
    items, _truth = generate_catalogue(seed=3, songs=40)
    batches = [items[i : i + 50] for i in range(0, len(items), 50)]
    outcomes = []
    for chunk in (0, 7):
        r, table = resolver(chunk)
        for batch in batches:
            asyncio.run(r.resolve(batch))
        store = EntityStore(table)
        outcomes.append({i.content_id: store.entity_of(i.content_id) for i in items})
    whole, chunked = outcomes
    same = sum(whole[c] == chunked[c] for c in whole)
    # Chunking moves a batch's earlier items from the "batch" path to the recent-writes path,
    # which ranks candidates slightly differently; the entities must (nearly) all agree.
    assert same / len(whole) >= 0.98, f"{len(whole) - same} of {len(whole)} content ids resolved differently"


def test_next_chunk_is_embedded_while_the_current_one_is_decided() -> None:
    log: list[str] = []
    r, _table = resolver(4, encoder=RecordingEncoder(log))
    items, _truth = generate_catalogue(seed=5, songs=6)
    result = asyncio.run(r.resolve(items[:12]))
    assert len(result.decisions) == 12
    assert len(result.stages["embed"]) == 3 and len(result.stages["decide"]) == 3
    # Chunk 1's embedding starts before chunk 0's decisions are done.
    embed_1 = next(s for s, _e in result.stages["embed"][1:2])
    decide_0_end = result.stages["decide"][0][1]
    assert embed_1 < decide_0_end


def test_a_failing_chunk_leaves_no_embedding_running() -> None:
    log: list[str] = []
    r, _table = resolver(4, encoder=RecordingEncoder(log), scorer=FailingScorer())
    items, _truth = generate_catalogue(seed=5, songs=6)

    async def run() -> int:
        try:
            await r.resolve(items[:12])
        except ConnectionError:
            pass
        else:
            raise AssertionError("the scorer's failure must reach the caller")
        await asyncio.sleep(0.05)
        return len([t for t in asyncio.all_tasks() if t is not asyncio.current_task()])

    assert asyncio.run(run()) == 0
    assert "embed 2 end" not in log  # chunk 2 was never embedded: the batch stopped at chunk 1
