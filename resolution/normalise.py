"""Normalising content items for matching.

Feeds disagree on everything: artists inside titles, featured artists in either field, and version
tags ("Live at ...", "Remastered 2011", "(Official Video)") glued to titles. This module turns
all of that into one comparable shape, ``NormalisedItem``, which is what the matcher, the
blocking keys and the text encoder see. Raw durations and years are read by ``feed_values``.
"""

from __future__ import annotations

import difflib
import functools
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from resolution.feed_values import parse_duration_ms, parse_year
from resolution.model import ContentItem

# --------------------------------------------------------------------------------------------
# Text
# --------------------------------------------------------------------------------------------

# Latin letters that NFD does not decompose into base + mark.
_LATIN_FOLD = str.maketrans({"ø": "o", "đ": "d", "ł": "l", "æ": "ae", "œ": "oe", "þ": "th", "ð": "d", "ı": "i"})
_APOSTROPHES = "'’‘`´"


def _is_latin_base(ch: str) -> bool:
    code = ord(ch)
    return ch.isalpha() and (code < 0x250 or 0x1E00 <= code <= 0x1EFF)


def _strip_latin_marks(text: str) -> str:
    """Drop combining marks that sit on Latin letters only.

    Marks on other scripts are part of the letter (Japanese dakuten, Devanagari vowel signs,
    Cyrillic й), so stripping them would change the word, not just its accent.
    """
    if text.isascii():
        return text
    out: list[str] = []
    on_latin = False
    for ch in unicodedata.normalize("NFD", text):
        if unicodedata.combining(ch):
            if on_latin:
                continue
        else:
            on_latin = _is_latin_base(ch)
        out.append(ch)
    return unicodedata.normalize("NFC", "".join(out))


@functools.lru_cache(maxsize=65_536)
def normalise_text(s: str) -> str:
    """Text for comparison: NFKC, casefolded, Latin accents removed, ``&`` -> ``and``,
    punctuation and symbols removed, whitespace collapsed. Non-Latin scripts are kept as they are.

    Apostrophes are deleted rather than spaced ("Don't" -> "dont"), and a space before one is
    dropped too, because tokenised feeds write "I 'm". A period after a single character is
    deleted so that acronyms fold ("R.E.M." -> "rem"); other punctuation becomes a space.
    """
    text = unicodedata.normalize("NFKC", s).casefold().translate(_LATIN_FOLD)
    text = _strip_latin_marks(text)
    text = text.replace("&", " and ")
    text = re.sub(r"\s+(?=['’‘`´]\w)", "", text)
    text = re.sub(r"(?<=\b\w)\.", "", text)
    out: list[str] = []
    for ch in text:
        if ch in _APOSTROPHES:
            continue
        category = unicodedata.category(ch)
        if category == "Cf":
            continue  # zero-width characters carry no letters
        out.append(" " if category[0] in "PSZC" else ch)
    return " ".join("".join(out).split())


def normalise_artist(name: str) -> str:
    """An artist name for comparison: ``normalise_text`` without a leading "the", which feeds
    use inconsistently ("The Beatles" / "Beatles")."""
    text = normalise_text(name)
    return text[4:] if text.startswith("the ") and len(text) > 4 else text


_ISRC_RE = re.compile(r"^[A-Z]{2}[A-Z0-9]{3}\d{7}$")


def normalise_isrc(raw: str | None) -> str | None:
    """``GB-AYE-11-00001`` -> ``GBAYE1100001``; None unless it is a well-formed 12-character ISRC."""
    if raw is None:
        return None
    text = re.sub(r"[\s\-_.]", "", str(raw)).upper()
    if text.startswith("ISRC"):
        text = text[4:].lstrip(":")
    return text if _ISRC_RE.match(text) else None


_LANGUAGE_CODES = {
    "english": "en", "german": "de", "french": "fr", "spanish": "es", "japanese": "ja", "italian": "it",
    "portuguese": "pt", "finnish": "fi", "dutch": "nl", "swedish": "sv", "russian": "ru", "turkish": "tr",
    "greek": "el", "polish": "pl", "chinese": "zh", "norwegian": "no", "danish": "da", "korean": "ko",
    "hungarian": "hu", "czech": "cs", "hebrew": "he", "arabic": "ar", "hindi": "hi", "latin": "la",
    "icelandic": "is", "estonian": "et", "croatian": "hr", "serbian": "sr", "romanian": "ro",
    "ukrainian": "uk", "catalan": "ca", "irish": "ga", "welsh": "cy", "indonesian": "id", "thai": "th",
    "vietnamese": "vi", "persian": "fa", "bulgarian": "bg", "slovak": "sk", "slovenian": "sl",
    "lithuanian": "lt", "latvian": "lv", "tagalog": "tl", "cantonese": "zh", "mandarin": "zh",
}  # fmt: skip
_ISO3_CODES = {"deu": "de", "fra": "fr", "jpn": "ja", "nld": "nl", "ell": "el", "zho": "zh", "ces": "cs"}
_LANGUAGE_ABBREVIATIONS = {name[:3]: code for name, code in _LANGUAGE_CODES.items()} | _ISO3_CODES
_KNOWN_CODES = frozenset(_LANGUAGE_CODES.values()) | {"mul"}


