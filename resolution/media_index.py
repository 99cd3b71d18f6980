"""The media index: every partition's and every worker's audio and image evidence, searchable by
sound and by picture, so that a video titled only "Official Video" (keyed to another partition
than its recording) meets its recording whatever the titles, and a restarted worker still finds
what was seen before it.

The core owns the protocol and the retrieval vector; ``InMemoryMediaIndex`` (offline evaluation,
unit tests) searches exactly, ``vector_index.milvus_media`` (the worker) searches Milvus:

- audio: a fixed-length vector for approximate retrieval, then the stored Chromaprint
  fingerprints of the ``search_k`` nearest rescored exactly (``FingerprintSpectra``, the score the
  fusion reads), best ``k`` kept;
- picture: the 64 dHash bits as a binary vector, Hamming distance; only rows whose share of equal
  bits reaches ``SAME_PICTURE_SCORE`` are kept.

The retrieval vector (``audio_vector``) is a signed, hashed bag of the fingerprint's look-up keys
(the top 20 bits of each 32-bit sub-fingerprint, as ``MediaMemory`` posts them: the inner product
estimates the share of keys two clips hold in common, what the posting look-up counted) beside
the clip's centred chroma, which survives what flips many fingerprint bits (band-limiting).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from resolution.media_evidence import (
    CHROMA_STEPS,
    MAX_FRAMES,
    SAME_PICTURE_SCORE,
    FingerprintSpectra,
    MediaEvidence,
    hash_similarities,
)
from settings import WorkerSettings

_KEY_DIM = 1024
AUDIO_VECTOR_DIM = CHROMA_STEPS * 12 + _KEY_DIM
_KEY_SHIFT = 12  # as MediaMemory's postings: the top 20 bits of each sub-fingerprint
_MIX = np.uint64(0x9E3779B97F4A7C15)  # Fibonacci hashing: spreads neighbouring keys over buckets
# Weight of the chroma part in the inner product (the keys' is the rest). Measured on the generated
# set (seed 12, small): keys alone rank a band-limited copy's relatives as low as 37th of 67 (its
# bits are 31% flipped, so few top-20-bit keys survive); chroma alone ranks every relative in the
# top 5 but is shared by a work's versions; 0.3 keeps every relative in the top 5 (docs/media.md).
CHROMA_WEIGHT = 0.3


def _key_bag(fingerprint: NDArray[Any]) -> NDArray[np.float32]:
    keys = np.unique(np.asarray(fingerprint[:MAX_FRAMES], dtype=np.uint32) >> np.uint32(_KEY_SHIFT))
    mixed = keys.astype(np.uint64) * _MIX
    buckets = (mixed >> np.uint64(40)) % np.uint64(_KEY_DIM)
    signs = ((mixed >> np.uint64(20)) & np.uint64(1)).astype(np.float32) * 2.0 - 1.0
    out = np.zeros(_KEY_DIM, dtype=np.float32)
    np.add.at(out, buckets.astype(np.int64), signs)
    norm = float(np.linalg.norm(out))
    return out / norm if norm > 0 else out


def _centred(chroma: NDArray[Any] | None) -> NDArray[np.float32]:
    if chroma is None:
        return np.zeros(CHROMA_STEPS * 12, dtype=np.float32)
    c: NDArray[np.float32] = np.asarray(chroma, dtype=np.float32).ravel()[: CHROMA_STEPS * 12]
    c = c - np.float32(c.mean())
    norm = float(np.linalg.norm(c))
    return c / np.float32(norm) if norm > 0 else c


def audio_vector(evidence: MediaEvidence) -> NDArray[np.float32]:
    """(AUDIO_VECTOR_DIM,) unit vector (zeros without a fingerprint): the centred chroma, weighted
    ``CHROMA_WEIGHT``, beside a signed hashed bag of the fingerprint's look-up keys (each distinct
    key adds +-1 to one of 1024 buckets, so that unrelated clips score about 0, not their
    collisions). Both parts are alignment-free (a trimmed copy holds the same keys)."""
    if evidence.fingerprint is None:
        return np.zeros(AUDIO_VECTOR_DIM, dtype=np.float32)
    v: NDArray[np.float32] = np.concatenate(
        [
            np.float32(np.sqrt(CHROMA_WEIGHT)) * _centred(evidence.chroma),
            np.float32(np.sqrt(1.0 - CHROMA_WEIGHT)) * _key_bag(evidence.fingerprint),
        ]
    ).astype(np.float32)
    norm = float(np.linalg.norm(v))
    return v / np.float32(norm) if norm > 0 else v


@dataclass(frozen=True)
class MediaRow:
    """What the media index holds per content item: its evidence and what a candidate needs."""

    content_id: str
    entity_id: str
    work_id: str
    evidence: MediaEvidence
    meta: dict[str, Any]
    vector: NDArray[np.float32]  # the text vector: a media candidate's text similarity


@dataclass(frozen=True)
class MediaHit:
    row: MediaRow
    score: float  # fingerprint score (sound) or share of equal hash bits (picture)


class MediaIndex(Protocol):
    """Media evidence shared by all partitions and workers; searches take a whole chunk."""

    async def sounding_like(
        self, queries: Sequence[MediaEvidence], k: int, excludes: Sequence[str]
    ) -> list[list[MediaHit]]:
        """Per query: up to ``k`` rows by fingerprint score, best first ([] for a query without
        audio); ``excludes[i]`` (the query's own content id) is never returned."""
        ...

    async def same_picture(
        self, queries: Sequence[MediaEvidence], k: int, excludes: Sequence[str]
    ) -> list[list[MediaHit]]:
        """Per query: up to ``k`` rows whose picture is the query's (>= ``SAME_PICTURE_SCORE``)."""
        ...

    async def rows(self, content_ids: Sequence[str]) -> list[MediaRow]:
        """The stored rows of these content ids (unknown ones left out)."""
        ...

    async def upsert(self, rows: Sequence[MediaRow]) -> None: ...


def rescored(queries: Sequence[MediaEvidence], found: list[list[MediaRow]], k: int) -> list[list[MediaHit]]:
    """Each query's retrieved rows scored by the exact fingerprint score, best ``k`` first. Each
    distinct row's spectra are computed once per call (a chunk's items of one recording retrieve
    the same rows), which is most of the cost: 32 FFTs per row, one inverse per pair."""
    distinct: dict[str, MediaRow] = {}
    for rows in found:
        for r in rows:
            if r.evidence.fingerprint is not None:
                distinct.setdefault(r.content_id, r)
    if not distinct:
        return [[] for _ in queries]
    order = list(distinct)
    position = {c: n for n, c in enumerate(order)}
    prepared = FingerprintSpectra([distinct[c].evidence.fingerprint for c in order])  # type: ignore[misc]
    out: list[list[MediaHit]] = []
    for query, rows in zip(queries, found, strict=True):
        mine = list(dict.fromkeys(r.content_id for r in rows if r.content_id in distinct))
        if query.fingerprint is None or not mine:
            out.append([])
            continue
        subset = FingerprintSpectra.__new__(FingerprintSpectra)
        idx = np.array([position[c] for c in mine])
        subset.lengths, subset.spectra = prepared.lengths[idx], prepared.spectra[idx]
        scores = subset.similarities(query.fingerprint)
        best = sorted(range(len(mine)), key=lambda j: (-float(scores[j]), mine[j]))[:k]
        out.append([MediaHit(distinct[mine[j]], float(scores[j])) for j in best])
    return out


class InMemoryMediaIndex:
    """Exact search over every row: the reference for evaluation and unit tests (what the Milvus
    index approximates with HNSW)."""

    def __init__(self, search_k: int = WorkerSettings.media_search_k) -> None:
        self._search_k = search_k
        self._rows: dict[str, MediaRow] = {}
        self._vectors: dict[str, NDArray[np.float32]] = {}  # computed once per row
        self._audio_ids: list[str] = []
        self._audio: NDArray[np.float32] = np.zeros((0, AUDIO_VECTOR_DIM), dtype=np.float32)
        self._image_ids: list[str] = []
        self._images: NDArray[Any] = np.zeros((0, 64), dtype=np.uint8)
        self._dirty = False

    def __len__(self) -> int:
        return len(self._rows)

    def _matrices(self) -> None:
        if not self._dirty:
            return
        rows = list(self._rows.values())
        heard = [r for r in rows if r.evidence.fingerprint is not None]
        self._audio_ids = [r.content_id for r in heard]
        self._audio = (
            np.stack([self._vectors[c] for c in self._audio_ids])
            if heard
            else np.zeros((0, AUDIO_VECTOR_DIM), dtype=np.float32)
        )
        seen = [r for r in rows if r.evidence.image_bits is not None]
        self._image_ids = [r.content_id for r in seen]
        self._images = (
            np.stack(
                [np.asarray(r.evidence.image_bits, dtype=np.uint8) for r in seen if r.evidence.image_bits is not None]
            )
            if seen
            else np.zeros((0, 64), dtype=np.uint8)
        )
        self._dirty = False

    async def sounding_like(
        self, queries: Sequence[MediaEvidence], k: int, excludes: Sequence[str]
    ) -> list[list[MediaHit]]:
        self._matrices()
        found: list[list[MediaRow]] = []
        for query, exclude in zip(queries, excludes, strict=True):
            if query.fingerprint is None or k <= 0 or not self._audio_ids:
                found.append([])
                continue
            sims = self._audio @ audio_vector(query)
            order = np.argsort(-sims, kind="stable")
            ids = [self._audio_ids[j] for j in order if self._audio_ids[j] != exclude][: self._search_k]
            found.append([self._rows[c] for c in ids])
        return rescored(queries, found, k)

    async def same_picture(
        self, queries: Sequence[MediaEvidence], k: int, excludes: Sequence[str]
    ) -> list[list[MediaHit]]:
        self._matrices()
        out: list[list[MediaHit]] = []
        for query, exclude in zip(queries, excludes, strict=True):
            if query.image_bits is None or k <= 0 or not self._image_ids:
                out.append([])
                continue
            sims = hash_similarities(np.asarray(query.image_bits, dtype=np.uint8), self._images)
            scored = [
                (float(s), cid)
                for s, cid in zip(sims, self._image_ids, strict=True)
                if s >= SAME_PICTURE_SCORE and cid != exclude
            ]
            scored.sort(key=lambda x: (-x[0], x[1]))
            out.append([MediaHit(self._rows[cid], s) for s, cid in scored[:k]])
        return out

    async def rows(self, content_ids: Sequence[str]) -> list[MediaRow]:
        return [self._rows[c] for c in dict.fromkeys(content_ids) if c in self._rows]

    async def upsert(self, rows: Sequence[MediaRow]) -> None:
        for row in rows:
            if row.evidence.has_audio or row.evidence.has_image:
                self._rows[row.content_id] = row
                self._vectors.pop(row.content_id, None)
                if row.evidence.fingerprint is not None:
                    self._vectors[row.content_id] = audio_vector(row.evidence)
                self._dirty = True
