"""Evolved ContentEvent writer schemas, as a producer a release ahead or behind would have them.

Written out as ``.avsc`` files for the Java producer and the worker's ``RESOLVER_KAFKA_SCHEMA_DIRS``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from streams.topics import SCHEMA_DIR

# A release ahead: one more optional field. A release behind: without the optional `language`.
ADDED_FIELD = {"name": "mood", "type": ["null", "string"], "default": None, "doc": "a later release's field"}
REMOVED_FIELD = "language"


def current_content_event() -> dict[str, Any]:
    return json.loads((SCHEMA_DIR / "ContentEvent.avsc").read_text())


def with_added_field() -> dict[str, Any]:
    schema = current_content_event()
    schema["fields"] = [*schema["fields"], ADDED_FIELD]
    return schema


def with_removed_field() -> dict[str, Any]:
    schema = current_content_event()
    schema["fields"] = [f for f in schema["fields"] if f["name"] != REMOVED_FIELD]
    return schema


def write_evolved(folder: Path) -> dict[str, Path]:
    """Writes both evolved schemas into ``folder``; returns them by their tag (``added``, ``removed``)."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for tag, schema in (("added", with_added_field()), ("removed", with_removed_field())):
        path = folder / f"ContentEvent-{tag}.avsc"
        path.write_text(json.dumps(schema, indent=2))
        out[tag] = path
    return out
