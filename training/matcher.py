"""Training the matcher: labelled pairs in, a model version (weights, thresholds, metadata) out.

Reproducible: one seed drives the generated sample catalogue, the pair sampling, the weight
initialisation and the batch order, and torch runs single-threaded while training so that float
sums do not depend on thread scheduling. The portions are those of ``evaluation.splits``: the
network is fitted on "fit", the temperature and the policy thresholds are chosen on "tune";
"valid" and "test" are never looked at here.
"""

from __future__ import annotations

import hashlib
import logging
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from evaluation.datasets import Dataset
from evaluation.embedding_cache import CachedTextEncoder
from evaluation.pair_examples import PairExample, dataset_examples
from evaluation.sample_catalogue import generate_catalogue
from evaluation.splits import FIT, TUNE, VALID, cluster_portion
from inference.matcher_model import FusedMatcherNet, LocalPairScorer, MatcherModel, MatcherNet, pair_features
from resolution.features import FEATURE_NAMES, MEDIA_FEATURE_NAMES, feature_value, pair_signals
from resolution.feedback import Feedback
from resolution.matcher import RELATIONS, PairScorer
from resolution.media_evidence import MediaReader
from resolution.model import ContentItem
from resolution.normalise import normalise
from resolution.policy import DecisionPolicy, Thresholds
from training.promotion import overall, relation_scores

log = logging.getLogger(__name__)
SAMPLE_NAME = "sample-catalogue-train"
_GRID = np.round(np.arange(0.05, 0.96, 0.01), 2)
_NEAR_BEST_F1 = 0.002
# "same_source" stays a signal in decisions but not a model input: in the golden sets each source
# is duplicate-free, so the model would learn "same source, never the same recording", which a
# real feed re-delivering a track contradicts.
# The media similarities come last (0 with ``*_compared`` 0 where a pair has no media): a text
# matcher reads ``TEXT_FEATURES``, and a media head over it all of them (training/media_fusion.py).
MODEL_FEATURES = (*(name for name in FEATURE_NAMES if name != "same_source"), *MEDIA_FEATURE_NAMES)
TEXT_FEATURES = tuple(name for name in MODEL_FEATURES if name not in MEDIA_FEATURE_NAMES)
# The provenance key of a media set trained on is this prefix and the set's folder name.
MEDIA_PROVENANCE = "media:"
_BALANCE_POWER = 0.5  # 0: every pair counts the same; 1: every dataset counts the same; 0.75 tried: worse


@dataclass(frozen=True)
class TrainConfig:
    seed: int = 13
    hidden: int = 64
    epochs: int = 30
    batch_size: int = 1024
    learning_rate: float = 3e-3
    weight_decay: float = 1e-4
    neighbours: int = 10
    sample_songs: int = 300  # generated catalogue, for video_of examples the real sets lack


FEEDBACK_SET = "curator-feedback"
# A curator's verdict as a training label; "different" says only "not the same recording", and
# the safest relation for it is none.
VERDICT_RELATION = {"same": "same", "different": "none", "version_of": "version_of", "video_of": "video_of"}


@dataclass(frozen=True)
class SignalExample:
    """A labelled pair given by its comparison signals (``resolution.features.pair_signals``):
    what a curator's verdict becomes, from the items or from a decision's recorded evidence."""

    dataset: str
    portion: str
    relation: str
    signals: dict[str, float]
    key: str = ""
    clustered: bool = False


LabelledExample = PairExample | SignalExample


@dataclass
class FeedbackLabels:
    """Curator verdicts turned into training examples, with what became of each."""

    examples: list[SignalExample]
    stats: dict[str, Any] = field(default_factory=dict)


def feedback_portion(left: str, right: str) -> str:
    """A verdict pair goes to fit / tune / valid / test like a cluster (60/10/15/15), by its ids,
    so that held-out verdicts can judge a model trained on the others."""
    a, b = sorted((left, right))
    return cluster_portion(f"feedback|{a}|{b}")


