"""Candidate generation: ANN neighbours plus exact keys, with a recent-writes overlay.

Three paths per batch: the ANN top-k, exact keys (ISRC; normalised title + first artist), and a
bounded title-only path: at most ``title_cap`` rows per item that share its core title whatever
the artist, most similar first, so that covers by other artists are found when the ANN ranks the
same artist's other songs above them.

The vector index is searched with relaxed (Bounded) consistency, so rows written in the last
few seconds may be invisible to it. The last rows written are also kept here, in memory, and
searched exactly, so that an item is always compared with the ones that arrived just before it,
including earlier items of its own batch. How many is a count, not a time: what an item is
compared with then depends on the events before it and their order, not on how fast they came.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from resolution.model import Candidate


@dataclass(frozen=True)
class IndexedRow:
    """What the vector index stores per content item."""

    content_id: str
    entity_id: str
    work_id: str
    vector: NDArray[np.float32]
    title_key: str
    isrc: str
    meta: dict[str, Any]
    title_only_key: str = ""  # NormalisedItem.title_only_key: "" never matches


@dataclass(frozen=True)
class IndexHit:
    row: IndexedRow
    similarity: float


class VectorIndex(Protocol):
    """A store of item vectors with metadata: Milvus in the stream, in memory for offline runs."""

    async def search(self, vectors: NDArray[np.float32], k: int) -> list[list[IndexHit]]: ...

    async def lookup_keys(self, title_keys: list[str], isrcs: list[str]) -> list[IndexedRow]: ...

    async def lookup_titles(
        self, vectors: NDArray[np.float32], title_only_keys: list[str], cap: int
    ) -> list[list[IndexHit]]:
        """Per query: at most ``cap`` rows whose ``title_only_key`` equals the query's (none for
        ""), most similar first. One bounded request per batch."""
        ...

    async def upsert(self, rows: list[IndexedRow]) -> None: ...


class InMemoryVectorIndex:
    """Exact search over every row: the reference index for evaluation and unit tests."""

    def __init__(self, dim: int) -> None:
        self._dim = dim
        self._rows: dict[str, IndexedRow] = {}
        self._order: list[str] = []
        self._matrix = np.zeros((0, dim), dtype=np.float32)
        self._dirty = False
        self._by_title: dict[str, set[str]] = {}
        self._by_isrc: dict[str, set[str]] = {}
        self._by_title_only: dict[str, set[str]] = {}

    def __len__(self) -> int:
        return len(self._rows)

    async def search(self, vectors: NDArray[np.float32], k: int) -> list[list[IndexHit]]:
        return self.search_now(vectors, k)

    def search_now(self, vectors: NDArray[np.float32], k: int) -> list[list[IndexHit]]:
        if not self._rows or len(vectors) == 0:
            return [[] for _ in range(len(vectors))]
        if self._dirty:
            self._matrix = np.stack([self._rows[c].vector for c in self._order]).astype(np.float32)
            self._dirty = False
        sims = vectors.astype(np.float32) @ self._matrix.T
        k = min(k, sims.shape[1])
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        out: list[list[IndexHit]] = []
        for qi, idx in enumerate(top):
            order = idx[np.argsort(-sims[qi, idx])]
            out.append([IndexHit(self._rows[self._order[j]], float(sims[qi, j])) for j in order])
        return out

    async def lookup_keys(self, title_keys: list[str], isrcs: list[str]) -> list[IndexedRow]:
        return self.lookup_keys_now(title_keys, isrcs)

    def lookup_keys_now(self, title_keys: list[str], isrcs: list[str]) -> list[IndexedRow]:
        ids: set[str] = set()
        for key in title_keys:
            ids |= self._by_title.get(key, set())
        for isrc in isrcs:
            if isrc:
                ids |= self._by_isrc.get(isrc, set())
        return [self._rows[c] for c in sorted(ids)]

    async def lookup_titles(
        self, vectors: NDArray[np.float32], title_only_keys: list[str], cap: int
    ) -> list[list[IndexHit]]:
        return self.lookup_titles_now(vectors, title_only_keys, cap)

    def lookup_titles_now(
        self, vectors: NDArray[np.float32], title_only_keys: list[str], cap: int
    ) -> list[list[IndexHit]]:
        out: list[list[IndexHit]] = []
        for vector, key in zip(vectors, title_only_keys, strict=True):
            ids = sorted(self._by_title_only.get(key, ())) if key and cap > 0 else []
            hits = [IndexHit(self._rows[c], float(np.dot(vector, self._rows[c].vector))) for c in ids]
            hits.sort(key=lambda h: (-h.similarity, h.row.content_id))
            out.append(hits[:cap])
        return out

    async def upsert(self, rows: list[IndexedRow]) -> None:
        self.upsert_now(rows)

    def upsert_now(self, rows: list[IndexedRow]) -> None:
        for row in rows:
            old = self._rows.get(row.content_id)
            if old is None:
                self._order.append(row.content_id)
            else:
                self._by_title.get(old.title_key, set()).discard(row.content_id)
                self._by_isrc.get(old.isrc, set()).discard(row.content_id)
                self._by_title_only.get(old.title_only_key, set()).discard(row.content_id)
            self._rows[row.content_id] = row
            self._by_title.setdefault(row.title_key, set()).add(row.content_id)
            if row.isrc:
                self._by_isrc.setdefault(row.isrc, set()).add(row.content_id)
            if row.title_only_key:
                self._by_title_only.setdefault(row.title_only_key, set()).add(row.content_id)
            self._dirty = True

    def remove(self, content_ids: list[str]) -> None:
        for cid in content_ids:
            row = self._rows.pop(cid, None)
            if row is None:
                continue
            self._order.remove(cid)
            self._by_title.get(row.title_key, set()).discard(cid)
            self._by_isrc.get(row.isrc, set()).discard(cid)
            self._by_title_only.get(row.title_only_key, set()).discard(cid)
            self._dirty = True


class RecentWrites:
    """The last ``rows`` rows written, searched exactly.

    A count rather than a wall-clock window (which made a slower run see other candidates): it is
    sized to cover the index's staleness at the worker's top rate (settings: ``recent_rows``)."""

    def __init__(self, dim: int, rows: int) -> None:
        self._rows = max(0, rows)
        self._written: OrderedDict[str, None] = OrderedDict()
        self._index = InMemoryVectorIndex(dim)

    def add(self, rows: list[IndexedRow]) -> None:
        for row in rows:
            # A re-delivered row is written again: it counts from now.
            self._written.pop(row.content_id, None)
            self._written[row.content_id] = None
        self._index.upsert_now(rows)
        excess = len(self._written) - self._rows
        if excess > 0:
            self._index.remove([self._written.popitem(last=False)[0] for _ in range(excess)])

    def search(self, vectors: NDArray[np.float32], k: int) -> list[list[IndexHit]]:
        return self._index.search_now(vectors, k)

    def lookup_keys(self, title_keys: list[str], isrcs: list[str]) -> list[IndexedRow]:
        return self._index.lookup_keys_now(title_keys, isrcs)

    def lookup_titles(self, vectors: NDArray[np.float32], title_only_keys: list[str], cap: int) -> list[list[IndexHit]]:
        return self._index.lookup_titles_now(vectors, title_only_keys, cap)

    def __len__(self) -> int:
        return len(self._index)


class CandidateFinder:
    """Finds, for each item of a batch, the known items it may be the same as or related to."""

    def __init__(self, index: VectorIndex, k: int, recent_rows: int, dim: int, title_cap: int = 0) -> None:
        self._index = index
        self._k = k
        self._title_cap = title_cap
        self._recent = RecentWrites(dim, recent_rows)

    @property
    def index(self) -> VectorIndex:
        return self._index

    @property
    def title_cap(self) -> int:
        return self._title_cap

    async def prefetch(
        self,
        vectors: NDArray[np.float32],
        title_keys: list[str],
        isrcs: list[str],
        title_only_keys: list[str] | None = None,
        alternate_keys: list[tuple[str, ...]] | None = None,
    ) -> list[list[Candidate]]:
        """One ANN search, one key lookup and (with a title cap) one bounded title-only lookup for
        the whole batch (the expensive, remote part), in flight together: three round trips
        cost about one. ``alternate_keys``: per item, the other names its title gives the song
        (``NormalisedItem.title_alternates``), looked up on the title-only path as its own key is."""
        title_vectors, queried, owners = title_queries(vectors, title_only_keys or [], alternate_keys)
        with_titles = bool(self._title_cap > 0 and any(queried))
        ann, keyed, titled_queries = await asyncio.gather(
            self._index.search(vectors, self._k),
            self._index.lookup_keys(title_keys, isrcs),
            self._index.lookup_titles(title_vectors, queried, self._title_cap)
            if with_titles
            else _no_hits(len(queried)),
        )
        titled = _per_item(titled_queries, owners, len(vectors))
        out: list[list[Candidate]] = []
        for qi, hits in enumerate(ann):
            found = {h.row.content_id: _candidate(h.row, h.similarity, "ann") for h in hits}
            for hit in titled[qi]:
                found.setdefault(hit.row.content_id, _candidate(hit.row, hit.similarity, "title"))
            for row in keyed:
                matches = row.title_key == title_keys[qi] or (isrcs[qi] and row.isrc == isrcs[qi])
                if matches and row.content_id not in found:
                    sim = float(np.dot(vectors[qi], row.vector))
                    found[row.content_id] = _candidate(row, sim, "key")
            out.append(list(found.values()))
        return out

    def complete(
        self,
        prefetched: list[Candidate],
        vector: NDArray[np.float32],
        title_key: str,
        isrc: str,
        exclude: str,
        title_only_key: str = "",
    ) -> list[Candidate]:
        """Adds the recent writes (including this batch's earlier items) to one item's candidates.

        Recent rows win over index rows: they carry the newest entity assignment.
        """
        return self.complete_all([prefetched], vector[None, :], [title_key], [isrc], [exclude], [title_only_key])[0]

    def complete_all(
        self,
        prefetched: list[list[Candidate]],
        vectors: NDArray[np.float32],
        title_keys: list[str],
        isrcs: list[str],
        excludes: list[str],
        title_only_keys: list[str],
        alternate_keys: list[tuple[str, ...]] | None = None,
    ) -> list[list[Candidate]]:
        """``complete`` for every item of a chunk at once: one exact search of the recent writes
        for all of them (the recent writes do not change while a chunk's candidates are gathered)."""
        recent_hits = self._recent.search(vectors, self._k)
        titled: list[list[IndexHit]] = [[] for _ in range(len(vectors))]
        title_vectors, queried, owners = title_queries(vectors, title_only_keys, alternate_keys)
        if self._title_cap > 0 and any(queried):
            titled = _per_item(
                self._recent.lookup_titles(title_vectors, queried, self._title_cap), owners, len(vectors)
            )
        out = []
        for qi, vector in enumerate(vectors):
            found = {c.content_id: c for c in prefetched[qi]}
            for hit in recent_hits[qi]:
                found[hit.row.content_id] = _candidate(hit.row, hit.similarity, "recent")
            for row in self._recent.lookup_keys([title_keys[qi]], [isrcs[qi]]):
                found[row.content_id] = _candidate(row, float(np.dot(vector, row.vector)), "recent")
            for hit in titled[qi]:
                found[hit.row.content_id] = _candidate(hit.row, hit.similarity, "recent")
            found.pop(excludes[qi], None)
            out.append(sorted(found.values(), key=lambda c: -c.similarity))
        return out

    def remember(self, rows: list[IndexedRow]) -> None:
        self._recent.add(rows)

    async def write(self, rows: list[IndexedRow]) -> None:
        await self._index.upsert(rows)


def title_queries(
    vectors: NDArray[np.float32], title_only_keys: list[str], alternate_keys: list[tuple[str, ...]] | None
) -> tuple[NDArray[np.float32], list[str], list[int]]:
    """The title-only path's queries: each item's own key, then one per other name of its title
    (a cover filed under one side of "Chick Habit / Laisse tomber les filles" is titled by that
    side alone). Returns their vectors, keys, and the item each query belongs to."""
    if not alternate_keys or not any(alternate_keys):
        return vectors, list(title_only_keys), list(range(len(title_only_keys)))
    owners = list(range(len(title_only_keys)))
    keys = list(title_only_keys)
    for qi, names in enumerate(alternate_keys):
        if title_only_keys[qi]:  # a placeholder title is not looked up by its names either
            for name in names:
                if name and name != title_only_keys[qi]:
                    owners.append(qi)
                    keys.append(name)
    return vectors[owners], keys, owners


def _per_item(hits: list[list[IndexHit]], owners: list[int], n: int) -> list[list[IndexHit]]:
    """The title-only hits of the queries back per item, its own key's first, each row once."""
    out: list[list[IndexHit]] = [[] for _ in range(n)]
    seen: list[set[str]] = [set() for _ in range(n)]
    for owner, found in zip(owners, hits, strict=True):
        for hit in found:
            if hit.row.content_id not in seen[owner]:
                seen[owner].add(hit.row.content_id)
                out[owner].append(hit)
    return out


async def _no_hits(n: int) -> list[list[IndexHit]]:
    return [[] for _ in range(n)]


def _candidate(row: IndexedRow, similarity: float, via: str) -> Candidate:
    return Candidate(
        content_id=row.content_id,
        entity_id=row.entity_id,
        work_id=row.work_id,
        similarity=similarity,
        meta=row.meta,
        via=via,
    )
