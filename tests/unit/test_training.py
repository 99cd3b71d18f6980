"""Training the matcher on a tiny generated set: reproducible, calibrated enough, thresholds sane."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from evaluation.pair_examples import PairExample
from inference.matcher_model import MatcherModel
from resolution.normalise import NormalisedItem
from resolution.policy import Thresholds
from tests.unit.text_fakes import trigram_encoder
from training.matcher import (
    SAMPLE_NAME,
    TEXT_FEATURES,
    TrainConfig,
    choose_thresholds,
    sample_dataset,
    train_matcher,
)

# Small batches: about 120 optimiser steps, so that the tiny net converges; with the default
# batch of 1024 it took 16 steps, and whether it learned depended on the initialisation.
CONFIG = TrainConfig(seed=3, hidden=16, epochs=12, batch_size=128, sample_songs=60)


def _train(tmp_path: Path) -> MatcherModel:
    datasets = [sample_dataset(CONFIG.seed, CONFIG.sample_songs)]
    return train_matcher(datasets, trigram_encoder(tmp_path / "cache"), CONFIG, progress=False)


def test_training_is_reproducible_and_learns_the_relations(tmp_path: Path) -> None:
    first = _train(tmp_path)
    second = _train(tmp_path)
    assert first.version == second.version  # same seed, same weights
    assert first.thresholds == second.thresholds
    # A text matcher: the media features are a head's over it (training/media_fusion.py).
    assert first.feature_names == TEXT_FEATURES and "same_source" not in first.feature_names
    meta = first.metadata
    relations = {key.split("/")[1] for key in meta["fit_pairs"]}
    assert relations == {"same", "version_of", "video_of", "none"}
    assert meta["tune_accuracy"] >= 0.9
    assert 0.05 <= first.thresholds.merge <= 0.95 and 0.05 <= first.thresholds.link <= 0.95
    assert 0.25 <= meta["temperature"] <= 4.0
    # The generated catalogue has works: the link threshold comes from streaming its tune records.
    curve = meta["tune_link_f1_by_threshold"][SAMPLE_NAME]
    assert len(curve) >= 5 and all(0.0 <= f1 <= 1.0 for f1 in curve.values())
    assert 0.2 <= first.thresholds.link <= 0.7

    first.save(tmp_path / "model")
    assert MatcherModel.load(tmp_path / "model").version == first.version


def _example(relation: str, dataset: str = "d") -> PairExample:
    item = NormalisedItem("x", "recording", "t")
    return PairExample(dataset, "tune", item, item, 1.0, relation)


def test_thresholds_are_the_middle_of_the_best_f1_range() -> None:
    # Two same pairs at p(same) 0.9 and 0.8, two none pairs at 0.3 and 0.2: every merge threshold
    # in (0.3, 0.8] separates them perfectly, so the middle of 0.31..0.80 is chosen.
    examples = [_example("same"), _example("same"), _example("none"), _example("none")]
    probabilities = np.array(
        [[0.9, 0.0, 0.0, 0.1], [0.8, 0.0, 0.0, 0.2], [0.3, 0.0, 0.0, 0.7], [0.2, 0.0, 0.0, 0.8]], dtype=np.float32
    )
    thresholds, scores = choose_thresholds(examples, probabilities)
    assert scores["tune_merge_f1"] == 1.0
    assert thresholds.merge == pytest.approx(0.55, abs=0.011)
    assert isinstance(thresholds, Thresholds)
