"""The on-disk embedding cache: encodes each text once, survives a restart, loads lazily."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np

from evaluation.embedding_cache import CachedTextEncoder
from tests.unit.text_fakes import trigram_vectors


class CountingEncoder:
    def __init__(self) -> None:
        self.texts: list[str] = []

    def __call__(self, texts: list[str]) -> np.ndarray:
        self.texts.extend(texts)
        return trigram_vectors(texts)


def test_each_text_is_encoded_once_and_persisted(tmp_path: Path) -> None:
    counting = CountingEncoder()
    loads: list[int] = []

    def load() -> CountingEncoder:
        loads.append(1)
        return counting

    cache = CachedTextEncoder(tmp_path, "v1", load)
    assert cache.prefill(["a b", "c d", "a b"], progress=False) == 2
    assert sorted(counting.texts) == ["a b", "c d"]
    vectors = asyncio.run(cache.encode(["c d", "a b"]))
    np.testing.assert_array_equal(vectors, trigram_vectors(["c d", "a b"]))
    assert len(counting.texts) == 2  # served from memory

    reopened = CachedTextEncoder(tmp_path, "v1", load)
    assert len(reopened) == 2
    np.testing.assert_array_equal(reopened.vectors(["a b"]), trigram_vectors(["a b"]))
    assert loads == [1]  # a fully cached run never loads the encoder
    assert reopened.prefill(["e f"], progress=False) == 1
    assert len(CachedTextEncoder(tmp_path, "v1", load)) == 3
    assert len(CachedTextEncoder(tmp_path, "v2", load)) == 0  # keyed by encoder version too
