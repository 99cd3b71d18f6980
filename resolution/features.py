"""Comparison signals for a pair of items: what the matcher scores and what a decision explains.

One function computes them for the worker, for training and for evaluation, so the learned
matcher always sees the same features it was trained on.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from rapidfuzz import fuzz

from resolution.normalise import VERSION_TAGS, NormalisedItem, is_placeholder_title

FEATURE_NAMES: tuple[str, ...] = (
    "text_cosine",
    "title_ratio",
    "title_token_set",
    "title_partial",
    "title_equal",
    "artist_ratio",
    "artist_token_set",
    "artist_known",
    "artist_overlap",
    "release_ratio",
    "release_known",
    "duration_diff_s",
    "duration_known",
    "duration_close",
    "year_diff",
    "year_known",
    "isrc_equal",
    "isrc_conflict",
    "version_tags_differ",
    "one_is_version",
    "both_version_same_tags",
    "one_is_video",
    "both_video",
    "same_source",
    "language_conflict",
    "full_token_set",
    "full_token_sort",
    "title_in_other",
    "artist_in_other",
    "title_placeholder",
    "full_containment",
    "title_prefix",
    "head_prefix",
    "head_cover",
    "head_ratio",
    "head_in_other",
    "performance_differs",
    "title_words_found",
    "record_jaccard",
    "performance_duration_gap",
)
# Tags that name another performance, not another cut or mix of the same one: a demo, an
# acoustic or live take is a different recording even when title, artist and release agree.
PERFORMANCE_TAGS = frozenset({"live", "acoustic", "demo", "instrumental", "acapella", "karaoke", "cover", "rerecorded"})
_PREFIX_WORDS = 4
# Words too common in titles to show that one title is found in another record.
_FILLER_WORDS = frozenset(
    {"the", "a", "an", "of", "and", "in", "on", "to", "for", "with", "from", "by", "at", "is", "it", "me", "my", "you"}
)
_GAP_SCALE_S = 60.0


def _ratio(a: str, b: str, scorer: object = fuzz.ratio) -> float:
    if not a or not b:
        return 0.0
    return float(scorer(a, b)) / 100.0  # type: ignore[operator]


def _full_text(n: NormalisedItem) -> str:
    """Every text field together: feeds that put the artist or release inside the title (or
    elsewhere) still compare on the same words."""
    return " ".join(part for part in (n.title_core, *n.artists, *n.featured, n.release) if part)


def _is_placeholder(title: str) -> bool:
    """A title that names nothing: a mismatch on it says little, unlike one between real titles."""
    return is_placeholder_title(title)


def _containment(a: str, b: str) -> float:
    """Share of the smaller set of words (numbers left out: prices, years, durations) in the other."""
    words_a = {w for w in a.split() if not w.isdigit()}
    words_b = {w for w in b.split() if not w.isdigit()}
    if not words_a or not words_b:
        return 0.0
    return len(words_a & words_b) / min(len(words_a), len(words_b))


def _common_prefix(a: str, b: str) -> float:
    """Leading words in common (up to four): a feed that glues genre, label and price after the
    title still starts with the title."""
    n = 0
    for word_a, word_b in zip(a.split()[:_PREFIX_WORDS], b.split()[:_PREFIX_WORDS], strict=False):
        if word_a != word_b:
            break
        n += 1
    return n / _PREFIX_WORDS


def _tokens(text: str) -> list[str]:
    return text.split()


def _cut_phrases(a: NormalisedItem, b: NormalisedItem) -> list[list[str]]:
    """Artist, featured and release names of both items, as token lists: where one of them shows
    up inside a title, what follows is another field glued to it, not the song's name."""
    names = {*a.artists, *a.featured, a.release, *b.artists, *b.featured, b.release}
    return [_tokens(n) for n in names if len(n) >= 3]


def title_head(title: str, cuts: list[list[str]]) -> list[str]:
    """The title's words up to the first glued-on name (never the first word), numbers left out."""
    words = _tokens(title)
    end = len(words)
    for phrase in cuts:
        size = len(phrase)
        for start in range(1, min(end, len(words) - size + 1)):
            if words[start : start + size] == phrase:
                end = start
                break
    return [w for w in words[:end] if not w.isdigit()]


def _named_text(n: NormalisedItem) -> str:
    """Title and artist fields together, without the release (a song may be named like its album)."""
    return " ".join(part for part in (n.title_core, *n.artists, *n.featured) if part)


def _head_signals(a: NormalisedItem, b: NormalisedItem) -> tuple[float, float, float, float]:
    """How the two titles' heads agree: a feed that puts artist, release or genre after the
    title in the title field still starts with the title. Returns (leading words in common
    over the shorter head, over the longer head, edit-distance ratio of the heads, and how well
    either head is found in the other's title and artist text, for feeds that moved the title
    into another field)."""
    cuts = _cut_phrases(a, b)
    head_a, head_b = title_head(a.title_core, cuts), title_head(b.title_core, cuts)
    if not head_a or not head_b:
        return 0.0, 0.0, 0.0, 0.0
    common = 0
    for word_a, word_b in zip(head_a, head_b, strict=False):
        if word_a != word_b:
            break
        common += 1
    shorter, longer = sorted((len(head_a), len(head_b)))
    text_a, text_b = " ".join(head_a), " ".join(head_b)
    found = max(_ratio(text_a, _named_text(b), fuzz.partial_ratio), _ratio(text_b, _named_text(a), fuzz.partial_ratio))
    return common / shorter, common / longer, _ratio(text_a, text_b), found


