"""Triton python-backend model: all-MiniLM-L6-v2 on ONNX Runtime (mean pooled, L2-normalised).

The tritonserver of ``nvidia-pytriton`` has only the python backend, so ONNX Runtime runs inside
it. The graph is the project's own export (``inference.onnx_export``, built by ``resolver stack
fetch`` into the stack cache, or here on first load); texts are tokenised by the Rust
``tokenizers`` library. ``text_encoder_onnx`` (fp32) and ``text_encoder_onnx_int8`` differ only
in the ``precision`` parameter of their config.pbtxt. Requests in and responses out are
``inference.triton_backend.StringBatchModel``'s, as for every text model.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import triton_python_backend_utils as pb_utils  # type: ignore[import-not-found]

# The project's code comes from the checkout that holds this model repository, not from whatever
# checkout the virtualenv's editable install points at.
sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from inference.encoder_paths import EncoderPath, load_encoder
from inference.text_encoder import DEFAULT_CHUNK_SIZE
from inference.triton_backend import StringBatchModel, backend_threads
from settings import Settings


class TritonPythonModel(StringBatchModel):
    pb_utils = pb_utils
    inputs = ("TEXT",)
    output = "EMBEDDING"

    def load(self, args: dict[str, str], params: dict[str, str]) -> None:
        name = json.loads(args["model_config"])["name"]
        path = EncoderPath(name, params.get("runtime", "onnx"), params.get("precision", "fp32"))
        self._encoder = load_encoder(
            path,
            Settings.from_env().stack.cache_dir,
            threads=backend_threads(),
            max_seq_length=int(params.get("max_seq_length", "64")),
            chunk_size=int(params.get("chunk_size", str(DEFAULT_CHUNK_SIZE))),
            cache_size=int(params.get("cache_size", "0")),
        )
        # The first run allocates the session's buffers: pay it here, not in the first request.
        self._encoder.encode(["warm-up", "a warm-up text of a few more words by an artist"])

    def compute(self, columns: list[list[str]]) -> np.ndarray:
        # Dynamic batching hands several requests at once: they are encoded in one call.
        return self._encoder.encode(columns[0])
