"""Helpers for tests that run workers on the real stack: isolated names, waiting, clean-up.

The fixtures themselves are in ``tests/fixtures.py`` (loaded through ``pytest_plugins``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from deploy.worker import WORKER_COMMAND, WorkerProcess, free_port, isolated_namespace
from settings import Settings

T = TypeVar("T")


def isolated_settings(base: Settings, tag: str) -> tuple[Settings, dict[str, str]]:
    """Settings (and the environment that yields them) for a test worker with its own namespace.

    ``base`` is the session's settings; the namespace is read from the environment as a worker
    would, so the two agree."""
    del base
    return isolated_namespace(tag, "test", {"RESOLVER_WORKER_BATCH_WINDOW_S": "0.05"})


def worker_process(settings: Settings, env: dict[str, str], log: Path) -> WorkerProcess:
    """A test worker, logging at info level (the delivery tests read its log when they fail)."""
    return WorkerProcess(settings, log, env, command=[*WORKER_COMMAND, "--loglevel", "info"])


def drop_namespace(settings: Settings) -> None:
    """Deletes a test worker's topics and Milvus collection, so the shared stack stays light."""
    from content_resolver.demo import drop_namespace as drop

    drop(settings, milvus_retry_s=5)


def wait_for(predicate: Callable[[], T], timeout_s: float, interval_s: float = 0.5) -> T:
    """Polls until the predicate returns something truthy, then returns it (or its last value)."""
    import time

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval_s)
    return predicate()


__all__ = ["drop_namespace", "free_port", "isolated_settings", "wait_for", "worker_process"]
