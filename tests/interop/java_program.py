"""The Java interop program (tests/interop/java): built once into the cache, then run as a subprocess.

Its libraries (Apache Avro, the Kafka Java client) come from Maven Central through ``mvn
dependency:copy-dependencies``, like the broker's jars; the one source file is compiled with javac.
The cache folder is keyed on the pom and the source, so an edit rebuilds it."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

JAVA_DIR = Path(__file__).resolve().parent / "java"
SOURCE = JAVA_DIR / "AvroInterop.java"
POM = JAVA_DIR / "pom.xml"


class JavaUnavailable(RuntimeError):
    """No JDK or Maven here, or the libraries could not be fetched: the reason says which."""


@dataclass(frozen=True)
class JavaInterop:
    home: Path

    @classmethod
    def build(cls, cache_dir: Path) -> JavaInterop:
        for tool in ("java", "javac", "mvn"):
            if shutil.which(tool) is None:
                raise JavaUnavailable(f"{tool} is not installed (the Java interop test needs JDK 17 and Maven)")
        key = hashlib.sha256(POM.read_bytes() + SOURCE.read_bytes()).hexdigest()[:12]
        home = cache_dir / f"avro-interop-java-{key}"
        if (home / ".complete").exists():
            return cls(home)
        shutil.rmtree(home, ignore_errors=True)
        libs, classes = home / "libs", home / "classes"
        mvn = ["mvn", "-q", "-B", "-f", str(POM), "dependency:copy-dependencies"]
        fetch = subprocess.run(
            [*mvn, f"-DoutputDirectory={libs}", "-DincludeScope=runtime"],
            capture_output=True,
            text=True,
        )
        if fetch.returncode != 0:
            raise JavaUnavailable(
                f"Maven could not fetch Avro and kafka-clients: {fetch.stdout[-1500:]}{fetch.stderr[-1500:]}"
            )
        classes.mkdir(parents=True)
        compile_ = subprocess.run(
            ["javac", "-cp", f"{libs}/*", "-d", str(classes), str(SOURCE)], capture_output=True, text=True
        )
        if compile_.returncode != 0:
            raise RuntimeError(f"javac failed: {compile_.stderr[-3000:]}")
        (home / ".complete").write_text("ok\n")
        return cls(home)

    def _run(self, *args: str, timeout_s: float = 120.0) -> list[dict]:
        cp = f"{self.home / 'classes'}:{self.home / 'libs'}/*"
        result = subprocess.run(
            ["java", "-cp", cp, "AvroInterop", *args], capture_output=True, text=True, timeout=timeout_s
        )
        if result.returncode != 0:
            raise RuntimeError(f"AvroInterop {args[0]} failed ({result.returncode}): {result.stderr[-3000:]}")
        return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]

    def produce(self, bootstrap: str, topic: str, writer: Path, tag: str, count: int) -> list[dict]:
        """ContentEvents written by BinaryMessageEncoder with ``writer``; one {event_id, header} each."""
        return self._run("produce", bootstrap, topic, str(writer), tag, str(count))

    def read(
        self, bootstrap: str, topic: str, expect: int, reader: Path, writers: list[Path], timeout_s: int = 60
    ) -> tuple[list[dict], dict]:
        """Every record of ``topic`` decoded by BinaryMessageDecoder: (records, summary)."""
        lines = self._run("read", bootstrap, topic, str(expect), str(timeout_s), str(reader), *map(str, writers))
        return [line for line in lines if "summary" not in line], lines[-1]["summary"]
