"""The targets of issue 12 measured on the generated set (``resolver media evaluate``).

- same-recording retrieval: every duplicate queries all other items by fingerprint; recall@10 is
  the share of its same-recording items (studio take, other duplicates, video) in its top 10; and
  the same through the media index's retrieval path (``index_recall_at_10``);
- same-work ROC AUC: chroma similarity of pairs of distinct recordings of one work (versions,
  live takes) against pairs of recordings of different works;
- video to recording: each video's audio track against every non-video item; correct when the
  best match is its recording (studio take or a duplicate of it), never the live take;
- live vs studio: studio/live pairs (identical titles) must score below the same-recording
  threshold and studio/duplicate pairs above it; accuracy over both;
- images: transformed covers and video key frames retrieve their source cover, per hash kind.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import numpy as np

from media.chroma import chroma_embedding
from media.fingerprint import chromaprint
from media.generated_set import MediaItem, MediaSet
from media.image_hash import HASHES, image_hash_bits
from media.loading import MediaLoader
from resolution.media_evidence import SAME_RECORDING_SCORE as SAME_RECORDING_THRESHOLD
from resolution.media_evidence import FingerprintSpectra, MediaEvidence, hash_similarities, transposition_similarities
from resolution.media_index import InMemoryMediaIndex, MediaRow
from settings import WorkerSettings


@dataclass
class MediaFeatures:
    fingerprints: list[np.ndarray]
    chroma: np.ndarray
    hashes: dict[str, np.ndarray]
    seconds: dict[str, float] = field(default_factory=dict)


def extract(items: list[MediaItem], loader: MediaLoader | None = None) -> MediaFeatures:
    loader = loader or MediaLoader()
    spent = {"load_audio": 0.0, "fingerprint": 0.0, "chroma": 0.0, "load_image": 0.0, **{k: 0.0 for k in HASHES}}
    fps: list[np.ndarray] = []
    chromas: list[np.ndarray] = []
    hashes: dict[str, list[np.ndarray]] = {k: [] for k in HASHES}
    for item in items:
        t0 = time.perf_counter()
        clip = loader.audio(item.audio_ref)
        t1 = time.perf_counter()
        fps.append(chromaprint(clip.samples))
        t2 = time.perf_counter()
        chromas.append(chroma_embedding(clip.samples))
        t3 = time.perf_counter()
        image = loader.image(item.image_ref)
        t4 = time.perf_counter()
        spent["load_audio"] += t1 - t0
        spent["fingerprint"] += t2 - t1
        spent["chroma"] += t3 - t2
        spent["load_image"] += t4 - t3
        for kind in HASHES:
            t5 = time.perf_counter()
            hashes[kind].append(image_hash_bits(image, kind))
            spent[kind] += time.perf_counter() - t5
    return MediaFeatures(fps, np.stack(chromas), {k: np.stack(v) for k, v in hashes.items()}, spent)


def roc_auc(positives: list[float], negatives: list[float]) -> float:
    """Probability that a random positive outscores a random negative (ties count half)."""
    if not positives or not negatives:
        return float("nan")
    pos, neg = np.asarray(positives)[:, None], np.asarray(negatives)[None, :]
    return float((pos > neg).mean() + 0.5 * (pos == neg).mean())


def _index_recall(items: list[MediaItem], f: MediaFeatures, search_k: int = WorkerSettings.media_search_k) -> float:
    """The same recall through the media index's path (``InMemoryMediaIndex``: the retrieval
    vector's ``search_k`` nearest, rescored on their fingerprints), as the worker searches."""
    index = InMemoryMediaIndex(search_k)
    ids = [f"i{j}" for j in range(len(items))]
    evidence = [MediaEvidence(fingerprint=fp, chroma=c) for fp, c in zip(f.fingerprints, f.chroma, strict=True)]
    none = np.zeros(0, dtype=np.float32)
    asyncio.run(index.upsert([MediaRow(c, "", "", e, {}, none) for c, e in zip(ids, evidence, strict=True)]))
    queries = [j for j, i in enumerate(items) if i.role == "duplicate"]
    hits = asyncio.run(index.sounding_like([evidence[q] for q in queries], 10, [ids[q] for q in queries]))
    found = wanted = 0
    for q, top in zip(queries, hits, strict=True):
        relevant = {ids[j] for j, i in enumerate(items) if j != q and i.recording_id == items[q].recording_id}
        found += len(relevant & {h.row.content_id for h in top})
        wanted += len(relevant)
    return found / wanted if wanted else float("nan")


