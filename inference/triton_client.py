"""The one place that talks to Triton: async gRPC calls, retried with backoff."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import numpy as np
import tritonclient.grpc.aio as grpcclient
from tritonclient.utils import InferenceServerException

from inference.text_encoder import TEXT_MODEL_VERSION
from resolution.errors import DependencyUnavailable

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
    ) -> None:
        self._url = url
        self._model = model
        self._retry_max_s = retry_max_s
        self._on_retry = on_retry
        self._headers = credentials_header or {}
        self._client: grpcclient.InferenceServerClient | None = None
        self.model_version = TEXT_MODEL_VERSION

    def _connect(self) -> grpcclient.InferenceServerClient:
        if self._client is None:
            self._client = grpcclient.InferenceServerClient(url=self._url)
        return self._client

    async def encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, 384), dtype=np.float32)

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

        return await self._retry(call)

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
        delay = 0.2
        waited = 0.0
        while True:
            try:
                return await call()
            except (InferenceServerException, OSError) as exc:
                if waited >= self._retry_max_s:
                    raise TritonUnavailable(f"Triton at {self._url}: {exc}") from exc
                if self._on_retry is not None:
                    self._on_retry("triton")
                log.warning("Triton call failed (%s); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                waited += delay
                delay = min(delay * 2, 5.0)
                # A restarted server needs a fresh channel.
                await self.close()
