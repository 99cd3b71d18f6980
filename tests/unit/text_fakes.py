"""A deterministic stand-in for the sentence encoder in fast unit tests: hashed character
trigrams, L2-normalised, so that similar texts get similar vectors (no model to load)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from evaluation.embedding_cache import CachedTextEncoder
from inference.text_encoder import TEXT_DIM


def trigram_vectors(texts: list[str]) -> np.ndarray:
    out = np.zeros((len(texts), TEXT_DIM), dtype=np.float32)
    for row, text in enumerate(texts):
        padded = f"  {text.casefold()}  "
        for i in range(len(padded) - 2):
            bucket = int.from_bytes(hashlib.md5(padded[i : i + 3].encode()).digest()[:4], "little") % TEXT_DIM
            out[row, bucket] += 1.0
        norm = np.linalg.norm(out[row])
        if norm:
            out[row] /= norm
    return out


def trigram_encoder(folder: Path) -> CachedTextEncoder:
    return CachedTextEncoder(folder, "trigram-test", lambda: trigram_vectors)


BOW_DIM = 64


class BagOfWordsEncoder:
    """Deterministic stand-in for the text encoder: hashed word counts, L2-normalised."""

    model_version = "bow-test"

    async def encode(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), BOW_DIM), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in text.lower().split():
                out[i, int(hashlib.md5(word.encode()).hexdigest(), 16) % BOW_DIM] += 1.0
            out[i] /= max(float(np.linalg.norm(out[i])), 1e-6)
        return out
