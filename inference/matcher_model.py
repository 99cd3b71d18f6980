"""The learned matcher: a small PyTorch network over the comparison features of a pair.

It gives calibrated probabilities for ``same`` / ``version_of`` / ``video_of`` / ``none`` (softmax
with a temperature fitted on held-out training data). A model version is a folder with two small
files, read by Triton's python backend (``triton_models/matcher``) and by ``evaluate --model``:

- ``matcher.pt``: the network's weights (a ``state_dict``, loaded with ``weights_only``);
- ``matcher.json``: feature names, the policy thresholds, the network shape and how it was trained.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from resolution.features import MEDIA_FEATURE_NAMES, pair_signals_batch
from resolution.matcher import RELATIONS, PairInput, PairScore, with_rule_evidence
from resolution.policy import Thresholds

WEIGHTS_FILE = "matcher.pt"
META_FILE = "matcher.json"


class MatcherNet(nn.Module):
    """Standardised features -> MLP -> logits per relation, divided by a fitted temperature."""

    # Registered buffers (saved with the weights), declared for the type checker.
    mean: torch.Tensor
    scale: torch.Tensor
    temperature: torch.Tensor

    def __init__(self, n_features: int, hidden: int = 64) -> None:
        super().__init__()
        self.n_features = n_features
        self.hidden = hidden
        self.body = nn.Sequential(
            nn.Linear(n_features, hidden),
            nn.GELU(),
            nn.Linear(hidden, hidden),
            nn.GELU(),
            nn.Linear(hidden, len(RELATIONS)),
        )
        self.register_buffer("mean", torch.zeros(n_features))
        self.register_buffer("scale", torch.ones(n_features))
        self.register_buffer("temperature", torch.ones(()))

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        return self.body((features - self.mean) / self.scale) / self.temperature

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """(n, n_features) float32 -> (n, 4) probabilities in the order of ``RELATIONS``."""
        return torch.softmax(self.logits(features), dim=-1)


class FusedMatcherNet(nn.Module):
    """The learned media fusion: a text matcher, frozen, plus a media head whose logits are added
    only where the pair compared audio or an image on both sides. Without media the output is the
    text matcher's own, bit for bit, so a feed without media (every golden set) is decided exactly
    as before; the head sees the text features too, so it learns what the sound or the picture
    changes about what the text says (docs/media.md, "The learned fusion")."""

    mean: torch.Tensor
    scale: torch.Tensor

    def __init__(self, base: MatcherNet, feature_names: tuple[str, ...], hidden: int = 32) -> None:
        super().__init__()
        missing = [n for n in ("audio_compared", "image_compared") if n not in feature_names]
        if missing or len(feature_names) <= base.n_features:
            raise ValueError(f"a media head needs the base's features and the media ones (missing {missing})")
        self.base = base
        self.n_features = len(feature_names)
        self.hidden = hidden
        self._compared = [feature_names.index("audio_compared"), feature_names.index("image_compared")]
        out = nn.Linear(hidden, len(RELATIONS))
        # The head starts at zero: the fused model starts as the text matcher.
        nn.init.zeros_(out.weight)
        nn.init.zeros_(out.bias)
        self.head = nn.Sequential(nn.Linear(self.n_features, hidden), nn.GELU(), out)
        self.register_buffer("mean", torch.zeros(self.n_features))
        self.register_buffer("scale", torch.ones(self.n_features))

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        text = self.base.logits(features[:, : self.base.n_features])
        compared = features[:, self._compared].amax(dim=1, keepdim=True).clamp(0.0, 1.0)
        return text + compared * self.head((features - self.mean) / self.scale)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.logits(features), dim=-1)


@dataclass
class MatcherModel:
    net: MatcherNet | FusedMatcherNet
    feature_names: tuple[str, ...]
    thresholds: Thresholds
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def version(self) -> str:
        """Content-derived, so two trainings that give the same weights have the same version."""
        buffer = io.BytesIO()
        for name, tensor in sorted(self.net.state_dict().items()):
            buffer.write(name.encode())
            buffer.write(tensor.detach().cpu().numpy().tobytes())
        return "matcher-" + hashlib.sha1(buffer.getvalue()).hexdigest()[:10]

    def predict(self, features: np.ndarray) -> np.ndarray:
        """(n, n_features) -> (n, 4) float32 probabilities."""
        if len(features) == 0:
            return np.zeros((0, len(RELATIONS)), dtype=np.float32)
        with torch.inference_mode():
            return self.net(torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32))).numpy()

    def features(self, pairs: list[PairInput]) -> tuple[list[dict[str, float]], np.ndarray]:
        return pair_features(pairs, self.feature_names)

    def save(self, folder: Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        torch.save(self.net.state_dict(), folder / WEIGHTS_FILE)
        meta = {
            "version": self.version,
            "relations": list(RELATIONS),
            "feature_names": list(self.feature_names),
            "hidden": self.net.hidden,
            **(
                {"fusion": {"base_features": self.net.base.n_features, "base_hidden": self.net.base.hidden}}
                if isinstance(self.net, FusedMatcherNet)
                else {}
            ),
            "thresholds": {"merge": self.thresholds.merge, "link": self.thresholds.link},
            "metadata": self.metadata,
        }
        (folder / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, folder: Path) -> MatcherModel:
        folder = Path(folder)
        meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
        if tuple(meta["relations"]) != RELATIONS:
            raise ValueError(f"{folder}: model relations {meta['relations']} differ from {list(RELATIONS)}")
        names = tuple(meta["feature_names"])
        net: MatcherNet | FusedMatcherNet
        if "fusion" in meta:
            base = MatcherNet(int(meta["fusion"]["base_features"]), int(meta["fusion"]["base_hidden"]))
            net = FusedMatcherNet(base, names, int(meta["hidden"]))
        else:
            net = MatcherNet(len(names), int(meta["hidden"]))
        net.load_state_dict(torch.load(folder / WEIGHTS_FILE, weights_only=True))
        net.eval()
        thresholds = Thresholds(merge=float(meta["thresholds"]["merge"]), link=float(meta["thresholds"]["link"]))
        return cls(net, names, thresholds, dict(meta.get("metadata") or {}))


def pair_features(pairs: list[PairInput], names: tuple[str, ...]) -> tuple[list[dict[str, float]], np.ndarray]:
    """Each pair's signals (for the decision's explanation), its media similarities among them
    where it has any, and the model's feature matrix (a media feature the pair lacks is 0)."""
    signals = pair_signals_batch([(p.left, p.right) for p in pairs], [p.text_cosine for p in pairs])
    for s, p in zip(signals, pairs, strict=True):
        if p.media is not None:
            s.update(p.media)
    missing = [n for n in names if signals and n not in signals[0] and n not in MEDIA_FEATURE_NAMES]
    if missing:
        raise ValueError(f"the model needs features that pair_signals_batch no longer computes: {missing}")
    # Every pair has the text signals (checked on the first); only media ones may be absent (0).
    matrix = np.array([[s.get(n, 0.0) for n in names] for s in signals], dtype=np.float32)
    return signals, matrix.reshape(len(pairs), len(names))


