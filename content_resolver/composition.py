"""The composition root: every long-lived object is built here, from ``Settings``."""

from __future__ import annotations

import functools
import os
import socket
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import faust
import numpy as np
from opentelemetry.sdk.trace import TracerProvider

from content_resolver.encoder_choice import measured_choice, served_text_model
from deploy.stack import LocalStack
from deploy.stack import say as stack_say
from evaluation.embedding_cache import CachedTextEncoder
from evaluation.streaming import OfflineResolver
from inference.cross_encoder import CrossEncoderModel, CrossEncoderVersion, LocalCrossEncoder, is_cross_encoder_dir
from inference.encoder_paths import encoder_path, load_encoder
from inference.matcher_model import LocalPairScorer, MatcherModel
from inference.model_repository import ModelRepository
from inference.onnx_export import ensure_onnx_models
from inference.text_encoder import TEXT_DIM
from inference.triton_client import TritonCrossEncoder, TritonPairScorer, TritonTextEncoder
from media.loading import MediaLimits
from media.reader import MediaEvidenceReader
from resolution.candidates import CandidateFinder, InMemoryVectorIndex, VectorIndex
from resolution.corrections import CorrectionLimits, Corrector
from resolution.drift import DriftMonitor
from resolution.entities import EntityStore
from resolution.errors import DependencyUnavailable
from resolution.matcher import BandRefinedScorer, PairRefiner, PairScorer, RuleScorer, UncertainBand
from resolution.media_evidence import FusionRule, MediaMemory, MediaReader, fusion_rule_for
from resolution.media_index import InMemoryMediaIndex, MediaIndex
from resolution.policy import DecisionPolicy, Thresholds
from resolution.resolver import BatchResolver, TextEncoder
from settings import Settings
from streams.app import create_app
from streams.handler import EventBatchHandler, EventScope
from streams.kafka import topic_names
from streams.metrics import ResolverMetrics
from streams.topics import Schemas
from streams.validation import EventLimits, EventValidator
from telemetry import tracer_provider
from vector_index.milvus import MilvusParams, MilvusVectorIndex
from vector_index.milvus_media import MilvusMediaIndex


@dataclass
class Worker:
    app: faust.App
    metrics: ResolverMetrics
    tracing: TracerProvider


def local_stack(settings: Settings) -> LocalStack:
    """The local services, with Triton serving the text model chosen by measurement on this CPU
    (measured once by the first ``stack up``, in seconds) and the ONNX export built by ``fetch``."""

    def chosen() -> str:
        choice = measured_choice(settings.stack.cache_dir, settings.stack.torch_threads, say=stack_say)
        stack_say(choice.lines()[0])
        return choice.model

    def export() -> None:
        ensure_onnx_models(settings.stack.cache_dir, say=stack_say)

    return LocalStack(
        settings.stack,
        milvus_token=settings.worker.milvus_token,
        text_model=functools.cache(chosen),
        build_steps=(export,),
    )


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


def cross_encoder_repository(settings: Settings) -> ModelRepository:
    return ModelRepository(
        settings.stack.triton_model_repository, settings.worker.cross_encoder_model, is_cross_encoder_dir
    )


def uncertain_band(settings: Settings) -> UncertainBand:
    return UncertainBand(settings.worker.cross_encoder_band_low, settings.worker.cross_encoder_band_high)


