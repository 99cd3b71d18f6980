"""Leak-free reporting pairs: a valid (or test) pair counts only if neither of its records was
seen in training, by id or by normalised text.

Pair sets are cut by their own ``split`` column, which keeps pairs apart but not records: the
same record (or the same text under another id, as in the dirty copy of a set) can sit in a
train pair and a valid pair, so the matcher has been fitted on the very record it is judged on.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from evaluation.pair_examples import PairExample
from evaluation.splits import FIT, TUNE
from resolution.normalise import NormalisedItem

_SPACES = re.compile(r"\s+")


def record_text(norm: NormalisedItem) -> str:
    """A record's normalised text (title, artists, release as embedded), case and spacing folded."""
    return _SPACES.sub(" ", norm.embed_text.casefold()).strip()


def training_records(examples: Iterable[PairExample]) -> tuple[set[str], set[str]]:
    """Ids and normalised texts of every record in a training (fit or tune) pair."""
    ids: set[str] = set()
    texts: set[str] = set()
    for e in examples:
        if e.portion in (FIT, TUNE):
            for side in (e.left, e.right):
                ids.add(side.content_id)
                texts.add(record_text(side))
    return ids, texts


def shares_training_record(example: PairExample, ids: set[str], texts: set[str]) -> bool:
    return any(side.content_id in ids or record_text(side) in texts for side in (example.left, example.right))


def leak_free(examples: list[PairExample], all_examples: list[PairExample]) -> list[PairExample]:
    """The pairs of ``examples`` that share no record, by id or normalised text, with any
    training pair of ``all_examples``."""
    ids, texts = training_records(all_examples)
    return [e for e in examples if not shares_training_record(e, ids, texts)]
