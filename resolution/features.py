"""Comparison signals for a pair of items: what the matcher scores and what a decision explains.

One function computes them for the worker, for training and for evaluation, so the learned
matcher always sees the same features it was trained on.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray
from rapidfuzz import fuzz
from rapidfuzz.process import cpdist

from resolution.media_evidence import MEDIA_SIGNALS
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
# Signals a pair carries beside the features: evidence the rules after the scorer read
# (``resolution.matcher.with_rule_evidence``) and a decision records, which no model reads (the
# served matcher's inputs are fixed by ``FEATURE_NAMES``).
EVIDENCE_SIGNALS: tuple[str, ...] = ("title_alternate_shared",)
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


def _head_signals(
    head_a: list[str], head_b: list[str], ratio: float, found: float
) -> tuple[float, float, float, float]:
    """How the two titles' heads agree: a feed that puts artist, release or genre after the
    title in the title field still starts with the title. Returns (leading words in common
    over the shorter head, over the longer head, edit-distance ratio of the heads, and how well
    either head is found in the other's title and artist text, for feeds that moved the title
    into another field). ``ratio`` and ``found`` come from rapidfuzz, for all pairs at once."""
    if not head_a or not head_b:
        return 0.0, 0.0, 0.0, 0.0
    common = 0
    for word_a, word_b in zip(head_a, head_b, strict=False):
        if word_a != word_b:
            break
        common += 1
    shorter, longer = sorted((len(head_a), len(head_b)))
    return common / shorter, common / longer, ratio, found


def _record_words(n: NormalisedItem) -> set[str]:
    """Every word of the record, whichever field it sits in (numbers left out)."""
    return {w for w in _full_text(n).split() if not w.isdigit()}


def _words_found(head: list[str], words: set[str]) -> float:
    """Share of a title head's words (fillers left out, unless that is all there is) found among
    the other record's words, in any field."""
    wanted = {w for w in head if w not in _FILLER_WORDS} or set(head)
    return len(wanted & words) / len(wanted) if wanted else 0.0


def _title_words_found(head_a: list[str], head_b: list[str], words_a: set[str], words_b: set[str]) -> float:
    """How well a title's head (its words before a glued-on name) is found anywhere in the other
    record, the better of the two sides (the other may have genre or label words glued on): a
    feed that scrambles fields still carries the song's name somewhere, while two songs of one
    album share artist, release and year but not it."""
    if not head_a or not head_b:
        return 0.0
    return max(_words_found(head_a, words_b), _words_found(head_b, words_a))


def titles_share_a_name(a: NormalisedItem, b: NormalisedItem) -> bool:
    """Two different titles of which one names the song as the other does: one side of a slash
    title, the title without its bracketed part, or the bracket's content, is the other's title
    or one of its other names ("Laisse tomber les filles" and "Chick Habit / Laisse tomber les
    filles"). Equal titles are not counted: the features already say so."""
    if not a.title_core or not b.title_core or a.title_core == b.title_core:
        return False
    if not a.title_alternates and not b.title_alternates:
        return False
    return bool({a.title_core, *a.title_alternates} & {b.title_core, *b.title_alternates})


def _jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a and b else 0.0


def pair_signals(a: NormalisedItem, b: NormalisedItem, text_cosine: float) -> dict[str, float]:
    """Named, bounded signals; every value is a float so it can travel in a decision."""
    return pair_signals_batch([(a, b)], [text_cosine])[0]


def _ratios(left: list[str], right: list[str], scorer: Any) -> NDArray[np.float64]:
    """``_ratio`` for every pair at once: one call into rapidfuzz's C++ per signal, not per pair."""
    if not left:
        return np.zeros(0)
    scores = cpdist(left, right, scorer=scorer, dtype=np.float64, workers=1) / 100.0
    empty = np.array([not x or not y for x, y in zip(left, right, strict=True)])
    return np.where(empty, 0.0, scores)


