"""The one Triton python-backend text model: every ``triton_models/text_encoder*`` folder serves it.

Each folder's ``1/model.py`` only names this class ``TritonPythonModel``; the folders differ in
their config.pbtxt ``parameters`` (``runtime``: torch or onnx; ``precision``; sequence length,
chunk and cache sizes), which pick one of ``inference.encoder_paths.ENCODER_PATHS``. So what the
bench and the choice by measurement run in-process is exactly what Triton serves.
"""

from __future__ import annotations

import json

import numpy as np

from inference.encoder_paths import EncoderPath, load_encoder
from inference.text_encoder import DEFAULT_CHUNK_SIZE
from inference.triton_backend import StringBatchModel, backend_threads
from settings import Settings


class TritonTextEncoderModel(StringBatchModel):
    """all-MiniLM-L6-v2 embeddings (mean pooled, L2-normalised): UTF-8 TEXT in, 384-d EMBEDDING out."""

    inputs = ("TEXT",)
    output = "EMBEDDING"

    def load(self, args: dict[str, str], params: dict[str, str]) -> None:
        name = json.loads(args["model_config"])["name"]
        path = EncoderPath(name, params.get("runtime", "torch"), params.get("precision", "fp32"))
        self._encoder = load_encoder(
            path,
            Settings.from_env().stack.cache_dir,
            threads=backend_threads(),
            max_seq_length=int(params.get("max_seq_length", "64")),
            chunk_size=int(params.get("chunk_size", str(DEFAULT_CHUNK_SIZE))),
            cache_size=int(params.get("cache_size", "0")),
        )
        # The first run allocates the runtime's buffers: pay it here, not in the first request.
        self._encoder.encode(["warm-up", "a warm-up text of a few more words by an artist"])

    def compute(self, columns: list[list[str]]) -> np.ndarray:
        # Dynamic batching hands several requests at once: they are encoded in one call.
        return self._encoder.encode(columns[0])
