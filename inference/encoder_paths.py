"""Every way this project can run all-MiniLM-L6-v2, by the Triton model that serves it.

A path is a runtime (PyTorch or ONNX Runtime) and a precision; the same path runs in-process
(the bench's bare encoder, evaluation, the choice by measurement) and inside Triton (the model
folder of the same name in ``triton_models/``), so what is measured is what is served.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from inference.text_encoder import DEFAULT_CHUNK_SIZE, MiniLMEncoder, text_model_version


class SyncTextEncoder(Protocol):
    model_version: str

    def encode(self, texts: list[str], batch_size: int | None = None) -> np.ndarray: ...


@dataclass(frozen=True)
class EncoderPath:
    triton_model: str
    runtime: str  # "torch" | "onnx"
    precision: str  # "fp32" | "bf16" | "int8"

    @property
    def label(self) -> str:
        return f"{self.runtime}-{self.precision}"

    @property
    def model_version(self) -> str:
        """What decisions carry: the torch fp32 reference has no suffix."""
        return text_model_version(self.precision if self.runtime == "torch" else f"onnx-{self.precision}")

    @property
    def is_reference(self) -> bool:
        """fp32 in either runtime computes the reference vectors (cosine 1.0 to each other)."""
        return self.precision == "fp32"


ENCODER_PATHS: tuple[EncoderPath, ...] = (
    EncoderPath("text_encoder", "torch", "fp32"),
    EncoderPath("text_encoder_bf16", "torch", "bf16"),
    EncoderPath("text_encoder_int8", "torch", "int8"),
    EncoderPath("text_encoder_onnx", "onnx", "fp32"),
    EncoderPath("text_encoder_onnx_int8", "onnx", "int8"),
)
REFERENCE_PATH = ENCODER_PATHS[0]


def encoder_path(triton_model: str) -> EncoderPath:
    for path in ENCODER_PATHS:
        if path.triton_model == triton_model:
            return path
    known = ", ".join(p.triton_model for p in ENCODER_PATHS)
    raise ValueError(f"text model {triton_model!r} is not one of {known}")


def load_encoder(
    path: EncoderPath,
    cache_dir: Path,
    threads: int = 1,
    max_seq_length: int = 64,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    cache_size: int = 0,
) -> SyncTextEncoder:
    """The in-process encoder of a path; ONNX paths export their model into ``cache_dir`` once."""
    if path.runtime == "torch":
        return MiniLMEncoder(max_seq_length, threads, path.precision, chunk_size, cache_size)
    from inference.onnx_encoder import OnnxMiniLMEncoder
    from inference.onnx_export import ensure_onnx_models

    models = ensure_onnx_models(cache_dir)
    return OnnxMiniLMEncoder(models, path.precision, max_seq_length, threads, chunk_size, cache_size)


def cpu_description() -> tuple[str, list[str]]:
    """CPU model name and flags (Linux /proc/cpuinfo; the platform's name elsewhere)."""
    name: str = platform.processor() or platform.machine()
    flags: list[str] = []
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and name in ("", platform.machine(), platform.processor()):
                name = value.strip()
            elif key.strip() in ("flags", "Features") and not flags:
                flags = value.split()
    except OSError:
        pass
    return name, sorted(flags)
