"""A second local Kafka broker that only speaks SASL_SSL with SCRAM-SHA-512.

For the security test and for trying the resolver's SASL/TLS settings locally: a self-signed
certificate (keytool), SCRAM credentials written at format time, and a PLAINTEXT listener kept
for the broker's own inter-broker traffic only.
"""

from __future__ import annotations

import base64
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from deploy.stack import DEPLOY_DIR, StackError, port_open

MECHANISM = "SCRAM-SHA-512"


@dataclass(frozen=True)
class SecureKafkaConfig:
    base_dir: Path
    kafka_libs: Path
    port: int
    internal_port: int
    controller_port: int
    username: str
    password: str
    store_password: str

    @property
    def ca_file(self) -> Path:
        return self.base_dir / "ca.pem"

    def client_env(self) -> dict[str, str]:
        """The resolver's settings (``RESOLVER_KAFKA_*``) for talking to this broker."""
        return {
            "RESOLVER_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{self.port}",
            "RESOLVER_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "RESOLVER_KAFKA_SASL_MECHANISM": MECHANISM,
            "RESOLVER_KAFKA_SASL_USERNAME": self.username,
            "RESOLVER_KAFKA_SASL_PASSWORD": self.password,
            "RESOLVER_KAFKA_SSL_CAFILE": str(self.ca_file),
        }


class SecureKafka:
    def __init__(self, config: SecureKafkaConfig) -> None:
        self.c = config
        self._proc: subprocess.Popen | None = None

    def _java(self) -> list[str]:
        return [
            "java",
            "-Xms128m",
            "-Xmx512m",
            f"-Dlog4j.configuration=file:{DEPLOY_DIR / 'kafka' / 'log4j.properties'}",
            "-cp",
            f"{self.c.kafka_libs}/*",
        ]

    def _certificate(self) -> Path:
        store = self.c.base_dir / "broker.p12"
        if store.exists():
            return store
        pw = self.c.store_password
        subprocess.run(
            ["keytool", "-genkeypair", "-alias", "broker", "-keyalg", "RSA", "-keysize", "2048",
             "-dname", "CN=localhost", "-ext", "SAN=DNS:localhost,IP:127.0.0.1", "-validity", "7",
             "-keystore", str(store), "-storetype", "PKCS12", "-storepass", pw, "-keypass", pw],
            check=True, capture_output=True,
        )  # fmt: skip
        subprocess.run(
            ["keytool", "-exportcert", "-alias", "broker", "-keystore", str(store), "-storepass", pw,
             "-rfc", "-file", str(self.c.ca_file)],
            check=True, capture_output=True,
        )  # fmt: skip
        return store

    def start(self, timeout_s: float = 120.0) -> None:
        c = self.c
        c.base_dir.mkdir(parents=True, exist_ok=True)
        store = self._certificate()
        data = c.base_dir / "data"
        props = c.base_dir / "server.properties"
        jaas = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
        props.write_text(
            "\n".join(
                [
                    "process.roles=broker,controller",
                    "node.id=1",
                    f"controller.quorum.voters=1@127.0.0.1:{c.controller_port}",
                    f"listeners=SASL_SSL://127.0.0.1:{c.port},INTERNAL://127.0.0.1:{c.internal_port},"
                    f"CONTROLLER://127.0.0.1:{c.controller_port}",
                    f"advertised.listeners=SASL_SSL://127.0.0.1:{c.port},INTERNAL://127.0.0.1:{c.internal_port}",
                    "controller.listener.names=CONTROLLER",
                    "inter.broker.listener.name=INTERNAL",
                    "listener.security.protocol.map=CONTROLLER:PLAINTEXT,INTERNAL:PLAINTEXT,SASL_SSL:SASL_SSL",
                    f"sasl.enabled.mechanisms={MECHANISM}",
                    f"listener.name.sasl_ssl.{MECHANISM.lower()}.sasl.jaas.config={jaas}",
                    f"ssl.keystore.location={store}",
                    "ssl.keystore.type=PKCS12",
                    f"ssl.keystore.password={c.store_password}",
                    f"ssl.key.password={c.store_password}",
                    f"log.dirs={data}",
                    "num.partitions=3",
                    "offsets.topic.replication.factor=1",
                    "offsets.topic.num.partitions=2",
                    "transaction.state.log.replication.factor=1",
                    "transaction.state.log.min.isr=1",
                    "group.initial.rebalance.delay.ms=0",
                    "",
                ]
            )
        )
        if not (data / "meta.properties").exists():
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
            scram = f"{MECHANISM}=[name={c.username},password={c.password}]"
            result = subprocess.run(
                [*self._java(), "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(props),
                 "--add-scram", scram],
                capture_output=True, text=True,
            )  # fmt: skip
            if result.returncode != 0:
                raise StackError("secure-kafka", f"storage format failed: {result.stdout}{result.stderr}")
        log = open(c.base_dir / "broker.log", "ab")  # noqa: SIM115 - handed to the child
        self._proc = subprocess.Popen(
            [*self._java(), "kafka.Kafka", str(props)], stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if port_open(c.port) and port_open(c.internal_port):
                return
            if self._proc.poll() is not None:
                raise StackError("secure-kafka", "exited during start-up", c.base_dir / "broker.log")
            time.sleep(0.5)
        raise StackError("secure-kafka", f"not ready after {timeout_s:.0f}s", c.base_dir / "broker.log")

    def stop(self) -> None:
        if self._proc is None:
            return
        self._proc.send_signal(signal.SIGTERM)
        try:
            self._proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(timeout=10)
        self._proc = None
