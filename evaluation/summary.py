"""The short human-readable summary ``resolver evaluate`` prints (fractions, 4 decimals)."""

from __future__ import annotations

from typing import Any


def _prf(d: dict[str, Any]) -> str:
    return f"P {d['precision']:.4f} R {d['recall']:.4f} F1 {d['f1']:.4f}"


def summary_lines(metrics: dict[str, Any]) -> list[str]:
    head = f"{metrics['dataset']} [{metrics['kind']}, split={metrics['split']}, model={metrics['model']}]"
    lines = [head]
    if metrics["kind"] == "pairs":
        lines.append(f"  pairs {metrics['pairs']} (positives {metrics['positives']}): {_prf(metrics['pairwise'])}")
        if "leak_free" in metrics:
            free = metrics["leak_free"]
            lines.append(
                f"  leak-free pairs {free['pairs']} (positives {free['positives']}; no record shared with a "
                f"training pair by id or normalised text): {_prf(free['pairwise'])}"
            )
        if "clustered" in metrics:
            # The stack's measure: the pairs judged from the clustering of every record streamed.
            c = metrics["clustered"]
            line = f"  clustered (as --through-stack judges: one work each): {_prf(c['pairwise'])}"
            if "leak_free" in c:
                line += f"; leak-free F1 {c['leak_free']['pairwise']['f1']:.4f}"
            lines.append(line)
            missed = ", ".join(f"{k} {v}" for k, v in c["missed"].items())
            lines.append(f"  positive pairs left apart, by step: {missed}")
        return lines
    shape = metrics.get("resolver", {})
    if shape:
        lines.append("  resolver " + ", ".join(f"{k}={v}" for k, v in shape.items()))
    lines.append(
        f"  records scored {metrics['records']} of {metrics.get('streamed', metrics['records'])} streamed, "
        f"entities {metrics['entities']}, orders {len(metrics['shuffles'])}"
    )
    lines.append(f"  pairwise      {_prf(metrics['pairwise'])}")
    lines.append(f"  b-cubed       {_prf(metrics['bcubed'])}")
    if "work_pairwise" in metrics:
        lines.append(f"  work pairwise {_prf(metrics['work_pairwise'])}")
    spread = metrics["spread"]
    key = "work_f1" if spread["measure"].startswith("work") else "f1"
    per_order = ", ".join(f"{r[key]:.4f}" for r in metrics["shuffles"])
    lines.append(f"  per order {spread['measure']} [{per_order}]; spread (max - min) {spread['max_minus_min']:.4f}")
    recall = f"  candidate recall {metrics['candidate_recall']:.4f}"
    if "work_candidate_recall" in metrics:
        recall += f" (work {metrics['work_candidate_recall']:.4f})"
    lines.append(recall + f"; {metrics['events_per_s']:.0f} events/s (embeddings cached)")
    if "determinism" in metrics:
        d = metrics["determinism"]
        lines.append(
            f"  determinism over {d['runs']} runs of the first order: {d['decisions_differing']} of {d['records']} "
            f"decisions ({d['outcomes_differing']} in action, relation or entity), {d['clusters_differing']} final "
            f"clusters and {d['works_differing']} final works differ from the first run"
        )
    if "at_once" in metrics:
        once = metrics["at_once"]
        line = f"  at once: pairwise {_prf(once['pairwise'])}; b-cubed F1 {once['bcubed']['f1']:.4f}"
        if "work_pairwise" in once:
            line += f"; work F1 {once['work_pairwise']['f1']:.4f}"
        lines.append(line)
    return lines
