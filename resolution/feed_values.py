"""Reading raw feed values: durations and release years as feeds send them.

Durations come as seconds, minutes, ``mm:ss`` or milliseconds; years as ``'75``, ``1996.0`` or
dates. Dataset loading reads the feeds' columns with these, and ``normalise`` reads the values
that some feeds glue into titles.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable

from settings import WorkerSettings

_MIN_DURATION_MS = 1_000
_MAX_DURATION_MS = WorkerSettings.max_duration_ms  # the same bound as an event's
_MS_THRESHOLD = 30_000  # a bare number above this is milliseconds: no track runs 8+ hours
_MINUTES_BELOW = 30  # a decimal below this is minutes: "3.663" is a song, not 3.6 s

_NULL_WORDS = frozenset({"", "null", "none", "nan", "unknown", "unk", "na", "n/a", "-", "--", "?"})
_CLOCK_RE = re.compile(r"^(?:(\d{1,2}):)?(\d{1,3}):(\d{1,2}(?:\.\d+)?)$")
_MIN_SEC_RE = re.compile(r"^(?:(\d{1,3})m(?:in)?)?-?(?:(\d{1,2})s(?:ec)?)?$")
_NUMBER_RE = re.compile(r"^(?:\d+(?:\.\d*)?|\.\d+)$")
# Feeds that went through OCR or hand typing swap O for 0 and | for 1 ("O3:35", "|993").
_DIGIT_LOOKALIKES = str.maketrans({"O": "0", "o": "0", "|": "1"})


def _is_null(text: str) -> bool:
    return text.strip().casefold().strip(".") in _NULL_WORDS


def _duration_in_range(ms: float) -> int | None:
    value = round(ms)
    return value if _MIN_DURATION_MS < value < _MAX_DURATION_MS else None


def _number_to_ms(value: float, decimal: bool, whole_ms: bool = False) -> int | None:
    if value < 0 or math.isnan(value) or math.isinf(value):
        return None
    if value > _MS_THRESHOLD or (whole_ms and not decimal):
        return _duration_in_range(value)
    if decimal and value < _MINUTES_BELOW:
        return _duration_in_range(value * 60_000)
    return _duration_in_range(value * 1000)


def parse_duration_ms(raw: str | float | int | None, whole_numbers_in_ms: bool = False) -> int | None:
    """A duration in milliseconds from whatever a feed sent, or None when it cannot be trusted.

    Accepted: seconds (``219``, ``219.5``), minutes as a decimal below 30 (``3.663`` -> 219780;
    in text a decimal point is enough, so ``4.0`` is four minutes), ``mm:ss`` / ``h:mm:ss``
    (fractions of a second allowed), ``4m 36sec``, and milliseconds (any number above 30000).
    Whitespace inside the value is dropped first because some feeds scatter spaces ("02 :55").
    Results outside the open interval (1 s, 6 h) are None. ``whole_numbers_in_ms``: the feed is
    known to send milliseconds (``feed_counts_milliseconds``), so "7000" is 7 s, not 7000 s.
    """
    if raw is None or isinstance(raw, bool):
        return None
    if isinstance(raw, int | float):
        decimal = isinstance(raw, float) and not float(raw).is_integer()
        return _number_to_ms(float(raw), decimal, whole_numbers_in_ms)
    text = re.sub(r"\s+", "", str(raw))
    if _is_null(text) or text.startswith("-"):
        return None
    if re.fullmatch(r"[\dOo|.:]+", text) and re.search(r"\d", text):
        text = text.translate(_DIGIT_LOOKALIKES)
    clock = _CLOCK_RE.match(text)
    if clock:
        hours, minutes, seconds = int(clock.group(1) or 0), int(clock.group(2)), float(clock.group(3))
        if seconds >= 60 or (clock.group(1) is not None and minutes >= 60):
            return None
        return _duration_in_range(((hours * 60 + minutes) * 60 + seconds) * 1000)
    lowered = text.casefold()
    min_sec = _MIN_SEC_RE.match(lowered)
    if min_sec and (min_sec.group(1) or min_sec.group(2)) and ("m" in lowered or "s" in lowered):
        minutes, seconds = int(min_sec.group(1) or 0), int(min_sec.group(2) or 0)
        if seconds >= 60:
            return None
        return _duration_in_range((minutes * 60 + seconds) * 1000)
    if _NUMBER_RE.match(text):
        return _number_to_ms(float(text), "." in text, whole_numbers_in_ms)
    return None


_WHOLE_NUMBER_RE = re.compile(r"^\d+$")


def feed_counts_milliseconds(raw_durations: Iterable[str]) -> bool:
    """Whether one feed's durations are milliseconds: most of its whole-number durations are
    above what seconds can be (8+ hours). A feed keeps one unit, and its short tracks ("7000",
    a 7 s jingle) read as seconds would be hours long."""
    numbers = [int(t) for t in (re.sub(r"\s+", "", r) for r in raw_durations) if _WHOLE_NUMBER_RE.match(t)]
    return bool(numbers) and sum(n > _MS_THRESHOLD for n in numbers) > len(numbers) / 2


# Narrower than an event's accepted years (settings: min_year, max_year): the feeds' corrupt
# cells lie just outside it (2094 for 1994, 2032, 1889) and read as unknown, not as a year.
_MIN_YEAR, _MAX_YEAR = 1900, 2030
_MONTHS = {
    name: number
    for number, names in enumerate(
        [
            ("jan", "january"),
            ("feb", "february"),
            ("mar", "march"),
            ("apr", "april"),
            ("may",),
            ("jun", "june"),
            ("jul", "july"),
            ("aug", "august"),
            ("sep", "sept", "september"),
            ("oct", "october"),
            ("nov", "november"),
            ("dec", "december"),
        ],
        start=1,
    )
    for name in names
}
_ISO_DATE_RE = re.compile(r"^(\d{4})[-/.](\d{1,2})(?:[-/.](\d{1,2}))?(?:[T ].*)?$")
_DAY_MON_YEAR_RE = re.compile(r"^(\d{1,2})[- ]([A-Za-z]{3,9})\.?[- ](\d{2}|\d{4})$")
_MON_DAY_YEAR_RE = re.compile(r"^([A-Za-z]{3,9})\.?\s+(\d{1,2})\s*,?\s*(\d{4})$")
_NUMERIC_DATE_RE = re.compile(r"^\d{1,2}[/.]\d{1,2}[/.](\d{4})$")


def _two_digit_year(value: int) -> int:
    # Catalogues reach back to the 1930s at most for two-digit years; <= 30 means this century.
    return 2000 + value if value <= 30 else 1900 + value


def _valid_year(value: int) -> int | None:
    return value if _MIN_YEAR <= value <= _MAX_YEAR else None


def parse_year(raw: str | float | int | None) -> int | None:
    """A release year from ``1996``, ``'75``, ``75``, ``1996.0``, ``2011-03-04``, ``18-May-15``,
    ``May 18 , 2015``; None outside [1900, 2030] (corrupt values such as ``2901``) or unreadable.
    """
    if raw is None or isinstance(raw, bool):
        return None
    if isinstance(raw, int | float):
        if isinstance(raw, float) and (math.isnan(raw) or not raw.is_integer()):
            return None
        value = int(raw)
        return _valid_year(_two_digit_year(value) if 0 <= value <= 99 else value)
    text = str(raw).strip()
    if _is_null(text):
        return None
    iso = _ISO_DATE_RE.match(text)
    if iso:
        return _valid_year(int(iso.group(1)))
    day_mon = _DAY_MON_YEAR_RE.match(text)
    if day_mon and day_mon.group(2).casefold() in _MONTHS:
        year = int(day_mon.group(3))
        return _valid_year(_two_digit_year(year) if len(day_mon.group(3)) == 2 else year)
    mon_day = _MON_DAY_YEAR_RE.match(text)
    if mon_day and mon_day.group(1).casefold() in _MONTHS:
        return _valid_year(int(mon_day.group(3)))
    numeric = _NUMERIC_DATE_RE.match(text)
    if numeric:
        return _valid_year(int(numeric.group(1)))
    compact = re.sub(r"\s+", "", text)  # noisy feeds insert spaces: "19 98", "' 03"
    if re.fullmatch(r"[\d'Oo|]+(?:\.0+)?", compact) and re.search(r"\d", compact):
        compact = compact.translate(_DIGIT_LOOKALIKES)
    short = re.fullmatch(r"['’‘]?(\d{2})", compact)
    if short:
        return _valid_year(_two_digit_year(int(short.group(1))))
    full = re.fullmatch(r"(\d{4})(?:\.0+)?", compact)
    if full:
        return _valid_year(int(full.group(1)))
    return None


# --------------------------------------------------------------------------------------------
# Cells shifted into the wrong columns
# --------------------------------------------------------------------------------------------

# The cells ``repair_shifted_fields`` reads and writes: a record's columns, and the two ids that
# feeds carry beside them (in this layout inside ``extra``).
SHIFTABLE_CELLS = ("title", "artist", "release", "duration", "year", "source_key", "track_number")
_TRACK_NUMBER_CELL_RE = re.compile(r"^(?:[A-Za-z]?\d{1,3}|\d?[A-Za-z]\d{1,2})$")  # "009", "4", "B1", "0A3"
# A feed's own id for a record: one word of 6+ characters with a run of 4+ digits ("MBox3093886-HH",
# "WoM14737942", "169013-A068", "9479571").
_SOURCE_KEY_CELL_RE = re.compile(r"^(?=\S*\d{4})[\w-]{6,}$")
_FOUR_DIGIT_YEAR_RE = re.compile(r"^\d{4}$")


def _is_source_key(cell: str) -> bool:
    return bool(_SOURCE_KEY_CELL_RE.match(cell.strip()))


def _is_text(cell: str) -> bool:
    """A name or a title: two letters or more, and neither a duration, an id nor a null word."""
    text = cell.strip()
    return (
        sum(ch.isalpha() for ch in text) >= 2
        and not _is_null(text)
        and not _is_source_key(text)
        and parse_duration_ms(text) is None
    )


def _is_written_duration(cell: str) -> bool:
    """A duration in a duration's own notation ("03:10", "3m 2sec"), not a bare number that
    could as well be a year or a track number."""
    text = cell.strip()
    return parse_duration_ms(text) is not None and not re.fullmatch(r"[\d\s]+", text)


def repair_shifted_fields(cells: dict[str, str]) -> dict[str, str]:
    """The cells of a record whose values were written into the wrong columns, put back by what
    each value looks like; any other record's cells unchanged (a copy either way).

    Three shapes occur in multi-source feeds (each source of musicbrainz-20k has them):

    - the whole row rotated: the track number in the title, the duration in the artist, the
      artist in the release, the title in the duration, the release in the year, the source key
      in the track number and the source key empty (the year is lost);
    - the title swapped with the duration or the year: a duration or a year where the title
      belongs, and the title in the duration column;
    - the source key swapped with the artist, the release or the duration: an id where a name
      belongs, and the name (or the duration) in the source key.

    A value is moved only when both cells of the move look wrong where they are, so a title that
    happens to be "1999" or an artist named by digits stays put.
    """
    c = {name: (cells.get(name) or "") for name in SHIFTABLE_CELLS}
    out = dict(c)
    if (
        not c["source_key"].strip()
        and _is_source_key(c["track_number"])
        and _TRACK_NUMBER_CELL_RE.match(c["title"].strip())
        and _is_text(c["duration"])
    ):
        out.update(
            title=c["duration"],
            artist=c["release"],
            release=c["year"],
            duration=c["artist"],
            year="",
            source_key=c["track_number"],
            track_number=c["title"],
        )
        return out
    if _is_text(c["duration"]):
        title, year = c["title"].strip(), c["year"].strip()
        if _is_written_duration(title) and (not year or parse_year(year) is not None):
            out.update(title=c["duration"], duration=c["title"])
        elif _FOUR_DIGIT_YEAR_RE.match(title) and parse_year(title) and _is_written_duration(year):
            out.update(title=c["duration"], duration=c["year"], year=c["title"])
        if out != c:
            return out
    key = c["source_key"]
    for name in ("artist", "release"):
        if _is_source_key(c[name]) and _is_text(key):
            out.update({name: key, "source_key": c[name]})
            return out
    if _is_source_key(c["duration"]) and parse_duration_ms(c["duration"]) is None and parse_duration_ms(key):
        out.update(duration=key, source_key=c["duration"])
    return out
