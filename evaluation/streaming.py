"""Streaming a labelled set through a ``BatchResolver``, as the worker would receive it.

The resolver itself is built elsewhere (the composition root for ``resolver evaluate``; the
reference shape below for training), so this module only orders records, cuts them into
worker-sized batches and reads the clustering back from the entity store.
"""

from __future__ import annotations

import random
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from tqdm import tqdm

from evaluation.embedding_cache import CachedTextEncoder
from inference.text_encoder import TEXT_DIM
from resolution.candidates import CandidateFinder, InMemoryVectorIndex
from resolution.entities import EntityStore
from resolution.matcher import PairScorer
from resolution.model import ContentItem, Decision
from resolution.policy import DecisionPolicy, Thresholds
from resolution.resolver import BatchResolver, TextEncoder
from settings import WorkerSettings


@dataclass(frozen=True)
class ResolverConfig:
    """The reference shape training streams with (worker defaults of the first release: one
    chunk per batch, default corrections); kept fixed so the shipped matcher stays reproducible."""

    batch_size: int = 64
    candidates_k: int = 10
    recent_rows: int = WorkerSettings.recent_rows  # was a 10 s window: runs differed with their speed
    title_candidates_cap: int = 5


@dataclass
class StreamOutcome:
    order: list[str]
    decisions: dict[str, Decision]
    entity_of: dict[str, str]
    work_of: dict[str, str]
    seconds: float


def seeded_order(items: list[ContentItem], seed: int) -> list[ContentItem]:
    """One of the N orders an evaluation streams: a seeded shuffle, the same on every machine."""
    order = list(items)
    random.Random(seed).shuffle(order)
    return order


def reference_resolver(
    encoder: TextEncoder, scorer: PairScorer, thresholds: Thresholds, config: ResolverConfig
) -> tuple[BatchResolver, EntityStore]:
    """The reference shape: exact in-memory index, one chunk per batch, default corrections."""
    store = EntityStore({})
    finder = CandidateFinder(
        InMemoryVectorIndex(TEXT_DIM),
        config.candidates_k,
        config.recent_rows,
        TEXT_DIM,
        config.title_candidates_cap,
    )
    resolver = BatchResolver(
        encoder, finder, scorer, DecisionPolicy(thresholds), store, max_candidates=config.candidates_k
    )
    return resolver, store


async def stream_items(
    items: list[ContentItem],
    resolver: BatchResolver,
    store: EntityStore,
    batch_size: int,
    progress: bool = True,
    label: str = "stream",
) -> StreamOutcome:
    """Resolve ``items`` in this order, in batches of ``batch_size``; the clustering afterwards."""
    decisions: dict[str, Decision] = {}
    started = time.perf_counter()
    with tqdm(total=len(items), desc=label, unit="rec", disable=not progress, leave=False) as bar:
        for start in range(0, len(items), batch_size):
            batch = items[start : start + batch_size]
            result = await resolver.resolve(batch)
            for decision in result.decisions:
                decisions[decision.content_id] = decision
            bar.update(len(batch))
    seconds = time.perf_counter() - started
    return outcome_from_store([i.content_id for i in items], decisions, store, seconds)


def outcome_from_store(
    order: list[str], decisions: dict[str, Decision], store: EntityStore, seconds: float
) -> StreamOutcome:
    # After corrections an item's entity is the store's, not its decision's.
    entity_of = {cid: store.entity_of(cid) or cid for cid in order}
    work_of = {cid: store.work_of(entity) or entity for cid, entity in entity_of.items()}
    return StreamOutcome(order, decisions, entity_of, work_of, seconds)


async def stream_through_resolver(
    items: list[ContentItem],
    encoder: TextEncoder,
    scorer: PairScorer,
    thresholds: Thresholds,
    config: ResolverConfig,
    progress: bool = True,
    label: str = "stream",
) -> StreamOutcome:
    """The reference resolver over ``items`` with fresh state (what training's link tuning uses)."""
    resolver, store = reference_resolver(encoder, scorer, thresholds, config)
    return await stream_items(items, resolver, store, config.batch_size, progress, label)


ResolverBuild = Callable[[], AbstractAsyncContextManager[tuple[BatchResolver, EntityStore]]]


@dataclass
class OfflineResolver:
    """What an evaluation needs to stream one order: a fresh resolver with empty state (and
    index) per order, plus the encoder, matcher and thresholds it was built with."""

    encoder: CachedTextEncoder
    scorer: PairScorer
    thresholds: Thresholds
    batch_size: int
    candidates_k: int
    fresh: ResolverBuild
    # Shown in the report: index kind, text model, pipeline chunk, caps, correction limits.
    description: dict[str, Any] = field(default_factory=dict)


def reference_offline(
    encoder: CachedTextEncoder, scorer: PairScorer, thresholds: Thresholds, config: ResolverConfig
) -> OfflineResolver:
    @asynccontextmanager
    async def fresh() -> AsyncIterator[tuple[BatchResolver, EntityStore]]:
        yield reference_resolver(encoder, scorer, thresholds, config)

    return OfflineResolver(
        encoder,
        scorer,
        thresholds,
        config.batch_size,
        config.candidates_k,
        fresh,
        {"index": "exact", "shape": "reference"},
    )
