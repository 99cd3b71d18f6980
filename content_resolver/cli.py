"""``resolver``: one command line for the stack, the worker, the tools, evaluation and benchmarks."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from content_resolver.settings import Settings


def _items_from(args: argparse.Namespace) -> Iterator:
    from evaluation.datasets import load_dataset
    from resolution.model import ContentItem

    if args.file:
        with open(args.file, encoding="utf-8") as f:
            for n, line in enumerate(f):
                if args.limit is not None and n >= args.limit:
                    return
                if line.strip():
                    yield ContentItem.from_record({"produced_at_ms": 0, **json.loads(line)})
    else:
        yield from load_dataset(Path(args.dataset), limit=args.limit).items


def cmd_stack(args: argparse.Namespace, settings: Settings) -> int:
    from deploy.stack import LocalStack, StackError
    from streams.kafka import ensure_topics

    stack = LocalStack(settings.stack)
    try:
        if args.action == "fetch":
            stack.fetch()
            print("[stack] Kafka jars, Jaeger binary and Triton backend are in place")
            return 0
        if args.action == "up":
            stack.up(args.only)
            if not args.only or "kafka" in args.only:
                created = ensure_topics(settings.kafka)
                print(f"[stack] topics ready ({settings.kafka.partitions} partitions); created: {created or 'none'}")
        elif args.action == "down":
            from content_resolver.demo import stop_worker

            stop_worker(settings)
            stack.down(args.only)
        for name, line in stack.status().items():
            print(f"{name:8s} {line}")
    except StackError as exc:
        print(f"[stack] FAILED: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    import faust

    from content_resolver.composition import build_worker
    from streams.kafka import ensure_topics

    ensure_topics(settings.kafka)
    worker = build_worker(settings)
    try:
        faust.Worker(worker.app, loglevel=args.loglevel).execute_from_commandline()
    finally:
        worker.tracing.shutdown()
    return 0


def cmd_produce(args: argparse.Namespace, settings: Settings) -> int:
    from content_resolver.telemetry import tracer_provider
    from streams.producer import ContentProducer
    from streams.topics import Schemas

    tracing = tracer_provider("content-producer", settings.worker.otlp_endpoint)
    producer = ContentProducer(
        settings.kafka, Schemas.load().content_event, tracing.get_tracer("content_resolver.produce")
    )
    n = 0
    for _item, _trace in producer.stream(_items_from(args), rate=args.rate):
        n += 1
        if n % 1000 == 0:
            print(f"[produce] {n} events", file=sys.stderr)
    producer.flush()
    tracing.shutdown()
    print(f"[produce] {n} events sent to {settings.kafka.content_topic}")
    return 0


def cmd_decisions(args: argparse.Namespace, settings: Settings) -> int:
    from streams.kafka import read_topic
    from streams.topics import Schemas

    schema = Schemas.load().decision
    for rec in read_topic(settings.kafka, settings.kafka.decisions_topic, follow=args.follow):
        d = schema.decode(rec.value)
        if args.json:
            print(json.dumps({**d, "partition": rec.partition, "offset": rec.offset}, ensure_ascii=False), flush=True)
        else:
            rel = f" {d['relation']}->{d['related_entity_id']}" if d.get("related_entity_id") else ""
            head = f"{d['action']:8s} {d['content_id']:24s} -> {d['entity_id']}{rel}"
            print(f"{head} conf={d['confidence']:.3f} trace={d['trace_id']}", flush=True)
    return 0


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from content_resolver.demo import run_demo

    return run_demo(settings, reset=not args.keep)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="resolver", description=__doc__)
    sub = p.add_subparsers(dest="verb", required=True)

    s = sub.add_parser("stack", help="start, stop or inspect the local services")
    s.add_argument("action", choices=["up", "down", "status", "fetch"])
    s.add_argument("--only", nargs="*", choices=["kafka", "milvus", "jaeger", "triton"])
    s.set_defaults(fn=cmd_stack)

    s = sub.add_parser("worker", help="run one resolver worker in the foreground")
    s.add_argument("--loglevel", default="warning")
    s.set_defaults(fn=cmd_worker)

    s = sub.add_parser("produce", help="stream a dataset's records.csv (or JSON lines) into content-events")
    src = s.add_mutually_exclusive_group(required=True)
    src.add_argument("--dataset", help="a folder in the layout of ../shared/data")
    src.add_argument("--file", help="JSON lines, one ContentEvent per line")
    s.add_argument("--limit", type=int)
    s.add_argument("--rate", type=float, help="events per second (default: as fast as possible)")
    s.set_defaults(fn=cmd_produce)

    s = sub.add_parser("decisions", help="read resolution-decisions (read_committed) from the beginning")
    s.add_argument("--follow", action="store_true")
    s.add_argument("--json", action="store_true")
    s.set_defaults(fn=cmd_decisions)

    s = sub.add_parser("demo", help="stack up, a worker, the sample catalogue streamed, a summary")
    s.add_argument("--keep", action="store_true", help="keep earlier topics and state instead of starting clean")
    s.set_defaults(fn=cmd_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=os.environ.get("RESOLVER_LOGLEVEL", "WARNING"))
    args = build_parser().parse_args(argv)
    settings = Settings.from_env()
    return int(args.fn(args, settings) or 0)


if __name__ == "__main__":
    sys.exit(main())
