"""Pure arithmetic of the benchmark: percentiles, rates over time, memory trends, /metrics deltas."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families


def percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default), NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    pos = q / 100 * (len(ordered) - 1)
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def latency_summary(latencies_ms: Sequence[float]) -> dict[str, float]:
    return {f"p{q}": round(percentile(latencies_ms, q), 1) for q in (50, 95, 99)} | {
        "max": round(max(latencies_ms), 1) if latencies_ms else float("nan")
    }


def rate_over_time(times_s: Iterable[float], bin_s: float = 1.0) -> list[tuple[float, float]]:
    """(bin start relative to the first time, events per second in that bin) for event times."""
    ordered = sorted(times_s)
    if not ordered:
        return []
    start = ordered[0]
    counts: dict[int, int] = {}
    for t in ordered:
        b = int((t - start) // bin_s)
        counts[b] = counts.get(b, 0) + 1
    last = max(counts)
    return [(b * bin_s, counts.get(b, 0) / bin_s) for b in range(last + 1)]


def linear_slope(points: Sequence[tuple[float, float]]) -> float:
    """Least-squares slope of y over x (0 for fewer than two distinct x)."""
    if len(points) < 2:
        return 0.0
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    if sxx == 0:
        return 0.0
    return sum((x - mx) * (y - my) for x, y in points) / sxx


@dataclass(frozen=True)
class MemoryTrend:
    start_mb: float
    end_mb: float
    max_mb: float
    growth_mb_per_min: float  # over the second half, after warm-up allocations have settled


def memory_trend(samples: Sequence[tuple[float, float]]) -> MemoryTrend:
    """``samples``: (seconds since start, RSS MiB)."""
    if not samples:
        return MemoryTrend(float("nan"), float("nan"), float("nan"), 0.0)
    later = [s for s in samples if s[0] >= samples[-1][0] / 2]
    slope_per_s = linear_slope(later)
    return MemoryTrend(samples[0][1], samples[-1][1], max(mb for _, mb in samples), slope_per_s * 60)


HistogramTotals = dict[str, tuple[float, float]]  # label value -> (sum, count)


def histogram_totals(exposition: str, metric: str, label: str) -> HistogramTotals:
    """Sum and count per ``label`` value of a Prometheus histogram, from /metrics text."""
    out: dict[str, list[float]] = {}
    for family in text_string_to_metric_families(exposition):
        if family.name != metric:
            continue
        for sample in family.samples:
            key = sample.labels.get(label, "")
            entry = out.setdefault(key, [0.0, 0.0])
            if sample.name == f"{metric}_sum":
                entry[0] = sample.value
            elif sample.name == f"{metric}_count":
                entry[1] = sample.value
    return {k: (v[0], v[1]) for k, v in out.items()}


def mean_delta_ms(before: HistogramTotals, after: HistogramTotals) -> dict[str, float]:
    """Mean milliseconds per observation between two scrapes, per label (histograms in seconds)."""
    out = {}
    for key, (total, count) in after.items():
        old_total, old_count = before.get(key, (0.0, 0.0))
        if count > old_count:
            out[key] = round((total - old_total) / (count - old_count) * 1000, 2)
    return out


def mean_delta(before: HistogramTotals, after: HistogramTotals, key: str = "") -> float:
    """Mean observed value between two scrapes for one label value (NaN if nothing was observed)."""
    total, count = after.get(key, (0.0, 0.0))
    old_total, old_count = before.get(key, (0.0, 0.0))
    return (total - old_total) / (count - old_count) if count > old_count else float("nan")


def ratio(numerator: float, denominator: float) -> float:
    return round(numerator / denominator, 3) if denominator > 0 else float("nan")
