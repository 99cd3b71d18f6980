"""Labelled pairs for training and scoring the matcher, from any dataset in the shared layout.

- Pair sets: every row of ``pairs.csv``; label 1 means the relation ``positive_relation`` names
  (``same`` for two recordings, ``video_of`` when a side is a video), label 0 means ``none``.
- Cluster sets: within each portion (see ``evaluation.splits``), the pairs the resolver would
  actually score: each record's top-k text neighbours, exact-key and same-core-title matches, plus the true pairs
  of each entity and work (capped), labelled from the truth: same entity -> ``same``; same work
  -> ``video_of`` when exactly one side is a video, else ``version_of``; otherwise ``none``;
  plus a few random pairs per record (negatives, almost always).
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from evaluation.datasets import Dataset, TruthRow
from evaluation.embedding_cache import CachedTextEncoder
from evaluation.splits import cluster_portion, pair_portion
from resolution.matcher import PairInput
from resolution.model import Relation
from resolution.normalise import NormalisedItem, normalise

MAX_TRUE_PAIRS_PER_CLUSTER = 30
RANDOM_PAIRS_PER_RECORD = 3
_CHUNK = 2048


@dataclass(frozen=True)
class PairExample:
    dataset: str
    portion: str
    left: NormalisedItem
    right: NormalisedItem
    cosine: float
    relation: str
    # From a cluster set: the pair is one of several candidates a record is compared with, and the
    # record links to the best of them; False for a pair set, whose pairs are judged one by one.
    clustered: bool = False

    @property
    def pair(self) -> PairInput:
        return PairInput(self.left, self.right, self.cosine)


def positive_relation(a: NormalisedItem, b: NormalisedItem) -> str:
    """What a positive label of a pair set means: a video performing the work, or the same recording."""
    if a.kind.endswith("video") or b.kind.endswith("video"):
        return Relation.VIDEO_OF.value
    return Relation.SAME.value


def truth_relation(ta: TruthRow, tb: TruthRow, a: NormalisedItem, b: NormalisedItem) -> str:
    if ta.entity_id == tb.entity_id:
        return Relation.SAME.value
    if ta.work_id is not None and ta.work_id == tb.work_id:
        if (a.version_class == "video") != (b.version_class == "video"):
            return Relation.VIDEO_OF.value
        return Relation.VERSION_OF.value
    return Relation.NONE.value


def cluster_key(row: TruthRow) -> str:
    """What a cluster set is split by: the work where known, so versions never straddle portions."""
    return row.work_id or row.entity_id


def pair_set_examples(ds: Dataset, encoder: CachedTextEncoder) -> list[PairExample]:
    assert ds.pairs is not None
    norms = {item.content_id: normalise(item) for item in ds.items}
    ids = sorted(norms)
    vectors = dict(zip(ids, encoder.vectors([norms[i].embed_text for i in ids]), strict=True))
    out = []
    for p in ds.pairs:
        a, b = norms[p.left_id], norms[p.right_id]
        relation = positive_relation(a, b) if p.label else Relation.NONE.value
        cosine = float(np.dot(vectors[p.left_id], vectors[p.right_id]))
        out.append(PairExample(ds.name, pair_portion(p.split, p.left_id, p.right_id), a, b, cosine, relation))
    return out


def cluster_set_examples(ds: Dataset, encoder: CachedTextEncoder, k: int = 10, seed: int = 0) -> list[PairExample]:
    assert ds.truth is not None
    rng = random.Random(seed)
    by_portion: dict[str, list[str]] = defaultdict(list)
    for item in ds.items:
        if item.content_id in ds.truth:
            by_portion[cluster_portion(cluster_key(ds.truth[item.content_id]))].append(item.content_id)
    norms = {item.content_id: normalise(item) for item in ds.items}
    out: list[PairExample] = []
    for portion in sorted(by_portion):
        ids = sorted(by_portion[portion])
        vectors = encoder.vectors([norms[i].embed_text for i in ids])
        pairs: set[tuple[int, int]] = set()
        for start in range(0, len(ids), _CHUNK):
            sims = vectors[start : start + _CHUNK] @ vectors.T
            kk = min(k + 1, sims.shape[1])
            top = np.argpartition(-sims, kk - 1, axis=1)[:, :kk]
            for row, neighbours in enumerate(top):
                i = start + row
                pairs.update((min(i, int(j)), max(i, int(j))) for j in neighbours if int(j) != i)
        # Random pairs too: early in a stream the best candidates are poor ones, far from
        # anything a nearest-neighbour sample shows; the model must have seen that region.
        for i in range(len(ids)):
            for j in rng.sample(range(len(ids)), min(RANDOM_PAIRS_PER_RECORD, len(ids))):
                if j != i:
                    pairs.add((min(i, j), max(i, j)))
        by_key: dict[str, list[int]] = defaultdict(list)
        by_cluster: dict[str, list[int]] = defaultdict(list)
        for i, cid in enumerate(ids):
            by_key[norms[cid].title_key].append(i)
            if norms[cid].title_only_key:  # the title-only candidate path: covers and namesakes
                by_key["title:" + norms[cid].title_only_key].append(i)
            by_cluster[ds.truth[cid].entity_id].append(i)
            work_id = ds.truth[cid].work_id
            if work_id:
                by_cluster["work:" + work_id].append(i)
        for group in (*by_key.values(), *by_cluster.values()):
            group_pairs = [(a, b) for n, a in enumerate(group) for b in group[n + 1 :]]
            if len(group_pairs) > MAX_TRUE_PAIRS_PER_CLUSTER:
                group_pairs = rng.sample(group_pairs, MAX_TRUE_PAIRS_PER_CLUSTER)
            pairs.update(group_pairs)
        for i, j in sorted(pairs):
            a, b = norms[ids[i]], norms[ids[j]]
            relation = truth_relation(ds.truth[ids[i]], ds.truth[ids[j]], a, b)
            cosine = float(np.dot(vectors[i], vectors[j]))
            out.append(PairExample(ds.name, portion, a, b, cosine, relation, clustered=True))
    return out


def dataset_examples(ds: Dataset, encoder: CachedTextEncoder, k: int = 10) -> list[PairExample]:
    if ds.pairs is not None:
        return pair_set_examples(ds, encoder)
    if ds.truth is not None:
        return cluster_set_examples(ds, encoder, k)
    raise ValueError(f"{ds.path}: neither pairs.csv nor truth.csv")