def with_cross_encoder(
    settings: Settings,
    fast: PairScorer,
    merge_threshold: Callable[[], float],
    in_process: bool = False,
    folder: Path | None = None,
    on_retry: Callable[[str], None] | None = None,
) -> PairScorer:
    """The fast scorer, refined by the cross-encoder on its uncertain band: the serving version of
    the repository's ``cross_encoder`` folder (or the version ``folder``), served by Triton or,
    ``in_process``, run here (``resolver evaluate``). The fast scorer alone when the setting names
    no model or no version is trained; and the rule baseline is never refined (the band is a
    learned matcher's uncertainty)."""
    w = settings.worker
    if isinstance(fast, RuleScorer) or (folder is None and not w.cross_encoder_model):
        return fast
    repository = cross_encoder_repository(settings)
    version: int | None = None
    if folder is None:
        folder = repository.serving_dir()
        version = repository.served().serving if folder is not None else None
    if folder is None:
        return fast
    refiner: PairRefiner
    if in_process:
        refiner = LocalCrossEncoder(CrossEncoderModel.load(folder))
    else:
        refiner = TritonCrossEncoder(
            w.triton_url,
            CrossEncoderVersion.read(folder),
            w.cross_encoder_model,
            version=version,
            retry_max_s=w.retry_max_s,
            on_retry=on_retry,
        )
    return BandRefinedScorer(fast, refiner, uncertain_band(settings), merge_threshold)


async def warm_up(encoder: TritonTextEncoder, scorer: PairScorer) -> bool:
    """One small request to the text model, the matcher and the cross-encoder; False when
    Triton does not answer."""
    try:
        await encoder.encode(["warm-up", "a warm-up title by an artist"])
        fast = scorer.fast if isinstance(scorer, BandRefinedScorer) else scorer
        if isinstance(fast, TritonPairScorer):
            await fast.probabilities(np.zeros((2, len(fast.feature_names)), dtype=np.float32))
        if isinstance(scorer, BandRefinedScorer) and isinstance(scorer.refiner, TritonCrossEncoder):
            await scorer.refiner.texts_probability(["COL title VAL warm-up"], ["COL title VAL a warm-up title"])
    except DependencyUnavailable:
        return False
    return True


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


ALL_MODALITIES = frozenset({"audio", "image"})


def build_media_reader(
    settings: Settings, modalities: frozenset[str] = ALL_MODALITIES, cache_items: int = 0
) -> MediaEvidenceReader | None:
    """The media step (an event's ``audio_ref`` / ``image_ref`` read within the worker's bounds),
    or None when it is turned off (``RESOLVER_WORKER_MEDIA_EVIDENCE=0``) or no modality is asked
    for (evaluation's text-only row)."""
    w = settings.worker
    if not w.media_evidence or not modalities:
        return None
    limits = MediaLimits(
        max_bytes=w.media_max_bytes,
        max_duration_s=w.media_max_seconds,
        audio_seconds=w.media_audio_seconds,
        max_pixels=w.media_max_pixels,
        timeout_s=w.media_timeout_s,
        memory_bytes=w.media_memory_mb << 20,
    )
    return MediaEvidenceReader(limits, concurrency=w.media_concurrency, modalities=modalities, cache_items=cache_items)


MEDIA_INDEX_KINDS = ("milvus", "memory", "off")


def build_media_index(
    settings: Settings,
    kind: str | None = None,
    collection: str | None = None,
    on_retry: Callable[[str], None] | None = None,
) -> MediaIndex | None:
    """The media index every partition's resolver searches (``RESOLVER_WORKER_MEDIA_INDEX``, or
    ``kind``): Milvus collections beside the text one (``collection``, default the worker's, with
    ``_audio`` / ``_image``), one in this process, or none (each resolver's own memory only)."""
    w = settings.worker
    kind = kind or w.media_index
    if kind not in MEDIA_INDEX_KINDS:
        raise ValueError(f"RESOLVER_WORKER_MEDIA_INDEX={kind!r}: expected one of {MEDIA_INDEX_KINDS}")
    if kind == "off" or not w.media_evidence:
        return None
    if kind == "memory":
        return InMemoryMediaIndex(w.media_search_k)
    return MilvusMediaIndex(
        MilvusParams.of(w), collection or w.milvus_collection, search_k=w.media_search_k, on_retry=on_retry
    )


