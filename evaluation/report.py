"""The HTML evaluation report: metrics, a precision-recall curve and score histograms (PNG,
embedded so the page is one file), the confusion per decision type and the worst errors with
their explanations."""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display; must precede pyplot
import matplotlib.pyplot as plt
import numpy as np

from evaluation.cluster_scoring import EvaluationResult
from evaluation.metrics import precision_recall_curve


def _png(figure: Any) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(figure)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def pr_curve_png(labels: list[int], scores: list[float], title: str) -> str:
    curve = precision_recall_curve(labels, scores)
    figure, axis = plt.subplots(figsize=(5, 4))
    axis.plot([r for _t, _p, r in curve], [p for _t, p, _r in curve], lw=1.5)
    axis.set_xlabel("recall")
    axis.set_ylabel("precision")
    axis.set_xlim(0, 1.02)
    axis.set_ylim(0, 1.02)
    axis.set_title(title)
    axis.grid(alpha=0.3)
    return _png(figure)


def histogram_png(labels: list[int], scores: list[float], score_name: str, threshold: float) -> str:
    values = np.asarray(scores)
    truth = np.asarray(labels, dtype=bool)
    figure, axis = plt.subplots(figsize=(5, 4))
    bins = np.linspace(0, 1, 41).tolist()
    axis.hist(values[~truth], bins=bins, alpha=0.6, label="negative pairs", log=True)
    axis.hist(values[truth], bins=bins, alpha=0.6, label="positive pairs", log=True)
    axis.axvline(threshold, color="k", ls="--", lw=1, label=f"threshold {threshold:.2f}")
    axis.set_xlabel(score_name)
    axis.set_ylabel("pairs (log)")
    axis.legend()
    return _png(figure)


def _table(rows: list[list[str]], head: list[str]) -> str:
    out = ["<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>"]
    for row in rows:
        out.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>")
    return "".join(out) + "</table>"


def _section(result: EvaluationResult) -> str:
    m = result.metrics
    parts = [f"<h2>{html.escape(m['dataset'])} ({html.escape(m['kind'])}, split {html.escape(m['split'])})</h2>"]
    parts.append(f"<pre>{html.escape(json.dumps(m, indent=2))}</pre>")
    if result.labels:
        threshold = m["thresholds"]["merge"] if result.score_name == "p(same)" else m["thresholds"]["link"]
        parts.append(f"<img src='{pr_curve_png(result.labels, result.scores, result.score_name)}'>")
        parts.append(f"<img src='{histogram_png(result.labels, result.scores, result.score_name, threshold)}'>")
    columns = sorted({c for row in result.confusion.values() for c in row})
    parts.append("<h3>Confusion (rows: expected, columns: decided)</h3>")
    parts.append(
        _table(
            [[k, *[str(v.get(c, 0)) for c in columns]] for k, v in sorted(result.confusion.items())],
            ["expected", *columns],
        )
    )
    parts.append(f"<h3>Worst errors ({len(result.errors)})</h3>")
    parts.append(
        _table(
            [
                [
                    e["kind"],
                    e["record"],
                    e["candidate"],
                    e["action"],
                    e["reason"],
                    json.dumps(e["probabilities"]),
                    json.dumps(e["signals"]),
                ]
                for e in result.errors
            ],
            ["error", "record", "candidate", "decided", "reason", "probabilities", "signals"],
        )
    )
    return "\n".join(parts)


def write_report(path: Path, results: list[EvaluationResult]) -> None:
    style = (
        "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;font-size:12px}"
        "td,th{border:1px solid #ccc;padding:3px 6px;vertical-align:top}pre{background:#f6f6f6;padding:1em}"
    )
    body = "\n".join(_section(r) for r in results)
    page = "<!doctype html><html><head><meta charset='utf-8'><title>resolver evaluation</title>"
    page += f"<style>{style}</style></head><body><h1>Resolver evaluation</h1>{body}</body></html>\n"
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(page, encoding="utf-8")
