"""``resolver compare``: the serving worker's decisions against a shadow worker's, on one stream.

Both decision streams are read back from their topics. Per content event (joined on the event
id): whether the two agree on the action, the relation and the entity the item went to (entity
ids are derived from content ids, so two independent states name the same entity alike while
they agree). The decisions that would change are listed with both sides' evidence. Where labels
exist (a dataset's truth, or curators' verdicts), each side's final clustering, rebuilt from its
own decisions as ``resolver rebuild`` does, is scored: pairwise precision, recall and F1 against
the truth, and the share of verdict pairs each side has right. The drift of each stream against
its model's training reference (``resolution.drift``) is reported too.
"""

from __future__ import annotations

import html
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evaluation.metrics import PRF, pairwise_prf
from resolution.drift import DriftResult, compare, record_signals
from resolution.entities import EntityStore, rebuild_state

CONTENT_ACTIONS = ("MERGE", "LINK", "NEW")


@dataclass
class SideSummary:
    name: str
    model_versions: list[str]
    decisions: int
    actions: dict[str, int]
    prf: PRF | None = None
    feedback_right: float | None = None
    drift: DriftResult | None = None
    top_scores: list[float] = field(default_factory=list)


@dataclass
class Comparison:
    primary: SideSummary
    shadow: SideSummary
    joined: int
    disagreements: list[dict[str, Any]]
    only_primary: int
    only_shadow: int
    feedback_pairs: int = 0
    labelled_items: int = 0

    @property
    def disagreement_rate(self) -> float:
        return len(self.disagreements) / self.joined if self.joined else 0.0

    def lines(self) -> list[str]:
        p, s = self.primary, self.shadow
        out = [
            f"primary {p.name}: {p.decisions} content decisions, model {', '.join(p.model_versions)}",
            f"shadow  {s.name}: {s.decisions} content decisions, model {', '.join(s.model_versions)}",
            f"joined on event id: {self.joined} (only primary {self.only_primary}, only shadow {self.only_shadow})",
            f"disagreement rate: {self.disagreement_rate:.4f} ({len(self.disagreements)} decisions would change)",
            "actions: " + "  ".join(f"{a} {p.actions.get(a, 0)} -> {s.actions.get(a, 0)}" for a in CONTENT_ACTIONS),
        ]
        if p.prf is not None and s.prf is not None:
            out.append(
                f"pairwise vs truth ({self.labelled_items} labelled items): "
                f"P {p.prf.precision:.4f} -> {s.prf.precision:.4f} ({s.prf.precision - p.prf.precision:+.4f}), "
                f"R {p.prf.recall:.4f} -> {s.prf.recall:.4f} ({s.prf.recall - p.prf.recall:+.4f}), "
                f"F1 {p.prf.f1:.4f} -> {s.prf.f1:.4f} ({s.prf.f1 - p.prf.f1:+.4f})"
            )
        if p.feedback_right is not None and s.feedback_right is not None:
            out.append(
                f"curator verdicts right ({self.feedback_pairs} pairs): "
                f"{p.feedback_right:.4f} -> {s.feedback_right:.4f}"
            )
        for side in (p, s):
            if side.drift is not None:
                d = side.drift
                psi = ", ".join(f"{k} {v:.3f}" for k, v in d.psi.items())
                alarm = f"ALARM {d.alarms}" if d.alarms else "no alarm"
                out.append(f"drift {side.name}: PSI {psi} (threshold {d.threshold}); {alarm}")
        return out


