"""The one Triton python-backend text model: every ``triton_models/text_encoder*`` folder serves it.

Each folder's ``1/model.py`` only names this class ``TritonPythonModel``; the folders differ in
their config.pbtxt ``parameters`` (``runtime``: torch or onnx; ``precision``; sequence length,
chunk and cache sizes), which pick one of ``inference.encoder_paths.ENCODER_PATHS``. So what the
bench and the choice by measurement run in-process is exactly what Triton serves.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from inference.encoder_paths import EncoderPath, load_encoder
from inference.text_encoder import DEFAULT_CHUNK_SIZE
from settings import Settings


class TritonTextEncoderModel:
    """all-MiniLM-L6-v2 embeddings (mean pooled, L2-normalised): UTF-8 TEXT in, 384-d EMBEDDING out."""

    def initialize(self, args: dict[str, str]) -> None:
        config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        path = EncoderPath(config["name"], params.get("runtime", "torch"), params.get("precision", "fp32"))
        self._encoder = load_encoder(
            path,
            Settings.from_env().stack.cache_dir,
            threads=int(os.environ.get("RESOLVER_TORCH_THREADS", "1")),
            max_seq_length=int(params.get("max_seq_length", "64")),
            chunk_size=int(params.get("chunk_size", str(DEFAULT_CHUNK_SIZE))),
            cache_size=int(params.get("cache_size", "0")),
        )
        # The first run allocates the runtime's buffers: pay it here, not in the first request.
        self._encoder.encode(["warm-up", "a warm-up text of a few more words by an artist"])

    def execute(self, requests: list[Any]) -> list[Any]:
        # Only importable inside tritonserver's python backend.
        import triton_python_backend_utils as pb_utils

        # Dynamic batching hands several requests at once: encode them in one call.
        texts: list[str] = []
        sizes: list[int] = []
        for request in requests:
            raw = pb_utils.get_input_tensor_by_name(request, "TEXT").as_numpy().reshape(-1)
            decoded = [t.decode("utf-8", "replace") if isinstance(t, bytes) else str(t) for t in raw]
            texts.extend(decoded)
            sizes.append(len(decoded))
        vectors = self._encoder.encode(texts)
        responses = []
        start = 0
        for size in sizes:
            out = pb_utils.Tensor("EMBEDDING", np.ascontiguousarray(vectors[start : start + size], dtype=np.float32))
            responses.append(pb_utils.InferenceResponse(output_tensors=[out]))
            start += size
        return responses
