"""Corrections over time: re-examining a bounded neighbourhood when new evidence contradicts
earlier decisions, and applying curators' feedback as hard constraints.

The evidence is what the resolver already scored: every decided item keeps p(same) against its
candidates (``g:`` in ``EntityStore``). Re-examination re-clusters the members of a few entities
from that evidence, without calling a model again, so it costs table reads only:

1. each entity starts as one cluster, unless it holds a contradiction inside (a must-not-link
   pair, or a pair scored p(same) <= ``conflict_threshold``): then its members start apart;
2. must-link pairs join their clusters (a must-not-link between them wins: those clusters
   start apart and are tried again);
3. positive pairs (p(same) >= ``merge_threshold``), strongest first, join their clusters
   unless a contradiction lies between them (constrained single linkage).

The new partition is turned into entity-level decisions: the part holding most of an entity's
members keeps its id (ties: the larger entity, then the smaller id), an entity whose members all
leave is retired into where they went (``MERGE``), members leaving an entity that stays are
``REASSIGN``-ed to an existing entity or ``SPLIT`` into a new one.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from resolution.entities import APART_VERDICTS, SAME_VERDICTS, EntityStore
from resolution.model import Action, Decision, Relation, ScoredCandidate, stable_id

VERDICTS = (*SAME_VERDICTS, *APART_VERDICTS)


@dataclass(frozen=True)
class Feedback:
    """A curator's judgement on two content items (``CuratorFeedback.avsc``)."""

    feedback_id: str
    left: str
    right: str
    verdict: str
    curator: str
    note: str = ""
    created_at_ms: int = 0

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Feedback:
        return cls(
            feedback_id=record["feedback_id"],
            left=record["left_content_id"],
            right=record["right_content_id"],
            verdict=record["verdict"],
            curator=record["curator"],
            note=record.get("note", ""),
            created_at_ms=int(record.get("created_at_ms") or 0),
        )

    def to_record(self) -> dict[str, Any]:
        return {
            "feedback_id": self.feedback_id,
            "left_content_id": self.left,
            "right_content_id": self.right,
            "verdict": self.verdict,
            "curator": self.curator,
            "note": self.note,
            "created_at_ms": self.created_at_ms,
        }


@dataclass(frozen=True)
class CorrectionLimits:
    merge_threshold: float = 0.5
    # An item scoring at least this with members of two entities binds them.
    bind_threshold: float = 0.5
    # A pair scored at most this is evidence that the two are not the same.
    conflict_threshold: float = 0.05
    # Work per event: entities re-examined beyond the trigger's own, and their members in all.
    max_entities: int = 8
    max_members: int = 200


@dataclass
class Correction:
    decisions: list[Decision] = field(default_factory=list)
    examined: int = 0  # entities re-examined


@dataclass(frozen=True)
class Move:
    source: str
    target: str
    members: tuple[str, ...]
    action: Action
    target_is_new: bool


