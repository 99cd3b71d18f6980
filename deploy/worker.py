"""A resolver worker as a child process: the one place that starts, waits for and stops one.

``resolver demo``, ``resolver bench`` and the integration tests all run workers this way: in a
session of their own (so a signal reaches Faust's children too), with stdin closed, the output
appended to a log file, and the worker's environment given as overrides of this one.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Sequence
from pathlib import Path

from deploy.stack import http_ok
from settings import Settings

# Started by module name, not imported: the worker's command line sits in the top layer.
WORKER_COMMAND = (sys.executable, "-m", "content_resolver.cli", "worker")
READY_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 30.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def isolated_namespace(
    tag: str, collection_prefix: str, extra: dict[str, str] | None = None
) -> tuple[Settings, dict[str, str]]:
    """Settings (and the environment that yields them) for a worker with names of its own: its
    topics, consumer group, Milvus collection and web port, so it neither sees nor disturbs any
    other stream on the shared stack."""
    suffix = f"{tag}-{uuid.uuid4().hex[:8]}"
    env = {
        "RESOLVER_KAFKA_CONTENT_TOPIC": f"content-events-{suffix}",
        "RESOLVER_KAFKA_DECISIONS_TOPIC": f"resolution-decisions-{suffix}",
        "RESOLVER_KAFKA_DLQ_TOPIC": f"content-events-dlq-{suffix}",
        "RESOLVER_KAFKA_FEEDBACK_TOPIC": f"resolution-feedback-{suffix}",
        "RESOLVER_WORKER_APP_ID": f"resolver-{suffix}",
        "RESOLVER_WORKER_MILVUS_COLLECTION": f"{collection_prefix}_{suffix}".replace("-", "_"),
        "RESOLVER_WORKER_WEB_PORT": str(free_port()),
        **(extra or {}),
    }
    return Settings.from_env({**os.environ, **env}), env


class WorkerProcess:
    """One worker subprocess; ``command`` replaces the default ``resolver worker`` (a test's
    hanging worker), ``pid_file`` lets another process stop it later (``resolver stack down``)."""

    def __init__(
        self,
        settings: Settings,
        log: Path,
        env: dict[str, str] | None = None,
        command: Sequence[str] = WORKER_COMMAND,
        pid_file: Path | None = None,
    ) -> None:
        self.settings = settings
        self.log = log
        self.env = dict(env or {})
        self.command = list(command)
        self.pid_file = pid_file
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.settings.worker.web_port}"

    def start(self, wait: bool = True, timeout_s: float = READY_TIMEOUT_S) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as out:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen(
                self.command,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **self.env},
                start_new_session=True,
            )
        if self.pid_file is not None:
            self.pid_file.parent.mkdir(parents=True, exist_ok=True)
            self.pid_file.write_text(str(self.proc.pid))
        if wait:
            self.wait_ready(timeout_s)

    def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Until ``/health`` answers 200; a worker that exits meanwhile fails at once."""
        proc = self._running()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"worker exited with {proc.returncode}; see {self.log}")
            if http_ok(f"{self.url}/health"):
                return
            time.sleep(0.5)
        raise RuntimeError(f"worker not healthy after {timeout_s:.0f}s ({self.url}/health); see {self.log}")

    def metrics(self) -> str:
        with urllib.request.urlopen(f"{self.url}/metrics", timeout=5) as resp:
            return str(resp.read().decode())

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """``sig`` to the worker's process group, then SIGKILL if it has not exited in time."""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, sig)
            self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        except ProcessLookupError:
            pass
        self.proc = None
        if self.pid_file is not None:
            self.pid_file.unlink(missing_ok=True)

    def _running(self) -> subprocess.Popen[bytes]:
        if self.proc is None:
            raise RuntimeError("worker not started")
        return self.proc


def stop_by_pid_file(pid_file: Path, timeout_s: float = 10.0) -> None:
    """Stops a worker another process started with ``pid_file`` (its process group)."""
    if not pid_file.exists():
        return
    pid = int(pid_file.read_text())
    try:
        os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            os.kill(pid, 0)
            time.sleep(0.1)
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    pid_file.unlink(missing_ok=True)
