"""The local stack: Kafka (KRaft), Triton, Milvus and Jaeger as plain processes.

``up`` is idempotent: a service already answering on its port is left alone. Each process
gets a pid file and a log file under the state folder; on failure we say which service
failed and where its log is. Heavy artefacts (Kafka jars, the Jaeger binary) are fetched or
built once into the cache folder.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from deploy.milvus_credentials import DEFAULT_ROOT_PASSWORD, ROOT_USER, MilvusRootPassword
from settings import AUTO_TEXT_MODEL, REPO_ROOT, SECRET_ENVIRONMENT, StackSettings

DEPLOY_DIR = Path(__file__).resolve().parent

# The Milvus components whose registered address milvus.yaml sets (each has an `ip:` key).
MILVUS_COMPONENTS = ("rootCoord", "proxy", "queryCoord", "queryNode", "indexNode", "dataCoord", "dataNode")
# Milvus' "user hasn't authenticated" / auth failure code, as pymilvus reports it.
MILVUS_AUTH_ERROR_CODE = 1800


def kafka_cluster_id() -> str:
    """A random KRaft cluster id (base64url of a UUID, as Kafka writes them). One in 64 such ids
    starts with '-', which the storage tool's argument parser reads as an option (a stack up failed
    so); Kafka's own ``Uuid.randomUuid`` draws again in that case, and so does this."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


class StackError(RuntimeError):
    def __init__(self, service: str, message: str, log: Path | None = None) -> None:
        where = f" (log: {log})" if log else ""
        super().__init__(f"{service}: {message}{where}{_log_tail(log)}")
        self.service = service
        self.log = log


@dataclass
class Service:
    name: str
    port: int
    command: Callable[[], list[str]]
    prepare: Callable[[], None] = lambda: None
    env: Callable[[], dict[str, str]] = dict
    ready: Callable[[], bool] | None = None
    cwd: Path | None = None
    extra_ports: list[int] = field(default_factory=list)
    stop_grace_s: float = 60.0
    # Not ready this long after a start we made: stop it and start it again (at most
    # MAX_STALL_RESTARTS times). None: wait out the whole start timeout.
    restart_stalled_s: float | None = None


# Restarts of one service that stalled during one start-up, before giving up.
MAX_STALL_RESTARTS = 2


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return 200 <= resp.status < 300
    except OSError:
        return False


def say(message: str) -> None:
    print(f"[stack] {message}", flush=True)