@functools.lru_cache(maxsize=4096)
def normalise_language(raw: str | None) -> str | None:
    """An ISO 639-1 code from "English", "Eng.", "ENGLISH", "Englsih", "en"; "mul" for multiple
    languages; None when unknown. Unrecognised values become None rather than a guess, so that a
    typo never looks like a language conflict."""
    if raw is None:
        return None
    key = re.sub(r"[^a-z]", "", raw.casefold())
    if not key or key in {"null", "none", "unknown", "uknown", "unk", "na", "nan", "und", "zxx"}:
        return None
    if "multiple" in key or key == "mul":
        return "mul"
    if key in _KNOWN_CODES:
        return key
    if key in _LANGUAGE_CODES:
        return _LANGUAGE_CODES[key]
    if key in _LANGUAGE_ABBREVIATIONS:
        return _LANGUAGE_ABBREVIATIONS[key]
    close = difflib.get_close_matches(key, list(_LANGUAGE_CODES), n=1, cutoff=0.75)
    return _LANGUAGE_CODES[close[0]] if close else None


# --------------------------------------------------------------------------------------------
# Artists
# --------------------------------------------------------------------------------------------

# Names whose commas or "&" are part of the name; a list is simpler than any rule that would
# also have to keep "Rihanna, Drake" apart.
_PROTECTED_ARTISTS = frozenset(
    {
        "earth, wind & fire", "earth, wind and fire", "crosby, stills, nash & young", "crosby, stills & nash",
        "emerson, lake & palmer", "blood, sweat & tears", "peter, paul and mary", "peter, paul & mary",
        "tyler, the creator", "me, myself and i",
    }
)  # fmt: skip
# "X & the Y", "X and His Orchestra", "Mumford & Sons": the right-hand side is not an artist.
_COLLECTIVE_START = re.compile(r"^(?:the|his|her|their|sons|daughters|friends|co\.?|company)\b", re.I)
_FEATURED_MARK_RE = re.compile(
    r"(?:^|(?<=\s)|(?<=[(\[]))(?:feat\s*\.|ft\s*\.|feat(?=\s)|ft(?=\s)|featuring(?=\s)|with(?=\s))\s*", re.I
)
_LIST_SEPARATOR_RE = re.compile(r"\s*(?:,|;|\s/\s|\s+x\s+|\s+×\s+|\s+(?i:vs\.?|versus)\s+)\s*")
_AND_SEPARATOR_RE = re.compile(r"(\s+(?:&|and|\+)\s+)", re.I)


def _split_and(piece: str) -> list[str]:
    parts = _AND_SEPARATOR_RE.split(piece)
    names = [parts[0]]
    for separator, right in zip(parts[1::2], parts[2::2], strict=True):
        if _COLLECTIVE_START.match(right.strip()) or not names[-1].strip():
            names[-1] = names[-1] + separator + right
        else:
            names.append(right)
    return names


def _split_names(text: str) -> list[str]:
    text = text.strip().strip("()[]").strip()
    if not text:
        return []
    if text.casefold() in _PROTECTED_ARTISTS:
        return [text]
    names: list[str] = []
    for piece in _LIST_SEPARATOR_RE.split(text):
        # An unspaced "/" splits only when a side has a space: "AC/DC" stays, "Jay-Z/Linkin Park" splits.
        slashed = piece.split("/")
        pieces = slashed if len(slashed) > 1 and any(" " in s.strip() for s in slashed) else [piece]
        for part in pieces:
            names.extend(_split_and(part))
    return _unique([n.strip().strip("()[]").strip() for n in names])


def _unique(names: list[str]) -> list[str]:
    seen: set[str] = set()
    out: list[str] = []
    for name in names:
        key = name.casefold()
        if name and key not in seen:
            seen.add(key)
            out.append(name)
    return out


