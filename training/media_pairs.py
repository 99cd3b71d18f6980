"""Labelled pairs with media for the matcher: every pair of a generated media set (``media.
generated_set``, split "fit" or "tune", never "eval"), with its text signals and its media
similarities, each three times: with both modalities, audio dropped, image dropped (labels
unchanged), so that the matcher learns every combination of media it meets in a feed.

No copy drops both: a pair without media is the text matcher's alone (the media head is gated
off for it, ``inference.matcher_model.FusedMatcherNet``), and the set's text could not teach it
anyway: a live take has its studio take's very title and artist. Trained into one network with
the text pairs, such copies taught that identical titles are often another recording and cost
music videos of the generated catalogue at the promotion gate (docs/media.md, "The learned fusion").
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from evaluation.datasets import load_dataset
from evaluation.embedding_cache import CachedTextEncoder
from evaluation.splits import FIT, TUNE, VALID
from media.generated_set import MediaItem, MediaSet
from resolution.features import pair_signals_batch
from resolution.media_evidence import MediaEvidence, MediaReader, media_signals
from resolution.normalise import normalise
from training.matcher import SignalExample

MEDIA_SET = "media-set"
# Training reads fit and tune sets; the promotion gate reads valid ones (held out from training).
PORTION_OF_SPLIT = {"fit": FIT, "tune": TUNE, "valid": VALID}
TRAINING_SPLITS = frozenset({"fit", "tune"})
# Modalities kept in each copy of a pair: the matcher sees every combination it meets in a feed.
DROPOUTS: tuple[tuple[str, frozenset[str]], ...] = (
    ("all", frozenset({"audio", "image"})),
    ("no_audio", frozenset({"image"})),
    ("no_image", frozenset({"audio"})),
)


@dataclass(frozen=True)
class MediaPairs:
    examples: list[SignalExample]
    provenance: dict[str, Any]


def _kept(evidence: MediaEvidence, modalities: frozenset[str]) -> MediaEvidence:
    return replace(
        evidence,
        fingerprint=evidence.fingerprint if "audio" in modalities else None,
        chroma=evidence.chroma if "audio" in modalities else None,
        image_bits=evidence.image_bits if "image" in modalities else None,
    )


def media_relation(a: MediaItem, b: MediaItem) -> str:
    """The relation the resolver should find: a music video is ``video_of`` the recording whose
    audio it carries (not of another recording of the work: that is a ``version_of``, as the
    fusion rule has it), duplicates are the ``same`` recording, other takes of a work versions."""
    if a.recording_id == b.recording_id:
        return "video_of" if (a.role == "video") != (b.role == "video") else "same"
    return "version_of" if a.work_id == b.work_id else "none"


def media_set_pairs(
    folder: Path,
    encoder: CachedTextEncoder,
    reader: MediaReader,
    splits: frozenset[str] = TRAINING_SPLITS,
    dataset: str = MEDIA_SET,
) -> MediaPairs:
    """All pairs of the set in ``folder``, labelled by ``media_relation`` from its items' recording
    and work, in the portion its split names (one of ``splits``), one copy per ``DROPOUTS`` entry,
    under the set name ``dataset``."""
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    split = manifest.get("split", "eval")
    if split not in splits:
        wanted = " or ".join(sorted(splits))
        raise ValueError(f"{folder}: a {split!r} media set; this reads only sets generated with --split {wanted}")
    portion = PORTION_OF_SPLIT[split]
    ds = load_dataset(folder)
    labelled = {i.content_id: i for i in MediaSet.load(folder).items}
    items = sorted((i for i in ds.items if i.content_id in labelled), key=lambda i: i.content_id)
    norms = [normalise(i) for i in items]
    vectors = encoder.vectors([n.embed_text for n in norms])
    evidence = asyncio.run(reader.read(items))
    failed = [i.content_id for i, e in zip(items, evidence, strict=True) if e.failures]
    if failed:
        raise RuntimeError(f"{folder}: media not read for {failed[:5]} ({len(failed)} items)")
    index = [(a, b) for a in range(len(items)) for b in range(a + 1, len(items))]
    text = pair_signals_batch(
        [(norms[a], norms[b]) for a, b in index], [float(np.dot(vectors[a], vectors[b])) for a, b in index]
    )
    examples: list[SignalExample] = []
    for (a, b), signals in zip(index, text, strict=True):
        relation = media_relation(labelled[items[a].content_id], labelled[items[b].content_id])
        for name, kept in DROPOUTS:
            media = media_signals(_kept(evidence[a], kept), _kept(evidence[b], kept))
            examples.append(
                SignalExample(
                    dataset,
                    portion,
                    relation,
                    {**signals, **media},
                    f"{items[a].content_id}|{items[b].content_id}|{name}",
                    clustered=True,
                )
            )
    items_hash = hashlib.sha256((folder / "items.jsonl").read_bytes()).hexdigest()
    provenance = {
        "path": str(folder.resolve()),
        "seed": manifest.get("seed"),
        "size": manifest.get("size"),
        "split": split,
        "items": len(items),
        "pairs": len(index),
        "copies": [name for name, _ in DROPOUTS],
        "items_sha256": items_hash,
        "sources_used": len(manifest.get("sources_used", [])),
        "sources_excluded": len(manifest.get("sources_excluded", [])),
    }
    return MediaPairs(examples, provenance)
