"""Errors the resolution core and its clients share, and the one retry loop for dependencies."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")


class DependencyUnavailable(RuntimeError):
    """A service the resolver needs (Triton, Milvus, Kafka) did not answer within its retry budget.

    The worker keeps the batch, reports degraded health and tries again: nothing is dropped."""

    dependency = "unknown"


def describe(exc: BaseException) -> str:
    """The exception's type and message; Triton's client exceptions have an empty repr."""
    method = getattr(exc, "message", None)
    message = str(method()) if callable(method) else str(exc)
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


async def with_backoff(
    call: Callable[[], Awaitable[T]],
    *,
    unavailable: type[DependencyUnavailable],
    what: str,
    retry_max_s: float = math.inf,
    retryable: tuple[type[BaseException], ...] = (Exception,),
    retry_if: Callable[[BaseException], bool] | None = None,
    on_retry: Callable[[str], None] | None = None,
    on_failure: Callable[[BaseException, float], None] | None = None,
    reset: Callable[[], Awaitable[None]] | None = None,
    call_timeout_s: float | None = None,
    initial_delay_s: float = 0.2,
    max_delay_s: float = 5.0,
) -> T:
    """Calls until it succeeds, backing off exponentially; after ``retry_max_s`` raises ``unavailable``
    (the default, no budget, retries until it succeeds: a held batch waits out any outage).

    An exception not in ``retryable`` (or refused by ``retry_if``) propagates at once.
    ``on_failure(exc, delay)`` replaces the warning logged before each wait. ``call_timeout_s``
    bounds each attempt, so a hung connection counts as a failed attempt. ``reset`` drops the
    client between attempts: a restarted server needs a new channel."""
    delay = initial_delay_s
    waited = 0.0
    while True:
        started = time.monotonic()
        try:
            if call_timeout_s is None:
                return await call()
            return await asyncio.wait_for(call(), timeout=call_timeout_s)
        except retryable as exc:
            if retry_if is not None and not retry_if(exc):
                raise
            waited += time.monotonic() - started
            if waited >= retry_max_s:
                raise unavailable(f"{what}: {describe(exc)}") from exc
            if on_retry is not None:
                on_retry(unavailable.dependency)
            if on_failure is not None:
                on_failure(exc, delay)
            else:
                log.warning("%s failed (%s); retrying in %.1fs", what, describe(exc), delay)
            await asyncio.sleep(delay)
            waited += delay
            delay = min(delay * 2, max_delay_s)
            if reset is not None:
                await reset()
