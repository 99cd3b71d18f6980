"""The shared media index (resolution/media_index.py): the retrieval vector, the in-memory index,
two resolvers with states of their own (two workers' partitions) meeting through one index, and
the link-back of an earlier music video when its recording arrives (pure logic; Milvus' index is
exercised by tests/integration/test_media_partitions.py)."""

from __future__ import annotations

import asyncio

import numpy as np

from resolution.candidates import CandidateFinder, InMemoryVectorIndex
from resolution.entities import EntityStore, rebuild_state, state_differences
from resolution.matcher import RuleScorer
from resolution.media_evidence import CHROMA_STEPS, NO_MEDIA, MediaEvidence
from resolution.media_index import InMemoryMediaIndex, MediaIndex, MediaRow, audio_vector
from resolution.model import MEDIA_LINK_BACK, Action, ContentItem, Decision
from resolution.policy import DecisionPolicy, Thresholds
from resolution.resolver import BatchResolver
from tests.unit.text_fakes import BOW_DIM, BagOfWordsEncoder


def _fp(seed: int, n: int = 200) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32)


def _chroma(seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).random(CHROMA_STEPS * 12).astype(np.float32)
    return x / np.linalg.norm(x)


def _picture(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 2, 64).astype(np.uint8)


def _noisy(fp: np.ndarray, share: float, seed: int) -> np.ndarray:
    """``share`` of the sub-fingerprints with one of their top bits flipped (their keys change)."""
    out = fp.copy()
    rng = np.random.default_rng(seed)
    hit = rng.random(len(out)) < share
    out[hit] ^= np.uint32(1) << rng.integers(12, 32, int(hit.sum())).astype(np.uint32)
    return out


def _row(cid: str, evidence: MediaEvidence) -> MediaRow:
    return MediaRow(cid, f"ent-{cid}", f"work-{cid}", evidence, {"content_id": cid}, np.zeros(BOW_DIM, np.float32))


def test_the_retrieval_vector_ignores_alignment_and_scores_unrelated_clips_near_zero() -> None:
    def heard(fp: np.ndarray, chroma: np.ndarray | None = None) -> np.ndarray:
        return audio_vector(MediaEvidence(fingerprint=fp, chroma=chroma))

    studio = _fp(1)
    assert float(heard(studio) @ heard(studio[25:])) > 0.9  # trimmed 3 s
    assert float(heard(studio) @ heard(_noisy(studio, 0.4, 2))) > 0.5
    unrelated = [float(heard(studio) @ heard(_fp(seed))) for seed in range(10, 60)]
    assert max(unrelated) < 0.25 and abs(float(np.mean(unrelated))) < 0.05
    # Most bits flipped (band-limited): the keys are gone, the chroma still says it.
    chroma = _chroma(5)
    flipped = heard(_noisy(studio, 0.95, 4), chroma) @ heard(studio, chroma)
    assert flipped > 0.25 > max(float(heard(_fp(s), _chroma(s)) @ heard(studio, chroma)) for s in range(10, 30))
    assert not heard(np.zeros(0, np.uint32)).any() and not audio_vector(MediaEvidence(chroma=chroma)).any()


def test_the_index_finds_by_sound_rescored_exactly_and_by_picture_above_the_threshold() -> None:
    index = InMemoryMediaIndex(search_k=5)
    studio, cover = _fp(1), _picture(1)
    rows = [_row("studio", MediaEvidence(fingerprint=studio, image_bits=cover))]
    rows += [_row(f"o{n}", MediaEvidence(fingerprint=_fp(100 + n), image_bits=_picture(100 + n))) for n in range(30)]
    asyncio.run(index.upsert([*rows, _row("nothing", NO_MEDIA)]))
    assert len(index) == 31  # a row without media is not kept
    query = MediaEvidence(fingerprint=_noisy(studio[15:], 0.3, 3), image_bits=cover)
    (heard,) = asyncio.run(index.sounding_like([query], 3, ["query"]))
    assert heard[0].row.content_id == "studio" and len(heard) == 3
    assert heard[0].score > 0.5 > heard[1].score  # the exact fingerprint score, best first
    (seen,) = asyncio.run(index.same_picture([query], 3, ["query"]))
    assert [h.row.content_id for h in seen] == ["studio"]  # other pictures are below the threshold
    (itself,) = asyncio.run(index.sounding_like([MediaEvidence(fingerprint=studio)], 3, ["studio"]))
    assert "studio" not in {h.row.content_id for h in itself}
    assert [r.content_id for r in asyncio.run(index.rows(["o3", "missing", "studio"]))] == ["o3", "studio"]


