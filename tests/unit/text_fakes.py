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