def split_artists(raw: str) -> tuple[list[str], list[str]]:
    """Primary and featured artists from one artist field, names trimmed but otherwise as sent.

    Everything after the first ``feat.`` / ``ft.`` / ``featuring`` / ``with`` is featured. Both
    parts are split on ``,`` ``;`` `` / `` `` x `` ``vs.`` and on ``&`` / ``and`` / ``+`` (spaced).
    ``&``/``and`` do not split when the right-hand side starts with "the", "his", "her", "their",
    "sons", "friends" or "co" ("Echo & the Bunnymen", "Hill Bowen & His Orchestra", "Mumford &
    Sons"); a short list of well-known names with commas is kept whole. A two-person act written
    "Simon & Garfunkel" is split, which is at least consistent across feeds.
    """
    text = (raw or "").strip()
    if not text:
        return [], []
    mark = _FEATURED_MARK_RE.search(text)
    if mark and mark.start() > 0:
        primary_text, featured_text = text[: mark.start()], text[mark.end() :]
    else:
        primary_text, featured_text = text, ""
    primary_text = primary_text.strip().rstrip("([").strip()
    primary = _split_names(primary_text)
    featured = [n for n in _split_names(featured_text) if n.casefold() not in {p.casefold() for p in primary}]
    return primary, featured


_DASH_SEPARATOR_RE = re.compile(r"\s+[-–—]{1,2}\s+")
# Titles typed by hand (video titles): the dash spaced on one side only ("Stanley Jordan -The Lady
# In My Life", "Willie Nelson- Hallelujah") or left out, a wide gap instead ("Roy Hamilton   Cheek
# To Cheek"). Tried only where no spaced dash is found.
_LOOSE_SEPARATOR_RE = re.compile(r"(?<=\w)[-–—]\s+|\s+[-–—](?=\w)|(?<=\S)\s{3,}(?=\S)")


# Values of other fields that some feeds glue into the title ("Song 3:33", "Song $ 1.29",
# "Song ( C ) 2014 Label 18-May-15"). They are matched on the raw title, before brackets are read.
_GLUED_PRICE_RE = re.compile(r"(?<!\S)[$€£]\s?\d{1,3}(?:[.,]\d{2})?(?!\S)")
_GLUED_CLOCK_RE = re.compile(r"(?<![\d:.])(\d{1,2}):([0-5]\d)(?![\d:])")
_MONTH_WORD = r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?"
_GLUED_DATE_RE = re.compile(
    rf"(?<!\w)(?:\d{{1,2}}-{_MONTH_WORD}-(\d{{2}}|\d{{4}})|{_MONTH_WORD}\s+\d{{1,2}}\s*,\s*(\d{{4}})|"
    rf"(\d{{4}})-\d{{2}}-\d{{2}})(?!\w)",
    re.I,
)
# A copyright or phonogram notice runs from its mark to the end of the text (or to the next
# glued value); "‰ ãÑ" is how "℗" arrives through a Latin-1 round trip.
# "(C)" / "(P)" count only before a year, so that a title ending in "(C)" keeps it.
_GLUED_NOTICE_RE = re.compile(r"(?:\(\s*[cp]\s*\)\s*(?=(?:19|20)\d\d\b)|[©℗]|‰\s*ãÑ)[^\x00]*", re.I)
_SPREADSHEET_ERROR_RE = re.compile(r"#(?:NAME|VALUE|REF|N/A)\s*\?|#(?:NAME|VALUE|REF)!", re.I)
_GLUED = "\x00"


@dataclass(frozen=True)
class GluedFields:
    title: str
    duration_ms: int | None
    year: int | None


def strip_glued_fields(title: str) -> GluedFields:
    """The title without the durations, prices, dates and copyright notices glued into it, and
    the first duration and year found there (the caller uses them only where its own fields are
    empty). A title that is nothing but such a value ("4:44", "1999") is left as it is."""
    if not title or not re.search(r"\d|[$€£©℗#]|\(\s*[cpCP]\s*\)", title):
        return GluedFields(title, None, None)
    duration: int | None = None
    year: int | None = None

    def _date(match: re.Match[str]) -> str:
        nonlocal year
        raw = next(g for g in match.groups() if g)
        if year is None:
            year = parse_year(raw if len(raw) == 4 else "'" + raw)
        return _GLUED

    def _clock(match: re.Match[str]) -> str:
        nonlocal duration
        if duration is None:
            duration = parse_duration_ms(match.group(0))
        return _GLUED

    text = _SPREADSHEET_ERROR_RE.sub(_GLUED, title)
    text = _GLUED_PRICE_RE.sub(_GLUED, text)
    text = _GLUED_DATE_RE.sub(_date, text)
    text = _GLUED_CLOCK_RE.sub(_clock, text)
    text = _GLUED_NOTICE_RE.sub(_GLUED, text)
    cleaned = " ".join(text.replace(_GLUED, " ").split())
    if not normalise_text(cleaned):
        return GluedFields(title, None, None)
    return GluedFields(cleaned, duration, year)


