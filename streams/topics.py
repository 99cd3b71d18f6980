"""Topics and their Avro schemas, in one place.

Records travel in Avro single-object encoding exactly as the specification defines it (no
schema registry): two marker bytes ``C3 01``, the 8-byte CRC-64-AVRO fingerprint of the writer
schema's parsing canonical form, little-endian, then the Avro binary body; any Avro library
(Java's ``BinaryMessageEncoder``/``BinaryMessageDecoder``, for one) reads and writes it.

``schemas/<Name>.avsc`` is the schema this code writes and reads with; ``schemas/released/<Name>/
<N>.avsc`` keeps every released version. A record written with any known version is resolved to
the current schema (Avro schema resolution), so producers and consumers evolve independently;
``resolver schemas check`` keeps each change FULL-compatible with the released versions.
"""

from __future__ import annotations

import collections
import functools
import io
import json
import logging
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fastavro
from fastavro.read import SchemaResolutionError
from fastavro.schema import fingerprint, parse_schema, to_parsing_canonical_form

SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"
RELEASED_DIR = SCHEMA_DIR / "released"
MAGIC = b"\xc3\x01"
HEADER_LEN = 10
SCHEMA_NAMES = ("ContentEvent", "ResolutionDecision", "DeadLetter", "CuratorFeedback")
# Warn in the log for the first legacy record of each schema and then every this many.
LEGACY_LOG_EVERY = 1000

log = logging.getLogger(__name__)
# Records read in this process with the fingerprint in the old byte order, per schema name; the
# worker exports it as resolver_legacy_fingerprint_records_total.
LEGACY_READS: collections.Counter[str] = collections.Counter()


class CodecError(ValueError):
    """Bytes that are not a record of the expected schema; ``reason`` is machine-readable."""

    def __init__(self, reason: str, detail: str, field: str | None = None) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.field = field


def spec_fingerprint(raw: Any) -> bytes:
    """The 8 header bytes the spec prescribes: CRC-64-AVRO of the parsing canonical form, little-endian.

    fastavro's hex string already lists those bytes in little-endian order."""
    return bytes.fromhex(fingerprint(to_parsing_canonical_form(raw), "CRC-64-AVRO"))


@dataclass(frozen=True)
class SchemaVersion:
    """One writer schema the readers know: a released version, the current one, or a configured extra."""

    name: str
    version: str
    raw: Any
    parsed: Any
    fingerprint: bytes

    @classmethod
    def from_file(cls, path: Path, version: str) -> SchemaVersion:
        raw = json.loads(path.read_text())
        if not isinstance(raw, dict) or raw.get("type") != "record" or "name" not in raw:
            raise ValueError(f"{path}: not an Avro record schema")
        return cls(str(raw["name"]), version, raw, parse_schema(raw), spec_fingerprint(raw))

    @property
    def label(self) -> str:
        return f"{self.name} {self.version}"


@dataclass
class SchemaStore:
    """Every writer schema the readers accept, by fingerprint, and the records read in the old byte order."""

    versions: list[SchemaVersion]

    def __post_init__(self) -> None:
        # The first of equal schemas names them: a released version before "current".
        self._by_fingerprint: dict[bytes, SchemaVersion] = {}
        for v in self.versions:
            self._by_fingerprint.setdefault(v.fingerprint, v)
        # Before the spec fix the 8 bytes were written reversed; such records are still on topics.
        self._by_legacy = {fp[::-1]: v for fp, v in self._by_fingerprint.items()}

    @classmethod
    def load(cls, schema_dir: Path = SCHEMA_DIR, extra_dirs: Iterable[Path] = ()) -> SchemaStore:
        versions: list[SchemaVersion] = []
        for name in SCHEMA_NAMES:
            versions.extend(released_versions(schema_dir, name))
            versions.append(SchemaVersion.from_file(schema_dir / f"{name}.avsc", "current"))
        for extra in extra_dirs:
            for path in sorted(Path(extra).glob("*.avsc")):
                versions.append(SchemaVersion.from_file(path, path.name))
        return cls(versions)

    def writer(self, header: bytes) -> tuple[SchemaVersion, bool] | None:
        """The writer schema named by a header's fingerprint, and whether it came in the old byte order."""
        found = self._by_fingerprint.get(header)
        if found is not None:
            return found, False
        legacy = self._by_legacy.get(header)
        return (legacy, True) if legacy is not None else None

    @staticmethod
    def note_legacy(name: str) -> None:
        LEGACY_READS[name] += 1
        count = LEGACY_READS[name]
        if count == 1 or count % LEGACY_LOG_EVERY == 0:
            log.warning(
                "%d %s record(s) read with the fingerprint in the old (reversed) byte order;"
                " nothing is written that way any more",
                count,
                name,
            )


def released_versions(schema_dir: Path, name: str) -> list[SchemaVersion]:
    """Released versions of one schema, oldest first (``released/<Name>/<N>.avsc``)."""
    folder = schema_dir / "released" / name
    paths = sorted(folder.glob("*.avsc"), key=lambda p: int(p.stem) if p.stem.isdigit() else 1 << 30)
    return [SchemaVersion.from_file(p, f"v{p.stem}") for p in paths]


@dataclass(frozen=True)
class AvroSchema:
    """The reader and writer of one record type: writes the current schema, reads any known version."""

    name: str
    parsed: Any
    fingerprint: bytes
    store: SchemaStore

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
        header = bytes(data[2:HEADER_LEN])
        found = self.store.writer(header)
        if found is None or found[0].name != self.name:
            known = f" (it is {found[0].label})" if found is not None else ""
            raise CodecError(
                "unknown_fingerprint",
                f"schema fingerprint {header.hex()} is not a known {self.name} schema{known}; "
                f"current {self.name} is {self.fingerprint.hex()}",
            )
        writer, legacy = found
        if legacy:
            self.store.note_legacy(self.name)
        buf = io.BytesIO(data[HEADER_LEN:])
        try:
            if writer.fingerprint == self.fingerprint:
                record = fastavro.schemaless_reader(buf, self.parsed)
            else:
                record = fastavro.schemaless_reader(buf, writer.parsed, self.parsed)
        except SchemaResolutionError as exc:
            raise CodecError(
                "schema_resolution_failed", f"{writer.label} cannot be read as the current {self.name}: {exc}"
            ) from exc
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
    store: SchemaStore

    @classmethod
    def load(cls, extra_dirs: Iterable[Path] = ()) -> Schemas:
        """The codecs of every topic; ``extra_dirs`` hold further writer schemas (``*.avsc``) to accept."""
        return _load(tuple(Path(d) for d in extra_dirs))


@functools.cache
def _load(extra_dirs: tuple[Path, ...]) -> Schemas:
    # Parsed once per process (and set of extra folders).
    store = SchemaStore.load(SCHEMA_DIR, extra_dirs)

    def codec(name: str) -> AvroSchema:
        current = next(v for v in store.versions if v.name == name and v.version == "current")
        return AvroSchema(name, current.parsed, current.fingerprint, store)

    return Schemas(
        content_event=codec("ContentEvent"),
        decision=codec("ResolutionDecision"),
        dead_letter=codec("DeadLetter"),
        feedback=codec("CuratorFeedback"),
        store=store,
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
