"""Media evidence: fingerprint alignment against a brute-force reference, transposition
invariance of the chroma comparison, and the loader's refusals of missing, oversized, corrupt
and hostile files (those need ffprobe; skipped with a message where it is absent)."""

from __future__ import annotations

import shutil
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from media.chroma import CHROMA_DIM, STEPS, chroma_embedding
from media.loading import SAMPLE_RATE, MediaLimits, MediaLoader, local_path
from media.process import MediaError
from resolution.media_evidence import (
    MIN_OVERLAP,
    FingerprintSpectra,
    fingerprint_similarity,
    transposition_similarities,
    transposition_similarity,
)
from resolution.media_evidence import reference_fingerprint_similarity as reference_similarity

needs_ffmpeg = pytest.mark.skipif(
    shutil.which("ffprobe") is None or shutil.which("ffmpeg") is None,
    reason="ffmpeg/ffprobe not installed (Debian: apt-get install ffmpeg; .ci/run installs it)",
)


def _random_fp(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32)


def test_fingerprint_score_matches_brute_force_at_every_alignment() -> None:
    rng = np.random.default_rng(3)
    a = _random_fp(rng, 260)
    trimmed = a[37:220].copy()
    trimmed[::5] ^= np.uint32(0x00FF00FF)  # a noisy, trimmed copy
    shifted = np.concatenate([_random_fp(rng, 25), a[:150]])  # a copy with something before it
    other = _random_fp(rng, 200)
    for x, y in [(a, trimmed), (trimmed, a), (a, shifted), (shifted, a), (a, other), (a, a)]:
        assert fingerprint_similarity(x, y) == pytest.approx(reference_similarity(x, y), abs=1e-6)
    assert fingerprint_similarity(a, a) == pytest.approx(1.0)
    assert fingerprint_similarity(a, trimmed) > 0.6
    assert fingerprint_similarity(a, other) < 0.15


def test_fingerprint_spectra_score_many_at_once_as_one_by_one() -> None:
    rng = np.random.default_rng(4)
    fps = [_random_fp(rng, n) for n in (MIN_OVERLAP, 90, 300, 1024)]
    fps.append(fps[2][40:200])
    spectra = FingerprintSpectra(fps)
    for q in fps:
        assert np.allclose(spectra.similarities(q), [reference_similarity(q, f) for f in fps], atol=1e-6)


def test_chroma_comparison_finds_the_transposition() -> None:
    rng = np.random.default_rng(5)
    steps = rng.random((STEPS, 12)).astype(np.float32)
    a = (steps / np.linalg.norm(steps)).reshape(-1)
    up_three = np.roll(a.reshape(STEPS, 12), 3, axis=1).reshape(-1)
    score, shift = transposition_similarity(up_three, a)
    assert score == pytest.approx(1.0, abs=1e-5)
    assert shift == 3
    unrelated = rng.random(CHROMA_DIM).astype(np.float32)
    unrelated /= np.linalg.norm(unrelated)
    batch = transposition_similarities(a, np.stack([up_three, unrelated]))
    assert batch[0] == pytest.approx(1.0, abs=1e-5)
    assert batch[1] < batch[0]
    assert batch[1] == pytest.approx(transposition_similarity(a, unrelated)[0], abs=1e-5)


def _tone(freqs: list[float], seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return sum(np.sin(2 * np.pi * f * t) for f in freqs).astype(np.float32) / len(freqs)


def test_chroma_embedding_is_key_and_tempo_invariant_on_tones() -> None:
    # A C major then an A minor chord, and the same a whole tone up and 25% faster.
    c_major, a_minor = [261.63, 329.63, 392.0], [220.0, 261.63, 329.63]
    up = 2 ** (2 / 12)
    base = np.concatenate([_tone(c_major, 4.0), _tone(a_minor, 4.0)])
    moved = np.concatenate([_tone([f * up for f in c_major], 3.0), _tone([f * up for f in a_minor], 3.0)])
    other = np.concatenate([_tone(a_minor, 4.0), _tone([293.66, 369.99, 440.0], 4.0)])
    e_base, e_moved, e_other = (chroma_embedding(x) for x in (base, moved, other))
    same, shift = transposition_similarity(e_moved, e_base)
    assert same > 0.95
    assert shift == 2
    assert transposition_similarity(e_other, e_base)[0] < same


@pytest.mark.parametrize(
    ("ref", "reason"),
    [("http://127.0.0.1/a.mp3", "unsupported_ref"), ("file://elsewhere/a.mp3", "unsupported_ref"), ("", "bad_ref")],
)
def test_only_local_files_are_references(ref: str, reason: str) -> None:
    with pytest.raises(MediaError) as err:
        local_path(ref)
    assert err.value.reason == reason


def test_file_uri_is_a_local_path() -> None:
    assert local_path("file:///tmp/a%20b.wav") == Path("/tmp/a b.wav")


def _wav(path: Path, seconds: float) -> Path:
    samples = (_tone([440.0], seconds) * 20000).astype("<i2").tobytes()
    header = b"RIFF" + struct.pack("<I", 36 + len(samples)) + b"WAVEfmt "
    header += struct.pack("<IHHIIHH", 16, 1, 1, SAMPLE_RATE, SAMPLE_RATE * 2, 2, 16)
    path.write_bytes(header + b"data" + struct.pack("<I", len(samples)) + samples)
    return path


@needs_ffmpeg
def test_a_wav_file_loads_within_its_bounds(tmp_path: Path) -> None:
    clip = MediaLoader(MediaLimits(audio_seconds=2.0)).audio(str(_wav(tmp_path / "a.wav", 3.0)))
    assert clip.samples.dtype == np.float32
    assert abs(clip.seconds - 2.0) < 0.05  # decoded only as far as allowed
    assert abs(clip.duration_s - 3.0) < 0.05


@needs_ffmpeg
@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("missing.wav", None, "missing"),
        ("empty.wav", b"", "empty"),
        ("garbage.mp3", b"\x00\xffnot audio at all" * 64, "corrupt"),
        # A playlist that would make ffmpeg read another file: refused by the format whitelist.
        ("list.m3u8", b"#EXTM3U\n#EXTINF:10,\nfile:///etc/hostname\n", "corrupt"),
        ("concat.txt", b"ffconcat version 1.0\nfile '/etc/hostname'\n", "corrupt"),
    ],
)
def test_unreadable_audio_is_a_reason_not_a_crash(
    tmp_path: Path, name: str, content: bytes | None, reason: str
) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(MediaError) as err:
        MediaLoader().audio(str(path))
    assert err.value.reason in {reason, "tool_failed"}, err.value