def feedback_labels(
    feedback: Sequence[Feedback],
    items: dict[str, ContentItem],
    evidence: dict[tuple[str, str], dict[str, float]],
    encoder: CachedTextEncoder,
    names: tuple[str, ...] = (),
) -> FeedbackLabels:
    """The latest verdict per pair wins. A pair whose two items are known is compared afresh (its
    signals from the current feature code); otherwise the signals a decision recorded for it are
    used when they hold every model feature; otherwise the verdict is counted as missing."""
    names = names or MODEL_FEATURES
    latest: dict[tuple[str, str], Feedback] = {}
    for fb in sorted(feedback, key=lambda f: f.created_at_ms):
        latest[tuple(sorted((fb.left, fb.right)))] = fb  # type: ignore[index]
    known = sorted({cid for pair in latest for cid in pair if cid in items})
    norms = {cid: normalise(items[cid]) for cid in known}
    vectors = dict(zip(known, encoder.vectors([norms[c].embed_text for c in known]), strict=True)) if known else {}
    examples: list[SignalExample] = []
    from_items = from_evidence = missing = 0
    for (a, b), fb in sorted(latest.items()):
        if a in norms and b in norms:
            signals = pair_signals(norms[a], norms[b], float(np.dot(vectors[a], vectors[b])))
            from_items += 1
        elif (a, b) in evidence and all(n in evidence[(a, b)] for n in names if n not in MEDIA_FEATURE_NAMES):
            signals = evidence[(a, b)]
            from_evidence += 1
        else:
            missing += 1
            continue
        examples.append(
            SignalExample(FEEDBACK_SET, feedback_portion(a, b), VERDICT_RELATION[fb.verdict], signals, f"{a}|{b}")
        )
    digest = hashlib.sha256()
    for (a, b), fb in sorted(latest.items()):
        digest.update(f"{fb.feedback_id}|{a}|{b}|{fb.verdict}|{fb.created_at_ms}\n".encode())
    stats = {
        "verdicts": len(feedback),
        "pairs": len(latest),
        "from_items": from_items,
        "from_evidence": from_evidence,
        "missing_items": missing,
        "by_verdict": dict(sorted(Counter(fb.verdict for fb in latest.values()).items())),
        "by_portion": dict(sorted(Counter(e.portion for e in examples).items())),
        "sha256": digest.hexdigest(),
    }
    return FeedbackLabels(examples, stats)


def code_version(repo: Path) -> dict[str, Any]:
    """The git commit the model was trained from, and whether the tree had changes."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = bool(
            subprocess.run(
                ["git", "status", "--porcelain", "--untracked-files=no"],
                cwd=repo,
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
        )
    except (OSError, subprocess.CalledProcessError):
        return {"commit": "unknown", "dirty": None}
    return {"commit": commit, "dirty": dirty}


def sample_dataset(seed: int, songs: int) -> Dataset:
    """The generated catalogue, with its own seed (the demo and the tests use others)."""
    items, truth = generate_catalogue(seed=seed, songs=songs)
    return Dataset(name=SAMPLE_NAME, path=Path(SAMPLE_NAME), items=items, truth=truth)


def dataset_fingerprint(ds: Dataset) -> str:
    digest = hashlib.sha1()
    for item in ds.items:
        digest.update(repr(item.to_record()).encode())
    return digest.hexdigest()[:12]


def examples_matrix(examples: Sequence[LabelledExample], names: tuple[str, ...]) -> np.ndarray:
    matrix = np.zeros((len(examples), len(names)), dtype=np.float32)
    pair_rows = [n for n, e in enumerate(examples) if isinstance(e, PairExample)]
    if pair_rows:
        matrix[pair_rows] = pair_features([examples[n].pair for n in pair_rows], names)[1]  # type: ignore[union-attr]
    for n, e in enumerate(examples):
        if isinstance(e, SignalExample):
            matrix[n] = [feature_value(e.signals, name) for name in names]
    return matrix


def _dataset_weights(examples: Sequence[LabelledExample]) -> np.ndarray:
    """Square-root balancing: a small set is not drowned by a large one, nor over-fitted."""
    counts = Counter(e.dataset for e in examples)
    total = len(examples)
    raw = np.array([(total / counts[e.dataset]) ** _BALANCE_POWER for e in examples], dtype=np.float32)
    return raw / raw.mean()


class FitSchedule(Protocol):
    """What ``fit_weighted`` reads of a training config (``TrainConfig``, ``FusionConfig``)."""

    @property
    def seed(self) -> int: ...
    @property
    def epochs(self) -> int: ...
    @property
    def batch_size(self) -> int: ...
    @property
    def learning_rate(self) -> float: ...
    @property
    def weight_decay(self) -> float: ...


def fit_weighted(
    net: MatcherNet | FusedMatcherNet,
    parameters: list[nn.Parameter],
    x: torch.Tensor,
    y: torch.Tensor,
    weights: torch.Tensor,
    schedule: FitSchedule,
    desc: str,
    progress: bool,
) -> None:
    """Standardises ``net``'s inputs on ``x`` and fits ``parameters`` (all of a text matcher, a
    media head's alone) by weighted cross-entropy: AdamW, cosine schedule, seeded batches."""
    with torch.no_grad():
        net.mean.copy_(x.mean(0))
        net.scale.copy_(x.std(0).clamp(min=1e-3))
    optimiser = torch.optim.AdamW(parameters, lr=schedule.learning_rate, weight_decay=schedule.weight_decay)
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=schedule.epochs)
    loss_fn = nn.CrossEntropyLoss(reduction="none")
    generator = torch.Generator().manual_seed(schedule.seed)
    net.train()
    for _epoch in tqdm(range(schedule.epochs), desc=desc, unit="epoch", disable=not progress):
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), schedule.batch_size):
            idx = order[start : start + schedule.batch_size]
            loss = (loss_fn(net.logits(x[idx]), y[idx]) * weights[idx]).mean()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        cosine.step()
    net.eval()


