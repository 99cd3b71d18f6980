"""The reconciliation plan: duplicates created in two partitions are merged once, with lineage."""

from __future__ import annotations

from typing import Any

from streams.reconciliation import CrossPartitionReconciler, PartitionedDecision


def record(n: int, action: str, content: str, entity: str, candidates: list[tuple[str, str, float]] = ()) -> dict:
    return {
        "decision_id": f"d-{n}",
        "event_id": f"ev-{content}",
        "content_id": content,
        "action": action,
        "entity_id": entity,
        "work_id": entity,
        "confidence": 0.9,
        "candidates": [
            {"content_id": c, "entity_id": e, "score": p, "relation": "same", "signals": {}, "p_same": p}
            for c, e, p in candidates
        ],
        "reason": "",
        "previous_entity_ids": [],
        "members": [],
        "trigger": "content-event",
        "sequence": n,
    }


def two_partitions(p_same: float) -> list[PartitionedDecision]:
    return [
        PartitionedDecision(0, record(1, "NEW", "a1", "ent-a")),
        PartitionedDecision(1, record(2, "NEW", "b1", "ent-b")),
        # A later item of partition 1 joins ent-b and also scored a1 (of partition 0) as the same.
        PartitionedDecision(1, record(3, "MERGE", "b2", "ent-b", [("b1", "ent-b", 0.95), ("a1", "ent-a", p_same)])),
    ]


def as_published(plan: Any) -> list[PartitionedDecision]:
    from streams.handler import decision_record

    return [PartitionedDecision(p, decision_record(d, "reconciliation", "", 0)) for d, p in plan.merges]


def test_entities_of_two_partitions_with_strong_evidence_are_merged_into_the_larger() -> None:
    decisions = two_partitions(0.9)
    plan = CrossPartitionReconciler(0.55).plan(decisions)
    assert plan.cross_partition_pairs == 1
    [(merge, partition)] = plan.merges
    assert (merge.entity_id, merge.previous_entity_ids, merge.members) == ("ent-b", ("ent-a",), ("a1",))
    assert partition == 0 and merge.trigger == "re-resolution" and merge.event_id == "ev-b2"
    # Once published, a second pass finds nothing left: no entity is created twice.
    assert CrossPartitionReconciler(0.55).plan(decisions + as_published(plan)).merges == []


def test_weak_evidence_and_one_partition_are_left_alone() -> None:
    assert CrossPartitionReconciler(0.55).plan(two_partitions(0.4)).merges == []
    same_partition = [PartitionedDecision(0, d.record) for d in two_partitions(0.9)]
    assert CrossPartitionReconciler(0.55).plan(same_partition).merges == []


def test_a_curators_must_not_link_keeps_them_apart() -> None:
    constraint = {
        **record(4, "CONSTRAIN", "a1", "ent-a"),
        "members": ["a1", "b1"],
        "verdict": "different",
        "trigger": "curator-feedback",
        "event_id": "fb-1",
    }
    decisions = [*two_partitions(0.9), PartitionedDecision(0, constraint)]
    assert CrossPartitionReconciler(0.55).plan(decisions).merges == []
