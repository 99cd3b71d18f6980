"""The promotion gate: a candidate matcher version against the serving one, on held-out pairs.

Held-out means the portions training never looks at: "valid" of every golden set (pair sets by
their split column, cluster sets by the hashed work, see ``evaluation.splits``) and the "valid"
portion of curator verdicts (``training.matcher.feedback_portion``). Each model decides every
pair with its own thresholds (``DecisionPolicy.classify``, the pair-level decision); per set and
per decision type (same, version_of, video_of, and none for sets without link labels) the F1 of
that decision is computed. The overall score is the mean over sets of each set's mean F1 over its
decision types, so a small set counts as much as a large one.

A candidate is promoted when its overall score beats the serving one by at least ``margin`` and
no (set, decision type) cell loses: a cell loses when its F1 falls by more than ``tolerance`` and
the pairs the two versions decide differently there say so beyond chance (an exact one-sided
sign test, p <= ``significance``). On a set of 27 positives one pair is worth 0.035 of F1, so the
tolerance alone refused a version for one pair decided otherwise (docs/media.md, "The learned
fusion"). Otherwise the gate refuses, with the table that says why.

Each version is judged as it would serve: a version without media features with the hand fusion
rule after it as ``RESOLVER_WORKER_MEDIA_FUSION_RULE`` would apply it (``fusion_rule_for``),
so a held-out media set compares the learned fusion with what serves today.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from resolution.matcher import RELATIONS
from resolution.media_evidence import FusionRule, fusion_rule_for, with_media_evidence
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
    significance: float = 0.05


Cell = tuple[str, str]  # (set, decision type)


def decisions(probabilities: np.ndarray, policy: DecisionPolicy) -> list[str]:
    """The pair-level decision of each row."""
    return [policy.classify(dict(zip(RELATIONS, map(float, row), strict=True))) for row in probabilities]


def judged_cells(examples: Sequence[Labelled]) -> dict[str, list[str]]:
    """Per set, the decision types its labels judge: a set labelled only same/none judges "same"
    alone ("none" adds nothing it does not)."""
    out = {}
    for name in sorted({e.dataset for e in examples}):
        present = sorted({e.relation for e in examples if e.dataset == name})
        out[name] = [r for r in present if r != "none"] or present
    return out


def relation_scores(
    examples: Sequence[Labelled], probabilities: np.ndarray, policy: DecisionPolicy
) -> dict[str, dict[str, dict[str, float]]]:
    """Per set, per decision type present in its labels: precision, recall, F1 and support."""
    return decided_scores(examples, decisions(probabilities, policy))


def decided_scores(examples: Sequence[Labelled], predicted: Sequence[str]) -> dict[str, dict[str, dict[str, float]]]:
    out: dict[str, dict[str, dict[str, float]]] = {}
    for name, relations in judged_cells(examples).items():
        idx = [n for n, e in enumerate(examples) if e.dataset == name]
        truth = [examples[n].relation for n in idx]
        guess = [predicted[n] for n in idx]
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


def discordant(
    examples: Sequence[Labelled], candidate: Sequence[str], serving: Sequence[str]
) -> dict[Cell, tuple[int, int]]:
    """Per cell, the pairs only the candidate gets right there and those only the serving version
    does ("right" for a decision type: saying it exactly when the label is it)."""
    out: dict[Cell, tuple[int, int]] = {}
    for name, relations in judged_cells(examples).items():
        idx = [n for n, e in enumerate(examples) if e.dataset == name]
        for relation in relations:
            wins = losses = 0
            for n in idx:
                truth = examples[n].relation == relation
                new_right = (candidate[n] == relation) == truth
                old_right = (serving[n] == relation) == truth
                wins += new_right and not old_right
                losses += old_right and not new_right
            out[(name, relation)] = (wins, losses)
    return out


def sign_test(wins: int, losses: int) -> float:
    """One-sided exact sign test: the chance of at least ``losses`` of the ``wins + losses``
    differently decided pairs going against the candidate were both versions equally good."""
    n = wins + losses
    if n == 0:
        return 1.0
    return sum(math.comb(n, k) for k in range(losses, n + 1)) / 2**n


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
    significance: float = 0.05
    rows: list[dict[str, Any]] = field(default_factory=list)  # one per (set, decision type)
    reasons: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        head = (
            f"{'set':28s} {'decision':10s} {'support':>7s} {'serving F1':>10s} {'candidate F1':>12s} {'delta':>7s}"
            f" {'won':>5s} {'lost':>5s} {'sign p':>7s}"
        )
        out = [head, "-" * len(head)]
        for r in self.rows:
            flag = "  LOSES" if r["loses"] else ""
            p = "" if r.get("p") is None else f"{r['p']:.3g}"
            out.append(
                f"{r['set']:28s} {r['relation']:10s} {int(r['support']):7d} {r['serving_f1']:10.4f} "
                f"{r['candidate_f1']:12.4f} {r['delta']:+7.4f} {r.get('won', 0):5d} {r.get('lost', 0):5d} {p:>7s}{flag}"
            )
        out.append(
            f"{'overall (mean of sets)':39s} {'':7s} {self.serving_overall:10.4f} {self.candidate_overall:12.4f} "
            f"{self.candidate_overall - self.serving_overall:+7.4f}  (margin {self.margin}, "
            f"tolerance {self.tolerance}, significance {self.significance})"
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
            "significance": self.significance,
            "rows": self.rows,
            "reasons": self.reasons,
        }


def judge(
    candidate: dict[str, dict[str, dict[str, float]]],
    serving: dict[str, dict[str, dict[str, float]]],
    gate: GateSettings,
    candidate_name: str = "candidate",
    serving_name: str = "serving",
    differences: dict[Cell, tuple[int, int]] | None = None,
) -> GateVerdict:
    """``differences`` (``discordant``): per cell, the pairs each version alone gets right; a
    cell then loses only if the sign test says so too. Without them, the tolerance alone."""
    rows: list[dict[str, Any]] = []
    reasons: list[str] = []
    for name in sorted(set(candidate) | set(serving)):
        for relation in sorted(set(candidate.get(name, {})) | set(serving.get(name, {}))):
            new = candidate.get(name, {}).get(relation, {"f1": 0.0, "support": 0.0})
            old = serving.get(name, {}).get(relation, {"f1": 0.0, "support": 0.0})
            delta = new["f1"] - old["f1"]
            wins, losses = (differences or {}).get((name, relation), (0, 0))
            p = sign_test(wins, losses) if differences is not None else 0.0
            loses = delta < -gate.tolerance and p <= gate.significance
            if loses:
                why = f"tolerance {gate.tolerance}" + (
                    f"; {losses} pairs lost, {wins} won, sign test p={p:.3g}" if differences is not None else ""
                )
                reasons.append(f"{name}/{relation} loses {-delta:.4f} F1 ({why})")
            rows.append(
                {
                    "set": name,
                    "relation": relation,
                    "support": max(new["support"], old["support"]),
                    "serving_f1": old["f1"],
                    "candidate_f1": new["f1"],
                    "delta": delta,
                    "won": wins,
                    "lost": losses,
                    "p": p if differences is not None else None,
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
        significance=gate.significance,
        rows=rows,
        reasons=reasons,
    )


def held_out_examples(
    dataset_dirs: list[Path],
    cache_dir: Path,
    feedback: Any = None,
    sample_seed: int = 13,
    sample_songs: int = 300,
    media_sets: Sequence[Path] = (),
    media_reader: Any = None,
) -> tuple[list[Any], dict[str, Any]]:
    """The "valid" portion of every given set, of the generated catalogue (training's seed) and
    of the curator verdicts (``feedback``: a ``streams.feedback.ReplayedFeedback``); every pair
    of each held-out media set (``media_sets``, generated with ``--split valid``, read by
    ``media_reader``) with its media; and what was used (set fingerprints, pair counts)."""
    from evaluation.datasets import load_dataset
    from evaluation.embedding_cache import minilm_cache
    from evaluation.golden_sets import file_hashes, fingerprint_of
    from evaluation.pair_examples import dataset_examples
    from evaluation.splits import VALID
    from resolution.normalise import normalise
    from training.matcher import MEDIA_PROVENANCE, feedback_labels, sample_dataset

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
    if media_sets:
        from training.media_pairs import media_set_pairs

        if media_reader is None:
            raise ValueError("held-out media sets need a media reader (the media step is off)")
        for folder in media_sets:
            name = f"{MEDIA_PROVENANCE}{Path(folder).name}"  # as training names the sets it read
            found = media_set_pairs(Path(folder), encoder, media_reader, frozenset({"valid"}), name)
            examples.extend(found.examples)
            used[name] = {"pairs": len(found.examples), "sha256": found.provenance["items_sha256"]}
    return examples, used


def as_served(
    examples: Sequence[Labelled], probabilities: np.ndarray, feature_names: Sequence[str], fusion_rule: str
) -> np.ndarray:
    """The probabilities the worker would act on: with the hand fusion rule after a version the
    setting ``fusion_rule`` applies it to, on the pairs that carry media similarities."""
    rule = fusion_rule_for(fusion_rule, feature_names)
    if rule is FusionRule.OFF:
        return probabilities
    out = probabilities.copy()
    for n, e in enumerate(examples):
        # Only signal examples (a media set's pairs, curator verdicts) carry media; a golden set's
        # pairs are compared from their items and have none.
        signals: dict[str, float] = getattr(e, "signals", None) or {}
        if signals.get("audio_compared") or signals.get("image_compared"):
            fused = with_media_evidence(dict(zip(RELATIONS, map(float, out[n]), strict=True)), signals, rule)
            out[n] = [fused[r] for r in RELATIONS]
    return out


def compare_versions(
    serving_dir: Path, candidate_dir: Path, examples: list[Any], gate: GateSettings, fusion_rule: str = "auto"
) -> GateVerdict:
    """Both versions decide every held-out pair with their own thresholds, each as it would serve
    (``as_served``); the gate judges, the pairs decided differently in hand."""
    from inference.matcher_model import MatcherModel
    from training.matcher import examples_matrix

    scores = []
    names = []
    predicted = []
    for folder in (candidate_dir, serving_dir):
        model = MatcherModel.load(folder)
        probabilities = model.predict(examples_matrix(examples, model.feature_names))
        probabilities = as_served(examples, probabilities, model.feature_names, fusion_rule)
        predicted.append(decisions(probabilities, DecisionPolicy(model.thresholds)))
        scores.append(decided_scores(examples, predicted[-1]))
        names.append(f"{folder.name} ({model.version})")
    differences = discordant(examples, predicted[0], predicted[1])
    return judge(scores[0], scores[1], gate, names[0], names[1], differences)
