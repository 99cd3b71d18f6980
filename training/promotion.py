"""The promotion gate: a candidate matcher version against the serving one, on held-out pairs.

Held-out means the portions training never looks at: "valid" of every golden set (pair sets by
their split column, cluster sets by the hashed work, see ``evaluation.splits``) and the "valid"
portion of curator verdicts (``training.matcher.feedback_portion``). Each model decides every
pair with its own thresholds (``DecisionPolicy.classify``, the pair-level decision); per set and
per decision type (same, version_of, video_of, and none for sets without link labels) the F1 of
that decision is computed. The overall score is the mean over sets of each set's mean F1 over its
decision types, so a small set counts as much as a large one.

A candidate is promoted when its overall score beats the serving one by at least ``margin`` and
no (set, decision type) cell loses more than ``tolerance``; otherwise the gate refuses, with the
table that says why.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from resolution.matcher import RELATIONS
from resolution.policy import DecisionPolicy


class Labelled(Protocol):
    @property
    def dataset(self) -> str: ...

    @property
    def relation(self) -> str: ...


@dataclass(frozen=True)
class GateSettings:
    margin: float = 0.002
    tolerance: float = 0.01


def relation_scores(
    examples: Sequence[Labelled], probabilities: np.ndarray, policy: DecisionPolicy
) -> dict[str, dict[str, dict[str, float]]]:
    """Per set, per decision type present in its labels: precision, recall, F1 and support."""
    predicted = [policy.classify(dict(zip(RELATIONS, map(float, row), strict=True))) for row in probabilities]
    out: dict[str, dict[str, dict[str, float]]] = {}
    for name in sorted({e.dataset for e in examples}):
        idx = [n for n, e in enumerate(examples) if e.dataset == name]
        truth = [examples[n].relation for n in idx]
        guess = [predicted[n] for n in idx]
        present = sorted(set(truth))
        # A set labelled only same/none judges "same" alone; "none" adds nothing it does not.
        relations = [r for r in present if r != "none"] or present
        cells: dict[str, dict[str, float]] = {}
        for relation in relations:
            tp = sum(1 for t, g in zip(truth, guess, strict=True) if t == relation and g == relation)
            fp = sum(1 for t, g in zip(truth, guess, strict=True) if t != relation and g == relation)
            fn = sum(1 for t, g in zip(truth, guess, strict=True) if t == relation and g != relation)
            precision = tp / (tp + fp) if tp + fp else 0.0
            recall = tp / (tp + fn) if tp + fn else 0.0
            f1 = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
            cells[relation] = {"precision": precision, "recall": recall, "f1": f1, "support": float(tp + fn)}
        out[name] = cells
    return out


def overall(scores: dict[str, dict[str, dict[str, float]]]) -> float:
    per_set = [float(np.mean([c["f1"] for c in cells.values()])) for cells in scores.values() if cells]
    return float(np.mean(per_set)) if per_set else 0.0


@dataclass
class GateVerdict:
    promote: bool
    candidate: str
    serving: str
    candidate_overall: float
    serving_overall: float
    margin: float
    tolerance: float
    rows: list[dict[str, Any]] = field(default_factory=list)  # one per (set, decision type)
    reasons: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        head = f"{'set':28s} {'decision':10s} {'support':>7s} {'serving F1':>10s} {'candidate F1':>12s} {'delta':>7s}"
        out = [head, "-" * len(head)]
        for r in self.rows:
            flag = "  LOSES" if r["loses"] else ""
            out.append(
                f"{r['set']:28s} {r['relation']:10s} {int(r['support']):7d} {r['serving_f1']:10.4f} "
                f"{r['candidate_f1']:12.4f} {r['delta']:+7.4f}{flag}"
            )
        out.append(
            f"{'overall (mean of sets)':39s} {'':7s} {self.serving_overall:10.4f} {self.candidate_overall:12.4f} "
            f"{self.candidate_overall - self.serving_overall:+7.4f}  (margin {self.margin}, tolerance {self.tolerance})"
        )
        verdict = "PROMOTE" if self.promote else "REFUSE"
        out.append(
            f"{verdict} {self.candidate} over {self.serving}" + (": " + "; ".join(self.reasons) if self.reasons else "")
        )
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "promote": self.promote,
            "candidate": self.candidate,
            "serving": self.serving,
            "candidate_overall": self.candidate_overall,
            "serving_overall": self.serving_overall,
            "margin": self.margin,
            "tolerance": self.tolerance,
            "rows": self.rows,
            "reasons": self.reasons,
        }


def judge(
    candidate: dict[str, dict[str, dict[str, float]]],
    serving: dict[str, dict[str, dict[str, float]]],
    gate: GateSettings,
    candidate_name: str = "candidate",
    serving_name: str = "serving",
) -> GateVerdict:
    rows: list[dict[str, Any]] = []
    reasons: list[str] = []
    for name in sorted(set(candidate) | set(serving)):
        for relation in sorted(set(candidate.get(name, {})) | set(serving.get(name, {}))):
            new = candidate.get(name, {}).get(relation, {"f1": 0.0, "support": 0.0})
            old = serving.get(name, {}).get(relation, {"f1": 0.0, "support": 0.0})
            delta = new["f1"] - old["f1"]
            loses = delta < -gate.tolerance
            if loses:
                reasons.append(f"{name}/{relation} loses {-delta:.4f} F1 (tolerance {gate.tolerance})")
            rows.append(
                {
                    "set": name,
                    "relation": relation,
                    "support": max(new["support"], old["support"]),
                    "serving_f1": old["f1"],
                    "candidate_f1": new["f1"],
                    "delta": delta,
                    "loses": loses,
                }
            )
    new_overall, old_overall = overall(candidate), overall(serving)
    if new_overall - old_overall < gate.margin:
        reasons.insert(0, f"overall F1 {new_overall:.4f} does not beat {old_overall:.4f} by the margin {gate.margin}")
    return GateVerdict(
        promote=not reasons,
        candidate=candidate_name,
        serving=serving_name,
        candidate_overall=new_overall,
        serving_overall=old_overall,
        margin=gate.margin,
        tolerance=gate.tolerance,
        rows=rows,
        reasons=reasons,
    )


def held_out_examples(
    dataset_dirs: list[Path], cache_dir: Path, feedback: Any = None, sample_seed: int = 13, sample_songs: int = 300
) -> tuple[list[Any], dict[str, Any]]:
    """The "valid" portion of every given set, of the generated catalogue (training's seed) and
    of the curator verdicts (``feedback``: a ``streams.feedback.ReplayedFeedback``), and what
    was used (set fingerprints, pair counts)."""
    from evaluation.datasets import load_dataset
    from evaluation.embedding_cache import minilm_cache
    from evaluation.golden_sets import file_hashes, fingerprint_of
    from evaluation.pair_examples import dataset_examples
    from evaluation.splits import VALID
    from resolution.normalise import normalise
    from training.matcher import feedback_labels, sample_dataset

    datasets = [load_dataset(Path(d)) for d in dataset_dirs]
    datasets.append(sample_dataset(sample_seed, sample_songs))
    encoder = minilm_cache(cache_dir)
    encoder.prefill([normalise(i).embed_text for ds in datasets for i in ds.items])
    examples: list[Any] = []
    used: dict[str, Any] = {}
    for ds in datasets:
        valid = [e for e in dataset_examples(ds, encoder) if e.portion == VALID]
        examples.extend(valid)
        sha = fingerprint_of(file_hashes(ds.path)) if ds.path.is_dir() else "generated"
        used[ds.name] = {"pairs": len(valid), "sha256": sha}
    if feedback is not None:
        labels = feedback_labels(feedback.feedback, feedback.items, feedback.evidence, encoder)
        valid_fb = [e for e in labels.examples if e.portion == VALID]
        examples.extend(valid_fb)
        used["curator-feedback"] = {"pairs": len(valid_fb), "sha256": labels.stats.get("sha256")}
    return examples, used


def compare_versions(serving_dir: Path, candidate_dir: Path, examples: list[Any], gate: GateSettings) -> GateVerdict:
    """Both versions decide every held-out pair with their own thresholds; the gate judges."""
    from inference.matcher_model import MatcherModel
    from training.matcher import examples_matrix

    scores = []
    names = []
    for folder in (candidate_dir, serving_dir):
        model = MatcherModel.load(folder)
        probabilities = model.predict(examples_matrix(examples, model.feature_names))
        scores.append(relation_scores(examples, probabilities, DecisionPolicy(model.thresholds)))
        names.append(f"{folder.name} ({model.version})")
    return judge(scores[0], scores[1], gate, names[0], names[1])