# "Album - Single", "Album - EP": a store's release-type suffix after a dash, not "Artist - Title".
_RELEASE_TYPE_RE = re.compile(r"(?:maxi[ -]?)?(?:single|ep)(?:$|\s*[^\w\s])", re.IGNORECASE)


def split_artist_from_title(title: str, artist: str) -> tuple[str, str]:
    """``(title, artist)``: when the artist is empty and the title reads "Artist - Title", split it.

    Otherwise both come back unchanged. A dash followed by a version tag ("Song - Live at
    Wembley") or by a release type ("Album - Single", "Album - EP ( ... )") is not an artist
    separator, nor is a dash after a bracketed version tag ("Song ( X Remix ) Artist - ...").
    """
    if (artist or "").strip():
        return title, artist
    match = _DASH_SEPARATOR_RE.search(title or "") or _LOOSE_SEPARATOR_RE.search(title or "")
    if not match:
        return title, artist
    left, right = title[: match.start()].strip(), title[match.end() :].strip()
    # Judge the right side without its brackets: "Artist - Song (Club Mix)" splits, "Song - Live" not.
    bare_right = _GROUP_RE.sub(" ", right).strip()
    if not left or not bare_right or _segment_tags(bare_right) is not None or _RELEASE_TYPE_RE.match(bare_right):
        return title, artist
    # A left side with a version group ("Song ( X Remix ) Artist Album - Single") is a title with
    # other fields glued on, not an artist's name.
    if any(_segment_tags(group) for group in _GROUP_RE.findall(left)):
        return title, artist
    return right, left


# --------------------------------------------------------------------------------------------
# Titles and version tags
# --------------------------------------------------------------------------------------------

SAME_RECORDING_TAGS = frozenset({"remaster", "radio_edit", "edit", "explicit", "clean", "mono", "stereo", "audio"})
VERSION_TAGS = frozenset(
    {
        "live", "acoustic", "remix", "cover", "instrumental", "karaoke", "sped_up", "slowed", "demo",
        "extended", "rerecorded", "acapella", "alternate",
    }
)  # fmt: skip
VIDEO_TAGS = frozenset({"official_video", "lyric_video", "visualizer"})
VERSION_CLASSES = ("original", "version", "video")

# Matched against normalise_text(segment): lowercase words separated by single spaces.
_TAG_RULES: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (tag, re.compile(pattern))
    for tag, pattern in (
        ("remaster", r"\bre ?master(?:ed)?\b|\bremasterizado\b"),
        ("radio_edit", r"\bradio (?:edit|version|mix|cut)\b"),
        # "Live at ...", "(Live)", "Acoustic Live", but not "Live Forever" or "Live Wire".
        (
            "live",
            r"^live$|\blive (?:at|in|from|on|for|version|recording|session|performance|take|edit|mix|video|\d)|"
            r"\blive$|\bin concert\b|\bunplugged\b|\ben vivo\b|\ben directo\b",
        ),
        ("acoustic", r"\bacoustic\b|\bunplugged\b|\bstripped\b|\bpiano version\b|\bacustic[oa]\b"),
        ("remix", r"\bre ?mix(?:ed)?\b|\brmx\b|\bdub\b|\bbootleg\b|\brework\b|\bre ?edit\b"),
        ("extended", r"\bextended\b|\b12 (?:inch )?(?:mix|version)\b"),
        ("cover", r"\bcover(?:ed)?\b"),
        ("instrumental", r"\binstrumental\b"),
        ("karaoke", r"\bkaraoke\b|\bin the style of\b|\bbacking track\b|\bsing ?along\b"),
        ("sped_up", r"\bsped up\b|\bspeed up\b|\bspeedup\b|\bnightcore\b"),
        ("slowed", r"\bslowed\b|\breverb\b"),
        ("demo", r"\bdemo\b"),
        ("rerecorded", r"\bre ?recorded\b|\bre ?recording\b|\btaylors version\b"),
        ("acapella", r"\ba ?cc?apella\b|\bvocals? only\b"),
        ("alternate", r"\b(?:alternate|alternative|alt) (?:take|version|mix)\b|\btake \d+\b|\bouttake\b"),
        ("lyric_video", r"\blyrics?\b|\bletra\b"),
        ("visualizer", r"\bvisuali[sz]er\b"),
        ("official_video", r"\bvideo\b|\bmv\b|\bm v\b|\bvideoclip\b|\bclip officiel\b"),
        ("audio", r"\baudio\b"),
        ("explicit", r"\bexplicit\b|\bdirty\b|\buncensored\b"),
        ("clean", r"\bclean\b|\bcensored\b"),
        ("mono", r"\bmono\b"),
        ("stereo", r"\bstereo\b"),
        # "Re-Edit" is a remix and "Radio Edit" has its own tag; any other edit cuts the same recording.
        ("edit", r"(?<!re )(?<!radio )\bedit(?:ed)?\b|\bsingle version\b"),
    )
)
# A bare "mix" is a remix unless it names the standard mix of the same recording.
_MIX_RE = re.compile(r"\bmix\b")
_NEUTRAL_MIX_RE = re.compile(r"\b(?:original|album|radio|extended|stereo|mono|single|main|lp) mix\b")
# Segments that say nothing about the recording but must not stay in the title.
_NEUTRAL_SEGMENT_RE = re.compile(
    r"^(?:(?:album|lp|original|main|full|single|studio|bonus) (?:version|mix)|original|bonus track|bonus|hd|hq|"
    r"4k|high quality|full song|official|"
    # a release edition glued into a title names the release, not the recording
    r"(?:super )?(?:deluxe|expanded|anniversary|collectors?|limited|special)(?: (?:edition|version))?)$"
)
# Release-title editions: removed from releases so "Pain Killer (Deluxe)" matches "Pain Killer".
_EDITION_RE = re.compile(
    r"\b(?:deluxe|expanded|anniversary|special|limited|collectors?|bonus|super|edition|version|reissue|"
    r"\d{4}|unknown)\b"
)
_MAX_TAG_WORDS = 10  # a longer bracket is a subtitle or a release name, not a version tag


