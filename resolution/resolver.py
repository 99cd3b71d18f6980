"""Resolves a batch of content items: the same code runs in the worker and in evaluation.

A batch is cut into chunks. Per chunk: one encoder call, one index search, one scorer call;
then items are decided in arrival order, so each item is also compared with the batch's earlier
items. The encoder call of the next chunk runs while the current one is searched, scored and
decided: embedding is stateless, and it is the one stage that runs in another process (Triton)
for long enough to be worth overlapping.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from resolution.candidates import CandidateFinder, IndexedRow
from resolution.corrections import CorrectionLimits, Corrector
from resolution.entities import EntityStore
from resolution.feedback import Feedback
from resolution.matcher import PairInput, PairScorer
from resolution.media_evidence import (
    NO_MEDIA,
    SAME_PICTURE_SCORE,
    FusionRule,
    MediaEvidence,
    MediaMemory,
    MediaReader,
    hash_similarity,
    media_signals,
    shared_sub_fingerprints,
    with_media_evidence,
)
from resolution.media_index import MediaHit, MediaIndex, MediaRow
from resolution.model import Action, Candidate, ContentItem, Decision, Relation, ScoredCandidate, stable_id
from resolution.normalise import NormalisedItem, normalise
from resolution.policy import DecisionPolicy


class TextEncoder(Protocol):
    model_version: str

    async def encode(self, texts: list[str]) -> NDArray[np.float32]:
        """(n, dim) float32, L2-normalised rows."""
        ...


@dataclass
class BatchResult:
    decisions: list[Decision]  # one per fresh content item
    duplicates: list[ContentItem]
    # Wall-clock (start, end) of each stage, one interval per chunk; embed overlaps the others.
    stages: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    candidates_considered: int = 0
    # Entity-level changes (MERGE of entities, SPLIT, REASSIGN) and applied feedback (CONSTRAIN...).
    corrections: list[Decision] = field(default_factory=list)
    # Entities re-examined, one count per content event and per feedback handled.
    reexamined: list[int] = field(default_factory=list)
    duplicate_feedback: list[Feedback] = field(default_factory=list)

    def in_applied_order(self) -> list[Decision]:
        return sorted([*self.decisions, *self.corrections], key=lambda d: d.sequence)


class StageClock:
    """Wall-clock start and end of each stage, so the caller can emit spans and metrics."""

    def __init__(self) -> None:
        self.stages: dict[str, list[tuple[int, int]]] = {}
        self._open: tuple[str, int] | None = None

    def start(self, name: str) -> None:
        self.stop()
        self._open = (name, time.time_ns())

    def stop(self) -> None:
        if self._open is not None:
            name, start = self._open
            self.add(name, start, time.time_ns())
            self._open = None

    def add(self, name: str, start: int, end: int) -> None:
        self.stages.setdefault(name, []).append((start, end))


class BatchResolver:
    def __init__(
        self,
        encoder: TextEncoder,
        finder: CandidateFinder,
        scorer: PairScorer,
        policy: DecisionPolicy,
        store: EntityStore,
        max_candidates: int = 10,
        corrector: Corrector | None = None,
        pipeline_chunk: int = 0,
        media: MediaReader | None = None,
        media_memory: MediaMemory | None = None,
        media_candidates: int = 3,
        media_rule: FusionRule | Callable[[], FusionRule] = FusionRule.FULL,
        media_index: MediaIndex | None = None,
    ) -> None:
        self._encoder = encoder
        self._finder = finder
        self._scorer = scorer
        self._policy = policy
        self._store = store
        self._max_candidates = max_candidates
        t = policy.thresholds
        self._corrector = corrector or Corrector(
            store, CorrectionLimits(merge_threshold=t.merge, bind_threshold=t.merge)
        )
        self._last_sequence = 0
        # 0: the whole batch is one chunk (no overlap).
        self._pipeline_chunk = pipeline_chunk
        # Audio and image evidence: read per batch, remembered for later items, given to the
        # scorer with each pair (a learned matcher reads the similarities as features) and, with
        # ``media_rule`` (asked per batch: a promotion can change what the scorer reads), fused
        # after it by the hand rule (``with_media_evidence``); without a
        # reader every item is resolved on text alone, exactly as before.
        self._media = media
        self._media_memory = media_memory if media_memory is not None else MediaMemory()
        self._media_candidates = media_candidates
        if callable(media_rule):
            self._media_rule = media_rule
        else:
            fixed = media_rule
            self._media_rule = lambda: fixed
        # Every partition's and worker's media (docs/media.md): searched per chunk beside the text
        # index, written per batch; the memory above covers this resolver's writes not yet visible.
        self._media_index = media_index

    @property
    def model_version(self) -> str:
        return f"{self._encoder.model_version}+{self._scorer.model_version}"

    def _apply(self, decision: Decision) -> Decision:
        """Stamps the order of application (replay follows it) and applies to the state."""
        self._last_sequence = max(self._last_sequence + 1, time.time_ns())
        decision = replace(decision, sequence=self._last_sequence)
        self._store.apply(decision, decision.decision_id)
        return decision

    def note_trace(self, decision: Decision, trace_id: str) -> None:
        """Remembers the trace a decision was published under, for inspection."""
        self._store.note_trace(decision.decision_id, trace_id, decision.event_id)

    def apply_feedback(self, feedback: list[Feedback]) -> BatchResult:
        """Curators' feedback as hard constraints, at once; each application is a decision."""
        result = BatchResult([], [])
        for fb in feedback:
            if self._store.decision_for(fb.feedback_id) is not None:
                result.duplicate_feedback.append(fb)
                continue
            for d in self._corrector.feedback_decisions(fb).decisions:
                result.corrections.append(self._apply(d))
            correction = self._corrector.after_feedback(fb)
            result.corrections.extend(self._apply(d) for d in correction.decisions)
            result.reexamined.append(correction.examined)
        return result

    async def resolve(self, items: list[ContentItem], feedback: list[Feedback] | None = None) -> BatchResult:
        """Feedback first: a constraint that arrives with (or before) the items it names holds for them."""
        applied = self.apply_feedback(feedback or [])
        result = await self._resolve_items(items)
        result.corrections[:0] = applied.corrections
        result.reexamined[:0] = applied.reexamined
        result.duplicate_feedback = applied.duplicate_feedback
        return result

    async def _resolve_items(self, items: list[ContentItem]) -> BatchResult:
        clock = StageClock()
        fresh: list[ContentItem] = []
        duplicates: list[ContentItem] = []
        seen: set[str] = set()
        for item in items:
            if item.event_id in seen or self._store.decision_for(item.event_id) is not None:
                duplicates.append(item)
            else:
                seen.add(item.event_id)
                fresh.append(item)
        if not fresh:
            return BatchResult([], duplicates)

        clock.start("normalise")
        norms = [normalise(i) for i in fresh]
        clock.stop()
        evidence = [NO_MEDIA] * len(fresh)
        if self._media is not None and any(i.audio_ref or i.image_ref for i in fresh):
            clock.start("media")
            evidence = await self._media.read(fresh)
            clock.stop()
        size = self._pipeline_chunk or len(fresh)
        bounds = [(lo, min(lo + size, len(fresh))) for lo in range(0, len(fresh), size)]

        async def embed(lo: int, hi: int) -> NDArray[np.float32]:
            start = time.time_ns()
            vectors = await self._encoder.encode([n.embed_text for n in norms[lo:hi]])
            clock.add("embed", start, time.time_ns())
            return vectors

        decisions: list[Decision] = []
        corrections: list[Decision] = []
        reexamined: list[int] = []
        rows: list[IndexedRow] = []
        considered = 0
        pending = asyncio.ensure_future(embed(*bounds[0]))
        try:
            for n, (lo, hi) in enumerate(bounds):
                vectors = await pending
                if n + 1 < len(bounds):
                    pending = asyncio.ensure_future(embed(*bounds[n + 1]))
                    await asyncio.sleep(0)  # let it send its request before this chunk's CPU work
                considered += await self._resolve_chunk(
                    fresh[lo:hi],
                    norms[lo:hi],
                    vectors,
                    clock,
                    decisions,
                    corrections,
                    reexamined,
                    rows,
                    evidence[lo:hi],
                )
        finally:
            # An outage mid-batch: the next chunk's embedding is never awaited; do not leak it.
            if not pending.done():
                pending.cancel()
            elif not pending.cancelled():
                pending.exception()  # retrieved, so asyncio does not log it as lost

        clock.start("index")
        heard = {i.content_id: e for i, e in zip(fresh, evidence, strict=True) if e.has_audio or e.has_image}
        media_rows = [
            MediaRow(r.content_id, r.entity_id, r.work_id, heard[r.content_id], r.meta, r.vector)
            for r in rows
            if r.content_id in heard
        ]
        if self._media_index is not None and media_rows:
            await asyncio.gather(self._finder.write(rows), self._media_index.upsert(media_rows))
        else:
            await self._finder.write(rows)
        clock.stop()
        return BatchResult(decisions, duplicates, clock.stages, considered, corrections, reexamined)

    async def _resolve_chunk(
        self,
        fresh: list[ContentItem],
        norms: list[NormalisedItem],
        vectors: NDArray[np.float32],
        clock: StageClock,
        decisions: list[Decision],
        corrections: list[Decision],
        reexamined: list[int],
        rows: list[IndexedRow],
        evidence: list[MediaEvidence],
    ) -> int:
        """Searches, scores and decides one chunk, appending to the batch's lists; returns the
        number of candidates considered. Earlier chunks are found as recent writes."""
        clock.start("search")
        keys = [n.title_key for n in norms]
        isrcs = [n.isrc or "" for n in norms]
        prefetched, shared = await asyncio.gather(
            self._finder.prefetch(
                vectors, keys, isrcs, [n.title_only_key for n in norms], [n.title_alternates for n in norms]
            ),
            self._search_media(norms, evidence),
        )

        clock.start("score")
        per_item = self._gather(norms, vectors, prefetched)
        self._add_media_candidates(norms, vectors, evidence, per_item, shared)
        in_chunk = {
            **await self._remote_evidence(evidence, per_item, shared),
            **{n.content_id: e for n, e in zip(norms, evidence, strict=True)},
        }
        flat = [(i, c) for i, found in enumerate(per_item) for c in found]
        # The media similarities go to the scorer with the pair: a learned matcher reads them.
        pair_media = [self._pair_media(evidence[i], c, in_chunk) for i, c in flat]
        pairs = [
            PairInput(norms[i], _meta_item(c), c.similarity, m) for (i, c), m in zip(flat, pair_media, strict=True)
        ]
        scores = await self._scorer.score(pairs) if pairs else []
        # Asked after scoring: the version that just scored is the one the rule must suit.
        media_rule = self._media_rule()

        clock.start("decide")
        cursor = 0
        considered = 0
        for i, item in enumerate(fresh):
            cands = per_item[i]
            scored = []
            for cand in cands:
                s = scores[cursor]
                cursor += 1
                entity = self._store.entity_of(cand.content_id) or cand.entity_id
                work = self._store.work_of(entity) or cand.work_id
                current = Candidate(cand.content_id, entity, work, cand.similarity, cand.meta, cand.via)
                probabilities, signals = s.probabilities, s.signals
                media = pair_media[cursor - 1]
                if media is not None:
                    signals = {**signals, **media}
                    probabilities = with_media_evidence(probabilities, signals, media_rule)
                relation = Relation(max(("same", "version_of", "video_of"), key=lambda r: probabilities[r]))
                scored.append(ScoredCandidate(current, relation, probabilities[relation.value], probabilities, signals))
            considered += len(scored)
            decision = self._decide(item, norms[i], scored)
            if evidence[i].failures:
                # Resolved on what it has; the evidence says which modality failed and why.
                note = evidence[i].failure_note()
                decision = replace(
                    decision,
                    signals={**decision.signals, **evidence[i].failure_signals()},
                    reason=f"{decision.reason}; {note}" if decision.reason else note,
                )
            decision = self._apply(decision)
            decisions.append(decision)
            correction = self._corrector.after_decision(decision)
            corrections.extend(self._apply(d) for d in correction.decisions)
            reexamined.append(correction.examined)
            if evidence[i].has_audio or evidence[i].has_image:
                linked_back = self._corrector.media_link_back(
                    decision, norms[i].version_class == "video", self._policy.thresholds.link
                )
                corrections.extend(self._apply(d) for d in linked_back.decisions)
            entity_now = self._store.entity_of(item.content_id) or decision.entity_id
            rows.append(
                IndexedRow(
                    content_id=item.content_id,
                    entity_id=entity_now,
                    work_id=self._store.work_of(entity_now) or decision.work_id,
                    vector=vectors[i],
                    title_key=norms[i].title_key,
                    isrc=norms[i].isrc or "",
                    meta=norms[i].to_meta(),
                    title_only_key=norms[i].title_only_key,
                )
            )
            self._finder.remember([rows[-1]])
            self._media_memory.add(item.content_id, evidence[i], norms[i].to_meta(), vectors[i])
        clock.stop()
        return considered

    def _pair_media(
        self, evidence: MediaEvidence, candidate: Candidate, in_chunk: dict[str, MediaEvidence]
    ) -> dict[str, float] | None:
        """The pair's media signals, or None when either side has no media to compare."""
        other = self._media_memory.get(candidate.content_id) or in_chunk.get(candidate.content_id)
        if other is None or not (evidence.has_audio or evidence.has_image):
            return None
        return media_signals(evidence, other)

    async def _search_media(self, norms: list[NormalisedItem], evidence: list[MediaEvidence]) -> list[list[MediaHit]]:
        """Per item: the shared media index's rows that sound like it, then those showing its
        picture (one request of each kind per chunk; none without an index or media)."""
        k = self._media_candidates
        if self._media_index is None or k <= 0 or not any(e.has_audio or e.has_image for e in evidence):
            return [[] for _ in norms]
        ids = [n.content_id for n in norms]
        sounds, pictures = await asyncio.gather(
            self._media_index.sounding_like(evidence, k, ids), self._media_index.same_picture(evidence, k, ids)
        )
        return [s + p for s, p in zip(sounds, pictures, strict=True)]

    async def _remote_evidence(
        self, evidence: list[MediaEvidence], per_item: list[list[Candidate]], shared: list[list[MediaHit]]
    ) -> dict[str, MediaEvidence]:
        """The evidence of candidates this resolver has not remembered (another partition's or
        worker's, or from before a restart): from the shared hits, then one look-up for the rest."""
        out = {h.row.content_id: h.row.evidence for hits in shared for h in hits}
        if self._media_index is None:
            return out
        missing = {
            c.content_id
            for i, cands in enumerate(per_item)
            if evidence[i].has_audio or evidence[i].has_image
            for c in cands
            if c.content_id not in out and self._media_memory.get(c.content_id) is None
        }
        if missing:
            out.update({r.content_id: r.evidence for r in await self._media_index.rows(sorted(missing))})
        return out

    def _add_media_candidates(
        self,
        norms: list[NormalisedItem],
        vectors: NDArray[np.float32],
        evidence: list[MediaEvidence],
        per_item: list[list[Candidate]],
        indexed: list[list[MediaHit]] | None = None,
    ) -> None:
        """The media paths: remembered items, the chunk's earlier items and the shared index's rows
        that sound like this one, or show the same picture, whatever their titles."""
        k = self._media_candidates
        if k <= 0:
            return
        for i, found in enumerate(per_item):
            if not (evidence[i].has_audio or evidence[i].has_image):
                continue
            have = {c.content_id for c in found}
            hits: list[tuple[str, dict[str, Any], NDArray[Any]]] = []
            if evidence[i].has_audio:
                hits += self._media_memory.similar(evidence[i], k, norms[i].content_id)
                earlier = [j for j in range(i) if evidence[j].has_audio and norms[j].content_id not in have]
                shared = {j: shared_sub_fingerprints(evidence[i], evidence[j]) for j in earlier}
                for j in sorted((j for j in earlier if shared[j]), key=lambda j: -shared[j])[:k]:
                    hits.append((norms[j].content_id, norms[j].to_meta(), vectors[j]))
            picture = evidence[i].image_bits
            if picture is not None:
                hits += self._media_memory.same_picture(evidence[i], k, norms[i].content_id)
                pictured = [
                    (hash_similarity(picture, bits), j)
                    for j in range(i)
                    if (bits := evidence[j].image_bits) is not None and norms[j].content_id not in have
                ]
                for score, j in sorted(pictured, key=lambda x: -x[0])[:k]:
                    if score >= SAME_PICTURE_SCORE:
                        hits.append((norms[j].content_id, norms[j].to_meta(), vectors[j]))
            for cid, meta, vector in hits:
                if cid not in have:
                    have.add(cid)
                    found.append(Candidate(cid, "", "", float(vectors[i] @ vector), meta, "media"))
            for hit in indexed[i] if indexed else ():
                # Another partition's item: its entity as the index last saw it (the store knows
                # only this worker's partitions).
                row = hit.row
                if row.content_id not in have and row.content_id != norms[i].content_id:
                    have.add(row.content_id)
                    sim = float(vectors[i] @ row.vector) if row.vector.shape == vectors[i].shape else 0.0
                    found.append(Candidate(row.content_id, row.entity_id, row.work_id, sim, row.meta, "media"))

    def _gather(
        self, norms: list[NormalisedItem], vectors: NDArray[np.float32], prefetched: list[list[Candidate]]
    ) -> list[list[Candidate]]:
        """Each item's candidates: index hits, recent writes and the batch's earlier items.

        Exact-key matches are always kept; then at most ``title_cap`` of the most similar items
        with the same core title by other artists (covers); then the most similar of the rest,
        up to ``max_candidates``."""
        batch_sims = vectors @ vectors.T
        title_cap = self._finder.title_cap
        completed = self._finder.complete_all(
            prefetched,
            vectors,
            [n.title_key for n in norms],
            [n.isrc or "" for n in norms],
            [n.content_id for n in norms],
            [n.title_only_key if title_cap > 0 else "" for n in norms],
            [n.title_alternates for n in norms],
        )
        out: list[list[Candidate]] = []
        for i, norm in enumerate(norms):
            title_only = norm.title_only_key if title_cap > 0 else ""
            # The titles that count as this one's on the title-only path: its own, its other names.
            names = {title_only, *norm.title_alternates} if title_only else set()
            found = {c.content_id: c for c in completed[i]}
            earlier = sorted(range(i), key=lambda j: -batch_sims[i, j])
            for j in earlier:
                other = norms[j]
                if other.content_id == norm.content_id:
                    continue
                close = len(found) < self._max_candidates or batch_sims[i, j] > min(
                    c.similarity for c in found.values()
                )
                keyed = other.title_key == norm.title_key or (norm.isrc and other.isrc == norm.isrc)
                if (
                    close
                    or keyed
                    or (title_only and (other.title_only_key in names or title_only in other.title_alternates))
                ):
                    # Entity filled in at decision time, when the earlier item has been decided.
                    found[other.content_id] = Candidate(
                        other.content_id, "", "", float(batch_sims[i, j]), other.to_meta(), "batch"
                    )
            keyed_first = sorted(found.values(), key=lambda c: (c.via != "key", -c.similarity))
            keep = [c for c in keyed_first if c.via == "key"]
            rest = [c for c in keyed_first if c.via != "key"][: max(0, self._max_candidates - len(keep))]
            if title_only:
                chosen = {c.content_id for c in (*keep, *rest)}
                same_title = [
                    c
                    for c in keyed_first
                    if c.content_id not in chosen
                    and (_title_of(c) in names or title_only in (c.meta.get("title_alternates") or ()))
                ]
                rest += same_title[:title_cap]
            out.append(keep + rest)
        return out

    def _certain_merge(
        self, item: ContentItem, entity_id: str, ranked: tuple[ScoredCandidate, ...], reason: str
    ) -> Decision:
        """A merge that needs no score: the item's entity is already known for certain."""
        return Decision(
            event_id=item.event_id,
            content_id=item.content_id,
            action=Action.MERGE,
            entity_id=entity_id,
            work_id=self._store.work_of(entity_id) or entity_id,
            confidence=1.0,
            relation=Relation.SAME,
            candidates=ranked,
            reason=reason,
        )

    def _decide(self, item: ContentItem, norm: NormalisedItem, scored: list[ScoredCandidate]) -> Decision:
        known = self._store.entity_of(item.content_id)
        ranked = tuple(sorted(scored, key=lambda c: -c.score))
        if known is not None:
            # A re-delivery of a content id we already hold under a new event id.
            return self._certain_merge(item, known, ranked, "content id already resolved")
        linked = self._corrector.must_link_target(item.content_id)
        if linked is not None:
            entity_id, partner = linked
            return self._certain_merge(item, entity_id, ranked, f"curator feedback: same as {partner}")
        forbidden = frozenset(self._corrector.forbidden_entities(item.content_id))
        outcome = self._policy.decide(scored, forbidden)
        target = outcome.target
        signals = dict(target.signals) if target else {}
        if outcome.action is Action.MERGE and target is not None:
            entity_id = target.candidate.entity_id
            work_id = target.candidate.work_id or entity_id
            related = None
        elif outcome.action is Action.LINK and target is not None:
            entity_id = stable_id("ent", item.content_id)
            related = target.candidate.entity_id
            work_id = target.candidate.work_id or related
        else:
            entity_id = stable_id("ent", item.content_id)
            work_id = stable_id("work", item.content_id)
            related = None
        return Decision(
            event_id=item.event_id,
            content_id=item.content_id,
            action=outcome.action,
            entity_id=entity_id,
            work_id=work_id,
            confidence=float(outcome.confidence),
            related_entity_id=related,
            relation=outcome.relation if outcome.action is not Action.NEW else None,
            candidates=ranked,
            signals=signals,
            reason=_with_evidence_note(outcome.reason, outcome.action, signals),
        )


def _with_evidence_note(reason: str, action: Action, signals: dict[str, float]) -> str:
    """The policy's reason, and for a link whose titles share a name of the song the rule that
    counts it as a version (``with_alternate_title_evidence``): the decision says why."""
    if action is Action.LINK and signals.get("title_alternate_shared", 0.0) >= 1.0:
        return f"{reason}; the titles share a name of the song (alternate title)"
    return reason


def _meta_item(candidate: Candidate) -> NormalisedItem:
    return NormalisedItem.from_meta(candidate.meta)


def _title_of(candidate: Candidate) -> str:
    return str(candidate.meta.get("title_core", ""))
