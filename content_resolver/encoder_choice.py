"""Which text encoder path is served: the one place that decides.

No precision is fixed in advance: bf16 was 1.7x faster than fp32 on a CPU with AVX-512 BF16
and 6.5x slower on one without it. ``resolver stack up`` measures every encoder path
(``inference.encoder_paths``) in-process on this machine, on a fixed sample of catalogue texts,
and serves the fastest whose quality cost is within budget:

- cosine to the fp32 reference on the same sample (mean and worst text), measured here, and
- the F1 cost measured with ``resolver evaluate`` against fp32 (``MEASURED_F1_COST``): a path
  without a measured cost is not served unless it is an fp32 reference, and
- the same vector for a text whatever it is batched with: the sample encoded again in other
  batches must give each text a vector at cosine >= ``BATCH_COSINE_MIN_BUDGET`` to its first.
  The worker's batches are whatever Kafka hands over and Triton merges, so a batch-dependent
  vector makes decisions follow timing (dynamic int8 quantises activations per batch: cosine min
  0.974 across batchings, enough to flip 369 of 10,884 shs100k outcomes; docs/quality.md).

The result is cached per CPU (model name and flags) and per exported model, so a restart costs
nothing and a different machine measures again. ``RESOLVER_WORKER_TEXT_MODEL`` overrides it.
Triton loads the chosen model (``auto`` in ``RESOLVER_STACK_TRITON_MODELS``) and the worker,
the bench and the demo ask ``served_text_model`` for it.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from inference.encoder_paths import (
    ENCODER_PATHS,
    REFERENCE_PATH,
    EncoderPath,
    cpu_description,
    encoder_path,
    load_encoder,
)
from settings import Settings

# Bump when the measurement or the rule changes: cached choices are then measured again.
CHOICE_VERSION = "2"
COSINE_MEAN_BUDGET = 0.99
COSINE_MIN_BUDGET = 0.95
# fp32 paths differ across batchings only in float summation order (cosine >= 0.999999).
BATCH_COSINE_MIN_BUDGET = 0.9999
# The second batching: batches this size, in reverse order, so every text meets other neighbours
# and other padding than in the one batch of the whole sample.
REBATCH_SIZE = 7
F1_COST_BUDGET = 0.005
SAMPLE_SIZE = 256
# F1 cost against torch fp32 (fp32's F1 minus the path's; negative: the path scored higher), from
# `resolver evaluate --dataset ../shared/data/DATASET --shuffles 1 --text-model MODEL` on the
# valid split with matcher-3b3f7fb6c3: pairwise F1 on musicbrainz-20k, work-level pairwise F1 on
# shs100k-versions (its recording-level F1 is 1.0 for every path). docs/performance.md has the runs.
MEASURED_F1_COST: dict[str, dict[str, float]] = {
    "text_encoder_bf16": {"musicbrainz-20k": 0.0000, "shs100k-versions": -0.0004},
    "text_encoder_int8": {"musicbrainz-20k": -0.0020, "shs100k-versions": 0.0017},
    "text_encoder_onnx": {"musicbrainz-20k": 0.0000, "shs100k-versions": 0.0000},
    "text_encoder_onnx_int8": {"musicbrainz-20k": -0.0026, "shs100k-versions": -0.0073},
}
FALLBACK = REFERENCE_PATH.triton_model


@dataclass(frozen=True)
class PathMeasurement:
    model: str
    label: str
    texts_per_s: float
    load_s: float
    cosine_mean: float
    cosine_min: float
    batch_cosine_min: float
    f1_cost: dict[str, float] | None
    within_budget: bool
    why: str


@dataclass(frozen=True)
class EncoderChoice:
    model: str
    reason: str
    cpu: str = ""
    measured: list[PathMeasurement] = field(default_factory=list)

    @property
    def path(self) -> EncoderPath:
        return encoder_path(self.model)

    def lines(self) -> list[str]:
        out = [f"text model {self.model} ({self.path.label}): {self.reason}"]
        for m in self.measured:
            cost = "n/a" if m.f1_cost is None else ", ".join(f"{k} {v:+.4f}" for k, v in m.f1_cost.items())
            out.append(
                f"  {m.model:24s} {m.texts_per_s:7.1f} texts/s  cosine mean {m.cosine_mean:.5f} min {m.cosine_min:.5f}"
                f"  across batchings min {m.batch_cosine_min:.6f}"
                f"  F1 cost {cost}  {'ok' if m.within_budget else 'out: ' + m.why}"
            )
        return out


def _cache_file(cache_dir: Path, threads: int) -> Path:
    from inference.onnx_export import export_key

    name, flags = cpu_description()
    key = hashlib.sha256(f"{CHOICE_VERSION}|{name}|{' '.join(flags)}|{threads}|{export_key()}".encode()).hexdigest()
    return Path(cache_dir) / "encoder-choice" / f"{key[:16]}.json"


def judge(path: EncoderPath, cosine_mean: float, cosine_min: float, batch_cosine_min: float) -> tuple[bool, str]:
    """Within the quality budget, and why not when it is not."""
    if cosine_mean < COSINE_MEAN_BUDGET or cosine_min < COSINE_MIN_BUDGET:
        return False, f"cosine to fp32 below {COSINE_MEAN_BUDGET} mean / {COSINE_MIN_BUDGET} min"
    if batch_cosine_min < BATCH_COSINE_MIN_BUDGET:
        return False, f"vector depends on the batch: cosine {batch_cosine_min:.4f} < {BATCH_COSINE_MIN_BUDGET}"
    cost = MEASURED_F1_COST.get(path.triton_model)
    if cost is None:
        if path.is_reference:
            return True, ""
        return False, "no F1 cost measured with `resolver evaluate`"
    worst = max(cost.values())
    if worst > F1_COST_BUDGET:
        return False, f"F1 cost {worst:.4f} > {F1_COST_BUDGET}"
    return True, ""


def measure_paths(texts: list[str], cache_dir: Path, threads: int, say=print) -> list[PathMeasurement]:
    """Texts per second of every path in-process (best of two interleaved rounds, so a burst of
    load elsewhere does not decide alone), its cosine to the reference on the same texts, and
    each text's cosine to itself encoded in other batches."""
    import numpy as np

    encoders = {}
    load_s = {}
    for path in ENCODER_PATHS:
        start = time.perf_counter()
        encoders[path.triton_model] = load_encoder(path, cache_dir, threads=threads)
        encoders[path.triton_model].encode(texts[:16])  # first call allocates
        load_s[path.triton_model] = time.perf_counter() - start
    rates = {name: 0.0 for name in encoders}
    vectors = {}
    for _ in range(2):
        for name, encoder in encoders.items():
            start = time.perf_counter()
            vectors[name] = encoder.encode(texts)
            rates[name] = max(rates[name], len(texts) / (time.perf_counter() - start))
    reference = vectors[REFERENCE_PATH.triton_model]
    out = []
    for path in ENCODER_PATHS:
        cosines = (np.asarray(vectors[path.triton_model]) * reference).sum(axis=1)
        batch_min = batch_invariance(encoders[path.triton_model].encode, texts, np.asarray(vectors[path.triton_model]))
        ok, why = judge(path, float(cosines.mean()), float(cosines.min()), batch_min)
        out.append(
            PathMeasurement(
                model=path.triton_model,
                label=path.label,
                texts_per_s=round(rates[path.triton_model], 1),
                load_s=round(load_s[path.triton_model], 2),
                cosine_mean=round(float(cosines.mean()), 5),
                cosine_min=round(float(cosines.min()), 5),
                batch_cosine_min=round(batch_min, 7),
                f1_cost=MEASURED_F1_COST.get(path.triton_model),
                within_budget=ok,
                why=why,
            )
        )
        say(f"encoder: {path.triton_model} {out[-1].texts_per_s} texts/s, cosine {out[-1].cosine_mean}")
    return out


