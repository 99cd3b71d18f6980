"""Comparison signals that the learned matcher reads: cases worked out by hand."""

from __future__ import annotations

from dataclasses import replace

import pytest

from resolution.features import EVIDENCE_SIGNALS, FEATURE_NAMES, pair_signals, title_head, titles_share_a_name
from resolution.model import ContentItem
from resolution.normalise import NormalisedItem, normalise


def _item(content_id: str, title: str, artist: str = "", release: str | None = None) -> NormalisedItem:
    return normalise(
        ContentItem(
            event_id=content_id,
            content_id=content_id,
            source="s",
            kind="recording",
            title=title,
            artists=(artist,) if artist else (),
            release=release,
        )
    )


def test_every_signal_is_named() -> None:
    a, b = _item("a", "Silver and Gold", "Little Big Town"), _item("b", "Silver And Gold")
    assert set(pair_signals(a, b, 0.5)) == set(FEATURE_NAMES) | set(EVIDENCE_SIGNALS)
    # evidence for the rules is never a model input: the served matcher's features are fixed
    assert not set(EVIDENCE_SIGNALS) & set(FEATURE_NAMES)


@pytest.mark.parametrize(
    ("left", "right", "shared"),
    [
        ("Chick Habit / Laisse tomber les filles", "Laisse Tomber les Filles", True),
        ("Dovidjenja ljubavi (Goodbye My Love, Goodbye)", "Goodbye My Love, Goodbye", True),
        ("Good Riddance (Time of Your Life)", "Time of Your Life (Good Riddance)", True),
        ("Cimarron (Roll On)", "Cimarron", True),
        # equal titles are the features' business; other songs share nothing
        ("Cimarron (Roll On)", "Cimarron (Roll On)", False),
        ("Cimarron", "Cimarron", False),
        ("Goodbye My Love, Goodbye", "Hello My Love", False),
        # a version tag is not a name of the song
        ("Satellite (Live)", "Live", False),
    ],
)
def test_titles_share_a_name(left: str, right: str, shared: bool) -> None:
    a, b = _item("a", left, "A"), _item("b", right, "B")
    assert titles_share_a_name(a, b) is shared
    assert titles_share_a_name(b, a) is shared
    assert pair_signals(a, b, 0.5)["title_alternate_shared"] == float(shared)


@pytest.mark.parametrize(
    ("title", "cuts", "head"),
    [
        ("silver and gold little big town country", [["little", "big", "town"]], ["silver", "and", "gold"]),
        # never cut at the first word: a song may be named like its artist
        ("little big town", [["little", "big", "town"]], ["little", "big", "town"]),
        ("cowboy boots 2012 macklemore llc", [["macklemore"]], ["cowboy", "boots"]),
        ("gone", [], ["gone"]),
    ],
)
def test_title_head(title: str, cuts: list[list[str]], head: list[str]) -> None:
    assert title_head(title, cuts) == head


def test_head_signals_see_the_title_behind_glued_fields() -> None:
    # One store glued artist, genre and a copyright notice into the title; the other did not.
    clean = _item("a", "Silver and Gold 3:33", "Little Big Town", "Pain Killer")
    glued = _item("b", "Silver And Gold Little Big Town Country ( C ) 2014 Little Big Town LLC 3:31")
    s = pair_signals(clean, glued, 0.8)
    assert s["head_prefix"] == 1.0
    assert s["duration_known"] == 1.0 and s["duration_diff_s"] == 2.0
    other = _item("c", "Pain Killer Little Big Town Country ( C ) 2014 Little Big Town LLC 3:12")
    s = pair_signals(clean, other, 0.8)
    assert s["head_prefix"] == 0.0 and s["head_cover"] == 0.0


def test_head_cover_tells_a_longer_title_apart() -> None:
    s = pair_signals(_item("a", "Take There", "Skrillex"), _item("b", "Take There Again", "Skrillex"), 0.9)
    assert s["head_prefix"] == 1.0
    assert s["head_cover"] == pytest.approx(2 / 3)


def test_title_words_found_in_any_field() -> None:
    # One store put the artist inside the title and the title's words elsewhere; the song's
    # name is still found in the other record.
    scrambled = _item("a", "Paper Harbour Otis Fenwick Dance Music", "", "Night Lights")
    clean = _item("b", "Paper Harbour", "Otis Fenwick", "Night Lights")
    assert pair_signals(scrambled, clean, 0.8)["title_words_found"] == 1.0
    # Genre words glued after the title: the shorter side's title is found in full.
    glued = _item("c", "Paper Harbour Pop Rock", "Otis Fenwick")
    assert pair_signals(glued, clean, 0.8)["title_words_found"] == 1.0
    # Two songs of one album: artist, release and year agree, the title's words are nowhere.
    other = _item("d", "Quiet Engine Dance Music", "Otis Fenwick", "Night Lights")
    s = pair_signals(clean, other, 0.8)
    assert s["title_words_found"] == 0.0
    assert s["record_jaccard"] == pytest.approx(4 / 10)  # otis fenwick night lights of 10 words


def test_title_words_found_skips_fillers_unless_alone() -> None:
    a, b = _item("a", "The Harbour", "Otis"), _item("b", "The Engine", "Otis")
    assert pair_signals(a, b, 0.5)["title_words_found"] == 0.0  # "the" alone proves nothing
    a, b = _item("a", "The The", "Otis"), _item("b", "The", "Otis")
    assert pair_signals(a, b, 0.5)["title_words_found"] == 1.0


def test_performance_duration_gap() -> None:
    def timed(content_id: str, title: str, seconds: int) -> NormalisedItem:
        item = _item(content_id, title, "Otis Fenwick")
        return replace(item, duration_ms=seconds * 1000)

    album = timed("a", "Paper Harbour", 241)
    assert pair_signals(timed("b", "Paper Harbour ( Demo )", 305), album, 0.9)["performance_duration_gap"] == 1.0
    gap = pair_signals(timed("c", "Paper Harbour ( Acoustic )", 256), album, 0.9)["performance_duration_gap"]
    assert gap == pytest.approx(15 / 60)
    # the same tags, or no performance tag on either side: no gap, whatever the lengths
    assert pair_signals(timed("d", "Paper Harbour ( Remastered )", 305), album, 0.9)["performance_duration_gap"] == 0.0
