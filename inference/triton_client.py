"""The one place that talks to Triton: async gRPC calls, retried with backoff."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import numpy as np
import tritonclient.grpc.aio as grpcclient
from tritonclient.utils import InferenceServerException

from inference.cross_encoder import CrossEncoderVersion, pair_texts
from inference.matcher_model import MatcherModel, to_scores
from inference.model_repository import SERVING_KEY
from inference.text_encoder import TEXT_DIM, TEXT_MODEL_VERSION, EmbeddingCache, text_model_version
from resolution.errors import DependencyUnavailable, with_backoff
from resolution.matcher import RELATIONS, PairInput, PairScore

log = logging.getLogger(__name__)
T = TypeVar("T")


class TritonUnavailable(DependencyUnavailable):
    """Triton did not answer within the retry budget."""

    dependency = "triton"


class TritonConnection:
    """What every client below shares: one lazily opened gRPC channel to Triton, the readiness
    check of its model, and the one retry loop (``retried``) each call goes through."""

    def __init__(
        self,
        url: str,
        model: str,
        retry_max_s: float,
        on_retry: Callable[[str], None] | None,
        credentials_header: dict[str, str] | None = None,
    ) -> None:
        self._url = url
        self._model = model
        self._retry_max_s = retry_max_s
        self._on_retry = on_retry
        self._headers = credentials_header or {}
        self._client: grpcclient.InferenceServerClient | None = None

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

    async def _retry(self, call: Callable[[], Awaitable[T]]) -> T:
        return await retried(call, self._url, self._retry_max_s, self._on_retry, self._reset)

    async def _reset(self) -> None:
        """After a failed call: the next one opens a new channel."""
        await self.close()


class TritonTextEncoder(TritonConnection):
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
        super().__init__(url, model, retry_max_s, on_retry, credentials_header)
        # Re-deliveries repeat texts: a bounded LRU skips Triton for them. Its vectors belong to
        # one model version; when the served version changes, it starts empty.
        self.cache = EmbeddingCache(cache_size)
        self._cache_version = ""
        self.model_version = TEXT_MODEL_VERSION
        self._version_known = False

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


class TritonModelControl:
    """Loads and unloads models of a Triton running with explicit model control (synchronous:
    the command line's ``promote``, ``rollback`` and ``shadow``)."""

    def __init__(self, url: str, timeout_s: float = 120.0) -> None:
        import tritonclient.grpc as syncclient

        self._client = syncclient.InferenceServerClient(url=url)
        self._timeout_s = timeout_s

    def load(self, model: str) -> None:
        """(Re)loads ``model`` from the repository: the versions its config lists are loaded,
        the others unloaded; Triton keeps serving the old ones until the new ones are ready."""
        self._client.load_model(model, client_timeout=self._timeout_s)

    def ready_versions(self, model: str, versions: list[int]) -> dict[int, bool]:
        return {v: bool(self._client.is_model_ready(model, str(v))) for v in versions}

    def serving_version(self, model: str) -> int | None:
        config = self._client.get_model_config(model, as_json=True).get("config", {})
        raw = config.get("parameters", {}).get(SERVING_KEY, {}).get("string_value", "")
        return int(raw) if str(raw).strip() else None

    def infer(self, model: str, version: int, features: np.ndarray) -> np.ndarray:
        import tritonclient.grpc as syncclient

        tensor = syncclient.InferInput("FEATURES", list(features.shape), "FP32")
        tensor.set_data_from_numpy(np.ascontiguousarray(features, dtype=np.float32))
        result = self._client.infer(model, [tensor], model_version=str(version))
        return result.as_numpy("PROBABILITIES")

    def close(self) -> None:
        self._client.close()


class TritonPairScorer(TritonConnection):
    """The ``PairScorer`` protocol over the Triton ``matcher`` model. The comparison features are
    computed here (they also explain each decision); the probabilities come from one Triton call
    per batch (split only above the model's ``max_batch_size``), retried like the text encoder.

    ``model`` is the local copy of the served version: it names the features, in order, and the
    model version that decisions carry. With ``load_version``, the scorer follows promotions:
    before a batch (at most every ``refresh_s``) it asks Triton which version serves (the
    ``serving_version`` parameter of the model's config, see ``inference.model_repository``),
    loads that version's local copy, and pins its requests to that version; ``pinned`` fixes the
    version instead (a shadow worker). A request to a version unloaded meanwhile fails, is
    retried, and the retry asks again, so the batch is decided once, by one version.
    ``on_version`` hears each change (the policy takes the version's thresholds).
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
        load_version: Callable[[int], MatcherModel] | None = None,
        version: int | None = None,
        pinned: bool = False,
        refresh_s: float = 2.0,
        on_version: Callable[[int, MatcherModel], None] | None = None,
    ) -> None:
        super().__init__(url, triton_model, retry_max_s, on_retry, credentials_header)
        self._matcher = model
        self._max_batch_size = max_batch_size
        self.model_version = model.version
        self._load_version = load_version
        self.version = version  # the Triton version number requests go to (None: Triton's choice)
        self._pinned = pinned
        self._refresh_s = refresh_s
        self._checked_at = float("-inf")
        self._on_version = on_version

    async def _follow_serving(self, force: bool = False) -> None:
        if self._load_version is None or self._pinned:
            return
        now = time.monotonic()
        if not force and now - self._checked_at < self._refresh_s:
            return
        self._checked_at = now
        try:
            config = await self._connect().get_model_config(self._model, as_json=True, headers=self._headers or None)
        except (InferenceServerException, OSError):
            return  # the infer call that follows retries (and reports) the outage
        raw = config.get("config", {}).get("parameters", {}).get(SERVING_KEY, {}).get("string_value", "")
        if not str(raw).strip() or int(raw) == self.version:
            return
        version = int(raw)
        model = self._load_version(version)
        log.warning("matcher: serving version %s -> %s (%s)", self.version, version, model.version)
        self._matcher, self.version, self.model_version = model, version, model.version
        if self._on_version is not None:
            self._on_version(version, model)

    @property
    def model(self) -> MatcherModel:
        """The local copy of the version requests go to."""
        return self._matcher

    @property
    def feature_names(self) -> tuple[str, ...]:
        """The features, in order, of the version requests go to."""
        return self._matcher.feature_names

    async def _reset(self) -> None:
        await super()._reset()
        self._checked_at = float("-inf")  # and asks Triton which version serves

    async def probabilities(self, features: np.ndarray) -> np.ndarray:
        """(n, n_features) -> (n, 4) probabilities, in the order of ``RELATIONS``."""
        result = await self._probabilities(features, self.version)
        assert result is not None  # without a version watch the version never changes
        return result

    async def _probabilities(self, features: np.ndarray, version: int | None) -> np.ndarray | None:
        """None when the serving version changed while retrying: the caller scores again."""
        chunks = []
        for start in range(0, len(features), self._max_batch_size):
            part = np.ascontiguousarray(features[start : start + self._max_batch_size], dtype=np.float32)

            async def call(part: np.ndarray = part) -> np.ndarray | None:
                await self._follow_serving()  # after a failure (reset), asks Triton again
                if self.version != version:
                    return None
                tensor = grpcclient.InferInput("FEATURES", list(part.shape), "FP32")
                tensor.set_data_from_numpy(part)
                result = await self._connect().infer(
                    self._model,
                    [tensor],
                    model_version="" if version is None else str(version),
                    outputs=[grpcclient.InferRequestedOutput("PROBABILITIES")],
                    headers=self._headers or None,
                )
                return result.as_numpy("PROBABILITIES").astype(np.float32)

            chunk = await self._retry(call)
            if chunk is None:
                return None
            chunks.append(chunk)
        return np.concatenate(chunks) if chunks else np.zeros((0, len(RELATIONS)), dtype=np.float32)

    async def score(self, pairs: list[PairInput]) -> list[PairScore]:
        if not pairs:
            return []
        await self._follow_serving()
        while True:
            matcher, version = self._matcher, self.version
            signals, features = matcher.features(pairs)
            probabilities = await self._probabilities(features, version)
            if probabilities is not None:
                return to_scores(signals, probabilities)
            # A retry found a new serving version: the whole call again, all with that one.


class TritonCrossEncoder(TritonConnection):
    """The ``PairRefiner`` protocol over the Triton ``cross_encoder`` model: both records
    serialised here (``inference.cross_encoder.record_text``), p(same) from one Triton call per
    batch (split at the model's ``max_batch_size``), retried like the text encoder. ``model``
    describes the version requests go to (pinned: a new cross-encoder version serves after a
    worker restart): its version id and decision threshold; the weights stay in Triton."""

    def __init__(
        self,
        url: str,
        model: CrossEncoderVersion,
        triton_model: str = "cross_encoder",
        version: int | None = None,
        max_batch_size: int = 64,
        retry_max_s: float = 30.0,
        on_retry: Callable[[str], None] | None = None,
        credentials_header: dict[str, str] | None = None,
    ) -> None:
        super().__init__(url, triton_model, retry_max_s, on_retry, credentials_header)
        self.version = version
        self._max_batch_size = max_batch_size
        self.model_version = model.version
        self.decision_threshold = model.decision_threshold

    async def same_probability(self, pairs: list[PairInput]) -> np.ndarray:
        lefts, rights = pair_texts(pairs)
        return await self.texts_probability(lefts, rights)

    async def texts_probability(self, lefts: list[str], rights: list[str]) -> np.ndarray:
        chunks = []
        for start in range(0, len(lefts), self._max_batch_size):
            part = [
                np.array([[t.encode("utf-8")] for t in side[start : start + self._max_batch_size]], dtype=np.object_)
                for side in (lefts, rights)
            ]

            async def call(part: list[np.ndarray] = part) -> np.ndarray:
                inputs = []
                for name, data in zip(("LEFT", "RIGHT"), part, strict=True):
                    tensor = grpcclient.InferInput(name, list(data.shape), "BYTES")
                    tensor.set_data_from_numpy(data)
                    inputs.append(tensor)
                result = await self._connect().infer(
                    self._model,
                    inputs,
                    model_version="" if self.version is None else str(self.version),
                    outputs=[grpcclient.InferRequestedOutput("P_SAME")],
                    headers=self._headers or None,
                )
                return result.as_numpy("P_SAME").astype(np.float32).reshape(-1)

            chunks.append(await self._retry(call))
        return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.float32)


class TritonMediaEncoder(TritonConnection):
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
        # ready() checks the audio model; the image model loads with it.
        super().__init__(url, audio_model, retry_max_s, on_retry)
        self._audio_model = audio_model
        self._image_model = image_model

    async def _infer(self, model: str, inputs: list[tuple[str, np.ndarray, str]], output: str) -> np.ndarray:
        async def call() -> np.ndarray:
            tensors = []
            for name, data, dtype in inputs:
                tensor = grpcclient.InferInput(name, list(data.shape), dtype)
                tensor.set_data_from_numpy(data)
                tensors.append(tensor)
            result = await self._connect().infer(model, tensors, outputs=[grpcclient.InferRequestedOutput(output)])
            return result.as_numpy(output).astype(np.float32)

        return await self._retry(call)

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
