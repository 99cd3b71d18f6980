"""No open doors: every socket the stack listens on is on loopback or asks for credentials.

Milvus 2.3 is the exception it cannot fix: its gRPC and HTTP servers listen on every interface
whatever milvus.yaml says. Its client port asks for the root password; its metrics port and
its components' internal ports do not (README, "Listening sockets"). The test pins that set
exactly, so a new exposure fails it.
"""

from __future__ import annotations

import json
import os
import secrets
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import grpc
import pytest
import yaml

from deploy.worker import WorkerProcess
from resolution.model import ContentItem
from settings import Settings
from streams.kafka import ensure_topics
from tests.integration.streaming import produce, wait_decisions
from tests.listening_sockets import Listener, listeners_of, owner_of
from tests.workers import drop_namespace, isolated_settings, worker_process

pytestmark = pytest.mark.integration

# milvus.yaml keys of the ports Milvus 2.3 listens on without asking for credentials.
MILVUS_INTERNAL_PORT_KEYS = (
    ("rootCoord", "port"),
    ("proxy", "internalPort"),
    ("queryCoord", "port"),
    ("queryNode", "port"),
    ("indexNode", "port"),
    ("dataCoord", "port"),
    ("dataNode", "port"),
)


def stack_ports(s: Settings) -> list[int]:
    st = s.stack
    return [
        st.kafka_port,
        st.kafka_controller_port,
        st.triton_http_port,
        st.triton_grpc_port,
        st.triton_metrics_port,
        st.milvus_port,
        st.jaeger_ui_port,
        st.jaeger_otlp_grpc_port,
        st.jaeger_otlp_http_port,
    ]


def milvus_uncredentialed_ports(milvus_pid: int) -> set[int]:
    """The ports its rendered config and launcher gave it (milvus-server runs it in its data folder)."""
    data = Path(os.readlink(f"/proc/{milvus_pid}/cwd"))
    config = yaml.safe_load((data / "configs" / "milvus.yaml").read_text())
    ports = {int(config[section][key]) for section, key in MILVUS_INTERNAL_PORT_KEYS}
    environ = Path(f"/proc/{milvus_pid}/environ").read_bytes().split(b"\0")
    metrics = next(int(v.split(b"=", 1)[1]) for v in environ if v.startswith(b"METRICS_PORT="))
    return ports | {metrics}


def assert_milvus_refuses_without_credentials(uri: str, token: str) -> None:
    from pymilvus import MilvusClient

    for wrong in ("", "root:Milvus", f"root:{secrets.token_urlsafe(8)}"):
        try:
            MilvusClient(uri=uri, token=wrong, timeout=10).close()
        except grpc.RpcError as refused:
            assert refused.code() == grpc.StatusCode.UNAUTHENTICATED, (wrong, refused)
        else:
            label = "no token" if not wrong else wrong.split(":")[0] + ":<wrong or default password>"
            pytest.fail(
                f"Milvus at {uri} let in a client with {label}: it runs without authentication"
                " (started by a stack from before authentication; restart it with `stack down/up --only milvus`)"
            )
    # Its REST API on the same port too (Milvus' "user hasn't authenticated", code 1800).
    try:
        with urllib.request.urlopen(f"{uri}/v1/vector/collections", timeout=10) as resp:
            body = json.load(resp)
    except urllib.error.HTTPError as exc:  # the status it refuses with is not part of the contract
        body = json.load(exc)
    assert body.get("code") == 1800, body
    client = MilvusClient(uri=uri, token=token, timeout=10)
    try:
        assert isinstance(client.list_collections(), list)
    finally:
        client.close()


ITEMS = [
    ContentItem(event_id=f"door-{n}", content_id=f"door:{n}", source="store-a", kind="recording",
                title=title, artists=(artist,), duration_ms=200_000)
    for n, (title, artist) in enumerate([("Harbour of Glass", "Ines Calder"), ("Harbour Of Glass", "Ines Calder")])
]  # fmt: skip


def test_every_listener_is_on_loopback_or_asks_for_credentials(worker: WorkerProcess) -> None:
    settings = worker.settings
    assert settings.worker.milvus_token, "the session hands the local Milvus' token over as MILVUS_TOKEN"
    # With the token the worker works as before.
    produce(settings, ITEMS)
    found = wait_decisions(settings, {i.event_id for i in ITEMS}, timeout_s=120)
    assert {i.event_id for i in ITEMS} <= found.keys()
    assert found["door-1"][0]["action"] == "MERGE"

    pids = {pid for pid in (owner_of(port) for port in stack_ports(settings)) if pid is not None}
    assert worker.proc is not None
    pids.add(worker.proc.pid)
    sockets = listeners_of(pids)
    print("\nlistening sockets of the stack and a worker:\n" + "\n".join(f"  {s}" for s in sockets))
    assert any(s.port == settings.worker.web_port and s.loopback for s in sockets), "the worker's web port"

    milvus_pid = owner_of(settings.stack.milvus_port)
    assert milvus_pid is not None
    exposed = [s for s in sockets if not s.loopback]
    asks = [s for s in exposed if s.pid == milvus_pid and s.port == settings.stack.milvus_port]
    assert asks, "Milvus' client port (every interface in 2.3)"
    assert_milvus_refuses_without_credentials(
        f"http://127.0.0.1:{settings.stack.milvus_port}", settings.worker.milvus_token
    )

    rest: list[Listener] = [s for s in exposed if s not in asks]
    known = milvus_uncredentialed_ports(milvus_pid)
    unexpected = [s for s in rest if s.pid != milvus_pid or s.port not in known]
    assert not unexpected, f"listening beyond loopback without credentials: {unexpected}"
    print("Milvus 2.3 listeners off loopback that ask for no credentials (README):", sorted(known))


def test_a_worker_bound_off_loopback_asks_for_its_token_on_the_entity_views(stack: Settings, tmp_path: Path) -> None:
    token = "web-" + uuid.uuid4().hex
    _, env = isolated_settings(stack, "web-token")
    env.update({"RESOLVER_WORKER_WEB_HOST": "0.0.0.0", "RESOLVER_WORKER_WEB_TOKEN": token})
    settings = Settings.from_env({**os.environ, **env})
    ensure_topics(settings.kafka)
    handle = worker_process(settings, env, tmp_path / "worker.log")
    handle.start()
    base = f"http://127.0.0.1:{settings.worker.web_port}"
    try:
        assert handle.proc is not None
        bound = [s for s in listeners_of({handle.proc.pid}) if s.port == settings.worker.web_port]
        assert bound and not bound[0].loopback, bound
        with urllib.request.urlopen(f"{base}/health", timeout=10) as resp:
            health = resp.read().decode()
        with urllib.request.urlopen(f"{base}/metrics", timeout=10) as resp:
            assert resp.status == 200
        for view in ("/state", "/entity/e-unknown"):
            for header in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": token}):
                with pytest.raises(urllib.error.HTTPError) as refused:
                    urllib.request.urlopen(urllib.request.Request(base + view, headers=header), timeout=10)
                assert refused.value.code == 401, (view, header)
        authorised = urllib.request.Request(f"{base}/state", headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(authorised, timeout=10) as resp:
            assert isinstance(json.load(resp), dict)
    finally:
        handle.stop()
        drop_namespace(settings)
    assert token not in health, "the web token in /health"
    assert token not in (tmp_path / "worker.log").read_text(errors="replace"), "the web token in the worker log"