class Corrector:
    def __init__(self, store: EntityStore, limits: CorrectionLimits) -> None:
        self._store = store
        self.limits = limits

    # --- consulted before each decision --------------------------------------------------------

    def forbidden_entities(self, content_id: str, scored: list[ScoredCandidate]) -> set[str]:
        """Entities this item must not be merged into: they hold an item a curator said is
        different, or one scored as contradicting it."""
        out = {e for other in self._store.constraints(content_id).get("different", []) if (e := self._entity(other))}
        for c in scored:
            if 0.0 <= c.probabilities.get("same", -1.0) <= self.limits.conflict_threshold and c.candidate.entity_id:
                out.add(c.candidate.entity_id)
        return out

    def must_link_target(self, content_id: str) -> tuple[str, str] | None:
        """(entity, partner) when a curator said this item is the same as one already placed."""
        for other in sorted(self._store.constraints(content_id).get("same", [])):
            entity = self._entity(other)
            if entity:
                return entity, other
        return None

    # --- after each decision -------------------------------------------------------------------

    def after_decision(self, decision: Decision) -> Correction:
        """Re-examines the item's neighbourhood when its evidence contradicts the state."""
        cid = decision.content_id
        own = self._entity(cid)
        if own is None:
            return Correction()
        edges = self._store.edges(cid)
        constraints = self._store.constraints(cid)
        conflict = False
        bound: dict[str, float] = {}
        for other, p in edges.items():
            entity = self._entity(other)
            if entity is None:
                continue
            if entity == own and p <= self.limits.conflict_threshold:
                conflict = True
            elif entity != own and p >= self.limits.bind_threshold:
                bound[entity] = max(bound.get(entity, 0.0), p)
        if bound:
            # Not worth re-examining what the item itself contradicts.
            for other, p in edges.items():
                if p <= self.limits.conflict_threshold:
                    bound.pop(self._entity(other) or "", None)
        for other in constraints.get("different", []):
            conflict = conflict or self._entity(other) == own
        linked = {e for other in constraints.get("same", []) if (e := self._entity(other)) and e != own}
        if not (conflict or bound or linked):
            return Correction()
        others = sorted(linked) + sorted(bound, key=lambda e: (-bound[e], e))
        why = "contradicting evidence" if conflict else "must-link feedback" if linked else "binding evidence"
        reason = f"re-resolution after {decision.event_id} ({cid}): {why}"
        return self.reexamine([own], others, decision.event_id, cid, "re-resolution", reason)

    def feedback_decisions(self, fb: Feedback) -> Correction:
        """The decisions that apply one feedback: CONSTRAIN (recorded even when the items are not
        known yet, so it holds when they arrive), then whatever the constraint changes."""
        entity = self._entity(fb.left) or ""
        constrain = Decision(
            event_id=fb.feedback_id,
            content_id=fb.left,
            action=Action.CONSTRAIN,
            entity_id=entity,
            work_id=self._store.work_of(entity) or "" if entity else "",
            confidence=1.0,
            reason=f"curator {fb.curator}: {fb.left} {fb.verdict} {fb.right}" + (f" ({fb.note})" if fb.note else ""),
            members=(fb.left, fb.right),
            trigger="curator-feedback",
            verdict=fb.verdict,
        )
        return Correction([constrain], 0)

    def after_feedback(self, fb: Feedback) -> Correction:
        """Runs once the CONSTRAIN decision is applied: re-clusters the two items' entities."""
        left, right = self._entity(fb.left), self._entity(fb.right)
        own = [e for e in dict.fromkeys((left, right)) if e]
        if not own:
            return Correction()
        reason = f"curator feedback {fb.feedback_id}: {fb.left} {fb.verdict} {fb.right}"
        correction = self.reexamine(own, [], fb.feedback_id, fb.left, "curator-feedback", reason)
        if fb.verdict in ("version_of", "video_of"):
            left, right = self._entity_after(fb.left, correction), self._entity_after(fb.right, correction)
            if left and right and left != right:
                correction.decisions.append(
                    Decision(
                        event_id=fb.feedback_id,
                        content_id=fb.left,
                        action=Action.LINK,
                        entity_id=left,
                        work_id=self._store.work_of(left) or left,
                        confidence=1.0,
                        related_entity_id=right,
                        relation=Relation(fb.verdict),
                        reason=reason,
                        trigger="curator-feedback",
                    )
                )
        return correction

    def _entity_after(self, content_id: str, correction: Correction) -> str | None:
        entity = self._entity(content_id)
        for d in correction.decisions:
            if content_id in d.members and d.moves_members:
                entity = d.entity_id
        return entity

    # --- re-examination ------------------------------------------------------------------------

    def reexamine(
        self, own: list[str], others: list[str], event_id: str, content_id: str, trigger: str, reason: str
    ) -> Correction:
        """Re-clusters ``own`` (always) plus as many of ``others`` as the limits allow."""
        members: dict[str, list[str]] = {e: self._store.members(e) for e in own}
        total = sum(len(m) for m in members.values())
        for entity in others:
            if len(members) >= len(own) + self.limits.max_entities:
                break
            if entity in members:
                continue
            found = self._store.members(entity)
            if total + len(found) > self.limits.max_members:
                continue
            members[entity] = found
            total += len(found)
        nodes = [m for ms in members.values() for m in ms]
        node_set = set(nodes)
        edges: dict[tuple[str, str], float] = {}
        must: set[tuple[str, str]] = set()
        cannot: set[tuple[str, str]] = set()
        for node in nodes:
            for other, p in self._store.edges(node).items():
                if other in node_set and other != node:
                    pair = _pair(node, other)
                    edges[pair] = min(p, edges.get(pair, p))  # newer contradicting evidence wins
            held = self._store.constraints(node)
            must.update(_pair(node, o) for o in held.get("same", []) if o in node_set and o != node)
            cannot.update(_pair(node, o) for o in held.get("different", []) if o in node_set and o != node)
        clusters = recluster(members, edges, must, cannot, self.limits)
        moves = plan_moves(clusters, members, lambda part: stable_id("ent", event_id, "split", min(part)))
        decisions = []
        for move in moves:
            work = self._store.work_of(move.target) if not move.target_is_new else None
            decisions.append(
                Decision(
                    event_id=event_id,
                    content_id=content_id,
                    action=move.action,
                    entity_id=move.target,
                    work_id=work or self._store.work_of(move.source) or move.target,
                    confidence=1.0,
                    reason=f"{reason}; {len(members)} entities re-examined",
                    previous_entity_ids=(move.source,),
                    members=move.members,
                    trigger=trigger,
                    new_entity_ids=(move.target,) if move.action is Action.SPLIT else (),
                )
            )
        return Correction(decisions, len(members))

    def _entity(self, content_id: str) -> str | None:
        return self._store.entity_of(content_id)


