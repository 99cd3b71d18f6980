"""Single-object encoding with the Apache Avro Python package (``avro``), not our fastavro codec.

The package has no single-object encoder, so the spec's header is put together here from its own
CRC-64-AVRO fingerprint; the body and the schema resolution are the package's."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import avro.io
import avro.schema

MARKER = b"\xc3\x01"


def load(path: Path) -> avro.schema.RecordSchema:
    return record_schema(path.read_text())


def record_schema(text: str) -> avro.schema.RecordSchema:
    """A topic's schema, which is always a record (its fields are what the tests read)."""
    schema = avro.schema.parse(text)
    assert isinstance(schema, avro.schema.RecordSchema), f"not a record schema: {schema.type}"
    return schema


def encode(schema: avro.schema.Schema, record: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    avro.io.DatumWriter(schema).write(record, avro.io.BinaryEncoder(buf))
    return MARKER + schema.fingerprint("CRC-64-AVRO") + buf.getvalue()


class SingleObjectReader:
    """Decodes records written with any of ``writers`` as ``reader`` (Avro schema resolution)."""

    def __init__(self, reader: avro.schema.Schema, writers: list[avro.schema.Schema]) -> None:
        self._reader = reader
        self._writers = {w.fingerprint("CRC-64-AVRO"): w for w in [reader, *writers]}

    def decode(self, data: bytes) -> dict[str, Any]:
        if data[:2] != MARKER:
            raise ValueError(f"no single-object marker: {data[:2].hex()}")
        writer = self._writers.get(data[2:10])
        if writer is None:
            raise ValueError(f"unknown writer fingerprint {data[2:10].hex()}")
        body = io.BytesIO(data[10:])
        record = avro.io.DatumReader(writer, self._reader).read(avro.io.BinaryDecoder(body))
        if body.tell() != len(data) - 10:
            raise ValueError("trailing bytes")
        return record  # type: ignore[return-value]


def schema_json(schema: avro.schema.Schema) -> dict[str, Any]:
    return json.loads(str(schema))
