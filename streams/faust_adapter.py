"""Every use of Faust's private internals, in one place.

The delivery guarantee rests on things Faust has no public API for: which event is "current"
(table writes go to that event's changelog partition; with none, reads see every partition
held), every partition's copy of a table key (Faust's RocksDB store answers with the first it
finds; the resolver wants the newest, ``streams.state``), which copy the memory store keeps when
it recovers several, the offset a consumer resumed reading from (to tell a skipped batch), its
flow state (for the log of a stall), and its gap acknowledgement (which would commit past dropped
messages).
Each access is marked ``SLF001`` with why; ``missing_internals`` checks they are all still
there, and a unit test runs it, so a Faust upgrade that changes them fails loudly instead of
losing messages quietly.
"""

from __future__ import annotations

import asyncio
import inspect
import io
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import faust
import faust.streams as faust_streams
from faust import stores as faust_stores
from faust.stores.memory import Store as FaustMemoryStore
from faust.stores.rocksdb import Store as FaustRocksDBStore
from faust.transport.consumer import Consumer as FaustConsumer
from faust.types import TP, EventT

from streams.state import Copies, version_of

# What this adapter was written and checked against (pyproject pins it).
FAUST_VERSION = "0.15.3"
# Instance attributes of Faust's consumer read here.
CONSUMER_ATTRIBUTES = ("_committed_offset", "_read_offset", "_paused_partitions")


@contextmanager
def as_current_event(event: Any) -> Iterator[None]:
    """Makes ``event`` Faust's current event, so table writes go to its changelog partition."""
    # A batch's state is written after the agent has moved on; Faust only exposes the contextvar.
    current: ContextVar[Any] = faust_streams._current_event  # noqa: SLF001 - no public setter
    token = current.set(weakref.ref(event)) if event is not None else None
    try:
        yield
    finally:
        if token is not None:
            current.reset(token)


@contextmanager
def no_current_event() -> Iterator[None]:
    """Faust's RocksDB store reads only the current event's partition when there is one; the
    resolver reads the state of every partition this worker holds, as with the memory store."""
    current: ContextVar[Any] = faust_streams._current_event  # noqa: SLF001 - no public way to clear it
    token = current.set(None)
    try:
        yield
    finally:
        current.reset(token)


def partition_copies(table: Any) -> Copies:
    """``copies(key)``: the stored copy of ``key`` in every partition of ``table`` this worker
    holds. Faust's RocksDB store keeps one DB per partition and answers a read from the first DB
    that has the key (or the one its bounded key index last saw), which after a restart can be
    an older copy; this reads each. The memory store keeps one copy per key (``NewestCopyMemoryStore``
    makes it the newest on recovery too)."""

    def copies(key: str) -> list[Any]:
        store = table.data
        if isinstance(store, FaustRocksDBStore):
            # No public way to read one partition's DB without making an event current.
            raw_key = store._encode_key(key)  # noqa: SLF001 - the bytes Faust stored the key as
            found = []
            for db in list(store._dbs.values()):  # noqa: SLF001 - every partition DB held, whatever the key index says
                if db.key_may_exist(raw_key):  # bloom filter: a miss costs no disk read
                    raw = db.get(raw_key)
                    if raw is not None:
                        found.append(store._decode_value(raw))  # noqa: SLF001 - as Faust decodes it
            return found
        with no_current_event():
            stored = table.get(key)
        return [] if stored is None else [stored]

    return copies


class NewestCopyMemoryStore(FaustMemoryStore):
    """Faust's memory store, except that recovery keeps the newest copy of a key.

    Faust applies the changelog of every partition into one dict, last applied wins, and the
    partitions are replayed in no fixed order: a key written under two partitions could come
    back as its older copy after a restart. In a running worker the dict already holds the
    newest (each write replaces it)."""

    def apply_changelog_batch(self, batch: Any, to_key: Any, to_value: Any) -> None:
        events: list[EventT] = list(batch)
        for event in events:
            key = to_key(event.key)
            if event.message.value is None:  # a Kafka tombstone (a table dropped by Faust): as Faust does
                self.data.pop(key, None)
                # Faust internal (the subclass's own attribute, so not an SLF001): key -> its partition.
                self._key_partition.pop(key, None)
                continue
            value = to_value(event.value)
            held = self.data.get(key)
            if held is None or version_of(value) >= version_of(held):
                self.data[key] = value
                # Faust internal, as above: the memory store forgets the keys of partitions it no
                # longer holds by this index, so it follows the copy kept.
                self._key_partition[key] = event.message.partition


NEWEST_COPY_MEMORY_STORE = "resolver-memory"


