"""Audio and image evidence as the core sees it: what was read for an item, what failed and why,
and how two items' media compare. Computing the evidence (decoding, Chromaprint, chroma, hashes)
is the ``media`` adapter's job; the comparisons are pure numpy and live here, so the core can
score pairs without depending on it.

- fingerprint: Chromaprint sub-fingerprints, scored ``1 - 2 * BER`` at the best alignment
  (1 identical, about 0 unrelated); all offsets at once by FFT cross-correlation of bit planes;
- chroma: (STEPS x 12) key- and tempo-invariant summary, scored by the best cosine over the 12
  transpositions with one step of misalignment allowed;
- image: 64 hash bits, scored by the share of equal bits.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, Protocol, cast

import numpy as np
from numpy.typing import NDArray

from resolution.model import ContentItem

MIN_OVERLAP = 40  # fingerprint frames in common (~5 s) before an alignment counts
MAX_FRAMES = 1024  # ~127 s of sub-fingerprints, the most fpcalc reads by default
CHROMA_STEPS = 16
MAX_STEP_SHIFT = 1
# Fingerprint score from which two clips are the same recording: on the generated set every
# same-recording pair scores 0.37 or more, 99.9% of the others below 0.35 (docs/media.md).
SAME_RECORDING_SCORE = 0.36
MEDIA_SIGNALS = ("audio_fingerprint", "audio_chroma", "audio_compared", "image_hash", "image_compared")


@dataclass(frozen=True)
class MediaEvidence:
    """What an item's ``audio_ref`` and ``image_ref`` gave; ``failures`` names the modalities that
    were referenced but could not be read, with the reason code and detail."""

    fingerprint: NDArray[Any] | None = None
    chroma: NDArray[Any] | None = None
    image_bits: NDArray[Any] | None = None
    failures: tuple[tuple[str, str, str], ...] = ()  # (modality, reason, detail)

    @property
    def has_audio(self) -> bool:
        return self.fingerprint is not None

    @property
    def has_image(self) -> bool:
        return self.image_bits is not None

    def failure_signals(self) -> dict[str, float]:
        return {f"{modality}_unavailable": 1.0 for modality, _, _ in self.failures}

    def failure_note(self) -> str:
        """For the decision's reason: which modality failed and why."""
        return "; ".join(f"{m} unavailable: {reason} ({detail})" for m, reason, detail in self.failures)


NO_MEDIA = MediaEvidence()


class MediaReader(Protocol):
    """Reads the media of a batch of items, one evidence per item; never raises (a file that
    cannot be read is a failure in its evidence)."""

    async def read(self, items: list[ContentItem]) -> list[MediaEvidence]: ...


_FFT = 2 * MAX_FRAMES
_LAGS = np.fft.fftfreq(_FFT, 1.0 / _FFT).astype(np.int64)  # 0, 1, ..., -1


def _bit_planes(fp: NDArray[Any]) -> NDArray[Any]:
    """(32, n) float32 of +-1."""
    bits = (fp[None, :].astype(np.uint64) >> np.arange(32, dtype=np.uint64)[:, None]) & 1
    return bits.astype(np.float32) * 2.0 - 1.0


class FingerprintSpectra:
    """Fingerprints prepared once (their bit planes' spectra) for many comparisons."""

    def __init__(self, fingerprints: Sequence[NDArray[Any]]) -> None:
        self.lengths = np.array([len(f) for f in fingerprints], dtype=np.int64)
        self.spectra = np.stack([np.fft.rfft(_bit_planes(f[:MAX_FRAMES]), n=_FFT, axis=1) for f in fingerprints])

    def similarities(self, query: NDArray[Any]) -> NDArray[Any]:
        """Score of ``query`` against every prepared fingerprint: (n,) float in [0, 1]."""
        query = query[:MAX_FRAMES]
        q = np.fft.rfft(_bit_planes(query), n=_FFT, axis=1)
        # corr[k, lag] = sum over bits and j of q[j] * other[j + lag]: agreements minus disagreements.
        corr = np.fft.irfft((np.conj(q)[None] * self.spectra).sum(axis=1), n=_FFT, axis=1)
        starts = np.maximum(0, -_LAGS)[None, :]
        ends = np.minimum(len(query), self.lengths[:, None] - _LAGS[None, :])
        overlap = np.clip(ends - starts, 0, None)
        errors = (32.0 * overlap - corr) / 2.0
        ber = np.where(overlap >= MIN_OVERLAP, errors / (32.0 * np.maximum(overlap, 1)), 1.0)
        return cast(NDArray[Any], np.clip(1.0 - 2.0 * ber.min(axis=1), 0.0, 1.0))


def fingerprint_similarity(a: NDArray[Any], b: NDArray[Any]) -> float:
    return float(FingerprintSpectra([b]).similarities(a)[0])