class LocalStack:
    """``text_model`` names the text model that ``auto`` in ``triton_models`` stands for, and
    ``build_steps`` build what the models need (the ONNX export): both come from the composition
    root (``content_resolver.composition.local_stack``), which owns the choice by measurement.
    ``milvus_token``: the resolver's MILVUS_TOKEN, when it is not this installation's own."""

    def __init__(
        self,
        settings: StackSettings,
        python: str = sys.executable,
        milvus_token: str = "",
        text_model: Callable[[], str] | None = None,
        build_steps: tuple[Callable[[], None], ...] = (),
    ) -> None:
        self.s = settings
        self.python = python
        self.state = settings.state_dir
        self.cache = settings.cache_dir
        self.logs = self.state / "logs"
        self.pids = self.state / "pids"
        self.milvus_password = MilvusRootPassword(settings)
        self._milvus_token = milvus_token
        self.milvus_refusal = ""  # why Milvus refused our credentials, for the error that follows
        self.services = [self._kafka(), self._milvus(), self._jaeger(), self._triton()]
        self._text_model = text_model
        self._build_steps = build_steps

    # ---- public verbs -------------------------------------------------------------------

    def fetch(self) -> None:
        """Fetch or build everything the services need, into the cache (slow only once)."""
        self._kafka_jars()
        self._jaeger_binary()
        self._jaeger_ui()
        self._triton_backend_dir()
        for step in self._build_steps:
            step()

    def up(self, only: list[str] | None = None) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        self.pids.mkdir(parents=True, exist_ok=True)
        self.fetch()
        chosen = [s for s in self.services if not only or s.name in only]
        for svc in chosen:
            if self._alive(svc) and self._is_ready(svc):
                say(f"{svc.name}: already running on 127.0.0.1:{svc.port}")
                continue
            if self._alive(svc):
                # Started by an earlier call and still starting: a second one would fight it.
                say(f"{svc.name}: still starting (pid {self._pid(svc)}); waiting for it")
                continue
            if self._is_ready(svc):
                # Started elsewhere (another checkout, a system service): use it, never stop it.
                say(f"{svc.name}: answering on 127.0.0.1:{svc.port}, not started here; using it")
                continue
            if port_open(svc.port):
                taken = self.milvus_refusal if svc.name == "milvus" and self.milvus_refusal else ""
                raise StackError(svc.name, taken or f"port {svc.port} is taken by another process", self._log(svc))
            self._start(svc)
        for svc in chosen:
            self._wait(svc)
        if any(svc.name == "triton" for svc in chosen):
            self.ensure_triton_models()

    def down(self, only: list[str] | None = None) -> None:
        for svc in reversed(self.services):
            if only and svc.name not in only:
                continue
            self.stop(svc.name)

    def stop(self, name: str, sig: int = signal.SIGTERM, timeout_s: float | None = None) -> None:
        svc = self._service(name)
        timeout_s = svc.stop_grace_s if timeout_s is None else timeout_s
        pid = self._pid(svc)
        if pid is None:
            return
        say(f"{name}: stopping (pid {pid})")
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, sig)
        # Wait for the whole process group: Milvus' launcher exits before its server does.
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and _group_alive(pid):
            time.sleep(0.2)
        if _group_alive(pid):
            say(f"{name}: did not stop in {timeout_s:.0f}s; killing")
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
        (self.pids / f"{name}.pid").unlink(missing_ok=True)

    def start(self, name: str, timeout_s: float | None = None) -> None:
        svc = self._service(name)
        if not (self._alive(svc) and self._is_ready(svc)):
            self._start(svc)
        self._wait(svc, timeout_s)

    def discard_milvus_data(self) -> bool:
        """Removes a stopped Milvus' data folder; returns whether there was one.

        Milvus Lite 2.3.5, once killed, can spend minutes or forever recovering stale etcd
        sessions; a caller that is about to drop its collection anyway (the demo) starts clean."""
        svc = self._service("milvus")
        if self._alive(svc) or self._is_ready(svc):
            return False
        data = self.state / "milvus"
        if not data.exists():
            return False
        shutil.rmtree(data)
        return True

    def status(self) -> dict[str, str]:
        out = {}
        for svc in self.services:
            alive = self._alive(svc)
            ready = self._is_ready(svc)
            state = "up" if ready else ("starting" if alive else "down")
            out[svc.name] = f"{state} 127.0.0.1:{svc.port} (log: {self._log(svc)})"
        return out

    # ---- process plumbing ---------------------------------------------------------------

    def _service(self, name: str) -> Service:
        for svc in self.services:
            if svc.name == name:
                return svc
        raise KeyError(name)

    def _log(self, svc: Service) -> Path:
        return self.logs / f"{svc.name}.log"

    def _pid(self, svc: Service) -> int | None:
        path = self.pids / f"{svc.name}.pid"
        if not path.exists():
            return None
        try:
            pid = int(path.read_text().strip())
        except ValueError:
            return None
        return pid if _pid_alive(pid) else None

    def _alive(self, svc: Service) -> bool:
        return self._pid(svc) is not None

    def _is_ready(self, svc: Service) -> bool:
        if svc.ready is not None:
            return svc.ready()
        return port_open(svc.port)

    def _start(self, svc: Service) -> None:
        svc.prepare()
        log = open(self._log(svc), "ab")  # noqa: SIM115 - handed to the child
        inherited = {k: v for k, v in os.environ.items() if k not in SECRET_ENVIRONMENT}
        env = {**inherited, **svc.env()}
        say(f"{svc.name}: starting on 127.0.0.1:{svc.port}")
        proc = subprocess.Popen(
            svc.command(),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=svc.cwd or self.state,
            start_new_session=True,  # its own process group, so stop() reaches its children
        )
        (self.pids / f"{svc.name}.pid").write_text(str(proc.pid))

    def _wait(self, svc: Service, timeout_s: float | None = None) -> None:
        if not self._alive(svc) and self._is_ready(svc):
            return
        timeout_s = self.s.start_timeout_s if timeout_s is None else timeout_s
        began = started = time.monotonic()
        deadline = started + timeout_s
        restarts = 0
        while time.monotonic() < deadline:
            if self._is_ready(svc):
                say(f"{svc.name}: ready")
                return
            if not self._alive(svc):
                raise StackError(svc.name, "exited during start-up", self._log(svc))
            stalled = svc.restart_stalled_s
            if stalled is not None and restarts < MAX_STALL_RESTARTS and time.monotonic() - started > stalled:
                restarts += 1
                of = f"{restarts} of {MAX_STALL_RESTARTS}"
                say(f"{svc.name}: not ready {stalled:.0f}s after its start; restarting it ({of})")
                self.stop(svc.name)
                self._start(svc)
                started = time.monotonic()
                deadline = max(deadline, started + stalled)  # the new start gets its full window
            time.sleep(0.5)
        # Do not leave a half-started service behind: the next `up` would start a second one.
        self.stop(svc.name)
        hint = ""
        if svc.name == "milvus" and self.milvus_refusal:
            hint = f"; {self.milvus_refusal}"
        elif svc.name == "milvus":
            hint = (
                "; a Milvus Lite that was killed can spend minutes recovering stale etcd sessions:"
                " `resolver stack up --fresh-milvus` starts it from an empty data folder"
                " (a stopped Milvus only: its collections are lost)"
            )
        waited = f"{time.monotonic() - began:.0f}s" + (f" and {restarts} restarts" if restarts else "")
        raise StackError(svc.name, f"not ready after {waited}{hint}", self._log(svc))

    # ---- Kafka --------------------------------------------------------------------------

    def _kafka_libs(self) -> Path:
        return self.cache / f"kafka-{self.s.kafka_version}" / "libs"

    def _kafka_jars(self) -> None:
        libs = self._kafka_libs()
        marker = libs.parent / ".complete"
        if marker.exists():
            return
        say(f"kafka: fetching Apache Kafka {self.s.kafka_version} jars from Maven Central into {libs}")
        libs.mkdir(parents=True, exist_ok=True)
        cmd = [
            "mvn",
            "-q",
            "-B",
            "-f",
            str(DEPLOY_DIR / "kafka" / "pom.xml"),
            "dependency:copy-dependencies",
            f"-Dkafka.version={self.s.kafka_version}",
            f"-DoutputDirectory={libs}",
            "-DincludeScope=runtime",
        ]
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            raise StackError(
                "kafka", f"Maven could not fetch the broker: {result.stdout[-2000:]}{result.stderr[-2000:]}"
            )
        marker.write_text("ok\n")

    def _kafka_dirs(self) -> tuple[Path, Path]:
        base = self.state / "kafka"
        return base, base / "data"

    def _kafka_prepare(self) -> None:
        base, data = self._kafka_dirs()
        base.mkdir(parents=True, exist_ok=True)
        props = base / "server.properties"
        props.write_text(
            "\n".join(
                [
                    "process.roles=broker,controller",
                    "node.id=1",
                    f"controller.quorum.voters=1@127.0.0.1:{self.s.kafka_controller_port}",
                    f"listeners=PLAINTEXT://127.0.0.1:{self.s.kafka_port},CONTROLLER://127.0.0.1:{self.s.kafka_controller_port}",
                    f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.s.kafka_port}",
                    "controller.listener.names=CONTROLLER",
                    "inter.broker.listener.name=PLAINTEXT",
                    "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
                    f"log.dirs={data}",
                    "num.partitions=3",
                    "offsets.topic.replication.factor=1",
                    "offsets.topic.num.partitions=4",
                    "transaction.state.log.replication.factor=1",
                    "transaction.state.log.min.isr=1",
                    "transaction.state.log.num.partitions=4",
                    "share.coordinator.state.topic.replication.factor=1",
                    "share.coordinator.state.topic.min.isr=1",
                    "group.initial.rebalance.delay.ms=0",
                    "auto.create.topics.enable=true",
                    "log.retention.hours=168",
                    "",
                ]
            )
        )
        if not (data / "meta.properties").exists():
            cluster_id = kafka_cluster_id()
            cmd = [*self._java(), "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(props)]
            result = subprocess.run(cmd, capture_output=True, text=True)
            if result.returncode != 0:
                raise StackError("kafka", f"storage format failed: {result.stdout}{result.stderr}")

    def _java(self) -> list[str]:
        return [
            "java",
            "-Xms256m",
            "-Xmx1g",
            "-XX:+UseG1GC",
            f"-Dlog4j.configuration=file:{DEPLOY_DIR / 'kafka' / 'log4j.properties'}",
            "-cp",
            f"{self._kafka_libs()}/*",
        ]

    def _kafka(self) -> Service:
        return Service(
            name="kafka",
            port=self.s.kafka_port,
            prepare=self._kafka_prepare,
            command=lambda: [*self._java(), "kafka.Kafka", str(self._kafka_dirs()[0] / "server.properties")],
        )

    # ---- Milvus -------------------------------------------------------------------------

    def _milvus_data(self) -> Path:
        return self.state / "milvus"

    def _milvus_etcd_config(self) -> Path:
        return self._milvus_data() / "configs" / "embed-etcd.yaml"

    def _milvus_prepare(self) -> None:
        for port in (self.s.milvus_etcd_port, self.s.milvus_etcd_peer_port):
            if port_open(port):
                # milvus-server would pick the next free port for the client side only, and
                # Milvus would then talk to the other installation's etcd.
                raise StackError(
                    "milvus", f"etcd port {port} is taken (another Milvus?)", self._log(self._service("milvus"))
                )
        self._milvus_etcd_config().parent.mkdir(parents=True, exist_ok=True)
        # Milvus reads etcd.config.path (here from ETCD_CONFIG_PATH) for its embedded etcd; the
        # names and "localhost" match etcd's defaults, so a data folder made without this file
        # keeps its member identity.
        client = f"http://localhost:{self.s.milvus_etcd_port}"
        peer = f"http://localhost:{self.s.milvus_etcd_peer_port}"
        self._milvus_etcd_config().write_text(
            "\n".join(
                [
                    "name: default",
                    f"listen-client-urls: {client}",
                    f"advertise-client-urls: {client}",
                    f"listen-peer-urls: {peer}",
                    f"initial-advertise-peer-urls: {peer}",
                    f"initial-cluster: default={peer}",
                    "",
                ]
            )
        )
        self.milvus_password.read_or_create()

    def _milvus_command(self) -> list[str]:
        exe = Path(self.python).parent / "milvus-server"
        cmd = [
            str(exe),
            "--data",
            str(self._milvus_data()),
            "--proxy-port",
            str(self.s.milvus_port),
            "--etcd-port",
            str(self.s.milvus_etcd_port),
            # Any non-empty value reads as true (argparse bool); "true" for whoever reads this.
            "--authorization-enabled",
            "true",
        ]
        # Where each component registers itself, so that Milvus' own traffic stays on loopback.
        # Milvus 2.3 still listens on every interface whatever this says (README, "Milvus").
        for component in MILVUS_COMPONENTS:
            cmd += ["--extra-config", f"{component}.ip=127.0.0.1"]
        return cmd

    def _milvus_ready(self) -> bool:
        if not port_open(self.s.milvus_port):
            return False
        uri = f"http://127.0.0.1:{self.s.milvus_port}"
        own = self.milvus_password.token()
        token = self._milvus_token or own
        answer = _milvus_login(uri, token)
        if answer != "refused":
            self.milvus_refusal = ""
            return answer == "ok"
        if token != own:
            self.milvus_refusal = f"Milvus on port {self.s.milvus_port} refuses the MILVUS_TOKEN given"
            return False
        # A new data folder: root still has Milvus' default password. Replace it before
        # reporting ready, so nothing ever works with the default.
        if _milvus_login(uri, f"{ROOT_USER}:{DEFAULT_ROOT_PASSWORD}") != "ok":
            # Not fatal at once: a proxy that is still loading its credentials refuses too.
            self.milvus_refusal = (
                f"Milvus on port {self.s.milvus_port} refuses the root password in {self.milvus_password.path}"
                " (and the default one): it was started by another installation (give its token as"
                " MILVUS_TOKEN), or the password file was replaced (`resolver stack up --fresh-milvus`"
                " starts from an empty data folder)"
            )
            return False
        self.milvus_refusal = ""
        from pymilvus import MilvusClient

        client = MilvusClient(uri=uri, token=f"{ROOT_USER}:{DEFAULT_ROOT_PASSWORD}", timeout=10)
        try:
            client.update_password(ROOT_USER, DEFAULT_ROOT_PASSWORD, self.milvus_password.read_or_create())
        finally:
            client.close()
        say(f"milvus: root password replaced by the one in {self.milvus_password.path}")
        return _milvus_login(uri, token) == "ok"

    def _milvus(self) -> Service:
        return Service(
            name="milvus",
            port=self.s.milvus_port,
            command=self._milvus_command,
            prepare=self._milvus_prepare,
            env=lambda: {"ETCD_CONFIG_PATH": str(self._milvus_etcd_config())},
            ready=self._milvus_ready,
            # Its graceful stop can hang for minutes; it recovers from a kill (WAL in its data dir).
            stop_grace_s=10.0,
            # Milvus Lite 2.3.5's start now and then hangs for good after the proxy registers
            # (seen here: healthy components, port never answering, for 4 minutes); a new start
            # on the same data folder comes up in seconds.
            restart_stalled_s=self.s.milvus_restart_stalled_s,
        )

    # ---- Jaeger -------------------------------------------------------------------------

    def _jaeger_exe(self) -> Path:
        return self.cache / f"jaeger-{self.s.jaeger_version}" / "jaeger"

    def _jaeger_binary(self) -> None:
        exe = self._jaeger_exe()
        if exe.exists():
            return
        if shutil.which("go") is None:
            raise StackError("jaeger", "Go is not installed: it is needed once to build Jaeger")
        say(f"jaeger: building github.com/jaegertracing/jaeger/cmd/jaeger@{self.s.jaeger_version} (once; minutes)")
        env = {**os.environ, "GOFLAGS": "-mod=mod"}
        mod = f"github.com/jaegertracing/jaeger@{self.s.jaeger_version}"
        result = subprocess.run(["go", "mod", "download", "-json", mod], capture_output=True, text=True, env=env)
        if result.returncode != 0:
            raise StackError("jaeger", f"go mod download failed: {result.stderr[-2000:]}")
        import json

        src_cache = Path(json.loads(result.stdout)["Dir"])
        src = self.cache / f"jaeger-src-{self.s.jaeger_version}"
        if not src.exists():
            shutil.copytree(src_cache, src)
            subprocess.run(["chmod", "-R", "u+w", str(src)], check=True)
        # Built as the main module, so that Jaeger's own replace directives apply.
        tmp = exe.with_suffix(".tmp")
        tmp.parent.mkdir(parents=True, exist_ok=True)
        build = subprocess.run(
            ["go", "build", "-trimpath", "-o", str(tmp), "./cmd/jaeger"], cwd=src, env=env, text=True
        )
        if build.returncode != 0:
            raise StackError("jaeger", "go build failed (see output above)")
        tmp.rename(exe)

    def _jaeger_ui_dir(self) -> Path:
        return self.cache / f"jaeger-ui-{self.s.jaeger_ui_crate}-{self.s.jaeger_ui_crate_version}"

    def _jaeger_ui(self) -> None:
        """The Jaeger UI build from its crates.io package, fetched with cargo like any dependency."""
        target = self._jaeger_ui_dir()
        if (target / "index.html").exists():
            return
        crate, version = self.s.jaeger_ui_crate, self.s.jaeger_ui_crate_version
        if shutil.which("cargo") is None:
            say(f"jaeger: cargo is not installed, so no UI (the crate {crate} {version} carries it); traces still work")
            return
        say(f"jaeger: fetching the Jaeger UI from the crate {crate} {version} with cargo (once)")
        import json

        project = self.cache / "jaeger-ui-fetch"
        shutil.rmtree(project, ignore_errors=True)
        (project / "src").mkdir(parents=True)
        (project / "src" / "lib.rs").write_text("")
        (project / "Cargo.toml").write_text(
            f'[package]\nname = "jaeger-ui-fetch"\nversion = "0.0.0"\nedition = "2021"\n\n'
            f'[dependencies]\n{crate} = "={version}"\n'
        )
        fetch = subprocess.run(["cargo", "fetch", "--quiet"], cwd=project, capture_output=True, text=True)
        if fetch.returncode != 0:
            raise StackError("jaeger", f"cargo fetch of {crate} {version} failed: {fetch.stderr[-2000:]}")
        meta = subprocess.run(
            ["cargo", "metadata", "--format-version", "1", "--offline"],
            cwd=project,
            capture_output=True,
            text=True,
        )
        if meta.returncode != 0:
            raise StackError("jaeger", f"cargo metadata failed: {meta.stderr[-2000:]}")
        packages = json.loads(meta.stdout)["packages"]
        manifest = next(Path(p["manifest_path"]) for p in packages if p["name"] == crate and p["version"] == version)
        build = manifest.parent / "jaeger-ui" / "build"
        if not (build / "index.html").exists():
            raise StackError("jaeger", f"{crate} {version} has no jaeger-ui/build/index.html")
        tmp = target.with_suffix(".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(build, tmp)
        tmp.rename(target)
        shutil.rmtree(project, ignore_errors=True)

    def _jaeger(self) -> Service:
        return Service(
            name="jaeger",
            port=self.s.jaeger_ui_port,
            command=lambda: [str(self._jaeger_exe()), "--config", str(DEPLOY_DIR / "jaeger" / "config.yaml")],
            env=lambda: {
                "JAEGER_UI_PORT": str(self.s.jaeger_ui_port),
                "JAEGER_QUERY_GRPC_PORT": str(self.s.jaeger_ui_port - 1),
                "JAEGER_OTLP_GRPC_PORT": str(self.s.jaeger_otlp_grpc_port),
                "JAEGER_OTLP_HTTP_PORT": str(self.s.jaeger_otlp_http_port),
                "JAEGER_HEALTH_PORT": str(self.s.jaeger_ui_port + 1000),
                # Empty (no cargo): Jaeger's built-in placeholder page.
                "JAEGER_UI_ASSETS": str(self._jaeger_ui_dir())
                if (self._jaeger_ui_dir() / "index.html").exists()
                else "",
            },
            ready=lambda: (
                http_ok(f"http://127.0.0.1:{self.s.jaeger_ui_port}/api/services")
                and port_open(self.s.jaeger_otlp_grpc_port)
            ),
        )

    # ---- Triton -------------------------------------------------------------------------

    def _site_packages(self) -> Path:
        return Path(sysconfig.get_paths()["purelib"])

    def _triton_root(self) -> Path:
        import pytriton

        return Path(pytriton.__file__).resolve().parent / "tritonserver"

    def _triton_backend_dir(self) -> None:
        # The python backend looks for its stub next to libtriton_python.so; the wheel ships the
        # stubs per Python version elsewhere. Same folder depth, so the stub's rpath still holds.
        root = self._triton_root()
        ver = f"{sys.version_info.major}.{sys.version_info.minor}"
        stub = root / "python_backend_stubs" / ver / "triton_python_backend_stub"
        target = root / "backends" / "python" / "triton_python_backend_stub"
        if not target.exists():
            shutil.copy2(stub, target)

    def _triton_model_names(self) -> list[str]:
        names = [m.strip() for m in self.s.triton_models.split(",") if m.strip()]
        return [self._auto_text_model() if name == AUTO_TEXT_MODEL else name for name in names]

    def _triton_model_flags(self) -> list[str]:
        # Explicit model control always, the whole repository included ("*"): promote, rollback and
        # shadow load and unload matcher versions through tritonclient without a restart.
        names = self._triton_model_names()
        if not names or "*" in names:
            return ["--model-control-mode=explicit", "--load-model=*"]
        return ["--model-control-mode=explicit", *(f"--load-model={name}" for name in names)]

    # ---- the text encoder chosen by measurement (content_resolver/encoder_choice.py) --------

    def _auto_text_model(self) -> str:
        if self._text_model is None:
            raise StackError(
                "triton",
                f"{AUTO_TEXT_MODEL!r} in RESOLVER_STACK_TRITON_MODELS needs the measured choice: "
                "build the stack with content_resolver.composition.local_stack, or name the model",
            )
        return self._text_model()

    def ensure_triton_models(self) -> None:
        """A Triton started earlier (or elsewhere) in explicit mode may not hold the model chosen
        now: ask it to load what is missing rather than leave the worker without its encoder."""
        names = self._triton_model_names()
        if "*" in names:
            return
        base = f"http://127.0.0.1:{self.s.triton_http_port}/v2"
        for name in names:
            if http_ok(f"{base}/models/{name}/ready"):
                continue
            say(f"triton: loading {name}")
            request = urllib.request.Request(f"{base}/repository/models/{name}/load", data=b"{}", method="POST")
            try:
                with urllib.request.urlopen(request, timeout=300) as resp:
                    resp.read()
            except OSError as exc:
                say(f"triton: could not load {name}: {exc}")

    def _triton(self) -> Service:
        def command() -> list[str]:
            root = self._triton_root()
            return [
                str(root / "bin" / "tritonserver"),
                f"--model-repository={self.s.triton_model_repository}",
                f"--backend-directory={root / 'backends'}",
                f"--cache-directory={root / 'caches'}",
                f"--http-port={self.s.triton_http_port}",
                f"--grpc-port={self.s.triton_grpc_port}",
                f"--metrics-port={self.s.triton_metrics_port}",
                "--http-address=127.0.0.1",
                "--grpc-address=127.0.0.1",
                "--metrics-address=127.0.0.1",
                "--disable-auto-complete-config",
                "--log-verbose=0",
                "--exit-timeout-secs=10",
                # One broken model (say, a matcher version being trained) must not take the text
                # encoder down with it; clients check the readiness of the model they use.
                "--exit-on-error=false",
                "--strict-readiness=false",
                *self._triton_model_flags(),
            ]

        def env() -> dict[str, str]:
            venv_bin = str(Path(self.python).parent)
            libdir = sysconfig.get_config_var("LIBDIR") or ""
            return {
                "PATH": f"{venv_bin}:{os.environ.get('PATH', '')}",
                # Otherwise the stub loads Debian's libpython, which breaks on this interpreter.
                "LD_LIBRARY_PATH": f"{libdir}:{os.environ.get('LD_LIBRARY_PATH', '')}",
                "PYTHONPATH": f"{REPO_ROOT}:{self._site_packages()}",
                "HF_HUB_OFFLINE": "1",
                "TRANSFORMERS_OFFLINE": "1",
                "OMP_NUM_THREADS": str(self.s.torch_threads),
                "MKL_NUM_THREADS": str(self.s.torch_threads),
                "RESOLVER_TORCH_THREADS": str(self.s.torch_threads),
                "TOKENIZERS_PARALLELISM": "false",
            }

        return Service(
            name="triton",
            port=self.s.triton_grpc_port,
            command=command,
            env=env,
            ready=lambda: http_ok(f"http://127.0.0.1:{self.s.triton_http_port}/v2/health/ready"),
        )


def _log_tail(log: Path | None, lines: int = 20) -> str:
    """The service's last words, so that an error read far away (CI) says why without the file."""
    if log is None or not log.is_file():
        return ""
    try:
        tail = log.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return ""
    return "".join(f"\n  | {line[:300]}" for line in tail) if tail else ""


def _milvus_login(uri: str, token: str) -> str:
    """Says "ok", "refused" (Milvus' authentication error) or "down" (anything else: still starting)."""
    import pymilvus  # noqa: F401 - configures its loggers on import, so before we quiet them

    # pymilvus logs every failed connect as an ERROR; while Milvus starts that is expected.
    loggers = [logging.getLogger(name) for name in ("pymilvus", "pymilvus.milvus_client")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        return _milvus_try_login(uri, token)
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def _milvus_try_login(uri: str, token: str) -> str:
    import grpc
    from pymilvus import MilvusClient, MilvusException

    try:
        client = MilvusClient(uri=uri, token=token, timeout=3)
    except grpc.RpcError as exc:
        return "refused" if exc.code() == grpc.StatusCode.UNAUTHENTICATED else "down"
    except MilvusException as exc:
        return "refused" if exc.code == MILVUS_AUTH_ERROR_CODE else "down"
    except Exception:
        return "down"
    try:
        client.list_collections()
        return "ok"
    except Exception:
        return "down"
    finally:
        client.close()


def _group_alive(pgid: int) -> bool:
    """True while any non-zombie process of the group is left."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child counts as gone.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return False
