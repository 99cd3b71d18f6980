"""Media evidence across partitions and workers, through real workers on the shared stack.

Events are keyed by core title (``streams.producer.blocking_key``), so a music video titled only
"Official Video" lands in the partition of "official video", not of its recording. Two workers
share one consumer group over two partitions (one each, checked with probe events before the
test's own), and the recordings are titled so that they land in the other partition than the
videos: each video is resolved by the worker that never saw its recording. From the generated
tiny set (seed 12, real audio and pictures):

- a video with its audio (and frame), titled only "Official Video", is linked ``video_of`` its
  recording by sound;
- a video with only its frame (no audio reference), titled only "Official Video", is linked
  ``video_of`` its recording by picture (the frame is the recording's cover).

Both go through the shared media index (Milvus, ``RESOLVER_WORKER_MEDIA_INDEX=milvus``, the
default). With ``RESOLVER_WORKER_MEDIA_INDEX=off`` (each worker's own memory, as before) both
fail: the video's worker never heard nor saw the recording (docs/media.md gives the run).
"""

from __future__ import annotations

import os
import shutil
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy.worker import WorkerProcess, free_port, isolated_namespace
from media.generated_set import MediaItem
from resolution.model import ContentItem
from settings import Settings
from streams.handler import WORKER_HEADER
from streams.kafka import ensure_topics, read_topic
from streams.producer import blocking_key
from tests.integration.streaming import SCHEMAS, produce
from tests.workers import drop_namespace, worker_process

pytestmark = pytest.mark.integration

PARTITIONS = 2


def partition_of(item: ContentItem) -> int:
    """The partition librdkafka's default partitioner (consistent_random: CRC-32 of the key) picks;
    the test checks it against the partition each decision was written to."""
    return zlib.crc32(blocking_key(item)) % PARTITIONS


def decided(settings: Settings) -> dict[str, tuple[dict, int, str]]:
    """event id -> (the content-event decision, its partition, the worker that took it)."""
    out = {}
    for r in read_topic(settings.kafka, settings.kafka.decisions_topic):
        d = SCHEMAS.decision.decode(r.value)
        if d.get("trigger", "content-event") == "content-event":
            worker = next((v.decode() for k, v in r.headers if k == WORKER_HEADER), "")
            out[d["event_id"]] = (d, r.partition, worker)
    return out


def wait_decided(settings: Settings, event_ids: set[str], timeout_s: float) -> dict[str, tuple[dict, int, str]]:
    deadline = time.monotonic() + timeout_s
    while True:
        found = decided(settings)
        if event_ids <= found.keys() or time.monotonic() > deadline:
            return found
        time.sleep(1.0)


@pytest.fixture(scope="module")
def two_workers(stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, list]]:
    settings, env = isolated_namespace("media-parts", "test", {"RESOLVER_KAFKA_PARTITIONS": str(PARTITIONS)})
    ensure_topics(settings.kafka)
    logs = tmp_path_factory.mktemp("media-workers")
    workers: list[WorkerProcess] = []
    try:
        for n in range(2):
            own = {**env, "RESOLVER_WORKER_WEB_PORT": str(free_port())}
            w = worker_process(Settings.from_env({**os.environ, **own}), own, logs / f"worker-{n + 1}.log")
            w.start(wait=False)
            workers.append(w)
        for w in workers:
            w.wait_ready()
        yield settings, workers
    finally:
        for w in workers:
            w.stop()
        drop_namespace(settings)


def _event(cid: str, title: str, artist: str, kind: str, audio: str | None, image: str | None) -> ContentItem:
    return ContentItem(
        event_id=f"ev-{cid}", content_id=cid, source="media-set", kind=kind, title=title, artists=(artist,),
        duration_ms=20_000, audio_ref=audio, image_ref=image, produced_at_ms=1,
    )  # fmt: skip


