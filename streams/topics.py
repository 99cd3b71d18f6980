"""Topics and their Avro schemas, in one place.

Records travel in Avro single-object encoding (no schema registry): two marker bytes
``C3 01``, the schema's 8-byte CRC-64-AVRO fingerprint (little-endian), then the Avro
binary body. The ``.avsc`` files beside this module are the contract.
"""

from __future__ import annotations

import io
import json
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fastavro
from fastavro.schema import fingerprint, parse_schema, to_parsing_canonical_form

SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"
MAGIC = b"\xc3\x01"
HEADER_LEN = 10


class CodecError(ValueError):
    """Bytes that are not a record of the expected schema; ``reason`` is machine-readable."""

    def __init__(self, reason: str, detail: str, field: str | None = None) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.field = field


@dataclass(frozen=True)
class AvroSchema:
    name: str
    parsed: Any
    fingerprint: bytes

    @classmethod
    def load(cls, name: str) -> AvroSchema:
        raw = json.loads((SCHEMA_DIR / f"{name}.avsc").read_text())
        parsed = parse_schema(raw)
        canonical = to_parsing_canonical_form(raw)
        fp = int(fingerprint(canonical, "CRC-64-AVRO"), 16)
        return cls(name=name, parsed=parsed, fingerprint=struct.pack("<Q", fp))

    def encode(self, record: dict[str, Any]) -> bytes:
        buf = io.BytesIO()
        buf.write(MAGIC)
        buf.write(self.fingerprint)
        try:
            fastavro.schemaless_writer(buf, self.parsed, record, strict=True)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise CodecError("encode_failed", f"{self.name}: {exc}") from exc
        return buf.getvalue()

    def decode(self, data: bytes) -> dict[str, Any]:
        if not isinstance(data, (bytes, bytearray)) or len(data) < HEADER_LEN:
            raise CodecError("malformed_avro", f"{len(data or b'')} bytes: too short for a single-object header")
        if data[:2] != MAGIC:
            raise CodecError("malformed_avro", f"missing single-object marker (got {bytes(data[:2]).hex()})")
        if data[2:HEADER_LEN] != self.fingerprint:
            raise CodecError(
                "unknown_fingerprint",
                f"schema fingerprint {bytes(data[2:HEADER_LEN]).hex()} is not {self.name} ({self.fingerprint.hex()})",
            )
        buf = io.BytesIO(data[HEADER_LEN:])
        try:
            record = fastavro.schemaless_reader(buf, self.parsed)
        except (StopIteration, EOFError) as exc:
            raise CodecError("malformed_avro", f"truncated {self.name} body: {exc!r}") from exc
        except UnicodeDecodeError as exc:
            raise CodecError("invalid_utf8", f"{self.name}: {exc}") from exc
        except (ValueError, TypeError, IndexError, OverflowError, MemoryError, struct.error) as exc:
            raise CodecError("malformed_avro", f"{self.name}: {type(exc).__name__}: {exc}") from exc
        if buf.tell() != len(data) - HEADER_LEN:
            raise CodecError(
                "malformed_avro", f"{len(data) - HEADER_LEN - buf.tell()} trailing bytes after {self.name}"
            )
        return record  # type: ignore[return-value]


@dataclass(frozen=True)
class Schemas:
    content_event: AvroSchema
    decision: AvroSchema
    dead_letter: AvroSchema
    feedback: AvroSchema

    @classmethod
    def load(cls) -> Schemas:
        return cls(
            content_event=AvroSchema.load("ContentEvent"),
            decision=AvroSchema.load("ResolutionDecision"),
            dead_letter=AvroSchema.load("DeadLetter"),
            feedback=AvroSchema.load("CuratorFeedback"),
        )


@dataclass(frozen=True)
class TopicNames:
    content: str
    decisions: str
    dlq: str
    feedback: str

    def all(self) -> list[str]:
        return [self.content, self.decisions, self.dlq, self.feedback]


CONTENT_KINDS = ("recording", "music_video", "live_video", "lyric_video", "other")
ACTIONS = ("MERGE", "LINK", "NEW", "SPLIT", "REASSIGN", "CONSTRAIN")