def to_scores(signals: list[dict[str, float]], probabilities: np.ndarray) -> list[PairScore]:
    return [
        PairScore(
            probabilities=with_rule_evidence({r: float(p) for r, p in zip(RELATIONS, row, strict=True)}, s),
            signals=s,
        )
        for s, row in zip(signals, probabilities, strict=True)
    ]


def is_model_dir(folder: Path) -> bool:
    return (Path(folder) / META_FILE).exists() and (Path(folder) / WEIGHTS_FILE).exists()


def latest_version_dir(model_folder: Path) -> Path | None:
    """The highest numbered version folder holding a trained model (Triton's ``latest`` policy)."""
    folder = Path(model_folder)
    if not folder.is_dir():
        return None
    versions = sorted((int(p.name), p) for p in folder.iterdir() if p.name.isdigit() and is_model_dir(p))
    return versions[-1][1] if versions else None


class LocalPairScorer:
    """The ``PairScorer`` protocol over the in-process model: evaluation, tests, no Triton."""

    def __init__(self, model: MatcherModel) -> None:
        self._model = model
        self.model_version = model.version

    @property
    def model(self) -> MatcherModel:
        return self._model

    async def score(self, pairs: list[PairInput]) -> list[PairScore]:
        return self.score_now(pairs)

    def score_now(self, pairs: list[PairInput]) -> list[PairScore]:
        signals, matrix = self._model.features(pairs)
        return to_scores(signals, self._model.predict(matrix))


def load_local_scorer(model_dir: Path | None) -> tuple[LocalPairScorer, Thresholds] | None:
    """The in-process scorer and its thresholds from a model version folder (None: no model)."""
    if model_dir is None or not is_model_dir(model_dir):
        return None
    model = MatcherModel.load(model_dir)
    return LocalPairScorer(model), model.thresholds
