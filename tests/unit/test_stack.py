"""The local stack's process plumbing: one process per service, none left half-started."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from deploy.stack import LocalStack, Service, StackError, _pid_alive
from settings import StackSettings


def slow_stack(tmp_path: Path) -> LocalStack:
    """A stack of one service that never becomes ready."""
    stack = LocalStack(replace(StackSettings(), state_dir=tmp_path, start_timeout_s=1.5))
    stack.services = [
        Service(name="slow", port=1, command=lambda: ["sleep", "60"], ready=lambda: False, stop_grace_s=2.0)
    ]
    stack.fetch = lambda: None  # type: ignore[method-assign]
    return stack


def test_a_service_still_starting_is_not_started_twice_and_a_timeout_stops_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stack = slow_stack(tmp_path)
    svc = stack.services[0]
    stack.logs.mkdir(parents=True, exist_ok=True)
    stack.pids.mkdir(parents=True, exist_ok=True)
    stack._start(svc)
    first = stack._pid(svc)
    assert first is not None
    capsys.readouterr()
    with pytest.raises(StackError, match="not ready after"):
        stack.up()  # finds it starting: waits for it instead of starting another
    said = capsys.readouterr().out
    assert "still starting" in said and "starting on" not in said
    assert not _pid_alive(first), "a service that never became ready is stopped, not left behind"


def test_jaeger_serves_the_fetched_ui_and_says_when_there_is_none(tmp_path: Path) -> None:
    stack = LocalStack(replace(StackSettings(), state_dir=tmp_path / "state", cache_dir=tmp_path / "cache"))
    jaeger = next(s for s in stack.services if s.name == "jaeger")
    assert jaeger.env()["JAEGER_UI_ASSETS"] == "", "no UI fetched: Jaeger's placeholder"
    ui = stack._jaeger_ui_dir()
    ui.mkdir(parents=True)
    (ui / "index.html").write_text("<html></html>")
    assert jaeger.env()["JAEGER_UI_ASSETS"] == str(ui)
    stack._jaeger_ui()  # already there: cargo is not run
    assert "assets_path" in (Path(__file__).resolve().parents[2] / "deploy" / "jaeger" / "config.yaml").read_text()


def test_a_start_that_stalls_is_restarted_and_then_waited_for(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    starts: list[int] = []
    stack = LocalStack(replace(StackSettings(), state_dir=tmp_path, start_timeout_s=1.5))

    def command() -> list[str]:
        starts.append(len(starts) + 1)
        return ["sleep", "60"]

    # Like a Milvus Lite start that hangs: only the second process ever becomes ready.
    svc = Service(
        name="stalls",
        port=1,
        command=command,
        ready=lambda: len(starts) >= 2,
        stop_grace_s=2.0,
        restart_stalled_s=1.0,
    )
    stack.services = [svc]
    stack.fetch = lambda: None  # type: ignore[method-assign]
    stack.up()
    said = capsys.readouterr().out
    assert starts == [1, 2] and "restarting it (1 of 2)" in said
    pid = stack._pid(svc)
    assert pid is not None and _pid_alive(pid)
    stack.down()
    assert not _pid_alive(pid)


def test_kafka_cluster_ids_never_start_with_a_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    import uuid

    from deploy import stack

    # base64url of these bytes starts with '-' (0xf8 -> '-'); the storage tool would read it as an option.
    draws = iter([uuid.UUID(bytes=bytes([0xF8]) + bytes(15)), uuid.UUID(bytes=bytes(16))])
    monkeypatch.setattr(stack.uuid, "uuid4", lambda: next(draws))
    assert stack.kafka_cluster_id() == "AAAAAAAAAAAAAAAAAAAAAA"