def pair_signals_batch(
    pairs: list[tuple[NormalisedItem, NormalisedItem]], cosines: list[float]
) -> list[dict[str, float]]:
    """``pair_signals`` for all the pairs of a chunk: the string comparisons run column by column
    in rapidfuzz (most of the cost), the rest per pair; the values are the same as one by one."""
    n = len(pairs)
    if n == 0:
        return []
    titles_a = [a.title_core for a, _ in pairs]
    titles_b = [b.title_core for _, b in pairs]
    artists_a = [" ".join(a.artists) for a, _ in pairs]
    artists_b = [" ".join(b.artists) for _, b in pairs]
    full_a = [_full_text(a) for a, _ in pairs]
    full_b = [_full_text(b) for _, b in pairs]
    heads = []
    for a, b in pairs:
        cuts = _cut_phrases(a, b)
        heads.append((title_head(a.title_core, cuts), title_head(b.title_core, cuts)))
    head_text_a = [" ".join(ha) for ha, _ in heads]
    head_text_b = [" ".join(hb) for _, hb in heads]
    title_ratio = _ratios(titles_a, titles_b, fuzz.ratio)
    title_token_set = _ratios(titles_a, titles_b, fuzz.token_set_ratio)
    title_partial = _ratios(titles_a, titles_b, fuzz.partial_ratio)
    artist_ratio = _ratios(artists_a, artists_b, fuzz.ratio)
    artist_token_set = _ratios(artists_a, artists_b, fuzz.token_set_ratio)
    release_ratio = _ratios([a.release for a, _ in pairs], [b.release for _, b in pairs], fuzz.token_set_ratio)
    full_token_set = _ratios(full_a, full_b, fuzz.token_set_ratio)
    full_token_sort = _ratios(full_a, full_b, fuzz.token_sort_ratio)
    title_in_other = np.minimum(
        _ratios(titles_a, full_b, fuzz.partial_ratio), _ratios(titles_b, full_a, fuzz.partial_ratio)
    )
    artist_in_other = np.maximum(
        _ratios(artists_a, full_b, fuzz.partial_ratio), _ratios(artists_b, full_a, fuzz.partial_ratio)
    )
    head_ratio = _ratios(head_text_a, head_text_b, fuzz.ratio)
    head_found = np.maximum(
        _ratios(head_text_a, [_named_text(b) for _, b in pairs], fuzz.partial_ratio),
        _ratios(head_text_b, [_named_text(a) for a, _ in pairs], fuzz.partial_ratio),
    )
    out = []
    for k, (a, b) in enumerate(pairs):
        head_a, head_b = heads[k]
        ratios = {
            "title_ratio": float(title_ratio[k]),
            "title_token_set": float(title_token_set[k]),
            "title_partial": float(title_partial[k]),
            "artist_ratio": float(artist_ratio[k]),
            "artist_token_set": float(artist_token_set[k]),
            "release_ratio": float(release_ratio[k]),
            "full_token_set": float(full_token_set[k]),
            "full_token_sort": float(full_token_sort[k]),
            "title_in_other": float(title_in_other[k]),
            "artist_in_other": float(artist_in_other[k]),
        }
        head = _head_signals(head_a, head_b, float(head_ratio[k]), float(head_found[k]))
        out.append(
            _pair_signals(
                a, b, cosines[k], artists_a[k], artists_b[k], full_a[k], full_b[k], head_a, head_b, ratios, head
            )
        )
    return out


def _pair_signals(
    a: NormalisedItem,
    b: NormalisedItem,
    text_cosine: float,
    artists_a: str,
    artists_b: str,
    full_a: str,
    full_b: str,
    head_a: list[str],
    head_b: list[str],
    ratios: dict[str, float],
    head: tuple[float, float, float, float],
) -> dict[str, float]:
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
    words_a, words_b = _record_words(a), _record_words(b)
    head_prefix, head_cover, head_ratio, head_in_other = head
    performance_differs = bool((a.tags ^ b.tags) & PERFORMANCE_TAGS)
    return {
        "text_cosine": float(text_cosine),
        "title_ratio": ratios["title_ratio"],
        "title_token_set": ratios["title_token_set"],
        "title_partial": ratios["title_partial"],
        "title_equal": float(bool(a.title_core) and a.title_core == b.title_core),
        "artist_ratio": ratios["artist_ratio"],
        "artist_token_set": ratios["artist_token_set"],
        "artist_known": artist_known,
        "artist_overlap": float(overlap),
        "release_ratio": ratios["release_ratio"],
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
        "full_token_set": ratios["full_token_set"],
        "full_token_sort": ratios["full_token_sort"],
        "title_in_other": ratios["title_in_other"],
        "artist_in_other": ratios["artist_in_other"],
        "title_placeholder": float(_is_placeholder(a.title_core) or _is_placeholder(b.title_core)),
        "full_containment": _containment(full_a, full_b),
        "title_prefix": _common_prefix(a.title_core, b.title_core),
        "head_prefix": head_prefix,
        "head_cover": head_cover,
        "head_ratio": head_ratio,
        "head_in_other": head_in_other,
        "performance_differs": float(performance_differs),
        "title_words_found": _title_words_found(head_a, head_b, words_a, words_b),
        "record_jaccard": _jaccard(words_a, words_b),
        # A demo or acoustic take against the album track: how far their lengths are apart
        # (0 when the tags agree or a length is unknown; 1 from a minute on).
        "performance_duration_gap": min(duration_diff, _GAP_SCALE_S) / _GAP_SCALE_S if performance_differs else 0.0,
        # Evidence, not a feature (EVIDENCE_SIGNALS).
        "title_alternate_shared": float(titles_share_a_name(a, b)),
    }


# The media similarities (``resolution.media_evidence.media_signals``) are features too, but a
# pair carries them only where both sides have media: absent, they read 0 with ``*_compared`` 0,
# which is what the matcher was trained to see for a pair without media.
MEDIA_FEATURE_NAMES: tuple[str, ...] = MEDIA_SIGNALS


def feature_value(signals: dict[str, float], name: str) -> float:
    """One model input from a pair's signals: a media feature the pair lacks is 0."""
    if name in MEDIA_FEATURE_NAMES:
        return float(signals.get(name, 0.0))
    return float(signals[name])


def feature_vector(signals: dict[str, float]) -> NDArray[np.float32]:
    return np.array([signals[name] for name in FEATURE_NAMES], dtype=np.float32)
