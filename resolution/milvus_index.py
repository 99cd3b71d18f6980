"""The vector index on a Milvus server (standalone locally, a cluster in production: same client).

Searches use Bounded consistency (milliseconds instead of ~200 ms for Strong); the
``RecentWrites`` overlay in ``candidates`` covers rows too new to be visible yet. Writes are
upserts keyed by content id, so a replayed event leaves no ghost rows.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

import numpy as np

from resolution.candidates import IndexedRow, IndexHit
from resolution.errors import DependencyUnavailable, with_backoff

log = logging.getLogger(__name__)


class MilvusUnavailable(DependencyUnavailable):
    """Milvus did not answer within the retry budget."""

    dependency = "milvus"


def _quote(values: list[str]) -> str:
    return "[" + ",".join(json.dumps(v) for v in values) + "]"


class MilvusVectorIndex:
    def __init__(
        self,
        uri: str,
        collection: str,
        dim: int,
        token: str = "",
        retry_max_s: float = 30.0,
        on_retry: Callable[[str], None] | None = None,
        hnsw_ef: int = 64,
        call_timeout_s: float = 10.0,
    ) -> None:
        self._call_timeout_s = call_timeout_s
        self._uri = uri
        self._token = token
        self._collection = collection
        self._dim = dim
        self._retry_max_s = retry_max_s
        self._on_retry = on_retry
        self._hnsw_ef = hnsw_ef
        self._client: Any = None
        self._ready = False

    def _connect(self) -> Any:
        from pymilvus import MilvusClient

        if self._client is None:
            self._client = MilvusClient(uri=self._uri, token=self._token, timeout=10)
        if not self._ready:
            self._ensure_collection(self._client)
            self._ready = True
        return self._client

    def _ensure_collection(self, client: Any) -> None:
        from pymilvus import DataType, MilvusClient

        if not client.has_collection(self._collection):
            schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
            schema.add_field("content_id", DataType.VARCHAR, is_primary=True, max_length=512)
            schema.add_field("vector", DataType.FLOAT_VECTOR, dim=self._dim)
            schema.add_field("entity_id", DataType.VARCHAR, max_length=128)
            schema.add_field("work_id", DataType.VARCHAR, max_length=128)
            schema.add_field("title_key", DataType.VARCHAR, max_length=2048)
            schema.add_field("isrc", DataType.VARCHAR, max_length=64)
            schema.add_field("meta", DataType.VARCHAR, max_length=16384)
            # The index is declared before the first insert, so rows are indexed as they arrive.
            index = client.prepare_index_params()
            index.add_index(
                field_name="vector", index_type="HNSW", metric_type="IP", params={"M": 16, "efConstruction": 128}
            )
            client.create_collection(self._collection, schema=schema, index_params=index, consistency_level="Bounded")
        # After a server restart a collection must be loaded again before it can be searched.
        client.load_collection(self._collection)

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
            what=f"Milvus {what} at {self._uri}",
            retry_max_s=self._retry_max_s,
            on_retry=self._on_retry,
            reset=reset,
            call_timeout_s=self._call_timeout_s,
        )

    async def search(self, vectors: np.ndarray, k: int) -> list[list[IndexHit]]:
        if len(vectors) == 0:
            return []
        fields = ["entity_id", "work_id", "title_key", "isrc", "meta"]

        def run(client: Any) -> Any:
            return client.search(
                self._collection,
                data=[v.tolist() for v in vectors],
                limit=k,
                output_fields=fields,
                search_params={"metric_type": "IP", "params": {"ef": max(self._hnsw_ef, k)}},
                consistency_level="Bounded",
            )

        result = await self._call("search", run)
        return [[IndexHit(_row(h["id"], h["entity"]), float(h["distance"])) for h in hits] for hits in result]

    async def lookup_keys(self, title_keys: list[str], isrcs: list[str]) -> list[IndexedRow]:
        keys = sorted({k for k in title_keys if k})
        codes = sorted({i for i in isrcs if i})
        clauses = []
        if keys:
            clauses.append(f"title_key in {_quote(keys)}")
        if codes:
            clauses.append(f"isrc in {_quote(codes)}")
        if not clauses:
            return []
        fields = ["content_id", "vector", "entity_id", "work_id", "title_key", "isrc", "meta"]

        def run(client: Any) -> Any:
            return client.query(
                self._collection,
                filter=" or ".join(clauses),
                output_fields=fields,
                limit=1000,
                consistency_level="Bounded",
            )

        rows = await self._call("query", run)
        return [_row(r["content_id"], r, np.asarray(r["vector"], dtype=np.float32)) for r in rows]

    async def upsert(self, rows: list[IndexedRow]) -> None:
        if not rows:
            return
        data = [
            {
                "content_id": r.content_id,
                "vector": r.vector.astype(np.float32).tolist(),
                "entity_id": r.entity_id,
                "work_id": r.work_id,
                "title_key": r.title_key[:2000],
                "isrc": r.isrc,
                "meta": json.dumps(r.meta, ensure_ascii=False)[:16000],
            }
            for r in rows
        ]
        await self._call("upsert", lambda client: client.upsert(self._collection, data))

    async def count(self) -> int:
        def run(client: Any) -> int:
            res = client.query(self._collection, filter="", output_fields=["count(*)"], consistency_level="Strong")
            return int(res[0]["count(*)"])

        return int(await self._call("count", run))

    async def drop(self) -> None:
        await self._call("drop", lambda client: client.drop_collection(self._collection))

    async def ping(self) -> bool:
        try:
            await asyncio.wait_for(asyncio.to_thread(lambda: self._connect().list_collections()), timeout=5)
            return True
        except Exception:
            self._client = None
            self._ready = False
            return False


def _row(content_id: str, entity: dict[str, Any], vector: np.ndarray | None = None) -> IndexedRow:
    return IndexedRow(
        content_id=str(content_id),
        entity_id=entity.get("entity_id", ""),
        work_id=entity.get("work_id", ""),
        vector=vector if vector is not None else np.zeros(0, dtype=np.float32),
        title_key=entity.get("title_key", ""),
        isrc=entity.get("isrc", ""),
        meta=json.loads(entity.get("meta") or "{}"),
    )
