"""Every use of Faust's private internals, in one place.

The delivery guarantee rests on things Faust has no public API for: which event is "current"
(table writes go to that event's changelog partition; with none, reads see every partition
held), the offset a consumer resumed reading from (to tell a skipped batch), its flow state (for
the log of a stall), and its gap acknowledgement (which would commit past dropped messages).
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
from faust.transport.consumer import Consumer as FaustConsumer
from faust.types import TP

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
    for name in CONSUMER_ATTRIBUTES:
        if f"self.{name} =" not in source:
            problems.append(f"faust's consumer no longer sets {name}")
    if faust.__version__ != FAUST_VERSION:
        problems.append(f"faust {faust.__version__} installed; this adapter was checked against {FAUST_VERSION}")
    return problems