def scoring_features(scorer: PairScorer) -> tuple[str, ...]:
    """The features of the matcher that scores now (a promotion can change it); none for rules."""
    fast = scorer.fast if isinstance(scorer, BandRefinedScorer) else scorer
    if isinstance(fast, LocalPairScorer | TritonPairScorer):
        return fast.model.feature_names
    return ()


def media_fusion_rule(settings: Settings, scorer: PairScorer) -> Callable[[], FusionRule]:
    """``RESOLVER_WORKER_MEDIA_FUSION_RULE`` as the resolver asks it, once per chunk (a bad word
    fails here, when the worker is built)."""
    word = settings.worker.media_fusion_rule
    fusion_rule_for(word, ())
    return lambda: fusion_rule_for(word, scoring_features(scorer))


def build_batch_resolver(
    settings: Settings,
    encoder: TextEncoder,
    index: VectorIndex,
    scorer: PairScorer,
    policy: DecisionPolicy,
    store: EntityStore,
    media: MediaReader | None = None,
    media_index: MediaIndex | None = None,
) -> BatchResolver:
    """The resolver of one worker's state, as the worker runs it; ``resolver evaluate`` builds
    its offline resolvers here too, so every setting the worker honours shapes evaluation. The
    media memory is the resolver's own, like its entity store; ``media_index`` is shared by every
    partition and worker."""
    w = settings.worker
    finder = CandidateFinder(index, w.candidates_k, w.recent_rows, TEXT_DIM, w.title_candidates_cap)
    corrector = Corrector(store, correction_limits(settings, policy.thresholds))
    return BatchResolver(
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
        media_rule=media_fusion_rule(settings, scorer),
        media_index=media_index if media is not None else None,
    )


def build_milvus_index(
    settings: Settings,
    collection: str | None = None,
    on_retry: Callable[[str], None] | None = None,
    consistency: str = "Bounded",
) -> MilvusVectorIndex:
    """The worker's Milvus index (its HNSW breadth, retry budget); ``collection`` overrides the
    name; reconciliation reads with ``Strong`` consistency (every worker's writes visible)."""
    w = settings.worker
    return MilvusVectorIndex(
        MilvusParams.of(w, consistency), collection or w.milvus_collection, TEXT_DIM, on_retry=on_retry
    )


def build_offline_encoder(settings: Settings, cache_dir: Path, text_model: str = "") -> CachedTextEncoder:
    """The worker's text model variant in-process (the encoder path its Triton model runs, or
    ``text_model``), with embeddings cached on disk under that path's version."""
    path = encoder_path(text_model or served_text_model(settings).model)

    def load() -> Callable[[list[str]], np.ndarray]:
        return load_encoder(path, settings.stack.cache_dir, threads=settings.stack.torch_threads * 2).encode

    return CachedTextEncoder(cache_dir / "embeddings", path.model_version, load)


