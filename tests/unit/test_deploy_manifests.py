"""The cluster manifests (deploy/kubernetes): valid Kubernetes, and consistent with each other and the code.

Core resources are validated offline against the Kubernetes OpenAPI schemas that the PyPI
package ``kubernetes-validate`` bundles (strict: an unknown field fails). Strimzi and KEDA
resources have no schema we can install from a registry, so they are checked by their
cross-references only (docs/scaling.md says so).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from settings import REPO_ROOT, Settings

MANIFESTS = REPO_ROOT / "deploy" / "kubernetes"
DOCKERFILES = REPO_ROOT / "deploy" / "docker"
KUBERNETES_VERSION = "1.33.0"
CUSTOM_GROUPS = ("kafka.strimzi.io/", "keda.sh/")


def documents() -> list[tuple[Path, dict[str, Any]]]:
    out = []
    for path in sorted(MANIFESTS.glob("*.yaml")):
        if path.name.endswith("-values.yaml"):
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                out.append((path, doc))
    return out


def find(kind: str, name: str | None = None) -> list[dict[str, Any]]:
    return [d for _, d in documents() if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]


def one(kind: str, name: str) -> dict[str, Any]:
    [doc] = find(kind, name)
    return doc


def test_core_resources_are_valid_against_the_kubernetes_schemas() -> None:
    kv = pytest.importorskip("kubernetes_validate", reason="dev dependency kubernetes-validate is not installed")
    core = [(p, d) for p, d in documents() if not d["apiVersion"].startswith(CUSTOM_GROUPS)]
    assert {d["kind"] for _, d in core} >= {"StatefulSet", "Deployment", "Service", "ConfigMap", "Namespace"}
    failures = []
    for path, doc in core:
        try:
            kv.validate(doc, KUBERNETES_VERSION, strict=True)
        except kv.ValidationError as exc:
            failures.append(f"{path.name}: {doc['kind']}/{doc['metadata']['name']}: {str(exc).splitlines()[0]}")
    assert not failures, "\n".join(failures)


def test_the_validator_rejects_what_it_should() -> None:
    """The check above can fail: an unknown field in a Deployment is refused."""
    kv = pytest.importorskip("kubernetes_validate", reason="dev dependency kubernetes-validate is not installed")
    bad = {**one("Deployment", "triton")}
    bad["spec"] = {**bad["spec"], "replica": 2}
    with pytest.raises(kv.ValidationError):
        kv.validate(bad, KUBERNETES_VERSION, strict=True)


def worker_config() -> dict[str, str]:
    config = dict(one("ConfigMap", "resolver-worker")["data"])
    [container] = one("StatefulSet", "resolver-worker")["spec"]["template"]["spec"]["containers"]
    for env in container.get("env", []):
        config[env["name"]] = env.get("value", "secret")
    return config


def test_every_worker_setting_is_a_real_setting_that_parses() -> None:
    config = worker_config()
    settings = Settings.from_env(config)
    known = {
        f"RESOLVER_{section.upper()}_{name.upper()}"
        for section, obj in (("kafka", settings.kafka), ("worker", settings.worker), ("stack", settings.stack))
        for name in obj.__dataclass_fields__
    }
    unknown = {k for k in config if k.startswith("RESOLVER_") and k not in known}
    assert not unknown, f"not settings: {sorted(unknown)}"
    assert settings.worker.table_store == "rocksdb" and settings.worker.web_host == "0.0.0.0"
    # The state folder is the mounted volume, so a restarted pod finds its RocksDB again.
    [container] = one("StatefulSet", "resolver-worker")["spec"]["template"]["spec"]["containers"]
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert str(settings.stack.state_dir) in mounts


def test_keda_scales_the_workers_on_their_own_group_and_topic_within_the_partitions() -> None:
    config = Settings.from_env(worker_config())
    scaled = one("ScaledObject", "resolver-worker")["spec"]
    target = scaled["scaleTargetRef"]
    assert find(target["kind"], target["name"]), f"no {target['kind']} {target['name']}"
    [trigger] = scaled["triggers"]
    assert trigger["type"] == "kafka"
    assert trigger["metadata"]["consumerGroup"] == config.worker.app_id
    assert trigger["metadata"]["topic"] == config.kafka.content_topic
    assert trigger["metadata"]["bootstrapServers"] == config.kafka.bootstrap_servers
    partitions = one("KafkaTopic", config.kafka.content_topic)["spec"]["partitions"]
    assert scaled["minReplicaCount"] <= scaled["maxReplicaCount"] <= partitions
    assert one("TriggerAuthentication", trigger["authenticationRef"]["name"])


def test_topics_match_the_workers_settings() -> None:
    config = Settings.from_env(worker_config())
    k = config.kafka
    for topic in (k.content_topic, k.decisions_topic, k.feedback_topic):
        # Decisions of content partition p go to decisions partition p: the counts must agree.
        assert one("KafkaTopic", topic)["spec"]["partitions"] == k.partitions, topic
    assert one("KafkaTopic", k.dlq_topic)
    cluster = {d["metadata"]["labels"]["strimzi.io/cluster"] for d in find("KafkaTopic")}
    assert cluster == {one("Kafka", "resolver-kafka")["metadata"]["name"]}
    assert k.bootstrap_servers.startswith("resolver-kafka-kafka-bootstrap.")


def test_services_point_at_pods_that_exist() -> None:
    labels = [d["spec"]["template"]["metadata"]["labels"] for d in [*find("Deployment"), *find("StatefulSet")]]
    for service in find("Service"):
        selector = service["spec"]["selector"]
        assert any(selector.items() <= pod.items() for pod in labels), service["metadata"]["name"]


def test_triton_runs_on_gpu_nodes_and_serves_the_workers_models() -> None:
    pod = one("Deployment", "triton")["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert any(t["key"] == "nvidia.com/gpu" for t in pod["tolerations"])
    config = Settings.from_env(worker_config())
    loaded = {a.split("=", 1)[1] for a in container["args"] if a.startswith("--load-model=")}
    assert {config.worker.text_model, config.worker.matcher_model} <= loaded
    for model in loaded:
        assert (REPO_ROOT / "triton_models" / model / "config.pbtxt").exists(), model


def test_milvus_values_are_cluster_mode() -> None:
    values = yaml.safe_load((MANIFESTS / "milvus-values.yaml").read_text())
    assert values["cluster"]["enabled"] is True
    assert values["queryNode"]["replicas"] >= 2


def test_dockerfiles_copy_only_what_exists() -> None:
    for dockerfile in DOCKERFILES.glob("*.Dockerfile"):
        for line in dockerfile.read_text().splitlines():
            parts = line.split()
            if parts[:1] == ["COPY"] and not parts[1].startswith("--from"):
                for source in parts[1:-1]:
                    assert (REPO_ROOT / source).exists(), f"{dockerfile.name}: {source}"
