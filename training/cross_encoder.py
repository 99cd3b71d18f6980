"""Training the cross-encoder: the pair sets' labelled recording pairs in, a model version out.

Seeded like the matcher (``training.matcher``): one seed drives the head's initialisation, the
dropout and the batch order; torch runs on ``threads`` threads (two on the shared machine). The
portions are those of ``evaluation.splits``: the network is fitted on "fit", the temperature and
the decision threshold are chosen on "tune"; "valid" is reported (raw and leak-free) and "test"
is never looked at.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from evaluation.datasets import Dataset, load_dataset
from evaluation.leakage import leak_free
from evaluation.pair_examples import PairExample, positive_relation
from evaluation.splits import FIT, TUNE, VALID, pair_portion
from inference.cross_encoder import (
    DEFAULT_MAX_SEQ_LENGTH,
    DEFAULT_TRAINED_LAYERS,
    CrossEncoderModel,
    CrossEncoderNet,
    load_tokenizer,
    pair_texts,
)
from resolution.model import Relation
from resolution.normalise import normalise
from training.matcher import fit_temperature

log = logging.getLogger(__name__)
_GRID = np.round(np.arange(0.05, 0.96, 0.01), 2)
_NEAR_BEST_F1 = 0.002


@dataclass(frozen=True)
class CrossEncoderConfig:
    seed: int = 13
    epochs: int = 8
    batch_size: int = 16
    learning_rate: float = 5e-5  # the fine-tuned transformer layers
    head_learning_rate: float = 1e-3  # the new head starts from nothing
    weight_decay: float = 0.01
    warmup_fraction: float = 0.1
    trained_layers: int = DEFAULT_TRAINED_LAYERS
    max_seq_length: int = DEFAULT_MAX_SEQ_LENGTH
    # Ditto's augmentation: each fit pair is also seen with its sides swapped (the relation is
    # symmetric; the two stores' formats are not), which doubles 257 pairs per set cheaply.
    swap_sides: bool = True
    threads: int = 2


def recording_pairs(ds: Dataset) -> list[PairExample]:
    """A pair set's labelled pairs of two recordings (videos are the matcher's business); the
    cosine is not a cross-encoder input and is left at 0."""
    if ds.pairs is None:
        raise ValueError(f"{ds.name}: the cross-encoder trains on pair sets (pairs.csv)")
    norms = {item.content_id: normalise(item) for item in ds.items}
    out = []
    for p in ds.pairs:
        a, b = norms[p.left_id], norms[p.right_id]
        if positive_relation(a, b) != Relation.SAME.value:
            continue
        relation = Relation.SAME.value if p.label else Relation.NONE.value
        out.append(PairExample(ds.name, pair_portion(p.split, p.left_id, p.right_id), a, b, 0.0, relation))
    return out


def _labels(examples: list[PairExample]) -> np.ndarray:
    return np.array([e.relation == Relation.SAME.value for e in examples], dtype=np.float32)


def _f1(labels: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    tp = float((labels.astype(bool) & predicted).sum())
    fp = float((~labels.astype(bool) & predicted).sum())
    fn = float((labels.astype(bool) & ~predicted).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    return {"precision": precision, "recall": recall, "f1": 2 * tp / (2 * tp + fp + fn) if tp else 0.0}


def choose_threshold(labels: np.ndarray, probabilities: np.ndarray) -> tuple[float, float]:
    """The tune F1's near-best range, its middle (as ``training.matcher.choose_thresholds``)."""
    scores = np.array([_f1(labels, probabilities >= t)["f1"] for t in _GRID])
    near = _GRID[scores >= scores.max() - _NEAR_BEST_F1]
    return float(np.round(np.median(near), 2)), float(scores.max())


def _raw_logits(model: CrossEncoderModel, lefts: list[str], rights: list[str]) -> torch.Tensor:
    net = model.net
    net.eval()
    out = torch.zeros(len(lefts))
    with torch.inference_mode():
        for start in range(0, len(lefts), model.batch_size):
            batch = model.tokenize(lefts[start : start + model.batch_size], rights[start : start + model.batch_size])
            out[start : start + len(batch["input_ids"])] = net.logits(batch) * net.temperature
    return out


