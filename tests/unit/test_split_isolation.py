"""Split isolation of every golden set: what valid and test are scored on was never trained on.

Cluster sets: every record of one entity, and of one work, lies in one portion. Pair sets: the
leak-free valid pairs share no record, by id or by normalised text, with any training pair
(checked here from the raw ``pairs.csv`` rows, not from ``leakage``'s own bookkeeping); the raw
valid pairs of the itunes-amazon sets do share records, which is why the leak-free figure exists.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

import pytest

from evaluation.datasets import load_dataset
from evaluation.leakage import leak_free, record_text
from evaluation.pair_examples import cluster_key, pair_set_examples
from evaluation.splits import VALID, cluster_portion
from resolution.normalise import normalise
from tests.unit.text_fakes import trigram_encoder

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
needs_data = pytest.mark.skipif(not SHARED_DATA.exists(), reason=f"{SHARED_DATA} absent (a fresh clone)")


def _sets(kind_file: str) -> list[Path]:
    return sorted(p for p in SHARED_DATA.iterdir() if (p / kind_file).exists()) if SHARED_DATA.exists() else []


@needs_data
@pytest.mark.parametrize("folder", _sets("truth.csv"), ids=lambda p: p.name)
def test_cluster_sets_keep_each_entity_and_work_in_one_portion(folder: Path) -> None:
    if (folder / "pairs.csv").exists():
        pytest.skip("a pair set: its pairs.csv decides the split")
    portions: dict[str, set[str]] = defaultdict(set)
    with (folder / "truth.csv").open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            work = row.get("work_id") or None
            portion = cluster_portion(work or row["entity_id"])
            portions["entity:" + row["entity_id"]].add(portion)
            if work:
                portions["work:" + work].add(portion)
    assert portions
    straddling = [key for key, seen in portions.items() if len(seen) > 1]
    assert straddling == []


@needs_data
@pytest.mark.parametrize("folder", _sets("pairs.csv"), ids=lambda p: p.name)
def test_leak_free_valid_pairs_share_no_record_with_training(folder: Path, tmp_path: Path) -> None:
    ds = load_dataset(folder)
    assert ds.pairs is not None
    examples = pair_set_examples(ds, trigram_encoder(tmp_path))
    valid = [e for e in examples if e.portion == VALID]
    free = leak_free(valid, examples)
    assert free, "no leak-free valid pair left"
    norms = {item.content_id: normalise(item) for item in ds.items}
    train_ids = {side for p in ds.pairs if p.split == "train" for side in (p.left_id, p.right_id)}
    train_texts = {record_text(norms[i]) for i in train_ids}
    for e in free:
        for side in (e.left.content_id, e.right.content_id):
            assert side not in train_ids
            assert record_text(norms[side]) not in train_texts
    # A valid pair is never a train pair either (the raw split column).
    train_pairs = {(p.left_id, p.right_id) for p in ds.pairs if p.split == "train"}
    assert not {(e.left.content_id, e.right.content_id) for e in free} & train_pairs


@needs_data
def test_itunes_valid_pairs_reuse_training_records() -> None:
    """The finding behind the leak-free figure: raw valid shares records with train."""
    folder = SHARED_DATA / "itunes-amazon-structured"
    if not folder.exists():
        pytest.skip(f"{folder} absent")
    ds = load_dataset(folder)
    assert ds.pairs is not None
    train_ids = {side for p in ds.pairs if p.split == "train" for side in (p.left_id, p.right_id)}
    valid = [p for p in ds.pairs if p.split == "valid"]
    assert sum(p.left_id in train_ids or p.right_id in train_ids for p in valid) > 0


def test_cluster_portion_follows_the_work() -> None:
    from evaluation.datasets import TruthRow

    a, b = TruthRow("e1", "w1"), TruthRow("e2", "w1")
    assert cluster_key(a) == cluster_key(b) == "w1"
    assert cluster_portion(cluster_key(a)) == cluster_portion(cluster_key(b))
