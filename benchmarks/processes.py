"""Resident memory of the processes under test, read from /proc (Linux)."""

from __future__ import annotations

from pathlib import Path

PROC = Path("/proc")


def _rss_kib(pid: int) -> int:
    try:
        for line in (PROC / str(pid) / "status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        for task in (PROC / str(pid) / "task").iterdir():
            text = (task / "children").read_text().split()
            out.extend(int(c) for c in text)
    except OSError:
        pass
    return out


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (Triton's python-backend stubs are child processes)."""
    seen: list[int] = []
    todo = [pid]
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.append(p)
        todo.extend(_children(p))
    return seen


def rss_mb(pid: int | None, with_children: bool = True) -> float:
    """Resident MiB of ``pid`` (and its descendants); 0 when it is gone."""
    if pid is None:
        return 0.0
    pids = process_tree(pid) if with_children else [pid]
    return round(sum(_rss_kib(p) for p in pids) / 1024, 1)


def command_line(pid: int) -> str:
    try:
        return (PROC / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def model_stub_rss_mb(server_pid: int | None, model: str) -> float:
    """Resident MiB of the python-backend stub process(es) that serve ``model`` under Triton."""
    if server_pid is None:
        return 0.0
    marker = f"/{model}/"
    return round(
        sum(_rss_kib(p) for p in process_tree(server_pid)[1:] if marker in command_line(p)) / 1024,
        1,
    )


def pid_from_file(path: Path) -> int | None:
    try:
        pid = int(path.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if (PROC / str(pid)).exists() else None
