"""State on disk against state in memory: a worker (re)started with N events of entity state.

Resolving N events here runs at ~60 events/s, so the state is written straight into the entity
table's changelog instead: the records Faust itself writes (JSON key, JSON versioned value, changelog
partition = content partition), produced by the real ``EntityStore`` applying synthetic
decisions (a NEW or a MERGE, ten scored candidates each, as the worker decides them). Then a real
``resolver worker`` is started on that namespace for each store, and one probe event is produced
the moment it starts:

- recovery: from the process start to the probe's decision read back (``read_committed``); the
  same on an empty namespace is the baseline (start-up without state), measured in the same run;
- RSS of the worker once the probe is decided, and its peak while recovering.

Memory store: every start replays the whole changelog. RocksDB: the first start on a fresh
folder fills the local store from the changelog; a restart (SIGTERM, and SIGKILL) reads only the
tail past the offset RocksDB persisted.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.end_to_end import DecisionFollower
from benchmarks.processes import rss_mb
from deploy.worker import WORKER_COMMAND, WorkerProcess, isolated_namespace
from resolution.entities import EntityStore
from resolution.model import Action, Candidate, ContentItem, Decision, Relation, ScoredCandidate
from settings import Settings
from streams.state import VersionClock, versioned

CHANGELOG_SUFFIX = "-entity-state-changelog"


class RecentKeys(MutableMapping[str, Any]):
    """A bounded mapping: the generator only merges into recent entities, so N stays off its heap."""

    def __init__(self, limit: int = 20000) -> None:
        self._data: OrderedDict[str, Any] = OrderedDict()
        self._limit = limit

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._data[key] = value
        self._data.move_to_end(key)
        if len(self._data) > self._limit:
            self._data.popitem(last=False)

    def __delitem__(self, key: str) -> None:
        del self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)


class ChangelogWriter(RecentKeys):
    """Every write also goes to the changelog partition of the table it belongs to."""

    def __init__(self, producer: Any, topic: str, partition: int) -> None:
        super().__init__()
        self._producer = producer
        self._topic = topic
        self._partition = partition
        self._clock = VersionClock()  # stored as the worker stores it (streams/state.py)
        self.records = 0
        self.bytes = 0

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, value)
        k, v = json.dumps(key).encode(), json.dumps(versioned(value, self._clock.next())).encode()
        while True:
            try:
                self._producer.produce(self._topic, key=k, value=v, partition=self._partition)
                break
            except BufferError:
                self._producer.poll(0.5)
        self._producer.poll(0)
        self.records += 1
        self.bytes += len(k) + len(v)


def synthetic_decision(n: int, tag: str, previous_entity: str | None, merge: bool) -> Decision:
    """The n-th event's decision: a NEW entity, or (``merge``) a MERGE into ``previous_entity``."""
    content_id = f"cid-{tag}-{n:08d}"
    merge = merge and previous_entity is not None
    entity_id = previous_entity if merge and previous_entity else f"ent-{uuid.uuid5(uuid.NAMESPACE_URL, content_id)}"
    candidates = tuple(
        ScoredCandidate(
            candidate=Candidate(
                content_id=f"cid-{tag}-{max(0, n - j - 1):08d}",
                entity_id=entity_id,
                work_id=f"work-{n // 7}",
                similarity=0.9 - j * 0.03,
                meta={},
            ),
            relation=Relation.SAME if j == 0 and merge else Relation.NONE,
            score=0.9 - j * 0.05,
            probabilities={"same": round(0.9 - j * 0.05, 4), "none": round(0.1 + j * 0.05, 4)},
            signals={},
        )
        for j in range(10)
    )
    return Decision(
        event_id=f"evt-{tag}-{n:08d}",
        content_id=content_id,
        action=Action.MERGE if merge else Action.NEW,
        entity_id=entity_id,
        work_id=f"work-{n // 7}",
        confidence=0.91 if merge else 0.88,
        candidates=candidates,
        reason="same recording: title, artists and duration agree (p_same 0.91)" if merge else "no candidate",
    )


