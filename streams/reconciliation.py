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
deterministic, so a second pass publishes nothing twice. Pairs a curator kept apart are not
merged.

What it does not see: two items that were both decided ``NEW`` and never appear together in
any later decision's candidates (docs/scaling.md says how often that is, measured).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from resolution.entities import EntityStore, rebuild_state
from resolution.model import Action, Decision

RECONCILIATION_TRIGGER = "re-resolution"


@dataclass(frozen=True)
class PartitionedDecision:
    """A decision record as read from the decisions topic, with the partition it was on."""

    partition: int
    record: dict[str, Any]


@dataclass
class ReconciliationPlan:
    merges: list[tuple[Decision, int]] = field(default_factory=list)  # (MERGE decision, partition)
    cross_partition_pairs: int = 0
    entities_created: int = 0
    partitions: int = 0


class _Groups:
    def __init__(self) -> None:
        self._parent: dict[str, str] = {}

    def find(self, x: str) -> str:
        self._parent.setdefault(x, x)
        while self._parent[x] != x:
            self._parent[x] = self._parent[self._parent[x]]
            x = self._parent[x]
        return x

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self._parent[max(ra, rb)] = min(ra, rb)

    def groups(self) -> list[list[str]]:
        out: dict[str, list[str]] = {}
        for x in list(self._parent):
            out.setdefault(self.find(x), []).append(x)
        return [sorted(g) for g in out.values() if len(g) > 1]


class CrossPartitionReconciler:
    """Plans the entity-into-entity merges that join duplicates created in different partitions."""

    def __init__(self, merge_threshold: float) -> None:
        self._threshold = merge_threshold

    def plan(self, decisions: list[PartitionedDecision]) -> ReconciliationPlan:
        state = rebuild_state([d.record for d in decisions])
        store = EntityStore(state)
        created_in: dict[str, int] = {}
        for d in decisions:
            r = d.record
            if r["action"] == Action.NEW.value and r.get("trigger", "content-event") == "content-event":
                created_in.setdefault(r["entity_id"], d.partition)
        groups = _Groups()
        evidence: dict[str, tuple[float, dict[str, Any]]] = {}
        pairs: set[tuple[str, str]] = set()
        for d in decisions:
            r = d.record
            if r.get("trigger", "content-event") != "content-event":
                continue
            mine = store.entity_of(r["content_id"])
            if mine is None:
                continue
            mine = store.resolve_id(mine)
            for c in r.get("candidates") or ():
                p_same = float(c.get("p_same", -1.0))
                if p_same < self._threshold:
                    continue
                theirs = store.entity_of(c["content_id"])
                if theirs is None:
                    continue
                theirs = store.resolve_id(theirs)
                if theirs == mine or created_in.get(theirs) == created_in.get(mine):
                    continue
                if created_in.get(theirs) is None or created_in.get(mine) is None:
                    continue
                if self._kept_apart(store, mine, theirs):
                    continue
                pairs.add((min(mine, theirs), max(mine, theirs)))
                groups.union(mine, theirs)
                for entity in (mine, theirs):
                    if p_same > evidence.get(entity, (-1.0, {}))[0]:
                        evidence[entity] = (p_same, r)
        plan = ReconciliationPlan(
            cross_partition_pairs=len(pairs),
            entities_created=len(created_in),
            partitions=len({d.partition for d in decisions}),
        )
        sequence = max([int(d.record.get("sequence") or 0) for d in decisions] + [time.time_ns()])
        for group in groups.groups():
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
    def _kept_apart(store: EntityStore, left: str, right: str) -> bool:
        """A curator's must-not-link between any members of the two entities."""
        right_members = set(store.members(right))
        return any(set(store.constraints(m).get("different", [])) & right_members for m in store.members(left))


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


def read_decisions(kafka: Any) -> list[PartitionedDecision]:
    from streams.kafka import read_topic
    from streams.topics import Schemas

    schema = Schemas.load().decision
    return [PartitionedDecision(r.partition, schema.decode(r.value)) for r in read_topic(kafka, kafka.decisions_topic)]
