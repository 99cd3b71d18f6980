"""Corrections on real services: SPLIT, REASSIGN-free chains, MERGE of entities, curator feedback,
and the decisions topic rebuilding the worker's live state."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from resolution.feedback import Feedback
from resolution.model import ContentItem
from streams.feedback import send_feedback
from streams.replay import fetch_json, rebuild_and_compare, worker_url
from telemetry import tracer_provider
from tests.integration.streaming import SCHEMAS, decisions, produce, wait_decisions
from tests.workers import wait_for

pytestmark = pytest.mark.integration


def song(event_id: str, content_id: str, isrc: str | None = None, duration_s: int = 215, **kw: str) -> ContentItem:
    return ContentItem(
        event_id=event_id,
        content_id=content_id,
        source=kw.get("source", "store-a"),
        kind="recording",
        title=kw.get("title", "Silver and Gold"),
        artists=(kw.get("artist", "Little Big Town"),),
        duration_ms=duration_s * 1000,
        isrc=isrc,
    )


def feedback(settings, *items: tuple[str, str, str, str]) -> None:
    tracing = tracer_provider("test-curator", settings.worker.otlp_endpoint)
    fbs = [Feedback(fid, left, right, verdict, "test", "", 1) for fid, left, right, verdict in items]
    send_feedback(settings.kafka, SCHEMAS.feedback, tracing.get_tracer("tests"), fbs)
    tracing.shutdown()


def placed(settings, content_ids: list[str]) -> dict[str, str]:
    """content id -> entity id in the worker's live state."""
    state = fetch_json(f"{worker_url(settings)}/state")
    return {cid: state.get(f"c:{cid}") for cid in content_ids}


def at_least(count: int, decisions: list[dict]) -> list[dict] | None:
    """The decisions once there are ``count`` of them (``wait_for`` polls until it is not None)."""
    return decisions if len(decisions) >= count else None


def by_event(settings, event_id: str) -> list[dict]:
    return [d for d in decisions(settings) if d["event_id"] == event_id]


