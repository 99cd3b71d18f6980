"""What every text model of the Triton repository shares: string tensors in, one array out.

A python-backend model (``inference.triton_text_model.TritonTextEncoderModel``, the cross-encoder's
``triton_models/cross_encoder/1/model.py``) subclasses ``StringBatchModel``, names its inputs and
its output, builds its model in ``load`` and computes in ``compute``; decoding the UTF-8 tensors
of the requests that dynamic batching hands over together, computing them in one call and
cutting the result back into one response per request happen here once. Triton's
``triton_python_backend_utils`` exists only inside Triton, so it is imported when a request
comes, and this module imports (and is type-checked) anywhere.
"""

from __future__ import annotations

import json
import os
from typing import Any, ClassVar

import numpy as np


def decode_strings(raw: np.ndarray) -> list[str]:
    """A TYPE_STRING tensor's values (bytes objects) as text; undecodable bytes replaced."""
    return [t.decode("utf-8", "replace") if isinstance(t, bytes) else str(t) for t in raw.reshape(-1)]


def model_parameters(args: dict[str, str]) -> dict[str, str]:
    """The ``parameters`` of the model's config.pbtxt, as strings."""
    config = json.loads(args["model_config"])
    return {k: v["string_value"] for k, v in config.get("parameters", {}).items()}


def backend_threads() -> int:
    """Torch / ONNX Runtime threads per model instance (the stack sets RESOLVER_TORCH_THREADS)."""
    return max(1, int(os.environ.get("RESOLVER_TORCH_THREADS", "1")))


class StringBatchModel:
    """Base of a ``TritonPythonModel`` over string inputs of shape [batch, 1]."""

    inputs: ClassVar[tuple[str, ...]] = ("TEXT",)
    output: ClassVar[str] = ""

    def initialize(self, args: dict[str, str]) -> None:
        self.load(args, model_parameters(args))

    def load(self, args: dict[str, str], params: dict[str, str]) -> None:
        raise NotImplementedError

    def compute(self, columns: list[list[str]]) -> np.ndarray:
        """One list of strings per input name (equal lengths) -> an array with one row each."""
        raise NotImplementedError

    def execute(self, requests: list[Any]) -> list[Any]:
        # Only importable inside tritonserver's python backend.
        import triton_python_backend_utils as pb

        columns: list[list[str]] = [[] for _ in self.inputs]
        sizes: list[int] = []
        for request in requests:
            values = [decode_strings(pb.get_input_tensor_by_name(request, name).as_numpy()) for name in self.inputs]
            if len({len(v) for v in values}) > 1:
                raise ValueError(f"inputs {self.inputs} of one request differ in length")
            for column, v in zip(columns, values, strict=True):
                column.extend(v)
            sizes.append(len(values[0]))
        result = self.compute(columns)
        responses = []
        start = 0
        for size in sizes:
            part = np.ascontiguousarray(result[start : start + size], dtype=np.float32)
            responses.append(pb.InferenceResponse(output_tensors=[pb.Tensor(self.output, part)]))
            start += size
        return responses
