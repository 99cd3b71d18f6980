"""The encoder paths and the choice by measurement: rules, cache and override (no services)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from content_resolver import encoder_choice
from content_resolver.encoder_choice import (
    EncoderChoice,
    PathMeasurement,
    choose,
    judge,
    served_text_model,
)
from inference.encoder_paths import ENCODER_PATHS, encoder_path
from settings import REPO_ROOT, Settings


def _param(config: str, key: str) -> str | None:
    found = re.search(rf'key:\s*"{key}"\s*value:\s*\{{\s*string_value:\s*"([\w-]+)"', config)
    return found.group(1) if found else None


@pytest.mark.parametrize("path", ENCODER_PATHS, ids=lambda p: p.triton_model)
def test_every_path_has_a_triton_model_folder_that_runs_it(path) -> None:
    folder = REPO_ROOT / "triton_models" / path.triton_model
    config = (folder / "config.pbtxt").read_text()
    assert f'name: "{path.triton_model}"' in config
    assert (_param(config, "runtime") or "torch") == path.runtime
    assert (_param(config, "precision") or "fp32") == path.precision
    assert (folder / "1" / "model.py").exists()


def test_model_versions_name_runtime_and_precision() -> None:
    assert encoder_path("text_encoder").model_version == "minilm-l6-v2"
    assert encoder_path("text_encoder_onnx_int8").model_version == "minilm-l6-v2-onnx-int8"
    with pytest.raises(ValueError, match="not one of"):
        encoder_path("text_encoder_fp8")


def _measured(model: str, rate: float, cosine: float = 1.0, batch_cosine: float = 1.0) -> PathMeasurement:
    ok, why = judge(encoder_path(model), cosine, cosine, batch_cosine)
    return PathMeasurement(model, encoder_path(model).label, rate, 1.0, cosine, cosine, batch_cosine, None, ok, why)


def test_judge_needs_cosine_and_a_measured_f1_cost(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(encoder_choice, "MEASURED_F1_COST", {"text_encoder_onnx_int8": {"a": 0.001, "b": -0.002}})
    assert judge(encoder_path("text_encoder_onnx_int8"), 0.992, 0.97, 1.0) == (True, "")
    ok, why = judge(encoder_path("text_encoder_onnx_int8"), 0.97, 0.90, 1.0)
    assert not ok and "cosine" in why
    ok, why = judge(encoder_path("text_encoder_bf16"), 0.99995, 0.9999, 1.0)
    assert not ok and "no F1 cost" in why
    assert judge(encoder_path("text_encoder_onnx"), 1.0, 1.0, 0.9999991) == (True, "")  # a reference needs none
    monkeypatch.setattr(encoder_choice, "MEASURED_F1_COST", {"text_encoder_onnx_int8": {"a": 0.009}})
    ok, why = judge(encoder_path("text_encoder_onnx_int8"), 0.992, 0.97, 1.0)
    assert not ok and "0.0090 > 0.005" in why


def test_a_vector_that_depends_on_its_batch_is_not_served(monkeypatch: pytest.MonkeyPatch) -> None:
    # Dynamic int8 as measured on an AVX2 EPYC: fastest, within the cosine and F1 budgets, but a
    # text's vector moves with its batch neighbours (cosine 0.974 across batchings).
    monkeypatch.setattr(encoder_choice, "MEASURED_F1_COST", {"text_encoder_onnx_int8": {"a": 0.001}})
    ok, why = judge(encoder_path("text_encoder_onnx_int8"), 0.9915, 0.96, 0.9737)
    assert not ok and "depends on the batch" in why
    measured = [
        _measured("text_encoder", 135),
        _measured("text_encoder_onnx", 202, batch_cosine=0.9999991),
        _measured("text_encoder_onnx_int8", 316, cosine=0.9915, batch_cosine=0.9737),
    ]
    assert choose(measured, "cpu").model == "text_encoder_onnx"


def test_batch_invariance_compares_each_text_with_itself_in_other_batches() -> None:
    import numpy as np

    texts = [f"text {i}" for i in range(20)]
    base = {t: np.eye(20, dtype=np.float32)[i] for i, t in enumerate(texts)}

    def invariant(batch: list[str]) -> np.ndarray:
        return np.stack([base[t] for t in batch])

    def batch_dependent(batch: list[str]) -> np.ndarray:
        # Every vector leans towards the batch mean, as a per-batch activation scale does.
        own = invariant(batch)
        return own + 0.3 * own.mean(axis=0)

    whole = invariant(texts)
    assert encoder_choice.batch_invariance(invariant, texts, whole) == pytest.approx(1.0)
    assert encoder_choice.batch_invariance(batch_dependent, texts, batch_dependent(texts)) < 0.999


def test_the_fastest_path_within_budget_is_chosen(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(encoder_choice, "MEASURED_F1_COST", {"text_encoder_onnx_int8": {"a": 0.001}})
    measured = [
        _measured("text_encoder", 200),
        _measured("text_encoder_bf16", 40),  # a CPU without AVX-512 BF16
        _measured("text_encoder_int8", 900, cosine=0.97),  # fastest, but out of budget
        _measured("text_encoder_onnx", 230),
        _measured("text_encoder_onnx_int8", 600),
    ]
    choice = choose(measured, "some cpu")
    assert choice.model == "text_encoder_onnx_int8"
    assert "3.00x torch fp32" in choice.reason
    assert any("out: cosine" in line for line in choice.lines())
    only_references = [m for m in measured if m.model in ("text_encoder", "text_encoder_onnx")]
    assert choose(only_references, "cpu").model == "text_encoder_onnx"


def test_the_override_wins_and_an_unmeasured_machine_says_so(tmp_path: Path) -> None:
    env = {"RESOLVER_STACK_CACHE_DIR": str(tmp_path)}
    assert served_text_model(Settings.from_env(env)).model == "text_encoder"
    assert "not measured" in served_text_model(Settings.from_env(env)).reason
    chosen = served_text_model(Settings.from_env({**env, "RESOLVER_WORKER_TEXT_MODEL": "text_encoder_bf16"}))
    assert chosen == EncoderChoice("text_encoder_bf16", "set by RESOLVER_WORKER_TEXT_MODEL")
    with pytest.raises(ValueError, match="not one of"):
        served_text_model(Settings.from_env({**env, "RESOLVER_WORKER_TEXT_MODEL": "nope"}))


def test_a_measured_choice_is_cached_per_cpu_and_read_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    def fake_measure(texts, cache_dir, threads, say):
        calls.append(len(texts))
        return [_measured(p.triton_model, 100.0 + i) for i, p in enumerate(ENCODER_PATHS)]

    monkeypatch.setattr(encoder_choice, "MEASURED_F1_COST", {})
    monkeypatch.setattr(encoder_choice, "measure_paths", fake_measure)
    monkeypatch.setattr(encoder_choice, "sample_texts", lambda: ["a", "b"])
    first = encoder_choice.measured_choice(tmp_path, 1, say=lambda _: None)
    again = encoder_choice.measured_choice(tmp_path, 1, say=lambda _: None)
    assert calls == [2] and again == first
    assert first.model == "text_encoder_onnx"  # the fastest of those within budget here
    settings = Settings.from_env({"RESOLVER_STACK_CACHE_DIR": str(tmp_path), "RESOLVER_STACK_TORCH_THREADS": "1"})
    assert served_text_model(settings) == first
    other_threads = Settings.from_env({"RESOLVER_STACK_CACHE_DIR": str(tmp_path), "RESOLVER_STACK_TORCH_THREADS": "2"})
    assert "not measured" in served_text_model(other_threads).reason
    # A measured F1 cost applies to the cached measurements at once.
    monkeypatch.setattr(encoder_choice, "MEASURED_F1_COST", {"text_encoder_onnx_int8": {"a": 0.0}})
    assert served_text_model(settings).model == "text_encoder_onnx_int8"
