"""Seeded, documented splits of the labelled datasets, shared by ``resolver train`` and ``evaluate``.

Pair sets (``pairs.csv``) carry their own ``split`` column. Cluster sets (``truth.csv``) are split
by a hash of the cluster, never by record, so that all records of one entity (and, where
``work_id`` exists, all versions of one work) fall in the same portion:

    bucket = sha1(f"{SPLIT_SEED}|{work_id or entity_id}") mod 100
    0-59 fit, 60-69 tune (both "train"), 70-84 valid, 85-99 test

The model is fitted on "fit"; temperature and policy thresholds are chosen on "tune" (for pair
sets: a hashed 20% of the train pairs); "valid" and "test" are only ever reported.
"""

from __future__ import annotations

import hashlib

SPLIT_SEED = "content-resolver-split-1"
FIT, TUNE, VALID, TEST = "fit", "tune", "valid", "test"
REPORT_SPLITS = (VALID, TEST)


def _bucket(key: str) -> int:
    return int(hashlib.sha1(f"{SPLIT_SEED}|{key}".encode()).hexdigest()[:8], 16) % 100


def cluster_portion(cluster_key: str) -> str:
    bucket = _bucket(cluster_key)
    if bucket < 60:
        return FIT
    if bucket < 70:
        return TUNE
    return VALID if bucket < 85 else TEST


def pair_portion(split: str, left_id: str, right_id: str) -> str:
    """A train pair goes to fit (80%) or tune (20%) by a hash of its ids; other splits keep their name."""
    if split != "train":
        return split
    return TUNE if _bucket(f"{left_id}|{right_id}") < 20 else FIT


def in_split(portion: str, split: str) -> bool:
    """``split`` as a command names it: train (fit + tune), valid, test, or all."""
    if split == "all":
        return True
    if split == "train":
        return portion in (FIT, TUNE)
    return portion == split
