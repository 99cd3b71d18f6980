"""A synthetic demo catalogue that the project writes itself: invented songs, invented artists.

Each song is delivered by one to three stores, each with its own habits and noise (case, typos,
"feat." spellings, "Remastered 2011" suffixes, duration formats and jitter, dashed ISRCs, the
artist inside the title). Some songs also get versions (live, acoustic, remix: new recordings of
the same work; covers by another artist) and music or lyric videos (an entity of their own, with
the recording's work). The rows are written in the raw records.csv layout and parsed with the
same ``record_to_item`` as the golden datasets, so the demo exercises the real feed parser.

    python -m evaluation.sample_catalogue OUT_DIR [--seed 7] [--songs 90] [--jsonl items.jsonl]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from evaluation.datasets import TruthRow, record_to_item, write_dataset
from resolution.model import ContentItem

DATASET_NAME = "demo"
SOURCES = ("store-a", "store-b", "label-feed")

_ADJECTIVES = (
    "Silver", "Golden", "Quiet", "Electric", "Paper", "Broken", "Velvet", "Midnight", "Crimson", "Hollow",
    "Distant", "Neon", "Frozen", "Burning", "Gentle", "Restless", "Lonely", "Painted", "Northern", "Secret",
    "Falling", "Endless", "Amber", "Copper", "Glass", "Summer", "Winter", "Lucky", "Wandering", "Sleepless",
)  # fmt: skip
_NOUNS = (
    "Harbour", "River", "Highway", "Garden", "Mirror", "Horizon", "Letter", "Satellite", "Engine", "Sparrow",
    "Orchard", "Tide", "Window", "Compass", "Lighthouse", "Parade", "Echo", "Avenue", "Skyline", "Meadow",
    "Thunder", "Carousel", "Lantern", "Station", "Island", "Ribbon", "Canyon", "Signal", "Balcony", "Comet",
)  # fmt: skip
_FIRST_NAMES = (
    "Mara", "Otis", "Juno", "Ivo", "Selma", "Arlo", "Petra", "Linus", "Noor", "Casimir", "Wren", "Odile",
    "Teodor", "Ilse", "Bram", "Yara", "Fenna", "Rafe", "Lotte", "Emeric",
)  # fmt: skip
_LAST_NAMES = (
    "Quill", "Fenwick", "Hale", "Marsh", "Ardent", "Colewood", "Brightwater", "Vance", "Holloway", "Pike",
    "Ashdown", "Merriweather", "Strand", "Kettering", "Lowe", "Danforth", "Whitlock", "Orme", "Sallow", "Birch",
)  # fmt: skip
_TITLE_TEMPLATES = (
    "{adj} {noun}", "{adj} {noun}", "{adj} {noun}", "Dancing on the {noun}", "When the {noun} Calls",
    "Meet Me at the {noun}", "{adj} {noun} Blues", "Don't Let the {noun} Go", "Letters to the {noun}",
    "The {noun} Song", "{noun} in {adj} Light", "Under the {adj} {noun}",
)  # fmt: skip
# Invented non-English songs, so that accents and non-Latin scripts go through the whole path.
_WORLD_SONGS = (
    ("Canción del Faro", "Lucía Peñalver", "es"),
    ("Été sans fin", "Céline Marchand", "fr"),
    ("Sommernächte am See", "Jürgen Falkenrath", "de"),
    ("Полярная звезда", "Маяк и Ветер", "ru"),
    ("夏の終わりの灯台", "青い灯台", "ja"),
    ("Noite de São João", "Inês Magalhães", "pt"),
)
_LANGUAGE_NAMES = {"en": "English", "es": "Spanish", "fr": "French", "de": "German", "ru": "Russian", "ja": "Japanese"}
_LANGUAGE_NAMES |= {"pt": "Portuguese"}
_VENUES = ("the Roundhouse", "Red Rocks", "the Paradiso", "Glastonbury", "the Royal Albert Hall", "the Fillmore")
_REMIXERS = ("DJ Kestrel", "Nightjar", "Lumo", "Oskar Drift", "Vanta Twins")
_COUNTRIES = ("GB", "US", "DE", "FR", "SE", "NL")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_SAME_TITLE_SONGS = 3  # songs that reuse an earlier title with another artist: look-alikes, not matches


@dataclass(frozen=True)
class _Recording:
    """One entity to deliver: its display title (tags included), people and true values."""

    entity_id: str
    work_id: str
    base_title: str
    tag_suffix: str  # appended after noise so that typos never hit the version tag
    artist: str
    featured: str | None
    duration_s: int
    year: int
    isrc: str | None
    release: str
    language: str
    kind: str = "recording"


def _plural(noun: str) -> str:
    if noun.endswith(("s", "o")):
        return noun + "es"
    return noun[:-1] + "ies" if noun.endswith("y") and noun[-2] not in "aeiou" else noun + "s"


def _invent_artist(rng: random.Random) -> str:
    if rng.random() < 0.45:
        return f"The {rng.choice(_ADJECTIVES)} {_plural(rng.choice(_NOUNS))}"
    return f"{rng.choice(_FIRST_NAMES)} {rng.choice(_LAST_NAMES)}"


def _invent_title(rng: random.Random) -> str:
    return rng.choice(_TITLE_TEMPLATES).format(adj=rng.choice(_ADJECTIVES), noun=rng.choice(_NOUNS))


def _typo(text: str, rng: random.Random) -> str:
    """Swap two adjacent ASCII letters or drop one, as hand-keyed feeds do."""
    positions = [i for i in range(len(text) - 1) if text[i].isascii() and text[i].isalpha() and text[i + 1].isalpha()]
    if not positions:
        return text
    i = rng.choice(positions)
    if rng.random() < 0.5:
        return text[:i] + text[i + 1] + text[i] + text[i + 2 :]
    return text[:i] + text[i + 1 :]


def _case_noise(text: str, rng: random.Random) -> str:
    return rng.choice((str.upper, str.lower, str.title))(text)


def _punctuation_noise(text: str, rng: random.Random) -> str:
    choice = rng.randrange(3)
    if choice == 0:
        return text.replace("'", "")
    if choice == 1:
        return text.replace(" and ", " & ") if " and " in text else text + "!"
    return text.replace(" ", "  ", 1)


def _clock(seconds: int) -> str:
    return f"{seconds // 60}:{seconds % 60:02d}"


def _dashed_isrc(isrc: str) -> str:
    return f"{isrc[:2]}-{isrc[2:5]}-{isrc[5:7]}-{isrc[7:]}"


def _row(rec: _Recording, source: str, rng: random.Random) -> dict[str, str]:
    """One delivery of a recording in the raw layout, in the given store's style."""
    title = rec.base_title
    artist = rec.artist
    duration = ""
    year = ""
    isrc = ""
    language = ""
    release = rec.release
    extra: dict[str, str] = {}
    featured_in_title = False
    if source == "store-a":
        featured_in_title = rng.random() < 0.5
        if rec.featured and not featured_in_title:
            artist = f"{artist} feat. {rec.featured}"
        duration = _clock(rec.duration_s)
        year = str(rec.year)
        isrc = rec.isrc if rec.isrc and rng.random() < 0.6 else ""
        language = _LANGUAGE_NAMES.get(rec.language, "")
        extra = {"sku": f"A-{rng.randrange(10**6):06d}"}
    elif source == "store-b":
        if rng.random() < 0.3:
            title = _case_noise(title, rng)
        if rng.random() < 0.15:
            title = _typo(title, rng)
        if rng.random() < 0.2:
            title = _punctuation_noise(title, rng)
        featured_in_title = rng.random() < 0.6
        if rec.featured and not featured_in_title:
            artist = f"{artist} ft. {rec.featured}"
        duration = str(rec.duration_s + rng.randint(-2, 2))
        year = f"'{rec.year % 100:02d}"
        isrc = _dashed_isrc(rec.isrc) if rec.isrc and rng.random() < 0.2 else ""
        language = rng.choice(("", _LANGUAGE_NAMES.get(rec.language, "")[:3] + "."))
        release = "" if rng.random() < 0.3 else release
        extra = {"price": rng.choice(("$ 0.99", "$ 1.29"))}
    else:  # label-feed
        if rec.featured:
            artist = f"{artist} featuring {rec.featured}"
        if rec.kind == "recording" and not rec.tag_suffix and rng.random() < 0.35:
            remaster_year = max(rec.year + 5, 2009) if rec.year < 2015 else rec.year
            title += rng.choice((f" - Remastered {remaster_year}", f" ({remaster_year} Remaster)"))
            year = f"{remaster_year}-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}"
        else:
            year = f"{rng.randint(1, 28)}-{rng.choice(_MONTHS)}-{rec.year % 100:02d}"
        if rng.random() < 0.5:
            duration = str(rec.duration_s * 1000 + rng.randint(-900, 900))
        else:
            duration = f"{rec.duration_s / 60:.3f}"
        isrc = rec.isrc if rec.isrc and rng.random() < 0.9 else ""
        language = rec.language
        extra = {"label": f"{rec.artist.split()[-1]} Records"}
    if rec.featured and featured_in_title:
        title += rng.choice((f" (feat. {rec.featured})", f" [ft. {rec.featured}]", f" feat. {rec.featured}"))
    title += rec.tag_suffix
    if source == "store-b" and rec.kind == "recording" and rng.random() < 0.25:
        title, artist = f"{artist} - {title}", ""  # the artist inside the title, artist field empty
    kind = rec.kind
    if kind == "music_video" and source == "store-b" and rng.random() < 0.5:
        kind = "video"  # some feeds only say "video"
    return {
        "source": source,
        "kind": kind,
        "title": title,
        "artist": artist,
        "release": release,
        "duration": duration,
        "year": year,
        "language": language,
        "isrc": isrc,
        "extra": json.dumps(extra, ensure_ascii=False),
    }