def cli(worker, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "content_resolver.cli", *args],
        env={**os.environ, **worker.env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_chain_then_contradicting_evidence_splits_and_keeps_the_id(worker) -> None:
    s = worker.settings
    produce(s, [song("ch-1", "ch:A", isrc="USX000000001")])
    wait_decisions(s, {"ch-1"})
    produce(s, [song("ch-2", "ch:B", duration_s=216)])
    wait_decisions(s, {"ch-2"})
    produce(s, [song("ch-3", "ch:C", duration_s=217)])
    found = wait_decisions(s, {"ch-3"})
    entity = found["ch-3"][0]["entity_id"]
    assert placed(s, ["ch:A", "ch:B", "ch:C"]) == {"ch:A": entity, "ch:B": entity, "ch:C": entity}
    # C again, with an ISRC that contradicts A's: A != C, so the chain must split.
    produce(s, [song("ch-4", "ch:C", isrc="USX000000002", duration_s=217)])
    wait_decisions(s, {"ch-4"})
    split = wait_for(lambda: [d for d in by_event(s, "ch-4") if d["action"] == "SPLIT"], 30)
    assert len(split) == 1, by_event(s, "ch-4")
    d = split[0]
    assert d["previous_entity_ids"] == [entity] and d["members"] == ["ch:C"] and d["trigger"] == "re-resolution"
    assert d["new_entity_ids"] == [d["entity_id"]] and d["entity_id"] != entity
    assert d["trace_id"] == by_event(s, "ch-4")[0]["trace_id"], "a correction continues its event's trace"
    now = wait_for(lambda: (p := placed(s, ["ch:A", "ch:B", "ch:C"]))["ch:C"] != entity and p, 30)
    assert now == {"ch:A": entity, "ch:B": entity, "ch:C": d["entity_id"]}, "the larger part keeps the id"


def test_wrong_merge_corrected_by_curator_and_kept_apart(worker) -> None:
    s = worker.settings
    produce(s, [song("wm-1", "wm:A", title="Harbour Lights", artist="Marla Quinn")])
    wait_decisions(s, {"wm-1"})
    produce(s, [song("wm-2", "wm:B", title="Harbour Lights", artist="Marla Quinn", duration_s=216)])
    found = wait_decisions(s, {"wm-2"})
    assert found["wm-2"][0]["action"] == "MERGE", "the model merges them"
    entity = found["wm-2"][0]["entity_id"]
    # The curator says otherwise, through the command line.
    out = cli(worker, "feedback", "--different", "wm:A", "wm:B", "--curator", "ana", "--note", "other take")
    assert out.returncode == 0, out.stderr
    feedback_id = out.stdout.split()[1].rstrip(":")
    applied = wait_for(lambda: at_least(2, by_event(s, feedback_id)), 60)
    assert applied is not None, "the feedback was not applied within 60 s"
    assert [d["action"] for d in applied] == ["CONSTRAIN", "SPLIT"], applied
    assert applied[0]["verdict"] == "different" and applied[1]["trigger"] == "curator-feedback"
    # The same evidence again must not merge them back: the policy consults the constraint.
    produce(s, [song("wm-3", "wm:B", title="Harbour Lights", artist="Marla Quinn", duration_s=216)])
    wait_decisions(s, {"wm-3"})
    now = wait_for(lambda: (p := placed(s, ["wm:A", "wm:B"]))["wm:A"] != p["wm:B"] and p, 30)
    assert now and now["wm:A"] == entity
    # Inspection: lineage and the decisions that shaped it, each with its trace id.
    shown = cli(worker, "entity", entity)
    assert shown.returncode == 0, shown.stderr
    view = json.loads(shown.stdout)
    assert view["members"] == ["wm:A"]
    assert [h["action"] for h in view["lineage"]] == ["SPLIT"]
    assert all(len(h["trace_id"]) == 32 for h in view["decisions"]), view["decisions"]


def test_feedback_merges_entities_the_model_keeps_apart(worker) -> None:
    s = worker.settings
    produce(s, [song("mg-1", "mg:A", title="Quiet Harbour", artist="Ada Mireles")])
    wait_decisions(s, {"mg-1"})
    produce(s, [song("mg-2", "mg:B", title="Harbour at Dusk", artist="A. Mireles", duration_s=300)])
    wait_decisions(s, {"mg-2"})
    before = placed(s, ["mg:A", "mg:B"])
    assert before["mg:A"] != before["mg:B"]
    feedback(s, ("mg-f1", "mg:B", "mg:A", "same"))
    applied = wait_for(lambda: at_least(2, by_event(s, "mg-f1")), 60)
    assert applied is not None, "the feedback was not applied within 60 s"
    merge = [d for d in applied if d["action"] == "MERGE"]
    assert len(merge) == 1
    survivor = merge[0]["entity_id"]
    retired = merge[0]["previous_entity_ids"][0]
    assert {survivor, retired} == set(before.values())
    assert wait_for(lambda: set(placed(s, ["mg:A", "mg:B"]).values()) == {survivor}, 30)
    view = fetch_json(f"{worker_url(s)}/entity/{retired}")
    assert view["retired_into"] == survivor and view["current_entity_id"] == survivor and not view["live"]


def test_feedback_before_the_events_it_names(worker) -> None:
    s = worker.settings
    feedback(s, ("fe-f1", "fe:X", "fe:Y", "different"), ("fe-f2", "fe:P", "fe:Q", "same"))
    wait_for(lambda: by_event(s, "fe-f2"), 60)
    produce(s, [song("fe-1", "fe:X", title="Lanterns", artist="Isla Trent")])
    wait_decisions(s, {"fe-1"})
    produce(s, [song("fe-2", "fe:Y", title="Lanterns", artist="Isla Trent", duration_s=216)])
    produce(s, [song("fe-3", "fe:P", title="Morning Ferry", artist="Juno Vale")])
    wait_decisions(s, {"fe-2", "fe-3"})
    produce(s, [song("fe-4", "fe:Q", title="Paper Comets", artist="Tom Reyes", duration_s=190)])
    found = wait_decisions(s, {"fe-4"})
    assert found["fe-2"][0]["action"] != "MERGE" or found["fe-2"][0]["entity_id"] != found["fe-1"][0]["entity_id"]
    assert found["fe-4"][0]["action"] == "MERGE" and found["fe-4"][0]["reason"].startswith("curator feedback")
    now = wait_for(lambda: p if (p := placed(s, ["fe:X", "fe:Y", "fe:P", "fe:Q"]))["fe:Q"] else None, 30)
    assert now is not None, "fe:Q was never placed"
    assert now["fe:X"] != now["fe:Y"]
    assert now["fe:P"] == now["fe:Q"]


def test_rebuild_from_the_decisions_topic_equals_the_live_state(worker) -> None:
    s = worker.settings
    assert decisions(s), "earlier tests of this module produced decisions"
    report = wait_for(lambda: (r := rebuild_and_compare(s)).differing == 0 and r, 60) or rebuild_and_compare(s)
    assert report.differing == 0, report.examples
    assert report.entities > 0 and report.decisions > 10
    out = cli(worker, "rebuild")
    assert out.returncode == 0 and "EQUAL" in out.stdout, out.stdout + out.stderr


def test_a_restarted_worker_reads_the_newest_copy_of_keys_written_under_two_partitions(worker) -> None:
    """The corrections above wrote some entity records under two partitions (one copy in each
    partition's changelog and RocksDB). A restart brings the table back one partition at a time
    (from disk on RocksDB, from the changelog on the memory store); the live state must still
    equal the decisions topic replayed, through ``/state`` and through a point read (``/entity``)."""
    from resolution.entities import rebuild_state
    from streams.kafka import read_topic
    from streams.replay import decision_records

    s = worker.settings
    changelog = f"{s.worker.app_id}-entity-state-changelog"
    partitions: dict[str, set[int]] = {}
    for record in read_topic(s.kafka, changelog):
        key = json.loads(record.key or b'""')
        if isinstance(key, str) and key.startswith("e:"):
            partitions.setdefault(key[2:], set()).add(record.partition)
    spread = sorted(entity for entity, held in partitions.items() if len(held) > 1)
    assert spread, "no entity record was written under two partitions: this test would prove nothing"
    worker.stop(signal.SIGTERM)
    worker.start()
    report = wait_for(lambda: (r := rebuild_and_compare(s)).differing == 0 and r, 60) or rebuild_and_compare(s)
    assert report.differing == 0, report.examples
    rebuilt = rebuild_state(decision_records(s))
    for entity_id in spread:
        live = fetch_json(f"{worker_url(s)}/entity/{entity_id}", token=s.worker.web_token)
        assert live["members"] == rebuilt[f"e:{entity_id}"]["members"], entity_id
        assert live["retired_into"] == rebuilt[f"e:{entity_id}"]["retired_into"], entity_id
