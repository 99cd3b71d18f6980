"""The learned media fusion: a media head trained over a text matcher that stays as it is.

``resolver train --media-set DIR --base VERSION`` reads every pair of the generated media sets
(``training.media_pairs``: fit trains, tune reports) and fits ``FusedMatcherNet``'s head alone;
the base version's weights, temperature and thresholds are kept. A pair without media on both
sides therefore scores exactly as under the base, so no golden set (none has media) can lose,
and the promotion gate checks that too (docs/media.md, "The learned fusion").

Why not one network over text and media together: trained so (versions ``matcher-48486dc23a``,
``-d52bd4d502``, ``-e05e8bbed9``), the media pairs moved the text-only calibration and
thresholds, and the gate found losses beyond chance on text-only cells (musicbrainz-20k same,
work-video-pairs and the generated catalogue's video_of).
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch

from evaluation.splits import FIT, TUNE
from inference.matcher_model import FusedMatcherNet, MatcherModel, MatcherNet
from resolution.features import MEDIA_FEATURE_NAMES
from resolution.matcher import RELATIONS
from resolution.policy import DecisionPolicy
from training.matcher import SignalExample, examples_matrix, fit_weighted
from training.promotion import as_served, decided_scores, decisions


@dataclass(frozen=True)
class FusionConfig:
    seed: int = 13
    hidden: int = 32
    epochs: int = 60
    batch_size: int = 256
    learning_rate: float = 3e-3
    weight_decay: float = 1e-3


def fused_feature_names(base: MatcherModel) -> tuple[str, ...]:
    if isinstance(base.net, FusedMatcherNet) or any(n in MEDIA_FEATURE_NAMES for n in base.feature_names):
        raise ValueError(f"the base {base.version} reads media already: train the head over a text matcher")
    return (*base.feature_names, *MEDIA_FEATURE_NAMES)


def _relation_weights(labels: torch.Tensor) -> torch.Tensor:
    """Inverse square-root frequency: the set's many different-work pairs do not drown the few
    videos (as ``training.matcher`` balances sets)."""
    counts = torch.bincount(labels, minlength=len(RELATIONS)).float().clamp(min=1.0)
    weights = (counts.sum() / counts) ** 0.5
    return (weights / weights[labels].mean())[labels]


def train_fusion_head(
    base: MatcherModel, media: Sequence[SignalExample], config: FusionConfig, progress: bool = True
) -> MatcherModel:
    fit = [e for e in media if e.portion == FIT]
    tune = [e for e in media if e.portion == TUNE]
    if not fit or not tune:
        raise ValueError("the media head needs media pairs in both the fit and the tune portions")
    assert isinstance(base.net, MatcherNet)  # fused_feature_names refused a fused base
    names = fused_feature_names(base)
    label_of = {r: i for i, r in enumerate(RELATIONS)}
    x_fit = torch.from_numpy(examples_matrix(fit, names))
    y_fit = torch.tensor([label_of[e.relation] for e in fit])
    w_fit = _relation_weights(y_fit)

    torch.manual_seed(config.seed)
    text = copy.deepcopy(base.net)
    text.requires_grad_(False)
    net = FusedMatcherNet(text, names, config.hidden)
    # Only the head's parameters move; the base has no dropout or batch statistics to change.
    fit_weighted(net, list(net.head.parameters()), x_fit, y_fit, w_fit, config, "media head", progress)
    fused = MatcherModel(net, names, base.thresholds, {})
    metadata: dict[str, Any] = {
        "base": {"version": base.version, "thresholds": asdict(base.thresholds)},
        "fusion": asdict(config),
        "media_pairs": dict(sorted(Counter(f"{e.portion}/{e.relation}" for e in media).items())),
        "tune_media": _tune_report(base, fused, tune),
        "split": "media sets: fit trains the head, tune reports; the base's thresholds and temperature are kept",
    }
    # The base's training record (temperature, drift reference, ...) still describes text pairs.
    for key in ("temperature", "drift_reference", "text_encoder"):
        if key in base.metadata:
            metadata[key] = base.metadata[key]
    fused.metadata = metadata
    return fused


def _tune_report(base: MatcherModel, fused: MatcherModel, tune: Sequence[SignalExample]) -> dict[str, Any]:
    """Per decision type on the tune media pairs: the base with the hand rule (as it serves) and
    the fused model alone, at the base's thresholds."""
    policy = DecisionPolicy(base.thresholds)
    out: dict[str, Any] = {}
    for label, model, rule in (("base_with_rule", base, "on"), ("fused", fused, "off")):
        probabilities = model.predict(examples_matrix(tune, model.feature_names))
        probabilities = as_served(tune, probabilities, model.feature_names, rule)
        cells = decided_scores(tune, decisions(probabilities, policy))
        out[label] = {r: round(c["f1"], 4) for r, c in next(iter(cells.values())).items()}
    return out
