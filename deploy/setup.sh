# One-time set-up, cached: a virtualenv keyed on pyproject's dependency lists, runtime and dev (torch
# alone is GBs, so it is installed once per dependency change, never per run), the project
# installed into it in editable mode, and ./.venv pointing at it.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${RESOLVER_STACK_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/content-resolver}"
PY="${PYTHON:-python3.11}"
mkdir -p "$CACHE"
key=$("$PY" - <<'PY'
import hashlib, sys, tomllib
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
deps = project["dependencies"] + project.get("optional-dependencies", {}).get("dev", [])
print(hashlib.sha256(("\n".join(deps) + sys.version).encode()).hexdigest()[:12])
PY
)
venv="$CACHE/venv-$key"
if [ ! -f "$venv/.complete" ]; then
  echo "[setup] creating the cached virtualenv $venv (first run: downloads torch, Triton, Milvus; several minutes)"
  rm -rf "$venv"
  "$PY" -m venv "$venv"
  "$venv/bin/pip" install --progress-bar on --upgrade pip "setuptools<81" wheel
  deps=$("$PY" -c 'import tomllib; p=tomllib.load(open("pyproject.toml","rb"))["project"]; print("\n".join(p["dependencies"] + p.get("optional-dependencies", {}).get("dev", [])))')
  # shellcheck disable=SC2086
  echo "$deps" | tr '\n' '\0' | xargs -0 "$venv/bin/pip" install --progress-bar on
  touch "$venv/.complete"
else
  echo "[setup] reusing the cached virtualenv $venv"
fi
if [ -e .venv ] && [ ! -L .venv ]; then rm -rf .venv; fi
ln -sfn "$venv" .venv
# Editable and dependency-free: seconds, and the shared venv points at this checkout.
.venv/bin/pip install --quiet --no-deps --no-build-isolation -e .
echo "[setup] ready: $(readlink .venv)"