def settle(settings: Settings, run: str, timeout_s: float = 120.0) -> None:
    """Until each partition's probe is decided by another worker than the other partition's."""
    deadline = time.monotonic() + timeout_s
    attempt = 0
    while True:
        attempt += 1
        probes: dict[int, ContentItem] = {}
        n = 0
        while len(probes) < PARTITIONS:
            probe = _event(
                f"probe-{run}-{attempt}-{n}", f"Probe Song {run} {attempt} {n}", "Probe", "recording", None, None
            )
            probes.setdefault(partition_of(probe), probe)
            n += 1
        produce(settings, list(probes.values()))
        found = wait_decided(settings, {p.event_id for p in probes.values()}, 60.0)
        workers = {found[p.event_id][2] for p in probes.values() if p.event_id in found}
        if len(workers) == PARTITIONS:
            return
        assert time.monotonic() < deadline, f"the two workers did not take one partition each: {workers}"
        time.sleep(3.0)


def test_videos_in_another_partition_are_linked_to_their_recordings_by_sound_and_by_picture(
    two_workers: tuple[Settings, list], tmp_path: Path
) -> None:
    if shutil.which("ffprobe") is None or shutil.which("fpcalc") is None:
        pytest.skip("ffmpeg / fpcalc not installed (deploy/media_tools.sh installs them)")
    from media.generated_set import generate, missing_tools

    missing = missing_tools()
    if missing:
        pytest.skip("media tools missing (.ci/run installs them): " + ", ".join(missing))
    settings, _workers = two_workers
    assert settings.worker.media_evidence
    media_set = generate(seed=12, size="tiny", folder=tmp_path / "set")
    by_id = {i.content_id: i for i in media_set.items}
    studios = [i for i in media_set.items if i.role == "studio"]
    heard = next(i for i in studios if i.artists[0] == "Wesnoth Orchestra")
    seen = next(i for i in studios if i.artists[0] != "Wesnoth Orchestra")
    run = str(time.time_ns())
    settle(settings, run)

    official = _event("probe", "Official Video", "x", "music_video", None, None)
    video_partition = partition_of(official)

    def recording(item: MediaItem, tag: str) -> ContentItem:
        """The studio take, titled so that its key lands in the other partition than the videos'."""
        for n in range(100):
            title = f"{item.title} {tag}{n}"
            event = _event(
                f"{item.content_id}-{run}", title, item.artists[0], "recording", item.audio_ref, item.image_ref
            )
            if partition_of(event) != video_partition:
                return event
        raise AssertionError("no title in the other partition")

    recordings = [recording(heard, "Part "), recording(seen, "Movement ")]
    produce(settings, recordings)
    first = wait_decided(settings, {r.event_id for r in recordings}, 180.0)
    assert {r.event_id for r in recordings} <= first.keys(), "the recordings decided"

    heard_video = by_id[f"{heard.content_id}-video"]
    seen_video = by_id[f"{seen.content_id}-video"]
    videos = [
        _event(f"{heard_video.content_id}-{run}", "Official Video", heard_video.artists[0], "music_video",
               heard_video.audio_ref, heard_video.image_ref),
        # Only the frame: no audio to compare, the picture decides.
        _event(f"{seen_video.content_id}-{run}", "Official Video", seen_video.artists[0], "music_video",
               None, seen_video.image_ref),
    ]  # fmt: skip
    produce(settings, videos)
    found = wait_decided(settings, {v.event_id for v in videos}, 180.0)
    assert {v.event_id for v in videos} <= found.keys(), "the videos decided"
    for rec, video, how in zip(recordings, videos, ("sound", "picture"), strict=True):
        r_decision, r_partition, r_worker = found[rec.event_id]
        v_decision, v_partition, v_worker = found[video.event_id]
        assert v_partition != r_partition and v_worker != r_worker, (how, r_partition, v_partition)
        assert v_decision["action"] == "LINK" and v_decision["relation"] == "video_of", (how, v_decision["reason"])
        assert v_decision["related_entity_id"] == r_decision["entity_id"], (how, v_decision)
        top = v_decision["candidates"][0]
        assert top["content_id"] == rec.content_id, (how, v_decision["candidates"])
        signal = "audio_fingerprint" if how == "sound" else "image_hash"
        assert v_decision["signals"].get(signal, 0.0) > 0.8, (how, v_decision["signals"])
        print(
            f"\n{how}: {video.content_id} (partition {v_partition}, {v_worker}) {v_decision['action']} "
            f"{v_decision['relation']} {rec.content_id} (partition {r_partition}, {r_worker}); "
            f"{signal}={v_decision['signals'].get(signal, 0.0):.3f}; {v_decision['reason'][:80]}"
        )
