"""Triton python-backend model `text_encoder_onnx`: all-MiniLM-L6-v2 text embeddings.

The model is ``inference.triton_text_model.TritonTextEncoderModel``, shared by every text_encoder*
folder; this folder's config.pbtxt parameters pick its runtime and precision.
"""

import sys
from pathlib import Path

# The project's code comes from the checkout that holds this model repository, not from whatever
# checkout the virtualenv's editable install points at.
sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from inference.triton_text_model import TritonTextEncoderModel as TritonPythonModel

__all__ = ["TritonPythonModel"]
