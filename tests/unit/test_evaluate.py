"""The evaluation loop: the worker's BatchResolver over a labelled set, metrics checked by hand."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest

from evaluation.datasets import Dataset, LabelledPair, TruthRow
from evaluation.evaluate import evaluate_clusters, evaluate_pairs, split_ids
from evaluation.sample_catalogue import generate_catalogue
from evaluation.splits import VALID, cluster_portion, pair_portion
from evaluation.streaming import ResolverConfig, reference_offline, seeded_order
from resolution.matcher import PairInput, PairScore, RuleScorer
from resolution.model import ContentItem
from resolution.policy import Thresholds
from tests.unit.text_fakes import trigram_encoder

THRESHOLDS = Thresholds(merge=0.5, link=0.5)
CONFIG = ResolverConfig(batch_size=3, candidates_k=5)


class TruthScorer:
    """Scores from the ground truth: what a perfect matcher would say."""

    model_version = "truth"

    def __init__(self, truth: dict[str, TruthRow]) -> None:
        self._truth = truth

    async def score(self, pairs: list[PairInput]) -> list[PairScore]:
        out = []
        for p in pairs:
            a, b = self._truth[p.left.content_id], self._truth[p.right.content_id]
            same = a.entity_id == b.entity_id
            version = not same and a.work_id is not None and a.work_id == b.work_id
            probs = {"same": float(same), "version_of": float(version), "video_of": 0.0}
            probs["none"] = 1.0 - sum(probs.values())
            out.append(PairScore(probs, {}))
        return out


class NeverScorer(TruthScorer):
    async def score(self, pairs: list[PairInput]) -> list[PairScore]:
        return [PairScore({"same": 0.0, "version_of": 0.0, "video_of": 0.0, "none": 1.0}, {}) for _ in pairs]


def _item(cid: str, title: str, artist: str, duration_s: int = 200) -> ContentItem:
    return ContentItem(
        event_id=f"t:{cid}",
        content_id=cid,
        source="s",
        kind="recording",
        title=title,
        artists=(artist,),
        duration_ms=duration_s * 1000,
    )


def _tiny() -> Dataset:
    # Entities: {a1, a2, a3} one recording, {b1} a live version of it (same work), {c1, c2}, {d1}.
    items = [
        _item("a1", "Silver and Gold", "Little Big Town"),
        _item("a2", "Silver And Gold", "Little Big Town"),
        _item("a3", "silver & gold", "little big town"),
        _item("b1", "Silver and Gold (Live)", "Little Big Town", 260),
        _item("c1", "Quiet Harbour", "Mara Lind"),
        _item("c2", "Quiet Harbour", "Mara Lind"),
        _item("d1", "Neon Rain", "Owen Vale"),
    ]
    truth = {
        "a1": TruthRow("A", "W1"),
        "a2": TruthRow("A", "W1"),
        "a3": TruthRow("A", "W1"),
        "b1": TruthRow("B", "W1"),
        "c1": TruthRow("C", "W2"),
        "c2": TruthRow("C", "W2"),
        "d1": TruthRow("D", "W3"),
    }
    return Dataset("tiny", Path("tiny"), items, truth)


def test_perfect_scorer_gives_perfect_metrics_in_every_order(tmp_path: Path) -> None:
    ds = _tiny()
    assert ds.truth is not None
    result = asyncio.run(
        evaluate_clusters(
            ds,
            "all",
            reference_offline(trigram_encoder(tmp_path), TruthScorer(ds.truth), THRESHOLDS, CONFIG),
            shuffles=3,
            progress=False,
        )
    )
    m = result.metrics
    assert m["records"] == 7 and m["entities"] == 4
    # true entity pairs: 3 in A + 1 in C = 4; all found, none wrong.
    assert m["pairwise"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0}
    assert m["bcubed"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0}
    # true work pairs: 4 records of W1 -> 6, plus C's 1 -> 7; the live version is linked into W1.
    assert m["work_pairwise"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0}
    assert m["candidate_recall"] == 1.0 and m["work_candidate_recall"] == 1.0
    assert m["spread"]["max_minus_min"] == 0.0
    assert [s["seed"] for s in m["shuffles"]] == [0, 1, 2]
    assert m["at_once"]["pairwise"]["f1"] == 1.0 and m["at_once"]["work_pairwise"]["f1"] == 1.0
    # Every record is decided as expected: 3 MERGE (a, a, c), 1 LINK (b1, or an a when b1 came first), 3 NEW.
    decided = {k: sum(v.values()) for k, v in result.confusion.items()}
    assert sum(decided.values()) == 7
    assert all(result.confusion[k].get(k, 0) == n for k, n in decided.items())
    assert result.errors == []


def test_a_scorer_that_never_matches_finds_nothing(tmp_path: Path) -> None:
    ds = _tiny()
    assert ds.truth is not None
    result = asyncio.run(
        evaluate_clusters(
            ds,
            "all",
            reference_offline(trigram_encoder(tmp_path), NeverScorer(ds.truth), THRESHOLDS, CONFIG),
            shuffles=1,
            progress=False,
        )
    )
    m = result.metrics
    # Nothing claimed: precision 1 by convention; 4 true pairs missed.
    assert m["pairwise"] == {"precision": 1.0, "recall": 0.0, "f1": 0.0}
    # B-cubed: each record alone. Recall per record = 1/|true cluster|: a's 3 x 1/3, c's 2 x 1/2, b1 1, d1 1
    # -> (1 + 1 + 1 + 1) / 7 = 4/7.
    assert m["bcubed"]["precision"] == 1.0
    assert m["bcubed"]["recall"] == pytest.approx(4 / 7)
    assert m["candidate_recall"] == 1.0  # the candidates were there; the scorer refused them
    assert len(result.errors) == 3  # three missed merges (second and third of A, second of C)
    assert {e["kind"] for e in result.errors} == {"missed merge"}


def test_rule_scorer_on_the_generated_catalogue(tmp_path: Path) -> None:
    items, truth = generate_catalogue(seed=7, songs=30)
    ds = Dataset("sample", Path("sample"), items, truth)
    result = asyncio.run(
        evaluate_clusters(
            ds,
            "all",
            reference_offline(trigram_encoder(tmp_path), RuleScorer(), THRESHOLDS, ResolverConfig()),
            shuffles=2,
            progress=False,
        )
    )
    m = result.metrics
    # Measured with this seed, encoder and scorer; a drop means resolution got worse.
    assert m["records"] == len(items) == 98
    assert m["candidate_recall"] == 1.0
    assert m["pairwise"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0}
    assert m["work_pairwise"]["precision"] >= 0.97 and m["work_pairwise"]["recall"] >= 0.985
    assert len(m["shuffles"]) == 2
    assert m["spread"]["max_minus_min"] == pytest.approx(abs(m["shuffles"][0]["f1"] - m["shuffles"][1]["f1"]))
    # The mean over orders is what is reported.
    assert m["pairwise"]["f1"] == pytest.approx((m["shuffles"][0]["f1"] + m["shuffles"][1]["f1"]) / 2)


def test_pair_set_precision_recall_by_hand(tmp_path: Path) -> None:
    items = [
        _item("l1", "Yesterday", "The Beatles"),
        _item("r1", "Yesterday", "Beatles"),
        _item("l2", "Help", "The Beatles"),
        _item("r2", "Help!", "The Beatles"),
        _item("l3", "Let It Be", "The Beatles"),
        _item("r3", "Hey Jude", "The Beatles"),
    ]
    # A scorer that says "same" only for the yesterday and hey-jude pairs: 1 tp, 1 fp, 1 fn.
    pairs = [
        LabelledPair("l1", "r1", 1, "valid"),
        LabelledPair("l2", "r2", 1, "valid"),
        LabelledPair("l3", "r3", 0, "valid"),
        LabelledPair("l1", "r3", 0, "train"),
    ]

    class Picky:
        model_version = "picky"

        async def score(self, batch: list[PairInput]) -> list[PairScore]:
            hits = {("l1", "r1"), ("l3", "r3")}
            return [
                PairScore({"same": 0.9, "version_of": 0.0, "video_of": 0.0, "none": 0.1}, {})
                if (p.left.content_id, p.right.content_id) in hits
                else PairScore({"same": 0.1, "version_of": 0.0, "video_of": 0.0, "none": 0.9}, {})
                for p in batch
            ]

    ds = Dataset("pairs", Path("pairs"), items, pairs=pairs)
    result = asyncio.run(
        evaluate_pairs(
            ds, VALID, reference_offline(trigram_encoder(tmp_path), Picky(), THRESHOLDS, CONFIG), progress=False
        )
    )
    m = result.metrics
    assert m["pairs"] == 3 and m["positives"] == 2
    assert m["pairwise"]["precision"] == 0.5
    assert m["pairwise"]["recall"] == 0.5
    assert m["pairwise"]["f1"] == 0.5
    assert sorted(e["kind"] for e in result.errors) == ["false negative", "false positive"]


def test_every_record_streamed_only_the_split_scored(tmp_path: Path) -> None:
    """The default: all records go through the resolver, the chosen split's alone are scored."""
    items, truth = generate_catalogue(seed=7, songs=30)
    ds = Dataset("sample", Path("sample"), items, truth)
    offline = reference_offline(trigram_encoder(tmp_path), TruthScorer(truth), THRESHOLDS, CONFIG)
    scored = split_ids(ds, VALID)
    assert 0 < len(scored) < len(items)
    every = asyncio.run(evaluate_clusters(ds, VALID, offline, shuffles=1, progress=False, at_once=False))
    alone = asyncio.run(
        evaluate_clusters(ds, VALID, offline, shuffles=1, progress=False, at_once=False, stream="split")
    )
    assert every.metrics["streamed"] == len(items) and every.metrics["records"] == len(scored)
    assert alone.metrics["streamed"] == alone.metrics["records"] == len(scored)
    # Only the scored records are judged: one expected-vs-decided count each, in both modes.
    assert sum(sum(row.values()) for row in every.confusion.values()) == len(scored)
    assert sum(sum(row.values()) for row in alone.confusion.values()) == len(scored)
    assert every.metrics["pairwise"]["f1"] == 1.0 and every.metrics["work_pairwise"]["f1"] == 1.0
    never = reference_offline(trigram_encoder(tmp_path), NeverScorer(truth), THRESHOLDS, CONFIG)
    nothing = asyncio.run(evaluate_clusters(ds, VALID, never, shuffles=1, progress=False, at_once=False))
    assert nothing.metrics["pairwise"]["recall"] == 0.0