def _versions(song: _Recording, index: int, rng: random.Random, artists: Sequence[str]) -> list[_Recording]:
    """New recordings of the song's work: live, acoustic, remix by the same artist, or a cover."""
    family = rng.choice(("live", "acoustic", "remix", "cover", "cover"))
    entity_id = f"e{index:03d}-{family}"
    base = replace(song, entity_id=entity_id, isrc=None, release="", featured=None)
    if family == "live":
        venue = rng.choice(_VENUES)
        live_year = min(song.year + 3, 2024)
        suffix = rng.choice((f" (Live at {venue}, {live_year})", f" - Live at {venue}", " (Live)"))
        return [replace(base, tag_suffix=suffix, duration_s=song.duration_s + rng.randint(5, 40), year=live_year)]
    if family == "acoustic":
        suffix = rng.choice((" (Acoustic)", " - Acoustic Version", " (Acoustic Session)"))
        return [replace(base, tag_suffix=suffix, duration_s=song.duration_s + rng.randint(-25, 10))]
    if family == "remix":
        remixer = rng.choice(_REMIXERS)
        suffix = rng.choice((f" ({remixer} Remix)", f" - {remixer} Remix", f" [{remixer} Extended Mix]"))
        return [replace(base, tag_suffix=suffix, duration_s=song.duration_s + rng.randint(20, 120))]
    other = rng.choice([a for a in artists if a != song.artist])
    suffix = " (Cover)" if rng.random() < 0.3 else ""
    return [
        replace(
            base,
            artist=other,
            tag_suffix=suffix,
            duration_s=song.duration_s + rng.randint(-30, 30),
            year=min(song.year + rng.randint(1, 20), 2024),
        )
    ]


