"""Triton python-backend model: the chroma embedding of ``media.chroma`` over a batch of clips."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import torch
import triton_python_backend_utils as pb_utils  # type: ignore[import-not-found]

# The stub does not see PYTHONPATH; the repository that holds this model folder holds ``media``.
sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from media.chroma import CHROMA_DIM, chroma_embedding


class TritonPythonModel:
    def initialize(self, args: dict[str, str]) -> None:
        torch.set_num_threads(max(1, int(os.environ.get("RESOLVER_TORCH_THREADS", "1"))))

    def execute(self, requests: list) -> list:
        responses = []
        for request in requests:
            pcm = pb_utils.get_input_tensor_by_name(request, "PCM").as_numpy()
            lengths = pb_utils.get_input_tensor_by_name(request, "SAMPLES").as_numpy().reshape(-1)
            out = np.zeros((pcm.shape[0], CHROMA_DIM), dtype=np.float32)
            for i, n in enumerate(lengths):
                n = int(min(max(n, 0), pcm.shape[1]))
                if n > 0:
                    out[i] = chroma_embedding(pcm[i, :n])
            responses.append(pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor("CHROMA", out)]))
        return responses