def _segment_tags(segment: str) -> frozenset[str] | None:
    """The tags a bracketed or dash-separated segment carries; None when it is not a tag segment."""
    text = normalise_text(segment.replace("@", " at "))  # "Live @ The Roxy"
    if not text or len(text.split()) > _MAX_TAG_WORDS:
        return None
    tags = {tag for tag, pattern in _TAG_RULES if pattern.search(text)}
    if _MIX_RE.search(text) and not _NEUTRAL_MIX_RE.search(text) and "radio_edit" not in tags:
        tags.add("remix")
    if "lyric_video" in tags or "visualizer" in tags:
        tags.discard("official_video")  # "Official Lyric Video" is a lyric video
    if tags:
        return frozenset(tags)
    if _NEUTRAL_SEGMENT_RE.match(text) or _NEUTRAL_MIX_RE.fullmatch(text):
        return frozenset()
    return None


def version_class_of(tags: frozenset[str]) -> str:
    """``video`` beats ``version`` beats ``original``: a live video is first of all a video."""
    if tags & VIDEO_TAGS:
        return "video"
    if tags & VERSION_TAGS:
        return "version"
    return "original"


@dataclass(frozen=True)
class ParsedTitle:
    core: str
    tags: frozenset[str]
    featured: tuple[str, ...]
    version_class: str
    # Other names the title gives its song (``title_alternates``), the core left out.
    alternates: tuple[str, ...] = ()


_GROUP_RE = re.compile(r"[(\[{【]([^()\[\]{}【】]*)[)\]}】]")
_GROUP_FEAT_RE = re.compile(r"^\s*(?:feat\s*\.?|ft\s*\.?|featuring|with)\s+(.+)$", re.I | re.S)
_INLINE_FEAT_RE = re.compile(r"(?:^|\s)(?:feat\s*\.|ft\s*\.|feat(?=\s)|ft(?=\s)|featuring(?=\s))\s*", re.I)
# "004-", and a vinyl side's position "0B2-" ("0" + side letter + number), as one feed prefixes titles.
_TRACK_NUMBER_RE = re.compile(r"^\s*0(?:\d{1,2}|[A-Za-z]\d{1,2})\s*[-.]\s*(?=\S)")
# Unbracketed video suffixes need a qualifier, so that a song called "Home Video" keeps its name.
_TRAILING_VIDEO_RE = re.compile(
    r"\s+((?:official\s+)?(?:live\s+|hd\s+)?(?:music|lyrics?|live|official)\s+video|official\s+audio|"
    r"(?:official\s+)?visuali[sz]er)\s*$",
    re.I,
)
# Unbracketed performance suffixes, also with a qualifier: "Song MTV Unplugged", "Song Acoustic
# Version", "Song Live at Wembley 1986" (but "Live Forever", "The House I Live In" keep their words).
_TRAILING_TAG_RE = re.compile(
    r"\s+((?:mtv\s+)?unplugged|"
    r"(?:live|acoustic|instrumental|karaoke|piano|demo|radio|extended|remix)\s+(?:version|mix|edit|recording)|"
    r"live\s+(?:at|@|from)\s+\S.*)\s*$",
    re.I,
)


