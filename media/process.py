"""External media tools (ffmpeg, ffprobe, fpcalc) run in a subprocess with hard bounds.

A hostile file must cost at most ``timeout_s`` seconds, ``memory_bytes`` of address space and
``max_output`` bytes read back; whatever the tool does, the caller gets bytes or a ``MediaError``.
"""

from __future__ import annotations

import resource
import shutil
import subprocess
from collections.abc import Callable, Sequence


class MediaError(Exception):
    """A modality could not be read; ``reason`` is a machine-readable code for the evidence."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


def tool_path(name: str) -> str | None:
    return shutil.which(name)


def require_tool(name: str) -> str:
    path = tool_path(name)
    if path is None:
        raise MediaError("tool_missing", f"{name} is not installed (Debian: ffmpeg, libchromaprint-tools)")
    return path


def _limit_memory(memory_bytes: int) -> Callable[[], None]:
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    return apply


def run_bounded(
    args: Sequence[str],
    *,
    timeout_s: float,
    max_output: int,
    memory_bytes: int = 2 << 30,
    stdin: bytes | None = None,
    accept_exit: tuple[int, ...] = (0,),
) -> bytes:
    """stdout of the tool, at most ``max_output`` bytes; a non-zero exit, a timeout or more output
    than allowed is a ``MediaError`` (``tool_failed``, ``timeout``, ``output_too_large``)."""
    exe = require_tool(args[0])
    try:
        done = subprocess.run(
            [exe, *args[1:]],
            input=stdin,
            stdin=None if stdin is not None else subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout_s,
            preexec_fn=_limit_memory(memory_bytes),
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise MediaError("timeout", f"{args[0]} ran past {timeout_s:g} s") from exc
    if done.returncode not in accept_exit:
        message = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise MediaError("tool_failed", f"{args[0]} exit {done.returncode}: {(message or [''])[-1][:200]}")
    if len(done.stdout) > max_output:
        raise MediaError("output_too_large", f"{args[0]} wrote {len(done.stdout)} bytes > {max_output}")
    return done.stdout
