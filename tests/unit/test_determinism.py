"""Decisions depend on the events and their order, not on the clock nor on how fast they came.

The resolver the worker runs (its default chunk, caps and recent-writes overlay) streams one order
of the sample catalogue five times; in one run every clock reading jumps an hour ahead, as if each
step took that long, and the candidate module is loaded afresh under that clock (so that a clock
bound at import, such as a default argument, is the jumping one too): the wall-clock window this
overlay once kept forgot every recent write there. Every run must take the same decisions and end
in the same clustering.
"""

from __future__ import annotations

import asyncio
import importlib.util
import itertools
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import resolution.candidates as candidates_module
from evaluation.sample_catalogue import generate_catalogue
from evaluation.streaming import seeded_order, stream_items
from resolution.candidates import IndexedRow, RecentWrites
from resolution.entities import EntityStore
from resolution.matcher import RuleScorer
from resolution.model import ContentItem
from resolution.policy import DecisionPolicy, Thresholds
from resolution.resolver import BatchResolver
from settings import WorkerSettings
from tests.unit.text_fakes import BOW_DIM, BagOfWordsEncoder

W = WorkerSettings()


def _stream(items: list[ContentItem], candidates: Any = None) -> tuple[dict[str, tuple[Any, ...]], dict[str, str]]:
    store = EntityStore({})
    module = candidates or candidates_module
    finder_kind, index_kind = module.CandidateFinder, module.InMemoryVectorIndex
    finder = finder_kind(index_kind(BOW_DIM), W.candidates_k, W.recent_rows, BOW_DIM, W.title_candidates_cap)
    resolver = BatchResolver(
        BagOfWordsEncoder(),
        finder,
        RuleScorer(),
        DecisionPolicy(Thresholds()),
        store,
        max_candidates=W.candidates_k,
        pipeline_chunk=W.pipeline_chunk,
    )
    decisions: dict[str, tuple[Any, ...]] = {}
    for start in range(0, len(items), W.batch_size):
        result = asyncio.run(resolver.resolve(items[start : start + W.batch_size]))
        for d in result.decisions:
            relation = d.relation.value if d.relation else None
            said = (d.action.value, d.entity_id, d.related_entity_id, relation, round(d.confidence, 6))
            decisions[d.content_id] = said
    return decisions, {i.content_id: store.entity_of(i.content_id) or "" for i in items}


def _hour_per_reading(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Every wall-clock and monotonic reading an hour after the last one; and a copy of the
    candidate module loaded under that clock (the module itself is left as it is)."""
    base = time.time()
    ticks = itertools.count(1)
    monkeypatch.setattr(time, "monotonic", lambda: base + 3600.0 * next(ticks))
    monkeypatch.setattr(time, "time", lambda: base + 3600.0 * next(ticks))
    monkeypatch.setattr(time, "time_ns", lambda: int((base + 3600.0 * next(ticks)) * 1e9))
    spec = importlib.util.spec_from_file_location("candidates_under_a_slow_clock", candidates_module.__file__)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_five_runs_of_one_order_take_the_same_decisions_whatever_the_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    items, _truth = generate_catalogue(seed=5, songs=60)
    order = seeded_order(items, 0)
    assert len(order) > 2 * W.batch_size  # several batches, each of several chunks
    runs = [_stream(order) for _ in range(4)]
    with monkeypatch.context() as patched:
        runs.append(_stream(order, _hour_per_reading(patched)))
    first_decisions, first_entities = runs[0]
    for decisions, entities in runs[1:]:
        assert [c for c in first_decisions if decisions.get(c) != first_decisions[c]] == []
        assert [c for c in first_entities if entities[c] != first_entities[c]] == []


def _row(cid: str) -> IndexedRow:
    return IndexedRow(cid, f"e-{cid}", "", np.eye(4, dtype=np.float32)[int(cid[1:]) % 4], "", "", {})


def test_recent_writes_keep_the_last_rows_written_by_count() -> None:
    recent = RecentWrites(4, rows=3)
    recent.add([_row("r0"), _row("r1")])
    recent.add([_row("r2"), _row("r3")])
    assert len(recent) == 3
    recent.add([_row("r1")])  # re-delivered: counts from now, so r2 is the oldest
    recent.add([_row("r4")])
    found = {h.row.content_id for hits in recent.search(np.eye(4, dtype=np.float32), 3) for h in hits}
    assert found == {"r1", "r3", "r4"}


def test_evaluate_repeat_counts_decisions_and_clusters_that_differ(tmp_path: Path) -> None:
    from evaluation.datasets import Dataset
    from evaluation.evaluate import determinism, evaluate_clusters
    from evaluation.streaming import ResolverConfig, StreamOutcome, reference_offline
    from tests.unit.text_fakes import trigram_encoder

    items, truth = generate_catalogue(seed=2, songs=20)
    ds = Dataset("sample", tmp_path, [i for i in items if i.content_id in truth], truth)
    offline = reference_offline(trigram_encoder(tmp_path), RuleScorer(), Thresholds(), ResolverConfig(batch_size=8))
    result = asyncio.run(evaluate_clusters(ds, "all", offline, shuffles=1, progress=False, at_once=False, repeat=3))
    assert result.metrics["determinism"] == {
        "runs": 3,
        "records": len(ds.items),
        "decisions_differing": 0,
        "outcomes_differing": 0,
        "clusters_differing": 0,
        "works_differing": 0,
    }

    # The count itself: a run whose one record went elsewhere differs in that decision and in
    # the clusters of the records it left and joined.
    async def one_run() -> StreamOutcome:
        async with offline.fresh() as (resolver, store):
            return await stream_items(seeded_order(ds.items, 0), resolver, store, 8, progress=False)

    first, second = asyncio.run(one_run()), asyncio.run(one_run())
    moved = next(c for c, d in second.decisions.items() if d.action.value == "MERGE")
    second.decisions[moved] = replace(second.decisions[moved], entity_id="elsewhere")
    second.entity_of[moved] = "elsewhere"
    counted = determinism([first, second])
    assert counted["decisions_differing"] == counted["outcomes_differing"] == 1
    assert counted["clusters_differing"] == len(
        [c for c in first.entity_of if first.entity_of[c] == first.entity_of[moved]]
    )
