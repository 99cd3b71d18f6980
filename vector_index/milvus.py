"""The vector index on a Milvus server (standalone locally, a cluster in production: same client).

Searches use Bounded consistency by default (milliseconds instead of ~200 ms for Strong); the
``RecentWrites`` overlay in ``candidates`` covers this worker's rows too new to be visible yet,
not another worker's; reconciliation reads with ``consistency="Strong"``. Writes are
upserts keyed by content id, so a replayed event leaves no ghost rows.

Schema: ``title_only_key`` (the core title, for the bounded title-only candidate path) was added
after the first collections were made. A new collection gets it; a collection created before
lacks it and keeps working without that path (a warning says so) until it is dropped; the next
start creates it with the field.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

import numpy as np

from resolution.candidates import IndexedRow, IndexHit
from vector_index.milvus_connection import CONSISTENCY_LEVELS, MilvusConnection, MilvusParams, MilvusUnavailable

log = logging.getLogger(__name__)


TITLE_ONLY_FIELD = "title_only_key"


def _quote(values: list[str]) -> str:
    return "[" + ",".join(json.dumps(v) for v in values) + "]"


__all__ = ["CONSISTENCY_LEVELS", "MilvusParams", "MilvusUnavailable", "MilvusVectorIndex"]


class MilvusVectorIndex(MilvusConnection):
    def __init__(
        self, params: MilvusParams, collection: str, dim: int, on_retry: Callable[[str], None] | None = None
    ) -> None:
        super().__init__(params, on_retry)
        self._collection = collection
        self._dim = dim
        self._has_title_only = True

    def _ensure(self, client: Any) -> None:
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
            schema.add_field(TITLE_ONLY_FIELD, DataType.VARCHAR, max_length=2048)
            # The index is declared before the first insert, so rows are indexed as they arrive.
            index = client.prepare_index_params()
            index.add_index(
                field_name="vector", index_type="HNSW", metric_type="IP", params={"M": 16, "efConstruction": 128}
            )
            client.create_collection(self._collection, schema=schema, index_params=index, consistency_level="Bounded")
        fields = {f.get("name") for f in client.describe_collection(self._collection).get("fields", [])}
        self._has_title_only = TITLE_ONLY_FIELD in fields
        if not self._has_title_only:
            log.warning(
                "Milvus collection %s predates the %s field: title-only candidates are off until it is rebuilt",
                self._collection,
                TITLE_ONLY_FIELD,
            )
        # After a server restart a collection must be loaded again before it can be searched.
        client.load_collection(self._collection)

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
                search_params={"metric_type": "IP", "params": {"ef": max(self._params.hnsw_ef, k)}},
                consistency_level=self._params.consistency,
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
                consistency_level=self._params.consistency,
            )

        rows = await self._call("query", run)
        return [_row(r["content_id"], r, np.asarray(r["vector"], dtype=np.float32)) for r in rows]

    async def lookup_titles(self, vectors: np.ndarray, title_only_keys: list[str], cap: int) -> list[list[IndexHit]]:
        """One filtered search for the batch: each query's nearest rows among those whose core
        title is one of the batch's, then only its own title's, at most ``cap`` (the search asks
        for twice that, so that another item's title seldom crowds a query's own out)."""
        out: list[list[IndexHit]] = [[] for _ in range(len(vectors))]
        keys = sorted({k for k in title_only_keys if k})
        if not keys or cap <= 0:
            return out
        asked = [i for i, k in enumerate(title_only_keys) if k]
        fields = ["entity_id", "work_id", "title_key", "isrc", "meta", TITLE_ONLY_FIELD]

        def run(client: Any) -> Any:
            if not self._has_title_only:  # known once connected: an old collection without the field
                return [[] for _ in asked]
            return client.search(
                self._collection,
                data=[vectors[i].tolist() for i in asked],
                filter=f"{TITLE_ONLY_FIELD} in {_quote(keys)}",
                limit=2 * cap,
                output_fields=fields,
                search_params={"metric_type": "IP", "params": {"ef": max(self._params.hnsw_ef, 2 * cap)}},
                consistency_level=self._params.consistency,
            )

        result = await self._call("title search", run)
        for i, hits in zip(asked, result, strict=True):
            own = [h for h in hits if h["entity"].get(TITLE_ONLY_FIELD) == title_only_keys[i]]
            out[i] = [IndexHit(_row(h["id"], h["entity"]), float(h["distance"])) for h in own[:cap]]
        return out

    async def rows(self, content_ids: list[str]) -> list[IndexedRow]:
        """The stored rows (vector and metadata) of these content ids; unknown ids are left out."""
        ids = sorted(set(content_ids))
        fields = ["content_id", "vector", "entity_id", "work_id", "title_key", "isrc", "meta"]
        out: list[IndexedRow] = []
        for start in range(0, len(ids), 500):  # a bounded filter expression per request
            chunk = ids[start : start + 500]

            def run(client: Any, chunk: list[str] = chunk) -> Any:
                return client.query(
                    self._collection,
                    filter=f"content_id in {_quote(chunk)}",
                    output_fields=fields,
                    limit=len(chunk),
                    consistency_level=self._params.consistency,
                )

            rows = await self._call("query", run)
            out.extend(_row(r["content_id"], r, np.asarray(r["vector"], dtype=np.float32)) for r in rows)
        return out

    async def upsert(self, rows: list[IndexedRow]) -> None:
        if not rows:
            return

        def data() -> list[dict[str, Any]]:
            return [
                {
                    "content_id": r.content_id,
                    "vector": r.vector.astype(np.float32).tolist(),
                    "entity_id": r.entity_id,
                    "work_id": r.work_id,
                    "title_key": r.title_key[:2000],
                    "isrc": r.isrc,
                    "meta": json.dumps(r.meta, ensure_ascii=False)[:16000],
                    **({TITLE_ONLY_FIELD: r.title_only_key[:2000]} if self._has_title_only else {}),
                }
                for r in rows
            ]

        # The rows are built once connected: only then is it known whether the collection has the field.
        await self._call("upsert", lambda client: client.upsert(self._collection, data()))

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
        title_only_key=entity.get(TITLE_ONLY_FIELD, "") or "",
    )
