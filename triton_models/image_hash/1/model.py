"""Triton python-backend model: the perceptual hash of ``media.image_hash`` over a batch of frames."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import triton_python_backend_utils as pb_utils  # type: ignore[import-not-found]

# The stub does not see PYTHONPATH; the repository that holds this model folder holds ``media``.
sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from media.image_hash import HASH_BITS, image_hash_bits


class TritonPythonModel:
    def execute(self, requests: list) -> list:
        responses = []
        for request in requests:
            images = pb_utils.get_input_tensor_by_name(request, "IMAGE").as_numpy()
            out = np.zeros((images.shape[0], HASH_BITS), dtype=np.float32)
            for i, image in enumerate(images):
                out[i] = image_hash_bits(np.ascontiguousarray(image))
            responses.append(pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor("HASH", out)]))
        return responses
