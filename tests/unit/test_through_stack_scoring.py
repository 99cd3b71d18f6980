"""The pure part of ``evaluate --through-stack``: an exported clustering scored against truth,
run-to-run differences counted."""

from __future__ import annotations

from pathlib import Path

from benchmarks.through_stack import cluster_signatures, content_decisions, differing, score_clusters, tagged
from evaluation.datasets import Dataset, TruthRow
from resolution.model import ContentItem


def _item(cid: str) -> ContentItem:
    return ContentItem(event_id=f"ev-{cid}", content_id=cid, source="s", kind="recording", title=cid, artists=("x",))


def test_exported_clusters_are_scored_on_the_dataset_ids() -> None:
    items = [_item(c) for c in ("a1", "a2", "b1", "c1")]
    truth = {"a1": TruthRow("A", "W"), "a2": TruthRow("A", "W"), "b1": TruthRow("B", "W"), "c1": TruthRow("C")}
    ds = Dataset("t", Path("t"), items, truth)
    tagged_items, original = tagged(items, "run1")
    assert all(i.content_id.endswith("@run1") for i in tagged_items)
    ids = {o: t for t, o in original.items()}
    # a1 and a2 merged; b1 wrongly merged with c1, and not linked to A's work.
    rows = [(ids["a1"], "e1", "w1"), (ids["a2"], "e1", "w1"), (ids["b1"], "e2", "w2"), (ids["c1"], "e2", "w2")]
    m = score_clusters(rows, ds, "all", original)
    assert m["missing"] == 0 and m["records"] == 4
    assert (m["pairwise"]["tp"], m["pairwise"]["fp"], m["pairwise"]["fn"]) == (1, 1, 0)
    # Work pairs: true {a1,a2,b1} -> 3; predicted {a1,a2}, {b1,c1} -> tp 1, fp 1, fn 2.
    assert (m["work_pairwise"]["tp"], m["work_pairwise"]["fp"], m["work_pairwise"]["fn"]) == (1, 1, 2)


def test_runs_are_compared_by_membership_not_entity_ids() -> None:
    first = cluster_signatures([("a", "e1", "w"), ("b", "e1", "w"), ("c", "e2", "w")], {})
    renamed = cluster_signatures([("a", "x9", "w"), ("b", "x9", "w"), ("c", "x3", "w")], {})
    moved = cluster_signatures([("a", "e1", "w"), ("b", "e2", "w"), ("c", "e2", "w")], {})
    assert differing([first, renamed]) == 0
    assert differing([first, renamed, moved]) == 3  # b left a's entity: a, b and c all see it
    records = [
        {"content_id": "a@r", "action": "NEW", "members": []},
        {"content_id": "b@r", "action": "MERGE", "members": []},
        {"content_id": "b@r", "action": "SPLIT", "members": ["b@r"]},
    ]
    assert content_decisions(records, {"a@r": "a", "b@r": "b"}) == {"a": "NEW", "b": "MERGE"}