def train_cross_encoder(
    datasets: list[Dataset], config: CrossEncoderConfig, progress: bool = True
) -> tuple[CrossEncoderModel, list[PairExample]]:
    """The trained model and every labelled pair it was given (for the caller's reports)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        return _train(datasets, config, progress)
    finally:
        torch.set_num_threads(threads)


def _train(
    datasets: list[Dataset], config: CrossEncoderConfig, progress: bool
) -> tuple[CrossEncoderModel, list[PairExample]]:
    torch.manual_seed(config.seed)
    examples = [e for ds in datasets for e in recording_pairs(ds)]
    fit = [e for e in examples if e.portion == FIT]
    tune = [e for e in examples if e.portion == TUNE]
    if not fit or not tune:
        raise ValueError("training needs pairs in both the fit and the tune portions")
    lefts, rights = pair_texts([e.pair for e in fit])
    labels = _labels(fit).tolist()
    if config.swap_sides:
        lefts, rights, labels = lefts + rights, rights + lefts, labels + labels
    model = CrossEncoderModel(CrossEncoderNet(config.trained_layers), load_tokenizer(), config.max_seq_length)
    net = model.net
    encoder_params = [p for p in net.encoder.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(
        [
            {"params": encoder_params, "lr": config.learning_rate},
            {"params": list(net.head.parameters()), "lr": config.head_learning_rate},
        ],
        weight_decay=config.weight_decay,
    )
    steps = config.epochs * math.ceil(len(lefts) / config.batch_size)
    warmup = max(1, int(steps * config.warmup_fraction))

    def schedule(step: int) -> float:  # linear warm-up, then linear decay to zero
        return (step + 1) / warmup if step < warmup else max(0.0, (steps - step) / max(1, steps - warmup))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimiser, schedule)
    loss_fn = nn.BCEWithLogitsLoss()
    order_rng = random.Random(config.seed)
    target = torch.tensor(labels)
    losses: list[float] = []
    started = time.time()
    for epoch in tqdm(range(config.epochs), desc="cross-encoder", unit="epoch", disable=not progress):
        net.train()
        order = list(range(len(lefts)))
        order_rng.shuffle(order)
        epoch_loss = 0.0
        for start in range(0, len(order), config.batch_size):
            idx = order[start : start + config.batch_size]
            batch = model.tokenize([lefts[i] for i in idx], [rights[i] for i in idx])
            loss = loss_fn(net.logits(batch), target[idx])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            scheduler.step()
            epoch_loss += float(loss.detach()) * len(idx)
        losses.append(epoch_loss / len(order))
        log.info("epoch %d: loss %.4f", epoch + 1, losses[-1])
    train_seconds = time.time() - started
    tune_lefts, tune_rights = pair_texts([e.pair for e in tune])
    tune_labels = _labels(tune)
    temperature = fit_temperature(
        _raw_logits(model, tune_lefts, tune_rights), torch.from_numpy(tune_labels), nn.BCEWithLogitsLoss()
    )
    with torch.no_grad():
        net.temperature.fill_(temperature)
    net.eval()
    tune_probs = model.predict_texts(tune_lefts, tune_rights)
    threshold, tune_f1 = choose_threshold(tune_labels, tune_probs)
    model.metadata = {
        "config": asdict(config),
        "datasets": sorted({e.dataset for e in examples}),
        "fit_pairs": dict(sorted(Counter(f"{e.dataset}/{e.relation}" for e in fit).items())),
        "tune_pairs": dict(sorted(Counter(f"{e.dataset}/{e.relation}" for e in tune).items())),
        "epoch_loss": [round(x, 5) for x in losses],
        "temperature": temperature,
        # The p(same) at which the cross-encoder says "same" (tune F1, middle of the near-best
        # range); the resolver maps it onto the policy's merge threshold.
        "decision_threshold": threshold,
        "tune_f1": tune_f1,
        "train_seconds": round(train_seconds, 1),
        "split": "evaluation.splits: fit trains, tune picks temperature and decision threshold",
    }
    return model, examples


def valid_report(model: CrossEncoderModel, examples: list[PairExample]) -> dict[str, Any]:
    """The cross-encoder alone on each set's valid pairs, at its decision threshold: raw and
    leak-free (no record shared with a training pair, ``evaluation.leakage``)."""
    threshold = float(model.metadata.get("decision_threshold", 0.5))
    out: dict[str, Any] = {}
    for name in sorted({e.dataset for e in examples}):
        every = [e for e in examples if e.dataset == name]
        valid = [e for e in every if e.portion == VALID]
        if not valid:
            continue
        free = leak_free(valid, every)
        cells = {}
        for label, chosen in (("raw", valid), ("leak_free", free)):
            probs = model.predict([e.pair for e in chosen])
            cells[label] = {"pairs": len(chosen), **_f1(_labels(chosen), probs >= threshold)}
        out[name] = cells
    return out


def train_command(
    dataset_dirs: list[Path], out: Path, config: CrossEncoderConfig, progress: bool = True
) -> dict[str, Any]:
    """What ``resolver train-cross-encoder`` runs: trained, saved, loaded back from the folder
    (so the figures are those of the stored float16 artefact), reported on valid."""
    from evaluation.golden_sets import file_hashes, fingerprint_of
    from training.matcher import code_version

    datasets = [load_dataset(Path(d)) for d in dataset_dirs]
    model, examples = train_cross_encoder(datasets, config, progress)
    model.metadata["command"] = "resolver train-cross-encoder " + " ".join(
        f"--dataset {Path(d).name}" for d in dataset_dirs
    )
    model.metadata["provenance"] = {
        "data": {Path(d).name: {"sha256": fingerprint_of(file_hashes(Path(d)))} for d in dataset_dirs},
        "code": code_version(Path(__file__).resolve().parent.parent),
        "trained_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    model.save(out)
    stored = CrossEncoderModel.load(out)
    report = valid_report(stored, examples)
    stored.metadata["valid"] = report
    # The figures go into the version's metadata; the weights (and so the version) are unchanged.
    stored.save(out)
    return {"version": stored.version, "folder": str(out), "valid": report, **stored.metadata}