def content_decisions(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The placement decision of each content event (corrections are judged through the rebuild)."""
    return {
        r["event_id"]: r for r in records if r["action"] in CONTENT_ACTIONS and r.get("trigger") != "curator-feedback"
    }


def _placement(record: dict[str, Any]) -> tuple[str, str | None, str]:
    target = record.get("related_entity_id") if record["action"] == "LINK" else record["entity_id"]
    return record["action"], record.get("relation"), target or ""


def _evidence(record: dict[str, Any], n: int = 3) -> list[dict[str, Any]]:
    candidates = sorted(record.get("candidates") or (), key=lambda c: -float(c["score"]))[:n]
    return [
        {
            "content_id": c["content_id"],
            "relation": c["relation"],
            "score": round(float(c["score"]), 4),
            "text_cosine": round(float((c.get("signals") or {}).get("text_cosine", 0.0)), 4),
        }
        for c in candidates
    ]


def final_clusters(records: list[dict[str, Any]]) -> dict[str, str]:
    """Each content id's entity after every decision of the stream (corrections included)."""
    store = EntityStore(rebuild_state(records))
    ids = {r["content_id"] for r in records if r["action"] in CONTENT_ACTIONS}
    return {cid: store.entity_of(cid) or cid for cid in ids}


def compare_streams(
    primary: list[dict[str, Any]],
    shadow: list[dict[str, Any]],
    names: tuple[str, str] = ("primary", "shadow"),
    truth: dict[str, str] | None = None,
    feedback: list[tuple[str, str, bool]] | None = None,
    references: dict[str, dict[str, Any]] | None = None,
    threshold: float = 0.25,
) -> Comparison:
    """``truth``: content id -> entity id; ``feedback``: (left, right, same?) curator verdicts;
    ``references``: model version -> drift reference."""
    p_dec, s_dec = content_decisions(primary), content_decisions(shadow)
    joined = sorted(set(p_dec) & set(s_dec))
    disagreements = []
    for event_id in joined:
        a, b = p_dec[event_id], s_dec[event_id]
        if _placement(a) != _placement(b):
            disagreements.append(
                {
                    "event_id": event_id,
                    "content_id": a["content_id"],
                    "primary": {
                        "action": a["action"],
                        "relation": a.get("relation"),
                        "target": _placement(a)[2],
                        "reason": a.get("reason", ""),
                        "evidence": _evidence(a),
                    },
                    "shadow": {
                        "action": b["action"],
                        "relation": b.get("relation"),
                        "target": _placement(b)[2],
                        "reason": b.get("reason", ""),
                        "evidence": _evidence(b),
                    },
                }
            )
    sides = []
    labelled = 0
    for name, records, decided in ((names[0], primary, p_dec), (names[1], shadow, s_dec)):
        versions = sorted({r["model_version"] for r in decided.values()})
        side = SideSummary(
            name,
            versions,
            len(decided),
            dict(Counter(r["action"] for r in decided.values())),
            top_scores=[record_signals(r)["top_score"] for r in decided.values()],
        )
        clusters = final_clusters(records) if truth or feedback else {}
        if truth:
            common = {cid: e for cid, e in clusters.items() if cid in truth}
            labelled = len(common)
            side.prf = pairwise_prf(common, {cid: truth[cid] for cid in common})
        if feedback:
            judged = [(a, b, same) for a, b, same in feedback if a in clusters and b in clusters]
            if judged:
                right = sum(1 for a, b, same in judged if (clusters[a] == clusters[b]) == same)
                side.feedback_right = right / len(judged)
        reference = next((references[v] for v in versions if references and v in references), None)
        if reference is not None:
            side.drift = compare([record_signals(r) for r in decided.values()], reference, threshold)
        sides.append(side)
    return Comparison(
        sides[0],
        sides[1],
        len(joined),
        disagreements,
        only_primary=len(set(p_dec) - set(s_dec)),
        only_shadow=len(set(s_dec) - set(p_dec)),
        feedback_pairs=len(feedback or []),
        labelled_items=labelled,
    )


def write_report(path: Path, comparison: Comparison, limit: int = 200) -> None:
    """One HTML page: the summary, plots (action mix, best-score histograms, P/R/F1), drift,
    and the decisions that would change with both sides' evidence."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from evaluation.report import _png

    p, s = comparison.primary, comparison.shadow
    images = []
    figure, axis = plt.subplots(figsize=(5, 3.5))
    x = np.arange(len(CONTENT_ACTIONS))
    axis.bar(x - 0.2, [p.actions.get(a, 0) for a in CONTENT_ACTIONS], 0.4, label=p.name)
    axis.bar(x + 0.2, [s.actions.get(a, 0) for a in CONTENT_ACTIONS], 0.4, label=s.name)
    axis.set_xticks(x, CONTENT_ACTIONS)
    axis.set_ylabel("decisions")
    axis.set_title("decision mix")
    axis.legend()
    images.append(_png(figure))
    figure, axis = plt.subplots(figsize=(5, 3.5))
    bins = [float(b) for b in np.linspace(0, 1, 21)]
    axis.hist(p.top_scores, bins=bins, alpha=0.6, label=p.name)
    axis.hist(s.top_scores, bins=bins, alpha=0.6, label=s.name)
    axis.set_xlabel("best candidate score")
    axis.set_ylabel("decisions")
    axis.set_title("score distribution")
    axis.legend()
    images.append(_png(figure))
    if p.prf is not None and s.prf is not None:
        figure, axis = plt.subplots(figsize=(5, 3.5))
        x = np.arange(3)
        axis.bar(x - 0.2, [p.prf.precision, p.prf.recall, p.prf.f1], 0.4, label=p.name)
        axis.bar(x + 0.2, [s.prf.precision, s.prf.recall, s.prf.f1], 0.4, label=s.name)
        axis.set_xticks(x, ["precision", "recall", "F1"])
        axis.set_ylim(0, 1.05)
        axis.set_title(f"pairwise vs truth ({comparison.labelled_items} items)")
        axis.legend()
        images.append(_png(figure))
    rows = []
    for d in comparison.disagreements[:limit]:
        cells = [d["content_id"]]
        for side in ("primary", "shadow"):
            v = d[side]
            ev = "<br>".join(
                f"{html.escape(e['content_id'])} {e['relation']} {e['score']:.3f} (cos {e['text_cosine']:.3f})"
                for e in v["evidence"]
            )
            rel = f" {v['relation']}" if v["relation"] else ""
            cells.append(
                f"<b>{v['action']}{rel}</b> → {html.escape(v['target'])}<br><i>{html.escape(v['reason'])}</i><br>{ev}"
            )
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    shown = min(limit, len(comparison.disagreements))
    summary = "".join(f"<li>{html.escape(line)}</li>" for line in comparison.lines())
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>shadow comparison</title>
<style>body{{font-family:sans-serif;margin:2em}} td,th{{border:1px solid #ccc;padding:4px;vertical-align:top;
font-size:12px}} table{{border-collapse:collapse}}</style></head><body>
<h1>Shadow comparison: {html.escape(p.name)} vs {html.escape(s.name)}</h1><ul>{summary}</ul>
{"".join(f'<img src="{src}">' for src in images)}
<h2>Decisions that would change ({len(comparison.disagreements)}, first {shown})</h2>
<table><tr><th>content</th><th>{html.escape(p.name)}</th><th>{html.escape(s.name)}</th></tr>{"".join(rows)}</table>
</body></html>"""
    Path(path).write_text(page, encoding="utf-8")
