"""One Milvus connection for every collection adapter (the text index, the media index): the
client made on first use, the collections ensured once per connection, and the one retry loop,
so an outage looks the same, and is counted the same, whichever index meets it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from resolution.errors import DependencyUnavailable, with_backoff


class MilvusUnavailable(DependencyUnavailable):
    """Milvus did not answer within the retry budget."""

    dependency = "milvus"


# Strong: a search sees every write acknowledged before it, another worker's too (it waits for
# Milvus' time tick); Bounded: up to a few seconds stale, in milliseconds.
CONSISTENCY_LEVELS = ("Bounded", "Strong")


class MilvusConnection:
    """Base of the Milvus adapters: subclasses create their collections in ``_ensure``."""

    what = "Milvus"  # how a retry names the adapter in its log line

    def __init__(
        self,
        uri: str,
        token: str = "",
        retry_max_s: float = 30.0,
        on_retry: Callable[[str], None] | None = None,
        hnsw_ef: int = 64,
        call_timeout_s: float = 10.0,
        consistency: str = "Bounded",
    ) -> None:
        if consistency not in CONSISTENCY_LEVELS:
            raise ValueError(f"Milvus consistency must be one of {CONSISTENCY_LEVELS}, not {consistency!r}")
        self._uri = uri
        self._token = token
        self._retry_max_s = retry_max_s
        self._on_retry = on_retry
        self._hnsw_ef = hnsw_ef
        self._call_timeout_s = call_timeout_s
        self._consistency = consistency
        self._client: Any = None
        self._ready = False

    def _ensure(self, client: Any) -> None:
        raise NotImplementedError

    def _connect(self) -> Any:
        from pymilvus import MilvusClient

        if self._client is None:
            self._client = MilvusClient(uri=self._uri, token=self._token, timeout=10)
        if not self._ready:
            self._ensure(self._client)
            self._ready = True
        return self._client

    async def _call(self, what: str, fn: Callable[[Any], Any]) -> Any:
        async def attempt() -> Any:
            return await asyncio.to_thread(lambda: fn(self._connect()))

        async def reset() -> None:
            self._client = None
            self._ready = False

        # pymilvus retries a broken channel internally for a long time; bounding each call makes
        # an outage show up as counted retries instead of one silent hang.
        return await with_backoff(
            attempt,
            unavailable=MilvusUnavailable,
            what=f"{self.what} {what} at {self._uri}",
            retry_max_s=self._retry_max_s,
            on_retry=self._on_retry,
            reset=reset,
            call_timeout_s=self._call_timeout_s,
        )
