"""The model lifecycle on real services: a retrain that learns from curator verdicts replayed from
Kafka, then a Triton of its own (explicit model control, a model repository in a temporary
folder) where a worse version is refused, a better one is promoted and served without a restart
(the scorer the worker uses follows it), and a rollback returns to the version before.

Small data (a generated catalogue of 40 songs), so the three trainings take seconds each once
the texts are embedded (the embedding cache keeps them for later runs).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import random
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from content_resolver.cli import main
from deploy.stack import LocalStack
from deploy.worker import free_port
from evaluation.datasets import write_dataset
from evaluation.sample_catalogue import generate_catalogue
from inference.matcher_model import MatcherModel
from inference.model_repository import ModelRepository, ServedVersions
from inference.triton_client import TritonModelControl, TritonPairScorer
from resolution.feedback import Feedback
from resolution.matcher import PairInput
from resolution.normalise import normalise
from settings import REPO_ROOT, Settings
from tests.workers import drop_namespace, isolated_settings

pytestmark = pytest.mark.integration
SHIPPED = REPO_ROOT / "triton_models" / "matcher"


@pytest.fixture(scope="module")
def namespace(stack: Settings) -> Iterator[tuple[Settings, dict[str, str]]]:
    from streams.kafka import ensure_topics

    settings, env = isolated_settings(stack, "lifecycle")
    ensure_topics(settings.kafka)
    yield settings, env
    drop_namespace(settings)


@pytest.fixture(scope="module")
def own_triton(
    tmp_path_factory: pytest.TempPathFactory, stack: Settings
) -> Iterator[tuple[LocalStack, dict[str, str]]]:
    """A model repository holding a copy of the shipped matcher (version 1), and a Triton on
    free ports that loads only the matcher; started by the test, once a weak version serves."""
    root = tmp_path_factory.mktemp("models")
    (root / "matcher").mkdir()
    shutil.copy2(SHIPPED / "config.pbtxt", root / "matcher" / "config.pbtxt")
    shutil.copytree(SHIPPED / "1", root / "matcher" / "1")
    ports = {"HTTP": free_port(), "GRPC": free_port(), "METRICS": free_port()}
    env = {
        "RESOLVER_STACK_TRITON_MODEL_REPOSITORY": str(root),
        "RESOLVER_STACK_TRITON_MODELS": "matcher",
        "RESOLVER_STACK_STATE_DIR": str(tmp_path_factory.mktemp("triton-state")),
        **{f"RESOLVER_STACK_TRITON_{k}_PORT": str(v) for k, v in ports.items()},
        "RESOLVER_WORKER_TRITON_URL": f"127.0.0.1:{ports['GRPC']}",
    }
    local = LocalStack(Settings.from_env({**os.environ, **env}).stack)
    yield local, env
    local.stop("triton")


def _golden_set(folder: Path) -> tuple[Path, list, dict]:
    items, truth = generate_catalogue(seed=41, songs=40)
    write_dataset(folder, items, truth)
    return folder, items, truth


def _verdicts(items: list, truth: dict, n: int) -> list[Feedback]:
    """Curator verdicts that agree with the truth: same entity -> same, else different."""
    rng = random.Random(3)
    ids = [i.content_id for i in items]
    by_entity: dict[str, list[str]] = {}
    for cid in ids:
        by_entity.setdefault(truth[cid].entity_id, []).append(cid)
    same = [(m[0], m[1]) for m in by_entity.values() if len(m) > 1]
    out = []
    for k, (a, b) in enumerate(same[: n // 2]):
        out.append(Feedback(f"fb-same-{k}", a, b, "same", "ana", created_at_ms=k + 1))
    for k in range(n - len(out)):
        a, b = rng.sample(ids, 2)
        verdict = "same" if truth[a].entity_id == truth[b].entity_id else "different"
        out.append(Feedback(f"fb-rand-{k}", a, b, verdict, "bo", created_at_ms=1000 + k))
    return out


def _meta(folder: Path) -> dict:
    return json.loads((folder / "matcher.json").read_text(encoding="utf-8"))["metadata"]


def _triton_pid(local: LocalStack) -> int | None:
    return local._pid(local._service("triton"))


def test_retrain_from_feedback_refuse_promote_rollback(
    namespace: tuple[Settings, dict[str, str]],
    own_triton: tuple[LocalStack, dict[str, str]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from streams.feedback import send_feedback
    from streams.producer import ContentProducer
    from streams.topics import Schemas
    from telemetry import tracer_provider

    settings, ns_env = namespace
    local, triton_env = own_triton
    for key, value in {**ns_env, **triton_env}.items():
        monkeypatch.setenv(key, value)
    settings = Settings.from_env()
    repository = ModelRepository(settings.stack.triton_model_repository, "matcher")
    data, items, truth = _golden_set(tmp_path / "golden-41")

    # The curators' verdicts and the items they name, on the (isolated) topics.
    tracing = tracer_provider("lifecycle-test", settings.worker.otlp_endpoint)
    schemas = Schemas.load()
    producer = ContentProducer(settings.kafka, schemas.content_event, tracing.get_tracer("test"))
    for _ in producer.stream(items):
        pass
    producer.flush()
    verdicts = _verdicts(items, truth, 40)
    send_feedback(settings.kafka, schemas.feedback, tracing.get_tracer("test"), verdicts)
    tracing.shutdown()

    small = ["--dataset", str(data), "--sample-songs", "30"]
    # A weak version (one epoch, two hidden units) serves first.
    assert main(["train", *small, "--epochs", "1", "--hidden", "2", "--seed", "5"]) == 0
    assert repository.versions() == [1, 2]
    repository.write_served(ServedVersions(2, (2,), ()))

    # 1. Retrain with the verdicts: version 3, its data, feedback, parameters, seed and code recorded.
    assert main(["train", *small, "--feedback"]) == 0
    out = capsys.readouterr().out
    assert "40 verdicts" in out, out
    meta = _meta(repository.version_dir(3))
    provenance = meta["provenance"]
    fed = provenance["data"]["curator-feedback"]
    assert fed["verdicts"] == 40 and fed["from_items"] == fed["pairs"] > 0 and fed["missing_items"] == 0
    assert fed["topics"][settings.kafka.feedback_topic] == 40
    assert len(fed["sha256"]) == 64
    assert sum(meta["feedback_pairs"].values()) == fed["pairs"]
    assert provenance["data"]["golden-41"]["sha256"] and provenance["seed"] == 13
    assert len(provenance["code"]["commit"]) == 40 and provenance["parameters"]["epochs"] == 30
    assert provenance["metrics"]["valid_overall_f1"] > 0
    assert (repository.version_dir(3) / "model.py").exists()

    # Triton starts with explicit model control and serves the weak version 2 only.
    local.up(["triton"])
    pid = _triton_pid(local)
    control = TritonModelControl(settings.worker.triton_url)
    assert control.serving_version("matcher") == 2
    assert control.ready_versions("matcher", [1, 2, 3]) == {1: False, 2: True, 3: False}

    # The scorer a worker uses, following the serving version.
    weak = MatcherModel.load(repository.version_dir(2))
    scorer = TritonPairScorer(
        settings.worker.triton_url,
        weak,
        load_version=lambda v: MatcherModel.load(repository.version_dir(v)),
        version=2,
        refresh_s=0.0,
    )
    norms = [normalise(i) for i in items[:12]]
    pairs = [PairInput(a, b, 0.8) for a, b in itertools.pairwise(norms)]

    async def score() -> list[dict[str, float]]:
        return [s.probabilities for s in await scorer.score(pairs)]

    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(score())
        assert scorer.model_version == weak.version

        # 2. The retrained version beats the weak one on held-out pairs: promoted, no restart.
        assert main(["promote", "matcher", "3"]) == 0
        out = capsys.readouterr().out
        assert "PROMOTE" in out and "no restart" in out, out
        assert control.serving_version("matcher") == 3
        assert control.ready_versions("matcher", [2, 3]) == {2: False, 3: True}
        assert _triton_pid(local) == pid  # loaded without a restart
        strong = MatcherModel.load(repository.version_dir(3))
        features = strong.features(pairs)[1]
        assert np.allclose(control.infer("matcher", 3, features), strong.predict(features), atol=1e-5)
        loop.run_until_complete(score())
        assert scorer.version == 3 and scorer.model_version == strong.version

        # 3. A worse candidate (weak again, another seed) is refused; version 3 keeps serving.
        assert main(["train", *small, "--epochs", "1", "--hidden", "2", "--seed", "6"]) == 0
        capsys.readouterr()
        assert main(["promote", "matcher", "4"]) == 2
        out = capsys.readouterr().out
        assert "REFUSE" in out and "REFUSED" in out, out
        assert control.serving_version("matcher") == 3 and repository.served().serving == 3

        # 4. Rollback: version 2 serves again, still the same Triton process.
        assert main(["rollback", "matcher"]) == 0
        assert control.serving_version("matcher") == 2
        assert repository.served() == ServedVersions(2, (2,), ())
        assert _triton_pid(local) == pid
        loop.run_until_complete(score())
        assert scorer.version == 2 and scorer.model_version == weak.version
    finally:
        loop.run_until_complete(scorer.close())
        loop.close()
        control.close()