def evaluate(media_set: MediaSet, features: MediaFeatures | None = None) -> dict[str, object]:
    items = media_set.items
    f = features or extract(items)
    n = len(items)
    spectra = FingerprintSpectra(f.fingerprints)
    fp_sim = np.stack([spectra.similarities(fp) for fp in f.fingerprints])
    chroma_sim = np.stack([transposition_similarities(c, f.chroma) for c in f.chroma])
    rec = [i.recording_id for i in items]
    out: dict[str, object] = {
        "items": n,
        "roles": {r: sum(i.role == r for i in items) for r in {i.role for i in items}},
    }

    # Same-recording retrieval under the duplicate transformations.
    found = wanted = 0
    per_transform: dict[str, list[float]] = {}
    for q, item in enumerate(items):
        if item.role != "duplicate":
            continue
        order = [j for j in np.argsort(-fp_sim[q]) if j != q][:10]
        relevant = {j for j in range(n) if j != q and rec[j] == rec[q]}
        hit = len(relevant & set(order))
        found += hit
        wanted += len(relevant)
        per_transform.setdefault(item.transform.split("/")[0], []).append(hit / len(relevant))
    out["same_recording_recall_at_10"] = found / wanted if wanted else float("nan")
    out["recall_at_10_by_transform"] = {k: float(np.mean(v)) for k, v in sorted(per_transform.items())}
    out["index_recall_at_10"] = _index_recall(items, f)

    # Same work: distinct recordings of one work vs recordings of different works (one item per recording).
    firsts: dict[str, int] = {}
    for j, item in enumerate(items):
        if item.role in ("studio", "version", "live"):
            firsts.setdefault(item.recording_id, j)
    reps = sorted(firsts.values())
    pos: list[float] = []
    neg: list[float] = []
    for x, a in enumerate(reps):
        for b in reps[x + 1 :]:
            (pos if items[a].work_id == items[b].work_id else neg).append(float(chroma_sim[a, b]))
    out["same_work_roc_auc"] = roc_auc(pos, neg)
    out["same_work_pairs"] = {"positive": len(pos), "negative": len(neg)}
    # Versions must not look like the same recording to the fingerprint.
    vpos = [
        float(fp_sim[a, b]) for x, a in enumerate(reps) for b in reps[x + 1 :] if items[a].work_id == items[b].work_id
    ]
    out["versions_scored_same_recording"] = (
        float(np.mean([s >= SAME_RECORDING_THRESHOLD for s in vpos])) if vpos else 0.0
    )

    # Music video to recording.
    videos = [q for q, i in enumerate(items) if i.role == "video"]
    targets = [j for j, i in enumerate(items) if i.role != "video"]
    correct = correct_official = n_official = 0
    for q in videos:
        best = max(targets, key=lambda j: fp_sim[q, j])
        ok = rec[best] == rec[q]
        correct += ok
        if items[q].title == "Official Video":
            n_official += 1
            correct_official += ok
    out["video_to_recording_accuracy"] = correct / len(videos) if videos else float("nan")
    out["video_only_official_video_titles"] = {"videos": n_official, "correct": correct_official}

    # Live vs studio with identical titles.
    judged = right = 0
    by_rec = {items[j].recording_id: j for j in range(n) if items[j].role == "studio"}
    for j, item in enumerate(items):
        if item.role == "live":
            studio = by_rec[item.recording_id.removesuffix("-live")]
            judged += 1
            right += fp_sim[studio, j] < SAME_RECORDING_THRESHOLD
        elif item.role == "duplicate":
            judged += 1
            right += fp_sim[by_rec[item.recording_id], j] >= SAME_RECORDING_THRESHOLD
    out["live_vs_studio_accuracy"] = right / judged if judged else float("nan")
    out["same_recording_threshold"] = SAME_RECORDING_THRESHOLD

    # Images: every transformed picture retrieves its source cover (top 1 among covers), and AUC.
    covers = [j for j, i in enumerate(items) if i.role in ("studio", "version", "live")]
    queries = [q for q, i in enumerate(items) if i.role in ("duplicate", "video")]
    images: dict[str, dict[str, float]] = {}
    for kind, bits in f.hashes.items():
        hits = 0
        ipos: list[float] = []
        ineg: list[float] = []
        for q in queries:
            sims = hash_similarities(bits[q], bits[covers])
            hits += items[covers[int(np.argmax(sims))]].image_id == items[q].image_id
            for j, s in zip(covers, sims, strict=True):
                (ipos if items[j].image_id == items[q].image_id else ineg).append(float(s))
        images[kind] = {
            "top1": hits / len(queries),
            "roc_auc": roc_auc(ipos, ineg),
            "ms_per_image": 1000 * f.seconds.get(kind, 0.0) / n,
        }
    out["images"] = images
    out["ms_per_item"] = {k: round(1000 * v / n, 2) for k, v in f.seconds.items() if k not in HASHES}
    return out
