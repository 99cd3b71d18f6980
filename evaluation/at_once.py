"""The "all at once" comparison: a split resolved as one batch job instead of a stream.

Every record's candidates come from the whole split (text top-k, exact keys), every pair is
scored by the same matcher, each record joins its most probable candidate the policy accepts,
and clusters are the connected components.
"""

from __future__ import annotations

import numpy as np
from tqdm import tqdm

from resolution.matcher import PairInput, PairScorer
from resolution.normalise import NormalisedItem
from resolution.policy import DecisionPolicy, Thresholds


class _UnionFind:
    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, a: int, b: int) -> None:
        self.parent[self.find(a)] = self.find(b)


def _candidate_pairs(norms: list[NormalisedItem], vectors: np.ndarray, k: int) -> list[tuple[int, int]]:
    n = len(norms)
    pairs: set[tuple[int, int]] = set()
    for start in range(0, n, 2048):
        sims = vectors[start : start + 2048] @ vectors.T
        kk = min(k + 1, n)
        top = np.argpartition(-sims, kk - 1, axis=1)[:, :kk]
        for row, neighbours in enumerate(top):
            pairs.update((min(start + row, int(j)), max(start + row, int(j))) for j in neighbours if j != start + row)
    by_key: dict[str, list[int]] = {}
    for i, norm in enumerate(norms):
        by_key.setdefault(norm.title_key, []).append(i)
        if norm.isrc:
            by_key.setdefault("isrc:" + norm.isrc, []).append(i)
    for group in by_key.values():
        pairs.update((a, b) for x, a in enumerate(group) for b in group[x + 1 :])
    return sorted(pairs)


async def resolve_at_once(
    norms: list[NormalisedItem],
    vectors: np.ndarray,
    scorer: PairScorer,
    thresholds: Thresholds,
    k: int,
    progress: bool = True,
) -> tuple[dict[str, str], dict[str, str]]:
    """Batch resolution of all records together; (record -> entity, record -> work)."""
    ordered = _candidate_pairs(norms, vectors, k)
    policy = DecisionPolicy(thresholds)
    best_same: dict[int, tuple[float, int]] = {}
    best_link: dict[int, tuple[float, int]] = {}
    chunk = 4096
    with tqdm(total=len(ordered), desc="at once", unit="pair", disable=not progress, leave=False) as bar:
        for start in range(0, len(ordered), chunk):
            part = ordered[start : start + chunk]
            inputs = [PairInput(norms[i], norms[j], float(vectors[i] @ vectors[j])) for i, j in part]
            for (i, j), score in zip(part, await scorer.score(inputs), strict=True):
                relation = policy.classify(score.probabilities)
                target = best_same if relation == "same" else best_link if relation != "none" else None
                if target is None:
                    continue
                p = score.probabilities[relation]
                for a, b in ((i, j), (j, i)):
                    if p > target.get(a, (-1.0, -1))[0]:
                        target[a] = (p, b)
            bar.update(len(part))
    n = len(norms)
    entities = _UnionFind(n)
    for a, (_p, b) in best_same.items():
        entities.union(a, b)
    works = _UnionFind(n)
    for edges in (best_same, best_link):
        for a, (_p, b) in edges.items():
            works.union(a, b)
    entity_of = {norm.content_id: f"e{entities.find(i)}" for i, norm in enumerate(norms)}
    work_of = {norm.content_id: f"w{works.find(i)}" for i, norm in enumerate(norms)}
    return entity_of, work_of