def _strip_trailing_group(title: str) -> tuple[str, str] | None:
    """The last balanced bracketed group (nesting allowed) and the text before it."""
    stripped = title.rstrip()
    if not stripped.endswith((")", "]")):
        return None
    closer = stripped[-1]
    opener = "(" if closer == ")" else "["
    depth = 0
    for index in range(len(stripped) - 1, -1, -1):
        if stripped[index] == closer:
            depth += 1
        elif stripped[index] == opener:
            depth -= 1
            if depth == 0:
                return stripped[:index].rstrip(), stripped[index + 1 : -1]
    return None


_SLASH_SEPARATOR_RE = re.compile(r"\s+/\s+")


def title_alternates(title: str) -> tuple[str, ...]:
    """Other names a title gives its song, normalised: each side of a slash title (a bilingual
    or a medley title, "Chick Habit / Laisse tomber les filles"), and of the title and each side
    the text without its bracketed parts and the trailing bracket's content ("Dovidjenja ljubavi
    (Goodbye My Love, Goodbye)", "Good Riddance (Time of Your Life)"). Covers are often filed
    under one of these names alone. Names that name nothing are left out; ``title`` is expected
    with its version tags already taken out (``parse_title`` does), so "(Live)" is never a name."""
    sides = [title, *_SLASH_SEPARATOR_RE.split(title)] if _SLASH_SEPARATOR_RE.search(title) else [title]
    names: list[str] = []
    for side in sides:
        names.append(side)
        names.append(_GROUP_RE.sub(" ", side))
        trailing = _strip_trailing_group(side)
        if trailing and normalise_text(trailing[0]):
            names.append(trailing[1])
    found = (normalise_text(n) for n in names)
    return tuple(_unique([n for n in found if not is_placeholder_title(n)]))


def _strip_release(title: str, release: str | None) -> str:
    """Remove a release name appended to the title, "Title (Release)" or "Title - Release", as
    some feeds do; only when it equals the item's own release, so real subtitles stay."""
    if not release:
        return title
    wanted = {normalise_text(release), normalise_release(release)} - {""}
    if not wanted:
        return title
    trailing = _strip_trailing_group(title)
    if trailing and trailing[0] and normalise_text(trailing[1]) in wanted:
        return trailing[0]
    for match in _DASH_SEPARATOR_RE.finditer(title):
        head = title[: match.start()].strip()
        if head and normalise_text(title[match.end() :]) in wanted:
            return head
    return title


def parse_title(title: str, release: str | None = None) -> ParsedTitle:
    """Split a title into its matching core, version tags and featured artists.

    Tags come from bracketed groups ("(Live)", "[Radio Edit]", "(feat. X)") and from " - "
    suffixes ("Song - Remastered 2011", "Song - Live at Wembley 1986"); bracketed groups that are
    not tags ("(I Can't Get No)") stay in the core. When ``release`` is given, a copy of it
    appended to the title is removed. ``featured`` holds normalised names.
    """
    text = unicodedata.normalize("NFKC", title or "")
    text = _strip_release(text, release)
    tags: set[str] = set()
    featured: list[str] = []

    def _take_group(match: re.Match[str]) -> str:
        content = match.group(1)
        feat = _GROUP_FEAT_RE.match(content)
        if feat:
            primary, more = split_artists(feat.group(1))
            featured.extend(primary + more)
            return " "
        if content.strip().startswith("+"):
            return " "  # "[ + Video ]", "[ + Digital Booklet ]": bonus material of the release
        found = _segment_tags(content)
        if found is None:
            return match.group(0)
        tags.update(found)
        return " "

    # Twice: a tag group nested in another ("( Album Version ( Edited ) )") frees the outer one.
    text = _GROUP_RE.sub(_take_group, _GROUP_RE.sub(_take_group, text))
    inline = _INLINE_FEAT_RE.search(text)
    if inline and inline.start() > 0:
        after = text[inline.end() :]
        dash = _DASH_SEPARATOR_RE.search(after)
        names = after[: dash.start()] if dash else after
        primary, more = split_artists(names)
        featured.extend(primary + more)
        text = text[: inline.start()] + (after[dash.start() :] if dash else "")
    while True:  # peel tag suffixes from the right: "Song - Live at Wembley - Remastered"
        separators = list(_DASH_SEPARATOR_RE.finditer(text))
        if not separators or not text[: separators[-1].start()].strip():
            break
        found = _segment_tags(text[separators[-1].end() :])
        if found is None:
            break
        tags.update(found)
        text = text[: separators[-1].start()]
    for trailing_re in (_TRAILING_TAG_RE, _TRAILING_VIDEO_RE):  # unbracketed: "Song Unplugged"
        trailing = trailing_re.search(text)
        if trailing and text[: trailing.start()].strip():
            found = _segment_tags(trailing.group(1))
            if found:
                tags.update(found)
                text = text[: trailing.start()]
    text = _TRACK_NUMBER_RE.sub("", text)
    core = normalise_text(text) or normalise_text(title or "")
    frozen = frozenset(tags)
    featured_names = tuple(_unique([normalise_artist(n) for n in featured if normalise_artist(n)]))
    alternates = tuple(n for n in title_alternates(text) if n != core)
    return ParsedTitle(
        core=core, tags=frozen, featured=featured_names, version_class=version_class_of(frozen), alternates=alternates
    )