def build_offline_resolver(
    settings: Settings,
    encoder: CachedTextEncoder,
    scorer: PairScorer,
    thresholds: Thresholds,
    index_kind: str = "exact",
    modalities: frozenset[str] = ALL_MODALITIES,
    media_index: str = "",
) -> OfflineResolver:
    """Resolvers for ``resolver evaluate``: the worker's, over an exact in-memory index or a fresh
    Milvus collection with the worker's index parameters (dropped after each order), with the
    worker's media step restricted to ``modalities`` (the ablation; empty: text only). The media
    index is the text index's kind (in memory beside the exact one, Milvus beside Milvus);
    ``media_index="off"`` (or the setting "off") leaves each order to the resolver's own memory."""
    w = settings.worker
    policy = DecisionPolicy(thresholds)
    media_index = media_index or ("off" if w.media_index == "off" else "on")
    # Evaluation streams one set in several orders: each file is read once (the worker reads afresh).
    media = build_media_reader(settings, modalities, cache_items=w.media_memory_items)

    @asynccontextmanager
    async def fresh() -> AsyncIterator[tuple[BatchResolver, EntityStore]]:
        store = EntityStore({})
        if index_kind == "exact":
            exact = InMemoryVectorIndex(TEXT_DIM)
            shared = build_media_index(settings, "memory" if media_index != "off" else "off")
            yield build_batch_resolver(settings, encoder, exact, scorer, policy, store, media, shared), store
            return
        name = f"eval_{uuid.uuid4().hex[:10]}"
        index = build_milvus_index(settings, collection=name)
        milvus_media = build_media_index(settings, "milvus" if media_index != "off" else "off", collection=name)
        try:
            yield build_batch_resolver(settings, encoder, index, scorer, policy, store, media, milvus_media), store
        finally:
            await index.drop()
            if isinstance(milvus_media, MilvusMediaIndex):
                await milvus_media.drop()

    if index_kind not in ("exact", "milvus"):
        raise ValueError(f"index must be exact or milvus, not {index_kind!r}")
    limits = correction_limits(settings, thresholds)
    description = {
        "index": index_kind if index_kind == "exact" else f"milvus HNSW ef={w.milvus_hnsw_ef}",
        "text_model": encoder.model_version,  # the encoder's own: the setting is empty when measured
        "batch": w.batch_size,
        "chunk": w.pipeline_chunk,
        "k": w.candidates_k,
        "title_cap": w.title_candidates_cap,
        "corrections": f"conflict<={limits.conflict_threshold} max_entities={limits.max_entities} "
        f"max_members={limits.max_members}",
        "media": "+".join(sorted(modalities)) if media is not None else "off",
        "media_rule": f"{w.media_fusion_rule}: {media_fusion_rule(settings, scorer)().value}",
        "media_index": media_index if media is not None else "off",
    }
    return OfflineResolver(encoder, scorer, thresholds, w.batch_size, w.candidates_k, fresh, description)


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

    text_model = served_text_model(settings).model
    encoder = TritonTextEncoder(
        w.triton_url, text_model, retry_max_s=w.retry_max_s, on_retry=on_retry, cache_size=w.embedding_cache_size
    )
    index = build_milvus_index(settings, on_retry=on_retry)
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

    fast, thresholds = build_scorer(settings, on_retry, on_version)
    if isinstance(fast, TritonPairScorer):
        drift.use_reference(fast.model.metadata.get("drift_reference"))
    policy = DecisionPolicy(thresholds)
    policies.append(policy)
    # The cross-encoder's answers are mapped onto the merge threshold in force (promotions change it).
    scorer = with_cross_encoder(settings, fast, lambda: policy.thresholds.merge, on_retry=on_retry)

    # A pod's host name in a cluster; the pid tells apart workers that share one host (tests).
    worker_id = f"{socket.gethostname()}/{os.getpid()}"
    # One reader (its bounds and thread slots) for every partition's resolver.
    media = build_media_reader(settings)
    media_index = build_media_index(settings, on_retry=on_retry)

    def build_handler(store: EntityStore, scope: EventScope) -> EventBatchHandler:
        resolver = build_batch_resolver(settings, encoder, index, scorer, policy, store, media, media_index)
        return EventBatchHandler(
            resolver, validator, schemas, topic_names(settings.kafka), tracer, metrics, scope, drift, worker_id
        )

    warmed: list[bool] = []

    async def health() -> dict[str, Any]:
        triton = await encoder.ready()
        milvus = await index.ping()
        if triton and milvus and not warmed:
            # The first requests pay for cold models and channels: pay it before saying ready.
            triton = await warm_up(encoder, scorer)
            warmed.extend([True] if triton else [])
        healthy = triton and milvus
        metrics.healthy.set(1 if healthy else 0)
        return {"healthy": healthy, "triton": triton, "milvus": milvus}

    app = create_app(settings, build_handler, metrics, health)
    return Worker(app=app, metrics=metrics, tracing=tracing)
