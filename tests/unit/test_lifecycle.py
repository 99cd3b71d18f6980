"""Model lifecycle, pure parts: the served-version pointer, the promotion gate's judgement,
curator verdicts as training labels, and shadow settings."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from content_resolver.composition import as_shadow
from inference.matcher_model import MatcherModel, MatcherNet
from inference.model_repository import ModelRepository, ServedVersions
from resolution.features import MEDIA_FEATURE_NAMES
from resolution.feedback import Feedback
from resolution.model import ContentItem
from resolution.policy import DecisionPolicy, Thresholds
from settings import REPO_ROOT, Settings
from tests.unit.text_fakes import trigram_encoder
from training.matcher import FEEDBACK_SET, MODEL_FEATURES, feedback_labels, feedback_portion
from training.promotion import GateSettings, judge, overall, relation_scores

SHIPPED = REPO_ROOT / "triton_models" / "matcher"


def _repository(tmp_path: Path, versions: int) -> ModelRepository:
    folder = tmp_path / "matcher"
    folder.mkdir()
    shutil.copy2(SHIPPED / "config.pbtxt", folder / "config.pbtxt")
    (folder / "1").mkdir()
    shutil.copy2(SHIPPED / "1" / "model.py", folder / "1" / "model.py")
    repo = ModelRepository(tmp_path, "matcher")
    for v in range(1, versions + 1):
        torch.manual_seed(v)
        model = MatcherModel(MatcherNet(len(MODEL_FEATURES), 8), MODEL_FEATURES, Thresholds(0.5, 0.5))
        target = repo.version_dir(v) if v == 1 else repo.new_version_dir()
        model.save(target)
    repo.write_served(ServedVersions(1, (1,)))  # whatever the shipped file serves now
    return repo


def test_shipped_config_serves_the_media_fusion_over_version_one_and_triton_can_parse_it() -> None:
    config = model_config_pb2.ModelConfig()
    text_format.Parse((SHIPPED / "config.pbtxt").read_text(encoding="utf-8"), config)
    shipped = ModelRepository(SHIPPED.parent, "matcher")
    served = shipped.served()
    # Version 2 (promoted by the gate, docs/media.md) is version 1's text matcher plus a media head.
    assert served == ServedVersions(2, (2,), (1,))
    fused = MatcherModel.load(shipped.version_dir(2))
    assert fused.metadata["base"]["version"] == MatcherModel.load(shipped.version_dir(1)).version
    assert config.backend == "python" and config.max_batch_size == 4096


def test_promote_rollback_and_shadow_rewrite_the_config(tmp_path: Path) -> None:
    repo = _repository(tmp_path, 3)
    assert repo.versions() == [1, 2, 3]
    assert (repo.version_dir(3) / "model.py").exists()  # a new version is loadable by Triton
    assert repo.next_version() == 4
    assert repo.promote(3) == ServedVersions(3, (3,), (1,))
    assert repo.serving_dir() == repo.version_dir(3)
    assert repo.set_shadows([2]) == ServedVersions(3, (2, 3), (1,))
    # The file keeps its comments and reads back the same.
    text = (repo.folder / "config.pbtxt").read_text(encoding="utf-8")
    assert text.startswith("# The learned matcher")
    assert repo.served() == ServedVersions(3, (2, 3), (1,))
    assert repo.rollback() == ServedVersions(1, (1, 2), ())
    with pytest.raises(ValueError, match="nothing to roll back"):
        repo.rollback()
    with pytest.raises(ValueError, match="hold no trained model"):
        repo.promote(7)


def _examples(pairs: list[tuple[str, str]]) -> list[object]:
    from training.matcher import SignalExample

    return [SignalExample(ds, "valid", rel, {}) for ds, rel in pairs]


def test_gate_promotes_only_a_better_model_that_loses_nowhere() -> None:
    examples = _examples([("a", "same")] * 4 + [("a", "none")] * 4 + [("b", "version_of")] * 2 + [("b", "none")] * 2)
    truth_probs = np.array(
        [[0.9, 0.0, 0.0, 0.1]] * 4 + [[0.1, 0.0, 0.0, 0.9]] * 4 + [[0.1, 0.8, 0.0, 0.1]] * 2 + [[0, 0, 0, 1.0]] * 2
    )
    policy = DecisionPolicy(Thresholds(0.5, 0.5))
    perfect = relation_scores(examples, truth_probs, policy)  # type: ignore[arg-type]
    assert overall(perfect) == 1.0
    assert set(perfect["a"]) == {"same"} and set(perfect["b"]) == {"version_of"}
    worse_probs = truth_probs.copy()
    worse_probs[8] = [0.1, 0.1, 0.0, 0.8]  # one version_of missed in set b
    worse = relation_scores(examples, worse_probs, policy)  # type: ignore[arg-type]
    gate = GateSettings(margin=0.002, tolerance=0.01)
    refused = judge(worse, perfect, gate)
    assert not refused.promote and "does not beat" in refused.reasons[0]
    assert any("b/version_of loses" in r for r in refused.reasons)
    accepted = judge(perfect, worse, gate)
    assert accepted.promote and not accepted.reasons
    assert "PROMOTE" in accepted.lines()[-1]
    # Better overall, but one cell worse than the tolerance: refused all the same.
    cell = {"precision": 1.0, "recall": 1.0, "support": 4.0}
    serving = {"a": {"same": {**cell, "f1": 0.90}}, "b": {"version_of": {**cell, "f1": 0.50}}}
    candidate = {"a": {"same": {**cell, "f1": 0.85}}, "b": {"version_of": {**cell, "f1": 0.90}}}
    mixed = judge(candidate, serving, gate)
    assert overall(candidate) > overall(serving) and not mixed.promote
    assert mixed.reasons == ["a/same loses 0.0500 F1 (tolerance 0.01)"]
    assert judge(candidate, serving, GateSettings(margin=0.002, tolerance=0.06)).promote


def _item(cid: str, title: str, artist: str) -> ContentItem:
    return ContentItem(
        event_id=f"e-{cid}", content_id=cid, source="s", kind="recording", title=title, artists=(artist,)
    )


def test_feedback_becomes_labels_latest_verdict_wins(tmp_path: Path) -> None:
    encoder = trigram_encoder(tmp_path)
    items = {"a": _item("a", "Silver and Gold", "Little Big Town"), "b": _item("b", "Silver And Gold", "LBT")}
    evidence = {("c", "d"): dict.fromkeys(MODEL_FEATURES, 0.5), ("e", "f"): {"text_cosine": 0.3}}
    verdicts = [
        Feedback("f1", "a", "b", "different", "ana", created_at_ms=1),
        Feedback("f2", "b", "a", "same", "ana", created_at_ms=2),  # overrides f1
        Feedback("f3", "c", "d", "version_of", "bo", created_at_ms=3),
        Feedback("f4", "e", "f", "same", "bo", created_at_ms=4),  # evidence lacks features: missing
    ]
    labels = feedback_labels(verdicts, items, evidence, encoder)
    by_key = {e.key: e for e in labels.examples}
    assert by_key["a|b"].relation == "same" and by_key["c|d"].relation == "version_of"
    assert all(e.dataset == FEEDBACK_SET for e in labels.examples)
    # Compared afresh on text: the media features a verdict pair lacks read 0 (MEDIA_FEATURE_NAMES).
    assert set(by_key["a|b"].signals) >= set(MODEL_FEATURES) - set(MEDIA_FEATURE_NAMES)
    assert labels.stats["from_items"] == 1 and labels.stats["from_evidence"] == 1
    assert labels.stats["missing_items"] == 1 and labels.stats["pairs"] == 3
    assert by_key["a|b"].portion == feedback_portion("b", "a")
    again = feedback_labels(list(reversed(verdicts)), items, evidence, encoder)
    assert again.stats["sha256"] == labels.stats["sha256"]


def test_shadow_settings_never_share_output_or_state() -> None:
    base = Settings.from_env({})
    assert as_shadow(base) is base
    shadow = as_shadow(Settings.from_env({"RESOLVER_WORKER_SHADOW_VERSION": "2"}))
    assert shadow.kafka.decisions_topic == "resolution-decisions-shadow"
    assert shadow.kafka.content_topic == base.kafka.content_topic
    assert shadow.kafka.feedback_topic == base.kafka.feedback_topic
    assert shadow.worker.app_id != base.worker.app_id
    assert shadow.worker.milvus_collection != base.worker.milvus_collection
    assert shadow.worker.web_port != base.worker.web_port
    assert shadow.kafka.dlq_topic != base.kafka.dlq_topic


def test_drift_psi_and_ks_against_an_independent_formula() -> None:
    from resolution.drift import BINS, DriftMonitor, compare, histogram, ks, psi, reference_from

    rng = np.random.default_rng(0)
    base = [{"top_score": float(x), "top_cosine": float(y)} for x, y in rng.beta([8, 5], [2, 3], size=(4000, 2))]
    reference = reference_from(base)
    assert reference["bins"] == list(BINS) and abs(sum(reference["top_score"]) - 1.0) < 1e-9
    same = [{"top_score": float(x), "top_cosine": float(y)} for x, y in rng.beta([8, 5], [2, 3], size=(1000, 2))]
    shifted = [{"top_score": float(x), "top_cosine": float(y)} for x, y in rng.beta([2, 2], [6, 6], size=(1000, 2))]
    calm, alarm = compare(same, reference, 0.25), compare(shifted, reference, 0.25)
    assert max(calm.psi.values()) < 0.1 and not calm.alarms
    assert min(alarm.psi.values()) > 1.0 and alarm.alarms == ["top_score", "top_cosine"]
    # PSI by its textbook definition, computed here independently with plain Python.
    p = [c + 1e-4 for c in histogram(o["top_score"] for o in shifted)]
    q = [c + 1e-4 for c in reference["top_score"]]
    p, q = [v / sum(p) for v in p], [v / sum(q) for v in q]
    import math

    expected = sum((a - b) * math.log(a / b) for a, b in zip(p, q, strict=True))
    assert abs(psi(histogram(o["top_score"] for o in shifted), reference["top_score"]) - expected) < 1e-9
    # KS on the binned distributions agrees with scipy's two-sample statistic to within a bin.
    scipy_stats = pytest.importorskip("scipy.stats")
    exact = scipy_stats.ks_2samp([o["top_cosine"] for o in shifted], [o["top_cosine"] for o in base]).statistic
    binned = ks(histogram(o["top_cosine"] for o in shifted), reference["top_cosine"])
    assert binned <= exact + 1e-9 and exact - binned < 0.15

    monitor = DriftMonitor(reference, window_s=10.0, min_events=100, threshold=0.25)
    assert monitor.observe(shifted[:50], now=0.0) is None  # too few, too soon
    assert monitor.observe(shifted[50:99], now=11.0) is None  # time passed, still too few
    closed = monitor.observe(shifted[99:300], now=12.0)
    assert closed is not None and closed.events == 300 and closed.alarms
    assert DriftMonitor(None).observe(shifted, now=100.0) is None  # no reference: nothing judged


def _record(event: str, action: str, entity: str, score: float, cosine: float, seq: int, **extra: object) -> dict:
    return {
        "decision_id": f"d-{event}-{action}",
        "event_id": event,
        "content_id": event,
        "action": action,
        "entity_id": entity,
        "work_id": entity,
        "related_entity_id": extra.get("related"),
        "relation": extra.get("relation"),
        "confidence": score,
        "candidates": [
            {
                "content_id": "x",
                "entity_id": entity,
                "score": score,
                "relation": "same",
                "signals": {"text_cosine": cosine},
            }
        ]
        if score
        else [],
        "reason": "",
        "previous_entity_ids": [],
        "members": [],
        "model_version": str(extra.get("model", "m+one")),
        "trace_id": "t",
        "event_produced_at_ms": 0,
        "decided_at_ms": seq,
        "trigger": "content-event",
        "new_entity_ids": [],
        "verdict": None,
        "sequence": seq,
    }


def test_compare_streams_disagreements_and_quality(tmp_path: Path) -> None:
    from evaluation.shadow_compare import compare_streams, write_report
    from resolution.drift import reference_from

    primary = [
        _record("a", "NEW", "e-a", 0.0, 0.0, 1),
        _record("b", "MERGE", "e-a", 0.9, 0.95, 2),  # right: a and b are one recording
        _record("c", "MERGE", "e-a", 0.6, 0.7, 3),  # wrong
    ]
    shadow = [
        _record("a", "NEW", "e-a", 0.0, 0.0, 1, model="m+two"),
        _record("b", "MERGE", "e-a", 0.92, 0.95, 2, model="m+two"),
        _record("c", "NEW", "e-c", 0.3, 0.7, 3, model="m+two"),
        _record("d", "NEW", "e-d", 0.0, 0.0, 4, model="m+two"),
    ]
    truth = {"a": "r1", "b": "r1", "c": "r2", "d": "r3"}
    reference = reference_from([{"top_score": 0.9, "top_cosine": 0.9}] * 10)
    comparison = compare_streams(
        primary, shadow, truth=truth, feedback=[("a", "c", False)], references={"m+two": reference}
    )
    assert comparison.joined == 3 and comparison.only_shadow == 1
    assert [d["content_id"] for d in comparison.disagreements] == ["c"]
    assert abs(comparison.disagreement_rate - 1 / 3) < 1e-9
    change = comparison.disagreements[0]
    assert change["primary"]["action"] == "MERGE" and change["shadow"]["action"] == "NEW"
    assert change["primary"]["evidence"][0]["score"] == 0.6
    assert comparison.primary.prf is not None and comparison.shadow.prf is not None
    assert comparison.primary.prf.precision < 1.0 and comparison.shadow.prf.precision == 1.0
    assert comparison.primary.feedback_right == 0.0 and comparison.shadow.feedback_right == 1.0
    assert comparison.primary.drift is None and comparison.shadow.drift is not None
    assert comparison.shadow.drift.alarms  # mostly zeros against a reference all at 0.9
    write_report(tmp_path / "compare.html", comparison)
    page = (tmp_path / "compare.html").read_text(encoding="utf-8")
    assert page.count("data:image/png;base64,") == 3 and "would change (1" in page


def test_drift_gauges_on_metrics() -> None:
    from resolution.drift import DriftResult
    from streams.metrics import ResolverMetrics

    metrics = ResolverMetrics()
    metrics.observe_drift(DriftResult(300, {"top_score": 0.4, "top_cosine": 0.1}, {"top_score": 0.3}, 0.25))
    text = metrics.exposition().decode()
    assert 'resolver_drift_psi{signal="top_score"} 0.4' in text
    assert 'resolver_drift_alarm{signal="top_score"} 1.0' in text
    assert 'resolver_drift_alarm{signal="top_cosine"} 0.0' in text
    assert "resolver_drift_psi_threshold 0.25" in text


def test_a_cell_loses_only_when_the_pairs_decided_otherwise_say_so_beyond_chance() -> None:
    from training.promotion import decided_scores, discordant, sign_test

    assert sign_test(0, 0) == 1.0
    assert sign_test(0, 1) == 0.5 and sign_test(0, 4) == 1 / 16 and sign_test(0, 5) == 1 / 32
    assert sign_test(5, 0) == 1.0
    # A small set: 5 positives; the candidate misses one more than the serving version.
    examples = _examples([("small", "same")] * 5 + [("small", "none")] * 5)
    serving = ["same"] * 5 + ["none"] * 5
    one_pair = ["none"] + ["same"] * 4 + ["none"] * 5
    gate = GateSettings(margin=-1.0, tolerance=0.01, significance=0.05)
    differences = discordant(examples, one_pair, serving)  # type: ignore[arg-type]
    assert differences == {("small", "same"): (0, 1)}
    old, new = decided_scores(examples, serving), decided_scores(examples, one_pair)  # type: ignore[arg-type]
    assert new["small"]["same"]["f1"] < old["small"]["same"]["f1"] - 0.1
    # Beyond the tolerance, but one pair is chance (p 0.5): no loss with the pairs in hand ...
    verdict = judge(new, old, gate, differences=differences)
    assert verdict.promote and verdict.rows[0]["lost"] == 1 and verdict.rows[0]["p"] == 0.5
    # ... a loss with the tolerance alone, as before.
    assert not judge(new, old, gate).promote
    # Five pairs lost, none won (p 1/32): the cell loses.
    examples = _examples([("big", "same")] * 20 + [("big", "none")] * 20)
    serving = ["same"] * 20 + ["none"] * 20
    five = ["none"] * 5 + ["same"] * 15 + ["none"] * 20
    differences = discordant(examples, five, serving)  # type: ignore[arg-type]
    refused = judge(decided_scores(examples, five), decided_scores(examples, serving), gate, differences=differences)  # type: ignore[arg-type]
    assert not refused.promote
    assert refused.reasons == ["big/same loses 0.1429 F1 (tolerance 0.01; 5 pairs lost, 0 won, sign test p=0.0312)"]


def test_each_version_is_judged_as_it_would_serve_with_or_without_the_fusion_rule() -> None:
    from training.matcher import MODEL_FEATURES, SignalExample
    from training.promotion import as_served

    other_audio = {"audio_compared": 1.0, "audio_fingerprint": 0.05, "audio_chroma": 0.1, "image_compared": 0.0}
    examples = [SignalExample("m", "valid", "none", other_audio), SignalExample("m", "valid", "none", {})]
    says_same = np.array([[0.9, 0.04, 0.03, 0.03]] * 2)
    text_only = [n for n in MODEL_FEATURES if not n.startswith(("audio_", "image_"))]
    ruled = as_served(examples, says_same, text_only, "auto")
    assert ruled[0, 0] < 0.05 and ruled[0, 3] > 0.9  # other audio: the rule says none
    assert ruled[1].tolist() == says_same[1].tolist()  # no media: nothing changes
    assert as_served(examples, says_same, MODEL_FEATURES, "auto").tolist() == says_same.tolist()
    assert as_served(examples, says_same, MODEL_FEATURES, "on")[0, 0] < 0.05
    assert as_served(examples, says_same, text_only, "off").tolist() == says_same.tolist()