_RELEASE_NULLS = frozenset({"unknown", "null", "none", "n a", "na", "unk", "various"})


def normalise_release(raw: str | None) -> str:
    """A release title for comparison: editions ("(Deluxe Version)"), years ("(2011)") and
    version tags in brackets removed; "" when absent or a placeholder such as "unknown"."""
    if not raw:
        return ""
    text = unicodedata.normalize("NFKC", raw)

    def _drop_edition(match: re.Match[str]) -> str:
        content = normalise_text(match.group(1))
        if not content or _segment_tags(content) is not None or _EDITION_RE.search(content):
            return " "
        return match.group(0)

    text = _GROUP_RE.sub(_drop_edition, text)
    result = normalise_text(text)
    return "" if result in _RELEASE_NULLS else result


# --------------------------------------------------------------------------------------------
# Normalised items
# --------------------------------------------------------------------------------------------

FEATURED_EXTRA_KEY = "featured_artists"  # set by feed parsers: which of ContentItem.artists are featured
_EMBED_RELEASE_CHARS = 80  # sentence encoders truncate; the title and artists must fit first


@dataclass(frozen=True)
class NormalisedItem:
    """What matching sees of one content item: normalised text, tags and typed values."""

    content_id: str
    kind: str
    title_core: str
    tags: frozenset[str] = frozenset()
    version_class: str = "original"
    artists: tuple[str, ...] = ()
    featured: tuple[str, ...] = ()
    release: str = ""
    duration_ms: int | None = None
    year: int | None = None
    isrc: str | None = None
    language: str | None = None
    source: str = ""
    # Other names the title gives the song (``title_alternates``), the core left out: evidence
    # that two differently titled records name one work (``features.titles_share_a_name``).
    title_alternates: tuple[str, ...] = ()

    @property
    def title_key(self) -> str:
        """Exact blocking key: the same core title by the same first artist."""
        return f"{self.title_core}|{self.artists[0] if self.artists else ''}"

    @property
    def title_only_key(self) -> str:
        """Blocking key for versions by any artist (covers): the core title alone; "" for titles
        that name nothing (a track number, "untitled", two letters), which would block everything."""
        return "" if is_placeholder_title(self.title_core) else self.title_core

    @property
    def embed_text(self) -> str:
        """The text the sentence encoder embeds: title, artists and release, without tags, so that
        versions and videos of a song still land near it and come back as candidates. A title that
        only stands in for a missing one ("null", "untitled", a track number "004") is left out when
        an artist or a release is there: the vector then sits among that artist's or release's
        records, where the record's duplicate is, and not among every other "004"."""
        stand_in = title_stands_in(self.title_core) and bool(self.artists or self.release)
        text = "" if stand_in else self.title_core
        if self.artists:
            text += " by " + ", ".join(self.artists)
        if self.release and self.release != self.title_core:
            text += " from " + self.release[:_EMBED_RELEASE_CHARS].rstrip()
        return text.strip()

    def to_meta(self) -> dict[str, Any]:
        """JSON-serialisable and compact: empty and None values are left out."""
        meta: dict[str, Any] = {"content_id": self.content_id, "kind": self.kind, "title_core": self.title_core}
        if self.tags:
            meta["tags"] = sorted(self.tags)
        if self.version_class != "original":
            meta["version_class"] = self.version_class
        for name in ("artists", "featured", "title_alternates"):
            value: tuple[str, ...] = getattr(self, name)
            if value:
                meta[name] = list(value)
        for name in ("release", "duration_ms", "year", "isrc", "language", "source"):
            value_any = getattr(self, name)
            if value_any not in (None, ""):
                meta[name] = value_any
        return meta

    @classmethod
    def from_meta(cls, d: dict[str, Any]) -> NormalisedItem:
        duration = d.get("duration_ms")
        year = d.get("year")
        return cls(
            content_id=str(d["content_id"]),
            kind=str(d["kind"]),
            title_core=str(d.get("title_core", "")),
            tags=frozenset(d.get("tags") or ()),
            version_class=str(d.get("version_class", "original")),
            artists=tuple(d.get("artists") or ()),
            featured=tuple(d.get("featured") or ()),
            release=str(d.get("release", "")),
            duration_ms=int(duration) if duration is not None else None,
            year=int(year) if year is not None else None,
            isrc=d.get("isrc"),
            language=d.get("language"),
            source=str(d.get("source", "")),
            title_alternates=tuple(d.get("title_alternates") or ()),
        )


