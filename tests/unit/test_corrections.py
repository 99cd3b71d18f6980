"""Corrections on the pure core: re-clustering, survivor choice, feedback, and the replay property.

The resolver runs offline here (a dict as the entity table, the exact in-memory index, the rule
scorer, and a bag-of-words encoder standing in for the sentence encoder), so that hypothesis can
try many sequences of events and feedback in seconds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from resolution.candidates import CandidateFinder, InMemoryVectorIndex
from resolution.corrections import CorrectionLimits
from resolution.entities import EntityStore, cluster_rows, rebuild_state, state_differences
from resolution.feedback import Feedback
from resolution.matcher import RuleScorer
from resolution.model import Action, ContentItem, Decision
from resolution.policy import DecisionPolicy, Thresholds
from resolution.reclustering import plan_moves, recluster
from resolution.resolver import BatchResolver
from streams.handler import decision_record
from streams.topics import Schemas
from tests.unit.text_fakes import BOW_DIM as DIM
from tests.unit.text_fakes import BagOfWordsEncoder

SCHEMA = Schemas.load().decision
LIMITS = CorrectionLimits()


class Offline:
    """A resolver with its state in a dict, keeping every decision it published, in order."""

    def __init__(self) -> None:
        self.table: dict[str, Any] = {}
        self.store = EntityStore(self.table)
        finder = CandidateFinder(InMemoryVectorIndex(DIM), 10, 100_000, DIM)
        self.resolver = BatchResolver(
            BagOfWordsEncoder(), finder, RuleScorer(), DecisionPolicy(Thresholds()), self.store, max_candidates=10
        )
        self.published: list[Decision] = []
        self.reexamined: list[int] = []

    def run(self, items: list[ContentItem], feedback: Sequence[Feedback] = ()) -> list[Decision]:
        result = asyncio.run(self.resolver.resolve(items, list(feedback)))
        applied = result.in_applied_order()
        for d in applied:
            self.resolver.note_trace(d, f"trace-{d.event_id}")
        self.published.extend(applied)
        self.reexamined.extend(result.reexamined)
        return applied

    def records(self) -> list[dict[str, Any]]:
        """What the decisions topic holds: each record through the Avro schema and back."""
        out = []
        for d in self.published:
            record = decision_record(d, "test", f"trace-{d.event_id}", 0)
            out.append(SCHEMA.decode(SCHEMA.encode(record)))
        return out

    def entity_of(self, content_id: str) -> str | None:
        return self.store.entity_of(content_id)

    def placed(self, content_id: str) -> str:
        """The entity of an item the test has decided (None would be a failure of the test itself)."""
        entity = self.store.entity_of(content_id)
        assert entity is not None, f"{content_id} was never decided"
        return entity


def song(event_id: str, content_id: str, isrc: str | None = None, title: str = "Silver and Gold", **kw: Any):
    return ContentItem(
        event_id=event_id,
        content_id=content_id,
        source=str(kw.pop("source", "store")),
        kind="recording",
        title=title,
        artists=(str(kw.pop("artist", "Little Big Town")),),
        duration_ms=int(kw.pop("duration_s", 215)) * 1000,
        isrc=isrc,
    )


def fb(feedback_id: str, left: str, right: str, verdict: str) -> Feedback:
    return Feedback(feedback_id, left, right, verdict, "tester", "", 1)


def assert_replays(offline: Offline) -> None:
    rebuilt = rebuild_state(offline.records())
    count, lines = state_differences(offline.table, rebuilt)
    assert count == 0, "\n".join(lines)


# --- the pure parts --------------------------------------------------------------------------


def test_chain_with_contradiction_splits_the_weak_end() -> None:
    entities = {"E": ["a", "b", "c"]}
    edges = {("a", "b"): 0.9, ("b", "c"): 0.8, ("a", "c"): 0.01}
    clusters = recluster(entities, edges, set(), set(), LIMITS.merge_threshold, LIMITS.conflict_threshold)
    assert clusters == [["a", "b"], ["c"]]
    moves = plan_moves(clusters, entities, lambda part: "NEW-" + min(part))
    assert [(m.action, m.source, m.target, m.members) for m in moves] == [(Action.SPLIT, "E", "NEW-c", ("c",))]


def test_curator_constraints_win_over_model_evidence() -> None:
    entities = {"E": ["a", "b"], "F": ["c"]}
    edges = {("a", "b"): 0.99, ("b", "c"): 0.01}
    # must-link a~c beats the model; must-not-link a!=b splits a pair the model is sure of.
    clusters = recluster(entities, edges, {("a", "c")}, {("a", "b")}, LIMITS.merge_threshold, LIMITS.conflict_threshold)
    assert sorted(clusters) == [["a", "c"], ["b"]]


def test_merge_keeps_the_larger_entity_and_retires_the_other() -> None:
    entities = {"ent-z": ["a", "b"], "ent-a": ["c"]}
    moves = plan_moves([["a", "b", "c"]], entities, lambda part: "unused")
    assert [(m.action, m.source, m.target) for m in moves] == [(Action.MERGE, "ent-a", "ent-z")]
    # Equal sizes: the smaller id survives.
    moves = plan_moves([["a", "c"]], {"ent-b": ["a"], "ent-a": ["c"]}, lambda part: "unused")
    assert [(m.source, m.target) for m in moves] == [("ent-b", "ent-a")]


# --- scenarios through the resolver ----------------------------------------------------------


def test_re_delivered_evidence_splits_a_chain_and_replays() -> None:
    off = Offline()
    off.run([song("e1", "A", isrc="USX000000001")])
    off.run([song("e2", "B", duration_s=216)])
    off.run([song("e3", "C", duration_s=217)])
    entity = off.entity_of("A")
    assert off.entity_of("B") == entity and off.entity_of("C") == entity, "the chain was merged"
    # C is delivered again, now with an ISRC that contradicts A's.
    out = off.run([song("e4", "C", isrc="USX000000002", duration_s=217)])
    splits = [d for d in out if d.action is Action.SPLIT]
    assert len(splits) == 1 and splits[0].members == ("C",) and splits[0].previous_entity_ids == (entity,)
    assert splits[0].trigger == "re-resolution" and splits[0].new_entity_ids == (off.entity_of("C"),)
    assert off.entity_of("A") == entity == off.entity_of("B"), "the larger part keeps the id"
    assert off.entity_of("C") != entity
    assert off.reexamined[-1] == 1
    assert_replays(off)


def test_feedback_splits_a_wrong_merge_and_holds_for_later_events() -> None:
    off = Offline()
    off.run([song("e1", "A"), song("e2", "B", duration_s=216)])
    entity = off.placed("A")
    assert off.entity_of("B") == entity
    out = off.run([], [fb("f1", "A", "B", "different")])
    assert [d.action for d in out] == [Action.CONSTRAIN, Action.SPLIT]
    assert off.entity_of("A") != off.entity_of("B")
    # A re-delivery of B with the same evidence must not merge it back.
    off.run([song("e3", "B", duration_s=216)])
    assert off.entity_of("A") != off.entity_of("B")
    history = off.store.describe(entity)
    assert history is not None and [h["action"] for h in history["lineage"]] == ["SPLIT"]
    assert history["decisions"][-1]["trace_id"] == "trace-f1"
    assert_replays(off)


def test_feedback_before_the_events_it_names() -> None:
    off = Offline()
    off.run([], [fb("f1", "X", "Y", "different"), fb("f2", "P", "Q", "same")])
    off.run([song("e1", "X"), song("e2", "Y", duration_s=216)])
    assert off.entity_of("X") != off.entity_of("Y"), "must-not-link held when the events came"
    off.run([song("e3", "P", title="Quiet Harbour Lights", artist="Marla Quinn")])
    off.run([song("e4", "Q", title="Thunder Over Velvet Hills", artist="The Copper Foxes")])
    assert off.entity_of("P") == off.entity_of("Q"), "must-link merged what the model keeps apart"
    assert_replays(off)


def test_must_link_between_entities_merges_them_with_a_pointer() -> None:
    off = Offline()
    off.run([song("e1", "A", title="Quiet Harbour Lights", artist="Marla Quinn")])
    off.run([song("e2", "B", title="Harbour Lights (Quiet)", artist="M. Quinn", duration_s=300)])
    first, second = off.placed("A"), off.placed("B")
    assert first != second
    out = off.run([], [fb("f1", "B", "A", "same")])
    merges = [d for d in out if d.action is Action.MERGE]
    assert len(merges) == 1
    survivor = off.entity_of("A")
    assert off.entity_of("B") == survivor and {survivor} < {first, second}
    retired = ({first, second} - {survivor}).pop()
    assert off.store.resolve_id(retired) == survivor
    retired_history = off.store.describe(retired)
    assert retired_history is not None and retired_history["retired_into"] == survivor
    assert_replays(off)


def test_exported_clusters_replay_the_topic_with_corrections_applied() -> None:
    """``resolver export --clusters``: from the decisions records alone, after an entity merge,
    both items name the survivor (not the retired id their first decision carried)."""
    off = Offline()
    off.run([song("e1", "A", title="Quiet Harbour Lights", artist="Marla Quinn")])
    off.run([song("e2", "B", title="Harbour Lights (Quiet)", artist="M. Quinn", duration_s=300)])
    off.run([song("e3", "C", title="Neon Rain", artist="Owen Vale")])
    off.run([], [fb("f1", "B", "A", "same")])
    rows = cluster_rows(rebuild_state(off.records()))
    survivor = off.placed("A")
    assert [(c, e) for c, e, _w in rows] == [("A", survivor), ("B", survivor), ("C", off.entity_of("C"))]
    assert survivor != off.entity_of("C")
    assert {w for c, _e, w in rows if c in "AB"} == {off.store.work_of(survivor)}


# --- the property ----------------------------------------------------------------------------

CONTENT = [f"c{i}" for i in range(6)]
TITLES = ["Silver and Gold", "Silver and Gold", "Silver & Gold", "Quiet Harbour Lights"]
ISRCS = [None, None, "USX000000001", "USX000000002"]

events = st.tuples(
    st.sampled_from(CONTENT), st.sampled_from(range(len(TITLES))), st.sampled_from(range(len(ISRCS))), st.integers(0, 3)
)
feedbacks = st.tuples(
    st.sampled_from(CONTENT), st.sampled_from(CONTENT), st.sampled_from(["same", "different", "version_of"])
)
batches = st.lists(events, min_size=1, max_size=3).map(lambda b: ("events", b))
steps = st.lists(
    st.one_of(batches, feedbacks.map(lambda f: ("fb", f))),
    min_size=1,
    max_size=12,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps)
def test_replayed_decisions_rebuild_the_live_state_and_constraints_hold(script: list) -> None:
    off = Offline()
    for n, (kind, payload) in enumerate(script):
        if kind == "fb":
            left, right, verdict = payload
            if left != right:
                off.run([], [fb(f"f{n}", left, right, verdict)])
        else:
            items = []
            for k, (cid, title, isrc, dur) in enumerate(payload):
                items.append(song(f"e{n}.{k}", cid, isrc=ISRCS[isrc], title=TITLES[title], duration_s=215 + dur))
            off.run(items)
    assert_replays(off)
    for cid in CONTENT:
        entity = off.entity_of(cid)
        for other in off.store.constraints(cid).get("different", []):
            assert entity is None or off.entity_of(other) != entity, f"{cid} and {other} share {entity}"
        for other in off.store.constraints(cid).get("same", []):
            partner = off.entity_of(other)
            if entity and partner:
                # Must-link holds unless joining would put a must-not-link pair together (it wins).
                members = set(off.store.members(partner)) | set(off.store.members(entity))
                blocked = any(set(off.store.constraints(m).get("different", [])) & members for m in members)
                assert entity == partner or blocked, f"{cid} and {other} must be together"
    live = [e for e in off.table if e.startswith("e:") and not off.table[e].get("retired_into")]
    for key in live:
        for member in off.table[key]["members"]:
            assert off.entity_of(member) == key[2:]
    assert max(off.reexamined, default=0) <= 1 + LIMITS.max_entities


def test_a_split_by_feedback_honours_an_older_must_link_elsewhere() -> None:
    """Found by the property above: c0 = c2 then c0 != c2, with c1 = c2 held all along; the split
    that frees c2 from c0 must also join c2 with c1 (c1 != c0 kept them apart until then)."""
    script = [
        ("events", [("c0", 0, 0, 0)]),
        ("fb", ("c0", "c1", "different")),
        ("fb", ("c0", "c2", "same")),
        ("fb", ("c1", "c2", "same")),
        ("events", [("c1", 0, 0, 1), ("c2", 0, 0, 2)]),
        ("fb", ("c0", "c2", "different")),
    ]
    test_replayed_decisions_rebuild_the_live_state_and_constraints_hold.hypothesis.inner_test(script)  # type: ignore[attr-defined]


def test_one_contradicting_member_does_not_keep_an_item_out_of_its_entity() -> None:
    """C is the same as B but contradicts A (another ISRC), and A and B were merged: C merges
    where B scores it the same, and the re-examination after it splits the contradiction apart
    (it used to be kept out of the whole entity, NEW, because one member contradicted it)."""
    off = Offline()
    off.run([song("e1", "A", isrc="USX000000001")])
    off.run([song("e2", "B", duration_s=216)])
    assert off.entity_of("A") == off.entity_of("B")
    out = off.run([song("e3", "C", isrc="USX000000002", duration_s=216)])
    first = next(d for d in out if d.content_id == "C" and d.trigger == "content-event")
    assert first.action is Action.MERGE
    assert off.entity_of("C") != off.entity_of("A"), "the re-examination splits the contradiction"
    assert off.entity_of("C") == off.entity_of("B") or off.entity_of("B") == off.entity_of("A")
    assert_replays(off)


def test_curators_different_still_forbids_the_entity() -> None:
    off = Offline()
    off.run([song("e1", "A")])
    out = off.run([song("e2", "B")], [fb("f1", "B", "A", "different")])
    assert next(d for d in out if d.content_id == "B" and d.trigger == "content-event").action is not Action.MERGE
    assert off.entity_of("B") != off.entity_of("A")