def reference_fingerprint_similarity(a: NDArray[Any], b: NDArray[Any]) -> float:
    """The same score by brute force over every offset (popcount of XOR): the independent check."""
    a, b = a[:MAX_FRAMES], b[:MAX_FRAMES]
    best = 1.0
    for lag in range(-(len(a) - MIN_OVERLAP), len(b) - MIN_OVERLAP + 1):
        lo, hi = max(0, -lag), min(len(a), len(b) - lag)
        if hi - lo < MIN_OVERLAP:
            continue
        x = np.bitwise_xor(a[lo:hi], b[lo + lag : hi + lag])
        best = min(best, int(np.unpackbits(x.view(np.uint8)).sum()) / (32.0 * (hi - lo)))
    return max(0.0, 1.0 - 2.0 * best)


def _chroma_scores(q: NDArray[Any], others: NDArray[Any]) -> NDArray[Any]:
    """(n, 12) best-over-shift cosine per transposition; q (STEPS, 12), others (n, STEPS, 12)."""
    steps = CHROMA_STEPS
    out = np.full((others.shape[0], 12), -1.0, dtype=np.float32)
    for k in range(12):
        rolled = np.roll(others, k, axis=2)
        for d in range(-MAX_STEP_SHIFT, MAX_STEP_SHIFT + 1):
            if d >= 0:
                x = np.einsum("sc,nsc->n", q[d:], rolled[:, : steps - d])
            else:
                x = np.einsum("sc,nsc->n", q[:d], rolled[:, -d:])
            out[:, k] = np.maximum(out[:, k], x * steps / (steps - abs(d)))
    return out


def transposition_similarity(a: NDArray[Any], b: NDArray[Any]) -> tuple[float, int]:
    """Best cosine over the 12 transpositions of ``b`` (one step of misalignment allowed), and
    the transposition in semitones."""
    scores = _chroma_scores(a.reshape(CHROMA_STEPS, 12), b.reshape(1, CHROMA_STEPS, 12))[0]
    best = int(np.argmax(scores))
    return float(scores[best]), best


def transposition_similarities(query: NDArray[Any], others: NDArray[Any]) -> NDArray[Any]:
    """(n,) ``transposition_similarity`` of ``query`` against each row of ``others``."""
    n = others.shape[0]
    scores = _chroma_scores(query.reshape(CHROMA_STEPS, 12), others.reshape(n, CHROMA_STEPS, 12))
    return cast(NDArray[Any], scores.max(axis=1))


def hash_similarity(a: NDArray[Any], b: NDArray[Any]) -> float:
    return 1.0 - float(np.count_nonzero(a != b)) / a.size


def hash_similarities(query: NDArray[Any], others: NDArray[Any]) -> NDArray[Any]:
    """(n,) share of equal bits of ``query`` against each row of ``others`` (n, bits)."""
    return cast(NDArray[Any], 1.0 - (others != query[None, :]).mean(axis=1))


def media_signals(a: MediaEvidence | None, b: MediaEvidence | None) -> dict[str, float]:
    """Per-modality similarities of a pair, 0 with ``*_compared`` 0 where either side lacks it."""
    out = dict.fromkeys(MEDIA_SIGNALS, 0.0)
    if a is None or b is None:
        return out
    if a.fingerprint is not None and b.fingerprint is not None:
        out["audio_fingerprint"] = fingerprint_similarity(a.fingerprint, b.fingerprint)
        out["audio_compared"] = 1.0
    if a.chroma is not None and b.chroma is not None:
        out["audio_chroma"] = max(0.0, transposition_similarity(a.chroma, b.chroma)[0])
    if a.image_bits is not None and b.image_bits is not None:
        out["image_hash"] = hash_similarity(a.image_bits, b.image_bits)
        out["image_compared"] = 1.0
    return out


# Chroma score from which two recordings are taken to perform one work, when the fingerprint says
# they are different recordings: on the generated set 95% of same-work pairs score above 0.73 and
# the median different-work pair 0.59 (docs/media.md).
SAME_WORK_CHROMA = 0.70
SAME_WORK_AT_MOST = 0.9


# Share of equal dHash bits from which a video's frame is a recording's cover. On the generated set
# (seed 12, small) every video frame scores 0.91 or more against its recording's cover and at most
# 0.77 against any other picture; two different covers reach 0.86, and a 12% crop of one cover
# falls to 0.73 (dHash is weak on crops), so the rule is for frames against covers (docs/media.md).
SAME_PICTURE_SCORE = 0.88


