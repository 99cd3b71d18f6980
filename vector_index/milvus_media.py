"""The media index on Milvus: shared by every partition and worker, and kept across restarts.

Milvus 2.3 holds one vector field per collection, so the index is two collections beside the
text one (``<collection>_audio``, ``<collection>_image``), each row carrying the whole evidence:

- ``_audio``: the retrieval vector (``resolution.media_index.audio_vector``, FLOAT_VECTOR, HNSW,
  inner product); the ``search_k`` nearest are rescored exactly on their stored fingerprints;
- ``_image``: the 64 dHash bits as a BINARY_VECTOR (BIN_FLAT, HAMMING: exact, and a 64-bit
  Hamming scan is cheap), the rows under ``SAME_PICTURE_SCORE`` dropped.

The evidence (fingerprint, chroma, hash bits) and the text vector travel as one base64 VARCHAR,
not as vector fields, so a row reads back whole from either collection. Searches use the text
index's consistency (Bounded by default); the resolver's in-process ``MediaMemory`` covers its
own writes too new to be visible, as ``RecentWrites`` does for text.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from resolution.media_evidence import SAME_PICTURE_SCORE, MediaEvidence
from resolution.media_index import AUDIO_VECTOR_DIM, MediaHit, MediaRow, audio_vector, rescored
from settings import WorkerSettings
from vector_index.milvus_connection import MilvusConnection, MilvusParams

IMAGE_BITS = 64
_MAX_EVIDENCE = 60000  # VARCHAR limit is 65,535; a 120 s fingerprint and a text vector take ~8 KB


def _b64(array: Any, dtype: str) -> str:
    return "" if array is None else base64.b64encode(np.asarray(array, dtype=dtype).tobytes()).decode()


def _array(text: str, dtype: str) -> np.ndarray | None:
    return np.frombuffer(base64.b64decode(text), dtype=dtype).copy() if text else None


def encode_evidence(row: MediaRow) -> str:
    e = row.evidence
    return json.dumps(
        {
            "fp": _b64(e.fingerprint, "<u4"),
            "chroma": _b64(e.chroma, "<f4"),
            "bits": _b64(e.image_bits, "u1"),
            "text": _b64(row.vector, "<f4"),
        }
    )


def decode_row(content_id: str, entity: dict[str, Any]) -> MediaRow:
    payload = json.loads(entity.get("evidence") or "{}")
    fingerprint = _array(payload.get("fp", ""), "<u4")
    evidence = MediaEvidence(
        fingerprint=fingerprint,
        chroma=_array(payload.get("chroma", ""), "<f4"),
        image_bits=_array(payload.get("bits", ""), "u1"),
    )
    text = _array(payload.get("text", ""), "<f4")
    return MediaRow(
        content_id=str(content_id),
        entity_id=entity.get("entity_id", ""),
        work_id=entity.get("work_id", ""),
        evidence=evidence,
        meta=json.loads(entity.get("meta") or "{}"),
        vector=text if text is not None else np.zeros(0, dtype=np.float32),
    )


def _packed(bits: Any) -> bytes:
    return np.packbits(np.asarray(bits, dtype=np.uint8)[:IMAGE_BITS]).tobytes()


_FIELDS = ["entity_id", "work_id", "meta", "evidence"]


class MilvusMediaIndex(MilvusConnection):
    what = "Milvus media"

    def __init__(
        self,
        params: MilvusParams,
        collection: str,
        search_k: int = WorkerSettings.media_search_k,
        on_retry: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__(params, on_retry)
        self.audio_collection = f"{collection}_audio"
        self.image_collection = f"{collection}_image"
        self._search_k = search_k

    def _ensure(self, client: Any) -> None:
        from pymilvus import DataType, MilvusClient

        for name, vector_type, dim, index_type, metric, params in (
            (self.audio_collection, DataType.FLOAT_VECTOR, AUDIO_VECTOR_DIM, "HNSW", "IP",
             {"M": 16, "efConstruction": 128}),
            (self.image_collection, DataType.BINARY_VECTOR, IMAGE_BITS, "BIN_FLAT", "HAMMING", {}),
        ):  # fmt: skip
            if not client.has_collection(name):
                schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
                schema.add_field("content_id", DataType.VARCHAR, is_primary=True, max_length=512)
                schema.add_field("vector", vector_type, dim=dim)
                schema.add_field("entity_id", DataType.VARCHAR, max_length=128)
                schema.add_field("work_id", DataType.VARCHAR, max_length=128)
                schema.add_field("meta", DataType.VARCHAR, max_length=16384)
                schema.add_field("evidence", DataType.VARCHAR, max_length=65535)
                index = client.prepare_index_params()
                index.add_index(field_name="vector", index_type=index_type, metric_type=metric, params=params)
                client.create_collection(name, schema=schema, index_params=index, consistency_level="Bounded")
            client.load_collection(name)

    async def sounding_like(
        self, queries: Sequence[MediaEvidence], k: int, excludes: Sequence[str]
    ) -> list[list[MediaHit]]:
        asked = [i for i, q in enumerate(queries) if q.fingerprint is not None]
        found: list[list[MediaRow]] = [[] for _ in queries]
        if asked and k > 0:
            vectors = [audio_vector(queries[i]).tolist() for i in asked]
            limit = self._search_k + 1  # the query's own row may come back first

            def run(client: Any) -> Any:
                return client.search(
                    self.audio_collection,
                    data=vectors,
                    limit=limit,
                    output_fields=_FIELDS,
                    search_params={"metric_type": "IP", "params": {"ef": max(self._params.hnsw_ef, limit)}},
                    consistency_level=self._params.consistency,
                )

            result = await self._call("audio search", run)
            for i, hits in zip(asked, result, strict=True):
                rows = [decode_row(h["id"], h["entity"]) for h in hits if str(h["id"]) != excludes[i]]
                found[i] = rows[: self._search_k]
        return rescored(queries, found, k)

    async def same_picture(
        self, queries: Sequence[MediaEvidence], k: int, excludes: Sequence[str]
    ) -> list[list[MediaHit]]:
        out: list[list[MediaHit]] = [[] for _ in queries]
        asked = [i for i, q in enumerate(queries) if q.image_bits is not None]
        if not asked or k <= 0:
            return out
        data = [_packed(queries[i].image_bits) for i in asked]
        # Share of equal bits >= SAME_PICTURE_SCORE is Hamming distance <= this.
        most = math.floor((1.0 - SAME_PICTURE_SCORE) * IMAGE_BITS + 1e-9)

        def run(client: Any) -> Any:
            return client.search(
                self.image_collection,
                data=data,
                limit=k + 1,
                output_fields=_FIELDS,
                search_params={"metric_type": "HAMMING", "params": {}},
                consistency_level=self._params.consistency,
            )

        result = await self._call("image search", run)
        for i, hits in zip(asked, result, strict=True):
            kept = [
                MediaHit(decode_row(h["id"], h["entity"]), 1.0 - float(h["distance"]) / IMAGE_BITS)
                for h in hits
                if str(h["id"]) != excludes[i] and float(h["distance"]) <= most
            ]
            out[i] = sorted(kept, key=lambda x: (-x.score, x.row.content_id))[:k]
        return out

    async def rows(self, content_ids: Sequence[str]) -> list[MediaRow]:
        ids = sorted(set(content_ids))
        out: dict[str, MediaRow] = {}
        for collection in (self.audio_collection, self.image_collection):
            wanted = [c for c in ids if c not in out]
            for start in range(0, len(wanted), 500):  # a bounded filter expression per request
                chunk = wanted[start : start + 500]

                def run(client: Any, chunk: list[str] = chunk, collection: str = collection) -> Any:
                    return client.query(
                        collection,
                        filter=f"content_id in {json.dumps(chunk)}",
                        output_fields=["content_id", *_FIELDS],
                        limit=len(chunk),
                        consistency_level=self._params.consistency,
                    )

                for r in await self._call("query", run):
                    out[str(r["content_id"])] = decode_row(r["content_id"], r)
        return [out[c] for c in dict.fromkeys(content_ids) if c in out]

    async def upsert(self, rows: Sequence[MediaRow]) -> None:
        def common(r: MediaRow) -> dict[str, Any]:
            evidence = encode_evidence(r)
            if len(evidence) > _MAX_EVIDENCE:  # a fingerprint is capped at MAX_FRAMES: cannot happen
                raise ValueError(f"media evidence of {r.content_id} is {len(evidence)} characters")
            return {
                "content_id": r.content_id,
                "entity_id": r.entity_id[:128],
                "work_id": r.work_id[:128],
                "meta": json.dumps(r.meta, ensure_ascii=False)[:16000],
                "evidence": evidence,
            }

        audio = [
            {**common(r), "vector": audio_vector(r.evidence).tolist()}
            for r in rows
            if r.evidence.fingerprint is not None
        ]
        image = [
            {**common(r), "vector": _packed(r.evidence.image_bits)} for r in rows if r.evidence.image_bits is not None
        ]
        if audio:
            await self._call("audio upsert", lambda client: client.upsert(self.audio_collection, audio))
        if image:
            await self._call("image upsert", lambda client: client.upsert(self.image_collection, image))

    async def count(self) -> dict[str, int]:
        def run(client: Any) -> dict[str, int]:
            out = {}
            for name in (self.audio_collection, self.image_collection):
                res = client.query(name, filter="", output_fields=["count(*)"], consistency_level="Strong")
                out[name] = int(res[0]["count(*)"])
            return out

        counts: dict[str, int] = await self._call("count", run)
        return counts

    async def drop(self) -> None:
        """Drops both collections (without making them first, as a search would)."""

        def run() -> None:
            client = self._new_client()
            for name in (self.audio_collection, self.image_collection):
                if client.has_collection(name):
                    client.drop_collection(name)
            self._ready = False

        await asyncio.wait_for(asyncio.to_thread(run), timeout=self._params.retry_max_s + self._params.call_timeout_s)