def _fit_temperature(net: MatcherNet, x: torch.Tensor, y: torch.Tensor) -> float:
    """Temperature scaling on the tune portion, over the net's uncalibrated logits."""
    with torch.no_grad():
        net.temperature.fill_(1.0)
        logits = net.logits(x)
    return fit_temperature(logits, y, nn.CrossEntropyLoss())


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor, loss_fn: nn.Module) -> float:
    """Temperature scaling (Guo et al. 2017): the one scalar T minimising ``loss_fn(logits / T,
    labels)``, kept within [0.25, 4]. The matcher (cross-entropy) and the cross-encoder (binary)
    are both calibrated by it."""
    log_t = torch.zeros((), requires_grad=True)
    optimiser = torch.optim.LBFGS([log_t], lr=0.1, max_iter=100)

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        loss = loss_fn(logits / log_t.exp(), labels)
        loss.backward()
        return loss

    optimiser.step(closure)
    return float(log_t.detach().exp().clamp(0.25, 4.0))


def _f1(tp: int, fp: int, fn: int) -> float:
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def choose_thresholds(
    examples: Sequence[LabelledExample], probabilities: np.ndarray
) -> tuple[Thresholds, dict[str, float]]:
    """The merge threshold, then the link threshold, each maximising F1 over the tune pairs of all
    sets together, weighted as in training (square-root balanced), so that one policy serves
    every set and a small set counts without a few of its pairs deciding alone. (Training then
    replaces the link threshold by ``stream_link_threshold`` where a cluster set has works.)"""
    weights = _dataset_weights(examples).astype(np.float64)
    relation = np.array([e.relation for e in examples])
    p_same = probabilities[:, 0]
    p_link = probabilities[:, 1:3].max(axis=1)

    def best(positive: np.ndarray, predicted_at: Callable[[float], np.ndarray]) -> tuple[float, float]:
        f1s = []
        for t in _GRID:
            predicted = predicted_at(float(t))
            tp = float(weights[positive & predicted].sum())
            fp = float(weights[~positive & predicted].sum())
            fn = float(weights[positive & ~predicted].sum())
            f1s.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
        # The F1 curve is flat near its top: take the middle of the near-best range, not an edge
        # that a few tune pairs happen to favour.
        scores = np.array(f1s)
        near = _GRID[scores >= scores.max() - _NEAR_BEST_F1]
        return float(np.round(np.median(near), 2)), float(scores.max())

    merge, merge_f1 = best(relation == "same", lambda t: p_same >= t)
    is_link = (relation == "version_of") | (relation == "video_of")
    link, link_f1 = best(is_link, lambda t: (p_same < merge) & (p_link >= t))
    return Thresholds(merge=merge, link=link), {"tune_merge_f1": merge_f1, "tune_link_f1": link_f1}


_STREAM_LINK_GRID = np.round(np.arange(0.20, 0.71, 0.05), 2)


def _pair_link_f1(examples: Sequence[LabelledExample], probabilities: np.ndarray, merge: float, link: float) -> float:
    relation = np.array([e.relation for e in examples])
    positive = (relation == "version_of") | (relation == "video_of")
    predicted = (probabilities[:, 0] < merge) & (probabilities[:, 1:3].max(axis=1) >= link)
    return _f1(
        int((positive & predicted).sum()), int((~positive & predicted).sum()), int((positive & ~predicted).sum())
    )


