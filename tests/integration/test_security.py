"""Kafka SASL (SCRAM-SHA-512) over TLS, end to end, and no secret in logs, traces or decisions."""

from __future__ import annotations

import json
import os
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException

from deploy.secure_kafka import SecureKafka, SecureKafkaConfig
from resolution.model import ContentItem
from settings import KafkaSettings, Settings
from streams.kafka import client_config, ensure_topics, read_topic
from tests.integration.streaming import SCHEMAS, jaeger_trace, produce, wait_decisions
from tests.workers import free_port, isolated_settings, worker_process

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def secure_kafka(stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureKafkaConfig]:
    config = SecureKafkaConfig(
        base_dir=tmp_path_factory.mktemp("secure-kafka"),
        kafka_libs=stack.stack.cache_dir / f"kafka-{stack.stack.kafka_version}" / "libs",
        port=free_port(),
        internal_port=free_port(),
        controller_port=free_port(),
        username="resolver",
        password="pw-" + uuid.uuid4().hex,
        store_password="store-" + uuid.uuid4().hex,
    )
    broker = SecureKafka(config)
    broker.start()
    yield config
    broker.stop()


def broker_refusals(kafka: KafkaSettings) -> set[int]:
    """The error codes a client with these settings gets from the broker (librdkafka's error_cb)."""
    errors: list[KafkaError] = []
    consumer = Consumer({**client_config(kafka), "group.id": f"refused-{uuid.uuid4().hex}", "error_cb": errors.append})
    try:
        try:
            consumer.list_topics(timeout=5)
        except KafkaException as exc:
            errors.append(exc.args[0])
        else:
            pytest.fail("the broker gave metadata to a client it should refuse")
        deadline = time.monotonic() + 10
        while not any(e.code() in (KafkaError._AUTHENTICATION, KafkaError._SSL) for e in errors):
            if time.monotonic() > deadline:
                break
            consumer.poll(0.5)  # serves error_cb
    finally:
        consumer.close()
    return {e.code() for e in errors}


def test_worker_resolves_over_sasl_ssl_and_never_leaks_the_password(
    stack: Settings, secure_kafka: SecureKafkaConfig, tmp_path: Path
) -> None:
    _, env = isolated_settings(stack, "secure")
    env.update(secure_kafka.client_env())
    settings = Settings.from_env({**os.environ, **env})
    assert settings.kafka.security_protocol == "SASL_SSL"
    ensure_topics(settings.kafka)
    worker = worker_process(settings, env, tmp_path / "worker.log")
    worker.start()
    try:
        items = [
            ContentItem(event_id=f"sec-{n}", content_id=f"s:{n}", source="store-a", kind="recording",
                        title=title, artists=(artist,), duration_ms=200_000)
            for n, (title, artist) in enumerate([("Glass Orchard", "Mira Vance"), ("Glass Orchard", "Mira Vance"),
                                                 ("Copper Tide", "The Lantern Sea")])
        ]  # fmt: skip
        traces = produce(settings, items)
        found = wait_decisions(settings, {i.event_id for i in items}, timeout_s=120)
        assert {i.event_id for i in items} <= found.keys()
        assert found["sec-1"][0]["action"] == "MERGE"
        with urllib.request.urlopen(f"http://127.0.0.1:{settings.worker.web_port}/health", timeout=10) as r:
            health = r.read().decode()
    finally:
        worker.stop()

    # The broker itself refuses: a wrong password fails SASL, a client that cannot verify its
    # certificate fails the TLS handshake (librdkafka's own codes, not any exception).
    wrong_password = replace(settings.kafka, sasl_password="not-" + secure_kafka.password)
    assert KafkaError._AUTHENTICATION in broker_refusals(wrong_password), "SASL authentication failure"
    untrusted = replace(settings.kafka, ssl_cafile="")
    assert KafkaError._SSL in broker_refusals(untrusted), "TLS certificate verification failure"

    secret = secure_kafka.password
    decision_bytes = b"".join(r.value for r in read_topic(settings.kafka, settings.kafka.decisions_topic))
    assert decision_bytes and secret.encode() not in decision_bytes, "password in a decision"
    log = (tmp_path / "worker.log").read_text(errors="replace")
    assert "Ready" in log, "the worker log is there to scan"
    assert secret not in log, "password in the worker log"
    assert secret not in health, "password in the health view"
    for trace_id in traces.values():
        trace = jaeger_trace(settings, trace_id, want_spans=3)
        assert trace is not None
        assert secret not in json.dumps(trace), "password in a trace"
    decoded = [SCHEMAS.decision.decode(r.value) for r in read_topic(settings.kafka, settings.kafka.decisions_topic)]
    assert all(secret not in json.dumps(d) for d in decoded)