def fill_changelog(settings: Settings, events: int) -> dict[str, float]:
    """Writes the state of ``events`` decided events to the namespace's table changelog."""
    from confluent_kafka.admin import AdminClient, NewTopic

    from streams.kafka import client_config, make_producer

    k = settings.kafka
    topic = settings.worker.app_id + CHANGELOG_SUFFIX
    admin = AdminClient(client_config(k))
    futures = admin.create_topics(
        [NewTopic(topic, num_partitions=k.partitions, replication_factor=1, config={"cleanup.policy": "compact"})]
    )
    for future in futures.values():
        future.result()
    # Uncompressed, as Faust writes its changelog: the worker's consumer (aiokafka) has no lz4.
    producer = make_producer(k, **{"linger.ms": 50, "batch.size": 1_000_000})
    writers = [ChangelogWriter(producer, topic, p) for p in range(k.partitions)]
    stores = [EntityStore(w) for w in writers]
    last_entity: list[str | None] = [None] * k.partitions
    t0 = time.monotonic()
    for n in range(events):
        p = n % k.partitions
        # One in three of a partition's events merges into the entity its previous event created,
        # counted per partition: counted on n, with a partition count divisible by 3, partitions
        # 0 and 3 only ever merged, into one entity that grew past Kafka's message size.
        merge = (n // k.partitions) % 3 == 2
        decision = synthetic_decision(n, settings.worker.app_id, last_entity[p], merge)
        stores[p].apply(decision)
        stores[p].note_trace(decision.decision_id, uuid.uuid4().hex, decision.event_id)
        last_entity[p] = decision.entity_id
    remaining = producer.flush(300)
    if remaining:
        raise RuntimeError(f"{remaining} changelog records not delivered")
    records = sum(w.records for w in writers)
    size = sum(w.bytes for w in writers)
    return {
        "events": events,
        "changelog_records": records,
        "changelog_mib": round(size / 2**20, 1),
        "bytes_per_event": round(size / max(1, events)),
        "fill_s": round(time.monotonic() - t0, 1),
    }


@dataclass
class StartResult:
    store: str
    how: str
    recovery_s: float
    rss_mib: float
    peak_rss_mib: float
    disk_mib: float


def _dir_mib(path: Path) -> float:
    return round(sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20, 1) if path.exists() else 0.0


class TimedStart:
    """One worker start: spawned, a probe event produced, its decision awaited; RSS sampled."""

    def __init__(self, settings: Settings, env: dict[str, str], log: Path) -> None:
        self.settings = settings
        self.env = env
        self.log = log
        self.worker: WorkerProcess | None = None

    def run(self, store: str, how: str, timeout_s: float) -> StartResult:
        from streams.producer import ContentProducer
        from streams.topics import Schemas
        from telemetry import tracer_provider

        follower = DecisionFollower(self.settings)
        follower.start()
        t0 = time.monotonic()
        env = {**self.env, "RESOLVER_WORKER_TABLE_STORE": store}
        self.worker = WorkerProcess(self.settings, self.log, env, command=[*WORKER_COMMAND, "--loglevel", "info"])
        self.worker.start(wait=False)
        pid = self.worker.proc.pid if self.worker.proc else 0
        peak = [0.0]
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                peak[0] = max(peak[0], rss_mb(pid))
                stop.wait(0.5)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        tracing = tracer_provider("bench-state", self.settings.worker.otlp_endpoint)
        producer = ContentProducer(self.settings.kafka, Schemas.load().content_event, tracing.get_tracer("bench"))
        probe = f"probe-{store}-{uuid.uuid4().hex[:6]}"
        producer.send(
            ContentItem(
                event_id=probe, content_id=probe, source="bench", kind="recording", title=probe, artists=("Bench",)
            )
        )
        producer.flush()
        tracing.shutdown()
        got = follower.wait_for({probe}, timeout_s)
        recovery = time.monotonic() - t0
        time.sleep(2.0)  # settle: what the worker holds once it serves
        rss = rss_mb(pid)
        stop.set()
        sampler.join()
        follower.stop()
        if probe not in got:
            self.stop(signal.SIGKILL)
            raise RuntimeError(f"{store} {how}: no decision for the probe within {timeout_s:.0f}s (log {self.log})")
        return StartResult(
            store, how, round(recovery, 1), round(rss), round(max(peak[0], rss)), _dir_mib(self.settings.table_dir())
        )

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.worker is not None:
            self.worker.stop(sig, timeout_s=60)
            self.worker = None


def drop_bench_namespace(settings: Settings) -> None:
    """The namespace's topics (Faust's own are prefixed with the app id), collection and table folder."""
    import asyncio

    from confluent_kafka.admin import AdminClient

    from inference.text_encoder import TEXT_DIM
    from streams.kafka import client_config, delete_topics, topic_names
    from vector_index.milvus import MilvusParams, MilvusVectorIndex

    w = settings.worker
    existing = AdminClient(client_config(settings.kafka)).list_topics(timeout=10).topics
    delete_topics(
        settings.kafka, [*topic_names(settings.kafka).all(), *(t for t in existing if t.startswith(f"{w.app_id}-"))]
    )
    asyncio.run(MilvusVectorIndex(MilvusParams.of(w, retry_max_s=5), w.milvus_collection, TEXT_DIM).drop())
    shutil.rmtree(settings.table_dir().parent, ignore_errors=True)


def cpu_flags() -> str:
    """The vector extensions of this CPU (they decide what the numbers mean elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                wanted = ("avx", "avx2", "avx512f", "avx512_bf16", "amx_bf16", "sse4_2")
                return " ".join(f for f in line.split(":", 1)[1].split() if f in wanted)
    except OSError:
        pass
    return "unknown"


def run_state_bench(events: int, log_dir: Path, timeout_s: float = 900.0) -> dict[str, Any]:
    """Baseline (no state), then memory, then RocksDB first start, SIGTERM restart, SIGKILL restart."""
    from streams.kafka import ensure_topics

    log_dir.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {
        "cpu_flags": cpu_flags(),
        "cpus": os.cpu_count(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }
    starts: list[StartResult] = []
    empty, empty_env = isolated_namespace("state", "bench_state")
    ensure_topics(empty.kafka)
    baseline = TimedStart(empty, empty_env, log_dir / "state-baseline.log")
    try:
        starts.append(baseline.run("memory", "baseline-empty", timeout_s))
    finally:
        baseline.stop()
        drop_bench_namespace(empty)

    settings, env = isolated_namespace("state", "bench_state")
    ensure_topics(settings.kafka)
    try:
        result["state"] = fill_changelog(settings, events)
        print(f"[bench-state] changelog filled: {result['state']}", flush=True)
        worker = TimedStart(settings, env, log_dir / "state-worker.log")
        plan = [
            ("memory", "start (whole changelog)", signal.SIGTERM),
            ("rocksdb", "first start (fresh folder)", signal.SIGTERM),
            ("rocksdb", "restart after SIGTERM", signal.SIGKILL),
            ("rocksdb", "restart after SIGKILL", signal.SIGTERM),
        ]
        for store, how, stop_with in plan:
            try:
                start = worker.run(store, how, timeout_s)
            finally:
                worker.stop(stop_with)
            starts.append(start)
            print(f"[bench-state] {start}", flush=True)
            if store == "memory":
                shutil.rmtree(settings.table_dir(), ignore_errors=True)
    finally:
        drop_bench_namespace(settings)
    result["starts"] = [s.__dict__ for s in starts]
    result["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    return result


def format_state_table(result: dict[str, Any]) -> str:
    starts = result["starts"]
    base = starts[0]
    lines = [
        f"CPU flags: {result['cpu_flags']} ({result['cpus']} cores); load {result['load_average_at_start']} -> "
        f"{result['load_average_at_end']}",
        f"state: {result['state']['events']} events, {result['state']['changelog_records']} changelog records, "
        f"{result['state']['changelog_mib']} MiB ({result['state']['bytes_per_event']} B/event)",
        f"{'store':8s} {'start':28s} {'recovery s':>10s} {'x baseline':>10s} {'RSS MiB':>8s} {'peak MiB':>8s} "
        f"{'RSS-base':>8s} {'disk MiB':>8s}",
    ]
    for s in starts:
        lines.append(
            f"{s['store']:8s} {s['how']:28s} {s['recovery_s']:10.1f} {s['recovery_s'] / base['recovery_s']:10.2f} "
            f"{s['rss_mib']:8.0f} {s['peak_rss_mib']:8.0f} {s['rss_mib'] - base['rss_mib']:8.0f} {s['disk_mib']:8.1f}"
        )
    return "\n".join(lines)
