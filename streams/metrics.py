"""Prometheus metrics of one worker, in its own registry (served on the worker's /metrics)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from resolution.drift import DriftResult
from streams.topics import LEGACY_READS

STAGE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ResolverMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.events_in = Counter("resolver_events_in_total", "Content events consumed", registry=r)
        self.decisions = Counter("resolver_decisions_total", "Decisions produced", ["action"], registry=r)
        self.dead_letters = Counter("resolver_dead_letters_total", "Events sent to the DLQ", ["reason"], registry=r)
        self.offset_gaps = Counter(
            "resolver_offset_gaps_total", "Skipped input offsets detected and read again", registry=r
        )
        self.duplicates = Counter("resolver_duplicate_events_total", "Re-delivered event ids skipped", registry=r)
        self.retries = Counter(
            "resolver_dependency_retries_total", "Retried dependency calls", ["dependency"], registry=r
        )
        self.errors = Counter("resolver_dependency_errors_total", "Failed dependency calls", ["dependency"], registry=r)
        self.stage_seconds = Histogram(
            "resolver_stage_seconds", "Time per batch stage", ["stage"], buckets=STAGE_BUCKETS, registry=r
        )
        self.latency_seconds = Histogram(
            "resolver_event_latency_seconds", "Produce-to-decision latency", buckets=STAGE_BUCKETS, registry=r
        )
        self.batch_size = Histogram(
            "resolver_batch_size", "Events per batch", buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256), registry=r
        )
        self.candidates = Histogram(
            "resolver_candidates_per_event", "Candidates scored per event", buckets=(0, 1, 2, 5, 10, 20, 50), registry=r
        )
        self.score = Histogram(
            "resolver_top_score",
            "Best candidate score per decision",
            ["action"],
            buckets=tuple(i / 20 for i in range(21)),
            registry=r,
        )
        self.reexamined = Histogram(
            "resolver_entities_reexamined_per_event",
            "Entities re-examined for corrections per content event or feedback",
            buckets=(0, 1, 2, 3, 4, 6, 8, 12, 16, 32),
            registry=r,
        )
        self.events_out = Counter(
            "resolver_events_out_total", "Records published: decisions and dead letters", ["kind"], registry=r
        )
        self.consumer_lag = Gauge(
            "resolver_consumer_lag", "Messages behind the log end, per input partition", ["partition"], registry=r
        )
        self.stalled_seconds = Gauge(
            "resolver_stalled_seconds", "How long input has waited with no batch decided (0: progressing)", registry=r
        )
        self.drift_psi = Gauge(
            "resolver_drift_psi",
            "Population stability index of the last closed window against the training reference",
            ["signal"],
            registry=r,
        )
        self.drift_ks = Gauge(
            "resolver_drift_ks", "KS distance of the last closed window to the reference", ["signal"], registry=r
        )
        self.drift_alarm = Gauge(
            "resolver_drift_alarm", "1 while the last window's PSI is above the threshold", ["signal"], registry=r
        )
        self.drift_threshold = Gauge("resolver_drift_psi_threshold", "PSI above which drift alarms", registry=r)
        self.drift_window_events = Gauge(
            "resolver_drift_window_events", "Decisions in the last closed drift window", registry=r
        )
        self.healthy = Gauge("resolver_healthy", "1 when every dependency answers", registry=r)
        self.healthy.set(1)
        r.register(LegacyEncodingCollector())

    def observe_lag(self, partition: int, highwater: int | None, next_offset: int) -> None:
        """Lag after a batch: the partition's log end (as last fetched) minus the next offset to read."""
        if highwater is not None:
            self.consumer_lag.labels(str(partition)).set(max(0, highwater - next_offset))

    def observe_drift(self, result: DriftResult) -> None:
        self.drift_threshold.set(result.threshold)
        self.drift_window_events.set(result.events)
        for signal, value in result.psi.items():
            self.drift_psi.labels(signal).set(value)
            self.drift_ks.labels(signal).set(result.ks.get(signal, 0.0))
            self.drift_alarm.labels(signal).set(1 if value > result.threshold else 0)

    def retries_total(self) -> float:
        """Dependency calls retried so far, all dependencies together."""
        return sum(s.value for m in self.retries.collect() for s in m.samples if s.name.endswith("_total"))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class LegacyEncodingCollector(Collector):
    """Records read with the fingerprint in the pre-spec byte order (counted by the codec, per schema)."""

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(
            "resolver_legacy_fingerprint_records",
            "Records read whose single-object fingerprint was in the old, reversed byte order",
            labels=["schema"],
        )
        for name, count in sorted(LEGACY_READS.items()):
            family.add_metric([name], float(count))
        yield family
