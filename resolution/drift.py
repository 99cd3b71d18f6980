"""Input drift: the distributions of what the resolver sees, per window, against training's.

Two signals per decided content event: ``top_score`` (the best candidate's probability for the
relation it was scored for; 0 without candidates) and ``top_cosine`` (the best text similarity
among its candidates; 0 without candidates). The reference is the same two signals over the
training run's tune records streamed through the resolver (``training.matcher``), stored as
histograms on fixed bins in the model's ``matcher.json`` (``drift_reference``).

A window's distribution is compared with the reference by the population stability index,
PSI = sum((p - q) * ln(p / q)) over the bins (p: window, q: reference, both smoothed so an empty
bin does not divide by zero), and by the Kolmogorov-Smirnov distance between the two binned
distributions (the largest gap between their cumulative sums). PSI above the threshold (0.25 is
the customary "major shift") raises the alarm.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from resolution.model import Decision

DRIFT_SIGNALS = ("top_score", "top_cosine")
BINS = tuple(float(x) for x in np.round(np.linspace(0.0, 1.0, 11), 2))
_EPS = 1e-4


def decision_signals(decision: Decision) -> dict[str, float]:
    """The drift signals of one content decision (from the resolver's ``Decision``)."""
    scores = [float(c.score) for c in decision.candidates]
    cosines = [float(c.signals.get("text_cosine", 0.0)) for c in decision.candidates]
    return {"top_score": max(scores, default=0.0), "top_cosine": max(cosines, default=0.0)}


def record_signals(record: dict[str, Any]) -> dict[str, float]:
    """The same signals from a decision as read back from the decisions topic."""
    candidates = record.get("candidates") or ()
    scores = [float(c["score"]) for c in candidates]
    cosines = [float((c.get("signals") or {}).get("text_cosine", 0.0)) for c in candidates]
    return {"top_score": max(scores, default=0.0), "top_cosine": max(cosines, default=0.0)}


def histogram(values: Iterable[float]) -> list[float]:
    """Proportions of ``values`` in the fixed bins (values outside [0, 1] clipped)."""
    data = np.clip(np.asarray(list(values), dtype=np.float64), 0.0, 1.0)
    if data.size == 0:
        return [0.0] * (len(BINS) - 1)
    counts, _ = np.histogram(data, bins=np.asarray(BINS))
    return [float(c) for c in counts / data.size]


def psi(window: list[float], reference: list[float]) -> float:
    p = np.asarray(window, dtype=np.float64) + _EPS
    q = np.asarray(reference, dtype=np.float64) + _EPS
    p, q = p / p.sum(), q / q.sum()
    return float(np.sum((p - q) * np.log(p / q)))


def ks(window: list[float], reference: list[float]) -> float:
    return float(np.max(np.abs(np.cumsum(window) - np.cumsum(reference)))) if window else 0.0


def reference_from(observations: list[dict[str, float]]) -> dict[str, Any]:
    """What training stores: per signal, the histogram of the tune stream's decisions."""
    return {
        "bins": list(BINS),
        "events": len(observations),
        **{name: histogram(o[name] for o in observations) for name in DRIFT_SIGNALS},
    }


@dataclass(frozen=True)
class DriftResult:
    events: int
    psi: dict[str, float]
    ks: dict[str, float]
    threshold: float

    @property
    def alarms(self) -> list[str]:
        return [name for name, value in self.psi.items() if value > self.threshold]

    def to_dict(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "psi": self.psi,
            "ks": self.ks,
            "threshold": self.threshold,
            "alarms": self.alarms,
        }


def compare(observations: list[dict[str, float]], reference: dict[str, Any], threshold: float) -> DriftResult:
    """One window of observations against a stored reference."""
    names = [n for n in DRIFT_SIGNALS if n in reference]
    windows = {n: histogram(o[n] for o in observations) for n in names}
    return DriftResult(
        events=len(observations),
        psi={n: psi(windows[n], reference[n]) for n in names},
        ks={n: ks(windows[n], reference[n]) for n in names},
        threshold=threshold,
    )


@dataclass
class DriftMonitor:
    """Tumbling time windows of a worker's decisions: a window closes once ``window_s`` passed
    and it holds at least ``min_events`` (a quiet stream waits for enough events rather than
    judging a handful)."""

    reference: dict[str, Any] | None
    window_s: float = 60.0
    min_events: int = 200
    threshold: float = 0.25
    last: DriftResult | None = None
    _window: list[dict[str, float]] = field(default_factory=list)
    _opened_at: float | None = None

    def use_reference(self, reference: dict[str, Any] | None) -> None:
        """A new model version: its own reference, a fresh window."""
        self.reference = reference
        self._window = []
        self._opened_at = None

    def observe(self, signals: Iterable[dict[str, float]], now: float) -> DriftResult | None:
        """Adds observations; returns the result of a window that closes now, else None."""
        if self.reference is None:
            return None
        if self._opened_at is None:
            self._opened_at = now
        self._window.extend(signals)
        if now - self._opened_at < self.window_s or len(self._window) < self.min_events:
            return None
        self.last = compare(self._window, self.reference, self.threshold)
        self._window = []
        self._opened_at = now
        return self.last
