"""mypy over the project with its pyproject configuration (strict on the core): zero errors."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from settings import REPO_ROOT


def test_mypy_finds_no_errors() -> None:
    pytest.importorskip("mypy", reason="mypy is a dev dependency: pip install -e '.[dev]'")
    result = subprocess.run(
        [sys.executable, "-m", "mypy"],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "Success: no issues found" in result.stdout
