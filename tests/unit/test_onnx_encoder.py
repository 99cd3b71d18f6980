"""The project's ONNX export against PyTorch, an independent implementation of the same model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from inference.encoder_paths import REFERENCE_PATH, encoder_path, load_encoder
from inference.onnx_export import ensure_onnx_models, onnx_models

TEXTS = [
    "yesterday by the beatles",
    "yesterday (remastered 2009) by the beatles",
    "Silver And Gold - Little Big Town",
    "x",
    "a much longer title with several words, featured artists and a live tag at the end " * 3,
    "ça plane pour moi by plastic bertrand",
]


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("stack-cache")
    ensure_onnx_models(folder, say=lambda _: None)
    return folder


def test_export_is_cached_by_key(cache_dir: Path) -> None:
    models = onnx_models(cache_dir)
    assert models.complete()
    before = models.fp32.stat().st_mtime_ns
    assert ensure_onnx_models(cache_dir, say=lambda _: None) == models
    assert models.fp32.stat().st_mtime_ns == before


def test_onnx_vectors_match_pytorch(cache_dir: Path) -> None:
    reference = load_encoder(REFERENCE_PATH, cache_dir).encode(TEXTS)
    fp32 = load_encoder(encoder_path("text_encoder_onnx"), cache_dir).encode(TEXTS)
    int8 = load_encoder(encoder_path("text_encoder_onnx_int8"), cache_dir).encode(TEXTS)
    assert fp32.shape == (len(TEXTS), 384)
    np.testing.assert_allclose(np.linalg.norm(fp32, axis=1), 1.0, atol=1e-5)
    assert (fp32 * reference).sum(1).min() > 0.9999
    assert (int8 * reference).sum(1).min() > 0.95
    # Batching and padding do not change a text's vector.
    alone = load_encoder(encoder_path("text_encoder_onnx"), cache_dir).encode(TEXTS[:1])
    np.testing.assert_allclose(alone[0], fp32[0], atol=1e-5)