def _item(cid: str, title: str, kind: str = "recording", image: str | None = None) -> ContentItem:
    return ContentItem(
        event_id=f"ev-{cid}", content_id=cid, source="s", kind=kind, title=title, artists=("Ensemble",),
        duration_ms=200_000, audio_ref=None if image else "x.wav", image_ref=image,
    )  # fmt: skip


class StandInReader:
    def __init__(self, evidence: dict[str, MediaEvidence]) -> None:
        self.evidence = evidence

    async def read(self, items: list[ContentItem]) -> list[MediaEvidence]:
        return [self.evidence.get(i.content_id, NO_MEDIA) for i in items]


def _resolver(reader: StandInReader, store: EntityStore, index: MediaIndex | None) -> BatchResolver:
    """One worker's resolver: its own state, memory and text index; ``index`` the shared one."""
    finder = CandidateFinder(InMemoryVectorIndex(BOW_DIM), 10, 5000, BOW_DIM)
    return BatchResolver(
        BagOfWordsEncoder(), finder, RuleScorer(), DecisionPolicy(Thresholds()), store, media=reader, media_index=index
    )


def _two_workers(index: MediaIndex | None) -> tuple[Decision, Decision, Decision]:
    studio, cover = _fp(1), _picture(1)
    reader = StandInReader(
        {
            "studio": MediaEvidence(fingerprint=studio, chroma=_chroma(3)),
            "video": MediaEvidence(fingerprint=studio[20:], chroma=_chroma(3)),
            "covered": MediaEvidence(image_bits=cover),
            "framed": MediaEvidence(image_bits=cover),
        }
    )
    one = _resolver(reader, EntityStore({}), index)
    other = _resolver(reader, EntityStore({}), index)
    (recording,) = asyncio.run(one.resolve([_item("studio", "Chorale")])).decisions
    asyncio.run(one.resolve([_item("covered", "Hymn", image="a.jpg")]))
    (video,) = asyncio.run(other.resolve([_item("video", "Official Video", "music_video")])).decisions
    third = _resolver(reader, EntityStore({}), index)
    (framed,) = asyncio.run(third.resolve([_item("framed", "Official Video", "music_video", image="v.mp4")])).decisions
    return recording, video, framed


def test_a_video_resolved_by_another_worker_finds_its_recording_through_the_shared_index() -> None:
    recording, video, framed = _two_workers(InMemoryMediaIndex())
    assert video.action is Action.LINK and video.relation is not None and video.relation.value == "video_of"
    assert video.related_entity_id == recording.entity_id  # the other worker's entity, from the index row
    assert framed.action is Action.LINK and framed.relation is not None and framed.relation.value == "video_of"
    # Without the shared index each worker remembers only what it resolved itself.
    _, alone, framed_alone = _two_workers(None)
    assert alone.action is Action.NEW and framed_alone.action is Action.NEW