def stream_link_threshold(
    datasets: list[Dataset],
    tune: Sequence[LabelledExample],
    tune_probs: np.ndarray,
    merge: float,
    scorer: PairScorer,
    encoder: CachedTextEncoder,
    seed: int,
) -> tuple[float, dict[str, dict[str, float]]] | None:
    """The link threshold as the resolver uses it: on a cluster set a record links to the best of
    its earlier candidates, so the first record of a work, with only unrelated candidates, links
    wrongly as soon as the best of them clears the threshold, and one wrong link joins two whole
    works. Pair-level F1 sees none of that. So the tune records of every cluster set with works
    are streamed through the resolver (one seeded order, worker defaults) at each threshold of a
    coarse grid and scored by work-level pairwise F1; pair sets with link labels are scored per
    pair on their tune pairs. The threshold maximises the mean F1 over these sets (the middle of
    the near-best range, as for the merge threshold). None when no cluster set has works."""
    import asyncio
    import random

    from evaluation.metrics import pairwise_prf
    from evaluation.pair_examples import cluster_key
    from evaluation.splits import cluster_portion
    from evaluation.streaming import ResolverConfig, stream_through_resolver

    curves: dict[str, list[float]] = {}
    for ds in datasets:
        if ds.truth is None or ds.pairs is not None:
            continue
        truth = ds.truth
        items = [
            i for i in ds.items if i.content_id in truth and cluster_portion(cluster_key(truth[i.content_id])) == TUNE
        ]
        if not any(truth[i.content_id].work_id for i in items):
            continue
        random.Random(seed).shuffle(items)
        work_truth = {i.content_id: truth[i.content_id].work_id or truth[i.content_id].entity_id for i in items}
        curve = []
        for t in _STREAM_LINK_GRID:
            outcome = asyncio.run(
                stream_through_resolver(
                    items, encoder, scorer, Thresholds(merge=merge, link=float(t)), ResolverConfig(), progress=False
                )
            )
            curve.append(pairwise_prf(outcome.work_of, work_truth).f1)
        curves[ds.name] = curve
    if not curves:
        return None
    for name in sorted({e.dataset for e in tune if not e.clustered}):
        idx = [n for n, e in enumerate(tune) if e.dataset == name and not e.clustered]
        examples = [tune[n] for n in idx]
        if any(e.relation in ("version_of", "video_of") for e in examples):
            curves[name] = [_pair_link_f1(examples, tune_probs[idx], merge, float(t)) for t in _STREAM_LINK_GRID]
    mean = np.mean(np.array(list(curves.values())), axis=0)
    near = _STREAM_LINK_GRID[mean >= mean.max() - _NEAR_BEST_F1]
    link = float(np.round(np.median(near), 2))
    detail = {
        name: dict(zip(map(str, _STREAM_LINK_GRID), map(float, curve), strict=True)) for name, curve in curves.items()
    }
    return link, detail


def drift_reference(
    datasets: list[Dataset], scorer: PairScorer, thresholds: Thresholds, encoder: CachedTextEncoder, seed: int
) -> dict[str, Any] | None:
    """The drift reference (``resolution.drift``): the tune records of every cluster set streamed
    through the resolver once, in a seeded order, with the trained model and thresholds; the
    distributions of their decisions' best score and best similarity."""
    import asyncio
    import random

    from evaluation.pair_examples import cluster_key
    from evaluation.streaming import ResolverConfig, stream_through_resolver
    from resolution.drift import decision_signals, reference_from

    observations: list[dict[str, float]] = []
    for ds in datasets:
        if ds.truth is None or ds.pairs is not None:
            continue
        truth = ds.truth
        items = [
            i for i in ds.items if i.content_id in truth and cluster_portion(cluster_key(truth[i.content_id])) == TUNE
        ]
        random.Random(seed).shuffle(items)
        outcome = asyncio.run(
            stream_through_resolver(items, encoder, scorer, thresholds, ResolverConfig(), progress=False)
        )
        observations.extend(decision_signals(d) for d in outcome.decisions.values())
    return reference_from(observations) if observations else None


