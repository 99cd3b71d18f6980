"""The composition root: every long-lived object is built here, from ``Settings``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import faust
from opentelemetry.sdk.trace import TracerProvider

from inference.matcher_model import MatcherModel
from inference.model_repository import ModelRepository
from inference.text_encoder import TEXT_DIM
from inference.triton_client import TritonPairScorer, TritonTextEncoder
from media.loading import MediaLimits
from media.reader import MediaEvidenceReader
from resolution.candidates import CandidateFinder
from resolution.corrections import CorrectionLimits, Corrector
from resolution.drift import DriftMonitor
from resolution.entities import EntityStore
from resolution.matcher import PairScorer, RuleScorer
from resolution.media_evidence import MediaMemory
from resolution.policy import DecisionPolicy, Thresholds
from resolution.resolver import BatchResolver
from settings import Settings
from streams.app import create_app
from streams.handler import EventBatchHandler, EventScope
from streams.kafka import topic_names
from streams.metrics import ResolverMetrics
from streams.topics import Schemas
from streams.validation import EventLimits, EventValidator
from telemetry import tracer_provider
from vector_index.milvus import MilvusVectorIndex


@dataclass
class Worker:
    app: faust.App
    metrics: ResolverMetrics
    tracing: TracerProvider


def as_shadow(settings: Settings) -> Settings:
    """A shadow worker's settings: the same input (content events and feedback), its own consumer
    group and state (app id), Milvus collection, web port and output topics, so that it never
    writes to the decisions topic nor shares anything the serving worker keeps."""
    w, k = settings.worker, settings.kafka
    if not w.shadow_version:
        return settings
    suffix = "shadow"
    kafka = replace(k, decisions_topic=f"{k.decisions_topic}-{suffix}", dlq_topic=f"{k.dlq_topic}-{suffix}")
    worker = replace(
        w,
        app_id=f"{w.app_id}-{suffix}",
        milvus_collection=f"{w.milvus_collection}_{suffix}",
        web_port=w.web_port + 1,
    )
    if kafka.decisions_topic == k.decisions_topic:
        raise ValueError("a shadow worker must not write to the decisions topic")
    return replace(settings, kafka=kafka, worker=worker)


def build_scorer(
    settings: Settings,
    on_retry: Callable[[str], None] | None = None,
    on_version: Callable[[int, MatcherModel], None] | None = None,
) -> tuple[PairScorer, Thresholds]:
    """The learned matcher served by Triton, with the thresholds trained with it, when the model
    repository holds a trained version; otherwise the rule baseline with the configured thresholds.

    An ordinary worker starts with the serving version of the repository's ``config.pbtxt`` and
    follows promotions as Triton reports them; a shadow worker is pinned to its version."""
    w = settings.worker
    repository = ModelRepository(settings.stack.triton_model_repository, w.matcher_model)
    if w.shadow_version:
        if w.shadow_version not in repository.versions():
            raise ValueError(f"shadow version {w.shadow_version} of {w.matcher_model} holds no trained model")
        version: int | None = w.shadow_version
    else:
        version = repository.served().serving if repository.serving_dir() is not None else None
    if version is not None:
        model = MatcherModel.load(repository.version_dir(version))
        scorer = TritonPairScorer(
            w.triton_url,
            model,
            w.matcher_model,
            retry_max_s=w.retry_max_s,
            on_retry=on_retry,
            load_version=lambda v: MatcherModel.load(repository.version_dir(v)),
            version=version,
            pinned=bool(w.shadow_version),
            refresh_s=w.matcher_refresh_s,
            on_version=on_version,
        )
        return scorer, model.thresholds
    return RuleScorer(), Thresholds(merge=w.merge_threshold, link=w.link_threshold)


def build_media_reader(settings: Settings) -> MediaEvidenceReader | None:
    w = settings.worker
    if not w.media_evidence:
        return None
    limits = MediaLimits(
        max_bytes=w.media_max_bytes,
        max_duration_s=w.media_max_seconds,
        audio_seconds=w.media_audio_seconds,
        max_pixels=w.media_max_pixels,
        timeout_s=w.media_timeout_s,
    )
    return MediaEvidenceReader(limits, concurrency=w.media_concurrency)


def correction_limits(settings: Settings, thresholds: Thresholds) -> CorrectionLimits:
    """Corrections merge on the same evidence as the policy: the model's own merge threshold."""
    w = settings.worker
    return CorrectionLimits(
        merge_threshold=thresholds.merge,
        # As in evaluation (BatchResolver's default corrector): evidence binds at the merge threshold.
        bind_threshold=thresholds.merge,
        conflict_threshold=w.conflict_threshold,
        max_entities=w.correction_max_entities,
        max_members=w.correction_max_members,
    )


def build_worker(settings: Settings) -> Worker:
    settings = as_shadow(settings)
    w = settings.worker
    metrics = ResolverMetrics()
    tracing = tracer_provider("content-resolver", w.otlp_endpoint)
    tracer = tracing.get_tracer("content_resolver.worker")
    schemas = Schemas.load(settings.kafka.schema_dir_paths)
    validator = EventValidator(schemas.content_event, EventLimits.from_settings(w))

    def on_retry(dependency: str) -> None:
        metrics.retries.labels(dependency).inc()

    encoder = TritonTextEncoder(w.triton_url, w.text_model, retry_max_s=w.retry_max_s, on_retry=on_retry)
    index = MilvusVectorIndex(
        w.milvus_uri,
        w.milvus_collection,
        TEXT_DIM,
        token=w.milvus_token,
        retry_max_s=w.retry_max_s,
        on_retry=on_retry,
        hnsw_ef=w.milvus_hnsw_ef,
    )
    policies: list[DecisionPolicy] = []
    lc = settings.lifecycle
    drift = DriftMonitor(None, lc.drift_window_s, lc.drift_min_events, lc.drift_psi_threshold)
    metrics.drift_threshold.set(lc.drift_psi_threshold)

    def on_version(_version: int, model: MatcherModel) -> None:
        # Decisions after a promotion use the thresholds trained with the version that scores
        # them, and its inputs are compared with its own training reference.
        for p in policies:
            p.thresholds = model.thresholds
        drift.use_reference(model.metadata.get("drift_reference"))

    scorer, thresholds = build_scorer(settings, on_retry, on_version)
    if isinstance(scorer, TritonPairScorer):
        drift.use_reference(scorer.model.metadata.get("drift_reference"))
    policy = DecisionPolicy(thresholds)
    policies.append(policy)

    media = build_media_reader(settings)

    def build_handler(store: EntityStore, scope: EventScope) -> EventBatchHandler:
        finder = CandidateFinder(index, w.candidates_k, w.recent_window_s, TEXT_DIM, w.title_candidates_cap)
        corrector = Corrector(store, correction_limits(settings, thresholds))
        resolver = BatchResolver(
            encoder,
            finder,
            scorer,
            policy,
            store,
            max_candidates=w.candidates_k,
            corrector=corrector,
            pipeline_chunk=w.pipeline_chunk,
            media=media,
            media_memory=MediaMemory(w.media_memory_items),
            media_candidates=w.media_candidates,
        )
        return EventBatchHandler(
            resolver, validator, schemas, topic_names(settings.kafka), tracer, metrics, scope, drift
        )

    async def health() -> dict[str, Any]:
        triton = await encoder.ready()
        milvus = await index.ping()
        healthy = triton and milvus
        metrics.healthy.set(1 if healthy else 0)
        return {"healthy": healthy, "triton": triton, "milvus": milvus}

    app = create_app(settings, build_handler, metrics, health)
    return Worker(app=app, metrics=metrics, tracing=tracing)
