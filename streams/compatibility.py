"""FULL compatibility of each current schema with its released versions, as a registry checks it.

Backward: the current schema reads what any released version wrote. Forward: any released version
reads what the current schema writes. The checker is the Apache Avro Python package's (a port of
Java's ``SchemaCompatibility``), not ours, so the rule is the ecosystem's; it is a development
tool (``resolver schemas check``), so the package comes with the dev dependencies.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from streams.topics import SCHEMA_DIR, SCHEMA_NAMES, SchemaVersion, released_versions


@dataclass(frozen=True)
class CompatibilityReport:
    schema: str
    current: SchemaVersion
    released: list[SchemaVersion]
    # (released version label, "backward" | "forward", what breaks)
    problems: list[tuple[str, str, str]]

    @property
    def ok(self) -> bool:
        return not self.problems


def _problems(reader: SchemaVersion, writer: SchemaVersion) -> list[str]:
    try:
        import avro.schema
        from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType
    except ImportError as exc:  # pragma: no cover - dev dependency
        raise RuntimeError("resolver schemas check needs the Python avro package (the dev dependencies)") from exc
    result = ReaderWriterCompatibilityChecker().get_compatibility(
        avro.schema.parse(json.dumps(reader.raw)), avro.schema.parse(json.dumps(writer.raw))
    )
    if result.compatibility is SchemaCompatibilityType.compatible:
        return []
    kinds = ", ".join(sorted({t.name for t in result.incompatibilities}))
    return [f"{kinds}: {', '.join(sorted(result.messages))} at {', '.join(sorted(result.locations))}"]


def check_full_compatibility(schema_dir: Path = SCHEMA_DIR) -> list[CompatibilityReport]:
    reports = []
    for name in SCHEMA_NAMES:
        current = SchemaVersion.from_file(schema_dir / f"{name}.avsc", "current")
        released = released_versions(schema_dir, name)
        problems: list[tuple[str, str, str]] = []
        if not released:
            problems.append(("-", "released", f"no released version in {schema_dir / 'released' / name}"))
        for old in released:
            problems += [(old.version, "backward", p) for p in _problems(current, old)]
            problems += [(old.version, "forward", p) for p in _problems(old, current)]
        reports.append(CompatibilityReport(name, current, released, problems))
    return reports
