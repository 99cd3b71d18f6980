"""``resolver demo``: the whole path on the local stack, with a summary a person can check."""

from __future__ import annotations

import json
import shutil
import time
import urllib.request
from collections import Counter
from pathlib import Path

from benchmarks.stats import percentile
from deploy.worker import WorkerProcess, stop_by_pid_file
from settings import Settings

TOPIC_WAIT_S = 30.0


def _pid_file(settings: Settings) -> Path:
    return settings.stack.state_dir / "pids" / "worker.pid"


def demo_worker(settings: Settings) -> WorkerProcess:
    """The demo's worker: logs in the stack's log folder, a pid file for ``resolver stack down``."""
    return WorkerProcess(settings, settings.stack.state_dir / "logs" / "worker.log", pid_file=_pid_file(settings))


def stop_worker(settings: Settings) -> None:
    stop_by_pid_file(_pid_file(settings))


def drop_namespace(settings: Settings, milvus_retry_s: float | None = None) -> None:
    """Deletes a worker's topics, its state changelog and its Milvus collection."""
    import asyncio

    from inference.text_encoder import TEXT_DIM
    from streams.kafka import delete_topics, topic_names
    from vector_index.milvus import MilvusParams, MilvusVectorIndex

    w = settings.worker
    delete_topics(settings.kafka, [*topic_names(settings.kafka).all(), f"{w.app_id}-entity-state-changelog"])
    params = MilvusParams.of(w, retry_max_s=milvus_retry_s)
    index = MilvusVectorIndex(params, w.milvus_collection, TEXT_DIM)
    asyncio.run(index.drop())
    from vector_index.milvus_media import MilvusMediaIndex

    asyncio.run(MilvusMediaIndex(params, w.milvus_collection).drop())
    # The local table store would otherwise outlive its changelog and come back as stale state.
    shutil.rmtree(settings.table_dir().parent, ignore_errors=True)


def reset_state(settings: Settings) -> None:
    """Starts from empty topics, an empty index and no worker state."""
    from streams.kafka import ensure_topics

    stop_worker(settings)
    drop_namespace(settings)
    deadline = time.monotonic() + TOPIC_WAIT_S
    while True:
        try:
            ensure_topics(settings.kafka)
            break
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


def collect_decisions(settings: Settings, event_ids: set[str], timeout_s: float) -> dict[str, dict]:
    from streams.kafka import read_topic
    from streams.topics import Schemas

    schema = Schemas.load().decision
    found: dict[str, dict] = {}
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not event_ids <= found.keys():
        for rec in read_topic(settings.kafka, settings.kafka.decisions_topic, idle_timeout_s=2.0):
            d = schema.decode(rec.value)
            if d["event_id"] in event_ids:
                found.setdefault(d["event_id"], d)
        if not event_ids <= found.keys():
            time.sleep(1.0)
    return found


def jaeger_has_trace(settings: Settings, trace_id: str, timeout_s: float = 20.0) -> bool:
    url = f"{settings.worker.jaeger_query_url}/api/traces/{trace_id}"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                data = json.load(resp)
                if data.get("data"):
                    return True
        except OSError:
            pass
        time.sleep(1)
    return False


def run_demo(settings: Settings, reset: bool = True) -> int:
    from evaluation.sample_catalogue import generate_catalogue
    from streams.kafka import ensure_topics
    from streams.producer import ContentProducer
    from streams.topics import Schemas
    from telemetry import tracer_provider

    started = time.monotonic()
    from content_resolver.composition import local_stack

    stack = local_stack(settings)
    if reset and stack.discard_milvus_data():
        print("[demo] starting Milvus from an empty data folder (the demo drops its collection anyway)")
    stack.up()
    if reset:
        print("[demo] starting clean: empty topics, index and entity state")
        reset_state(settings)
    else:
        ensure_topics(settings.kafka)
    print("[demo] starting a resolver worker")
    demo_worker(settings).start()

    items, truth = generate_catalogue()
    run = str(int(time.time()))
    items = [type(i)(**{**i.__dict__, "event_id": f"{i.event_id}@{run}"}) for i in items]
    tracing = tracer_provider("content-producer", settings.worker.otlp_endpoint)
    producer = ContentProducer(settings.kafka, Schemas.load().content_event, tracing.get_tracer("demo"))
    print(f"[demo] streaming {len(items)} sample content events into {settings.kafka.content_topic}")
    t0 = time.time()
    for _ in producer.stream(items):
        pass
    producer.flush()
    tracing.force_flush()
    ids = {i.event_id for i in items}
    found = collect_decisions(settings, ids, timeout_s=180)
    tracing.shutdown()

    missing = ids - found.keys()
    decisions = list(found.values())
    latencies = [d["decided_at_ms"] - d["event_produced_at_ms"] for d in decisions]
    span_s = max((d["decided_at_ms"] for d in decisions), default=t0 * 1000) / 1000 - t0
    actions = Counter(d["action"] for d in decisions)
    print()
    print("=== content-resolver demo ===")
    print(f"events produced      {len(items)}")
    print(f"decisions received   {len(decisions)}  (missing: {len(missing)})")
    print("decisions by type    " + ", ".join(f"{a}={n}" for a, n in sorted(actions.items())))
    print(f"throughput           {len(decisions) / max(span_s, 1e-9):.1f} events/s (first produce to last decision)")
    print(f"latency produce->decision  p50={percentile(latencies, 50):.0f} ms  p99={percentile(latencies, 99):.0f} ms")
    _print_quality(found, items, truth)
    print("\nexample decisions:")
    by_id = {i.event_id: i for i in items}
    shown = 0
    for action in ("MERGE", "LINK", "NEW"):
        for d in [d for d in decisions if d["action"] == action][:2]:
            item = by_id[d["event_id"]]
            rel = (
                f" ({d['relation']} of {d['related_entity_id']})" if d.get("relation") and d["action"] == "LINK" else ""
            )
            who = ", ".join(item.artists)
            print(f"  {d['action']:5s} {item.title!r} / {who} [{item.source}] -> {d['entity_id']}{rel}")
            print(f"        confidence {d['confidence']:.2f}; {d['reason']}")
            print(f"        trace {d['trace_id']}  {settings.worker.jaeger_query_url}/trace/{d['trace_id']}")
            shown += 1
    if decisions:
        tid = decisions[0]["trace_id"]
        ok = jaeger_has_trace(settings, tid)
        print(f"\nJaeger API {settings.worker.jaeger_query_url}/api/traces/{tid}: {'found' if ok else 'NOT FOUND'}")
    log = settings.stack.state_dir / "logs" / "worker.log"
    print(f"\nThe stack and the worker are still running (worker log: {log}).")
    print("Try: .venv/bin/resolver decisions --json | head; stop everything with: make down")
    print(f"[demo] done in {time.monotonic() - started:.0f}s")
    return 0 if not missing else 1


def _print_quality(found: dict[str, dict], items: list, truth: dict) -> None:
    from evaluation.metrics import pairwise_prf

    pred = {}
    gold = {}
    for item in items:
        d = found.get(item.event_id)
        if d is None or item.content_id not in truth:
            continue
        pred[item.content_id] = d["entity_id"]
        gold[item.content_id] = truth[item.content_id].entity_id
    prf = pairwise_prf(pred, gold)
    print(f"quality vs truth     pairwise P={prf.precision:.3f} R={prf.recall:.3f} F1={prf.f1:.3f} (same recording)")
