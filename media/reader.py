"""The worker's media step: reads a batch's ``audio_ref`` / ``image_ref`` into ``MediaEvidence``.

Each reference is read in a worker thread (ffmpeg and fpcalc run as subprocesses; the GIL is
free meanwhile), at most ``concurrency`` at a time, each bounded by ``MediaLimits``. Nothing here
raises: a refused or broken file becomes a failure in the evidence and the item is resolved on
what it has. What is remembered for later comparisons is the core's ``MediaMemory``.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import OrderedDict
from typing import Any

import numpy as np

from media.chroma import chroma_embedding
from media.fingerprint import chromaprint
from media.image_hash import image_hash_bits
from media.loading import MediaLimits, MediaLoader, local_path
from media.process import MediaError
from resolution.media_evidence import NO_MEDIA, MediaEvidence
from resolution.model import ContentItem

log = logging.getLogger(__name__)


class MediaEvidenceReader:
    def __init__(
        self,
        limits: MediaLimits | None = None,
        concurrency: int = 2,
        modalities: frozenset[str] = frozenset({"audio", "image"}),
        cache_items: int = 0,
    ) -> None:
        self._loader = MediaLoader(limits)
        # Evidence of files already read, by reference, size and modification time: evaluation
        # streams one set in several orders; 0 (the worker) reads every reference afresh.
        self._cache: OrderedDict[tuple[Any, ...], MediaEvidence] = OrderedDict()
        self._cache_items = cache_items
        self._concurrency = max(1, concurrency)
        # Which references are read at all (evaluation's ablation reads one modality or none).
        self._audio = "audio" in modalities
        self._image = "image" in modalities

    @property
    def limits(self) -> MediaLimits:
        return self._loader.limits

    async def read(self, items: list[ContentItem]) -> list[MediaEvidence]:
        slots = asyncio.Semaphore(self._concurrency)

        async def one(item: ContentItem) -> MediaEvidence:
            if not (item.audio_ref and self._audio) and not (item.image_ref and self._image):
                return NO_MEDIA
            key = self._cache_key(item) if self._cache_items > 0 else None
            if key is not None and key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
            async with slots:
                evidence = await asyncio.to_thread(self.read_item, item)
            if key is not None:
                self._cache[key] = evidence
                while len(self._cache) > self._cache_items:
                    self._cache.popitem(last=False)
            return evidence

        return list(await asyncio.gather(*(one(i) for i in items)))

    def _cache_key(self, item: ContentItem) -> tuple[Any, ...] | None:
        """None (not cached) unless every reference read is a local file that exists."""
        key: list[Any] = []
        for ref, wanted in ((item.audio_ref, self._audio), (item.image_ref, self._image)):
            if not (ref and wanted):
                key.append(None)
                continue
            try:
                info = os.stat(local_path(ref))
            except (MediaError, OSError, ValueError):
                return None
            key.append((ref, info.st_size, info.st_mtime_ns))
        return tuple(key)

    def read_item(self, item: ContentItem) -> MediaEvidence:
        failures: list[tuple[str, str, str]] = []
        fingerprint = chroma = bits = None
        if item.audio_ref and self._audio:
            try:
                clip = self._loader.audio(item.audio_ref)
                fingerprint = chromaprint(clip.samples, self._loader.limits.timeout_s)
                chroma = chroma_embedding(clip.samples)
            except MediaError as exc:
                failures.append(("audio", exc.reason, exc.detail[:200]))
            except Exception as exc:  # a file nobody foresaw: evidence, never a stopped worker
                log.warning("audio of %s: %s", item.content_id, exc, exc_info=True)
                failures.append(("audio", "internal_error", type(exc).__name__))
        if item.image_ref and self._image:
            try:
                bits = image_hash_bits(self._loader.image(item.image_ref))
            except MediaError as exc:
                failures.append(("image", exc.reason, exc.detail[:200]))
            except Exception as exc:
                log.warning("image of %s: %s", item.content_id, exc, exc_info=True)
                failures.append(("image", "internal_error", type(exc).__name__))
        return MediaEvidence(
            fingerprint=fingerprint,
            chroma=None if chroma is None else np.asarray(chroma, dtype=np.float32),
            image_bits=bits,
            failures=tuple(failures),
        )
