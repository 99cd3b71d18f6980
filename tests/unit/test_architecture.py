"""The layering (docs/architecture.md) as tests: import-linter's contracts in pyproject.toml,
every package under a contract, and tests that do not import each other."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib

import pytest

from settings import REPO_ROOT

PYPROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
LINTER = PYPROJECT["tool"]["importlinter"]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO_ROOT)}


def test_import_contracts_hold() -> None:
    pytest.importorskip("importlinter", reason="import-linter is a dev dependency: pip install -e '.[dev]'")
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from importlinter.cli import lint_imports;"
            " sys.exit(lint_imports(no_cache=True, no_logo=True))",
        ],
        cwd=REPO_ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def _python_packages() -> set[str]:
    return {p.parent.name for p in REPO_ROOT.glob("*/__init__.py")} - {"tests"}


def test_every_package_sits_in_a_layer() -> None:
    """A new top-level package must be placed in a layer, or the contract would not see it (and
    handed to mypy, as the tests are)."""
    layered = set()
    for contract in LINTER["contracts"]:
        if contract["type"] == "layers":
            for layer in contract["layers"]:
                layered |= {name.strip() for name in layer.split("|")}
    assert _python_packages() == set(LINTER["root_packages"]) == layered
    checked = set(PYPROJECT["tool"]["mypy"]["files"])
    assert _python_packages() | {"tests"} == checked, "every package, and the tests, are type-checked"


def test_tests_import_helpers_never_other_tests_nor_conftest() -> None:
    grimp = pytest.importorskip("grimp", reason="grimp comes with import-linter (dev dependency)")
    graph = grimp.build_graph("tests", include_external_packages=False, cache_dir=None)
    offending = []
    for module in sorted(graph.modules):
        for imported in graph.find_modules_directly_imported_by(module):
            leaf = imported.rsplit(".", 1)[-1]
            if imported != module and (leaf.startswith("test_") or leaf == "conftest"):
                offending.append(f"{module} imports {imported}")
    assert not offending, "shared code belongs in a helper module or a fixture plugin:\n" + "\n".join(offending)


def test_bottom_layer_is_importable_alone() -> None:
    """settings and telemetry load without anything else of ours (a fresh interpreter proves it)."""
    ours = sorted(_python_packages() - {"settings", "telemetry"})
    code = (
        f"import sys, settings, telemetry; loaded = set({ours!r}) & {{m.split('.')[0] for m in sys.modules}};"
        " sys.exit(f'loaded: {sorted(loaded)}' if loaded else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=_env(), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
