"""Hypothesis strategies for hostile content events: each is invalid by construction.

Every strategy yields ``(bytes, reasons)``: what a broken or malicious producer would send, and
the dead-letter reasons the resolver may give for it. ``hostile_media_files`` is the other kind:
valid events whose media files are missing, corrupt, oversized or hostile.
"""

from __future__ import annotations

from pathlib import Path

from hypothesis import strategies as st

from streams.topics import MAGIC, Schemas

SCHEMAS = Schemas.load()
SCHEMA = SCHEMAS.content_event
FINGERPRINT = SCHEMA.fingerprint
PLACEHOLDER = "QQQQQQQQ"

# Valid text: at least one visible character, no control characters.
text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cc", "Cs")), min_size=1, max_size=40).filter(
    str.strip
)


def base_record(draw: st.DrawFn) -> dict:
    return {
        "event_id": "hostile-" + draw(st.uuids()).hex,
        "content_id": "h:" + draw(st.uuids()).hex[:12],
        "source": draw(text),
        "kind": draw(st.sampled_from(["recording", "music_video", "live_video", "lyric_video", "other"])),
        "title": draw(text).strip() or "t",
        "artists": draw(st.lists(text, max_size=3)),
        "release": None,
        "duration_ms": draw(st.none() | st.integers(1000, 600_000)),
        "isrc": None,
        "year": draw(st.none() | st.integers(1950, 2025)),
        "language": None,
        "audio_ref": None,
        "image_ref": None,
        "extra": {},
        "produced_at_ms": 1,
    }


@st.composite
def garbage(draw: st.DrawFn) -> tuple[bytes, set[str]]:
    data = draw(st.binary(max_size=300))
    if data[:2] == MAGIC:
        data = b"\x00" + data
    return data, {"malformed_avro"}


@st.composite
def foreign_fingerprint(draw: st.DrawFn) -> tuple[bytes, set[str]]:
    fp = draw(st.binary(min_size=8, max_size=8).filter(lambda b: b != FINGERPRINT))
    return MAGIC + fp + draw(st.binary(max_size=200)), {"unknown_fingerprint"}


@st.composite
def truncated(draw: st.DrawFn) -> tuple[bytes, set[str]]:
    data = SCHEMA.encode(base_record(draw))
    cut = draw(st.integers(1, len(data) - 1))
    return data[:-cut], {"malformed_avro"}


@st.composite
def invalid_field(draw: st.DrawFn) -> tuple[bytes, set[str]]:
    record = base_record(draw)
    how = draw(
        st.sampled_from(
            [
                "empty_id",
                "empty_title",
                "huge_title",
                "many_artists",
                "negative_duration",
                "huge_duration",
                "old_year",
                "future_year",
                "control_chars",
                "unknown_kind",
                "huge_artist",
                "many_extra",
                "negative_time",
            ]
        )
    )
    reasons = {
        "empty_id": "missing_field",
        "empty_title": "missing_field",
        "huge_title": "field_too_long",
        "many_artists": "too_many_artists",
        "negative_duration": "absurd_value",
        "huge_duration": "absurd_value",
        "old_year": "absurd_value",
        "future_year": "absurd_value",
        "control_chars": "control_characters",
        "unknown_kind": "unknown_kind",
        "huge_artist": "field_too_long",
        "many_extra": "field_too_long",
        "negative_time": "absurd_value",
    }
    if how == "empty_id":
        record["event_id"] = draw(st.sampled_from(["", " ", "\t"]))
        reasons_for = {"missing_field", "control_characters"}
    else:
        reasons_for = {reasons[how]}
    if how == "empty_title":
        record["title"] = draw(st.sampled_from(["", "   "]))
    elif how == "huge_title":
        record["title"] = "x" * draw(st.integers(1001, 200_000))
    elif how == "many_artists":
        record["artists"] = ["a"] * draw(st.integers(51, 5000))
    elif how == "negative_duration":
        record["duration_ms"] = draw(st.integers(-(2**62), 0))
    elif how == "huge_duration":
        record["duration_ms"] = draw(st.integers(6 * 3600 * 1000 + 1, 2**62))
    elif how == "old_year":
        record["year"] = draw(st.integers(-(2**31), 1799))
    elif how == "future_year":
        record["year"] = draw(st.integers(2101, 2**31 - 1))
    elif how == "control_chars":
        record["title"] = "a" + draw(st.sampled_from(["\x00", "\x07", "\x1b[31m", "\x7f", "\r\n"])) + "b"
    elif how == "unknown_kind":
        record["kind"] = draw(
            text.filter(lambda s: s not in {"recording", "music_video", "live_video", "lyric_video", "other"})
        )
    elif how == "huge_artist":
        record["artists"] = ["y" * draw(st.integers(1001, 50_000))]
    elif how == "many_extra":
        record["extra"] = {f"k{i}": "v" for i in range(draw(st.integers(51, 500)))}
    elif how == "negative_time":
        record["produced_at_ms"] = draw(st.integers(-(2**62), -1))
    return SCHEMA.encode(record), reasons_for


