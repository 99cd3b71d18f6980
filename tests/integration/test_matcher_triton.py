"""Triton serves the trained matcher, and ``TritonPairScorer`` gives the in-process model's answers."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from content_resolver.composition import build_scorer
from inference.matcher_model import LocalPairScorer, MatcherModel, latest_version_dir
from inference.triton_client import TritonPairScorer
from resolution.matcher import RELATIONS, PairInput
from resolution.model import ContentItem
from resolution.normalise import normalise
from resolution.policy import DecisionPolicy
from settings import Settings

pytestmark = pytest.mark.integration


def _item(cid: str, title: str, artist: str, kind: str = "recording", duration_s: int = 215) -> ContentItem:
    return ContentItem(
        event_id=f"ev-{cid}",
        content_id=cid,
        source="store-a",
        kind=kind,
        title=title,
        artists=(artist,),
        duration_ms=duration_s * 1000,
    )


PAIRS = [
    PairInput(
        normalise(_item("a", "Silver and Gold", "Little Big Town")),
        normalise(_item("b", "Silver And Gold", "Little Big Town", duration_s=216)),
        0.97,
    ),
    PairInput(
        normalise(_item("c", "Yesterday (Live at the BBC)", "Marianne Faithfull", duration_s=160)),
        normalise(_item("d", "Yesterday", "The Beatles", duration_s=125)),
        0.71,
    ),
    PairInput(
        normalise(_item("e", "Silver and Gold (Official Video)", "Little Big Town", kind="music_video")),
        normalise(_item("a", "Silver and Gold", "Little Big Town")),
        0.9,
    ),
    PairInput(
        normalise(_item("f", "Quiet Harbour Lights", "Marla Quinn")),
        normalise(_item("g", "Thunder Over Velvet Hills", "The Copper Foxes")),
        0.12,
    ),
]


def _model(settings: Settings) -> MatcherModel:
    version = latest_version_dir(settings.stack.triton_model_repository / settings.worker.matcher_model)
    assert version is not None, "no trained matcher in triton_models/matcher (see README: resolver train)"
    return MatcherModel.load(version)


def test_triton_serves_the_matcher_with_the_in_process_probabilities(stack: Settings) -> None:
    model = _model(stack)
    scorer = TritonPairScorer(stack.worker.triton_url, model, stack.worker.matcher_model, retry_max_s=60)

    async def run() -> tuple[bool, list, list]:
        try:
            ready = await scorer.ready()
            served = await scorer.score(PAIRS)
            local = await LocalPairScorer(model).score(PAIRS)
            return ready, served, local
        finally:
            await scorer.close()

    ready, served, local = asyncio.run(run())
    assert ready, "Triton does not serve the matcher model: restart Triton after training (README)"
    got = np.array([[s.probabilities[r] for r in RELATIONS] for s in served])
    want = np.array([[s.probabilities[r] for r in RELATIONS] for s in local])
    np.testing.assert_allclose(got, want, atol=1e-5)
    np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-5)
    assert [s.signals for s in served] == [s.signals for s in local]
    # The shipped model tells the four cases apart under its own policy.
    policy = DecisionPolicy(model.thresholds)
    assert [policy.classify(s.probabilities) for s in served] == ["same", "version_of", "video_of", "none"]


def test_a_batch_larger_than_the_model_accepts_is_split(stack: Settings) -> None:
    model = _model(stack)
    scorer = TritonPairScorer(stack.worker.triton_url, model, stack.worker.matcher_model, max_batch_size=3)

    async def run() -> np.ndarray:
        try:
            _signals, features = model.features(PAIRS * 2)
            return await scorer.probabilities(features)
        finally:
            await scorer.close()

    probabilities = asyncio.run(run())
    assert probabilities.shape == (8, len(RELATIONS))
    np.testing.assert_allclose(probabilities[:4], probabilities[4:], atol=1e-6)


def test_the_worker_scorer_is_the_triton_matcher_with_its_thresholds(stack: Settings) -> None:
    scorer, thresholds = build_scorer(stack)
    model = _model(stack)
    assert isinstance(scorer, TritonPairScorer)
    assert scorer.model_version == model.version
    assert thresholds == model.thresholds