class FusionRule(Enum):
    """How much of the hand rule follows the scorer (``RESOLVER_WORKER_MEDIA_FUSION_RULE``)."""

    OFF = "off"
    # Behind a matcher that learnt the media: only "a video whose frame is a recording's cover is
    # video_of it, without audio on both sides". The learnt head leaves an image-only video of a
    # recording with another title at version_of (a training live take can show the studio cover,
    # so a shared picture alone does not say which recording), which the rule settles.
    VIDEO_PICTURE = "video-picture"
    FULL = "full"


FUSION_RULE_WORDS: dict[str, FusionRule | None] = {
    "auto": None,
    **dict.fromkeys(("on", "1", "true", "yes"), FusionRule.FULL),
    **dict.fromkeys(("off", "0", "false", "no"), FusionRule.OFF),
}


def fusion_rule_for(setting: str, feature_names: Collection[str]) -> FusionRule:
    """The rule after a matcher with these features: "on" / "off" as said; "auto" the full rule
    behind a matcher that reads no media feature, and only the video picture rule behind one that
    does (it fuses better alone: the rule's hard thresholds overrule it where it is right,
    docs/media.md)."""
    word = setting.strip().casefold()
    if word not in FUSION_RULE_WORDS:
        raise ValueError(f"RESOLVER_WORKER_MEDIA_FUSION_RULE={setting!r}: expected auto, on or off")
    fixed = FUSION_RULE_WORDS[word]
    if fixed is not None:
        return fixed
    learnt = any(name in MEDIA_SIGNALS for name in feature_names)
    return FusionRule.VIDEO_PICTURE if learnt else FusionRule.FULL


def with_media_evidence(
    probabilities: dict[str, float], signals: dict[str, float], rule: FusionRule = FusionRule.FULL
) -> dict[str, float]:
    """Fuses the media with the scorer's probabilities, after any scorer. Audio governs where both
    sides have it: the same audio (fingerprint >= ``SAME_RECORDING_SCORE``) is the same recording,
    or ``video_of`` it for a video against a recording, whatever the titles say ("Official
    Video"). Other audio is another recording: p(same) and p(video_of) go to ``version_of`` when
    the chroma says it is the same work (a live take under the studio take's title; a video of
    another performance), and everything but ``none`` goes to ``none`` when it says another work.

    Without audio on both sides, a picture decides one thing only: a music video whose frame is a
    recording's cover (>= ``SAME_PICTURE_SCORE``) is ``video_of`` it. Two recordings sharing a
    cover are left to the scorer (every track of an album shares one), and a different picture
    says nothing (a live album, a single and a compilation carry different art for one recording).
    Without media on both sides nothing changes: an item without media is scored exactly as before.
    ``rule`` ``VIDEO_PICTURE``: the picture part only; ``OFF``: nothing."""
    if rule is FusionRule.OFF:
        return probabilities
    if signals.get("audio_compared", 0.0) < 1.0:
        return _with_picture(probabilities, signals)
    if rule is FusionRule.VIDEO_PICTURE:
        return probabilities
    p = dict(probabilities)
    floor = 0.01
    if signals.get("audio_fingerprint", 0.0) >= SAME_RECORDING_SCORE:
        target = "video_of" if signals.get("one_is_video", 0.0) >= 1.0 else "same"
    elif signals.get("audio_chroma", 0.0) >= SAME_WORK_CHROMA:
        # Another recording of the work: neither the same one nor a video carrying it (a video
        # carries its recording's audio), whatever the titles say.
        moved = sum(max(0.0, p.get(k, 0.0) - floor) for k in ("same", "video_of"))
        if moved <= 0.0:
            return p
        # Chroma is weaker evidence than a fingerprint (different chorales can share a harmony):
        # it gives version_of at most SAME_WORK_AT_MOST, so a candidate with the same audio (0.97)
        # outranks it in the decision; what it cannot give goes to none.
        version = p.get("version_of", 0.0) + moved
        capped = min(version, max(SAME_WORK_AT_MOST, p.get("version_of", 0.0)))
        return {**p, "same": min(p["same"], floor), "video_of": min(p["video_of"], floor),
                "version_of": capped, "none": p.get("none", 0.0) + version - capped}  # fmt: skip
    else:
        target = "none"
    total = sum(p.values())
    return {k: (total - floor * (len(p) - 1) if k == target else floor) for k in p}


def _with_picture(probabilities: dict[str, float], signals: dict[str, float]) -> dict[str, float]:
    if (
        signals.get("image_compared", 0.0) < 1.0
        or signals.get("one_is_video", 0.0) < 1.0
        or signals.get("image_hash", 0.0) < SAME_PICTURE_SCORE
    ):
        return probabilities
    floor = 0.01
    total = sum(probabilities.values())
    return {k: (total - floor * (len(probabilities) - 1) if k == "video_of" else floor) for k in probabilities}


_POSTING_SHIFT = 12  # look-up on the top 20 bits of each sub-fingerprint: survives noise better


