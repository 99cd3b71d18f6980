"""The reconciliation plan: duplicates created in two partitions are merged once, with lineage."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from streams.reconciliation import CrossPartitionReconciler, PartitionedDecision


def record(n: int, action: str, content: str, entity: str, candidates: Sequence[tuple[str, str, float]] = ()) -> dict:
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
    plan = CrossPartitionReconciler(0.55).plan(decisions)
    assert plan.merges == []
    # The pair has evidence and is left apart: counted, and counted as the curator's.
    assert (plan.cross_partition_pairs, plan.contradicted, plan.curator_kept_apart) == (1, 1, 1)


def test_a_contradicted_pair_keeps_two_entities_apart_and_cannot_be_chained_through_a_third() -> None:
    # b2 (partition 1) scored a1 (partition 0) the same, but b1, in b2's entity, had scored a1 as
    # contradicting: the worker's corrections would keep a1 and b1 apart, so reconciliation does.
    contradicted = [
        PartitionedDecision(0, record(1, "NEW", "a1", "ent-a")),
        PartitionedDecision(1, record(2, "NEW", "b1", "ent-b", [("a1", "ent-a", 0.01)])),
        PartitionedDecision(1, record(3, "MERGE", "b2", "ent-b", [("b1", "ent-b", 0.95), ("a1", "ent-a", 0.9)])),
    ]
    plan = CrossPartitionReconciler(0.55, conflict_threshold=0.05).plan(contradicted)
    assert (plan.merges, plan.cross_partition_pairs, plan.contradicted) == ([], 1, 1)
    # c1 (partition 2) scores both the same: the stronger pair joins, the contradicted one does not.
    chain = [
        *contradicted,
        PartitionedDecision(2, record(4, "NEW", "c1", "ent-c", [("a1", "ent-a", 0.97), ("b2", "ent-b", 0.8)])),
    ]
    plan = CrossPartitionReconciler(0.55, conflict_threshold=0.05).plan(chain)
    [(merge, _partition)] = plan.merges
    assert {merge.entity_id, *merge.previous_entity_ids} == {"ent-a", "ent-c"}
    assert plan.contradicted == 2  # ent-a with ent-b, and then ent-b with the joined group
    # With a lower conflict threshold the pair is no contradiction and all three join.
    assert len(CrossPartitionReconciler(0.55, conflict_threshold=0.001).plan(chain).merges) == 2


def curator_says_different(n: int, left: str, right: str) -> PartitionedDecision:
    """A curator's must-not-link on two items, as ``resolver feedback`` publishes it."""
    return PartitionedDecision(
        0,
        {
            **record(n, "CONSTRAIN", left, "ent-a"),
            "members": [left, right],
            "verdict": "different",
            "trigger": "curator-feedback",
            "event_id": f"fb-{n}",
        },
    )


def chained(c_to_a: float, c_to_b: float) -> list[PartitionedDecision]:
    """ent-a (a1, partition 0) and ent-b (b1, b2, partition 1) never scored each other; c1
    (partition 2) scored a1 and b1 the same: the only way to join ent-a and ent-b is through ent-c."""
    return [
        PartitionedDecision(0, record(1, "NEW", "a1", "ent-a")),
        PartitionedDecision(1, record(2, "NEW", "b1", "ent-b")),
        PartitionedDecision(1, record(3, "MERGE", "b2", "ent-b", [("b1", "ent-b", 0.95)])),
        PartitionedDecision(2, record(4, "NEW", "c1", "ent-c", [("a1", "ent-a", c_to_a), ("b1", "ent-b", c_to_b)])),
    ]


def groups_after(plan: Any) -> list[set[str]]:
    """The entities each survivor holds once the plan's merges are applied."""
    held: dict[str, set[str]] = {}
    for merge, _partition in plan.merges:
        held.setdefault(merge.entity_id, {merge.entity_id}).update(merge.previous_entity_ids)
    return list(held.values())


def test_without_a_verdict_a_chain_through_a_third_entity_joins_all_three() -> None:
    plan = CrossPartitionReconciler(0.55).plan(chained(0.97, 0.9))
    assert groups_after(plan) == [{"ent-a", "ent-b", "ent-c"}]
    assert (plan.contradicted, plan.curator_kept_apart) == (0, 0)


@pytest.mark.parametrize(("c_to_a", "c_to_b"), [(0.97, 0.9), (0.9, 0.97)])
def test_a_curators_must_not_link_is_not_bypassed_by_a_chain_through_a_third_entity(
    c_to_a: float, c_to_b: float
) -> None:
    # The curator said a1 != b2 (b2 is in ent-b): no evidence pairs ent-a with ent-b directly, so
    # a check per entity pair never sees it; ent-c joins whichever is stronger, not both.
    decisions = [*chained(c_to_a, c_to_b), curator_says_different(5, "a1", "b2")]
    plan = CrossPartitionReconciler(0.55).plan(decisions)
    [group] = groups_after(plan)
    assert "ent-c" in group and not {"ent-a", "ent-b"} <= group
    assert (plan.cross_partition_pairs, plan.contradicted, plan.curator_kept_apart) == (2, 1, 1)
    # Once published, a second pass plans nothing more: the refusal is stable.
    assert CrossPartitionReconciler(0.55).plan(decisions + as_published(plan)).merges == []


