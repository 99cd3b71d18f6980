"""Entity state: which entity each content item belongs to, each entity's members, work, lineage,
the pair evidence and the curators' constraints.

The state lives in any mutable mapping: a Faust table (changelogged to Kafka) in the worker,
a dict offline. Values are JSON-able and always re-assigned, never mutated in place, because
a Faust table only logs what is assigned.

Keys: ``c:<content_id>`` -> entity id; ``e:<entity_id>`` -> the entity (``retired_into`` set once
merged away, so an old id still leads to its survivor); ``v:<event_id>`` -> the decision taken for
that event; ``d:<decision_id>`` -> its trace id (also "this decision is applied");
``g:<content_id>`` -> {other content id: p(same)} scored when the item was decided;
``k:<content_id>`` -> {"same": [...], "different": [...]} from curators.

``apply`` is the only writer, and it is pure in the decision: the worker and the replay of the
decisions topic (``rebuild_state``) call the same code, so the two states are equal.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, MutableMapping
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from resolution.model import MEDIA_LINK_BACK, Action, Decision

WriteScope = Callable[[str], AbstractContextManager[Any]]

HISTORY_LIMIT = 100  # decisions kept per entity for inspection; older ones stay on the topic
SAME_VERDICTS = ("same",)
APART_VERDICTS = ("different", "version_of", "video_of")


def _no_scope(_event_id: str) -> AbstractContextManager[Any]:
    return nullcontext()


class EntityStore:
    """``write_scope(event_id)`` wraps the writes a decision causes: a Faust table must know the
    source event of every write, to log it to that event's changelog partition."""

    def __init__(self, table: MutableMapping[str, Any], write_scope: WriteScope = _no_scope) -> None:
        self._table = table
        self._write_scope = write_scope

    # --- reads -------------------------------------------------------------------------------

    def entity_of(self, content_id: str) -> str | None:
        return self._table.get(f"c:{content_id}")

    def entity(self, entity_id: str) -> dict[str, Any] | None:
        return self._table.get(f"e:{entity_id}")

    def work_of(self, entity_id: str) -> str | None:
        record = self.entity(entity_id)
        return record["work_id"] if record else None

    def members(self, entity_id: str) -> list[str]:
        record = self.entity(entity_id)
        return list(record["members"]) if record else []

    def decision_for(self, event_id: str) -> str | None:
        """The decision id already taken for this event id, if any (duplicate deliveries)."""
        return self._table.get(f"v:{event_id}")

    def applied(self, decision_id: str) -> bool:
        return self._table.get(f"d:{decision_id}") is not None

    def trace_of(self, decision_id: str) -> str:
        return self._table.get(f"d:{decision_id}") or ""

    def resolve_id(self, entity_id: str) -> str:
        """The live entity an id stands for now: itself, or the survivor it was merged into."""
        seen = {entity_id}
        record = self.entity(entity_id)
        while record is not None and record.get("retired_into"):
            entity_id = record["retired_into"]
            if entity_id in seen:  # cannot happen by construction; never loop on bad state
                break
            seen.add(entity_id)
            record = self.entity(entity_id)
        return entity_id

    def edges(self, content_id: str) -> dict[str, float]:
        return self._table.get(f"g:{content_id}") or {}

    def constraints(self, content_id: str) -> dict[str, list[str]]:
        return self._table.get(f"k:{content_id}") or {}

    def describe(self, entity_id: str) -> dict[str, Any] | None:
        """An entity for people: members, relations (to live ids), lineage and decisions with trace ids."""
        record = self.entity(entity_id)
        if record is None:
            return None
        current = self.resolve_id(entity_id)
        history = [{**h, "trace_id": self.trace_of(h["decision_id"])} for h in record.get("history", [])]
        return {
            "entity_id": entity_id,
            "live": not record.get("retired_into"),
            "retired_into": record.get("retired_into"),
            "current_entity_id": current,
            "work_id": record["work_id"],
            "members": list(record["members"]),
            "relations": [[rel, self.resolve_id(other)] for rel, other in record["relations"]],
            "lineage": [h for h in history if h["action"] in ("MERGE", "SPLIT", "REASSIGN") and h.get("from")],
            "decisions": history,
        }

    # --- the one writer ----------------------------------------------------------------------

    def apply(self, decision: Decision, decision_id: str | None = None) -> None:
        decision_id = decision_id or decision.decision_id
        with self._write_scope(decision.event_id):
            if decision.action is Action.CONSTRAIN:
                self._constrain(decision)
                self._table[f"v:{decision.event_id}"] = decision_id
            elif decision.moves_members:
                self._move(decision, decision_id)
            else:
                self._join(decision.content_id, decision.entity_id, decision.work_id, decision, decision_id)
                if decision.trigger != MEDIA_LINK_BACK:  # v: names the event's own decision
                    self._table[f"v:{decision.event_id}"] = decision_id
            if self._table.get(f"d:{decision_id}") is None:
                self._table[f"d:{decision_id}"] = ""

    def note_trace(self, decision_id: str, trace_id: str, event_id: str) -> None:
        with self._write_scope(event_id):
            self._table[f"d:{decision_id}"] = trace_id

    def _join(self, content_id: str, entity_id: str, work_id: str, decision: Decision, decision_id: str) -> None:
        previous = self.entity_of(content_id)
        if previous and previous != entity_id:
            old = self.entity(previous)
            if old is not None:
                self._table[f"e:{previous}"] = {**old, "members": [m for m in old["members"] if m != content_id]}
        record = self._record(entity_id, work_id)
        members = record["members"] if content_id in record["members"] else [*record["members"], content_id]
        relations = list(record["relations"])
        if decision.trigger == MEDIA_LINK_BACK:
            relations = [r for r in relations if r[1] not in decision.previous_entity_ids]
        if decision.related_entity_id and decision.relation is not None:
            link = [decision.relation.value, decision.related_entity_id]
            if link not in relations:
                relations.append(link)
        entry = _history_entry(decision, decision_id, [], entity_id)
        self._table[f"e:{entity_id}"] = {
            **record,
            "members": members,
            "relations": relations,
            "history": _append(record, entry),
        }
        self._table[f"c:{content_id}"] = entity_id
        evidence = {
            c.candidate.content_id: round(float(c.probabilities.get("same", -1.0)), 4)
            for c in decision.candidates
            if c.probabilities.get("same", -1.0) >= 0.0 and c.candidate.content_id != content_id
        }
        if evidence:
            # A correction adds to the evidence the item's own decision recorded.
            earlier = self.edges(content_id) if decision.trigger != "content-event" else {}
            self._table[f"g:{content_id}"] = {**earlier, **evidence}

    def _move(self, decision: Decision, decision_id: str) -> None:
        """Members move from the one previous entity to ``entity_id``; an emptied entity is retired
        with a pointer to where its last members went."""
        source_id = decision.previous_entity_ids[0]
        target_id = decision.entity_id
        moved = list(decision.members)
        source = self.entity(source_id)
        target = self._record(target_id, decision.work_id)
        entry = _history_entry(decision, decision_id, [source_id], target_id)
        remaining = [m for m in (source["members"] if source else []) if m not in set(moved)]
        relations = list(target["relations"])
        if source is not None and not remaining:
            for link in source["relations"]:
                if link[1] != target_id and link not in relations:
                    relations.append(link)
        self._table[f"e:{target_id}"] = {
            **target,
            "members": [*target["members"], *[m for m in moved if m not in set(target["members"])]],
            "relations": relations,
            "history": _append(target, entry),
        }
        if source is not None:
            self._table[f"e:{source_id}"] = {
                **source,
                "members": remaining,
                "retired_into": None if remaining else target_id,
                "history": _append(source, entry),
            }
        for member in moved:
            self._table[f"c:{member}"] = target_id

    def _constrain(self, decision: Decision) -> None:
        left, right = decision.members[0], decision.members[1]
        same = decision.verdict in SAME_VERDICTS
        for one, other in ((left, right), (right, left)):
            held = self.constraints(one)
            keep, drop = ("same", "different") if same else ("different", "same")
            # The latest verdict on a pair replaces an earlier, opposite one.
            updated = {
                keep: sorted({*held.get(keep, []), other}),
                drop: [x for x in held.get(drop, []) if x != other],
            }
            self._table[f"k:{one}"] = {k: v for k, v in updated.items() if v}

    def _record(self, entity_id: str, work_id: str) -> dict[str, Any]:
        return self.entity(entity_id) or {
            "entity_id": entity_id,
            "work_id": work_id,
            "members": [],
            "relations": [],
            "retired_into": None,
            "history": [],
        }


