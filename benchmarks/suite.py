"""``resolver bench``: every measurement in one run, so the ratios compare like with like."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.encoder import every_bare_encoder, triton_alone
from benchmarks.end_to_end import EndToEndBench, PhaseResult, event_stream
from benchmarks.stats import memory_trend, ratio
from settings import Settings

ENCODER_TEXTS = 512
# The flags that decide which encoder path is fast (printed with every result).
SIMD_FLAGS = (
    "avx2",
    "fma",
    "avx512f",
    "avx512bw",
    "avx512_vnni",
    "avx_vnni",
    "avx512_bf16",
    "amx_bf16",
    "amx_int8",
    "avx512_fp16",
)


@dataclass(frozen=True)
class BenchOptions:
    events: int = 2000
    dataset: Path | None = None
    soak_minutes: float = 0.0
    skip_encoders: bool = False


def _texts(dataset: Path | None, count: int) -> list[str]:
    """The strings the worker embeds (normalised title, artists, release), all distinct."""
    from resolution.normalise import normalise

    seen: dict[str, None] = {}
    for item in event_stream(dataset, "texts"):
        seen.setdefault(normalise(item).embed_text, None)
        if len(seen) >= count:
            break
    return list(seen)


def run_bench(
    settings: Settings, options: BenchOptions, text_model: str, chosen_because: str, say=print
) -> tuple[dict, dict[str, PhaseResult], list]:
    """``text_model`` is the served encoder (the composition root's choice) and why it was chosen."""
    from inference.encoder_paths import cpu_description, encoder_path

    w = settings.worker
    model = text_model
    texts = _texts(options.dataset, ENCODER_TEXTS)
    cpu, flags = cpu_description()
    result: dict = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        # Other processes on the same 2 cores change every number here: keep the load with them.
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "cpu": cpu,
        "cpu_flags_simd": [f for f in flags if f in SIMD_FLAGS],
        "cpu_flags": flags,
        "model": model,
        "precision": encoder_path(model).label,
        "model_chosen_because": chosen_because,
        "settings": {
            "batch_size": w.batch_size,
            "batch_window_s": w.batch_window_s,
            "commit_interval_s": w.commit_interval_s,
            "torch_threads": settings.stack.torch_threads,
        },
    }
    phases: dict[str, PhaseResult] = {}
    log_dir = settings.stack.state_dir / "logs"
    say("[bench] (c) end to end: an isolated worker, its own topics and collection")
    with EndToEndBench(settings, options.dataset, log_dir, model) as e2e:
        warm = e2e.run_phase("warm-up", 64, rate=None)
        say(f"[bench]     warm-up: {warm.events - warm.missing}/{warm.events} decisions")
        full = e2e.run_phase("full speed", options.events, rate=None)
        say(f"[bench]     full speed: {full.events_per_s} events/s, p99 {full.latency_ms['p99']} ms")
        half_rate = max(1.0, round(full.events_per_s / 2, 1))
        half = e2e.run_phase("half load", options.events, rate=half_rate)
        say(f"[bench]     half load ({half_rate}/s): p99 {half.latency_ms['p99']} ms")
        phases = {"full": full, "half": half}
        rss_samples = list(e2e.memory.samples) if e2e.memory else []
        peak = e2e.memory.peak() if e2e.memory else {}
        if options.soak_minutes > 0:
            soak_start = rss_samples[-1][0] if rss_samples else 0.0
            count = int(half_rate * options.soak_minutes * 60)
            say(f"[bench] soak: {options.soak_minutes} min at {half_rate} events/s ({count} events)")
            phases["soak"] = e2e.run_phase("soak", count, rate=half_rate)
            assert e2e.memory is not None
            rss_samples = list(e2e.memory.samples)
            soak = [s for s in rss_samples if s[0] >= soak_start]
            result["soak"] = {
                "minutes": options.soak_minutes,
                "events": phases["soak"].events,
                "latency_ms": phases["soak"].latency_ms,
                "worker": memory_trend([(t - soak_start, wk) for t, wk, _, _ in soak]).__dict__,
                "triton": memory_trend([(t - soak_start, tr) for t, _, tr, _ in soak]).__dict__,
            }
            peak = e2e.memory.peak()

    # After the end-to-end phases: the encoders need only Triton, and nothing else runs meanwhile.
    if not options.skip_encoders:
        say(f"[bench] (a) every bare encoder path in-process, {len(texts)} texts per batch size")
        paths = every_bare_encoder(texts, settings.stack.torch_threads, settings.stack.cache_dir)
        fastest = max(paths, key=lambda name: paths[name]["texts_per_s"])
        # The baseline is the fastest path this machine has, whichever is served.
        result |= {
            "bare_encoders": paths,
            "bare_encoder_model": fastest,
            "bare_encoder_texts_per_s": paths[fastest]["texts_per_s"],
            "bare_encoder_best": f"{fastest}, {paths[fastest]['best']}",
            "bare_served_texts_per_s": paths[model]["texts_per_s"],
            "bare_reference_fp32_texts_per_s": paths["text_encoder"]["texts_per_s"],
        }
        say(f"[bench] (b) Triton alone, model {model}, concurrent async requests")
        triton, triton_rates = triton_alone(w.triton_url, model, texts)
        result |= {"triton_texts_per_s": triton.texts_per_s, "triton_best": triton.setting}
        result["triton_by_load"] = triton_rates

    result |= {
        "events": options.events,
        "end_to_end_events_per_s": full.events_per_s,
        "latency_ms_full_load": full.latency_ms,
        "latency_ms_half_load": half.latency_ms,
        "half_load_events_per_s": half_rate,
        "stages_ms": full.stages_ms,
        "stages_ms_half_load": half.stages_ms,
        "batch_size_mean": {"full": full.batch_size_mean, "half": half.batch_size_mean},
        "missing_decisions": {name: p.missing for name, p in phases.items()},
        "rss_mb": peak,
        "phases": {name: p.summary() for name, p in phases.items()},
    }
    if "bare_encoder_texts_per_s" in result:
        result["ratio_end_to_end_vs_bare_encoder"] = ratio(full.events_per_s, result["bare_encoder_texts_per_s"])
        result["ratio_triton_vs_bare_served"] = ratio(result["triton_texts_per_s"], result["bare_served_texts_per_s"])
        result["ratio_end_to_end_vs_bare_served"] = ratio(full.events_per_s, result["bare_served_texts_per_s"])
        result["ratio_end_to_end_vs_bare_fp32"] = ratio(full.events_per_s, result["bare_reference_fp32_texts_per_s"])
    result["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    result["goals"] = {
        "end_to_end >= 0.8 x bare encoder": _goal(result.get("ratio_end_to_end_vs_bare_encoder", float("nan")) >= 0.8),
        "p99 <= 250 ms at half load": _goal(half.latency_ms["p99"] <= 250),
        # An event without a decision is a failure, however fast the others were.
        "every event decided": _goal(all(p.missing == 0 for p in phases.values())),
    }
    return result, phases, rss_samples