def _video(song: _Recording, index: int, rng: random.Random) -> _Recording:
    """A music or lyric video of the recording: its own entity, the recording's work."""
    if rng.random() < 0.6:
        kind, suffix = "music_video", rng.choice((" (Official Video)", " [Official Music Video]", " - Official Video"))
    else:
        kind, suffix = "lyric_video", rng.choice((" (Lyric Video)", " (Official Lyric Video)", " - Lyric Video"))
    return replace(
        song,
        entity_id=f"e{index:03d}-{kind}",
        kind=kind,
        tag_suffix=suffix,
        isrc=None,
        release="",
        duration_s=song.duration_s + rng.randint(-10, 10),
    )


def _songs(rng: random.Random, count: int) -> list[_Recording]:
    artists = [_invent_artist(rng) for _ in range(max(8, count // 3))]
    songs: list[_Recording] = []
    seen: set[tuple[str, str]] = set()
    same_title = {count * (k + 1) // (_SAME_TITLE_SONGS + 1) for k in range(_SAME_TITLE_SONGS)} - {0}
    for index in range(count):
        language = "en"
        if index % 2 == 1 and index // 2 < len(_WORLD_SONGS):
            title, artist, language = _WORLD_SONGS[index // 2]
        elif index in same_title:
            title, artist = songs[rng.randrange(len(songs))].base_title, rng.choice(artists)
        else:
            title, artist = _invent_title(rng), rng.choice(artists)
        while (title.casefold(), artist) in seen:
            title = _invent_title(rng)
        seen.add((title.casefold(), artist))
        year = rng.randint(1972, 2023)
        registrant = "".join(c for c in artist.upper() if c.isascii() and c.isalnum())[:3].ljust(3, "Z")
        songs.append(
            _Recording(
                entity_id=f"e{index:03d}",
                work_id=f"w{index:03d}",
                base_title=title,
                tag_suffix="",
                artist=artist,
                featured=rng.choice([a for a in artists if a != artist]) if rng.random() < 0.2 else None,
                duration_s=rng.randint(150, 330),
                year=year,
                isrc=f"{rng.choice(_COUNTRIES)}{registrant}{year % 100:02d}{index:03d}00",
                release=rng.choice((title, f"{rng.choice(_ADJECTIVES)} {_plural(rng.choice(_NOUNS))}")),
                language=language,
            )
        )
    return songs


def generate_catalogue(seed: int = 7, songs: int = 90) -> tuple[list[ContentItem], dict[str, TruthRow]]:
    """About ``3.3 * songs`` items and their truth (entity = recording, work = composition), in a
    seeded shuffled order with ids ``d0001``...; the same seed always gives the same catalogue."""
    rng = random.Random(seed)
    originals = _songs(rng, songs)
    artists = sorted({s.artist for s in originals})
    deliveries: list[tuple[_Recording, str]] = []
    for index, song in enumerate(originals):
        recordings = [song]
        if rng.random() < 0.3:
            recordings += _versions(song, index, rng, artists)
        if rng.random() < 0.35:
            recordings.append(_video(song, index, rng))
        for rec in recordings:
            if rec.kind == "recording" and rec is song:
                sources = rng.sample(SOURCES, rng.choice((1, 2, 2, 3, 3, 3)))
            elif rec.kind == "recording":
                sources = rng.sample(SOURCES, rng.choice((1, 1, 2)))
            else:
                sources = rng.sample(("store-b", "label-feed"), rng.choice((1, 1, 2)))
            deliveries.extend((rec, source) for source in sources)
    rng.shuffle(deliveries)
    items: list[ContentItem] = []
    truth: dict[str, TruthRow] = {}
    for number, (rec, source) in enumerate(deliveries, start=1):
        record_id = f"d{number:04d}"
        row = _row(rec, source, rng) | {"record_id": record_id}
        items.append(record_to_item(row, DATASET_NAME))
        truth[record_id] = TruthRow(rec.entity_id, rec.work_id)
    return items, truth


def write_jsonl(items: Iterable[ContentItem], path: Path) -> None:
    """One ``ContentItem.to_record()`` per line, for replaying as a stream."""
    with Path(path).open("w", encoding="utf-8") as handle:
        for item in items:
            handle.write(json.dumps(item.to_record(), ensure_ascii=False, sort_keys=True) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write the synthetic demo catalogue as a dataset folder.")
    parser.add_argument("out_dir", type=Path, help="folder to write records.csv and truth.csv into")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--songs", type=int, default=90)
    parser.add_argument("--jsonl", type=Path, default=None, help="also write the items as JSON lines here")
    args = parser.parse_args(argv)
    items, truth = generate_catalogue(seed=args.seed, songs=args.songs)
    write_dataset(args.out_dir, items, truth)
    if args.jsonl is not None:
        write_jsonl(items, args.jsonl)
    entities = len({row.entity_id for row in truth.values()})
    works = len({row.work_id for row in truth.values()})
    print(f"wrote {len(items)} items, {entities} entities, {works} works to {args.out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
