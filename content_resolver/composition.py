"""The composition root: every long-lived object is built here, from ``Settings``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import faust
from opentelemetry.sdk.trace import TracerProvider

from content_resolver.settings import Settings
from content_resolver.telemetry import tracer_provider
from inference.text_encoder import TEXT_DIM
from inference.triton_client import TritonTextEncoder
from resolution.candidates import CandidateFinder
from resolution.entities import EntityStore
from resolution.matcher import PairScorer, RuleScorer
from resolution.milvus_index import MilvusVectorIndex
from resolution.policy import DecisionPolicy, Thresholds
from resolution.resolver import BatchResolver
from streams.app import create_app
from streams.handler import EventBatchHandler, EventScope
from streams.kafka import topic_names
from streams.metrics import ResolverMetrics
from streams.topics import Schemas
from streams.validation import EventLimits, EventValidator


@dataclass
class Worker:
    app: faust.App
    metrics: ResolverMetrics
    tracing: TracerProvider


def build_scorer(settings: Settings) -> tuple[PairScorer, Thresholds]:
    w = settings.worker
    return RuleScorer(), Thresholds(merge=w.merge_threshold, link=w.link_threshold)


def build_worker(settings: Settings) -> Worker:
    w = settings.worker
    metrics = ResolverMetrics()
    tracing = tracer_provider("content-resolver", w.otlp_endpoint)
    tracer = tracing.get_tracer("content_resolver.worker")
    schemas = Schemas.load()
    validator = EventValidator(schemas.content_event, EventLimits.from_settings(w))

    def on_retry(dependency: str) -> None:
        metrics.retries.labels(dependency).inc()

    encoder = TritonTextEncoder(w.triton_url, w.text_model, retry_max_s=w.retry_max_s, on_retry=on_retry)
    index = MilvusVectorIndex(
        w.milvus_uri, w.milvus_collection, TEXT_DIM, token=w.milvus_token, retry_max_s=w.retry_max_s, on_retry=on_retry
    )
    scorer, thresholds = build_scorer(settings)
    policy = DecisionPolicy(thresholds)

    def build_handler(store: EntityStore, scope: EventScope) -> EventBatchHandler:
        finder = CandidateFinder(index, w.candidates_k, w.recent_window_s, TEXT_DIM)
        resolver = BatchResolver(encoder, finder, scorer, policy, store, max_candidates=w.candidates_k)
        return EventBatchHandler(resolver, validator, schemas, topic_names(settings.kafka), tracer, metrics, scope)

    async def health() -> dict[str, Any]:
        triton = await encoder.ready()
        milvus = await index.ping()
        healthy = triton and milvus
        metrics.healthy.set(1 if healthy else 0)
        return {"healthy": healthy, "triton": triton, "milvus": milvus}

    app = create_app(settings, build_handler, metrics, health)
    return Worker(app=app, metrics=metrics, tracing=tracing)
