"""Reading and writing labelled datasets in the shared layout (records.csv, truth.csv, pairs.csv).

The layout is described in ``../shared/data/README.md``: raw, messy feed values per record, a
clustering ground truth and, for pairwise sets, labelled pairs. ``record_to_item`` is the feed
parser for that layout; the datasets themselves are never copied into the repository.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from resolution.feed_values import (
    SHIFTABLE_CELLS,
    feed_counts_milliseconds,
    parse_duration_ms,
    parse_year,
    repair_shifted_fields,
)
from resolution.model import ContentItem
from resolution.normalise import FEATURED_EXTRA_KEY, normalise_isrc, split_artist_from_title, split_artists

RECORD_COLUMNS = (
    "record_id",
    "source",
    "kind",
    "title",
    "artist",
    "release",
    "duration",
    "year",
    "language",
    "isrc",
    "extra",
)
MAX_TITLE_CHARS = 1000
KINDS = frozenset({"recording", "music_video", "live_video", "lyric_video"})
_KIND_ALIASES = {"video": "music_video"}
# Some sets hide a field on one side of a pair ("[MASK]"); it means absent, not a title.
_MASKED = "[MASK]"
_VIDEO_TITLE_KEYS = ("video title", "video_title")


@dataclass(frozen=True)
class TruthRow:
    entity_id: str
    work_id: str | None = None


@dataclass(frozen=True)
class LabelledPair:
    left_id: str
    right_id: str
    label: int
    split: str


@dataclass
class Dataset:
    name: str
    path: Path
    items: list[ContentItem]
    truth: dict[str, TruthRow] | None = None
    pairs: list[LabelledPair] | None = None


def _extra_from_json(raw: str) -> dict[str, str]:
    try:
        data = json.loads(raw) if raw and raw.strip() else {}
    except json.JSONDecodeError:
        return {}
    if not isinstance(data, dict):
        return {}
    out: dict[str, str] = {}
    for key, value in data.items():
        if value is None:
            out[str(key)] = ""
        elif isinstance(value, dict | list):
            out[str(key)] = json.dumps(value, ensure_ascii=False, sort_keys=True)
        else:
            out[str(key)] = str(value)
    return out


def _field(row: dict[str, str], name: str) -> str:
    value = (row.get(name) or "").strip()
    return "" if value == _MASKED else value


def _unshifted(row: dict[str, str], extra: dict[str, str]) -> dict[str, str]:
    """The row with cells written into the wrong columns put back (``repair_shifted_fields``);
    the source key and track number travel in ``extra`` and are put back there."""
    cells = {name: (row.get(name) if name in RECORD_COLUMNS else extra.get(name)) or "" for name in SHIFTABLE_CELLS}
    repaired = repair_shifted_fields(cells)
    if repaired == cells:
        return row
    for name in ("source_key", "track_number"):
        if name in extra or repaired[name]:
            extra[name] = repaired[name]
    return {**row, **{name: repaired[name] for name in SHIFTABLE_CELLS if name in RECORD_COLUMNS}}


def record_to_item(row: dict[str, str], dataset: str, whole_numbers_in_ms: bool = False) -> ContentItem:
    """One records.csv row as a ``ContentItem``: cells shifted into other columns put back, raw
    durations (``whole_numbers_in_ms``: the row's feed sends milliseconds), years and ISRCs
    parsed, artists split into primary then featured (featured names also listed in
    ``extra["featured_artists"]`` so that normalisation can tell them apart), the artist taken
    out of an "Artist - Title" title when the artist field is empty. A masked title falls back
    to ``extra["video title"]``.
    """
    extra = _extra_from_json(row.get("extra") or "")
    row = _unshifted(row, extra)
    record_id = _field(row, "record_id")
    extra.pop(FEATURED_EXTRA_KEY, None)  # derived below; a stale copy must not survive a round trip
    title = _field(row, "title")
    if not title:
        title = next((extra[k].strip() for k in _VIDEO_TITLE_KEYS if extra.get(k, "").strip()), "")
    artist = _field(row, "artist")
    if not artist:
        title, artist = split_artist_from_title(title, artist)
    primary, featured = split_artists(artist)
    if featured:
        extra[FEATURED_EXTRA_KEY] = "; ".join(featured)
    raw_kind = _field(row, "kind").casefold()
    kind = _KIND_ALIASES.get(raw_kind, raw_kind)
    return ContentItem(
        event_id=f"{dataset}:{record_id}",
        content_id=record_id,
        source=_field(row, "source"),
        kind=kind if kind in KINDS else "other",
        title=title.strip()[:MAX_TITLE_CHARS],
        artists=tuple(primary + featured),
        release=_field(row, "release") or None,
        duration_ms=parse_duration_ms(_field(row, "duration"), whole_numbers_in_ms),
        isrc=normalise_isrc(_field(row, "isrc")),
        year=parse_year(_field(row, "year")),
        language=_field(row, "language") or None,
        # Media references travel in ``extra`` in this layout (the generated media set writes them).
        audio_ref=extra.pop("audio_ref", None) or None,
        image_ref=extra.pop("image_ref", None) or None,
        extra=extra,
    )


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def load_dataset(path: Path, limit: int | None = None) -> Dataset:
    """Load a dataset folder. With ``limit``, only the first ``limit`` records are kept, and
    truth and pairs are cut down to those records (a pair needs both of its ends)."""
    path = Path(path)
    name = path.name
    rows = _read_csv(path / "records.csv")
    if limit is not None:
        rows = rows[:limit]
    # A feed keeps one duration unit: read each source's whole numbers in the unit most of its rows show.
    durations: dict[str, list[str]] = {}
    for row in rows:
        durations.setdefault(_field(row, "source"), []).append(_field(row, "duration"))
    in_ms = {source: feed_counts_milliseconds(values) for source, values in durations.items()}
    items = [record_to_item(row, name, in_ms[_field(row, "source")]) for row in rows]
    ids = {item.content_id for item in items}
    truth: dict[str, TruthRow] | None = None
    if (path / "truth.csv").exists():
        truth = {}
        for row in _read_csv(path / "truth.csv"):
            record_id = row["record_id"].strip()
            if record_id in ids:
                truth[record_id] = TruthRow(row["entity_id"].strip(), (row.get("work_id") or "").strip() or None)
    pairs: list[LabelledPair] | None = None
    if (path / "pairs.csv").exists():
        pairs = [
            LabelledPair(row["left_id"].strip(), row["right_id"].strip(), int(row["label"]), row["split"].strip())
            for row in _read_csv(path / "pairs.csv")
            if row["left_id"].strip() in ids and row["right_id"].strip() in ids
        ]
    return Dataset(name=name, path=path, items=items, truth=truth, pairs=pairs)


def format_duration(duration_ms: int | None) -> str:
    """``m:ss`` or ``h:mm:ss``, with milliseconds only when there are any, so that
    ``parse_duration_ms`` reads back exactly the same value."""
    if duration_ms is None:
        return ""
    seconds, millis = divmod(duration_ms, 1000)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
    return f"{text}.{millis:03d}" if millis else text


def item_to_row(item: ContentItem) -> dict[str, str]:
    """The records.csv row that ``record_to_item`` turns back into this item."""
    featured_names = split_artists(item.extra.get(FEATURED_EXTRA_KEY, ""))[0]
    featured_keys = {name.casefold() for name in featured_names}
    primary = [a for a in item.artists if a.casefold() not in featured_keys]
    featured = [a for a in item.artists if a.casefold() in featured_keys]
    artist = ", ".join(primary) + (" feat. " + ", ".join(featured) if featured else "")
    extra: dict[str, Any] = {k: v for k, v in item.extra.items() if k != FEATURED_EXTRA_KEY}
    return {
        "record_id": item.content_id,
        "source": item.source,
        "kind": item.kind,
        "title": item.title,
        "artist": artist,
        "release": item.release or "",
        "duration": format_duration(item.duration_ms),
        "year": "" if item.year is None else str(item.year),
        "language": item.language or "",
        "isrc": item.isrc or "",
        "extra": json.dumps(extra, ensure_ascii=False, sort_keys=True),
    }


def write_records(path: Path, rows: Iterable[dict[str, str]]) -> None:
    """records.csv from rows that are already in the raw layout."""
    with Path(path).open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(RECORD_COLUMNS))
        writer.writeheader()
        for row in rows:
            writer.writerow({column: row.get(column, "") for column in RECORD_COLUMNS})


def write_dataset(
    path: Path,
    items: Iterable[ContentItem],
    truth: dict[str, TruthRow],
    pairs: Iterable[LabelledPair] | None = None,
) -> None:
    """Write a dataset folder in the shared layout; ``load_dataset`` reads it back."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    write_records(path / "records.csv", (item_to_row(item) for item in items))
    with_work = any(row.work_id is not None for row in truth.values())
    with (path / "truth.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["record_id", "entity_id", "work_id"] if with_work else ["record_id", "entity_id"])
        for record_id, row in truth.items():
            writer.writerow([record_id, row.entity_id, row.work_id or ""] if with_work else [record_id, row.entity_id])
    if pairs is not None:
        with (path / "pairs.csv").open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["left_id", "right_id", "label", "split"])
            for pair in pairs:
                writer.writerow([pair.left_id, pair.right_id, pair.label, pair.split])
