"""The HTML page of ``resolver bench --report``: the table, and PNG plots written beside it."""

from __future__ import annotations

import html
import json
from pathlib import Path

from benchmarks.end_to_end import PhaseResult
from benchmarks.stats import rate_over_time


def _plots(phases: dict[str, PhaseResult], rss: list, folder: Path, stem: str) -> list[tuple[str, str]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out: list[tuple[str, str]] = []

    fig, ax = plt.subplots(figsize=(8, 4))
    for phase in phases.values():
        if phase.latencies:
            ax.hist(phase.latencies, bins=60, alpha=0.55, label=f"{phase.name} ({len(phase.latencies)} events)")
    ax.set_xlabel("produce -> committed decision read back (ms)")
    ax.set_ylabel("events")
    ax.set_title("Latency")
    ax.legend()
    path = folder / f"{stem}-latency.png"
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    out.append(("Latency histogram", path.name))

    fig, ax = plt.subplots(figsize=(8, 4))
    for phase in phases.values():
        series = rate_over_time(phase.arrivals_s, bin_s=1.0)
        if series:
            ax.plot([t for t, _ in series], [r for _, r in series], label=phase.name)
    ax.set_xlabel("seconds since the phase's first event was produced")
    ax.set_ylabel("decisions / s")
    ax.set_title("Throughput over time")
    ax.legend()
    path = folder / f"{stem}-throughput.png"
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    out.append(("Throughput over time", path.name))

    if rss:
        fig, ax = plt.subplots(figsize=(8, 4))
        ax.plot([s[0] for s in rss], [s[1] for s in rss], label="worker")
        ax.plot([s[0] for s in rss], [s[2] for s in rss], label="Triton (server and model stubs)")
        ax.plot([s[0] for s in rss], [s[3] for s in rss], label="Triton, the benchmarked model's stub")
        ax.set_xlabel("seconds since the worker started")
        ax.set_ylabel("RSS (MiB)")
        ax.set_title("Memory")
        ax.legend()
        path = folder / f"{stem}-memory.png"
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)
        out.append(("Resident memory over the run", path.name))
    return out


def write_report(path: Path, result: dict, table: str, phases: dict[str, PhaseResult], rss: list) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    plots = _plots(phases, rss, path.parent, path.stem)
    images = "\n".join(
        f'<h2>{html.escape(title)}</h2><img src="{html.escape(name)}" alt="{html.escape(title)}">'
        for title, name in plots
    )
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>content-resolver benchmark</title>
<style>body{{font-family:sans-serif;max-width:60em;margin:2em auto}}
pre{{background:#f4f4f4;padding:1em;overflow:auto}}</style>
</head><body>
<h1>content-resolver benchmark, {html.escape(result.get("when", ""))}</h1>
<p>(a) the encoder bare, in-process; (b) Triton alone; (c) end to end through Kafka, the worker,
Triton and Milvus, from the producer's timestamp to the decision read back with read_committed.
See docs/performance.md for how to read it.</p>
<pre>{html.escape(table)}</pre>
{images}
<h2>All numbers</h2>
<pre>{html.escape(json.dumps(result, indent=2, default=str))}</pre>
</body></html>
"""
    path.write_text(page, encoding="utf-8")
