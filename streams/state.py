"""Entity state that is written only after the decisions it reflects are on Kafka.

The resolver reads and writes state while it decides a batch. Those writes are staged here and
reach the Faust table (and so its changelog) only once the batch's decisions have been
acknowledged, so the changelog never runs ahead of the decisions topic. After a crash, the
state is brought up to the decisions topic by replaying its tail (``streams.recovery``).

**One key, several partitions.** A key is written under the partition of the event that changed
it (its changelog partition is that event's: what recovery and a rebalance need), so a key that
events of two partitions changed (an entity merged into from elsewhere, a member moved by a
correction) has one copy in each partition's changelog, and in each partition's RocksDB. Every
value is therefore stored with a version (``versioned``), from a clock that only moves forward
(``VersionClock``), and a read takes the newest copy of every partition held (``newest``), the
same answer whatever order the partitions were recovered or are searched in. A deletion is a
versioned tombstone, so it too supersedes the copies in other partitions.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping
from contextlib import AbstractContextManager, contextmanager
from typing import Any

_MISSING = object()
VERSION, VALUE = "version", "value"

# Every stored copy of a key, one per partition that holds one (any order).
Copies = Callable[[str], list[Any]]


def versioned(value: Any, version: int) -> dict[str, Any]:
    """The stored form of a value (``None``: a tombstone)."""
    return {VERSION: version, VALUE: value}


def _is_versioned(stored: Any) -> bool:
    return isinstance(stored, dict) and len(stored) == 2 and VERSION in stored and VALUE in stored


def version_of(stored: Any) -> int:
    """A copy's version; a value stored before versions existed is older than any versioned one."""
    return int(stored[VERSION]) if _is_versioned(stored) else 0


def value_of(stored: Any) -> Any:
    """The value a stored copy holds (``None`` for a tombstone)."""
    return stored[VALUE] if _is_versioned(stored) else stored


def newest(copies: Iterable[Any]) -> Any:
    """The copy with the highest version (``None`` when there is none); on a tie the first, which
    only a value written before versions existed can cause."""
    best: Any = None
    for copy in copies:
        if copy is not None and (best is None or version_of(copy) > version_of(best)):
            best = copy
    return best


def newest_items(items: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    """key -> value of the newest copy of each key, tombstones left out: a whole state, from an
    iteration that yields a key once per partition holding it."""
    best: dict[str, Any] = {}
    for key, stored in items:
        held = best.get(key, _MISSING)
        if held is _MISSING or version_of(stored) > version_of(held):
            best[key] = stored
    return {key: value_of(stored) for key, stored in best.items() if value_of(stored) is not None}


def single_copy(table: Mapping[str, Any]) -> Copies:
    """The copies of a mapping that holds one per key (a dict)."""

    def copies(key: str) -> list[Any]:
        stored = table.get(key)
        return [] if stored is None else [stored]

    return copies


class VersionClock:
    """Versions that only grow: past the last one given, past every version read (so a write
    supersedes what it was computed from, even from a worker whose clock is ahead), and at least
    the wall clock in nanoseconds (so a restarted worker starts past its previous run)."""

    def __init__(self, now_ns: Callable[[], int] = time.time_ns) -> None:
        self._now_ns = now_ns
        self._last = 0

    def observe(self, version: int) -> None:
        self._last = max(self._last, version)

    def next(self) -> int:
        self._last = max(self._last + 1, self._now_ns())
        return self._last


class StagedTable(MutableMapping[str, Any]):
    """Read-your-writes overlay on a table; ``flush`` applies, ``discard`` forgets the batch."""

    def __init__(
        self, table: MutableMapping[str, Any], copies: Copies | None = None, clock: VersionClock | None = None
    ) -> None:
        """``copies(key)``: every stored copy of a key in the table (``single_copy`` for a dict;
        the worker's reads every partition it holds, ``faust_adapter.partition_copies``)."""
        self._table = table
        self._copies = copies or single_copy(table)
        self._clock = clock or VersionClock()
        self._staged: dict[str, Any] = {}
        self._origin: dict[str, Any] = {}
        self._current: Any = None

    @contextmanager
    def writing_for(self, origin: Any) -> Iterator[None]:
        """Staged writes inside remember ``origin`` (the source partition), for ``flush``."""
        previous, self._current = self._current, origin
        try:
            yield
        finally:
            self._current = previous

    def _stored(self, key: str) -> Any:
        """The table's current value of ``key`` (``None``: none), from its newest copy."""
        copy = newest(self._copies(key))
        if copy is None:
            return None
        self._clock.observe(version_of(copy))
        return value_of(copy)

    def __getitem__(self, key: str) -> Any:
        value = self._staged.get(key, _MISSING)
        if value is _MISSING:
            value = self._stored(key)
        if value is None:
            raise KeyError(key)
        return value

    def get(self, key: str, default: Any = None) -> Any:
        value = self._staged.get(key, _MISSING)
        if value is _MISSING:
            value = self._stored(key)
        return default if value is None else value

    def __setitem__(self, key: str, value: Any) -> None:
        self._staged[key] = value
        self._origin[key] = self._current

    def __delitem__(self, key: str) -> None:
        self._staged[key] = None
        self._origin[key] = self._current

    def __iter__(self) -> Iterator[str]:
        """Not for hot paths: reads the whole table (every partition held, once per copy)."""
        seen = set()
        for key, value in self._staged.items():
            seen.add(key)
            if value is not None:
                yield key
        for key in newest_items(self._table.items()):
            if key not in seen:
                yield key

    def __len__(self) -> int:
        return sum(1 for _ in self)

    @property
    def pending(self) -> int:
        return len(self._staged)

    def flush(self, scope: Callable[[Any], AbstractContextManager[Any]]) -> None:
        """Writes the staged changes to the table, each under the scope of its origin, all with
        one new version (a deletion as a tombstone, so it supersedes other partitions' copies)."""
        version = self._clock.next()
        for key, value in self._staged.items():
            with scope(self._origin.get(key)):
                self._table[key] = versioned(value, version)
        self.discard()

    def discard(self) -> None:
        self._staged.clear()
        self._origin.clear()
