"""Entity state: which entity each content item belongs to, and each entity's members and work.

The state lives in any mutable mapping: a Faust table (changelogged to Kafka) in the worker,
a dict offline. Values are JSON-able and always re-assigned, never mutated in place, because
a Faust table only logs what is assigned.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from resolution.model import Action, Decision

WriteScope = Callable[[str], AbstractContextManager[Any]]


def _no_scope(_event_id: str) -> AbstractContextManager[Any]:
    return nullcontext()


class EntityStore:
    """``write_scope(event_id)`` wraps the writes a decision causes: a Faust table must know the
    source event of every write, to log it to that event's changelog partition."""

    def __init__(self, table: MutableMapping[str, Any], write_scope: WriteScope = _no_scope) -> None:
        self._table = table
        self._write_scope = write_scope

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

    def apply(self, decision: Decision, decision_id: str) -> None:
        with self._write_scope(decision.event_id):
            if decision.action in (Action.MERGE, Action.LINK, Action.NEW):
                self._join(decision.content_id, decision.entity_id, decision.work_id, decision)
            self._table[f"v:{decision.event_id}"] = decision_id

    def _join(self, content_id: str, entity_id: str, work_id: str, decision: Decision) -> None:
        previous = self.entity_of(content_id)
        if previous and previous != entity_id:
            old = self.entity(previous)
            if old is not None:
                self._table[f"e:{previous}"] = {**old, "members": [m for m in old["members"] if m != content_id]}
        record = self.entity(entity_id) or {
            "entity_id": entity_id,
            "work_id": work_id,
            "members": [],
            "relations": [],
        }
        members = record["members"] if content_id in record["members"] else [*record["members"], content_id]
        relations = list(record["relations"])
        if decision.related_entity_id and decision.relation is not None:
            link = [decision.relation.value, decision.related_entity_id]
            if link not in relations:
                relations.append(link)
        self._table[f"e:{entity_id}"] = {**record, "members": members, "relations": relations}
        self._table[f"c:{content_id}"] = entity_id
