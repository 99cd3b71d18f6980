"""Test fixtures: the real local stack for the session, and isolated workers per test module.

Each worker gets its own topics, consumer group, Milvus collection and web port, so tests do
not see each other's events, and a developer's running demo is left alone.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from deploy.worker import WorkerProcess
from settings import Settings
from tests.workers import drop_namespace, isolated_settings, worker_process


@pytest.fixture(scope="session")
def base_settings() -> Settings:
    from deploy.milvus_credentials import export_local_milvus_token

    # As the command line does: the local Milvus' token reaches every worker this session starts.
    export_local_milvus_token(os.environ)
    return Settings.from_env()


@pytest.fixture(scope="session")
def stack(base_settings: Settings) -> Iterator[Settings]:
    from content_resolver.composition import local_stack
    from streams.kafka import ensure_topics

    local = local_stack(base_settings)
    before = {name: line.startswith("up") for name, line in local.status().items()}
    # A Milvus Lite killed with its data folder (a session that ended, a crashed run) can spend
    # minutes or forever recovering stale etcd sessions; tests make their own collections, so a
    # Milvus this session starts itself starts from an empty folder (a running one is left alone).
    if local.discard_milvus_data():
        print("[stack] milvus: stopped, starting from an empty data folder for the tests")
    local.up()
    ensure_topics(base_settings.kafka)
    yield base_settings
    # Leave running what was running before the session; stop what the session started.
    if os.environ.get("RESOLVER_TEST_KEEP_STACK") != "1":
        local.down([name for name, was_up in before.items() if not was_up])


@pytest.fixture(scope="module")
def worker(
    stack: Settings, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerProcess]:
    from streams.kafka import ensure_topics

    settings, env = isolated_settings(stack, request.module.__name__.rsplit(".", 1)[-1][:20].replace("_", "-"))
    ensure_topics(settings.kafka)
    handle = worker_process(settings, env, tmp_path_factory.mktemp("worker") / "worker.log")
    handle.start()
    yield handle
    handle.stop()
    drop_namespace(settings)
    if os.environ.get("CI"):
        tail = handle.log.read_text(errors="replace")[-3000:]
        print(f"\n--- worker log tail ({handle.log}) ---\n{tail}")