def batch_invariance(encode: Callable[[list[str]], Any], texts: list[str], whole: Any) -> float:
    """The lowest cosine between a text's vector in the one batch of every text (``whole``) and
    its vector from batches of ``REBATCH_SIZE`` taken in reverse order."""
    import numpy as np

    again = np.zeros_like(whole)
    order = list(range(len(texts)))[::-1]
    for start in range(0, len(order), REBATCH_SIZE):
        chunk = order[start : start + REBATCH_SIZE]
        again[chunk] = np.asarray(encode([texts[i] for i in chunk]))
    norms = np.linalg.norm(whole, axis=1) * np.linalg.norm(again, axis=1)
    return float(((whole * again).sum(axis=1) / norms).min())


def choose(measured: list[PathMeasurement], cpu: str) -> EncoderChoice:
    eligible = [m for m in measured if m.within_budget]
    if not eligible:
        return EncoderChoice(FALLBACK, "no path within the quality budget: the fp32 reference", cpu, measured)
    best = max(eligible, key=lambda m: m.texts_per_s)
    reference = next(m for m in measured if m.model == REFERENCE_PATH.triton_model)
    return EncoderChoice(
        best.model,
        f"fastest within the quality budget on this CPU: {best.texts_per_s:.0f} texts/s in-process, "
        f"{best.texts_per_s / reference.texts_per_s:.2f}x torch fp32; cosine to fp32 {best.cosine_mean:.5f}",
        cpu,
        measured,
    )


