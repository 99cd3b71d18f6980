"""Cells shifted into the wrong columns, and a feed's duration unit (resolution/feed_values.py)."""

from __future__ import annotations

import pytest

from resolution.feed_values import (
    SHIFTABLE_CELLS,
    feed_counts_milliseconds,
    parse_duration_ms,
    repair_shifted_fields,
)


def _cells(**given: str) -> dict[str, str]:
    return {name: given.get(name, "") for name in SHIFTABLE_CELLS}


def test_rotated_row_is_put_back() -> None:
    # musicbrainz-20k record 290: every cell one place on, the source key in the track number
    shifted = _cells(
        title="009",
        artist="03:10",
        release="Electric Mayhem Band",
        duration="Run, Run Rudolph",
        year="The Muppets: A Green and Red Christmas",
        track_number="WoM14737942",
    )
    assert repair_shifted_fields(shifted) == _cells(
        title="Run, Run Rudolph",
        artist="Electric Mayhem Band",
        release="The Muppets: A Green and Red Christmas",
        duration="03:10",
        source_key="WoM14737942",
        track_number="009",
    )


def test_title_swapped_with_duration_or_year() -> None:
    swapped = _cells(title="02:28", artist="Tant Strul", duration="Hjärtan slå", year="1993")
    assert repair_shifted_fields(swapped) == _cells(
        title="Hjärtan slå", artist="Tant Strul", duration="02:28", year="1993"
    )
    cycled = _cells(title="2001", artist="Atombombpocketknife", duration="This Dixie Crash", year="02:24")
    assert repair_shifted_fields(cycled) == _cells(
        title="This Dixie Crash", artist="Atombombpocketknife", duration="02:24", year="2001"
    )


@pytest.mark.parametrize(
    ("cells", "expected"),
    [
        (
            _cells(title="Intro", artist="WoM2729260", source_key="Guy Smiley"),
            _cells(title="Intro", artist="Guy Smiley", source_key="WoM2729260"),
        ),
        (
            _cells(title="Love Is in the Air", release="907364", duration="247853", source_key="Sound Spirit"),
            _cells(title="Love Is in the Air", release="Sound Spirit", duration="247853", source_key="907364"),
        ),
        (
            _cells(title="Mr. Vain", duration="WoM14979634", source_key="04:17"),
            _cells(title="Mr. Vain", duration="04:17", source_key="WoM14979634"),
        ),
    ],
)
def test_source_key_swapped_with_a_cell(cells: dict[str, str], expected: dict[str, str]) -> None:
    assert repair_shifted_fields(cells) == expected


@pytest.mark.parametrize(
    "cells",
    [
        _cells(title="Gypsy", artist="Cinderella", duration="03:57", year="1998", source_key="WoM4620746"),
        _cells(title="1999", artist="Prince", duration="6:15", year="1982", track_number="1"),  # a title of digits
        _cells(title="Hoy", artist="Tony Vega", duration="Serie Cristal", year="1997"),  # a copy: nothing to swap
        _cells(title="03:47", artist="Get It", duration="03:47"),  # the title lost, not moved
        _cells(title="Sometimes", artist="Brand New Heavies", duration="217333", source_key="4 789495"),
        _cells(title="Oly", artist="Mochipet", duration="313913", source_key="null", track_number="12"),
    ],
)
def test_rows_in_place_are_left_alone(cells: dict[str, str]) -> None:
    assert repair_shifted_fields(cells) == cells


def test_feed_in_milliseconds() -> None:
    assert feed_counts_milliseconds(["321266", "462000", "7000", "unk.", "195 000"])
    assert not feed_counts_milliseconds(["219", "129", "7", "null"])
    assert not feed_counts_milliseconds(["03:10", "4m 2sec", ""])
    # a 7 s jingle from a millisecond feed; its decimals and clock values read as before
    assert parse_duration_ms("7000", whole_numbers_in_ms=True) == 7_000
    assert parse_duration_ms("7000") == 7_000_000
    assert parse_duration_ms("3.5", whole_numbers_in_ms=True) == 210_000
    assert parse_duration_ms("03:10", whole_numbers_in_ms=True) == 190_000
