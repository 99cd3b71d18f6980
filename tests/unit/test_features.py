"""Comparison signals that the learned matcher reads: cases worked out by hand."""

from __future__ import annotations

import pytest

from resolution.features import FEATURE_NAMES, pair_signals, title_head
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
    assert set(pair_signals(a, b, 0.5)) == set(FEATURE_NAMES)


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
