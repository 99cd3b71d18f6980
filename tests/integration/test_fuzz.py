"""Fuzz: ten thousand hostile events interleaved with valid ones, through the real worker."""

from __future__ import annotations

import random
import shutil
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from evaluation.sample_catalogue import generate_catalogue
from resolution.model import ContentItem
from tests.hostile_events import hostile_event, hostile_media_files, wav_header
from tests.integration.streaming import dead_letters, produce, wait_decisions

pytestmark = pytest.mark.integration

HOSTILE = 10_000
BATCHES = 40


def generate_hostile(n: int) -> list[tuple[bytes, set[str]]]:
    """Draws ``n`` hostile events with hypothesis (several runs of a collecting property)."""
    out: list[tuple[bytes, set[str]]] = []

    @settings(max_examples=n, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(hostile_event)
    def collect(case: tuple[bytes, set[str]]) -> None:
        out.append(case)

    while len(out) < n:
        collect()
    return out[:n]


def test_ten_thousand_hostile_events_all_dead_lettered_valid_ones_decided(worker) -> None:
    settings_ = worker.settings
    hostile = generate_hostile(HOSTILE)
    items, _truth = generate_catalogue(seed=3, songs=400)
    run = time.time_ns()
    valid = [type(i)(**{**i.__dict__, "event_id": f"{i.event_id}~{run}"}) for i in items]
    rng = random.Random(9)
    # Interleave: valid events spread among hostile ones.
    raw = [h for h, _ in hostile]
    rng.shuffle(raw)
    produce(settings_, valid, raw=raw)

    found = wait_decisions(settings_, {i.event_id for i in valid}, timeout_s=300)
    assert {i.event_id for i in valid} <= found.keys(), "every valid event decided"
    assert all(len(found[i.event_id]) == 1 for i in valid)

    deadline = time.monotonic() + 120
    letters = dead_letters(settings_)
    while len(letters) < HOSTILE and time.monotonic() < deadline:
        time.sleep(2)
        letters = dead_letters(settings_)
    expected = Counter(raw)
    got = Counter(bytes(x["original"]) for x in letters)
    assert got == expected, f"dead letters: {sum(got.values())} of {HOSTILE}"
    allowed = {h: reasons for h, reasons in hostile}
    wrong = [(x["reason"], x["detail"]) for x in letters if x["reason"] not in allowed[bytes(x["original"])]]
    assert not wrong, wrong[:5]
    assert worker.proc is not None and worker.proc.poll() is None, "no worker crash"
    print(
        f"\nfuzz: hostile={HOSTILE} dead-lettered={len(letters)} valid={len(valid)} decided={len(found)} "
        f"reasons={dict(Counter(x['reason'] for x in letters))}"
    )


def _melody_wav(path: Path, seed: int, gain: float = 1.0) -> str:
    """10 s of a seeded melody (quarter-second notes over two octaves), as 16-bit mono WAV."""
    rate, note_s = 11025, 0.25
    rng = np.random.default_rng(seed)
    t = np.arange(int(rate * note_s)) / rate
    notes = [np.sin(2 * np.pi * 220.0 * 2 ** (rng.integers(0, 24) / 12) * t) * np.hanning(len(t)) for _ in range(40)]
    body = (np.concatenate(notes) * 12000 * gain).astype("<i2").tobytes()
    path.write_bytes(wav_header(len(body), body))
    return str(path)


def test_hostile_media_files_never_stop_the_worker_and_each_decision_says_why(worker, tmp_path) -> None:
    """Missing, corrupt, oversized and hostile media through the real worker (its media step on, as
    by default): every event decided exactly once, on its text, the failed modality and reason
    named in its decision; and media that can be read does decide (the same title over other
    audio is not merged, the same audio re-encoded is)."""
    if shutil.which("ffprobe") is None or shutil.which("fpcalc") is None:
        pytest.skip("ffmpeg / fpcalc not installed (deploy/media_tools.sh installs them)")
    assert worker.settings.worker.media_evidence, "the worker's media step is on by default"
    run = time.time_ns()

    def item(name: str, title: str, audio: str | None = None, image: str | None = None) -> ContentItem:
        return ContentItem(
            event_id=f"media-{name}~{run}", content_id=f"media-{name}-{run}", source="fuzz", kind="recording",
            title=title, artists=("Fuzz Band",), duration_ms=10_000, audio_ref=audio, image_ref=image,
            produced_at_ms=1,
        )  # fmt: skip

    cases = hostile_media_files(tmp_path / "media")
    hostile = [
        item(f"hostile{n}", f"Hostile Media Song {n}", *((ref, None) if modality == "audio" else (None, ref)))
        for n, (ref, modality, _reasons) in enumerate(cases)
    ]
    title = f"A Good Melody {run}"  # one core title: one partition, whose media memory compares them
    studio = item("studio", title, _melody_wav(tmp_path / "studio.wav", seed=1))
    other_take = item("other", title, _melody_wav(tmp_path / "other.wav", seed=2))
    quieter = item("quieter", title, _melody_wav(tmp_path / "quieter.wav", seed=1, gain=0.5))
    good = [studio, other_take, quieter]
    produce(worker.settings, [*hostile, studio])
    produce(worker.settings, [other_take, quieter])  # a later batch: the studio take is remembered

    everything = {i.event_id for i in [*hostile, *good]}
    found = wait_decisions(worker.settings, everything, timeout_s=240)
    assert everything <= found.keys(), f"undecided: {sorted(everything - found.keys())[:5]}"
    assert all(len(found[e]) == 1 for e in everything), "each event decided exactly once"
    for event, (ref, modality, reasons) in zip(hostile, cases, strict=True):
        (decision,) = found[event.event_id]
        note = decision["reason"]
        assert f"{modality} unavailable: " in note, (ref, note)
        given = note.split(f"{modality} unavailable: ", 1)[1].split(" ", 1)[0]
        assert given in reasons, (ref, note)
        assert decision["signals"].get(f"{modality}_unavailable") == 1.0, (ref, decision["signals"])
    by_name = {i.content_id: found[i.event_id][0] for i in good}
    for decision in by_name.values():
        assert "unavailable" not in decision["reason"], decision["reason"]
    first, other, again = (by_name[i.content_id] for i in good)
    assert first["action"] == "NEW", first
    # Identical title and artist: text alone merges these; the audio says another recording.
    assert other["action"] != "MERGE" or other["entity_id"] != first["entity_id"], other
    # The same audio, 6 dB quieter: the same recording.
    assert again["action"] == "MERGE" and again["entity_id"] == first["entity_id"], again
    assert worker.proc is not None and worker.proc.poll() is None, "no worker crash"
    print(
        f"\nhostile media: {len(cases)} files decided on text with the failure named; "
        f"other take {other['action']} ({other['reason'][:80]}); re-encoded {again['action']}"
    )
