"""The generated audio/image set, built from real recordings and scores (tiny size, ~30 s), and the
issue-12 targets measured on it. Needs ffmpeg, fluidsynth, fpcalc, fluid-soundfont-gm,
wesnoth-music and music21; skipped with the list of what is missing otherwise."""

from __future__ import annotations

from pathlib import Path

import pytest

from media.generated_set import generate, missing_tools


@pytest.fixture(scope="module")
def media_figures(tmp_path_factory: pytest.TempPathFactory) -> dict:
    missing = missing_tools()
    if missing:
        pytest.skip("media tools missing (.ci/run installs them): " + ", ".join(missing))
    from media.evaluation import evaluate

    folder: Path = tmp_path_factory.mktemp("media") / "set"
    return evaluate(generate(seed=12, size="tiny", folder=folder))


def test_the_set_has_every_role(media_figures: dict) -> None:
    assert set(media_figures["roles"]) == {"studio", "duplicate", "version", "live", "video"}


def test_duplicates_are_found_by_fingerprint(media_figures: dict) -> None:
    assert media_figures["same_recording_recall_at_10"] >= 0.99
    assert media_figures["index_recall_at_10"] >= 0.99  # as the media index retrieves


def test_versions_score_same_work_but_not_same_recording(media_figures: dict) -> None:
    assert media_figures["same_work_roc_auc"] >= 0.9
    assert media_figures["versions_scored_same_recording"] == 0.0


def test_videos_find_their_recording_and_live_takes_are_told_apart(media_figures: dict) -> None:
    assert media_figures["video_to_recording_accuracy"] >= 0.95
    assert media_figures["video_only_official_video_titles"]["videos"] >= 1
    assert media_figures["live_vs_studio_accuracy"] >= 0.95


def test_transformed_covers_find_their_source(media_figures: dict) -> None:
    assert media_figures["images"]["dhash"]["top1"] >= 0.9
