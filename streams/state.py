"""Entity state that is written only after the decisions it reflects are on Kafka.

The resolver reads and writes state while it decides a batch. Those writes are staged here and
reach the Faust table (and so its changelog) only once the batch's decisions have been
acknowledged, so the changelog never runs ahead of the decisions topic. After a crash, the
state is brought up to the decisions topic by replaying its tail (``streams.recovery``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, MutableMapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

_MISSING = object()


class StagedTable(MutableMapping[str, Any]):
    """Read-your-writes overlay on a table; ``flush`` applies, ``discard`` forgets the batch."""

    def __init__(
        self,
        table: MutableMapping[str, Any],
        read_scope: Callable[[], AbstractContextManager[Any]] = nullcontext,
    ) -> None:
        """``read_scope`` wraps every read of the table (the worker reads with no current event,
        so a partitioned store answers from every partition this worker holds)."""
        self._table = table
        self._read_scope = read_scope
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

    def __getitem__(self, key: str) -> Any:
        value = self._staged.get(key, _MISSING)
        if value is _MISSING:
            with self._read_scope():
                return self._table[key]
        if value is None:
            raise KeyError(key)
        return value

    def get(self, key: str, default: Any = None) -> Any:
        value = self._staged.get(key, _MISSING)
        if value is _MISSING:
            with self._read_scope():
                return self._table.get(key, default)
        return default if value is None else value

    def __setitem__(self, key: str, value: Any) -> None:
        self._staged[key] = value
        self._origin[key] = self._current

    def __delitem__(self, key: str) -> None:
        self._staged[key] = None
        self._origin[key] = self._current

    def __iter__(self) -> Iterator[str]:
        seen = set()
        for key, value in self._staged.items():
            seen.add(key)
            if value is not None:
                yield key
        for key in self._table:  # Faust iterates every partition held, whatever the current event
            if key not in seen:
                yield key

    def __len__(self) -> int:
        return sum(1 for _ in self)

    @property
    def pending(self) -> int:
        return len(self._staged)

    def flush(self, scope: Callable[[Any], AbstractContextManager[Any]]) -> None:
        """Writes the staged changes to the table, each under the scope of its origin."""
        for key, value in self._staged.items():
            with scope(self._origin.get(key)):
                if value is None:
                    self._table.pop(key, None)
                else:
                    self._table[key] = value
        self.discard()

    def discard(self) -> None:
        self._staged.clear()
        self._origin.clear()