def _history_entry(decision: Decision, decision_id: str, sources: list[str], target: str) -> dict[str, Any]:
    return {
        "decision_id": decision_id,
        "action": decision.action.value,
        "event_id": decision.event_id,
        "content_id": decision.content_id,
        "trigger": decision.trigger,
        "from": sources,
        "to": target,
        "moved": list(decision.members) if decision.moves_members else [decision.content_id],
        "reason": decision.reason[:200],
    }


def _append(record: dict[str, Any], entry: dict[str, Any]) -> list[dict[str, Any]]:
    history = [h for h in record.get("history", []) if h["decision_id"] != entry["decision_id"]]
    return [*history, entry][-HISTORY_LIMIT:]


def rebuild_state(records: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The state the decisions imply, replayed in the order they were applied (``sequence``)."""
    ordered = sorted(records, key=lambda r: (int(r.get("sequence") or 0), int(r.get("decided_at_ms") or 0)))
    table: dict[str, Any] = {}
    store = EntityStore(table)
    for record in ordered:
        store.apply(Decision.from_record(record), record["decision_id"])
        store.note_trace(record["decision_id"], record.get("trace_id") or "", record["event_id"])
    return table


def cluster_rows(table: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(content id, entity id, work id) of every content item in a state, sorted by content id:
    the current clustering, with corrections applied (retired entities resolved to survivors)."""
    store = EntityStore(table)
    rows = []
    for key in sorted(k for k in table if k.startswith("c:")):
        content_id = key[2:]
        entity_id = store.resolve_id(table[key])
        rows.append((content_id, entity_id, store.work_of(entity_id) or entity_id))
    return rows


STATE_PREFIXES = ("c:", "e:", "v:", "d:", "g:", "k:")


def state_differences(live: dict[str, Any], rebuilt: dict[str, Any], limit: int = 20) -> tuple[int, list[str]]:
    """How many resolution keys differ between two states, and a description of the first few."""
    keys = {k for k in (*live, *rebuilt) if k.startswith(STATE_PREFIXES)}
    differing = sorted(k for k in keys if live.get(k) != rebuilt.get(k))
    lines = [f"{k}: live={live.get(k)!r} rebuilt={rebuilt.get(k)!r}"[:400] for k in differing[:limit]]
    return len(differing), lines