def _pair(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a < b else (b, a)


def recluster(
    entities: dict[str, list[str]],
    edges: dict[tuple[str, str], float],
    must: set[tuple[str, str]],
    cannot: set[tuple[str, str]],
    limits: CorrectionLimits,
) -> list[list[str]]:
    """The partition of the entities' members that the evidence and constraints support."""
    home = {m: e for e, ms in entities.items() for m in ms}
    hard: dict[str, set[str]] = {}
    soft: dict[str, set[str]] = {}
    for a, b in cannot:
        hard.setdefault(a, set()).add(b)
        hard.setdefault(b, set()).add(a)
    for (a, b), p in edges.items():
        if p <= limits.conflict_threshold and (a, b) not in must:
            soft.setdefault(a, set()).add(b)
            soft.setdefault(b, set()).add(a)

    def contradicts(xs: set[str], ys: set[str], hard_only: bool) -> bool:
        return any(hard.get(x, set()) & ys or (not hard_only and soft.get(x, set()) & ys) for x in xs)

    apart = {e for e, ms in entities.items() if contradicts(set(ms), set(ms), hard_only=False)}
    while True:
        groups = _Groups(home)
        for e, ms in entities.items():
            if e not in apart:
                for m in ms[1:]:
                    groups.join(ms[0], m)
        restart = False
        for a, b in sorted(must):
            ra, rb = groups.find(a), groups.find(b)
            if ra == rb:
                continue
            if contradicts(groups.members[ra], groups.members[rb], hard_only=True):
                owners = {home[a], home[b]} - apart
                if owners:
                    apart |= owners
                    restart = True
                    break
                continue  # contradictory curators: must-not-link wins
            groups.join(a, b)
        if not restart:
            break
    for (a, b), p in sorted(edges.items(), key=lambda kv: (-kv[1], kv[0])):
        if p < limits.merge_threshold:
            break
        ra, rb = groups.find(a), groups.find(b)
        if ra != rb and not contradicts(groups.members[ra], groups.members[rb], hard_only=False):
            groups.join(a, b)
    return groups.partition()


class _Groups:
    """Union-find that also keeps each group's members (groups are small)."""

    def __init__(self, home: dict[str, str]) -> None:
        self._parent = {m: m for m in home}
        self.members: dict[str, set[str]] = {m: {m} for m in home}

    def find(self, x: str) -> str:
        while self._parent[x] != x:
            self._parent[x] = self._parent[self._parent[x]]
            x = self._parent[x]
        return x

    def join(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return
        if len(self.members[ra]) < len(self.members[rb]) or (
            len(self.members[ra]) == len(self.members[rb]) and rb < ra
        ):
            ra, rb = rb, ra
        self._parent[rb] = ra
        self.members[ra] |= self.members.pop(rb)

    def partition(self) -> list[list[str]]:
        return sorted((sorted(ms) for ms in self.members.values()), key=lambda ms: (-len(ms), ms[0]))


def plan_moves(clusters: list[list[str]], entities: dict[str, list[str]], new_id: Any) -> list[Move]:
    """Entity-level moves that turn the current entities into ``clusters`` (none if equal)."""
    home = {m: e for e, ms in entities.items() for m in ms}
    sizes = {e: len(ms) for e, ms in entities.items()}
    taken: set[str] = set()
    wanted: list[tuple[str, list[str], bool]] = []
    for cluster in sorted(clusters, key=lambda c: (-len(c), min(c))):
        counts = Counter(home[m] for m in cluster)
        options = sorted(counts, key=lambda e: (-counts[e], -sizes[e], e))
        chosen = next((e for e in options if e not in taken), None)
        is_new = chosen is None
        target = new_id(cluster) if chosen is None else chosen
        taken.add(target)
        wanted.append((target, cluster, is_new))
    remaining = dict(sizes)
    exists = set(entities)
    moves: list[Move] = []
    for target, cluster, is_new in wanted:
        by_source: dict[str, list[str]] = {}
        for m in cluster:
            if home[m] != target:
                by_source.setdefault(home[m], []).append(m)
        for source in sorted(by_source):
            moved = tuple(sorted(by_source[source]))
            remaining[source] -= len(moved)
            if target not in exists:
                action = Action.SPLIT
            elif remaining[source] == 0:
                action = Action.MERGE
            else:
                action = Action.REASSIGN
            moves.append(Move(source, target, moved, action, is_new and target not in exists))
            exists.add(target)
    return moves
