"""`resolver schemas check`: the shipped schemas pass; a change breaking FULL compatibility is refused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from content_resolver.cli import main
from streams.compatibility import check_full_compatibility
from streams.topics import SCHEMA_DIR, SCHEMA_NAMES
from tests.interop.evolved import with_added_field, with_removed_field


def schema_dir_with(tmp_path: Path, content_event: dict) -> Path:
    folder = tmp_path / "schemas"
    shutil.copytree(SCHEMA_DIR, folder)
    (folder / "ContentEvent.avsc").write_text(json.dumps(content_event))
    return folder


def test_shipped_schemas_are_full_compatible_with_every_released_version() -> None:
    reports = check_full_compatibility()
    assert [r.schema for r in reports] == list(SCHEMA_NAMES)
    assert all(r.released for r in reports)
    assert [r.problems for r in reports] == [[]] * len(reports)
    assert main(["schemas", "check"]) == 0


def test_released_versions_are_numbered_from_one() -> None:
    for name in SCHEMA_NAMES:
        released = sorted((SCHEMA_DIR / "released" / name).glob("*.avsc"))
        assert released, name
        assert [p.stem for p in released] == [str(i) for i in range(1, len(released) + 1)]


@pytest.mark.parametrize("evolved", [with_added_field, with_removed_field])
def test_optional_field_added_or_removed_is_accepted(tmp_path: Path, evolved) -> None:
    assert main(["schemas", "check", "--schema-dir", str(schema_dir_with(tmp_path, evolved()))]) == 0


def _required_field_added(schema: dict) -> dict:
    return {**schema, "fields": [*schema["fields"], {"name": "mood", "type": "string"}]}


def _required_field_removed(schema: dict) -> dict:
    return {**schema, "fields": [f for f in schema["fields"] if f["name"] != "title"]}


def _type_narrowed(schema: dict) -> dict:
    fields = [{**f, "type": "int"} if f["name"] == "produced_at_ms" else f for f in schema["fields"]]
    return {**schema, "fields": fields}


@pytest.mark.parametrize(
    ("change", "direction"),
    [(_required_field_added, "backward"), (_required_field_removed, "forward"), (_type_narrowed, "backward")],
)
def test_breaking_change_is_refused(tmp_path: Path, change, direction: str, capsys: pytest.CaptureFixture) -> None:
    folder = schema_dir_with(tmp_path, change(json.loads((SCHEMA_DIR / "ContentEvent.avsc").read_text())))
    report = next(r for r in check_full_compatibility(folder) if r.schema == "ContentEvent")
    assert not report.ok
    assert direction in {d for _v, d, _p in report.problems}
    assert main(["schemas", "check", "--schema-dir", str(folder)]) == 1
    assert "BREAKS compatibility" in capsys.readouterr().out
