"""Reconciliation: duplicates that were created as two entities in two partitions become one.

Events are keyed by a blocking key, so likely duplicates meet in one partition and one worker
decides them in order. Two items of one recording with different keys can still land in two
partitions and, when they arrive within the vector index's visibility window of each other (or
on two workers at once), both be decided ``NEW``. Each partition's state cannot see the other's,
so the worker's own corrections (which re-cluster entities it holds) cannot join them.

This pass reads the decisions topic, the source of truth for every partition, replays it into
one global state, and looks for the evidence the workers already recorded: a decision whose
candidate scored p(same) at or above the merge threshold while that candidate's entity is
another live entity created in another partition. Such entities are grouped; in each group the
largest survives (ties by id, as corrections do) and each other one is merged into it by an
entity-into-entity ``MERGE`` decision with its lineage (``previous_entity_ids``, the members
moved, the trigger ``re-resolution`` and the event whose decision carried the evidence),
published to the decisions partition where the retired entity was created. Decision ids are
deterministic, so a second pass publishes nothing twice. Groups grow from the strongest evidence
down (the worker's constrained single linkage) and never hold two items that contradict: scored
p(same) at or below the conflict threshold, or kept apart by a curator, directly or through a
chain of other entities.

Two workers deciding two items of one recording in overlapping batches is the common way that
evidence never exists: the later item's search ran before the earlier item's row was written
(docs/scaling.md measures it). ``rescore_raced`` closes it after the fact: each item decided
``NEW`` is searched again (Strong consistency: every worker's rows are written by now) and
scored by the matcher against the items decided in another partition within the race window
of it that its own decision never scored; what reaches the merge threshold is evidence like a
worker's.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from resolution.candidates import IndexedRow, IndexHit
from resolution.entities import EntityStore, rebuild_state
from resolution.matcher import PairInput, PairScorer, with_identifier_evidence
from resolution.model import Action, Decision
from resolution.normalise import NormalisedItem
from resolution.reclustering import pair_key, recluster
from settings import WorkerSettings

RECONCILIATION_TRIGGER = "re-resolution"
# Two decisions this close in time, in two partitions, may have raced (neither search saw the
# other's row): measured, another worker's item is missed up to about a second after it.
RACE_WINDOW_S = 5.0


@dataclass(frozen=True)
class PartitionedDecision:
    """A decision record as read from the decisions topic, with the partition it was on."""

    partition: int
    record: dict[str, Any]


@dataclass
class ReconciliationPlan:
    merges: list[tuple[Decision, int]] = field(default_factory=list)  # (MERGE decision, partition)
    cross_partition_pairs: int = 0
    contradicted: int = 0  # entity pairs with evidence left apart: members of their groups contradict
    curator_kept_apart: int = 0  # of those, pairs whose groups hold a curator's must-not-link
    entities_created: int = 0
    partitions: int = 0


@dataclass(frozen=True)
class Rescored:
    """A pair scored after the fact: ``record`` (a NEW decision) and an item it never scored."""

    record: dict[str, Any]
    other_content_id: str
    p_same: float


class StoredRows(Protocol):
    """What the pass reads from the vector index: rows by id, and a search (Strong consistency)."""

    async def rows(self, content_ids: list[str]) -> list[IndexedRow]: ...

    async def search(self, vectors: NDArray[np.float32], k: int) -> list[list[IndexHit]]: ...


def _from_content_event(record: dict[str, Any]) -> bool:
    return record.get("trigger", "content-event") == "content-event"


async def rescore_raced(
    decisions: list[PartitionedDecision],
    index: StoredRows,
    scorer: PairScorer,
    window_s: float = RACE_WINDOW_S,
    k: int = 10,
    since_ms: int = 0,
) -> list[Rescored]:
    """Scores each NEW item (decided at or after ``since_ms``) against its nearest stored rows
    that were decided in another partition within ``window_s`` of it and that its decision did
    not score: the pairs a race between two workers left without evidence."""
    decided: dict[str, tuple[int, int]] = {}  # content id -> (partition, decided at ms)
    for d in decisions:
        if _from_content_event(d.record):
            decided[d.record["content_id"]] = (d.partition, int(d.record.get("decided_at_ms") or 0))
    news = [
        d.record
        for d in decisions
        if _from_content_event(d.record)
        and d.record["action"] == Action.NEW.value
        and int(d.record.get("decided_at_ms") or 0) >= since_ms
    ]
    if not news:
        return []
    stored = {r.content_id: r for r in await index.rows([r["content_id"] for r in news])}
    queries = [r for r in news if r["content_id"] in stored and stored[r["content_id"]].vector.size]
    if not queries:
        return []
    vectors = np.stack([stored[r["content_id"]].vector for r in queries]).astype(np.float32)
    hits = await index.search(vectors, k)
    pairs: list[tuple[dict[str, Any], str, PairInput]] = []
    for record, found in zip(queries, hits, strict=True):
        cid = record["content_id"]
        partition, at_ms = decided[cid]
        scored = {c["content_id"] for c in record.get("candidates") or ()}
        for hit in found:
            other = hit.row.content_id
            if other == cid or other in scored or other not in decided:
                continue
            other_partition, other_ms = decided[other]
            if other_partition == partition or abs(other_ms - at_ms) > window_s * 1000:
                continue
            left = NormalisedItem.from_meta(stored[cid].meta)
            pairs.append((record, other, PairInput(left, NormalisedItem.from_meta(hit.row.meta), hit.similarity)))
    if not pairs:
        return []
    scores = await scorer.score([p for _r, _o, p in pairs])
    return [
        Rescored(record, other, float(with_identifier_evidence(s.probabilities, s.signals).get("same", 0.0)))
        for (record, other, _p), s in zip(pairs, scores, strict=True)
    ]


class CrossPartitionReconciler:
    """Plans the entity-into-entity merges that join duplicates created in different partitions."""

    def __init__(self, merge_threshold: float, conflict_threshold: float = WorkerSettings.conflict_threshold) -> None:
        self._threshold = merge_threshold
        self._conflict = conflict_threshold

    def plan(self, decisions: list[PartitionedDecision], rescored: Iterable[Rescored] = ()) -> ReconciliationPlan:
        state = rebuild_state([d.record for d in decisions])
        store = EntityStore(state)
        created_in: dict[str, int] = {}
        for d in decisions:
            r = d.record
            if r["action"] == Action.NEW.value and r.get("trigger", "content-event") == "content-event":
                created_in.setdefault(r["entity_id"], d.partition)
        # The workers' evidence (each decision's scored candidates), then the pairs scored after
        # the fact; both as (decision, the other item, p(same)).
        evidence_pairs = [
            (d.record, str(c["content_id"]), float(c.get("p_same", -1.0)))
            for d in decisions
            if _from_content_event(d.record)
            for c in d.record.get("candidates") or ()
        ]
        evidence_pairs += [(x.record, x.other_content_id, x.p_same) for x in rescored]
        # Strongest evidence first (ties by ids, so the plan does not depend on topic order): the
        # first evidence seen for an entity pair is its strongest, and names the decision behind it.
        evidence_pairs.sort(key=lambda e: (-e[2], e[0]["content_id"], e[1]))
        edges: dict[tuple[str, str], tuple[float, dict[str, Any]]] = {}  # entity pair -> (p(same), cause)
        for r, other, p_same in evidence_pairs:
            mine, theirs = self._live_entity(store, r["content_id"]), self._live_entity(store, other)
            if p_same < self._threshold or mine is None or theirs is None or theirs == mine:
                continue
            if created_in.get(theirs) is None or created_in.get(mine) is None:
                continue
            if created_in[theirs] == created_in[mine]:
                continue  # one partition: its worker's corrections decide it
            edges.setdefault(pair_key(mine, theirs), (p_same, r))
        # Content-id pairs that must not end in one group, and whether a curator said so: a pair
        # scored p(same) <= the conflict threshold, or a curator's must-not-link (``different``).
        # One relation, checked per group, so no chain through a third entity joins what either
        # kind keeps apart.
        contradicted: dict[tuple[str, str], bool] = {}  # content id pair -> by a curator
        for r, other, p_same in evidence_pairs:
            if 0.0 <= p_same <= self._conflict:  # -1.0: a candidate recorded without a score
                contradicted[pair_key(r["content_id"], other)] = False
        # Every item entered the state as some decision's content id; a verdict is kept on both.
        for content_id in {d.record["content_id"] for d in decisions}:
            for other in store.constraints(content_id).get("different", []):
                contradicted[pair_key(content_id, other)] = True
        # Turned into entity pairs, since reconciliation moves whole entities.
        nodes = {e for pair in edges for e in pair}
        cannot: set[tuple[str, str]] = set()
        by_curator: set[tuple[str, str]] = set()
        for (a, b), curator in contradicted.items():
            left, right = self._live_entity(store, a), self._live_entity(store, b)
            if left is not None and right is not None and left != right and {left, right} <= nodes:
                cannot.add(pair_key(left, right))
                if curator:
                    by_curator.add(pair_key(left, right))
        # The worker's constrained single linkage, with each live entity one node (reconciliation
        # never splits an entity): strongest evidence first, never across a contradiction.
        clusters = recluster(
            {e: [e] for e in sorted(nodes)},
            {pair: p for pair, (p, _cause) in edges.items()},
            set(),
            cannot,
            self._threshold,
            self._conflict,
        )
        group_of = {e: i for i, cluster in enumerate(clusters) for e in cluster}
        refused = [pair for pair in edges if group_of[pair[0]] != group_of[pair[1]]]

        # A refused pair counts as the curator's when a must-not-link lies between the two groups
        # it would have joined, on its own entities or on others already in those groups.
        def groups(pair: tuple[str, str]) -> tuple[int, int]:
            first, second = sorted((group_of[pair[0]], group_of[pair[1]]))
            return first, second

        curator_groups = {groups(pair) for pair in by_curator}
        # Each entity merged away names the strongest evidence that ties it to its group.
        evidence: dict[str, tuple[float, dict[str, Any]]] = {}
        for (left, right), (p_same, r) in edges.items():
            if group_of[left] == group_of[right]:
                for entity in (left, right):
                    if p_same > evidence.get(entity, (-1.0, {}))[0]:
                        evidence[entity] = (p_same, r)
        plan = ReconciliationPlan(
            cross_partition_pairs=len(edges),
            entities_created=len(created_in),
            partitions=len({d.partition for d in decisions}),
            contradicted=len(refused),
            curator_kept_apart=sum(groups(pair) in curator_groups for pair in refused),
        )
        sequence = max([int(d.record.get("sequence") or 0) for d in decisions] + [time.time_ns()])
        for group in (c for c in clusters if len(c) > 1):
            survivor = min(group, key=lambda e: (-len(store.members(e)), e))
            for loser in group:
                if loser == survivor:
                    continue
                p_same, cause = evidence[loser]
                sequence += 1
                decision = Decision(
                    event_id=cause["event_id"],
                    content_id=cause["content_id"],
                    action=Action.MERGE,
                    entity_id=survivor,
                    work_id=store.work_of(survivor) or survivor,
                    confidence=p_same,
                    reason=(
                        f"reconciliation: entity {loser} (created in partition {created_in[loser]}) and "
                        f"{survivor} (partition {created_in[survivor]}) share items scored p_same {p_same:.2f}"
                    ),
                    previous_entity_ids=(loser,),
                    members=tuple(store.members(loser)),
                    trigger=RECONCILIATION_TRIGGER,
                    sequence=sequence,
                )
                if decision.members and not store.applied(decision.decision_id):
                    plan.merges.append((decision, created_in[loser]))
        return plan

    @staticmethod
    def _live_entity(store: EntityStore, content_id: str) -> str | None:
        entity = store.entity_of(content_id)
        return store.resolve_id(entity) if entity is not None else None


def publish_merges(kafka: Any, plan: ReconciliationPlan, model_version: str = "reconciliation") -> int:
    """Sends the planned MERGE decisions to their decisions partitions; returns how many."""
    from streams.handler import decision_record
    from streams.kafka import make_producer
    from streams.topics import Schemas

    schema = Schemas.load().decision
    producer = make_producer(kafka)
    for decision, partition in plan.merges:
        record = decision_record(decision, model_version, "", 0)
        producer.produce(
            kafka.decisions_topic, key=decision.entity_id.encode(), value=schema.encode(record), partition=partition
        )
    remaining = producer.flush(30)
    if remaining:
        raise RuntimeError(f"{remaining} reconciliation decisions not delivered")
    return len(plan.merges)


@dataclass(frozen=True)
class PassResult:
    plan: ReconciliationPlan
    rescored: int  # pairs scored after the fact
    published: int


async def reconcile_once(
    kafka: Any,
    reconciler: CrossPartitionReconciler,
    index: StoredRows | None,
    scorer: PairScorer | None,
    since_ms: int = 0,
) -> PassResult:
    """One pass of ``resolver reconcile``: the decisions topic read, raced NEW items decided at or
    after ``since_ms`` scored again (when an index and a scorer are given), merges published."""
    decisions = read_decisions(kafka)
    rescored = await rescore_raced(decisions, index, scorer, since_ms=since_ms) if index and scorer else []
    plan = reconciler.plan(decisions, rescored)
    return PassResult(plan, len(rescored), publish_merges(kafka, plan))


def read_decisions(kafka: Any) -> list[PartitionedDecision]:
    from streams.kafka import read_topic
    from streams.topics import Schemas

    schema = Schemas.load().decision
    return [PartitionedDecision(r.partition, schema.decode(r.value)) for r in read_topic(kafka, kafka.decisions_topic)]
