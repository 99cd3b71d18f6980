"""Fuzz: ten thousand hostile events interleaved with valid ones, through the real worker."""

from __future__ import annotations

import random
import shutil
import time
from collections import Counter

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from evaluation.sample_catalogue import generate_catalogue
from tests.hostile_events import hostile_event
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


def test_hostile_media_files_never_stop_the_worker_and_the_evidence_says_why(worker, tmp_path) -> None:
    from resolution.model import ContentItem
    from tests.hostile_events import hostile_media_files, wav_header

    if shutil.which("ffprobe") is None:
        pytest.skip("ffmpeg not installed (deploy/media_tools.sh installs it)")
    settings_ = worker.settings
    run = time.time_ns()
    cases = hostile_media_files(tmp_path / "media")
    items = [
        ContentItem(
            event_id=f"media-{n}~{run}",
            content_id=f"media-{n}-{run}",
            source="fuzz",
            kind="recording",
            title=f"Hostile Media Song {n}",
            artists=("Fuzz Band",),
            duration_ms=200_000,
            audio_ref=ref if modality == "audio" else None,
            image_ref=ref if modality == "image" else None,
            produced_at_ms=1,
        )
        for n, (ref, modality, _reasons) in enumerate(cases)
    ]
    # And one good file (an 8 s chord), read without failure.
    t = np.arange(8 * 11025) / 11025
    tone = (sum(np.sin(2 * np.pi * f * t) for f in (261.6, 329.6, 392.0)) * 8000).astype("<i2").tobytes()
    good = tmp_path / "good.wav"
    good.write_bytes(wav_header(len(tone), tone))
    items.append(
        ContentItem(
            event_id=f"media-good~{run}",
            content_id=f"media-good-{run}",
            source="fuzz",
            kind="recording",
            title="A Good Chord",
            artists=("Fuzz Band",),
            audio_ref=str(good),
            produced_at_ms=1,
        )
    )
    produce(settings_, items)
    found = wait_decisions(settings_, {i.event_id for i in items}, timeout_s=240)
    assert {i.event_id for i in items} <= found.keys(), "every event with hostile media decided"
    for item, (ref, modality, reasons) in zip(items, cases, strict=False):
        (decision,) = found[item.event_id]
        note = decision["reason"]
        assert f"{modality} unavailable: " in note, (ref, note)
        given = note.split(f"{modality} unavailable: ", 1)[1].split(" ", 1)[0]
        assert given in reasons, (ref, note)
        assert decision["signals"].get(f"{modality}_unavailable") == 1.0
    (decision,) = found[items[-1].event_id]
    assert "unavailable" not in decision["reason"], decision["reason"]
    assert worker.proc is not None and worker.proc.poll() is None, "no worker crash"
    print(f"\nhostile media: {len(cases)} files, all decided on text with the failure named")
