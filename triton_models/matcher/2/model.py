"""Triton python-backend model: the learned matcher (``inference.matcher_model.MatcherModel``).

The weights and ``matcher.json`` sit next to this file, in the version folder, as
``resolver train --out triton_models/matcher/<version>`` writes them.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import triton_python_backend_utils as pb_utils  # type: ignore[import-not-found]

from inference.matcher_model import MatcherModel


class TritonPythonModel:
    def initialize(self, args: dict[str, str]) -> None:
        torch.set_num_threads(max(1, int(os.environ.get("RESOLVER_TORCH_THREADS", "1"))))
        folder = Path(args["model_repository"]) / args["model_version"]
        self._model = MatcherModel.load(folder)

    def execute(self, requests: list) -> list:
        responses = []
        for request in requests:
            features = pb_utils.get_input_tensor_by_name(request, "FEATURES").as_numpy()
            if features.shape[1] != len(self._model.feature_names):
                error = pb_utils.TritonError(
                    f"expected {len(self._model.feature_names)} features, got {features.shape[1]}"
                )
                responses.append(pb_utils.InferenceResponse(output_tensors=[], error=error))
                continue
            probabilities = self._model.predict(features.astype(np.float32))
            out = pb_utils.Tensor("PROBABILITIES", np.ascontiguousarray(probabilities, dtype=np.float32))
            responses.append(pb_utils.InferenceResponse(output_tensors=[out]))
        return responses
