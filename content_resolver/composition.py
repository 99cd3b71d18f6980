"""The composition root: every long-lived object is built here, from ``Settings``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import faust
from opentelemetry.sdk.trace import TracerProvider

from inference.matcher_model import MatcherModel, latest_version_dir
from inference.text_encoder import TEXT_DIM
from inference.triton_client import TritonPairScorer, TritonTextEncoder
from media.loading import MediaLimits
from media.reader import MediaEvidenceReader
from resolution.candidates import CandidateFinder
from resolution.corrections import CorrectionLimits, Corrector
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


def build_scorer(settings: Settings, on_retry: Callable[[str], None] | None = None) -> tuple[PairScorer, Thresholds]:
    """The learned matcher served by Triton, with the thresholds trained with it, when the model
    repository holds a trained version; otherwise the rule baseline with the configured thresholds."""
    w = settings.worker
    version = latest_version_dir(settings.stack.triton_model_repository / w.matcher_model)
    if version is not None:
        model = MatcherModel.load(version)
        scorer = TritonPairScorer(w.triton_url, model, w.matcher_model, retry_max_s=w.retry_max_s, on_retry=on_retry)
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
    scorer, thresholds = build_scorer(settings, on_retry)
    policy = DecisionPolicy(thresholds)

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
        return EventBatchHandler(resolver, validator, schemas, topic_names(settings.kafka), tracer, metrics, scope)

    async def health() -> dict[str, Any]:
        triton = await encoder.ready()
        milvus = await index.ping()
        healthy = triton and milvus
        metrics.healthy.set(1 if healthy else 0)
        return {"healthy": healthy, "triton": triton, "milvus": milvus}

    app = create_app(settings, build_handler, metrics, health)
    return Worker(app=app, metrics=metrics, tracing=tracing)
