"""The worker's embedding cache in front of Triton: repeated texts skip the call; a new model
version empties it (pure logic: the Triton call is replaced by a counting function)."""

from __future__ import annotations

import asyncio

import numpy as np

from inference.triton_client import TritonTextEncoder


class CountingEncoder(TritonTextEncoder):
    def __init__(self, cache_size: int) -> None:
        super().__init__("127.0.0.1:1", "text_encoder_onnx_int8", cache_size=cache_size)
        self.calls: list[list[str]] = []

    async def _encode(self, texts: list[str]) -> np.ndarray:
        self.calls.append(list(texts))
        return np.stack([np.full(384, float(len(t)), dtype=np.float32) for t in texts])


def test_repeated_texts_skip_triton_and_the_cache_is_bounded() -> None:
    enc = CountingEncoder(cache_size=2)
    first = asyncio.run(enc.encode(["ab", "abc", "ab"]))
    assert enc.calls == [["ab", "abc"]]
    assert first[0][0] == 2 and first[1][0] == 3 and first[2][0] == 2
    again = asyncio.run(enc.encode(["abc", "ab"]))
    assert enc.calls == [["ab", "abc"]]
    np.testing.assert_array_equal(again, first[[1, 0]])
    asyncio.run(enc.encode(["abcd"]))  # evicts the least recently used ("abc" was used before "ab")
    asyncio.run(enc.encode(["abc"]))
    assert enc.calls[-1] == ["abc"] and len(enc.cache) == 2


def test_a_new_model_version_starts_an_empty_cache() -> None:
    enc = CountingEncoder(cache_size=10)
    asyncio.run(enc.encode(["ab"]))
    enc.model_version = "minilm-l6-v2-other"
    asyncio.run(enc.encode(["xyz"]))
    assert len(enc.cache) == 1
    asyncio.run(enc.encode(["ab"]))
    assert enc.calls[-1] == ["ab"]


def test_off_means_every_text_goes_to_triton() -> None:
    enc = CountingEncoder(cache_size=0)
    asyncio.run(enc.encode(["ab", "ab"]))
    asyncio.run(enc.encode(["ab"]))
    assert enc.calls == [["ab", "ab"], ["ab"]]
