"""``resolver``: one command line for the stack, the worker, the tools, evaluation and benchmarks."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from settings import REPO_ROOT, Settings


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
    from content_resolver.composition import local_stack
    from deploy.stack import StackError
    from streams.kafka import ensure_topics

    stack = local_stack(settings)
    try:
        if args.action == "fetch":
            stack.fetch()
            print("[stack] Kafka jars, Jaeger binary, Triton backend and the ONNX text encoder export are in place")
            return 0
        if args.action == "up":
            if args.fresh_milvus and stack.discard_milvus_data():
                print("[stack] milvus: starting from an empty data folder (--fresh-milvus)")
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
        if not args.only or "triton" in args.only:
            print_text_model_choice(settings)
    except StackError as exc:
        print(f"[stack] FAILED: {exc}", file=sys.stderr)
        return 1
    return 0


def print_text_model_choice(settings: Settings) -> None:
    """Which encoder path is served, and why (the measurements behind it)."""
    from content_resolver.encoder_choice import served_text_model

    for line in served_text_model(settings).lines():
        print(line)


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    import faust

    from content_resolver.composition import as_shadow, build_worker
    from streams.kafka import ensure_topics

    if args.shadow:
        from dataclasses import replace

        settings = replace(settings, worker=replace(settings.worker, shadow_version=args.shadow))
    ensure_topics(as_shadow(settings).kafka)
    worker = build_worker(settings)
    profiler = None
    if settings.worker.profile_out:
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.005)
        profiler.start()
    try:
        faust.Worker(worker.app, loglevel=args.loglevel).execute_from_commandline()
    finally:
        worker.tracing.shutdown()
        if profiler is not None:
            profiler.stop()
            out = Path(settings.worker.profile_out)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(profiler.output_text(unicode=True, show_all=False), encoding="utf-8")
    return 0


def cmd_produce(args: argparse.Namespace, settings: Settings) -> int:
    from streams.producer import ContentProducer
    from streams.topics import Schemas
    from telemetry import tracer_provider

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


def cmd_evaluate(args: argparse.Namespace, settings: Settings) -> int:
    from content_resolver.composition import build_offline_encoder, build_offline_resolver, with_cross_encoder
    from evaluation.evaluate import evaluate_command
    from evaluation.report import write_report
    from evaluation.summary import summary_lines
    from inference.matcher_model import load_local_scorer
    from inference.model_repository import ModelRepository

    if args.through_stack:
        from dataclasses import replace

        from benchmarks.through_stack import through_stack_command
        from content_resolver.encoder_choice import served_text_model

        # The worker reads the same measured choice itself; named here so that the report says which.
        served = replace(settings, worker=replace(settings.worker, text_model=served_text_model(settings).model))
        return through_stack_command(served, Path(args.dataset), args.split, args.json, args.repeat)
    w = settings.worker
    model_dir = (
        Path(args.model)
        if args.model
        else ModelRepository(settings.stack.triton_model_repository, w.matcher_model).serving_dir()
    )
    loaded = load_local_scorer(model_dir)
    if args.model and loaded is None:
        print(f"[evaluate] no model in {args.model}", file=sys.stderr)
        return 1
    fast, thresholds = _local_scorer(settings, model_dir)
    # The worker's cross-encoder (when its setting turns it on) on the matcher's uncertain band,
    # in-process (or the version --cross-encoder names; --no-cross-encoder: the matcher alone).
    scorer = (
        fast
        if args.no_cross_encoder
        else with_cross_encoder(
            settings,
            fast,
            lambda: thresholds.merge,
            in_process=True,
            folder=Path(args.cross_encoder) if args.cross_encoder else None,
        )
    )
    encoder = build_offline_encoder(settings, REPO_ROOT / ".cache", args.text_model)
    kinds = ["exact", "milvus"] if args.index == "both" else [args.index]
    if args.ablation:
        return _media_ablation(args, settings, encoder, scorer, thresholds, kinds[0])
    modalities = MEDIA_CHOICES[args.media]
    offlines = [build_offline_resolver(settings, encoder, scorer, thresholds, kind, modalities) for kind in kinds]
    results = evaluate_command(
        Path(args.dataset),
        args.split,
        offlines,
        args.shuffles,
        args.stream,
        repeat=args.repeat,
    )
    refined = getattr(scorer, "refined_pairs", None)
    if refined is not None:
        print(f"[evaluate] cross-encoder asked about {refined} pairs (matcher p(same) in the uncertain band)")
    reference = loaded[0].model.metadata.get("drift_reference") if loaded else None
    for result in results:
        if reference and result.drift_observations:
            from resolution.drift import compare

            drift = compare(result.drift_observations, reference, settings.lifecycle.drift_psi_threshold)
            result.metrics["drift"] = drift.to_dict()
        print("\n".join(summary_lines(result.metrics)))
        if "drift" in result.metrics:
            d = result.metrics["drift"]
            psi = ", ".join(f"{k} {v:.3f}" for k, v in d["psi"].items())
            alarms = d["alarms"] or "none"
            print(f"drift vs training reference: PSI {psi} (threshold {d['threshold']}); alarms {alarms}")
    metrics = results[0].metrics if len(results) == 1 else [r.metrics for r in results]
    if args.json:
        Path(args.json).write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    if args.report:
        write_report(Path(args.report), results)
    return 0


def _local_scorer(settings: Settings, model_dir: Path | None) -> tuple[Any, Any]:
    """The matcher in-process (``model_dir``, or the repository's serving version) with its
    thresholds; the rule scorer with the configured thresholds where no trained version exists."""
    from inference.matcher_model import load_local_scorer
    from inference.model_repository import ModelRepository
    from resolution.matcher import RuleScorer
    from resolution.policy import Thresholds

    w = settings.worker
    if model_dir is None:
        model_dir = ModelRepository(settings.stack.triton_model_repository, w.matcher_model).serving_dir()
    loaded = load_local_scorer(model_dir)
    return loaded or (RuleScorer(), Thresholds(w.merge_threshold, w.link_threshold))


# ``resolver evaluate --media``: which of an event's media references the resolver reads.
MEDIA_CHOICES: dict[str, frozenset[str]] = {
    "text": frozenset(),
    "text+audio": frozenset({"audio"}),
    "text+image": frozenset({"image"}),
    "all": frozenset({"audio", "image"}),
}


def _media_ablation(
    args: argparse.Namespace, settings: Settings, encoder: Any, scorer: Any, thresholds: Any, kind: str
) -> int:
    """The same dataset resolved by the worker's resolver on text only, text + audio, text + image
    and all evidence (the same orders each time); one line per row, and the table as JSON."""
    from content_resolver.composition import build_offline_resolver
    from evaluation.evaluate import evaluate_command

    if not settings.worker.media_evidence:
        print("[evaluate] --ablation needs the media step (RESOLVER_WORKER_MEDIA_EVIDENCE is off)", file=sys.stderr)
        return 1
    import asyncio

    from evaluation.datasets import load_dataset
    from evaluation.media_roles import media_roles, role_accuracy

    roles = media_roles(Path(args.dataset))  # the generated media set: its decisions role by role
    dataset = load_dataset(Path(args.dataset))
    rows: dict[str, dict[str, Any]] = {}
    for name, modalities in MEDIA_CHOICES.items():
        offline = build_offline_resolver(settings, encoder, scorer, thresholds, kind, modalities)
        (result,) = evaluate_command(Path(args.dataset), args.split, [offline], args.shuffles, args.stream)
        m = result.metrics
        rows[name] = {k: m[k] for k in ("pairwise", "bcubed", "work_pairwise", "events_per_s", "resolver") if k in m}
        pw, work = m["pairwise"], m.get("work_pairwise", {})
        line = (
            f"{name:11s} pairwise P {pw['precision']:.4f} R {pw['recall']:.4f} F1 {pw['f1']:.4f}; "
            f"b-cubed F1 {m['bcubed']['f1']:.4f}; work P {work.get('precision', float('nan')):.4f} "
            f"R {work.get('recall', float('nan')):.4f} F1 {work.get('f1', float('nan')):.4f}"
        )
        if roles is not None:
            shares = asyncio.run(role_accuracy(list(dataset.items), roles, offline, args.shuffles))
            rows[name]["roles"] = shares
            line += "; " + ", ".join(f"{k} {v['share']:.3f} of {v['of']}" for k, v in shares.items())
        print(line, flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    return 0


def _replayed_feedback(settings: Settings):
    from streams.feedback import replay_feedback
    from streams.topics import Schemas

    replay = replay_feedback(settings.kafka, Schemas.load())
    found = len(replay.items)
    print(
        f"[feedback] {len(replay.feedback)} verdicts on {settings.kafka.feedback_topic} ({replay.invalid} invalid); "
        f"{found} named items found on {settings.kafka.content_topic}, "
        f"{len(replay.evidence)} pairs in the evidence of {settings.kafka.decisions_topic}"
    )
    return replay


def cmd_train(args: argparse.Namespace, settings: Settings) -> int:
    from inference.model_repository import ModelRepository
    from training.matcher import TrainConfig, train_command

    config = TrainConfig(
        seed=args.seed,
        **{k: v for k, v in (("epochs", args.epochs), ("hidden", args.hidden)) if v is not None},
        **({"sample_songs": args.sample_songs} if args.sample_songs is not None else {}),
    )
    feedback = _replayed_feedback(settings) if args.feedback else None
    if args.out:
        out = Path(args.out)
        repository = ModelRepository(out.parent.parent, out.parent.name)
    else:
        repository = ModelRepository(settings.stack.triton_model_repository, args.model)
        out = repository.new_version_dir()
    media_reader = None
    base_dir = None
    if args.media_set:
        from content_resolver.composition import build_media_reader

        # Every file is read once, within the worker's bounds.
        media_reader = build_media_reader(settings, cache_items=100_000)
        serving = ModelRepository(settings.stack.triton_model_repository, args.model)
        base_dir = Path(args.base) if args.base else serving.serving_dir()
    model = train_command(
        [Path(d) for d in args.dataset],
        out,
        REPO_ROOT / ".cache",
        config,
        feedback,
        media_sets=[Path(d) for d in args.media_set],
        media_reader=media_reader,
        base_dir=base_dir,
    )
    if out.name.isdigit() and (repository.folder / "config.pbtxt").exists():
        repository.install_backend(out)  # a version Triton can load
    t = model.thresholds
    print(f"[train] {model.version} -> {out} (merge >= {t.merge:.2f}, link >= {t.link:.2f})")
    valid = model.metadata.get("valid") or {}
    if valid:
        print(f"[train] held-out (valid) pair F1, mean of sets: {valid['overall_f1']:.4f}")
    tune_media = model.metadata.get("tune_media") or {}
    for label, cells in tune_media.items():
        print(f"[train] tune media pairs, {label}: " + ", ".join(f"{r} F1 {f:.4f}" for r, f in cells.items()))
    if feedback is not None:
        stats = model.metadata["provenance"]["data"]["curator-feedback"]
        print(f"[train] curator feedback: {json.dumps({k: v for k, v in stats.items() if k != 'topics'})}")
    return 0


def cmd_train_cross_encoder(args: argparse.Namespace, settings: Settings) -> int:
    from inference.cross_encoder import is_cross_encoder_dir
    from inference.model_repository import ModelRepository
    from training.cross_encoder import CrossEncoderConfig, train_command

    overrides = {k: v for k, v in (("epochs", args.epochs), ("trained_layers", args.trained_layers)) if v is not None}
    config = CrossEncoderConfig(seed=args.seed, **overrides)
    if args.out:
        out = Path(args.out)
        repository = ModelRepository(out.parent.parent, out.parent.name, is_cross_encoder_dir)
        out.mkdir(parents=True, exist_ok=True)
    else:
        repository = ModelRepository(settings.stack.triton_model_repository, args.model, is_cross_encoder_dir)
        out = repository.new_version_dir()
    result = train_command([Path(d) for d in args.dataset], out, config)
    if out.name.isdigit() and (repository.folder / "config.pbtxt").exists():
        repository.install_backend(out)  # a version Triton can load
    print(f"[train-cross-encoder] {result['version']} -> {out} (says same at p >= {result['decision_threshold']:.2f})")
    for name, cells in result["valid"].items():
        line = ", ".join(f"{k} {c['pairs']} pairs F1 {c['f1']:.4f}" for k, c in cells.items())
        print(f"[train-cross-encoder] valid {name} (cross-encoder alone): {line}")
    return 0


def _trained_on(candidate: Path) -> dict[str, Any]:
    from inference.matcher_model import MatcherModel

    return (MatcherModel.load(candidate).metadata.get("provenance") or {}).get("data") or {}


def _gate_datasets(args: argparse.Namespace, data: dict[str, Any]) -> list[Path]:
    """``--dataset``, or the sets the candidate trained on (``data``: its provenance)."""
    if args.dataset:
        return [Path(d) for d in args.dataset]
    from training.matcher import MEDIA_PROVENANCE

    # A media set trained on is judged by a held-out (valid) media set instead (_gate_media_sets).
    return [
        Path(v["path"])
        for k, v in data.items()
        if isinstance(v, dict) and v.get("path") and not k.startswith(MEDIA_PROVENANCE)
    ]


def _gate_media_sets(args: argparse.Namespace, data: dict[str, Any]) -> list[Path]:
    """``--media-set``, or, for a candidate trained on media sets, the held-out valid set
    (``media.generated_set.VALID_SEED``), built where missing."""
    from training.matcher import MEDIA_PROVENANCE

    if args.media_set:
        return [Path(d) for d in args.media_set]
    if not any(k.startswith(MEDIA_PROVENANCE) for k in data):
        return []
    from media.generated_set import VALID_SEED, VALID_SIZE, generate

    return [generate(VALID_SEED, VALID_SIZE, split="valid").folder]


def cmd_promote(args: argparse.Namespace, settings: Settings) -> int:
    from inference.model_repository import ModelRepository
    from training.promotion import GateSettings, compare_versions, held_out_examples

    repository = ModelRepository(settings.stack.triton_model_repository, args.model)
    served = repository.served()
    versions = repository.versions()
    candidate = args.version or (versions[-1] if versions else None)
    if candidate is None or candidate not in versions:
        print(f"[promote] {args.model}: no trained version {candidate} (have {versions})", file=sys.stderr)
        return 1
    if candidate == served.serving:
        print(f"[promote] {args.model} version {candidate} already serves")
        return 0
    verdict = None
    if served.serving is not None and repository.serving_dir() is not None:
        trained_on = _trained_on(repository.version_dir(candidate))
        dirs = _gate_datasets(args, trained_on)
        feedback = _replayed_feedback(settings) if args.feedback else None
        media_sets = _gate_media_sets(args, trained_on)
        media_reader = None
        if media_sets:
            from content_resolver.composition import build_media_reader

            media_reader = build_media_reader(settings, cache_items=100_000)
        examples, used = held_out_examples(
            dirs, REPO_ROOT / ".cache", feedback, media_sets=media_sets, media_reader=media_reader
        )
        print(f"[promote] held-out pairs: {json.dumps(used)}")
        lifecycle = settings.lifecycle
        gate = GateSettings(lifecycle.promotion_margin, lifecycle.promotion_tolerance, lifecycle.promotion_significance)
        verdict = compare_versions(
            repository.version_dir(served.serving),
            repository.version_dir(candidate),
            examples,
            gate,
            settings.worker.media_fusion_rule,
        )
        print("\n".join(verdict.lines()))
        if args.json:
            Path(args.json).write_text(json.dumps({**verdict.to_dict(), "held_out": used}, indent=2) + "\n")
        if not verdict.promote:
            print(f"[promote] REFUSED: {args.model} version {served.serving} keeps serving")
            return 2
    return _serve(repository, settings, lambda: repository.promote(candidate), f"promoted version {candidate}")


def _serve(repository, settings: Settings, change, what: str) -> int:
    """Writes the new served versions into config.pbtxt and has Triton load them (no restart);
    if Triton cannot, the file is put back as it was and Triton reloaded."""
    from inference.triton_client import TritonModelControl

    before = repository.served()
    new = change()
    control = TritonModelControl(settings.worker.triton_url)
    try:
        control.load(repository.model)
        ready = control.ready_versions(repository.model, list(new.loaded))
        if not all(ready.values()):
            raise RuntimeError(f"versions not ready after loading: {ready}")
    except Exception as exc:
        repository.write_served(before)
        try:
            control.load(repository.model)
        finally:
            control.close()
        print(f"[lifecycle] Triton could not load {new}: {exc}; {before.serving} still serves", file=sys.stderr)
        return 1
    serving = control.serving_version(repository.model)
    control.close()
    print(
        f"[lifecycle] {repository.model}: {what}; Triton serves version {serving} "
        f"(loaded {list(new.loaded)}, history {list(new.history)}), no restart"
    )
    return 0


def cmd_rollback(args: argparse.Namespace, settings: Settings) -> int:
    from inference.model_repository import ModelRepository

    repository = ModelRepository(settings.stack.triton_model_repository, args.model)
    current = repository.served().serving
    try:
        return _serve(repository, settings, repository.rollback, f"rolled back from version {current}")
    except ValueError as exc:
        print(f"[rollback] {exc}", file=sys.stderr)
        return 1


def cmd_shadow(args: argparse.Namespace, settings: Settings) -> int:
    from inference.model_repository import ModelRepository

    repository = ModelRepository(settings.stack.triton_model_repository, args.model)
    shadows = [] if args.off else [args.version]
    what = f"shadow versions {shadows or 'none'} loaded beside the serving one"
    return _serve(repository, settings, lambda: repository.set_shadows(shadows), what)


def model_references(settings: Settings) -> dict[str, dict]:
    """Model version string (as decisions carry it) -> that version's drift reference."""
    from inference.matcher_model import MatcherModel
    from inference.model_repository import ModelRepository

    repository = ModelRepository(settings.stack.triton_model_repository, settings.worker.matcher_model)
    out = {}
    for v in repository.versions():
        model = MatcherModel.load(repository.version_dir(v))
        if model.metadata.get("drift_reference"):
            out[model.version] = model.metadata["drift_reference"]
    return out


def cmd_compare(args: argparse.Namespace, settings: Settings) -> int:
    from dataclasses import replace

    from content_resolver.composition import as_shadow
    from evaluation.shadow_compare import compare_streams, write_report
    from streams.kafka import read_topic
    from streams.topics import Schemas

    schema = Schemas.load().decision
    shadow_topic = (
        args.shadow_topic
        or as_shadow(replace(settings, worker=replace(settings.worker, shadow_version=1))).kafka.decisions_topic
    )
    primary_topic = args.primary_topic or settings.kafka.decisions_topic

    def records(topic: str) -> list[dict]:
        return [schema.decode(r.value) for r in read_topic(settings.kafka, topic)]

    truth = None
    if args.dataset:
        from evaluation.datasets import load_dataset

        ds = load_dataset(Path(args.dataset))
        truth = {cid: row.entity_id for cid, row in (ds.truth or {}).items()}
    verdicts = None
    if args.feedback:
        replay = _replayed_feedback(settings)
        verdicts = [(fb.left, fb.right, fb.verdict == "same") for fb in replay.feedback]
    references = {}
    for version, reference in model_references(settings).items():
        references[f"{version}"] = reference
    primary, shadow = records(primary_topic), records(shadow_topic)
    # Decisions carry "<text model>+<matcher version>"; the reference belongs to the matcher.
    by_decision_version = {
        r["model_version"]: references[r["model_version"].rsplit("+", 1)[-1]]
        for r in (*primary, *shadow)
        if r["model_version"].rsplit("+", 1)[-1] in references
    }
    comparison = compare_streams(
        primary,
        shadow,
        (primary_topic, shadow_topic),
        truth,
        verdicts,
        by_decision_version,
        settings.lifecycle.drift_psi_threshold,
    )
    print("\n".join(comparison.lines()))
    if args.json:
        payload = {
            "disagreement_rate": comparison.disagreement_rate,
            "summary": comparison.lines(),
            "disagreements": comparison.disagreements,
        }
        Path(args.json).write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    if args.report:
        write_report(Path(args.report), comparison)
        print(f"[compare] report: {args.report}")
    return 0


def cmd_datasets(args: argparse.Namespace, settings: Settings) -> int:
    from evaluation.golden_sets import inspect_golden_set

    reports = [inspect_golden_set(Path(d)) for d in args.dirs]
    for report in reports:
        print("\n".join(report.lines()))
    if args.json:
        Path(args.json).write_text(json.dumps([r.to_dict() for r in reports], indent=2) + "\n", encoding="utf-8")
    bad = [r.name for r in reports if not r.ok]
    print(f"[datasets] {len(reports)} sets, {len(bad)} with errors{': ' + ', '.join(bad) if bad else ''}")
    return 1 if bad else 0


def cmd_feedback(args: argparse.Namespace, settings: Settings) -> int:
    from streams.feedback import new_feedback, send_feedback
    from streams.topics import Schemas
    from telemetry import tracer_provider

    for verdict in ("same", "different", "version_of", "video_of"):
        pair = getattr(args, verdict)
        if pair:
            break
    fb = new_feedback(pair[0], pair[1], verdict, args.curator, args.note)
    tracing = tracer_provider("curator-feedback", settings.worker.otlp_endpoint)
    traces = send_feedback(
        settings.kafka, Schemas.load().feedback, tracing.get_tracer("content_resolver.feedback"), [fb], args.title
    )
    tracing.shutdown()
    print(
        f"[feedback] {fb.feedback_id}: {fb.left} {verdict} {fb.right} "
        f"-> {settings.kafka.feedback_topic} trace={traces[0]}"
    )
    return 0


def cmd_rebuild(args: argparse.Namespace, settings: Settings) -> int:
    from streams.replay import rebuild_and_compare

    report = rebuild_and_compare(settings, args.worker_url)
    print(
        f"[rebuild] {report.decisions} decisions replayed -> {report.rebuilt_keys} state keys, "
        f"{report.entities} live entities; worker state has {report.live_keys} keys"
    )
    for line in report.examples:
        print(f"  differs: {line}")
    print(f"[rebuild] {'EQUAL' if report.differing == 0 else f'{report.differing} keys DIFFER'}")
    return 0 if report.differing == 0 else 1


def cmd_export(args: argparse.Namespace, settings: Settings) -> int:
    from streams.replay import export_clusters

    rows = export_clusters(settings, Path(args.clusters))
    print(f"[export] {rows} content items -> {args.clusters} (content_id, entity_id, work_id)")
    return 0


def cmd_reconcile(args: argparse.Namespace, settings: Settings) -> int:
    import asyncio
    import time

    from content_resolver.composition import build_milvus_index, build_scorer
    from streams.reconciliation import RACE_WINDOW_S, CrossPartitionReconciler, reconcile_once

    scorer, thresholds = build_scorer(settings)
    reconciler = CrossPartitionReconciler(thresholds.merge, settings.worker.conflict_threshold)
    # Strong: the rows every worker wrote are visible to the raced items' second search.
    index = build_milvus_index(settings, consistency="Strong")

    async def passes() -> int:
        since_ms = 0
        while True:
            started_ms = int(time.time() * 1000)
            result = await reconcile_once(settings.kafka, reconciler, index, scorer, since_ms)
            plan = result.plan
            print(
                f"[reconcile] {plan.entities_created} entities over {plan.partitions} partitions: "
                f"{plan.cross_partition_pairs} cross-partition duplicate pairs ({result.rescored} raced pairs "
                f"scored again; {plan.contradicted} left apart, their members contradict, "
                f"{plan.curator_kept_apart} of them by a curator's verdict), "
                f"{result.published} MERGE decisions published",
                flush=True,
            )
            if not args.every:
                return 0
            # A NEW item of the last two windows may race one decided after this pass began.
            since_ms = started_ms - int(2 * RACE_WINDOW_S * 1000)
            await asyncio.sleep(args.every)

    return asyncio.run(passes())


def cmd_entity(args: argparse.Namespace, settings: Settings) -> int:
    from resolution.entities import EntityStore, rebuild_state
    from streams.replay import decision_records, fetch_json, worker_url

    if args.replay:
        record = EntityStore(rebuild_state(decision_records(settings))).describe(args.entity_id)
    else:
        import urllib.error

        try:
            url = f"{args.worker_url or worker_url(settings)}/entity/{args.entity_id}"
            record = fetch_json(url, token=settings.worker.web_token)
        except urllib.error.HTTPError as exc:
            record = None if exc.code == 404 else {"error": str(exc)}
    if record is None:
        print(f"[entity] unknown entity {args.entity_id}", file=sys.stderr)
        return 1
    print(json.dumps(record, indent=2, ensure_ascii=False))
    return 0


def cmd_bench(args: argparse.Namespace, settings: Settings) -> int:
    from benchmarks.suite import BenchOptions, format_table, run_bench, write_json

    if args.encoder_quality:
        from benchmarks.encoder import quality_against_reference
        from benchmarks.milvus_indexes import real_texts

        texts = real_texts(Path(args.encoder_quality))[:3000]
        from inference.encoder_paths import ENCODER_PATHS, REFERENCE_PATH

        quality = {
            p.triton_model: quality_against_reference(
                texts, p.triton_model, settings.stack.torch_threads, settings.stack.cache_dir
            )
            for p in ENCODER_PATHS
            if p != REFERENCE_PATH
        }
        print(json.dumps(quality, indent=2))
        if args.json:
            write_json(Path(args.json), quality)
        return 0
    if args.state_store:
        from benchmarks.state_store import format_state_table, run_state_bench

        state = run_state_bench(args.state_store, settings.stack.state_dir / "logs")
        print("\n" + format_state_table(state))
        if args.json:
            write_json(Path(args.json), state)
        return 0
    if args.media_step:
        from benchmarks.media_step import format_media_step, run_media_step_check
        from content_resolver.composition import build_offline_encoder, build_offline_resolver

        scorer, thresholds = _local_scorer(settings, None)
        encoder = build_offline_encoder(settings, REPO_ROOT / ".cache")
        off, on = (
            build_offline_resolver(settings, encoder, scorer, thresholds, "exact", modalities)
            for modalities in (MEDIA_CHOICES["text"], MEDIA_CHOICES["all"])
        )
        figures = run_media_step_check(Path(args.media_step), off, on, args.rounds, args.limit)
        print(format_media_step(figures))
        if args.json:
            write_json(Path(args.json), figures)
        outcomes, assignments = (
            figures["outcomes_differing_from_control"],
            figures["assignments_differing_from_control"],
        )
        return 0 if outcomes["on"] <= outcomes["off"] and assignments["on"] <= assignments["off"] else 1
    if args.media_index:
        from benchmarks.media_index import format_media_index, run_media_index_bench

        figures = run_media_index_bench(settings, size=args.media_index, seed=args.seed)
        print(format_media_index(figures))
        if args.json:
            write_json(Path(args.json), figures)
        return 0
    if args.media:
        from benchmarks.media_encoders import run_media_bench

        figures = run_media_bench(settings.worker.triton_url, size=args.media)
        print(json.dumps(figures, indent=2))
        if args.json:
            write_json(Path(args.json), figures)
        return 0
    if args.milvus:
        from benchmarks.milvus_indexes import run_index_study

        only = {name.strip().upper() for name in args.milvus_indexes.split(",")} if args.milvus_indexes else None
        sizes = [int(n) for n in args.milvus.split(",")]
        study = run_index_study(settings, sizes, Path(args.dataset_root), only=only)
        if args.json:
            write_json(Path(args.json), study)
        return 0
    options = BenchOptions(
        events=args.events,
        dataset=Path(args.dataset) if args.dataset else None,
        soak_minutes=args.soak or 0.0,
    )
    from content_resolver.composition import local_stack
    from content_resolver.encoder_choice import served_text_model

    # A Triton started before this machine's choice was measured may not hold the chosen model.
    local_stack(settings).ensure_triton_models()
    choice = served_text_model(settings)
    result, phases, rss = run_bench(settings, options, choice.model, choice.reason)
    table = format_table(result)
    print("\n" + table)
    if args.json:
        write_json(Path(args.json), result)
    if args.report:
        from benchmarks.report import write_report

        write_report(Path(args.report), result, table, phases, rss)
        print(f"[bench] report: {args.report}")
    return 0


def cmd_schemas(args: argparse.Namespace, settings: Settings) -> int:
    from streams.compatibility import check_full_compatibility
    from streams.topics import SCHEMA_DIR

    failed = False
    for report in check_full_compatibility(Path(args.schema_dir) if args.schema_dir else SCHEMA_DIR):
        versions = ", ".join(f"{v.version} {v.fingerprint.hex()}" for v in report.released)
        state = "FULL-compatible with" if report.ok else "BREAKS compatibility with"
        print(f"{report.schema}: current {report.current.fingerprint.hex()} {state} released {versions}")
        for version, direction, problem in report.problems:
            print(f"  {direction} ({version}): {problem}")
        failed |= not report.ok
    if failed:
        print(
            "[schemas] refused: a change must keep every released version readable by the new schema (backward)"
            " and the new schema readable by every released version (forward): add fields with a default,"
            " remove only fields that have one, never change a type except by Avro promotion",
            file=sys.stderr,
        )
    return 1 if failed else 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="resolver", description=__doc__)
    sub = p.add_subparsers(dest="verb", required=True)

    s = sub.add_parser("stack", help="start, stop or inspect the local services")
    s.add_argument("action", choices=["up", "down", "status", "fetch"])
    s.add_argument("--only", nargs="*", choices=["kafka", "milvus", "jaeger", "triton"])
    s.add_argument(
        "--fresh-milvus", action="store_true", help="with up: start a stopped Milvus from an empty data folder"
    )
    s.set_defaults(fn=cmd_stack)

    s = sub.add_parser("worker", help="run one resolver worker in the foreground")
    s.add_argument("--loglevel", default="warning")
    s.add_argument("--shadow", type=int, metavar="VERSION", help="a shadow worker with this matcher version")
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

    s = sub.add_parser("evaluate", help="replay a labelled dataset through the resolution code, offline")
    s.add_argument("--dataset", required=True, help="a folder in the layout of ../shared/data")
    s.add_argument("--model", help="a matcher model version folder (default: the shipped triton_models/matcher)")
    s.add_argument("--split", default="valid", choices=["train", "fit", "tune", "valid", "test", "all"])
    s.add_argument("--shuffles", type=int, default=3, help="stream orders (cluster sets)")
    s.add_argument(
        "--text-model",
        default="",
        help="the encoder path to embed with, in-process, by its Triton model name (default: the served one)",
    )
    s.add_argument(
        "--stream",
        default="all",
        choices=["all", "split"],
        help="cluster sets: stream every record and score the split's (all), or the split's records alone",
    )
    s.add_argument(
        "--index",
        default="exact",
        choices=["exact", "milvus", "both"],
        help="the exact in-memory index, a fresh Milvus collection with the worker's parameters, or both",
    )
    s.add_argument(
        "--media",
        default="all",
        choices=sorted(MEDIA_CHOICES),
        help="evidence read where records carry audio_ref / image_ref in extra (default all, as the worker)",
    )
    s.add_argument(
        "--ablation", action="store_true", help="resolve on text, text+audio, text+image and all; one line each"
    )
    s.add_argument(
        "--through-stack",
        action="store_true",
        help="produce the set to Kafka, let a real worker decide, export its clusters and score them",
    )
    s.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="stream the first order N times (offline or --through-stack), count decisions and clusters that differ",
    )
    xenc = s.add_mutually_exclusive_group()
    xenc.add_argument(
        "--cross-encoder",
        help="refine with this cross-encoder version (default: as the worker, RESOLVER_WORKER_CROSS_ENCODER_MODEL)",
    )
    xenc.add_argument("--no-cross-encoder", action="store_true", help="the matcher alone, no cross-encoder")
    s.add_argument("--json", help="write the metrics (fractions) to this file")
    s.add_argument("--report", help="write an HTML report with plots and the worst errors")
    s.set_defaults(fn=cmd_evaluate)

    s = sub.add_parser(
        "train-cross-encoder", help="fine-tune the cross-encoder on pair sets; temperature and threshold on tune"
    )
    s.add_argument("--dataset", required=True, action="append", help="a pair set folder; repeat for several")
    where = s.add_mutually_exclusive_group()
    where.add_argument("--out", help="the version folder to write, e.g. triton_models/cross_encoder/2")
    where.add_argument("--model", default="cross_encoder", help="write the next numbered version of this model")
    s.add_argument("--seed", type=int, default=13)
    s.add_argument("--epochs", type=int)
    s.add_argument("--trained-layers", type=int, help="top transformer layers fine-tuned (the rest frozen)")
    s.set_defaults(fn=cmd_train_cross_encoder)

    s = sub.add_parser("train", help="train the matcher; thresholds picked on the tune portion")
    s.add_argument("--dataset", required=True, action="append", help="a dataset folder; repeat for several")
    where = s.add_mutually_exclusive_group()
    where.add_argument("--out", help="the model version folder to write, e.g. triton_models/matcher/1")
    where.add_argument("--model", default="matcher", help="write the next numbered version of this model (default)")
    s.add_argument("--feedback", action="store_true", help="also learn from the verdicts on resolution-feedback")
    s.add_argument(
        "--media-set",
        action="append",
        default=[],
        help="a generated media set (resolver media generate --split fit|tune): trains a media head over the "
        "text matcher --base on every pair, with its audio and image similarities, in the portion its split "
        "names; repeat for several",
    )
    s.add_argument(
        "--base",
        help="with --media-set: the text matcher's version folder the head is trained over (default: the "
        "serving version)",
    )
    s.add_argument("--seed", type=int, default=13)
    s.add_argument("--epochs", type=int)
    s.add_argument("--hidden", type=int)
    s.add_argument("--sample-songs", type=int, help="songs of the generated catalogue trained on")
    s.set_defaults(fn=cmd_train)

    s = sub.add_parser("promote", help="serve a new model version if it beats the serving one on held-out data")
    s.add_argument("model", nargs="?", default="matcher")
    s.add_argument("version", nargs="?", type=int, help="default: the newest trained version")
    s.add_argument("--dataset", action="append", help="held-out sets (default: those the candidate trained on)")
    s.add_argument("--feedback", action="store_true", help="also judge on held-out curator verdicts")
    s.add_argument(
        "--media-set",
        action="append",
        help="held-out media sets (resolver media generate --split valid; default for a candidate trained on "
        "media sets: .cache/media/set-valid-small-15, built where missing)",
    )
    s.add_argument("--json", help="write the comparison to this file")
    s.set_defaults(fn=cmd_promote)

    s = sub.add_parser("rollback", help="serve the version that served before the current one")
    s.add_argument("model", nargs="?", default="matcher")
    s.set_defaults(fn=cmd_rollback)

    s = sub.add_parser("shadow", help="load a model version beside the serving one, for a shadow worker")
    s.add_argument("model", nargs="?", default="matcher")
    s.add_argument("version", nargs="?", type=int)
    s.add_argument("--off", action="store_true", help="unload the shadow versions")
    s.set_defaults(fn=cmd_shadow)

    s = sub.add_parser("compare", help="the serving worker's decisions against a shadow worker's, as a report")
    s.add_argument("--primary-topic", help="default: the decisions topic")
    s.add_argument("--shadow-topic", help="default: the shadow worker's decisions topic")
    s.add_argument("--dataset", help="a labelled folder whose truth scores both sides")
    s.add_argument("--feedback", action="store_true", help="also score both sides on the curator verdicts")
    s.add_argument("--json", help="write the summary and the changed decisions to this file")
    s.add_argument("--report", help="write an HTML page with plots to this file")
    s.set_defaults(fn=cmd_compare)

    s = sub.add_parser("datasets", help="validate, fingerprint and size golden sets (layout of ../shared/data)")
    s.add_argument("dirs", nargs="+", metavar="DIR", help="dataset folders")
    s.add_argument("--json", help="write the reports to this file")
    s.set_defaults(fn=cmd_datasets)

    s = sub.add_parser("feedback", help="send a curator's verdict on two content ids to resolution-feedback")
    verdicts = s.add_mutually_exclusive_group(required=True)
    for verdict in ("same", "different", "version_of", "video_of"):
        flag = "--" + verdict.replace("_", "-")
        verdicts.add_argument(flag, dest=verdict, nargs=2, metavar=("LEFT", "RIGHT"))
    s.add_argument("--curator", default=os.environ.get("USER", "curator"))
    s.add_argument("--note", default="")
    s.add_argument("--title", help="the items' title: keys the record like their content events (several workers)")
    s.set_defaults(fn=cmd_feedback)

    s = sub.add_parser("rebuild", help="replay resolution-decisions into a fresh state and compare with the worker's")
    s.add_argument("--worker-url", help="the worker's web address (default: 127.0.0.1 and the worker web port)")
    s.set_defaults(fn=cmd_rebuild)

    s = sub.add_parser("export", help="the current clustering, replayed from resolution-decisions, as CSV")
    s.add_argument("--clusters", required=True, metavar="OUT.csv", help="content_id, entity_id, work_id per item")
    s.set_defaults(fn=cmd_export)

    s = sub.add_parser("reconcile", help="merge duplicates that were created as entities in different partitions")
    s.add_argument("--every", type=float, metavar="SECONDS", help="keep running, one pass every SECONDS")
    s.set_defaults(fn=cmd_reconcile)

    s = sub.add_parser("entity", help="an entity: members, relations, lineage, decisions with trace ids")
    s.add_argument("entity_id")
    s.add_argument("--worker-url", help="the worker's web address (default: 127.0.0.1 and the worker web port)")
    s.add_argument("--replay", action="store_true", help="from the decisions topic instead of the worker")
    s.set_defaults(fn=cmd_entity)

    s = sub.add_parser("bench", help="encoder, Triton and end-to-end speed on the local stack (or --milvus)")
    s.add_argument("--events", type=int, default=2000, help="events per end-to-end phase")
    s.add_argument("--dataset", help="stream this dataset's records instead of the generated catalogue")
    s.add_argument("--json", help="write every number to this file")
    s.add_argument("--report", help="write an HTML page (with PNG plots beside it) to this file")
    s.add_argument("--soak", type=float, metavar="MINUTES", help="then run at half load this long, tracking RSS")
    s.add_argument(
        "--media",
        metavar="SIZE",
        help="instead: chroma and image-hash speed, Triton vs in-process, on the media set",
    )
    s.add_argument(
        "--media-index",
        metavar="SIZE",
        help="instead: same-recording recall@10 and per-batch cost of the media index (in memory, Milvus) "
        "against the per-worker memory, on the generated set of this size",
    )
    s.add_argument("--seed", type=int, default=12, help="with --media-index: the generated set's seed")
    s.add_argument("--milvus", metavar="SIZES", help="instead: the Milvus index study at these sizes: 20000,100000")
    s.add_argument("--dataset-root", default=str(REPO_ROOT.parent / "shared" / "data"), help="real titles for --milvus")
    s.add_argument("--milvus-indexes", metavar="NAMES", help="with --milvus: only these index types, e.g. FLAT,HNSW")
    s.add_argument(
        "--state-store",
        type=int,
        metavar="EVENTS",
        help="instead: worker RSS and recovery time with this many events of state, memory store vs RocksDB",
    )
    s.add_argument(
        "--encoder-quality", metavar="DIR", help="instead: every encoder path's vectors against fp32 on DIR's titles"
    )
    s.add_argument(
        "--media-step",
        metavar="DIR",
        help="instead: the worker's resolver on DIR's records (offline) without and with the media step: "
        "speed ratio and decisions that differ",
    )
    s.add_argument("--rounds", type=int, default=3, help="with --media-step: alternating rounds")
    s.add_argument("--limit", type=int, default=0, help="with --media-step: only the first N records")
    s.set_defaults(fn=cmd_bench)

    s = sub.add_parser("schemas", help="check each schema change against the released versions (FULL compatibility)")
    s.add_argument("action", choices=["check"])
    s.add_argument("--schema-dir", help="a schemas folder laid out like streams/schemas (default: that one)")
    s.set_defaults(fn=cmd_schemas)

    s = sub.add_parser("demo", help="stack up, a worker, the sample catalogue streamed, a summary")
    s.add_argument("--keep", action="store_true", help="keep earlier topics and state instead of starting clean")
    s.set_defaults(fn=cmd_demo)

    from media.command import add_parser as add_media_parser

    add_media_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=os.environ.get("RESOLVER_LOGLEVEL", "WARNING"))
    args = build_parser().parse_args(argv)
    from deploy.milvus_credentials import export_local_milvus_token

    # Into the environment, so that workers and tools started from here inherit it.
    export_local_milvus_token(os.environ)
    settings = Settings.from_env()
    return int(args.fn(args, settings) or 0)


if __name__ == "__main__":
    sys.exit(main())
