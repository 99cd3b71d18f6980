"""End to end on the local stack: an isolated worker, events produced to Kafka, decisions timed.

The worker gets its own topics, consumer group, Milvus collection and web port (as the test
fixtures do), so the benchmark neither sees nor disturbs anyone else's stream; they are deleted
afterwards. Latency is from the producer's timestamp in the event to the moment the decision is
read back from ``resolution-decisions`` with ``read_committed``.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from benchmarks.processes import model_stub_rss_mb, pid_from_file, rss_mb
from benchmarks.stats import HistogramTotals, histogram_totals, latency_summary, mean_delta, mean_delta_ms
from deploy.worker import WorkerProcess, isolated_namespace
from resolution.model import ContentItem
from settings import Settings

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

    from streams.producer import ContentProducer

WARMUP_EVENTS = 64


def bench_namespace() -> tuple[Settings, dict[str, str]]:
    return isolated_namespace("bench", "bench_e2e")


def event_stream(dataset: Path | None, tag: str) -> Iterator[ContentItem]:
    """Endless events with ids unique to ``tag``: a dataset's records, or the generated catalogue
    (a fresh seed for each round, so the catalogue keeps growing the way a real feed does)."""
    from evaluation.datasets import load_dataset
    from evaluation.sample_catalogue import generate_catalogue

    for round_no in itertools.count():
        items = load_dataset(dataset).items if dataset else generate_catalogue(seed=1000 + round_no, songs=600)[0]
        for item in items:
            suffix = f"@{tag}.{round_no}"
            yield ContentItem(
                **{**item.__dict__, "event_id": item.event_id + suffix, "content_id": item.content_id + suffix}
            )


@dataclass
class Received:
    at_s: float  # when the bench read the decision back
    produced_at_ms: int
    decided_at_ms: int
    action: str


class DecisionFollower:
    """Reads the decisions topic from the start in a thread, timestamping each record on arrival."""

    def __init__(self, settings: Settings) -> None:
        from confluent_kafka import Consumer

        from streams.kafka import client_config
        from streams.topics import Schemas

        schemas = Schemas.load()
        self._schema = schemas.decision
        self._dead_letter = schemas.dead_letter
        self._content_event = schemas.content_event
        self._topic = settings.kafka.decisions_topic
        self._dlq_topic = settings.kafka.dlq_topic
        self._consumer = Consumer(
            {
                **client_config(settings.kafka),
                "group.id": f"bench-reader-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "isolation.level": "read_committed",
                "fetch.wait.max.ms": 10,
            }
        )
        self.received: dict[str, Received] = {}
        # Events the worker refused (dead-lettered, with a reason) are answered too: waiting for
        # their decision would wait out the whole timeout (20 min on musicbrainz-20k).
        self.dead_lettered: dict[str, str] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="decision-follower", daemon=True)

    def start(self) -> None:
        self._consumer.subscribe([self._topic, self._dlq_topic])
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for msg in self._consumer.consume(500, timeout=0.05):
                if msg.error():
                    continue
                now = time.time()
                if msg.topic() == self._dlq_topic:
                    self._note_dead_letter(msg.value() or b"")
                    continue
                d = self._schema.decode(msg.value() or b"")
                with self._lock:
                    self.received.setdefault(
                        d["event_id"], Received(now, d["event_produced_at_ms"], d["decided_at_ms"], d["action"])
                    )
        self._consumer.close()

    def _note_dead_letter(self, value: bytes) -> None:
        letter = self._dead_letter.decode(value)
        try:
            event_id = self._content_event.decode(letter["original"])["event_id"]
        except Exception:  # an undecodable original names no event: nothing to wait for
            return
        with self._lock:
            self.dead_lettered.setdefault(event_id, letter["reason"])

    def wait_for(self, event_ids: set[str], timeout_s: float) -> dict[str, Received]:
        """The decisions of ``event_ids``, once each is decided or dead-lettered (or at timeout)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                if event_ids <= self.received.keys() | self.dead_lettered.keys():
                    break
            time.sleep(0.05)
        with self._lock:
            return {e: self.received[e] for e in event_ids if e in self.received}

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


class MemorySampler:
    """Samples the RSS of the worker and of Triton (with its model stubs) in a thread."""

    def __init__(self, worker_pid: int, triton_pid: int | None, model: str, every_s: float = 1.0) -> None:
        self._pids = (worker_pid, triton_pid, model)
        self._every_s = every_s
        self.samples: list[tuple[float, float, float, float]] = []  # (t, worker, triton, model stub)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._t0 = time.monotonic()

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        worker, triton, model = self._pids
        while not self._stop.is_set():
            t = time.monotonic() - self._t0
            self.samples.append((t, rss_mb(worker), rss_mb(triton), model_stub_rss_mb(triton, model)))
            self._stop.wait(self._every_s)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def peak(self) -> dict[str, float]:
        if not self.samples:
            return {}
        return {
            "worker": max(s[1] for s in self.samples),
            "triton": max(s[2] for s in self.samples),
            "triton_model": max(s[3] for s in self.samples),
        }


@dataclass
class PhaseResult:
    name: str
    events: int
    target_rate: float | None
    produce_s: float
    events_per_s: float
    latency_ms: dict[str, float]
    decided_latency_ms: dict[str, float]  # to the worker's decided_at stamp, before the produce
    stages_ms: dict[str, float]  # mean per batch
    batch_size_mean: float
    missing: int  # neither decided nor dead-lettered
    dead_lettered: int = 0
    arrivals_s: list[float] = field(default_factory=list, repr=False)  # relative to the first produce
    latencies: list[float] = field(default_factory=list, repr=False)

    def summary(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k not in ("arrivals_s", "latencies")}


