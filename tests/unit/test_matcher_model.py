"""The matcher network and its model folder: shapes, probabilities, save/load, version folders."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
import torch

from inference.matcher_model import (
    LocalPairScorer,
    MatcherModel,
    MatcherNet,
    latest_version_dir,
    load_local_scorer,
)
from resolution.features import FEATURE_NAMES
from resolution.matcher import RELATIONS, PairInput
from resolution.normalise import NormalisedItem
from resolution.policy import DecisionPolicy, Thresholds


def _model(seed: int = 0) -> MatcherModel:
    torch.manual_seed(seed)
    net = MatcherNet(len(FEATURE_NAMES), hidden=16).eval()
    return MatcherModel(net, FEATURE_NAMES, Thresholds(merge=0.6, link=0.4), {"note": "test"})


def _pair(title_b: str = "yesterday") -> PairInput:
    a = NormalisedItem("a", "recording", "yesterday", artists=("the beatles",), duration_ms=125_000, year=1965)
    b = NormalisedItem("b", "recording", title_b, artists=("beatles",), duration_ms=126_000, year=1965)
    return PairInput(a, b, 0.93)


def test_probabilities_have_one_column_per_relation_and_sum_to_one() -> None:
    model = _model()
    features = np.random.default_rng(0).normal(size=(7, len(FEATURE_NAMES))).astype(np.float32)
    probs = model.predict(features)
    assert probs.shape == (7, len(RELATIONS))
    assert np.all(probs >= 0)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-6)
    assert model.predict(np.zeros((0, len(FEATURE_NAMES)), dtype=np.float32)).shape == (0, 4)


def test_temperature_flattens_without_changing_the_ranking() -> None:
    model = _model()
    features = torch.randn(5, len(FEATURE_NAMES))
    with torch.no_grad():
        sharp = model.net(features)
    assert isinstance(model.net, MatcherNet)
    model.net.temperature.fill_(3.0)
    with torch.no_grad():
        flat = model.net(features)
    assert torch.equal(sharp.argmax(1), flat.argmax(1))
    assert float(flat.max()) < float(sharp.max())


def test_save_load_round_trip(tmp_path: Path) -> None:
    model = _model()
    model.save(tmp_path / "1")
    loaded = MatcherModel.load(tmp_path / "1")
    features = np.random.default_rng(1).normal(size=(4, len(FEATURE_NAMES))).astype(np.float32)
    np.testing.assert_array_equal(loaded.predict(features), model.predict(features))
    assert loaded.version == model.version
    assert loaded.thresholds == Thresholds(merge=0.6, link=0.4)
    assert loaded.feature_names == FEATURE_NAMES
    assert loaded.metadata == {"note": "test"}
    assert (tmp_path / "1" / "matcher.pt").stat().st_size < 64_000  # a small file, committed


def test_version_depends_on_the_weights() -> None:
    assert _model(0).version == _model(0).version
    assert _model(0).version != _model(1).version


def test_latest_version_dir_and_local_scorer(tmp_path: Path) -> None:
    assert latest_version_dir(tmp_path / "absent") is None
    (tmp_path / "3").mkdir()  # a version folder without a trained model does not count
    _model().save(tmp_path / "1")
    _model(1).save(tmp_path / "2")
    assert latest_version_dir(tmp_path) == tmp_path / "2"
    assert load_local_scorer(tmp_path / "3") is None
    loaded = load_local_scorer(tmp_path / "2")
    assert loaded is not None
    scorer, thresholds = loaded
    assert thresholds == Thresholds(0.6, 0.4)
    scores = asyncio.run(scorer.score([_pair(), _pair("let it be")]))
    assert [set(s.probabilities) for s in scores] == [set(RELATIONS)] * 2
    assert scores[0].signals["title_equal"] == 1.0 and scores[1].signals["title_equal"] == 0.0
    assert sum(scores[0].probabilities.values()) == pytest.approx(1.0, abs=1e-6)


def test_local_scorer_matches_the_model_directly() -> None:
    model = _model()
    scorer = LocalPairScorer(model)
    pairs = [_pair(), _pair("help")]
    _signals, features = model.features(pairs)
    expected = model.predict(features)
    got = [[s.probabilities[r] for r in RELATIONS] for s in scorer.score_now(pairs)]
    np.testing.assert_allclose(got, expected, rtol=0, atol=0)
    assert scorer.model_version == model.version


def test_policy_classify_follows_decide_order() -> None:
    policy = DecisionPolicy(Thresholds(merge=0.6, link=0.4))
    assert policy.classify({"same": 0.6, "version_of": 0.9, "video_of": 0.0, "none": 0.0}) == "same"
    assert policy.classify({"same": 0.5, "version_of": 0.4, "video_of": 0.1, "none": 0.0}) == "version_of"
    assert policy.classify({"same": 0.1, "version_of": 0.4, "video_of": 0.45, "none": 0.05}) == "video_of"
    assert policy.classify({"same": 0.3, "version_of": 0.3, "video_of": 0.0, "none": 0.4}) == "none"


def test_performance_evidence_moves_same_to_version() -> None:
    from resolution.matcher import PERFORMANCE_GAP_S, with_performance_evidence, with_rule_evidence

    probs = {"same": 0.9, "version_of": 0.05, "video_of": 0.0, "none": 0.05}
    demo = {"performance_differs": 1.0, "duration_known": 1.0, "duration_diff_s": 64.0}
    moved = with_performance_evidence(probs, demo)
    assert moved["same"] == pytest.approx(0.01) and moved["version_of"] == pytest.approx(0.94)
    assert sum(moved.values()) == pytest.approx(1.0)
    # a dropped "(Live)" on the same recording: lengths agree, nothing moves
    assert with_performance_evidence(probs, {**demo, "duration_diff_s": PERFORMANCE_GAP_S - 1}) == probs
    # unknown lengths or no performance tag on one side only: nothing moves
    assert with_performance_evidence(probs, {**demo, "duration_known": 0.0}) == probs
    assert with_performance_evidence(probs, {**demo, "performance_differs": 0.0}) == probs
    # identifiers first: an ISRC conflict sends p(same) to none, nothing is left to move
    both = with_rule_evidence(probs, {**demo, "isrc_conflict": 1.0})
    assert both["same"] == pytest.approx(0.01) and both["none"] == pytest.approx(0.94)


def test_other_cut_evidence_moves_none_to_version() -> None:
    from resolution.matcher import PERFORMANCE_GAP_S, with_other_cut_evidence

    probs = {"same": 0.05, "version_of": 0.1, "video_of": 0.0, "none": 0.85}
    cut = {
        "title_equal": 1.0,
        "artist_known": 1.0,
        "artist_overlap": 1.0,
        "duration_known": 1.0,
        "duration_diff_s": 150.0,
    }
    moved = with_other_cut_evidence(probs, cut)
    assert moved["version_of"] == pytest.approx(0.94) and moved["none"] == pytest.approx(0.01)
    assert moved["same"] == probs["same"] and sum(moved.values()) == pytest.approx(1.0)
    # another artist, another title, a placeholder title, a video, close or unknown lengths: nothing moves
    for change in (
        {"artist_overlap": 0.5},
        {"title_equal": 0.0},
        {"title_placeholder": 1.0},
        {"one_is_video": 1.0},
        {"duration_diff_s": PERFORMANCE_GAP_S - 1},
        {"duration_known": 0.0},
    ):
        assert with_other_cut_evidence(probs, {**cut, **change}) == probs


def test_alternate_title_evidence_moves_none_to_version() -> None:
    from resolution.matcher import with_alternate_title_evidence, with_rule_evidence

    probs = {"same": 0.03, "version_of": 0.02, "video_of": 0.0, "none": 0.95}
    shared = {"title_alternate_shared": 1.0}
    moved = with_alternate_title_evidence(probs, shared)
    assert moved["version_of"] == pytest.approx(0.96) and moved["none"] == pytest.approx(0.01)
    assert moved["same"] == probs["same"] and sum(moved.values()) == pytest.approx(1.0)
    assert with_rule_evidence(probs, shared) == moved
    # no shared name (or a signals dict from before the signal existed): nothing moves
    assert with_alternate_title_evidence(probs, {"title_alternate_shared": 0.0}) == probs
    assert with_alternate_title_evidence(probs, {}) == probs
    # nothing left in none: nothing moves
    sure = {"same": 0.1, "version_of": 0.895, "video_of": 0.0, "none": 0.005}
    assert with_alternate_title_evidence(sure, shared) == sure


def test_a_translated_cover_under_one_of_its_names_is_a_version_through_the_scorer() -> None:
    from resolution.features import pair_signals
    from resolution.matcher import with_rule_evidence
    from resolution.model import ContentItem
    from resolution.normalise import normalise

    def video(cid: str, title: str, artist: str) -> NormalisedItem:
        return normalise(ContentItem(f"e-{cid}", cid, "s", "video", title, (artist,)))

    french = video("a", "Laisse tomber les filles", "France Gall")
    both = video("b", "Chick Habit / Laisse tomber les filles", "April March")
    probs = {"same": 0.0, "version_of": 0.02, "video_of": 0.0, "none": 0.98}
    assert with_rule_evidence(probs, pair_signals(both, french, 0.4))["version_of"] > 0.9
    # another song by the same artist stays apart
    other = video("c", "Poupée de cire, poupée de son", "France Gall")
    assert with_rule_evidence(probs, pair_signals(both, other, 0.4)) == probs


def test_a_radio_edit_and_the_extended_mix_are_versions_through_the_scorer() -> None:
    from resolution.features import pair_signals
    from resolution.matcher import with_rule_evidence
    from resolution.model import ContentItem
    from resolution.normalise import normalise

    def track(cid: str, title: str, seconds: int) -> NormalisedItem:
        item = ContentItem(f"e-{cid}", cid, "s", "recording", title, ("Mara Lind",), duration_ms=seconds * 1000)
        return normalise(item)

    edit, extended = track("a", "Quiet Harbour (Radio Edit)", 212), track("b", "Quiet Harbour (Extended Mix)", 402)
    probs = {"same": 0.02, "version_of": 0.08, "video_of": 0.0, "none": 0.9}
    out = with_rule_evidence(probs, pair_signals(edit, extended, 0.9))
    assert out["version_of"] > 0.9


def test_local_scorer_applies_the_performance_evidence() -> None:
    a = NormalisedItem("a", "recording", "fake", frozenset({"demo"}), "version", ("shinedown",), duration_ms=305_000)
    b = NormalisedItem("b", "recording", "fake", artists=("shinedown",), duration_ms=241_000)
    [score] = LocalPairScorer(_model()).score_now([PairInput(a, b, 0.95)])
    assert score.probabilities["same"] == pytest.approx(0.01)
