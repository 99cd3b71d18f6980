"""Text embeddings cached on disk, keyed by the text, so repeated evaluations do not re-encode.

The cache lives under ``.cache/embeddings/<encoder version>/`` in the repository (git-ignored),
as append-only shards: each run that encodes new texts adds one ``.npz`` shard, so a crash
loses at most that run's work and nothing is ever rewritten.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
from tqdm import tqdm

from inference.text_encoder import TEXT_DIM

SyncEncode = Callable[[list[str]], np.ndarray]


def text_key(text: str) -> bytes:
    return hashlib.sha1(text.encode("utf-8")).digest()


class CachedTextEncoder:
    """The resolver's ``TextEncoder`` interface over an in-process encoder plus a disk cache.

    ``load_encoder`` is called only when a text is missing from the cache, so a fully cached run
    never loads the transformer.
    """

    def __init__(self, folder: Path, model_version: str, load_encoder: Callable[[], SyncEncode]) -> None:
        self.model_version = model_version
        self._folder = Path(folder) / model_version
        self._load_encoder = load_encoder
        self._encode: SyncEncode | None = None
        self._vectors: dict[bytes, np.ndarray] = {}
        self._read_shards()

    def _read_shards(self) -> None:
        if not self._folder.exists():
            return
        for shard in sorted(self._folder.glob("*.npz")):
            with np.load(shard) as data:
                keys, vectors = data["keys"], data["vectors"]
            for key, vector in zip(keys, vectors, strict=True):
                self._vectors[key.tobytes()] = vector

    def __len__(self) -> int:
        return len(self._vectors)

    def prefill(self, texts: list[str], chunk: int = 512, progress: bool = True) -> int:
        """Encode every text not yet cached (with a progress bar); returns how many were new."""
        missing = sorted({t for t in texts if text_key(t) not in self._vectors})
        if not missing:
            return 0
        if self._encode is None:
            self._encode = self._load_encoder()
        keys: list[bytes] = []
        rows: list[np.ndarray] = []
        bar = tqdm(total=len(missing), desc="embed", unit="text", disable=not progress)
        for start in range(0, len(missing), chunk):
            part = missing[start : start + chunk]
            vectors = self._encode(part)
            for text, vector in zip(part, vectors, strict=True):
                key = text_key(text)
                self._vectors[key] = vector.astype(np.float32)
                keys.append(key)
                rows.append(self._vectors[key])
            bar.update(len(part))
        bar.close()
        self._write_shard(keys, rows)
        return len(missing)

    def _write_shard(self, keys: list[bytes], rows: list[np.ndarray]) -> None:
        self._folder.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha1(b"".join(keys)).hexdigest()[:16]
        tmp = self._folder / f".{digest}.{os.getpid()}.npz"
        key_array = np.frombuffer(b"".join(keys), dtype=np.uint8).reshape(len(keys), 20)
        np.savez(tmp, keys=key_array, vectors=np.stack(rows).astype(np.float32))
        tmp.replace(self._folder / f"{digest}.npz")

    def vectors(self, texts: list[str]) -> np.ndarray:
        """(n, dim) float32 from the cache, encoding what is missing first."""
        self.prefill(texts, progress=False)
        if not texts:
            return np.zeros((0, TEXT_DIM), dtype=np.float32)
        return np.stack([self._vectors[text_key(t)] for t in texts])

    async def encode(self, texts: list[str]) -> np.ndarray:
        return self.vectors(texts)


def minilm_cache(folder: Path, text_model: str = "text_encoder") -> CachedTextEncoder:
    """The evaluation encoder: all-MiniLM-L6-v2 in-process on the encoder path Triton serves as
    ``text_model`` (fp32 torch by default), cached under that path's model version."""
    from inference.encoder_paths import encoder_path
    from settings import Settings

    path = encoder_path(text_model)

    def load() -> SyncEncode:
        from inference.encoder_paths import load_encoder

        return load_encoder(path, Settings.from_env().stack.cache_dir, threads=2).encode

    return CachedTextEncoder(folder, path.model_version, load)
