"""Typed configuration, read once from the environment by the composition root.

Every port, path and limit lives here so that nothing else reads ``os.environ``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, get_type_hints

REPO_ROOT = Path(__file__).resolve().parent.parent
# In RESOLVER_STACK_TRITON_MODELS: the text model chosen by measurement (content_resolver/encoder_choice.py).
AUTO_TEXT_MODEL = "auto"

# Variables that hold secrets: never handed to the services the stack starts, never printed.
SECRET_ENVIRONMENT = (
    "MILVUS_TOKEN",
    "RESOLVER_WORKER_MILVUS_TOKEN",
    "RESOLVER_WORKER_WEB_TOKEN",
    "RESOLVER_KAFKA_SASL_PASSWORD",
)


def _default_cache() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "content-resolver"


@dataclass(frozen=True)
class StackSettings:
    """Where the local services live: ports, data folders, caches."""

    state_dir: Path = REPO_ROOT / ".state"
    cache_dir: Path = field(default_factory=_default_cache)
    kafka_version: str = "4.1.1"
    kafka_port: int = 9092
    kafka_controller_port: int = 9093
    triton_http_port: int = 8000
    triton_grpc_port: int = 8001
    triton_metrics_port: int = 8002
    triton_model_repository: Path = REPO_ROOT / "triton_models"
    # Models Triton loads at start (comma-separated); "*" loads the whole repository. Each text
    # model is a python-backend process, so by default only the worker's text model and matcher
    # load (see Settings.from_env); AUTO_TEXT_MODEL stands for the text model chosen by measurement.
    triton_models: str = "auto,matcher"
    torch_threads: int = 1
    milvus_port: int = 19530
    # The embedded etcd's client and peer ports (loopback): other values let a second Milvus
    # Lite run beside this one, with its own state_dir and milvus_port.
    milvus_etcd_port: int = 2379
    milvus_etcd_peer_port: int = 2380
    # A Milvus start not ready after this long is stopped and started again (deploy/stack.py).
    milvus_restart_stalled_s: float = 80.0
    jaeger_version: str = "v1.76.0"
    jaeger_otlp_grpc_port: int = 4317
    jaeger_otlp_http_port: int = 4318
    jaeger_ui_port: int = 16686
    # The Jaeger UI's production build ships in this crates.io package (jaeger-ui/build); fetched
    # once with cargo into the cache and served through extensions.jaeger_query.ui.assets_path.
    jaeger_ui_crate: str = "otlp-embedded"
    jaeger_ui_crate_version: str = "0.0.2"
    start_timeout_s: float = 240.0


@dataclass(frozen=True)
class KafkaSettings:
    bootstrap_servers: str = "127.0.0.1:9092"
    partitions: int = 3
    content_topic: str = "content-events"
    decisions_topic: str = "resolution-decisions"
    dlq_topic: str = "content-events-dlq"
    feedback_topic: str = "resolution-feedback"
    # Security: empty means PLAINTEXT. SASL_SSL with SCRAM is configured by these.
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str = ""
    sasl_username: str = ""
    sasl_password: str = field(default="", repr=False)
    ssl_cafile: str = ""
    # Folders (os.pathsep-separated) of further writer schemas, *.avsc, that readers accept beside
    # the released ones in streams/schemas/released: a producer's schema not released here yet.
    schema_dirs: str = ""

    @property
    def schema_dir_paths(self) -> list[Path]:
        return [Path(p) for p in self.schema_dirs.split(os.pathsep) if p]


@dataclass(frozen=True)
class WorkerSettings:
    app_id: str = "content-resolver"
    # The web views listen on loopback; any other address (a Prometheus elsewhere scraping
    # /metrics) makes /state and /entity ask for web_token as a bearer token.
    web_host: str = "127.0.0.1"
    web_port: int = 6066
    web_token: str = field(default="", repr=False)
    batch_size: int = 64
    batch_window_s: float = 0.05
    # A batch is resolved in chunks of this many events; the next chunk is embedded (in Triton)
    # while this one is searched, scored and decided. 0: one chunk, no overlap.
    pipeline_chunk: int = 32
    max_title_chars: int = 1000
    max_artists: int = 50
    max_field_chars: int = 1000
    max_duration_ms: int = 6 * 3600 * 1000
    # An event's release year outside [min_year, max_year] is absurd: dead-lettered. (Raw feeds'
    # years are read within a narrower window: resolution/feed_values.py.)
    min_year: int = 1800
    max_year: int = 2100
    # Audio and image evidence (media/, docs/media.md): an event's audio_ref / image_ref read within
    # these bounds; a file refused or broken is named in the decision and the item resolved on
    # text. On by default: a batch without references skips the step (measured in docs/media.md).
    media_evidence: bool = True
    media_max_bytes: int = 512 << 20
    media_max_seconds: float = 4 * 3600.0  # declared length; longer is refused
    media_audio_seconds: float = 120.0  # decoded from the start, at most
    media_max_pixels: int = 50_000_000
    media_timeout_s: float = 20.0  # per ffprobe / ffmpeg / fpcalc call
    media_memory_mb: int = 2048  # address space of each decoder subprocess
    media_concurrency: int = 2  # files read at once
    media_memory_items: int = 20_000  # items whose evidence is kept for comparisons, per worker
    media_candidates: int = 3  # items found by sound (or picture) per item, whatever their titles
    # The hand rule after the scorer (resolution/media_evidence.py: with_media_evidence): "auto"
    # applies all of it while the serving matcher reads no media feature, and only its video
    # picture part behind one that does (such a matcher fuses better alone: the rule's hard
    # thresholds overrule it where it is right; docs/media.md); "on" or "off" whatever serves.
    media_fusion_rule: str = "auto"
    # Where every partition's and worker's media evidence is searched (resolution/media_index.py):
    # "milvus" (collections <milvus_collection>_audio / _image, kept across restarts), "memory"
    # (in the process: one worker's partitions, lost on restart) or "off" (the memory above only).
    media_index: str = "milvus"
    # Audio rows fetched by the retrieval vector and rescored on their fingerprints, per item: on
    # the generated set every same-recording item ranks in the retrieval vector's top 5 (docs/media.md).
    media_search_k: int = 10
    merge_threshold: float = 0.5
    link_threshold: float = 0.5
    # Corrections (resolution/corrections.py): when evidence binds or contradicts entities, and
    # how much re-examination one event may cause.
    conflict_threshold: float = 0.05
    correction_max_entities: int = 8
    correction_max_members: int = 200
    candidates_k: int = 10
    # Title-only candidates (covers by other artists): at most this many per item beyond the
    # top-k, same core title, most similar first; 0 turns the path off.
    title_candidates_cap: int = 5
    triton_url: str = "127.0.0.1:8001"
    # Empty: the encoder path `resolver stack up` measured fastest within the quality budget on
    # this CPU (content_resolver/encoder_choice.py); a Triton model name overrides it.
    text_model: str = ""
    # Texts seen recently skip Triton (re-deliveries are common in catalogue feeds); bounded:
    # 10,000 vectors are 15 MiB. 0 turns it off.
    embedding_cache_size: int = 10000
    # A path: the worker runs under pyinstrument (a dev dependency) and writes its profile there
    # on exit (`RESOLVER_WORKER_PROFILE_OUT=out/worker-profile.txt resolver bench`).
    profile_out: str = ""
    # The Triton matcher model; its trained thresholds replace merge/link_threshold when present.
    matcher_model: str = "matcher"
    # How often the worker asks Triton which matcher version serves (promotions, rollbacks).
    matcher_refresh_s: float = 2.0
    # The Triton cross-encoder (inference/cross_encoder.py), asked only about the recording pairs
    # whose matcher p(same) is in [band_low, band_high] (its p(same) replaces the matcher's there);
    # "cross_encoder" turns it on. Off by default: the shipped version does not beat the matcher
    # alone on leak-free itunes-amazon valid pairs (docs/quality.md: dirty +0.02, structured -0.03).
    cross_encoder_model: str = ""
    cross_encoder_band_low: float = 0.05
    cross_encoder_band_high: float = 0.95
    # A shadow worker: resolves the same stream with this matcher version (loaded beside the
    # serving one by `resolver shadow`), in its own consumer group, state, Milvus collection and
    # topics (content_resolver.composition.as_shadow); 0: an ordinary worker.
    shadow_version: int = 0
    milvus_uri: str = "http://127.0.0.1:19530"
    milvus_collection: str = "content_vectors"
    milvus_token: str = field(default="", repr=False)
    # HNSW search breadth: recall@10 0.96 at 20k-100k entities, 0.90 at 500k (docs/performance.md).
    milvus_hnsw_ef: int = 64
    # The last rows the worker's resolver wrote (every partition it holds), kept in memory and
    # searched exactly: Milvus' Bounded searches do not see a row for up to ~5 s after it is
    # written. A count, not a time, so that decisions depend on the events and their order, not
    # on batch timing; sized as the worker's top rate times the measured lag, with a margin
    # (docs/quality.md, "Determinism").
    recent_rows: int = 5000
    otlp_endpoint: str = "http://127.0.0.1:4317"
    jaeger_query_url: str = "http://127.0.0.1:16686"
    retry_max_s: float = 30.0
    commit_interval_s: float = 1.0
    # How soon a dead worker's partitions move to another: short, so a crash costs seconds.
    session_timeout_s: float = 10.0
    # Input waiting and no batch decided for this long (no dependency outage): the worker reports
    # itself stalled (/health 503); after stall_restart_s it restarts itself in place (0: never).
    stall_after_s: float = 30.0
    stall_restart_s: float = 90.0
    # Where the entity table lives: "memory" (all of it in the process, the whole changelog
    # replayed at every start) or "rocksdb" (on disk under the state folder, changelogged).
    # Either way a key written under two partitions reads as its newest copy (docs/scaling.md,
    # "State on disk"); "rocksdb" keeps worker memory flat as the catalogue grows.
    table_store: str = "rocksdb"
    # RocksDB memory per partition: the block cache is a cap (Faust's default is 2 GiB).
    table_cache_mb: int = 64
    table_write_buffer_mb: int = 16


@dataclass(frozen=True)
class LifecycleSettings:
    """Model lifecycle: the promotion gate (training/promotion.py) and drift (resolution/drift.py)."""

    # A candidate serves only when its held-out overall F1 beats the serving one by this much...
    promotion_margin: float = 0.002
    # ...and no set / decision type loses more F1 than this, with the pairs decided differently
    # there against the candidate beyond chance (one-sided sign test p at most this).
    promotion_tolerance: float = 0.01
    promotion_significance: float = 0.05
    # Drift: distributions of each window of decisions against the training reference.
    drift_window_s: float = 60.0
    drift_min_events: int = 200
    # Population stability index above this raises the alarm (0.25 is the usual "major shift").
    drift_psi_threshold: float = 0.25


@dataclass(frozen=True)
class Settings:
    stack: StackSettings = field(default_factory=StackSettings)
    kafka: KafkaSettings = field(default_factory=KafkaSettings)
    worker: WorkerSettings = field(default_factory=WorkerSettings)
    lifecycle: LifecycleSettings = field(default_factory=LifecycleSettings)

    def table_dir(self) -> Path:
        """One worker's local table store; a folder per web port, because two workers on one
        machine cannot share a RocksDB folder (``drop_namespace`` removes the app's folder)."""
        return self.stack.state_dir / "tables" / self.worker.app_id / str(self.worker.web_port)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        """Build from ``RESOLVER_<SECTION>_<FIELD>`` variables, plus a few well-known ones."""
        env = dict(os.environ if env is None else env)
        if "MILVUS_URI" in env:
            env.setdefault("RESOLVER_WORKER_MILVUS_URI", env["MILVUS_URI"])
        if "MILVUS_TOKEN" in env:
            env.setdefault("RESOLVER_WORKER_MILVUS_TOKEN", env["MILVUS_TOKEN"])
        if "KAFKA_BOOTSTRAP_SERVERS" in env:
            env.setdefault("RESOLVER_KAFKA_BOOTSTRAP_SERVERS", env["KAFKA_BOOTSTRAP_SERVERS"])
        if "TRITON_URL" in env:
            env.setdefault("RESOLVER_WORKER_TRITON_URL", env["TRITON_URL"])
        worker = _section(WorkerSettings, "RESOLVER_WORKER_", env)
        served = [worker.text_model or AUTO_TEXT_MODEL, worker.matcher_model, worker.cross_encoder_model]
        env.setdefault("RESOLVER_STACK_TRITON_MODELS", ",".join(m for m in served if m))
        return cls(
            stack=_section(StackSettings, "RESOLVER_STACK_", env),
            kafka=_section(KafkaSettings, "RESOLVER_KAFKA_", env),
            worker=worker,
            lifecycle=_section(LifecycleSettings, "RESOLVER_LIFECYCLE_", env),
        )


def _section(kind: type, prefix: str, env: dict[str, str]) -> Any:
    hints = get_type_hints(kind)
    values: dict[str, Any] = {}
    for f in fields(kind):
        raw = env.get(prefix + f.name.upper())
        if raw is None:
            continue
        target = hints[f.name]
        try:
            values[f.name] = Path(raw) if target is Path else _flag(raw) if target is bool else target(raw)
        except ValueError as exc:
            raise ValueError(f"{prefix}{f.name.upper()}={raw!r}: expected {target.__name__}") from exc
    return kind(**values)


def _flag(raw: str) -> bool:
    """``bool("0")`` is True: a switch is read by its word."""
    word = raw.strip().casefold()
    if word in ("1", "true", "yes", "on"):
        return True
    if word in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(raw)