def _record_words(n: NormalisedItem) -> set[str]:
    """Every word of the record, whichever field it sits in (numbers left out)."""
    return {w for w in _full_text(n).split() if not w.isdigit()}


def _words_found(head: list[str], words: set[str]) -> float:
    """Share of a title head's words (fillers left out, unless that is all there is) found among
    the other record's words, in any field."""
    wanted = {w for w in head if w not in _FILLER_WORDS} or set(head)
    return len(wanted & words) / len(wanted) if wanted else 0.0


def _title_words_found(a: NormalisedItem, b: NormalisedItem) -> float:
    """How well a title's head (its words before a glued-on name) is found anywhere in the other
    record, the better of the two sides (the other may have genre or label words glued on): a
    feed that scrambles fields still carries the song's name somewhere, while two songs of one
    album share artist, release and year but not it."""
    cuts = _cut_phrases(a, b)
    head_a, head_b = title_head(a.title_core, cuts), title_head(b.title_core, cuts)
    if not head_a or not head_b:
        return 0.0
    return max(_words_found(head_a, _record_words(b)), _words_found(head_b, _record_words(a)))


def _jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a and b else 0.0


def pair_signals(a: NormalisedItem, b: NormalisedItem, text_cosine: float) -> dict[str, float]:
    """Named, bounded signals; every value is a float so it can travel in a decision."""
    artists_a = " ".join(a.artists)
    artists_b = " ".join(b.artists)
    artist_known = float(bool(artists_a) and bool(artists_b))
    set_a = set(a.artists) | set(a.featured)
    set_b = set(b.artists) | set(b.featured)
    overlap = len(set_a & set_b) / max(1, min(len(set_a), len(set_b))) if set_a and set_b else 0.0
    duration_known = float(bool(a.duration_ms) and bool(b.duration_ms))
    duration_diff = abs((a.duration_ms or 0) - (b.duration_ms or 0)) / 1000.0 if duration_known else 0.0
    year_known = float(bool(a.year) and bool(b.year))
    version_a = a.tags & VERSION_TAGS
    version_b = b.tags & VERSION_TAGS
    video_a = a.version_class == "video"
    video_b = b.version_class == "video"
    full_a, full_b = _full_text(a), _full_text(b)
    title_in_other = min(
        _ratio(a.title_core, full_b, fuzz.partial_ratio), _ratio(b.title_core, full_a, fuzz.partial_ratio)
    )
    artist_in_other = max(_ratio(artists_a, full_b, fuzz.partial_ratio), _ratio(artists_b, full_a, fuzz.partial_ratio))
    head_prefix, head_cover, head_ratio, head_in_other = _head_signals(a, b)
    performance_differs = bool((a.tags ^ b.tags) & PERFORMANCE_TAGS)
    return {
        "text_cosine": float(text_cosine),
        "title_ratio": _ratio(a.title_core, b.title_core),
        "title_token_set": _ratio(a.title_core, b.title_core, fuzz.token_set_ratio),
        "title_partial": _ratio(a.title_core, b.title_core, fuzz.partial_ratio),
        "title_equal": float(bool(a.title_core) and a.title_core == b.title_core),
        "artist_ratio": _ratio(artists_a, artists_b),
        "artist_token_set": _ratio(artists_a, artists_b, fuzz.token_set_ratio),
        "artist_known": artist_known,
        "artist_overlap": float(overlap),
        "release_ratio": _ratio(a.release, b.release, fuzz.token_set_ratio),
        "release_known": float(bool(a.release) and bool(b.release)),
        "duration_diff_s": min(duration_diff, 600.0),
        "duration_known": duration_known,
        "duration_close": float(duration_known and duration_diff <= 3.0),
        "year_diff": float(min(abs((a.year or 0) - (b.year or 0)), 50)) if year_known else 0.0,
        "year_known": year_known,
        "isrc_equal": float(bool(a.isrc) and a.isrc == b.isrc),
        "isrc_conflict": float(bool(a.isrc) and bool(b.isrc) and a.isrc != b.isrc),
        "version_tags_differ": float(version_a != version_b),
        "one_is_version": float(bool(version_a) != bool(version_b)),
        "both_version_same_tags": float(bool(version_a) and version_a == version_b),
        "one_is_video": float(video_a != video_b),
        "both_video": float(video_a and video_b),
        "same_source": float(bool(a.source) and a.source == b.source),
        "language_conflict": float(bool(a.language) and bool(b.language) and a.language != b.language),
        "full_token_set": _ratio(full_a, full_b, fuzz.token_set_ratio),
        "full_token_sort": _ratio(full_a, full_b, fuzz.token_sort_ratio),
        "title_in_other": title_in_other,
        "artist_in_other": artist_in_other,
        "title_placeholder": float(_is_placeholder(a.title_core) or _is_placeholder(b.title_core)),
        "full_containment": _containment(full_a, full_b),
        "title_prefix": _common_prefix(a.title_core, b.title_core),
        "head_prefix": head_prefix,
        "head_cover": head_cover,
        "head_ratio": head_ratio,
        "head_in_other": head_in_other,
        "performance_differs": float(performance_differs),
        "title_words_found": _title_words_found(a, b),
        "record_jaccard": _jaccard(_record_words(a), _record_words(b)),
        # A demo or acoustic take against the album track: how far their lengths are apart
        # (0 when the tags agree or a length is unknown; 1 from a minute on).
        "performance_duration_gap": min(duration_diff, _GAP_SCALE_S) / _GAP_SCALE_S if performance_differs else 0.0,
    }


def feature_vector(signals: dict[str, float]) -> NDArray[np.float32]:
    return np.array([signals[name] for name in FEATURE_NAMES], dtype=np.float32)
