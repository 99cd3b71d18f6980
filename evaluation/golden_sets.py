"""Golden sets as data: each labelled folder validated, fingerprinted and sized by its portions.

What ``resolver datasets DIR...`` prints, and what training and the promotion gate record about
the data they used. A check reads the files as they are (no normalisation): the schema of
``records.csv`` / ``truth.csv`` / ``pairs.csv``, duplicate ids, records without truth and truth
or pairs naming unknown records, and leakage between the portions of ``evaluation.splits``:

- a cluster set is split by work (or entity); an entity whose records carry different works
  can straddle portions, which is leakage;
- a pair set keeps its ``split`` column; the same pair in two portions is leakage (an error), a
  record seen in two portions is normal for these benchmarks and only counted.

The fingerprint is the SHA-256 of the three files' bytes (the content, not the folder name), so
that a model's metadata says exactly which data it saw.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evaluation.datasets import RECORD_COLUMNS
from evaluation.splits import FIT, TEST, TUNE, VALID, cluster_portion, pair_portion

DATA_FILES = ("records.csv", "truth.csv", "pairs.csv")
TRUTH_COLUMNS = ("record_id", "entity_id")
PAIR_COLUMNS = ("left_id", "right_id", "label", "split")
PAIR_SPLITS = frozenset({"train", "valid", "test"})
PORTIONS = (FIT, TUNE, VALID, TEST)
_EXAMPLES = 5  # offending ids shown per problem


@dataclass
class GoldenSetReport:
    name: str
    path: Path
    kind: str  # "cluster" | "pairs"
    fingerprint: str
    file_hashes: dict[str, str]
    records: int
    # Records (cluster set) or pairs (pair set) per portion of evaluation.splits.
    portions: dict[str, int]
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "path": str(self.path),
            "kind": self.kind,
            "fingerprint": self.fingerprint,
            "files": self.file_hashes,
            "records": self.records,
            "portions": self.portions,
            "counts": self.counts,
            "errors": self.errors,
            "warnings": self.warnings,
        }

    def lines(self) -> list[str]:
        sizes = " ".join(f"{p}={self.portions.get(p, 0)}" for p in PORTIONS)
        unit = "records" if self.kind == "cluster" else "pairs"
        status = "OK" if self.ok else f"{len(self.errors)} ERROR(S)"
        out = [
            f"{self.name}: {self.kind} set, {self.records} records, fingerprint {self.fingerprint[:16]} [{status}]",
            f"  {unit} per portion: {sizes}",
        ]
        out += [f"  {k}: {v}" for k, v in sorted(self.counts.items())]
        out += [f"  error: {e}" for e in self.errors]
        out += [f"  warning: {w}" for w in self.warnings]
        return out


def file_hashes(folder: Path) -> dict[str, str]:
    """SHA-256 of each data file present, by file name."""
    out = {}
    for name in DATA_FILES:
        path = Path(folder) / name
        if path.exists():
            out[name] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def fingerprint_of(hashes: dict[str, str]) -> str:
    digest = hashlib.sha256()
    for name in sorted(hashes):
        digest.update(f"{name}:{hashes[name]}\n".encode())
    return digest.hexdigest()


def _read(path: Path, required: tuple[str, ...], errors: list[str]) -> list[dict[str, str]] | None:
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            header = reader.fieldnames or []
            missing = [c for c in required if c not in header]
            if missing:
                errors.append(f"{path.name}: missing columns {missing} (has {header})")
                return None
            return list(reader)
    except UnicodeDecodeError as exc:
        errors.append(f"{path.name}: not UTF-8 ({exc})")
        return None


def _sample(ids: list[str] | set[str]) -> str:
    shown = sorted(ids)[:_EXAMPLES]
    return ", ".join(shown) + (" ..." if len(ids) > _EXAMPLES else "")


def _duplicates(values: list[str]) -> list[str]:
    return [v for v, n in Counter(values).items() if n > 1]


def inspect_golden_set(folder: Path) -> GoldenSetReport:
    """Validates one dataset folder in the shared layout; never raises on bad content."""
    folder = Path(folder)
    errors: list[str] = []
    warnings: list[str] = []
    counts: dict[str, int] = {}
    hashes = file_hashes(folder)
    report_kind = "pairs" if (folder / "pairs.csv").exists() else "cluster"
    if "records.csv" not in hashes:
        errors.append("records.csv is missing")
        return GoldenSetReport(folder.name, folder, report_kind, fingerprint_of(hashes), hashes, 0, {}, errors)
    records = _read(folder / "records.csv", RECORD_COLUMNS, errors) or []
    ids = [(r.get("record_id") or "").strip() for r in records]
    if "" in ids:
        errors.append(f"records.csv: {ids.count('')} records without a record_id")
    dup = _duplicates([i for i in ids if i])
    if dup:
        errors.append(f"records.csv: {len(dup)} duplicate record ids: {_sample(dup)}")
    bad_extra = [
        i for i, r in zip(ids, records, strict=True) if (r.get("extra") or "").strip() and not _json_object(r["extra"])
    ]
    if bad_extra:
        errors.append(f"records.csv: {len(bad_extra)} records whose extra is not a JSON object: {_sample(bad_extra)}")
    untitled = [i for i, r in zip(ids, records, strict=True) if not (r.get("title") or "").strip()]
    if untitled:
        counts["records without a title"] = len(untitled)
    known = set(ids)
    portions: Counter[str] = Counter()
    if report_kind == "pairs":
        _check_pairs(folder, known, errors, warnings, counts, portions)
    elif "truth.csv" in hashes:
        _check_truth(folder, known, errors, warnings, counts, portions)
    else:
        errors.append("neither truth.csv nor pairs.csv: the set has no ground truth")
    return GoldenSetReport(
        folder.name,
        folder,
        report_kind,
        fingerprint_of(hashes),
        hashes,
        len(records),
        {p: portions[p] for p in PORTIONS},
        errors,
        warnings,
        counts,
    )


def _json_object(raw: str) -> bool:
    try:
        return isinstance(json.loads(raw), dict)
    except json.JSONDecodeError:
        return False


def _check_truth(
    folder: Path,
    known: set[str],
    errors: list[str],
    warnings: list[str],
    counts: dict[str, int],
    portions: Counter[str],
) -> None:
    rows = _read(folder / "truth.csv", TRUTH_COLUMNS, errors)
    if rows is None:
        return
    truth_ids = [(r.get("record_id") or "").strip() for r in rows]
    dup = _duplicates(truth_ids)
    if dup:
        errors.append(f"truth.csv: {len(dup)} record ids listed twice: {_sample(dup)}")
    unknown = set(truth_ids) - known
    if unknown:
        errors.append(f"truth.csv: {len(unknown)} ids not in records.csv: {_sample(unknown)}")
    without = known - set(truth_ids)
    if without:
        warnings.append(f"{len(without)} records without truth (left out of training, evaluation): {_sample(without)}")
    no_entity = [i for i, r in zip(truth_ids, rows, strict=True) if not (r.get("entity_id") or "").strip()]
    if no_entity:
        errors.append(f"truth.csv: {len(no_entity)} rows without an entity_id: {_sample(no_entity)}")
    portions_of_entity: dict[str, set[str]] = defaultdict(set)
    entities: set[str] = set()
    works: set[str] = set()
    for record_id, row in zip(truth_ids, rows, strict=True):
        if record_id not in known:
            continue
        entity = (row.get("entity_id") or "").strip()
        work = (row.get("work_id") or "").strip()
        portion = cluster_portion(work or entity)
        portions[portion] += 1
        portions_of_entity[entity].add(portion)
        entities.add(entity)
        if work:
            works.add(work)
    leaking = [e for e, ps in portions_of_entity.items() if len(ps) > 1]
    if leaking:
        errors.append(
            f"leakage: {len(leaking)} entities have records in several portions (works differ): {_sample(leaking)}"
        )
    counts["entities"] = len(entities)
    if works:
        counts["works"] = len(works)


def _check_pairs(
    folder: Path,
    known: set[str],
    errors: list[str],
    warnings: list[str],
    counts: dict[str, int],
    portions: Counter[str],
) -> None:
    rows = _read(folder / "pairs.csv", PAIR_COLUMNS, errors)
    if rows is None:
        return
    seen: dict[tuple[str, str], set[str]] = defaultdict(set)
    labels: dict[tuple[str, str], set[str]] = defaultdict(set)
    record_portions: dict[str, set[str]] = defaultdict(set)
    bad_label = bad_split = dangling = 0
    for row in rows:
        left, right = (row.get("left_id") or "").strip(), (row.get("right_id") or "").strip()
        label, split = (row.get("label") or "").strip(), (row.get("split") or "").strip()
        if label not in ("0", "1"):
            bad_label += 1
            continue
        if split not in PAIR_SPLITS:
            bad_split += 1
            continue
        if left not in known or right not in known:
            dangling += 1
            continue
        key = (min(left, right), max(left, right))
        portion = pair_portion(split, left, right)
        portions[portion] += 1
        seen[key].add(split)
        labels[key].add(label)
        record_portions[left].add(split)
        record_portions[right].add(split)
    if bad_label:
        errors.append(f"pairs.csv: {bad_label} rows whose label is not 0 or 1")
    if bad_split:
        errors.append(f"pairs.csv: {bad_split} rows whose split is not one of {sorted(PAIR_SPLITS)}")
    if dangling:
        errors.append(f"pairs.csv: {dangling} pairs naming records not in records.csv")
    pair_total = sum(portions.values())
    dup = pair_total - len(seen)
    if dup:
        warnings.append(f"{dup} pairs listed more than once")
    contradicting = [f"{a}|{b}" for (a, b), ls in labels.items() if len(ls) > 1]
    if contradicting:
        errors.append(f"pairs.csv: {len(contradicting)} pairs labelled both 0 and 1: {_sample(contradicting)}")
    leaking = [f"{a}|{b}" for (a, b), splits in seen.items() if len(splits) > 1]
    if leaking:
        errors.append(f"leakage: {len(leaking)} pairs appear in several splits: {_sample(leaking)}")
    shared = [r for r, splits in record_portions.items() if len(splits) > 1]
    counts["records in pairs of several splits"] = len(shared)
    counts["positive pairs"] = sum(1 for ls in labels.values() if "1" in ls)
    unpaired = known - set(record_portions)
    if unpaired:
        counts["records in no pair"] = len(unpaired)