def train_matcher(
    datasets: list[Dataset],
    encoder: CachedTextEncoder,
    config: TrainConfig,
    progress: bool = True,
    extra: Sequence[SignalExample] = (),
) -> MatcherModel:
    """``extra``: labelled pairs beyond the sets' own (curator feedback), split by their portion.
    A text matcher: media are learnt by a head over it (``training.media_fusion``)."""
    torch.manual_seed(config.seed)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _train(datasets, encoder, config, progress, extra)
    finally:
        torch.set_num_threads(threads)


def _train(
    datasets: list[Dataset],
    encoder: CachedTextEncoder,
    config: TrainConfig,
    progress: bool,
    extra: Sequence[SignalExample],
) -> MatcherModel:
    examples: list[LabelledExample] = []
    for ds in datasets:
        found = dataset_examples(ds, encoder, config.neighbours)
        log.info("%s: %d labelled pairs", ds.name, len(found))
        examples.extend(found)
    examples.extend(extra)
    fit = [e for e in examples if e.portion == FIT]
    tune = [e for e in examples if e.portion == TUNE]
    if not fit or not tune:
        raise ValueError("training needs pairs in both the fit and the tune portions")
    names = TEXT_FEATURES
    label_of = {r: i for i, r in enumerate(RELATIONS)}
    x_fit = torch.from_numpy(examples_matrix(fit, names))
    y_fit = torch.tensor([label_of[e.relation] for e in fit])
    w_fit = torch.from_numpy(_dataset_weights(fit))
    x_tune = torch.from_numpy(examples_matrix(tune, names))
    y_tune = torch.tensor([label_of[e.relation] for e in tune])

    net = MatcherNet(len(names), config.hidden)
    fit_weighted(net, list(net.parameters()), x_fit, y_fit, w_fit, config, "train", progress)
    temperature = _fit_temperature(net, x_tune, y_tune)
    with torch.no_grad():
        net.temperature.fill_(temperature)
        tune_probs = net(x_tune).numpy()
    thresholds, tune_scores = choose_thresholds(tune, tune_probs)
    streamed = stream_link_threshold(
        datasets,
        tune,
        tune_probs,
        thresholds.merge,
        LocalPairScorer(MatcherModel(net, names, thresholds, {})),
        encoder,
        config.seed,
    )
    link_curves: dict[str, dict[str, float]] = {}
    if streamed is not None:
        thresholds = Thresholds(merge=thresholds.merge, link=streamed[0])
        link_curves = streamed[1]
    policy = DecisionPolicy(thresholds)
    predicted = [policy.classify(dict(zip(RELATIONS, map(float, row), strict=True))) for row in tune_probs]
    tune_accuracy = float(np.mean([p == e.relation for p, e in zip(predicted, tune, strict=True)]))
    metadata = {
        "config": asdict(config),
        "datasets": {ds.name: {"records": len(ds.items), "fingerprint": dataset_fingerprint(ds)} for ds in datasets},
        "fit_pairs": dict(sorted(Counter(f"{e.dataset}/{e.relation}" for e in fit).items())),
        "tune_pairs": dict(sorted(Counter(f"{e.dataset}/{e.relation}" for e in tune).items())),
        "temperature": temperature,
        "tune_accuracy": tune_accuracy,
        **tune_scores,
        "tune_link_f1_by_threshold": link_curves,
        "text_encoder": encoder.model_version,
        "split": "evaluation.splits: fit trains, tune picks temperature and thresholds",
    }
    reference = drift_reference(
        datasets, LocalPairScorer(MatcherModel(net, names, thresholds, {})), thresholds, encoder, config.seed
    )
    if reference is not None:
        metadata["drift_reference"] = reference
    if extra:
        metadata["feedback_pairs"] = dict(sorted(Counter(f"{e.portion}/{e.relation}" for e in extra).items()))
    valid = [e for e in examples if e.portion == VALID]
    if valid:
        with torch.no_grad():
            valid_probs = net(torch.from_numpy(examples_matrix(valid, names))).numpy()
        scores = relation_scores(valid, valid_probs, policy)
        metadata["valid"] = {"overall_f1": overall(scores), "by_set": scores}
    return MatcherModel(net, names, thresholds, metadata)


