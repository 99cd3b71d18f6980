"""The local Milvus' root password: made once, owner-only, handed over as MILVUS_TOKEN, kept from children."""

from __future__ import annotations

import stat
import time
from dataclasses import replace
from pathlib import Path

import pytest

from deploy.milvus_credentials import MilvusRootPassword, export_local_milvus_token
from deploy.stack import LocalStack, Service
from settings import StackSettings


def test_the_password_is_made_once_and_only_its_owner_can_read_it(tmp_path: Path) -> None:
    stack = replace(StackSettings(), state_dir=tmp_path / "state")
    first = MilvusRootPassword(stack).read_or_create()
    path = MilvusRootPassword(stack).path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(first) >= 24 and first != "Milvus"
    assert MilvusRootPassword(stack).read_or_create() == first, "once per installation, not per start"
    path.chmod(0o644)
    assert MilvusRootPassword(stack).token() == f"root:{first}"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600, "a widened file is narrowed again"


def test_a_second_installation_gets_its_own_password(tmp_path: Path) -> None:
    a = MilvusRootPassword(replace(StackSettings(), state_dir=tmp_path / "a")).read_or_create()
    b = MilvusRootPassword(replace(StackSettings(), state_dir=tmp_path / "b")).read_or_create()
    assert a != b


def test_the_token_goes_to_the_local_milvus_only(tmp_path: Path) -> None:
    state = str(tmp_path / "state")
    env = {"RESOLVER_STACK_STATE_DIR": state}
    export_local_milvus_token(env)
    password = (tmp_path / "state" / "milvus-root-password").read_text().strip()
    assert env["MILVUS_TOKEN"] == f"root:{password}"

    remote = {"RESOLVER_STACK_STATE_DIR": state, "MILVUS_URI": "https://milvus.example:19530"}
    export_local_milvus_token(remote)
    assert "MILVUS_TOKEN" not in remote, "the local password is never sent to another server"

    own_port = {"RESOLVER_STACK_STATE_DIR": state, "RESOLVER_STACK_MILVUS_PORT": "29530"}
    export_local_milvus_token(own_port)
    assert "MILVUS_TOKEN" not in own_port, "the worker still points at 19530: not the local stack's Milvus"
    own_port["RESOLVER_WORKER_MILVUS_URI"] = "http://127.0.0.1:29530"
    export_local_milvus_token(own_port)
    assert own_port["MILVUS_TOKEN"] == f"root:{password}"

    spelled = {"RESOLVER_STACK_STATE_DIR": state, "MILVUS_URI": "http://localhost:19530/"}
    export_local_milvus_token(spelled)
    assert spelled["MILVUS_TOKEN"] == f"root:{password}"

    given = {"RESOLVER_STACK_STATE_DIR": state, "MILVUS_TOKEN": "alice:secret"}
    export_local_milvus_token(given)
    assert given["MILVUS_TOKEN"] == "alice:secret", "a token given explicitly wins"


def test_milvus_starts_with_authentication_its_own_etcd_ports_and_loopback_addresses(tmp_path: Path) -> None:
    settings = replace(StackSettings(), state_dir=tmp_path, milvus_etcd_port=23791, milvus_etcd_peer_port=23801)
    stack = LocalStack(settings)
    svc = next(s for s in stack.services if s.name == "milvus")
    cmd = svc.command()
    assert cmd[cmd.index("--authorization-enabled") + 1] == "true"
    assert cmd[cmd.index("--etcd-port") + 1] == "23791"
    extra = [cmd[i + 1] for i, arg in enumerate(cmd) if arg == "--extra-config"]
    assert "proxy.ip=127.0.0.1" in extra and "rootCoord.ip=127.0.0.1" in extra and len(extra) == 7
    svc.prepare()
    etcd = Path(svc.env()["ETCD_CONFIG_PATH"]).read_text()
    assert "listen-client-urls: http://localhost:23791" in etcd
    assert "listen-peer-urls: http://localhost:23801" in etcd
    assert stat.S_IMODE((tmp_path / "milvus-root-password").stat().st_mode) == 0o600


def test_services_started_by_the_stack_never_inherit_a_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MILVUS_TOKEN", "root:do-not-pass-on")
    monkeypatch.setenv("RESOLVER_WORKER_WEB_TOKEN", "web-do-not-pass-on")
    monkeypatch.setenv("RESOLVER_KAFKA_SASL_PASSWORD", "sasl-do-not-pass-on")
    stack = LocalStack(replace(StackSettings(), state_dir=tmp_path))
    svc = Service(name="printenv", port=1, command=lambda: ["env"], env=lambda: {"MINE": "1"})
    stack.services = [svc]
    stack.logs.mkdir(parents=True)
    stack.pids.mkdir(parents=True)
    stack._start(svc)
    deadline = time.monotonic() + 30
    printed = ""
    while "MINE=1" not in printed and time.monotonic() < deadline:
        time.sleep(0.1)
        printed = (stack.logs / "printenv.log").read_text()
    assert "MINE=1" in printed
    assert "do-not-pass-on" not in printed
