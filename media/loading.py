"""Reads an event's ``audio_ref`` and ``image_ref`` within bounds.

Only local files (a path or a ``file://`` URI): the resolver makes no network calls. ffprobe
checks container, streams, duration and pixels before anything is decoded; ffmpeg then decodes
with the same format and protocol whitelists, a duration cap, a pixel cap, a timeout and a memory
limit. Audio comes back as mono float32 PCM at ``SAMPLE_RATE`` (what Chromaprint works at), an
image as a ``IMAGE_SIDE`` square RGB array (a video's key frame for a video file).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np

from media.process import MediaError, run_bounded

SAMPLE_RATE = 11025
IMAGE_SIDE = 256
# Containers ffmpeg may open: audio files, video files, still images. Playlists, concat lists
# and network demuxers are left out, so a hostile file cannot make ffmpeg read anything else.
FORMATS = (
    "wav,flac,mp3,ogg,mov,mp4,m4a,3gp,3g2,mj2,matroska,webm,aac,"
    "image2,png_pipe,jpeg_pipe,webp_pipe,bmp_pipe,gif,gif_pipe,tiff_pipe"
)
_IMAGE_FORMATS = frozenset({"image2", "png_pipe", "jpeg_pipe", "webp_pipe", "bmp_pipe", "gif", "gif_pipe", "tiff_pipe"})
_GUARDS = ("-protocol_whitelist", "file", "-format_whitelist", FORMATS)


@dataclass(frozen=True)
class MediaLimits:
    """Bounds on one file; the defaults are the worker's (``RESOLVER_WORKER_MEDIA_*``)."""

    max_bytes: int = 512 << 20
    max_duration_s: float = 4 * 3600.0  # declared length; longer is refused as hostile
    audio_seconds: float = 120.0  # decoded from the start, at most
    max_pixels: int = 50_000_000
    timeout_s: float = 20.0
    memory_bytes: int = 2 << 30


@dataclass(frozen=True)
class AudioClip:
    samples: np.ndarray  # float32, mono, SAMPLE_RATE
    duration_s: float  # declared length of the whole file

    @property
    def seconds(self) -> float:
        return len(self.samples) / SAMPLE_RATE


@dataclass(frozen=True)
class Probe:
    format_name: str
    duration_s: float
    has_audio: bool
    has_video: bool
    pixels: int


def local_path(ref: str) -> Path:
    """A reference as a local path; anything but a path or a ``file://`` URI is refused."""
    if not ref or "\x00" in ref:
        raise MediaError("bad_ref", "empty reference or NUL byte")
    parsed = urlparse(ref)
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise MediaError("unsupported_ref", f"file URI on another host: {parsed.netloc[:60]}")
        return Path(unquote(parsed.path))
    if parsed.scheme and len(parsed.scheme) > 1:  # a one-letter scheme is a Windows drive
        raise MediaError("unsupported_ref", f"scheme {parsed.scheme[:20]!r}: only local files are read")
    return Path(ref)