# ---- raced items: scored again after the fact -------------------------------------------------


class StoredIndex:
    """The exact in-memory index, with rows by id as the Milvus index serves them."""

    def __init__(self, rows: list[Any]) -> None:
        from inference.text_encoder import TEXT_DIM
        from resolution.candidates import InMemoryVectorIndex

        self.index = InMemoryVectorIndex(TEXT_DIM)
        self.index.upsert_now(rows)
        self.by_id = {r.content_id: r for r in rows}

    async def rows(self, content_ids: list[str]) -> list[Any]:
        return [self.by_id[c] for c in content_ids if c in self.by_id]

    async def search(self, vectors: Any, k: int) -> list[list[Any]]:
        return self.index.search_now(vectors, k)


class SameScorer:
    """p(same) by a fixed table of pairs (the matcher itself is tested elsewhere)."""

    model_version = "fixed"

    def __init__(self, p_same: dict[frozenset[str], float]) -> None:
        self.p_same = p_same
        self.asked: list[tuple[str, str]] = []

    async def score(self, pairs: list[Any]) -> list[Any]:
        from resolution.matcher import PairScore

        out = []
        for p in pairs:
            self.asked.append((p.left.content_id, p.right.content_id))
            same = self.p_same.get(frozenset((p.left.content_id, p.right.content_id)), 0.0)
            out.append(PairScore({"same": same, "version_of": 0.0, "video_of": 0.0, "none": 1 - same}, {}))
        return out


def stored_row(content_id: str, direction: int) -> Any:
    import numpy as np

    from inference.text_encoder import TEXT_DIM
    from resolution.candidates import IndexedRow

    vector = np.zeros(TEXT_DIM, dtype=np.float32)
    vector[direction] = 1.0
    meta = {"content_id": content_id, "kind": "recording", "title_core": f"song {direction}"}
    return IndexedRow(content_id, "", "", vector, f"song {direction}", "", meta)


def raced(at_ms: dict[str, int], partitions: dict[str, int]) -> list[PartitionedDecision]:
    """NEW decisions of a1 and b1 (the same song, one vector) and c1 (another), none of which
    scored another: each search ran before the other's row was written."""
    out = []
    for n, content in enumerate(("a1", "b1", "c1"), start=1):
        r = {**record(n, "NEW", content, f"ent-{content[0]}"), "decided_at_ms": at_ms[content]}
        out.append(PartitionedDecision(partitions[content], r))
    return out


def test_items_decided_new_at_once_in_two_partitions_are_scored_again_and_merged() -> None:
    import asyncio

    from streams.reconciliation import rescore_raced

    index = StoredIndex([stored_row("a1", 0), stored_row("b1", 0), stored_row("c1", 1)])
    scorer = SameScorer({frozenset(("a1", "b1")): 0.9})
    decisions = raced({"a1": 1_000, "b1": 1_300, "c1": 1_100}, {"a1": 0, "b1": 1, "c1": 2})
    rescored = asyncio.run(rescore_raced(decisions, index, scorer, window_s=5.0, k=3))
    assert {(x.record["content_id"], x.other_content_id) for x in rescored if x.p_same >= 0.55} == {
        ("a1", "b1"),
        ("b1", "a1"),
    }
    plan = CrossPartitionReconciler(0.55).plan(decisions, rescored)
    [(merge, _partition)] = plan.merges
    assert {merge.entity_id, *merge.previous_entity_ids} == {"ent-a", "ent-b"}
    # Without the second scoring there is no evidence: the workers never compared them.
    assert CrossPartitionReconciler(0.55).plan(decisions).merges == []


def test_only_pairs_that_could_have_raced_are_scored_again() -> None:
    import asyncio

    from streams.reconciliation import rescore_raced

    index = StoredIndex([stored_row("a1", 0), stored_row("b1", 0), stored_row("c1", 1)])
    # Far apart in time, or in one partition (one worker decides a partition in order), or
    # already scored by the later item's own decision: nothing to score again.
    # (c1, another song, is decided long after both.)
    far = raced({"a1": 1_000, "b1": 60_000, "c1": 900_000}, {"a1": 0, "b1": 1, "c1": 2})
    one_partition = raced({"a1": 1_000, "b1": 1_300, "c1": 900_000}, {"a1": 0, "b1": 0, "c1": 2})
    seen = raced({"a1": 1_000, "b1": 1_300, "c1": 900_000}, {"a1": 0, "b1": 1, "c1": 2})
    for d in seen:
        d.record["candidates"] = [{"content_id": c, "p_same": 0.1} for c in ("a1", "b1", "c1")]
    for decisions in (far, one_partition, seen):
        scorer = SameScorer({frozenset(("a1", "b1")): 0.9})
        assert asyncio.run(rescore_raced(decisions, index, scorer, window_s=5.0, k=3)) == []
        assert scorer.asked == []
