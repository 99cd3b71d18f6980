"""Re-clustering a neighbourhood of entities from stored pair scores, and the moves that get there.

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
from collections.abc import Callable
from dataclasses import dataclass

from resolution.model import Action


def pair_key(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a < b else (b, a)


@dataclass(frozen=True)
class Move:
    source: str
    target: str
    members: tuple[str, ...]
    action: Action
    target_is_new: bool


def recluster(
    entities: dict[str, list[str]],
    edges: dict[tuple[str, str], float],
    must: set[tuple[str, str]],
    cannot: set[tuple[str, str]],
    merge_threshold: float,
    conflict_threshold: float,
) -> list[list[str]]:
    """The partition of the entities' members that the evidence and constraints support."""
    home = {m: e for e, ms in entities.items() for m in ms}
    hard: dict[str, set[str]] = {}
    soft: dict[str, set[str]] = {}
    for a, b in cannot:
        hard.setdefault(a, set()).add(b)
        hard.setdefault(b, set()).add(a)
    for (a, b), p in edges.items():
        if p <= conflict_threshold and (a, b) not in must:
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
        if p < merge_threshold:
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


def plan_moves(
    clusters: list[list[str]], entities: dict[str, list[str]], new_id: Callable[[list[str]], str]
) -> list[Move]:
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
