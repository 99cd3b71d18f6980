"""Candidate paths of the in-memory index: exact keys and the bounded title-only path (covers)."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from resolution.candidates import CandidateFinder, IndexedRow, InMemoryVectorIndex, title_queries
from resolution.model import ContentItem
from resolution.normalise import normalise
from vector_index.milvus import MilvusParams, MilvusVectorIndex

DIM = 4


def _vec(*values: float) -> np.ndarray:
    v = np.array(values, dtype=np.float32)
    return v / np.linalg.norm(v)


def _item(cid: str, title: str, artist: str) -> ContentItem:
    return ContentItem(event_id=cid, content_id=cid, source="s", kind="recording", title=title, artists=(artist,))


def _row(cid: str, title: str, artist: str, vector: np.ndarray) -> IndexedRow:
    norm = normalise(_item(cid, title, artist))
    return IndexedRow(
        cid, f"e-{cid}", "", vector, norm.title_key, "", norm.to_meta(), title_only_key=norm.title_only_key
    )


def test_title_only_key_is_the_core_title_and_empty_for_placeholders() -> None:
    cover = normalise(_item("a", "Yesterday (Live)", "Ray"))
    assert cover.title_only_key == "yesterday"
    for title in ("Untitled", "04", "x", ""):
        item = normalise(_item("b", title, "X"))
        assert item.title_only_key == ""
    for title, key in (("If", "if"), ("妥協", "妥協")):  # two letters name a song
        assert normalise(_item("b", title, "X")).title_only_key == key


def test_lookup_titles_finds_same_title_by_other_artists_most_similar_first_and_capped() -> None:
    index = InMemoryVectorIndex(DIM)
    index.upsert_now(
        [
            _row("c1", "Yesterday", "Ray Charles", _vec(1, 0.2, 0, 0)),
            _row("c2", "Yesterday", "Marianne Faithfull", _vec(1, 0.9, 0, 0)),
            _row("c3", "Yesterday!", "Matt Monro", _vec(1, 0.1, 0, 0)),  # same core title after normalising
            _row("x1", "Yesterday Once More", "Carpenters", _vec(1, 0, 0, 0)),
            _row("u1", "Untitled", "Someone", _vec(1, 0, 0, 0)),
        ]
    )
    query = _vec(1, 0, 0, 0)
    hits = index.lookup_titles_now(np.stack([query, query]), ["yesterday", ""], cap=2)
    assert [h.row.content_id for h in hits[0]] == ["c3", "c1"]  # c2 is the least similar: over the cap
    assert hits[0][0].similarity > hits[0][1].similarity
    assert hits[1] == []  # an empty key (a placeholder title) finds nothing
    assert index.lookup_titles_now(query[None, :], ["untitled"], cap=5) == [[]]  # never indexed under ""


def test_lookup_titles_follows_upserts_and_removals() -> None:
    index = InMemoryVectorIndex(DIM)
    index.upsert_now([_row("c1", "Yesterday", "Ray Charles", _vec(1, 0, 0, 0))])
    index.upsert_now([_row("c1", "Tomorrow", "Ray Charles", _vec(1, 0, 0, 0))])  # re-delivered, retitled
    query = _vec(1, 0, 0, 0)[None, :]
    assert index.lookup_titles_now(query, ["yesterday"], cap=5) == [[]]
    assert [h.row.content_id for h in index.lookup_titles_now(query, ["tomorrow"], cap=5)[0]] == ["c1"]
    index.remove(["c1"])
    assert index.lookup_titles_now(query, ["tomorrow"], cap=5) == [[]]


def test_prefetch_adds_title_candidates_the_ann_top_k_misses_only_with_a_cap() -> None:
    index = InMemoryVectorIndex(DIM)
    near = [_row(f"n{i}", f"Other Song {i}", "Ray Charles", _vec(1, 0.01 * i, 0, 0)) for i in range(3)]
    cover = _row("cover", "Georgia on My Mind", "Willie Nelson", _vec(0, 1, 0, 0))
    index.upsert_now([*near, cover])
    query = _vec(1, 0, 0, 0)[None, :]
    keys = ["georgia on my mind|ray charles"]
    off = CandidateFinder(index, 2, 5000, DIM)
    on = CandidateFinder(index, 2, 5000, DIM, title_cap=3)
    without = asyncio.run(off.prefetch(query, keys, [""], ["georgia on my mind"]))[0]
    with_titles = asyncio.run(on.prefetch(query, keys, [""], ["georgia on my mind"]))[0]
    assert "cover" not in {c.content_id for c in without}
    assert {c.content_id: c.via for c in with_titles}["cover"] == "title"
    assert len(with_titles) == 3  # the top 2 plus the one title match


def test_recent_writes_are_searched_by_title_too() -> None:
    finder = CandidateFinder(InMemoryVectorIndex(DIM), 1, 5000, DIM, title_cap=2)
    finder.remember(
        [
            _row("n0", "Other Song", "Ray Charles", _vec(1, 0, 0, 0)),
            _row("cover", "Georgia on My Mind", "Willie Nelson", _vec(0, 1, 0, 0)),
        ]
    )
    found = finder.complete([], _vec(1, 0, 0, 0), "georgia on my mind|ray charles", "", "q", "georgia on my mind")
    assert {c.content_id for c in found} == {"n0", "cover"}


def test_title_queries_add_one_per_other_name_and_none_for_placeholders() -> None:
    vectors = np.stack([_vec(1, 0, 0, 0), _vec(0, 1, 0, 0), _vec(0, 0, 1, 0)])
    keys = ["chick habit laisse tomber les filles", "", "basket case"]
    alternates = [("chick habit", "laisse tomber les filles"), ("ignored",), ()]
    queried_vectors, queried, owners = title_queries(vectors, keys, alternates)
    assert queried == [*keys, "chick habit", "laisse tomber les filles"]
    assert owners == [0, 1, 2, 0, 0]
    assert np.array_equal(queried_vectors[3], vectors[0])
    assert title_queries(vectors, keys, None)[1:] == (keys, [0, 1, 2])


def test_an_item_finds_the_cover_titled_by_one_of_its_names() -> None:
    index = InMemoryVectorIndex(DIM)
    near = [_row(f"n{i}", f"Other Song {i}", "April March", _vec(1, 0.01 * i, 0, 0)) for i in range(3)]
    french = _row("fr", "Laisse tomber les filles", "France Gall", _vec(0, 1, 0, 0))
    index.upsert_now([*near, french])
    item = normalise(_item("q", "Chick Habit / Laisse tomber les filles", "April March"))
    query = _vec(1, 0, 0, 0)[None, :]
    finder = CandidateFinder(index, 2, 5000, DIM, title_cap=3)
    found = asyncio.run(finder.prefetch(query, [item.title_key], [""], [item.title_only_key], [item.title_alternates]))
    assert {c.content_id: c.via for c in found[0]}["fr"] == "title"
    without = asyncio.run(finder.prefetch(query, [item.title_key], [""], [item.title_only_key]))
    assert "fr" not in {c.content_id for c in without[0]}
    # the recent writes alike
    recent = CandidateFinder(InMemoryVectorIndex(DIM), 1, 5000, DIM, title_cap=2)
    recent.remember([*near, french])
    completed = recent.complete_all(
        [[]], query, [item.title_key], [""], ["q"], [item.title_only_key], [item.title_alternates]
    )
    assert "fr" in {c.content_id for c in completed[0]}


def _resolve_twice(title_cap: int) -> list[str]:
    """Candidates of a song whose earlier cover (another artist) is outranked by the same
    artist's other songs, with room for two candidates only."""
    from resolution.entities import EntityStore
    from resolution.matcher import RuleScorer
    from resolution.policy import DecisionPolicy, Thresholds
    from resolution.resolver import BatchResolver
    from tests.unit.text_fakes import BOW_DIM, BagOfWordsEncoder

    finder = CandidateFinder(InMemoryVectorIndex(BOW_DIM), 2, 5000, BOW_DIM, title_cap=title_cap)
    resolver = BatchResolver(
        BagOfWordsEncoder(), finder, RuleScorer(), DecisionPolicy(Thresholds()), EntityStore({}), max_candidates=2
    )
    first = [
        _item("cover", "Sweet Lorraine", "Nat King Cole Trio"),
        _item("s1", "Mess Around", "Ray Charles Orchestra"),
        _item("s2", "Hit the Road Jack", "Ray Charles Orchestra"),
        _item("s3", "Unchain My Heart", "Ray Charles Orchestra"),
    ]
    asyncio.run(resolver.resolve(first))
    result = asyncio.run(resolver.resolve([_item("q", "Sweet Lorraine", "Ray Charles Orchestra")]))
    return [c.candidate.content_id for c in result.decisions[0].candidates]