def test_splits_are_seeded_and_proportioned() -> None:
    portions = [cluster_portion(f"entity-{i}") for i in range(20_000)]
    share = {p: portions.count(p) / len(portions) for p in set(portions)}
    assert share == pytest.approx({"fit": 0.60, "tune": 0.10, "valid": 0.15, "test": 0.15}, abs=0.01)
    assert cluster_portion("entity-1") == cluster_portion("entity-1")
    assert pair_portion("valid", "a", "b") == "valid"
    train = [pair_portion("train", f"l{i}", f"r{i}") for i in range(5000)]
    assert train.count("tune") / len(train) == pytest.approx(0.2, abs=0.02)


def test_pair_set_also_judged_from_the_clustering(tmp_path: Path) -> None:
    """Beside the per-pair figure, the pairs judged from the clustering of every record streamed
    (the measure ``--through-stack`` reports): a video that is a version of two works links to one
    of them only, so the pair with the other is a miss there, though the matcher scored it."""
    items = [
        replace(_item("w1", "Hallelujah", "Leonard Cohen"), kind="music_video"),
        replace(_item("v1", "Jeff Buckley - Hallelujah", ""), kind="music_video", artists=()),
        replace(_item("w2", "Hallelujah", "Rufus Wainwright"), kind="music_video"),
    ]
    assert [i.content_id for i in seeded_order(items, 0)] == ["w1", "w2", "v1"]  # v1 is decided last
    pairs = [
        LabelledPair("w1", "v1", 1, "valid"),
        LabelledPair("w2", "v1", 1, "valid"),
        LabelledPair("w1", "w2", 0, "valid"),
    ]
    video_of = {frozenset({"w1", "v1"}): 0.9, frozenset({"w2", "v1"}): 0.8}

    class Videos:
        model_version = "videos"

        async def score(self, batch: list[PairInput]) -> list[PairScore]:
            out = []
            for p in batch:
                v = video_of.get(frozenset({p.left.content_id, p.right.content_id}), 0.0)
                out.append(PairScore({"same": 0.0, "version_of": 0.0, "video_of": v, "none": 1.0 - v}, {}))
            return out

    ds = Dataset("videos", Path("videos"), items, pairs=pairs)
    offline = reference_offline(trigram_encoder(tmp_path), Videos(), THRESHOLDS, CONFIG)
    m = asyncio.run(evaluate_pairs(ds, VALID, offline, progress=False)).metrics
    assert m["pairwise"]["recall"] == 1.0 and m["pairwise"]["precision"] == 1.0
    clustered = m["clustered"]
    assert clustered["pairs"] == 3 and clustered["positives"] == 2
    assert (clustered["pairwise"]["tp"], clustered["pairwise"]["fp"], clustered["pairwise"]["fn"]) == (1, 0, 1)
    # v1 scored w2 above the link threshold and linked to w1, in another work.
    assert clustered["missed"] == {
        "not_candidate": 0,
        "below_link": 0,
        "other_target": 1,
        "undone": 0,
        "apart_in_scoring": 0,
    }
    assert "clustered" not in asyncio.run(evaluate_pairs(ds, VALID, offline, progress=False, clustered=False)).metrics
