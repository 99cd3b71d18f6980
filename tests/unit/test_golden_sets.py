"""``resolver datasets``: validation, fingerprints and split sizes of golden sets the tests write."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import pytest

from content_resolver.cli import main
from evaluation.datasets import LabelledPair, TruthRow, write_dataset
from evaluation.golden_sets import inspect_golden_set
from evaluation.sample_catalogue import generate_catalogue
from evaluation.splits import cluster_portion
from tests.shared_data import SHARED_DATA


def _cluster_set(folder: Path, songs: int = 40) -> Path:
    items, truth = generate_catalogue(seed=5, songs=songs)
    write_dataset(folder, items, truth)
    return folder


def _rewrite(path: Path, edit) -> None:
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        header, rows = list(reader.fieldnames or []), list(reader)
    rows = edit(rows)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=header)
        writer.writeheader()
        writer.writerows(rows)


def test_clean_cluster_set_sizes_and_fingerprint(tmp_path: Path) -> None:
    folder = _cluster_set(tmp_path / "clean")
    report = inspect_golden_set(folder)
    assert report.ok, report.errors
    assert report.kind == "cluster"
    assert sum(report.portions.values()) == report.records > 0
    assert report.portions["fit"] > report.portions["tune"] > 0
    # The fingerprint is of the content: the same files elsewhere give the same one.
    copy = tmp_path / "copy"
    copy.mkdir()
    for name in ("records.csv", "truth.csv"):
        (copy / name).write_bytes((folder / name).read_bytes())
    assert inspect_golden_set(copy).fingerprint == report.fingerprint
    _rewrite(copy / "records.csv", lambda rows: [{**rows[0], "title": rows[0]["title"] + "!"}, *rows[1:]])
    assert inspect_golden_set(copy).fingerprint != report.fingerprint


def test_duplicate_ids_missing_truth_and_leakage_are_reported(tmp_path: Path) -> None:
    folder = _cluster_set(tmp_path / "bad")
    _rewrite(folder / "records.csv", lambda rows: [*rows, dict(rows[0])])
    # One entity, its records given works that the split puts in two different portions.
    fit_work = next(f"w{n}" for n in range(1000) if cluster_portion(f"w{n}") == "fit")
    valid_work = next(f"w{n}" for n in range(1000) if cluster_portion(f"w{n}") == "valid")

    def leak(rows: list[dict[str, str]]) -> list[dict[str, str]]:
        by_entity = Counter(r["entity_id"] for r in rows)
        entity = next(e for e, n in by_entity.items() if n >= 3)
        members = [r for r in rows if r["entity_id"] == entity]
        out = [r for r in rows if r["entity_id"] != entity]
        out += [{**members[0], "work_id": fit_work}, {**members[1], "work_id": valid_work}]
        # members[2] left out: a record without truth; and a truth row for a record nobody has
        out.append({"record_id": "r-extra", "entity_id": entity, "work_id": fit_work})
        return out

    _rewrite(folder / "truth.csv", leak)
    report = inspect_golden_set(folder)
    text = "\n".join(report.errors + report.warnings)
    assert "duplicate record ids" in text
    assert "ids not in records.csv" in text  # r-extra
    assert "records without truth" in text
    assert "leakage" in text
    assert not report.ok


def test_pair_set_leakage_labels_and_schema(tmp_path: Path) -> None:
    items, _truth = generate_catalogue(seed=6, songs=10)
    ids = [i.content_id for i in items]
    pairs = [
        LabelledPair(ids[0], ids[1], 1, "train"),
        LabelledPair(ids[2], ids[3], 0, "valid"),
        LabelledPair(ids[1], ids[0], 1, "valid"),  # the same pair in two splits
        LabelledPair(ids[4], ids[5], 0, "train"),
        LabelledPair(ids[5], ids[4], 1, "train"),  # labelled both ways
    ]
    write_dataset(tmp_path / "pairs", items, {i: TruthRow(i) for i in ids}, pairs)
    report = inspect_golden_set(tmp_path / "pairs")
    assert report.kind == "pairs"
    assert any("appear in several splits" in e for e in report.errors)
    assert any("labelled both 0 and 1" in e for e in report.errors)
    assert report.portions["valid"] == 2

    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "records.csv").write_text("record_id,title\nx,y\n", encoding="utf-8")
    broken = inspect_golden_set(tmp_path / "broken")
    assert any("missing columns" in e for e in broken.errors)
    assert any("no ground truth" in e for e in broken.errors)


def test_datasets_command_exit_status(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clean = _cluster_set(tmp_path / "clean")
    assert main(["datasets", str(clean), "--json", str(tmp_path / "out.json")]) == 0
    out = capsys.readouterr().out
    assert "records per portion: fit=" in out and "fingerprint" in out
    (tmp_path / "empty").mkdir()
    assert main(["datasets", str(clean), str(tmp_path / "empty")]) == 1
    assert "records.csv is missing" in capsys.readouterr().out


@pytest.mark.skipif(not SHARED_DATA.exists(), reason=f"{SHARED_DATA} absent (a fresh clone): no golden sets to check")
def test_shared_golden_sets() -> None:
    reports = {r.name: r for r in (inspect_golden_set(d) for d in sorted(SHARED_DATA.iterdir()) if d.is_dir())}
    mb = reports["musicbrainz-20k"]
    assert mb.ok and mb.counts["entities"] == 10_000 and mb.records == 19_375
    assert reports["shs100k-versions"].counts["works"] == 1_842
    # Every set is split into portions the way training and evaluation split it.
    for report in reports.values():
        assert report.portions["fit"] > 0 and report.portions["valid"] > 0, report.name