def test_the_resolver_keeps_same_title_candidates_beyond_its_top_k() -> None:
    assert "cover" not in _resolve_twice(title_cap=0)
    with_titles = _resolve_twice(title_cap=1)
    assert "cover" in with_titles
    assert len(with_titles) == 3  # the two most similar, plus one by title


class _FakeMilvus:
    """Just enough of MilvusClient for the title-only path: records calls, answers from rows."""

    def __init__(self, fields: list[str], hits: list[list[dict[str, object]]]) -> None:
        self.fields = fields
        self.hits = hits
        self.searches: list[dict[str, object]] = []
        self.upserted: list[dict[str, object]] = []

    def has_collection(self, name: str) -> bool:
        return True

    def describe_collection(self, name: str) -> dict[str, object]:
        return {"fields": [{"name": f} for f in self.fields]}

    def load_collection(self, name: str) -> None:
        return None

    def search(self, collection: str, **kwargs: object) -> list[list[dict[str, object]]]:
        self.searches.append(kwargs)
        return self.hits

    def upsert(self, collection: str, data: list[dict[str, object]]) -> None:
        self.upserted.extend(data)


def _milvus(fake: _FakeMilvus) -> MilvusVectorIndex:
    index = MilvusVectorIndex(MilvusParams("http://fake:19530", "", retry_max_s=1.0, hnsw_ef=64), "c", DIM)
    index._client = fake  # the fake stands in for the server
    return index