def _media_head(
    media_sets: Sequence[Path],
    media_reader: MediaReader | None,
    base_dir: Path | None,
    encoder: CachedTextEncoder,
    progress: bool,
) -> tuple[MatcherModel, dict[str, Any]]:
    from training.media_fusion import FusionConfig, train_fusion_head
    from training.media_pairs import media_set_pairs

    if media_reader is None:
        raise ValueError("media sets need a media reader (the media step is off)")
    if base_dir is None or not (Path(base_dir) / "matcher.json").exists():
        raise ValueError(f"a media head is trained over a text matcher: no trained version in {base_dir}")
    media: list[SignalExample] = []
    provenance: dict[str, Any] = {}
    for folder in media_sets:
        found = media_set_pairs(Path(folder), encoder, media_reader)
        media.extend(found.examples)
        provenance[f"{MEDIA_PROVENANCE}{Path(folder).name}"] = found.provenance
    return train_fusion_head(MatcherModel.load(Path(base_dir)), media, FusionConfig(), progress), provenance


class FeedbackReplay(Protocol):
    """Curator verdicts replayed from their topic (``streams.feedback.replay_feedback``)."""

    feedback: list[Feedback]
    items: dict[str, ContentItem]
    evidence: dict[tuple[str, str], dict[str, float]]
    topics: dict[str, int]


def train_command(
    dataset_dirs: list[Path],
    out: Path,
    cache_dir: Path,
    config: TrainConfig,
    feedback: FeedbackReplay | None = None,
    code_root: Path | None = None,
    progress: bool = True,
    media_sets: Sequence[Path] = (),
    media_reader: MediaReader | None = None,
    base_dir: Path | None = None,
) -> MatcherModel:
    """What ``resolver train`` runs: the given sets plus the generated catalogue (and curator
    verdicts, when given), then saved with the provenance of the run. With ``media_sets``, a
    media head over the text matcher in ``base_dir`` instead (``training.media_fusion``), on
    every pair of the generated media sets, read by ``media_reader``; the given sets are recorded
    as the base's, for the promotion gate."""
    from evaluation.embedding_cache import minilm_cache
    from evaluation.golden_sets import file_hashes, fingerprint_of

    started = time.time()
    encoder = minilm_cache(cache_dir)
    labels = FeedbackLabels([], {})
    media_data: dict[str, Any] = {}
    if media_sets:
        model, media_data = _media_head(media_sets, media_reader, base_dir, encoder, progress)
        if feedback is not None:
            raise ValueError("curator feedback trains the text matcher: train it first, then the media head over it")
    else:
        from evaluation.datasets import load_dataset

        datasets = [load_dataset(Path(d)) for d in dataset_dirs]
        datasets.append(sample_dataset(config.seed, config.sample_songs))
        encoder.prefill([normalise(i).embed_text for ds in datasets for i in ds.items])
        if feedback is not None:
            labels = feedback_labels(feedback.feedback, feedback.items, feedback.evidence, encoder)
        model = train_matcher(datasets, encoder, config, progress, labels.examples)
    model.metadata["command"] = "resolver train " + " ".join(
        [
            *(f"--dataset {Path(d).name}" for d in dataset_dirs),
            *(f"--media-set {Path(d).name}" for d in media_sets),
            *([f"--base {base_dir.name}"] if media_sets and base_dir is not None else []),
        ]
    )
    data: dict[str, Any] = {}
    for d in dataset_dirs:
        hashes = file_hashes(Path(d))
        data[Path(d).name] = {"path": str(Path(d).resolve()), "sha256": fingerprint_of(hashes), "files": hashes}
    data[SAMPLE_NAME] = {"generated": f"evaluation.sample_catalogue seed={config.seed} songs={config.sample_songs}"}
    data.update(media_data)
    if feedback is not None:
        data[FEEDBACK_SET] = {"topics": dict(feedback.topics), **labels.stats}
        model.metadata["command"] += " --feedback"
    model.metadata["provenance"] = {
        "data": data,
        "parameters": asdict(config),
        "seed": config.seed,
        "code": code_version(code_root or Path(__file__).resolve().parent.parent),
        "metrics": {
            "tune_accuracy": model.metadata.get("tune_accuracy"),
            "tune_merge_f1": model.metadata.get("tune_merge_f1"),
            "tune_link_f1": model.metadata.get("tune_link_f1"),
            "valid_overall_f1": (model.metadata.get("valid") or {}).get("overall_f1"),
        },
        "trained_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "train_seconds": round(time.time() - started, 1),
    }
    model.save(out)
    return model
