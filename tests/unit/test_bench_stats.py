"""The benchmark's arithmetic and the encoder's embedding cache (pure logic, no services)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from benchmarks.stats import (
    histogram_totals,
    latency_summary,
    linear_slope,
    mean_delta,
    mean_delta_ms,
    memory_trend,
    percentile,
    rate_over_time,
    ratio,
)
from inference.text_encoder import EmbeddingCache, text_model_version
from streams.metrics import ResolverMetrics


def test_percentile_interpolates_like_numpy() -> None:
    values = [5.0, 1.0, 4.0, 2.0, 3.0, 10.0]
    for q in (0, 25, 50, 90, 99, 100):
        assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)))
    assert math.isnan(percentile([], 50))


def test_latency_summary_keys() -> None:
    s = latency_summary([10.0] * 99 + [1000.0])
    assert s["p50"] == 10.0
    assert s["max"] == 1000.0
    assert 10.0 < s["p99"] <= 1000.0


def test_rate_over_time_counts_per_bin_with_empty_bins() -> None:
    series = rate_over_time([0.1, 0.2, 0.9, 2.5, 2.6], bin_s=1.0)
    assert series == [(0.0, 3.0), (1.0, 0.0), (2.0, 2.0)]
    assert rate_over_time([]) == []


def test_memory_trend_uses_second_half_slope() -> None:
    # 100 MiB of warm-up growth in the first half, flat afterwards: no growth reported.
    samples = [(float(t), 500.0 + min(t, 30) * (100 / 30)) for t in range(0, 121, 5)]
    trend = memory_trend(samples)
    assert trend.start_mb == 500.0
    assert trend.max_mb == pytest.approx(600.0)
    assert trend.growth_mb_per_min == pytest.approx(0.0, abs=1e-9)
    leaking = memory_trend([(float(t), 500.0 + t) for t in range(0, 121, 5)])
    assert leaking.growth_mb_per_min == pytest.approx(60.0)


def test_linear_slope_degenerate() -> None:
    assert linear_slope([(1.0, 5.0)]) == 0.0
    assert linear_slope([(1.0, 5.0), (1.0, 7.0)]) == 0.0


def test_histogram_deltas_from_exposition() -> None:
    registry = CollectorRegistry()
    h = Histogram("resolver_stage_seconds", "t", ["stage"], registry=registry)
    h.labels("embed").observe(0.1)
    before = histogram_totals(generate_latest(registry).decode(), "resolver_stage_seconds", "stage")
    h.labels("embed").observe(0.3)
    h.labels("embed").observe(0.5)
    h.labels("search").observe(0.02)
    after = histogram_totals(generate_latest(registry).decode(), "resolver_stage_seconds", "stage")
    assert mean_delta_ms(before, after) == {"embed": 400.0, "search": 20.0}
    assert mean_delta(before, after, "embed") == pytest.approx(0.4)
    assert math.isnan(mean_delta(after, after, "embed"))


def test_worker_metrics_expose_lag_and_events_out() -> None:
    m = ResolverMetrics()
    m.observe_lag(2, highwater=120, next_offset=100)
    m.observe_lag(1, highwater=None, next_offset=5)  # no fetch yet: nothing reported
    m.events_out.labels("decision").inc(3)
    text = m.exposition().decode()
    assert 'resolver_consumer_lag{partition="2"} 20.0' in text
    assert 'partition="1"' not in text
    assert 'resolver_events_out_total{kind="decision"} 3.0' in text


def test_ratio() -> None:
    assert ratio(80, 100) == 0.8
    assert math.isnan(ratio(1, 0))


def test_embedding_cache_is_a_bounded_lru() -> None:
    cache = EmbeddingCache(2)
    a, b, c = (np.full(3, v, dtype=np.float32) for v in (1, 2, 3))
    cache.put("a", a)
    cache.put("b", b)
    assert cache.get("a") is a  # "a" is now the most recent
    cache.put("c", c)  # evicts "b"
    assert cache.get("b") is None
    assert cache.get("c") is c
    assert len(cache) == 2
    assert (cache.hits, cache.misses) == (2, 1)
    off = EmbeddingCache(0)
    off.put("a", a)
    assert len(off) == 0


def test_model_versions() -> None:
    assert text_model_version("fp32") == "minilm-l6-v2"
    assert text_model_version("int8") == "minilm-l6-v2-int8"