def sample_texts(count: int = SAMPLE_SIZE) -> list[str]:
    """The fixed sample: embedding texts of the generated catalogue (the same on every machine)."""
    from evaluation.sample_catalogue import generate_catalogue
    from resolution.normalise import normalise

    seen: dict[str, None] = {}
    for item in generate_catalogue(seed=17, songs=400)[0]:
        seen.setdefault(normalise(item).embed_text, None)
        if len(seen) >= count:
            break
    return list(seen)


def _read_cached(cache_file: Path) -> EncoderChoice | None:
    """The cached measurements, judged again: a change of budget or of the measured F1 costs
    applies at once, without measuring again."""
    try:
        raw = json.loads(cache_file.read_text())
        measured = [PathMeasurement(**m) for m in raw["measured"]]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if {m.model for m in measured} != {p.triton_model for p in ENCODER_PATHS}:
        return None
    rejudged = []
    for m in measured:
        ok, why = judge(encoder_path(m.model), m.cosine_mean, m.cosine_min, m.batch_cosine_min)
        rejudged.append(replace(m, f1_cost=MEASURED_F1_COST.get(m.model), within_budget=ok, why=why))
    return choose(rejudged, raw.get("cpu", ""))


def measured_choice(cache_dir: Path, threads: int, say=print) -> EncoderChoice:
    """The choice for this machine: cached, or measured now (seconds) and cached."""
    cache_file = _cache_file(cache_dir, threads)
    cached = _read_cached(cache_file)
    if cached is not None:
        return cached
    name, _ = cpu_description()
    say(f"encoder: measuring {len(ENCODER_PATHS)} encoder paths on this CPU ({name}), once")
    choice = choose(measure_paths(sample_texts(), cache_dir, threads, say), name)
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(_as_json(choice), indent=2) + "\n")
    tmp.replace(cache_file)
    return choice


def _as_json(choice: EncoderChoice) -> dict[str, Any]:
    return {
        "model": choice.model,
        "reason": choice.reason,
        "cpu": choice.cpu,
        "measured": [asdict(m) for m in choice.measured],
    }


def served_text_model(settings: Settings) -> EncoderChoice:
    """The text model the stack serves and the worker uses.

    ``RESOLVER_WORKER_TEXT_MODEL`` when set; otherwise the measured choice cached by ``stack up``
    for this CPU. A machine not measured yet gets the fp32 reference, and says so."""
    override = settings.worker.text_model
    if override:
        encoder_path(override)  # a clear error for an unknown name
        return EncoderChoice(override, "set by RESOLVER_WORKER_TEXT_MODEL")
    cached = _read_cached(_cache_file(settings.stack.cache_dir, settings.stack.torch_threads))
    if cached is not None:
        return cached
    return EncoderChoice(FALLBACK, "not measured on this CPU yet (`resolver stack up` measures): the fp32 reference")
