"""all-MiniLM-L6-v2 with ONNX Runtime: the exported graph (``inference.onnx_export``), tokenised
by the Rust ``tokenizers`` library. Same interface and vectors as ``MiniLMEncoder``."""

from __future__ import annotations

import numpy as np

from inference.onnx_export import ONNX_INPUTS, OnnxModels
from inference.text_encoder import DEFAULT_CHUNK_SIZE, TEXT_DIM, EmbeddingCache, text_model_version

ONNX_PRECISIONS = ("fp32", "int8")


class OnnxMiniLMEncoder:
    """Mean-pooled, L2-normalised embeddings from one ONNX Runtime session (pooling is in the graph)."""

    def __init__(
        self,
        models: OnnxModels,
        precision: str = "fp32",
        max_seq_length: int = 64,
        threads: int = 1,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        cache_size: int = 0,
    ) -> None:
        if precision not in ONNX_PRECISIONS:
            raise ValueError(f"onnx precision {precision!r} is not one of {', '.join(ONNX_PRECISIONS)}")
        import onnxruntime as ort
        from tokenizers import Tokenizer

        path = models.path(precision)
        if not path.exists():
            raise FileNotFoundError(f"{path}: not exported; `resolver stack fetch` builds it")
        options = ort.SessionOptions()
        # Two cores shared with the worker, Kafka and Milvus: one thread per operator and no
        # parallel branches measured fastest (docs/performance.md), as for torch.
        options.intra_op_num_threads = max(1, threads)
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self._tokenizer = Tokenizer.from_file(str(models.tokenizer))
        self._tokenizer.enable_truncation(max_length=max_seq_length)
        self._tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        self._chunk_size = max(1, chunk_size)
        self.precision = precision
        self.model_version = text_model_version(f"onnx-{precision}")
        self.cache = EmbeddingCache(cache_size)

    def encode(self, texts: list[str], batch_size: int | None = None) -> np.ndarray:
        return self.cache.encode(texts, lambda unique: self._forward(unique, batch_size or self._chunk_size))

    def _forward(self, texts: list[str], chunk: int) -> np.ndarray:
        out = np.zeros((len(texts), TEXT_DIM), dtype=np.float32)
        # Sorting by length keeps padding small inside each chunk.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(order), chunk):
            idx = order[start : start + chunk]
            encodings = self._tokenizer.encode_batch([texts[i] for i in idx])
            feeds = {
                "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
                "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
                "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
            }
            (vectors,) = self._session.run(["embedding"], {name: feeds[name] for name in ONNX_INPUTS})
            out[idx] = vectors
        return out
