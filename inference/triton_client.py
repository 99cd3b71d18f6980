"""The one place that talks to Triton: async gRPC calls, retried with backoff."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import numpy as np
import tritonclient.grpc.aio as grpcclient
from tritonclient.utils import InferenceServerException

from inference.matcher_model import MatcherModel, to_scores
from inference.text_encoder import TEXT_DIM, TEXT_MODEL_VERSION, EmbeddingCache, text_model_version
from resolution.errors import DependencyUnavailable, with_backoff
from resolution.matcher import RELATIONS, PairInput, PairScore

log = logging.getLogger(__name__)
T = TypeVar("T")


class TritonUnavailable(DependencyUnavailable):
    """Triton did not answer within the retry budget."""

    dependency = "triton"


class TritonTextEncoder:
    """Texts in, (n, 384) L2-normalised float32 vectors out, one request per batch."""

    def __init__(
        self,
        url: str,
        model: str = "text_encoder",
        retry_max_s: float = 30.0,
        on_retry: Callable[[str], None] | None = None,
        credentials_header: dict[str, str] | None = None,
        cache_size: int = 0,
    ) -> None:
        self._url = url
        self._model = model
        # Re-deliveries repeat texts: a bounded LRU skips Triton for them. Its vectors belong to
        # one model version; when the served version changes, it starts empty.
        self.cache = EmbeddingCache(cache_size)
        self._cache_version = ""
        self._retry_max_s = retry_max_s
        self._on_retry = on_retry
        self._headers = credentials_header or {}
        self._client: grpcclient.InferenceServerClient | None = None
        self.model_version = TEXT_MODEL_VERSION
        self._version_known = False

    def _connect(self) -> grpcclient.InferenceServerClient:
        if self._client is None:
            self._client = grpcclient.InferenceServerClient(url=self._url)
        return self._client

    async def encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, TEXT_DIM), dtype=np.float32)
        if self.cache.capacity <= 0:
            return await self._encode(texts)
        out = np.zeros((len(texts), TEXT_DIM), dtype=np.float32)
        todo: dict[str, list[int]] = {}
        for i, text in enumerate(texts):
            cached = self.cache.get(text)
            if cached is None:
                todo.setdefault(text, []).append(i)
            else:
                out[i] = cached
        if todo:
            unique = list(todo)
            vectors = await self._encode(unique)
            if self._cache_version != self.model_version:
                self.cache.clear()
                self._cache_version = self.model_version
            for text, vector in zip(unique, vectors, strict=True):
                out[todo[text]] = vector
                self.cache.put(text, vector.copy())  # a copy: a row view would keep its whole batch alive
        return out

    async def _encode(self, texts: list[str]) -> np.ndarray:
        async def call() -> np.ndarray:
            data = np.array([[t.encode("utf-8")] for t in texts], dtype=np.object_)
            tensor = grpcclient.InferInput("TEXT", list(data.shape), "BYTES")
            tensor.set_data_from_numpy(data)
            result = await self._connect().infer(
                self._model,
                [tensor],
                outputs=[grpcclient.InferRequestedOutput("EMBEDDING")],
                headers=self._headers or None,
            )
            return result.as_numpy("EMBEDDING").astype(np.float32)

        vectors = await self._retry(call)
        if not self._version_known:
            await self._learn_version()
        return vectors

    async def _learn_version(self) -> None:
        """Decisions name the runtime and precision the served model runs at (its ``runtime`` and
        ``precision`` parameters; torch and fp32 when absent)."""
        try:
            config = await self._connect().get_model_config(self._model, as_json=True, headers=self._headers or None)
        except (InferenceServerException, OSError):
            return
        params = config.get("config", {}).get("parameters", {})
        precision = params.get("precision", {}).get("string_value", "fp32")
        runtime = params.get("runtime", {}).get("string_value", "torch")
        self.model_version = text_model_version(precision if runtime == "torch" else f"{runtime}-{precision}")
        self._version_known = True

    async def ready(self) -> bool:
        try:
            return bool(await self._connect().is_model_ready(self._model, headers=self._headers or None))
        except (InferenceServerException, OSError):
            return False

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def _retry(self, call: Callable[[], Awaitable[T]]) -> T:
        return await retried(call, self._url, self._retry_max_s, self._on_retry, self.close)


async def retried(
    call: Callable[[], Awaitable[T]],
    url: str,
    retry_max_s: float,
    on_retry: Callable[[str], None] | None,
    reset: Callable[[], Awaitable[None]],
) -> T:
    """Every Triton call goes through here: backoff up to ``retry_max_s``, then ``TritonUnavailable``."""
    return await with_backoff(
        call,
        unavailable=TritonUnavailable,
        what=f"Triton at {url}",
        retry_max_s=retry_max_s,
        retryable=(InferenceServerException, OSError),
        on_retry=on_retry,
        reset=reset,
    )


class TritonPairScorer:
    """The ``PairScorer`` protocol over the Triton ``matcher`` model. The comparison features are
    computed here (they also explain each decision); the probabilities come from one Triton call
    per batch (split only above the model's ``max_batch_size``), retried like the text encoder.

    ``model`` is the local copy of the served version: it names the features, in order, and the
    model version that decisions carry.
    """

    def __init__(
        self,
        url: str,
        model: MatcherModel,
        triton_model: str = "matcher",
        max_batch_size: int = 4096,
        retry_max_s: float = 30.0,
        on_retry: Callable[[str], None] | None = None,
        credentials_header: dict[str, str] | None = None,
    ) -> None:
        self._url = url
        self._model = triton_model
        self._matcher = model
        self._max_batch_size = max_batch_size
        self._retry_max_s = retry_max_s
        self._on_retry = on_retry
        self._headers = credentials_header or {}
        self._client: grpcclient.InferenceServerClient | None = None
        self.model_version = model.version
        self.feature_names = model.feature_names

    def _connect(self) -> grpcclient.InferenceServerClient:
        if self._client is None:
            self._client = grpcclient.InferenceServerClient(url=self._url)
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def ready(self) -> bool:
        try:
            return bool(await self._connect().is_model_ready(self._model, headers=self._headers or None))
        except (InferenceServerException, OSError):
            return False

    async def probabilities(self, features: np.ndarray) -> np.ndarray:
        """(n, n_features) -> (n, 4) probabilities, in the order of ``RELATIONS``."""
        chunks = []
        for start in range(0, len(features), self._max_batch_size):
            part = np.ascontiguousarray(features[start : start + self._max_batch_size], dtype=np.float32)

            async def call(part: np.ndarray = part) -> np.ndarray:
                tensor = grpcclient.InferInput("FEATURES", list(part.shape), "FP32")
                tensor.set_data_from_numpy(part)
                result = await self._connect().infer(
                    self._model,
                    [tensor],
                    outputs=[grpcclient.InferRequestedOutput("PROBABILITIES")],
                    headers=self._headers or None,
                )
                return result.as_numpy("PROBABILITIES").astype(np.float32)

            chunks.append(await retried(call, self._url, self._retry_max_s, self._on_retry, self.close))
        return np.concatenate(chunks) if chunks else np.zeros((0, len(RELATIONS)), dtype=np.float32)

    async def score(self, pairs: list[PairInput]) -> list[PairScore]:
        if not pairs:
            return []
        signals, features = self._matcher.features(pairs)
        return to_scores(signals, await self.probabilities(features))


class TritonMediaEncoder:
    """Audio clips to chroma embeddings (``audio_chroma``) and frames to hash bits (``image_hash``),
    one request per batch (split at the models' ``max_batch_size``), retried like the text encoder."""

    def __init__(
        self,
        url: str,
        audio_model: str = "audio_chroma",
        image_model: str = "image_hash",
        retry_max_s: float = 30.0,
        on_retry: Callable[[str], None] | None = None,
    ) -> None:
        self._url = url
        self._audio_model = audio_model
        self._image_model = image_model
        self._retry_max_s = retry_max_s
        self._on_retry = on_retry
        self._client: grpcclient.InferenceServerClient | None = None

    def _connect(self) -> grpcclient.InferenceServerClient:
        if self._client is None:
            self._client = grpcclient.InferenceServerClient(url=self._url)
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def _infer(self, model: str, inputs: list[tuple[str, np.ndarray, str]], output: str) -> np.ndarray:
        async def call() -> np.ndarray:
            tensors = []
            for name, data, dtype in inputs:
                tensor = grpcclient.InferInput(name, list(data.shape), dtype)
                tensor.set_data_from_numpy(data)
                tensors.append(tensor)
            result = await self._connect().infer(model, tensors, outputs=[grpcclient.InferRequestedOutput(output)])
            return result.as_numpy(output).astype(np.float32)

        return await retried(call, self._url, self._retry_max_s, self._on_retry, self.close)

    async def chroma(self, clips: list[np.ndarray], max_batch: int = 16) -> np.ndarray:
        """(n, 192) chroma embeddings of mono float32 PCM clips at 11025 Hz."""
        out = []
        for start in range(0, len(clips), max_batch):
            part = clips[start : start + max_batch]
            longest = max(len(c) for c in part)
            pcm = np.zeros((len(part), longest), dtype=np.float32)
            for i, clip in enumerate(part):
                pcm[i, : len(clip)] = clip
            lengths = np.array([[len(c)] for c in part], dtype=np.int32)
            out.append(
                await self._infer(self._audio_model, [("PCM", pcm, "FP32"), ("SAMPLES", lengths, "INT32")], "CHROMA")
            )
        return np.concatenate(out) if out else np.zeros((0, 192), dtype=np.float32)

    async def image_hashes(self, images: list[np.ndarray], max_batch: int = 64) -> np.ndarray:
        """(n, 64) hash bits (0/1) of (256, 256, 3) uint8 frames."""
        out = []
        for start in range(0, len(images), max_batch):
            batch = np.ascontiguousarray(np.stack(images[start : start + max_batch]), dtype=np.uint8)
            out.append(await self._infer(self._image_model, [("IMAGE", batch, "UINT8")], "HASH"))
        return np.concatenate(out) if out else np.zeros((0, 64), dtype=np.float32)