def _posting_keys(fingerprint: NDArray[Any]) -> frozenset[int]:
    return frozenset(int(v) >> _POSTING_SHIFT for v in fingerprint)


_PICTURE_BANDS = 8  # 8 bands of 8 hash bits: a picture with under 8 bits changed shares a band


def _picture_keys(bits: NDArray[Any]) -> frozenset[int]:
    packed = np.packbits(np.asarray(bits, dtype=np.uint8)[: _PICTURE_BANDS * 8])
    return frozenset((band << 8) | int(v) for band, v in enumerate(packed))


def shared_sub_fingerprints(a: MediaEvidence, b: MediaEvidence) -> int:
    """How many look-up keys two items' fingerprints share (0 when either has none)."""
    if a.fingerprint is None or b.fingerprint is None:
        return 0
    return len(_posting_keys(a.fingerprint) & _posting_keys(b.fingerprint))


@dataclass
class _Remembered:
    evidence: MediaEvidence
    meta: dict[str, Any]
    vector: NDArray[Any]
    keys: frozenset[int]
    picture_keys: frozenset[int]


class MediaMemory:
    """Evidence of the most recent ``capacity`` items with media, and a look-up from a fingerprint
    to the remembered items sharing most of its sub-fingerprints (the audio candidate path: a video
    titled only "Official Video" finds its recording by sound), and one from a picture to the
    remembered items whose picture is the same (by hash bands, then the share of equal bits). In
    memory and bounded: a restarted worker starts empty and resolves on text until it has seen
    media again."""

    def __init__(self, capacity: int = 20_000) -> None:
        self._capacity = capacity
        self._items: dict[str, _Remembered] = {}
        self._postings: dict[int, set[str]] = {}
        self._picture_postings: dict[int, set[str]] = {}

    def __len__(self) -> int:
        return len(self._items)

    def get(self, content_id: str) -> MediaEvidence | None:
        found = self._items.get(content_id)
        return found.evidence if found else None

    def add(self, content_id: str, evidence: MediaEvidence, meta: dict[str, Any], vector: NDArray[Any]) -> None:
        if not (evidence.has_audio or evidence.has_image):
            return
        self._drop(content_id)
        keys = _posting_keys(evidence.fingerprint) if evidence.fingerprint is not None else frozenset()
        pictures = _picture_keys(evidence.image_bits) if evidence.image_bits is not None else frozenset()
        self._items[content_id] = _Remembered(evidence, meta, vector, keys, pictures)
        for key in keys:
            self._postings.setdefault(key, set()).add(content_id)
        for key in pictures:
            self._picture_postings.setdefault(key, set()).add(content_id)
        while len(self._items) > self._capacity:
            self._drop(next(iter(self._items)))

    def _drop(self, content_id: str) -> None:
        old = self._items.pop(content_id, None)
        if old is None:
            return
        for postings, keys in ((self._postings, old.keys), (self._picture_postings, old.picture_keys)):
            for key in keys:
                ids = postings.get(key)
                if ids is not None:
                    ids.discard(content_id)
                    if not ids:
                        del postings[key]

    def similar(self, evidence: MediaEvidence, k: int, exclude: str) -> list[tuple[str, dict[str, Any], NDArray[Any]]]:
        """Up to ``k`` remembered items sharing the most sub-fingerprints with ``evidence``."""
        if evidence.fingerprint is None or k <= 0:
            return []
        counts: dict[str, int] = {}
        for key in _posting_keys(evidence.fingerprint):
            for cid in self._postings.get(key, ()):
                counts[cid] = counts.get(cid, 0) + 1
        counts.pop(exclude, None)
        best = sorted(counts, key=lambda c: -counts[c])[:k]
        return [(cid, self._items[cid].meta, self._items[cid].vector) for cid in best]

    def same_picture(
        self, evidence: MediaEvidence, k: int, exclude: str
    ) -> list[tuple[str, dict[str, Any], NDArray[Any]]]:
        """Up to ``k`` remembered items whose picture is ``evidence``'s (>= ``SAME_PICTURE_SCORE``),
        the most alike first."""
        if evidence.image_bits is None or k <= 0:
            return []
        found: set[str] = set()
        for key in _picture_keys(evidence.image_bits):
            found.update(self._picture_postings.get(key, ()))
        found.discard(exclude)
        scored = []
        for cid in found:
            other = self._items[cid].evidence.image_bits
            if other is not None:
                score = hash_similarity(evidence.image_bits, other)
                if score >= SAME_PICTURE_SCORE:
                    scored.append((score, cid))
        best = [cid for _, cid in sorted(scored, key=lambda x: (-x[0], x[1]))[:k]]
        return [(cid, self._items[cid].meta, self._items[cid].vector) for cid in best]
