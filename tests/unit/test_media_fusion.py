"""Media evidence in the resolution core: the audio fusion rule, the audio candidate path, and the
batch resolver with a stand-in media reader (pure logic; the reader over real files is exercised
by tests/integration/test_fuzz.py and the generated set by tests/integration/test_media_set.py)."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest

from resolution.candidates import CandidateFinder, InMemoryVectorIndex
from resolution.entities import EntityStore
from resolution.matcher import RuleScorer
from resolution.media_evidence import (
    CHROMA_STEPS,
    NO_MEDIA,
    SAME_PICTURE_SCORE,
    SAME_RECORDING_SCORE,
    SAME_WORK_CHROMA,
    MediaEvidence,
    MediaMemory,
    media_signals,
    with_media_evidence,
)
from resolution.model import Action, ContentItem, Relation
from resolution.policy import DecisionPolicy, Thresholds
from resolution.resolver import BatchResolver
from tests.unit.text_fakes import BOW_DIM, BagOfWordsEncoder

TEXT_SAYS_SAME = {"same": 0.9, "version_of": 0.05, "video_of": 0.02, "none": 0.03}


def _fp(seed: int, n: int = 200) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32)


def _chroma(seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).random(CHROMA_STEPS * 12).astype(np.float32)
    return x / np.linalg.norm(x)


def test_without_both_fingerprints_the_scorer_stands() -> None:
    assert with_media_evidence(TEXT_SAYS_SAME, media_signals(MediaEvidence(fingerprint=_fp(1)), NO_MEDIA)) == (
        TEXT_SAYS_SAME
    )
    assert with_media_evidence(TEXT_SAYS_SAME, media_signals(NO_MEDIA, None)) == TEXT_SAYS_SAME


def test_same_audio_is_the_same_recording_or_a_video_of_it() -> None:
    none_by_text = {"same": 0.05, "version_of": 0.05, "video_of": 0.1, "none": 0.8}
    signals = {"audio_compared": 1.0, "audio_fingerprint": SAME_RECORDING_SCORE + 0.1}
    fused = with_media_evidence(none_by_text, signals)
    assert max(fused, key=fused.__getitem__) == "same"
    video = with_media_evidence(none_by_text, {**signals, "one_is_video": 1.0})
    assert max(video, key=video.__getitem__) == "video_of"
    assert sum(video.values()) == pytest.approx(1.0)


def test_other_audio_under_the_same_title_is_a_version_or_nothing() -> None:
    signals = {"audio_compared": 1.0, "audio_fingerprint": 0.1, "audio_chroma": SAME_WORK_CHROMA + 0.1}
    live = with_media_evidence(TEXT_SAYS_SAME, signals)
    assert max(live, key=live.__getitem__) == "version_of"
    assert sum(live.values()) == pytest.approx(1.0)
    other_work = with_media_evidence(TEXT_SAYS_SAME, {**signals, "audio_chroma": 0.2})
    assert max(other_work, key=other_work.__getitem__) == "none"
    # A video whose title names the recording but whose audio is another performance of the work.
    text_says_video = {"same": 0.05, "version_of": 0.05, "video_of": 0.85, "none": 0.05}
    video = with_media_evidence(text_says_video, {**signals, "one_is_video": 1.0})
    assert max(video, key=video.__getitem__) == "version_of"
    assert video["video_of"] == pytest.approx(0.01) and sum(video.values()) == pytest.approx(1.0)
    # Weaker than the same audio: a candidate whose fingerprint matches outranks the same work.
    same_audio = with_media_evidence(text_says_video, {**signals, "audio_fingerprint": 0.9, "one_is_video": 1.0})
    assert same_audio["video_of"] > video["version_of"]


def _picture(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 2, 64).astype(np.uint8)


def _flipped(bits: np.ndarray, n: int) -> np.ndarray:
    out = bits.copy()
    out[:: 64 // n][:n] ^= 1
    return out


def test_a_video_whose_frame_is_a_recordings_cover_is_a_video_of_it() -> None:
    none_by_text = {"same": 0.05, "version_of": 0.05, "video_of": 0.1, "none": 0.8}
    cover = _picture(1)
    signals = media_signals(MediaEvidence(image_bits=cover), MediaEvidence(image_bits=_flipped(cover, 4)))
    assert signals["image_compared"] == 1.0 and signals["image_hash"] >= SAME_PICTURE_SCORE
    video = with_media_evidence(none_by_text, {**signals, "one_is_video": 1.0})
    assert max(video, key=video.__getitem__) == "video_of"
    assert sum(video.values()) == pytest.approx(1.0)
    # Two recordings sharing a cover (an album's tracks) are left to the scorer, and so is a
    # video whose frame is another picture.
    assert with_media_evidence(none_by_text, signals) == none_by_text
    other = media_signals(MediaEvidence(image_bits=cover), MediaEvidence(image_bits=_picture(2)))
    assert other["image_hash"] < SAME_PICTURE_SCORE
    assert with_media_evidence(none_by_text, {**other, "one_is_video": 1.0}) == none_by_text


def test_where_both_sides_have_audio_the_audio_governs_not_the_picture() -> None:
    cover = _picture(1)
    a = MediaEvidence(fingerprint=_fp(1), chroma=_chroma(1), image_bits=cover)
    b = MediaEvidence(fingerprint=_fp(2), chroma=_chroma(2), image_bits=cover)
    signals = {**media_signals(a, b), "one_is_video": 1.0}
    assert signals["image_hash"] == 1.0 and signals["audio_fingerprint"] < SAME_RECORDING_SCORE
    fused = with_media_evidence(TEXT_SAYS_SAME, signals)
    assert max(fused, key=fused.__getitem__) != "video_of"
    assert fused == with_media_evidence(TEXT_SAYS_SAME, {**signals, "image_compared": 0.0})


def test_memory_finds_items_by_picture() -> None:
    memory = MediaMemory()
    vector = np.zeros(4, dtype=np.float32)
    cover = _picture(3)
    memory.add("cover", MediaEvidence(image_bits=cover), {"title_core": "a"}, vector)
    memory.add("other", MediaEvidence(image_bits=_picture(4)), {"title_core": "b"}, vector)
    frame = MediaEvidence(image_bits=_flipped(cover, 6))
    assert [cid for cid, _, _ in memory.same_picture(frame, 3, "q")] == ["cover"]
    assert memory.same_picture(frame, 3, "cover") == []
    assert memory.same_picture(MediaEvidence(image_bits=_picture(5)), 3, "q") == []


def test_memory_finds_items_by_sound_and_stays_bounded() -> None:
    memory = MediaMemory(capacity=2)
    vector = np.zeros(4, dtype=np.float32)
    base = _fp(7)
    noisy = base.copy()
    noisy[::3] ^= np.uint32(0x1)  # low bits flipped: the look-up keys survive
    memory.add("a", MediaEvidence(fingerprint=base), {"title_core": "a"}, vector)
    memory.add("b", MediaEvidence(fingerprint=_fp(8)), {"title_core": "b"}, vector)
    assert [cid for cid, _, _ in memory.similar(MediaEvidence(fingerprint=noisy), 1, "q")] == ["a"]
    memory.add("c", MediaEvidence(fingerprint=_fp(9)), {"title_core": "c"}, vector)
    assert len(memory) == 2
    assert memory.get("a") is None
    assert memory.similar(MediaEvidence(fingerprint=noisy), 1, "q") == []
    memory.add("nothing", NO_MEDIA, {}, vector)
    assert memory.get("nothing") is None


class StandInReader:
    """Evidence by content id, as a real reader would give it (and a failure for one)."""

    def __init__(self, evidence: dict[str, MediaEvidence]) -> None:
        self.evidence = evidence

    async def read(self, items: list[ContentItem]) -> list[MediaEvidence]:
        return [self.evidence.get(i.content_id, NO_MEDIA) for i in items]


def _item(
    cid: str, title: str, kind: str = "recording", audio: str | None = "x.wav", image: str | None = None
) -> ContentItem:
    return ContentItem(
        event_id=f"ev-{cid}", content_id=cid, source="s", kind=kind, title=title, artists=("Ensemble",),
        duration_ms=200_000, audio_ref=audio, image_ref=image,
    )  # fmt: skip


def _resolver(reader: Any) -> BatchResolver:
    finder = CandidateFinder(InMemoryVectorIndex(BOW_DIM), 10, 5000, BOW_DIM)
    return BatchResolver(
        BagOfWordsEncoder(), finder, RuleScorer(), DecisionPolicy(Thresholds()), EntityStore({}), media=reader
    )


def test_the_resolver_tells_a_live_take_from_the_studio_one_and_finds_an_official_video() -> None:
    studio, live = _fp(1), _fp(2)
    chroma = _chroma(3)
    reader = StandInReader(
        {
            "studio": MediaEvidence(fingerprint=studio, chroma=chroma),
            "dup": MediaEvidence(fingerprint=studio[10:], chroma=chroma),
            "live": MediaEvidence(fingerprint=live, chroma=chroma),
            "video": MediaEvidence(fingerprint=studio, chroma=chroma),
            "broken": MediaEvidence(failures=(("audio", "corrupt", "no recognisable container or stream"),)),
        }
    )
    resolver = _resolver(reader)
    first = asyncio.run(resolver.resolve([_item("studio", "Chorale"), _item("dup", "Chorale")]))
    assert [d.action for d in first.decisions] == [Action.NEW, Action.MERGE]
    later = asyncio.run(
        resolver.resolve(
            [_item("live", "Chorale"), _item("video", "Official Video", kind="music_video"), _item("broken", "Chorale")]
        )
    )
    by_id = {d.content_id: d for d in later.decisions}
    assert by_id["live"].action is Action.LINK and by_id["live"].relation is Relation.VERSION_OF
    assert by_id["video"].action is Action.LINK and by_id["video"].relation is Relation.VIDEO_OF
    assert by_id["video"].related_entity_id == first.decisions[0].entity_id
    # Resolved on its text (the same title as the studio take), the failure named in the evidence.
    assert by_id["broken"].action is Action.MERGE
    assert "audio unavailable: corrupt" in by_id["broken"].reason
    assert by_id["broken"].signals["audio_unavailable"] == 1.0


def test_an_official_video_with_only_a_picture_finds_its_recording_by_the_cover() -> None:
    cover = _picture(11)
    reader = StandInReader(
        {
            "studio": MediaEvidence(image_bits=cover),
            "other": MediaEvidence(image_bits=_picture(12)),
            "video": MediaEvidence(image_bits=_flipped(cover, 5)),
        }
    )
    resolver = _resolver(reader)
    first = asyncio.run(
        resolver.resolve(
            [_item("studio", "Chorale", audio=None, image="a.jpg"), _item("other", "Hymn", audio=None, image="b.jpg")]
        )
    )
    (video,) = asyncio.run(
        resolver.resolve([_item("video", "Official Video", "music_video", audio=None, image="v.mp4")])
    ).decisions
    assert video.action is Action.LINK and video.relation is Relation.VIDEO_OF
    assert video.related_entity_id == first.decisions[0].entity_id


def test_without_a_reader_nothing_changes() -> None:
    items = [_item("a", "Chorale"), _item("b", "Chorale")]
    with_reader = asyncio.run(_resolver(StandInReader({})).resolve(items))
    without = asyncio.run(_resolver(None).resolve(items))
    assert [(d.action, d.confidence) for d in with_reader.decisions] == [
        (d.action, d.confidence) for d in without.decisions
    ]


def test_behind_a_media_trained_matcher_only_the_video_picture_rule_stays() -> None:
    from resolution.media_evidence import FusionRule

    other_audio = {"audio_compared": 1.0, "audio_fingerprint": 0.05, "audio_chroma": 0.1, "one_is_video": 0.0}
    assert with_media_evidence(TEXT_SAYS_SAME, other_audio, FusionRule.VIDEO_PICTURE) == TEXT_SAYS_SAME
    assert with_media_evidence(TEXT_SAYS_SAME, other_audio, FusionRule.FULL) != TEXT_SAYS_SAME
    frame = {"audio_compared": 0.0, "image_compared": 1.0, "image_hash": 0.95, "one_is_video": 1.0}
    none_by_text = {"same": 0.01, "version_of": 0.9, "video_of": 0.04, "none": 0.05}
    video = with_media_evidence(none_by_text, frame, FusionRule.VIDEO_PICTURE)
    assert max(video, key=lambda r: video[r]) == "video_of"
    assert with_media_evidence(none_by_text, frame, FusionRule.OFF) == none_by_text