def install_stores() -> None:
    """Registers ``resolver-memory://`` with Faust's store registry (a public ``FactoryMapping``;
    Faust's documented extension point is the same registry, through setuptools entry points).
    Called when the worker's app is built. Idempotent."""
    faust_stores.STORES.aliases[NEWEST_COPY_MEMORY_STORE] = f"{__name__}:NewestCopyMemoryStore"


def committed_offset(app: faust.App, topic: str, partition: int) -> int | None:
    """The offset Faust resumed reading ``topic[partition]`` from (its last commit)."""
    # Faust keeps it per partition and has no public accessor.
    offsets = app.consumer._committed_offset  # type: ignore[attr-defined]  # noqa: SLF001 - read only, to find skipped batches
    value = offsets.get(TP(topic, partition))
    return None if value is None else int(value)


def flow_state(app: faust.App) -> str:
    """Faust's flow-control state and every task's stack, for the log of a stall."""
    consumer = app.consumer
    lines = [
        f"rebalancing={app.rebalancing} flow_control_active={app.flow_control.is_active()} "
        f"consumer_flow_active={getattr(consumer, 'flow_active', '?')}",
        # Diagnostics only: getattr with a default, so a renamed attribute degrades to "{}".
        f"read_offset={dict(getattr(consumer, '_read_offset', {}))}",
        f"committed_offset={dict(getattr(consumer, '_committed_offset', {}))}",
        f"paused={sorted(str(tp) for tp in getattr(consumer, '_paused_partitions', ()))}",
    ]
    for task in asyncio.all_tasks():
        out = io.StringIO()
        try:
            task.print_stack(limit=6, file=out)
        except Exception as exc:  # frames of native code have no line numbers
            out.write(f"{task!r}: stack unavailable ({exc!r})")
        lines.append(out.getvalue().strip())
    return "\n".join(lines)


async def _never_ack_a_gap(self: Any, tp: TP, offset_from: int, offset_to: int) -> None:
    """Replaces Faust's gap handling: it counts offsets it never delivered as acknowledged.

    That is meant for compacted or transactional topics; our content topics are neither, so a gap
    means messages Faust dropped (it does while a rebalance suspends its flow). Counting them as
    done would commit past them and lose them; left unacknowledged they hold the commit back and
    ``OffsetGaps`` reads them again.
    """


def install_gap_policy() -> None:
    """Called when the worker's app is built (not at import: importing changes nothing).

    Faust's consumer class is process-wide; a process runs one resolver app, so patching the
    class once is what it takes. Idempotent."""
    FaustConsumer._add_gap = _never_ack_a_gap  # type: ignore[method-assign]  # noqa: SLF001 - see above


def gap_policy_installed() -> bool:
    return FaustConsumer._add_gap is _never_ack_a_gap  # noqa: SLF001 - checks the patch above


def missing_internals() -> list[str]:
    """What this adapter relies on and the installed Faust no longer has (empty: all there)."""
    problems = []
    current = getattr(faust_streams, "_current_event", None)
    if not isinstance(current, ContextVar):
        problems.append("faust.streams._current_event is no longer a ContextVar")
    gap = getattr(FaustConsumer, "_add_gap", None)
    if gap is None or not inspect.iscoroutinefunction(gap):
        problems.append("faust Consumer._add_gap is gone or no longer a coroutine")
    else:
        params = list(inspect.signature(gap).parameters)
        if params != ["self", "tp", "offset_from", "offset_to"]:
            problems.append(f"faust Consumer._add_gap takes {params}, not (self, tp, offset_from, offset_to)")
    source = inspect.getsource(inspect.getmodule(FaustConsumer) or FaustConsumer)
    if "self._add_gap(" not in source:
        problems.append("faust's consumer no longer calls _add_gap: the replacement would do nothing")
    rocksdb_source = inspect.getsource(FaustRocksDBStore)
    if "self._dbs = " not in rocksdb_source or not all(
        callable(getattr(FaustRocksDBStore, name, None)) for name in ("_encode_key", "_decode_value")
    ):
        problems.append("faust's RocksDB store no longer has _dbs, _encode_key and _decode_value")
    if "self._key_partition" not in inspect.getsource(FaustMemoryStore):
        problems.append("faust's memory store no longer keeps _key_partition")
    apply_params = list(inspect.signature(FaustMemoryStore.apply_changelog_batch).parameters)
    if apply_params != ["self", "batch", "to_key", "to_value"]:
        problems.append(f"faust's memory store apply_changelog_batch takes {apply_params}")
    for name in CONSUMER_ATTRIBUTES:
        if f"self.{name} =" not in source:
            problems.append(f"faust's consumer no longer sets {name}")
    if faust.__version__ != FAUST_VERSION:
        problems.append(f"faust {faust.__version__} installed; this adapter was checked against {FAUST_VERSION}")
    return problems