class MediaLoader:
    """Audio and image of one reference, or a ``MediaError`` saying why not."""

    def __init__(self, limits: MediaLimits | None = None) -> None:
        self.limits = limits or MediaLimits()

    def _checked_file(self, ref: str) -> Path:
        path = local_path(ref)
        try:
            info = path.stat()
        except FileNotFoundError as exc:
            raise MediaError("missing", f"no such file: {str(path)[:200]}") from exc
        except OSError as exc:
            raise MediaError("unreadable", f"{type(exc).__name__}: {exc}"[:200]) from exc
        if not path.is_file():
            raise MediaError("not_a_file", str(path)[:200])
        if info.st_size == 0:
            raise MediaError("empty", str(path)[:200])
        if info.st_size > self.limits.max_bytes:
            raise MediaError("too_large", f"{info.st_size} bytes > {self.limits.max_bytes}")
        if not os.access(path, os.R_OK):
            raise MediaError("unreadable", str(path)[:200])
        return path

    def probe(self, path: Path) -> Probe:
        out = run_bounded(
            [
                "ffprobe",
                "-v",
                "error",
                *_GUARDS,
                "-show_entries",
                "format=format_name,duration:stream=codec_type,width,height",
                "-of",
                "json",
                f"file:{path}",
            ],
            timeout_s=self.limits.timeout_s,
            max_output=1 << 20,
            memory_bytes=self.limits.memory_bytes,
        )
        try:
            data = json.loads(out or b"{}")
        except ValueError as exc:
            raise MediaError("corrupt", "ffprobe output is not JSON") from exc
        fmt = data.get("format") or {}
        streams = data.get("streams") or []
        if not fmt or not streams:
            raise MediaError("corrupt", "no recognisable container or stream")
        try:
            duration = float(fmt.get("duration") or 0.0)
        except ValueError:
            duration = 0.0
        pixels = max((int(s.get("width") or 0) * int(s.get("height") or 0) for s in streams), default=0)
        return Probe(
            format_name=str(fmt.get("format_name", "")),
            duration_s=duration,
            has_audio=any(s.get("codec_type") == "audio" for s in streams),
            has_video=any(s.get("codec_type") == "video" for s in streams),
            pixels=pixels,
        )

    def audio(self, ref: str) -> AudioClip:
        path = self._checked_file(ref)
        probe = self.probe(path)
        if not probe.has_audio:
            raise MediaError("no_audio_stream", probe.format_name[:60])
        if probe.duration_s > self.limits.max_duration_s:
            raise MediaError("too_long", f"{probe.duration_s:.0f} s > {self.limits.max_duration_s:.0f} s")
        seconds = self.limits.audio_seconds
        max_out = int(seconds * SAMPLE_RATE) * 4 + 4096
        raw = run_bounded(
            [
                "ffmpeg",
                "-nostdin",
                "-hide_banner",
                "-loglevel",
                "error",
                *_GUARDS,
                "-t",
                f"{seconds:g}",
                "-i",
                f"file:{path}",
                "-vn",
                "-sn",
                "-dn",
                "-ac",
                "1",
                "-ar",
                str(SAMPLE_RATE),
                "-f",
                "f32le",
                "pipe:1",
            ],
            timeout_s=self.limits.timeout_s,
            max_output=max_out,
            memory_bytes=self.limits.memory_bytes,
        )
        samples = np.frombuffer(raw[: len(raw) // 4 * 4], dtype="<f4").astype(np.float32)
        if samples.size < SAMPLE_RATE:  # under a second: nothing a fingerprint can use
            raise MediaError("too_short", f"{samples.size / SAMPLE_RATE:.2f} s of audio decoded")
        if not np.isfinite(samples).all():
            raise MediaError("corrupt", "decoded audio has non-finite samples")
        return AudioClip(np.clip(samples, -1.0, 1.0), probe.duration_s or samples.size / SAMPLE_RATE)

    def image(self, ref: str) -> np.ndarray:
        """(IMAGE_SIDE, IMAGE_SIDE, 3) uint8: the image, or a key frame a tenth into a video."""
        path = self._checked_file(ref)
        probe = self.probe(path)
        if not probe.has_video:
            raise MediaError("no_image", probe.format_name[:60])
        if probe.pixels <= 0:
            raise MediaError("corrupt", "no picture size (unreadable or absurd dimensions)")
        if probe.pixels > self.limits.max_pixels:
            raise MediaError("too_many_pixels", f"{probe.pixels} pixels (limit {self.limits.max_pixels})")
        still = bool(set(probe.format_name.split(",")) & _IMAGE_FORMATS)
        seek = [] if still or probe.duration_s <= 0 else ["-ss", f"{min(probe.duration_s * 0.1, 5.0):.2f}"]
        side = IMAGE_SIDE
        raw = run_bounded(
            [
                "ffmpeg",
                "-nostdin",
                "-hide_banner",
                "-loglevel",
                "error",
                *_GUARDS,
                "-max_pixels",
                str(self.limits.max_pixels),
                *seek,
                "-i",
                f"file:{path}",
                "-an",
                "-frames:v",
                "1",
                "-vf",
                f"scale={side}:{side}:flags=area",
                "-pix_fmt",
                "rgb24",
                "-f",
                "rawvideo",
                "pipe:1",
            ],
            timeout_s=self.limits.timeout_s,
            max_output=side * side * 3,
            memory_bytes=self.limits.memory_bytes,
        )
        if len(raw) != side * side * 3:
            raise MediaError("corrupt", f"decoded {len(raw)} bytes, expected one {side}x{side} frame")
        return np.frombuffer(raw, dtype=np.uint8).reshape(side, side, 3)
