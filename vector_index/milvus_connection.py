"""One Milvus connection for every collection adapter (the text index, the media index): the
client made on first use, the collections ensured once per connection, and the one retry loop,
so an outage looks the same, and is counted the same, whichever index meets it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from resolution.errors import DependencyUnavailable, with_backoff
from settings import WorkerSettings


class MilvusUnavailable(DependencyUnavailable):
    """Milvus did not answer within the retry budget."""

    dependency = "milvus"


# Strong: a search sees every write acknowledged before it, another worker's too (it waits for
# Milvus' time tick); Bounded: up to a few seconds stale, in milliseconds.
CONSISTENCY_LEVELS = ("Bounded", "Strong")

# pymilvus retries a broken channel internally for a long time; bounding each call makes an
# outage show up as counted retries instead of one silent hang.
CALL_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class MilvusParams:
    """Where Milvus is and how every adapter talks to it; built from the worker's settings by
    ``of`` (the one place their defaults are read), so the text index, the media index and the
    tools that drop collections cannot drift apart."""

    uri: str
    token: str = field(repr=False)
    retry_max_s: float
    hnsw_ef: int
    consistency: str = "Bounded"
    call_timeout_s: float = CALL_TIMEOUT_S

    def __post_init__(self) -> None:
        if self.consistency not in CONSISTENCY_LEVELS:
            raise ValueError(f"Milvus consistency must be one of {CONSISTENCY_LEVELS}, not {self.consistency!r}")

    @classmethod
    def of(cls, worker: WorkerSettings, consistency: str = "Bounded", retry_max_s: float | None = None) -> MilvusParams:
        """The worker's Milvus (``RESOLVER_WORKER_MILVUS_*``, its retry budget unless a tool gives
        its own: a drop before a benchmark should fail fast, not wait out an outage)."""
        return cls(
            uri=worker.milvus_uri,
            token=worker.milvus_token,
            retry_max_s=worker.retry_max_s if retry_max_s is None else retry_max_s,
            hnsw_ef=worker.milvus_hnsw_ef,
            consistency=consistency,
        )


class MilvusConnection:
    """Base of the Milvus adapters: subclasses create their collections in ``_ensure``."""

    what = "Milvus"  # how a retry names the adapter in its log line

    def __init__(self, params: MilvusParams, on_retry: Callable[[str], None] | None = None) -> None:
        self._params = params
        self._on_retry = on_retry
        self._client: Any = None
        self._ready = False

    def _ensure(self, client: Any) -> None:
        raise NotImplementedError

    def _new_client(self) -> Any:
        """A client without the collections ensured (``drop`` must not create what it removes)."""
        from pymilvus import MilvusClient

        return MilvusClient(uri=self._params.uri, token=self._params.token, timeout=self._params.call_timeout_s)

    def _connect(self) -> Any:
        if self._client is None:
            self._client = self._new_client()
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

        return await with_backoff(
            attempt,
            unavailable=MilvusUnavailable,
            what=f"{self.what} {what} at {self._params.uri}",
            retry_max_s=self._params.retry_max_s,
            on_retry=self._on_retry,
            reset=reset,
            call_timeout_s=self._params.call_timeout_s,
        )