@st.composite
def invalid_utf8(draw: st.DrawFn) -> tuple[bytes, set[str]]:
    record = base_record(draw)
    record["title"] = PLACEHOLDER
    data = SCHEMA.encode(record)
    bad = draw(
        st.sampled_from(
            [
                b"\xff\xfe\xfd\xfc\xfb\xfa\xf9\xf8",
                b"\xc3\x28\xa0\xa1\xe2\x28\xa1\x80",
                b"\xed\xa0\x80\xed\xbf\xbf\x80\x80",
            ]
        )
    )
    return data.replace(PLACEHOLDER.encode(), bad, 1), {"invalid_utf8", "malformed_avro"}


hostile_event = st.one_of(garbage(), foreign_fingerprint(), truncated(), invalid_field(), invalid_utf8())


# ---- hostile media files: valid events whose audio_ref / image_ref a worker must survive ----------


def _png_header_only(width: int, height: int) -> bytes:
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = chunk(b"IDAT", zlib.compress(b"\x00" * 64))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + idat + chunk(b"IEND", b"")


def wav_header(declared_bytes: int, body: bytes) -> bytes:
    import struct

    header = b"RIFF" + struct.pack("<I", 36 + declared_bytes) + b"WAVEfmt "
    header += struct.pack("<IHHIIHH", 16, 1, 1, 11025, 22050, 2, 16)
    return header + b"data" + struct.pack("<I", declared_bytes) + body


def hostile_media_files(folder: Path) -> list[tuple[str, str, set[str]]]:
    """``(reference, modality, reasons)``: files (and references) that must not stop a worker; the
    decision must name the modality and one of the reasons. Written under ``folder``."""
    import os

    folder.mkdir(parents=True, exist_ok=True)
    cases: list[tuple[str, str, set[str]]] = []

    def file(name: str, content: bytes) -> str:
        path = folder / name
        path.write_bytes(content)
        return str(path)

    failed = {"corrupt", "tool_failed", "too_short", "no_audio_stream"}
    cases.append((str(folder / "missing.flac"), "audio", {"missing"}))
    cases.append((str(folder), "audio", {"not_a_file"}))
    cases.append((file("empty.wav", b""), "audio", {"empty"}))
    cases.append((file("garbage.mp3", os.urandom(4096)), "audio", failed))
    cases.append((file("truncated.wav", wav_header(10_000_000, b"\x01\x02" * 50)), "audio", failed))
    # Would make ffmpeg read other files: refused by the format and protocol whitelists.
    cases.append((file("list.m3u8", b"#EXTM3U\n#EXTINF:10,\nfile:///etc/hostname\n"), "audio", failed))
    cases.append((file("concat.ffconcat", b"ffconcat version 1.0\nfile '/etc/hostname'\n"), "audio", failed))
    sparse = folder / "huge.ogg"  # 600 MiB declared, no disk used
    with sparse.open("wb") as f:
        f.truncate(600 << 20)
    cases.append((str(sparse), "audio", {"too_large"}))
    fifo = folder / "pipe.wav"  # opening it would block forever
    if not fifo.exists():
        os.mkfifo(fifo)
    cases.append((str(fifo), "audio", {"not_a_file"}))
    cases.append(("/dev/zero", "audio", {"not_a_file"}))
    cases.append(("http://127.0.0.1:9/track.mp3", "audio", {"unsupported_ref"}))
    cases.append(("file://elsewhere.example/track.mp3", "audio", {"unsupported_ref"}))
    cases.append((file("bomb.png", _png_header_only(12_000, 12_000)), "image", {"too_many_pixels"}))
    # Dimensions ffmpeg itself refuses to believe.
    cases.append((file("absurd.png", _png_header_only(1 << 30, 1 << 30)), "image", {"corrupt", "tool_failed"}))
    cases.append((file("sound.wav", wav_header(22050, b"\x00\x10" * 11025)), "image", {"no_image"}))
    cases.append((file("broken.jpg", b"\xff\xd8\xff\xe0" + os.urandom(2048)), "image", failed | {"no_image"}))
    return cases