def _hit(cid: str, key: str, distance: float) -> dict[str, object]:
    entity = {"entity_id": "e", "work_id": "", "title_key": key + "|x", "isrc": "", "meta": "{}"}
    return {"id": cid, "distance": distance, "entity": {**entity, "title_only_key": key}}


def test_milvus_title_lookup_is_one_filtered_search_keeping_each_querys_own_title() -> None:
    fake = _FakeMilvus(
        ["content_id", "vector", "title_only_key"],
        [[_hit("a1", "yesterday", 0.9), _hit("b1", "tomorrow", 0.8), _hit("a2", "yesterday", 0.7)]],
    )
    index = _milvus(fake)
    query = _vec(1, 0, 0, 0)
    hits = asyncio.run(index.lookup_titles(np.stack([query, query]), ["yesterday", ""], cap=1))
    assert [[h.row.content_id for h in q] for q in hits] == [["a1"], []]
    assert len(fake.searches) == 1 and fake.searches[0]["limit"] == 2
    assert fake.searches[0]["filter"] == 'title_only_key in ["yesterday"]'
    asyncio.run(index.upsert([_row("r", "Yesterday", "Ray", query)]))
    assert fake.upserted[0]["title_only_key"] == "yesterday"


def test_milvus_collection_without_the_field_keeps_working_without_the_title_path() -> None:
    fake = _FakeMilvus(["content_id", "vector"], [])
    index = _milvus(fake)
    query = _vec(1, 0, 0, 0)
    assert asyncio.run(index.lookup_titles(query[None, :], ["yesterday"], cap=3)) == [[]]
    assert fake.searches == []
    asyncio.run(index.upsert([_row("r", "Yesterday", "Ray", query)]))
    assert "title_only_key" not in fake.upserted[0]


def test_milvus_params_come_from_the_worker_settings_and_refuse_an_unknown_consistency() -> None:
    from settings import WorkerSettings

    worker = WorkerSettings(milvus_uri="http://m:1", milvus_token="root:x", milvus_hnsw_ef=96, retry_max_s=12.0)
    params = MilvusParams.of(worker, consistency="Strong")
    assert (params.uri, params.token, params.hnsw_ef, params.retry_max_s, params.consistency) == (
        "http://m:1",
        "root:x",
        96,
        12.0,
        "Strong",
    )
    assert MilvusParams.of(worker, retry_max_s=5).retry_max_s == 5  # a tool's own budget wins
    assert "root:x" not in repr(params)  # the token never reaches a log line
    with pytest.raises(ValueError, match="consistency"):
        MilvusParams.of(worker, consistency="Eventually")