def _scrape(worker: WorkerProcess) -> tuple[HistogramTotals, HistogramTotals]:
    text = worker.metrics()
    return (
        histogram_totals(text, "resolver_stage_seconds", "stage"),
        histogram_totals(text, "resolver_batch_size", ""),
    )


def _wait_for_milvus(settings: Settings, timeout_s: float = 600.0) -> None:
    """The shared Milvus may be in the middle of someone's restart: wait rather than fail."""
    from pymilvus import MilvusClient

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            MilvusClient(
                uri=settings.worker.milvus_uri, token=settings.worker.milvus_token, timeout=5
            ).list_collections()
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            print("[bench] waiting for Milvus to answer", file=sys.stderr)
            time.sleep(10)


class EndToEndBench:
    def __init__(self, base: Settings, dataset: Path | None, log_dir: Path, text_model: str = "") -> None:
        self._text_model = text_model  # whose Triton stub's memory is sampled
        self.settings, env = bench_namespace()
        self._dataset = dataset
        self.worker = WorkerProcess(self.settings, log_dir / "bench-worker.log", env)
        self._tag = uuid.uuid4().hex[:6]
        self._events = event_stream(dataset, self._tag)
        self.follower: DecisionFollower | None = None
        self.memory: MemorySampler | None = None
        self._producer: ContentProducer | None = None
        self._tracing: TracerProvider | None = None

    def __enter__(self) -> EndToEndBench:
        from streams.kafka import ensure_topics
        from streams.producer import ContentProducer
        from streams.topics import Schemas
        from telemetry import tracer_provider

        ensure_topics(self.settings.kafka)
        _wait_for_milvus(self.settings)
        try:
            self.worker.start()
        except Exception:
            self.worker.stop()
            self._cleanup()
            raise
        tracing = self._tracing = tracer_provider("content-producer", self.settings.worker.otlp_endpoint)
        self._producer = ContentProducer(self.settings.kafka, Schemas.load().content_event, tracing.get_tracer("bench"))
        self.follower = DecisionFollower(self.settings)
        self.follower.start()
        assert self.worker.proc is not None
        triton = pid_from_file(self.settings.stack.state_dir / "pids" / "triton.pid")
        self.memory = MemorySampler(self.worker.proc.pid, triton, self._text_model)
        self.memory.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.memory is not None:
            self.memory.stop()
        if self.follower is not None:
            self.follower.stop()
        if self._tracing is not None:
            self._tracing.shutdown()
        self.worker.stop()
        self._cleanup()

    def _cleanup(self) -> None:
        from inference.text_encoder import TEXT_DIM
        from streams.kafka import delete_topics, topic_names
        from vector_index.milvus import MilvusParams, MilvusVectorIndex

        s = self.settings
        from confluent_kafka.admin import AdminClient

        from streams.kafka import client_config

        # Faust's own topics (changelog, assignor) are prefixed with the app id, which is ours.
        existing = AdminClient(client_config(s.kafka)).list_topics(timeout=10).topics
        names = [*topic_names(s.kafka).all(), *(t for t in existing if t.startswith(f"{s.worker.app_id}-"))]
        try:
            delete_topics(s.kafka, names)
        except Exception as exc:  # a leftover topic is not worth failing a finished benchmark for
            print(f"[bench] could not delete topics {names}: {exc}", file=sys.stderr)
        index = MilvusVectorIndex(MilvusParams.of(s.worker, retry_max_s=90), s.worker.milvus_collection, TEXT_DIM)
        try:
            asyncio.run(index.drop())
        except Exception as exc:
            print(f"[bench] could not drop collection {s.worker.milvus_collection}: {exc}", file=sys.stderr)

    def run_phase(self, name: str, count: int, rate: float | None) -> PhaseResult:
        assert self._producer is not None and self.follower is not None
        items = list(itertools.islice(self._events, count))
        before = _scrape(self.worker)
        start = time.time()
        for _ in self._producer.stream(items, rate=rate):
            pass
        self._producer.flush()
        produce_s = time.time() - start
        expected = rate or 50.0
        got = self.follower.wait_for({i.event_id for i in items}, timeout_s=60 + 3 * count / expected)
        dead = {i.event_id for i in items if i.event_id not in got and i.event_id in self.follower.dead_lettered}
        after = _scrape(self.worker)
        latencies = [r.at_s * 1000 - r.produced_at_ms for r in got.values()]
        decided = [r.decided_at_ms - r.produced_at_ms for r in got.values()]
        arrivals = [r.at_s - start for r in got.values()]
        span_s = max(arrivals, default=0.0)
        stage_means = mean_delta_ms(before[0], after[0])
        batch_mean = mean_delta(before[1], after[1])
        return PhaseResult(
            name=name,
            events=len(items),
            target_rate=rate,
            produce_s=round(produce_s, 2),
            events_per_s=round(len(got) / span_s, 1) if span_s > 0 else 0.0,
            latency_ms=latency_summary(latencies),
            decided_latency_ms=latency_summary(decided),
            stages_ms=stage_means,
            batch_size_mean=round(batch_mean, 1) if not math.isnan(batch_mean) else 0.0,
            missing=len(items) - len(got) - len(dead),
            dead_lettered=len(dead),
            arrivals_s=sorted(arrivals),
            latencies=latencies,
        )