def _goal(ok: bool) -> str:
    return "met" if ok else "MISSED"


def format_table(r: dict) -> str:
    rows: list[tuple[str, str]] = [
        ("cpu", r.get("cpu", "")),
        ("cpu SIMD flags", " ".join(r.get("cpu_flags_simd", []))),
        ("model served", f"{r['model']} ({r['precision']}): {r.get('model_chosen_because', '')}"),
        ("load average (1, 5, 15 min) at start / end", f"{r['load_average_at_start']} / {r['load_average_at_end']}"),
    ]
    if "bare_encoder_texts_per_s" in r:
        rows.append(
            (
                "(a) fastest bare encoder, in-process",
                f"{r['bare_encoder_texts_per_s']:.1f} texts/s ({r['bare_encoder_best']})",
            )
        )
        for name, p in r.get("bare_encoders", {}).items():
            rows.append((f"    {name} ({p['label']})", f"{p['texts_per_s']:.1f} texts/s ({p['best']})"))
        rows.append(("(b) Triton alone, served model", f"{r['triton_texts_per_s']:.1f} texts/s ({r['triton_best']})"))
    half = r["latency_ms_half_load"]
    full = r["latency_ms_full_load"]
    rows += [
        ("(c) end to end, full speed", f"{r['end_to_end_events_per_s']:.1f} events/s, {r['events']} events"),
        ("    latency at full speed", f"p50 {full['p50']:.0f}  p95 {full['p95']:.0f}  p99 {full['p99']:.0f} ms"),
        (f"    latency at half load ({r['half_load_events_per_s']}/s)",
         f"p50 {half['p50']:.0f}  p95 {half['p95']:.0f}  p99 {half['p99']:.0f} ms"),
        ("    of which until decided (half)", "p50 {p50:.0f}  p95 {p95:.0f}  p99 {p99:.0f} ms".format(
            **r["phases"]["half"]["decided_latency_ms"])),
        ("    events without a decision", "  ".join(f"{k} {v}" for k, v in r["missing_decisions"].items())),
        ("    mean batch (full / half)", f"{r['batch_size_mean']['full']} / {r['batch_size_mean']['half']} events"),
        ("    stages, ms per batch (full)", "  ".join(f"{k} {v:.1f}" for k, v in _ordered(r["stages_ms"]))),
        ("    stages, ms per batch (half)", "  ".join(f"{k} {v:.1f}" for k, v in _ordered(r["stages_ms_half_load"]))),
        ("RSS peak, MiB", "  ".join(f"{k} {v:.0f}" for k, v in r["rss_mb"].items())),
    ]  # fmt: skip
    if "ratio_end_to_end_vs_bare_encoder" in r:
        rows.append(("ratio end to end / bare encoder", f"{r['ratio_end_to_end_vs_bare_encoder']:.2f}"))
        rows.append(("ratio end to end / bare served model", f"{r['ratio_end_to_end_vs_bare_served']:.2f}"))
        rows.append(("ratio end to end / bare torch fp32", f"{r['ratio_end_to_end_vs_bare_fp32']:.2f}"))
        rows.append(("ratio Triton / bare served model", f"{r['ratio_triton_vs_bare_served']:.2f}"))
    if "soak" in r:
        s = r["soak"]
        for who in ("worker", "triton"):
            m = s[who]
            rows.append((f"soak {s['minutes']} min, {who} RSS",
                         f"{m['start_mb']:.0f} -> {m['end_mb']:.0f} MiB (max {m['max_mb']:.0f}), "
                         f"{m['growth_mb_per_min']:+.1f} MiB/min in the second half"))  # fmt: skip
    rows += [(f"goal: {k}", v) for k, v in r["goals"].items()]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)


STAGE_ORDER = ("consume", "normalise", "media", "embed", "search", "score", "decide", "index", "produce")


def _ordered(stages: dict[str, float]) -> list[tuple[str, float]]:
    known = [(s, stages[s]) for s in STAGE_ORDER if s in stages]
    return known + sorted((k, v) for k, v in stages.items() if k not in STAGE_ORDER)


def write_json(path: Path, result: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8")


__all__ = ["BenchOptions", "format_table", "run_bench", "write_json"]