@needs_ffmpeg
def test_oversized_files_are_refused_before_decoding(tmp_path: Path) -> None:
    wav = _wav(tmp_path / "a.wav", 2.0)
    with pytest.raises(MediaError) as err:
        MediaLoader(MediaLimits(max_bytes=1000)).audio(str(wav))
    assert err.value.reason == "too_large"
    with pytest.raises(MediaError) as err:
        MediaLoader(MediaLimits(max_duration_s=1.0)).audio(str(wav))
    assert err.value.reason == "too_long"


@needs_ffmpeg
def test_audio_without_a_picture_is_no_image(tmp_path: Path) -> None:
    with pytest.raises(MediaError) as err:
        MediaLoader().image(str(_wav(tmp_path / "a.wav", 2.0)))
    assert err.value.reason == "no_image"


@needs_ffmpeg
def test_a_pixel_bomb_is_refused_from_its_header(tmp_path: Path) -> None:
    import zlib

    # A PNG header declaring 12000 x 12000 pixels (144 M, over the 50 M limit) with a tiny body.
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", 12000, 12000, 8, 2, 0, 0, 0)
    png = (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 100)) + chunk(b"IEND", b"")
    )
    path = tmp_path / "bomb.png"
    path.write_bytes(png)
    with pytest.raises(MediaError) as err:
        MediaLoader().image(str(path))
    assert err.value.reason == "too_many_pixels"


@needs_ffmpeg
def test_the_reader_turns_every_hostile_file_into_a_named_failure(tmp_path: Path) -> None:
    from media.reader import MediaEvidenceReader
    from resolution.model import ContentItem
    from tests.hostile_events import hostile_media_files

    reader = MediaEvidenceReader(MediaLimits(timeout_s=10.0))
    cases = hostile_media_files(tmp_path / "media")
    items = [
        ContentItem(
            event_id=f"e{n}",
            content_id=f"c{n}",
            source="fuzz",
            kind="recording",
            title="t",
            artists=("a",),
            audio_ref=ref if modality == "audio" else None,
            image_ref=ref if modality == "image" else None,
        )
        for n, (ref, modality, _reasons) in enumerate(cases)
    ]
    import asyncio

    evidence = asyncio.run(reader.read(items))
    for (ref, modality, reasons), found in zip(cases, evidence, strict=True):
        assert [(m, r) for m, r, _ in found.failures if r in reasons] == [(modality, found.failures[0][1])], (
            ref,
            found,
        )
        assert found.failure_signals() == {f"{modality}_unavailable": 1.0}


def test_the_worker_builds_its_media_step_from_settings() -> None:
    from content_resolver.composition import build_media_reader
    from settings import Settings

    reader = build_media_reader(Settings.from_env({"RESOLVER_WORKER_MEDIA_MAX_BYTES": "1000"}))
    assert reader is not None, "on by default"
    assert reader.limits.max_bytes == 1000
    assert build_media_reader(Settings.from_env({"RESOLVER_WORKER_MEDIA_EVIDENCE": "0"})) is None
    assert build_media_reader(Settings.from_env({"RESOLVER_WORKER_MEDIA_EVIDENCE": "off"})) is None
    assert build_media_reader(Settings.from_env({}), modalities=frozenset()) is None
    with pytest.raises(ValueError, match="MEDIA_EVIDENCE"):
        Settings.from_env({"RESOLVER_WORKER_MEDIA_EVIDENCE": "maybe"})


@needs_ffmpeg
def test_evaluations_reader_reads_a_file_once_until_it_changes(tmp_path: Path, monkeypatch) -> None:
    import asyncio
    import os

    from media.reader import MediaEvidenceReader
    from resolution.model import ContentItem

    path = _wav(tmp_path / "a.wav", 12.0)
    item = ContentItem(
        event_id="e", content_id="c", source="s", kind="recording", title="t", artists=(), audio_ref=str(path)
    )
    reader = MediaEvidenceReader(cache_items=4)
    reads: list[str] = []
    real = reader.read_item

    def counted(tag: str | None) -> Callable[[ContentItem], Any]:
        def read_item(item: ContentItem) -> Any:
            reads.append(tag or item.content_id)
            return real(item)

        return read_item

    monkeypatch.setattr(reader, "read_item", counted(None))
    first = asyncio.run(reader.read([item]))[0]
    again = asyncio.run(reader.read([item]))[0]
    assert not first.failures and again is first and reads == ["c"]
    os.utime(path, ns=(1, 1))  # the file changed (its modification time): read afresh
    asyncio.run(reader.read([item]))
    assert reads == ["c", "c"]
    uncached = MediaEvidenceReader()
    monkeypatch.setattr(uncached, "read_item", counted("worker"))
    asyncio.run(uncached.read([item, item]))
    assert reads.count("worker") == 2, "the worker's reader (no cache) reads every reference"