# Titles that carry no name: a track number, "null", one character.
# "unk" is how one feed abbreviates "unknown" ("Unk."), in the title as in the artist field.
PLACEHOLDER_TITLES = frozenset({"", "null", "none", "unknown", "unk", "untitled", "na", "n a", "track"})


def is_placeholder_title(title_core: str) -> bool:
    """Two letters are a name ("If", "Oh", and most Chinese or Japanese titles: "妥協", "分裂");
    one character, digits alone and the placeholder words are not."""
    return title_core in PLACEHOLDER_TITLES or len(title_core) <= 1 or title_core.replace(" ", "").isdigit()


_TRACK_NUMBER_TITLE_RE = re.compile(r"^0\d{1,2}$")


def title_stands_in(title_core: str) -> bool:
    """A title that names nothing and stands in for a missing one: a placeholder word, or a
    track number written with its leading zero ("004"; "679" or "45" can be a song's name)."""
    return title_core in PLACEHOLDER_TITLES or bool(_TRACK_NUMBER_TITLE_RE.match(title_core.replace(" ", "")))


# A null word where the artist was ("n.a.", "null", "unk."): no name. "[unknown]" stays, a name
# MusicBrainz gives records of unknown artists on every source.
_NULL_ARTISTS = frozenset({"na", "n a", "null", "none", "nan", "unk"})
_KIND_TAGS = {"lyric_video": frozenset({"lyric_video"}), "live_video": frozenset({"live"})}


def normalise(item: ContentItem) -> NormalisedItem:
    """Normalise one item for matching.

    The artist comes out of the title when the artist list is empty ("Artist - Title"); each
    artist entry is split again so that a raw "A feat. B" entry reads like a parsed one; names
    listed in ``extra["featured_artists"]`` count as featured. Featured artists from the title
    and the artist field are merged; a kind ending in ``_video`` makes the class ``video``.
    Durations, prices, dates and copyright notices glued into the title are taken out of it
    (``strip_glued_fields``) and fill the duration and year when the item has none.
    """
    glued = strip_glued_fields(item.title or "")
    title = glued.title
    raw_artists = [a for a in item.artists if a and a.strip()]
    if not raw_artists:
        title, artist = split_artist_from_title(title, "")
        raw_artists = [artist] if artist.strip() else []
    declared = {normalise_artist(n) for n in split_artists(item.extra.get(FEATURED_EXTRA_KEY, "") or "")[0]}
    primary: list[str] = []
    featured: list[str] = []
    for entry in raw_artists:
        names, more = split_artists(entry)
        for name in names:
            (featured if normalise_artist(name) in declared else primary).append(normalise_artist(name))
        featured.extend(normalise_artist(n) for n in more)
    parsed = parse_title(title, item.release)
    artists = tuple(_unique([a for a in primary if a and a not in _NULL_ARTISTS]))
    merged = tuple(n for n in _unique([*parsed.featured, *featured]) if n and n not in artists)
    tags = parsed.tags | _KIND_TAGS.get(item.kind, frozenset())
    version_class = "video" if item.kind.endswith("_video") else version_class_of(tags)
    return NormalisedItem(
        content_id=item.content_id,
        kind=item.kind,
        title_core=parsed.core,
        tags=tags,
        version_class=version_class,
        artists=artists,
        featured=merged,
        release=normalise_release(item.release),
        duration_ms=item.duration_ms or glued.duration_ms,
        year=item.year or glued.year,
        isrc=normalise_isrc(item.isrc),
        language=normalise_language(item.language),
        source=item.source,
        title_alternates=parsed.alternates,
    )