def test_a_recording_after_its_video_links_the_video_back_with_the_evidence() -> None:
    studio = _fp(1)
    reader = StandInReader(
        {
            "video": MediaEvidence(fingerprint=studio[20:], chroma=_chroma(3)),
            "studio": MediaEvidence(fingerprint=studio, chroma=_chroma(3)),
            "dup": MediaEvidence(fingerprint=studio[5:], chroma=_chroma(3)),
        }
    )
    store = EntityStore({})
    resolver = _resolver(reader, store, InMemoryMediaIndex())
    (video,) = asyncio.run(resolver.resolve([_item("video", "Official Video", "music_video")])).decisions
    assert video.action is Action.NEW
    result = asyncio.run(resolver.resolve([_item("dup", "Chorale (Remastered)"), _item("studio", "Chorale")]))
    links = [d for d in result.corrections if d.trigger == MEDIA_LINK_BACK]
    assert len(links) == 1, result.corrections
    (link,) = links
    recording_entity = store.entity_of("dup")
    assert link.content_id == "video" and link.action is Action.LINK and link.relation is not None
    assert link.relation.value == "video_of" and link.related_entity_id == recording_entity
    assert link.signals["audio_fingerprint"] > 0.9 and link.candidates[0].candidate.content_id in ("dup", "studio")
    assert "link-back" in link.reason
    record = store.entity(video.entity_id) or {}
    assert ["video_of", recording_entity] in record["relations"]
    assert store.decision_for("ev-dup") != link.decision_id  # the event's own decision stays its own
    # Once linked, later takes of the recording do not link it again.
    reader.evidence["dup2"] = MediaEvidence(fingerprint=studio[8:], chroma=_chroma(3))
    again = asyncio.run(resolver.resolve([_item("dup2", "Chorale")]))
    assert not [d for d in again.corrections if d.trigger == MEDIA_LINK_BACK]


def test_a_link_back_replaces_the_videos_wrong_link_and_replays_to_the_same_state() -> None:
    studio, other = _fp(1), _fp(2)
    reader = StandInReader(
        {
            "other": MediaEvidence(fingerprint=other, chroma=_chroma(3)),
            # A video of the studio take whose harmony sounds like the other recording: chroma links it.
            "video": MediaEvidence(fingerprint=studio[20:], chroma=_chroma(3)),
            "studio": MediaEvidence(fingerprint=studio, chroma=_chroma(4)),
        }
    )
    table: dict = {}
    store = EntityStore(table)
    resolver = _resolver(reader, store, InMemoryMediaIndex())
    applied = asyncio.run(resolver.resolve([_item("other", "Chorale")])).in_applied_order()
    step = asyncio.run(resolver.resolve([_item("video", "Chorale (Official Video)", "music_video")]))
    (video,) = step.decisions
    assert video.action is Action.LINK and video.relation is not None and video.relation.value == "version_of"
    applied += step.in_applied_order()
    last = asyncio.run(resolver.resolve([_item("studio", "Chorale")]))
    applied += last.in_applied_order()
    (link,) = [d for d in last.corrections if d.trigger == MEDIA_LINK_BACK]
    assert link.previous_entity_ids == (store.entity_of("other"),)
    relations = (store.entity(video.entity_id) or {})["relations"]
    assert relations == [["video_of", store.entity_of("studio")]]
    records = [_record(d) for d in applied]
    count, lines = state_differences(table, rebuild_state(records))
    assert count == 0, lines


def _record(d: Decision) -> dict:
    """What the decisions topic carries of a decision, as far as replay reads it."""
    return {
        "decision_id": d.decision_id, "event_id": d.event_id, "content_id": d.content_id, "action": d.action.value,
        "entity_id": d.entity_id, "work_id": d.work_id, "confidence": d.confidence,
        "related_entity_id": d.related_entity_id, "relation": d.relation.value if d.relation else None,
        "candidates": [
            {"content_id": c.candidate.content_id, "entity_id": c.candidate.entity_id, "relation": c.relation.value,
             "score": c.score, "p_same": c.probabilities.get("same", -1.0)}
            for c in d.candidates
        ],
        "reason": d.reason, "previous_entity_ids": list(d.previous_entity_ids), "members": list(d.members),
        "trigger": d.trigger, "new_entity_ids": list(d.new_entity_ids), "verdict": d.verdict, "sequence": d.sequence,
        "trace_id": "",
    }  # fmt: skip
