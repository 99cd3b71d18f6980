"""Triton serves the cross-encoder with the in-process model's answers, and the worker's scorer
(the matcher refined by it on the uncertain band) decides as ``resolver evaluate`` does.

A Triton of its own, on free ports, serving this checkout's ``triton_models`` (the shared stack's
Triton serves another checkout's repository): the matcher and the cross-encoder only.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator

import numpy as np
import pytest

from content_resolver.composition import build_scorer, cross_encoder_repository, with_cross_encoder
from deploy.stack import LocalStack
from deploy.worker import free_port
from inference.cross_encoder import CrossEncoderModel, CrossEncoderVersion, LocalCrossEncoder, pair_texts
from inference.matcher_model import LocalPairScorer, MatcherModel
from inference.model_repository import ModelRepository
from inference.triton_client import TritonCrossEncoder, TritonPairScorer
from resolution.matcher import BandRefinedScorer, PairInput
from resolution.model import ContentItem
from resolution.normalise import normalise
from settings import Settings

pytestmark = pytest.mark.integration


def _item(cid: str, title: str, artist: str, release: str = "", duration_s: int = 215) -> ContentItem:
    return ContentItem(
        event_id=f"ev-{cid}",
        content_id=cid,
        source="store-a",
        kind="recording",
        title=title,
        artists=(artist,),
        release=release or None,
        duration_ms=duration_s * 1000,
    )


PAIRS = [
    PairInput(
        normalise(_item("a", "Illusion (feat. Echosmith)", "Zedd", "True Colors", 390)),
        normalise(_item("b", "Illusion [feat. Echosmith]", "Zedd", "True Colors", 390)),
        0.97,
    ),
    PairInput(
        normalise(_item("c", "Transmission [feat. X Ambassadors]", "Zedd", "True Colors", 242)),
        normalise(_item("d", "Illusion (feat. Echosmith)", "Zedd", "True Colors", 390)),
        0.80,
    ),
    PairInput(
        normalise(_item("e", "I'm a Machine (feat. Crystal Nicole)", "David Guetta", "Nothing But the Beat", 214)),
        normalise(_item("f", "I Can Only Imagine (feat. Chris Brown)", "David Guetta", "Nothing But the Beat", 209)),
        0.74,
    ),
    # Longer than the model's sequence: truncated the same way in both places.
    PairInput(
        normalise(_item("g", " ".join(["Extended Club Mix Remastered Edition"] * 12), "Marla Quinn", "Lights", 301)),
        normalise(_item("h", "Quiet Harbour Lights", "Marla Quinn", " ".join(["Deluxe Anniversary"] * 20), 300)),
        0.55,
    ),
]


@pytest.fixture(scope="module")
def own_triton(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    # The worker runs without the cross-encoder by default (docs/quality.md); this checks it on.
    # The band is widened to every probability, so that each test pair (the matcher is sure of
    # them all) goes through the cross-encoder.
    on = {
        **os.environ,
        "RESOLVER_WORKER_CROSS_ENCODER_MODEL": "cross_encoder",
        "RESOLVER_WORKER_CROSS_ENCODER_BAND_LOW": "0",
        "RESOLVER_WORKER_CROSS_ENCODER_BAND_HIGH": "1",
    }
    base = Settings.from_env(on)
    if cross_encoder_repository(base).serving_dir() is None:
        pytest.skip("no trained cross-encoder in triton_models/cross_encoder (README: resolver train-cross-encoder)")
    ports = {"HTTP": free_port(), "GRPC": free_port(), "METRICS": free_port()}
    env = {
        **on,
        "RESOLVER_STACK_TRITON_MODELS": f"{base.worker.matcher_model},{base.worker.cross_encoder_model}",
        "RESOLVER_STACK_STATE_DIR": str(tmp_path_factory.mktemp("triton-state")),
        **{f"RESOLVER_STACK_TRITON_{k}_PORT": str(v) for k, v in ports.items()},
        "RESOLVER_WORKER_TRITON_URL": f"127.0.0.1:{ports['GRPC']}",
    }
    settings = Settings.from_env(env)
    local = LocalStack(settings.stack)
    local.up(["triton"])
    try:
        yield settings
    finally:
        local.stop("triton")


def test_triton_serves_the_cross_encoder_with_the_in_process_probabilities(own_triton: Settings) -> None:
    settings = own_triton
    repository = cross_encoder_repository(settings)
    folder = repository.serving_dir()
    assert folder is not None
    model = CrossEncoderModel.load(folder)
    version = CrossEncoderVersion.read(folder)
    assert version.version == model.version
    served = TritonCrossEncoder(
        settings.worker.triton_url,
        version,
        settings.worker.cross_encoder_model,
        repository.served().serving,
        retry_max_s=60,
    )
    # Small requests, several at once: Triton's dynamic batching puts them into one execute call.
    small = TritonCrossEncoder(
        settings.worker.triton_url, version, settings.worker.cross_encoder_model, max_batch_size=1
    )

    async def both() -> tuple[np.ndarray, np.ndarray]:
        try:
            return await served.same_probability(PAIRS), await small.same_probability(PAIRS)
        finally:
            await served.close()
            await small.close()

    via_triton, one_by_one = asyncio.run(both())
    in_process = asyncio.run(LocalCrossEncoder(model).same_probability(PAIRS))
    assert via_triton.shape == (len(PAIRS),)
    np.testing.assert_allclose(via_triton, in_process, atol=1e-5)
    np.testing.assert_allclose(one_by_one, in_process, atol=1e-5)
    # The model tells these pairs apart (a constant output would pass the comparison above).
    assert float(in_process.max() - in_process.min()) > 0.3
    lefts, _ = pair_texts(PAIRS)
    assert len(model.tokenize(lefts[3:], lefts[3:])["input_ids"][0]) == model.max_seq_length


def test_the_workers_scorer_refines_the_band_through_triton_as_evaluate_does(own_triton: Settings) -> None:
    settings = own_triton
    fast, thresholds = build_scorer(settings)
    assert isinstance(fast, TritonPairScorer)
    worker_scorer = with_cross_encoder(settings, fast, lambda: thresholds.merge)
    assert isinstance(worker_scorer, BandRefinedScorer)
    assert isinstance(worker_scorer.refiner, TritonCrossEncoder)
    matcher = ModelRepository(settings.stack.triton_model_repository, settings.worker.matcher_model).serving_dir()
    assert matcher is not None
    offline = with_cross_encoder(
        settings, LocalPairScorer(MatcherModel.load(matcher)), lambda: thresholds.merge, in_process=True
    )
    assert isinstance(offline, BandRefinedScorer)

    async def score() -> list:
        try:
            return await worker_scorer.score(PAIRS)
        finally:
            await fast.close()
            assert isinstance(worker_scorer.refiner, TritonCrossEncoder)
            await worker_scorer.refiner.close()

    deployed = asyncio.run(score())
    matcher_alone = LocalPairScorer(MatcherModel.load(matcher)).score_now(PAIRS)
    local = asyncio.run(offline.score(PAIRS))
    assert worker_scorer.refined_pairs == offline.refined_pairs == len(PAIRS)
    assert any(d.probabilities["same"] != f.probabilities["same"] for d, f in zip(deployed, matcher_alone, strict=True))
    for d, o in zip(deployed, local, strict=True):
        assert d.probabilities.keys() == o.probabilities.keys()
        for relation in d.probabilities:
            assert d.probabilities[relation] == pytest.approx(o.probabilities[relation], abs=1e-5)
    assert worker_scorer.model_version == offline.model_version
