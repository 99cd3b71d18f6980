"""Test fixtures: the real local stack for the session, and isolated workers per test module.

Each worker gets its own topics, consumer group, Milvus collection and web port, so tests do
not see each other's events, and a developer's running demo is left alone.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from content_resolver.settings import REPO_ROOT, Settings

SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def base_settings() -> Settings:
    return Settings.from_env()


@pytest.fixture(scope="session")
def stack(base_settings: Settings) -> Iterator[Settings]:
    from deploy.stack import LocalStack
    from streams.kafka import ensure_topics

    local = LocalStack(base_settings.stack)
    before = {name: line.startswith("up") for name, line in local.status().items()}
    local.up()
    ensure_topics(base_settings.kafka)
    yield base_settings
    # Leave running what was running before the session; stop what the session started.
    if os.environ.get("RESOLVER_TEST_KEEP_STACK") != "1":
        local.down([name for name, was_up in before.items() if not was_up])


@dataclass
class WorkerHandle:
    settings: Settings
    env: dict[str, str]
    proc: subprocess.Popen | None = None
    log: Path | None = None

    def start(self) -> None:
        from content_resolver.demo import wait_worker_ready

        assert self.log is not None
        out = open(self.log, "ab")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "content_resolver.cli", "worker", "--loglevel", "info"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **self.env},
            start_new_session=True,
        )
        wait_worker_ready(self.settings, self.proc)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, sig)
            self.proc.wait(timeout=30)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.proc = None


def isolated_settings(base: Settings, tag: str, extra: dict[str, str] | None = None) -> tuple[Settings, dict[str, str]]:
    """Settings (and the environment that yields them) for a worker with its own namespace."""
    suffix = f"{tag}-{uuid.uuid4().hex[:8]}"
    port = free_port()
    env = {
        "RESOLVER_KAFKA_CONTENT_TOPIC": f"content-events-{suffix}",
        "RESOLVER_KAFKA_DECISIONS_TOPIC": f"resolution-decisions-{suffix}",
        "RESOLVER_KAFKA_DLQ_TOPIC": f"content-events-dlq-{suffix}",
        "RESOLVER_KAFKA_FEEDBACK_TOPIC": f"resolution-feedback-{suffix}",
        "RESOLVER_WORKER_APP_ID": f"resolver-{suffix}",
        "RESOLVER_WORKER_MILVUS_COLLECTION": f"test_{suffix.replace('-', '_')}",
        "RESOLVER_WORKER_WEB_PORT": str(port),
        "RESOLVER_WORKER_BATCH_WINDOW_S": "0.05",
        **(extra or {}),
    }
    return Settings.from_env({**os.environ, **env}), env


@pytest.fixture(scope="module")
def worker(
    stack: Settings, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerHandle]:
    from streams.kafka import ensure_topics

    settings, env = isolated_settings(stack, request.module.__name__.rsplit(".", 1)[-1][:20].replace("_", "-"))
    ensure_topics(settings.kafka)
    handle = WorkerHandle(settings, env, log=tmp_path_factory.mktemp("worker") / "worker.log")
    handle.start()
    yield handle
    handle.stop()
    drop_namespace(settings)
    if handle.log is not None and os.environ.get("CI"):
        tail = handle.log.read_text(errors="replace")[-3000:]
        print(f"\n--- worker log tail ({handle.log}) ---\n{tail}")


def drop_namespace(settings: Settings) -> None:
    """Deletes a test worker's topics and Milvus collection, so the shared stack stays light."""
    from content_resolver.demo import drop_namespace as drop

    drop(settings, milvus_retry_s=5)


def wait_for(predicate, timeout_s: float, interval_s: float = 0.5):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval_s)
    return predicate()


__all__ = ["SHARED_DATA", "WorkerHandle", "isolated_settings", "replace", "wait_for"]
