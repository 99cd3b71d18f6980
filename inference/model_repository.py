"""A model's folder in the Triton model repository: its numbered versions and which one serves.

The serving version is kept where Triton itself reads it, in the model's ``config.pbtxt``:

- ``version_policy { specific { versions: [...] } }`` lists the versions Triton loads (the
  serving one and any shadow versions), so a restart serves exactly what was promoted, never
  merely the newest folder a training run left behind;
- the parameter ``serving_version`` names the one the resolver decides with, and
  ``serving_history`` the versions served before it (oldest first), which ``rollback`` returns to.

Triton runs with explicit model control (``--model-control-mode=explicit``), so after the file
changes a load request through tritonclient (``inference.triton_client.TritonModelControl``)
loads the new versions and unloads the others without a restart; a running worker asks Triton
which version serves (``TritonPairScorer``).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

CONFIG_FILE = "config.pbtxt"
BACKEND_FILE = "model.py"  # the python backend's entry point, one per version folder
SERVING_KEY = "serving_version"
HISTORY_KEY = "serving_history"


@dataclass(frozen=True)
class ServedVersions:
    serving: int | None
    loaded: tuple[int, ...]  # what Triton loads: serving and shadows
    history: tuple[int, ...] = field(default=())

    @property
    def shadows(self) -> tuple[int, ...]:
        return tuple(v for v in self.loaded if v != self.serving)


def served_from_config(config: model_config_pb2.ModelConfig, on_disk: list[int]) -> ServedVersions:
    """What a model config says is served; without our parameters, what Triton's policy loads."""
    policy = config.version_policy
    if policy.WhichOneof("policy_choice") == "specific":
        loaded = tuple(sorted(int(v) for v in policy.specific.versions))
    elif policy.WhichOneof("policy_choice") == "all":
        loaded = tuple(on_disk)
    else:
        n = policy.latest.num_versions or 1
        loaded = tuple(on_disk[-n:])
    raw = config.parameters[SERVING_KEY].string_value if SERVING_KEY in config.parameters else ""
    serving = int(raw) if raw.strip() else (max(loaded) if loaded else None)
    raw_history = config.parameters[HISTORY_KEY].string_value if HISTORY_KEY in config.parameters else ""
    history = tuple(int(v) for v in raw_history.split(",") if v.strip())
    return ServedVersions(serving, loaded, history)


class ModelRepository:
    """One model of the repository: ``<root>/<model>/config.pbtxt`` and ``<root>/<model>/<N>/``."""

    def __init__(self, root: Path, model: str, holds_model: Callable[[Path], bool] | None = None) -> None:
        """``holds_model``: whether a version folder holds a trained model of this kind (by
        default the matcher's files, ``inference.matcher_model.is_model_dir``)."""
        self.root = Path(root)
        self.model = model
        self.folder = self.root / model
        self._holds_model = holds_model

    def version_dir(self, version: int) -> Path:
        return self.folder / str(version)

    def versions(self) -> list[int]:
        """Numbered version folders holding a trained model (weights and metadata)."""
        from inference.matcher_model import is_model_dir

        holds = self._holds_model or is_model_dir
        if not self.folder.is_dir():
            return []
        return sorted(int(p.name) for p in self.folder.iterdir() if p.name.isdigit() and holds(p))

    def next_version(self) -> int:
        numbered = [int(p.name) for p in self.folder.iterdir() if p.name.isdigit()] if self.folder.is_dir() else []
        return max(numbered, default=0) + 1

    def new_version_dir(self) -> Path:
        """The next numbered folder, created, with the backend entry point copied into it."""
        folder = self.version_dir(self.next_version())
        folder.mkdir(parents=True)
        self.install_backend(folder)
        return folder

    def install_backend(self, folder: Path) -> None:
        """Copies ``model.py`` from the lowest version that has one (the shipped version)."""
        if (folder / BACKEND_FILE).exists():
            return
        sources = sorted(
            (int(p.name), p / BACKEND_FILE)
            for p in self.folder.iterdir()
            if p.name.isdigit() and (p / BACKEND_FILE).exists()
        )
        if not sources:
            raise FileNotFoundError(f"{self.folder}: no version folder holds {BACKEND_FILE} to copy")
        shutil.copy2(sources[0][1], folder / BACKEND_FILE)

    def config(self) -> model_config_pb2.ModelConfig:
        config = model_config_pb2.ModelConfig()
        text_format.Parse((self.folder / CONFIG_FILE).read_text(encoding="utf-8"), config)
        return config

    def served(self) -> ServedVersions:
        return served_from_config(self.config(), self.versions())

    def serving_dir(self) -> Path | None:
        served = self.served()
        if served.serving is None:
            return None
        folder = self.version_dir(served.serving)
        return folder if served.serving in self.versions() else None

    def write_served(self, served: ServedVersions) -> None:
        """Rewrites the policy and parameters of ``config.pbtxt``, keeping its leading comments."""
        missing = [v for v in served.loaded if v not in self.versions()]
        if missing:
            raise ValueError(f"{self.folder}: versions {missing} hold no trained model")
        if served.serving is not None and served.serving not in served.loaded:
            raise ValueError("the serving version must be among the loaded ones")
        config = self.config()
        config.version_policy.Clear()
        config.version_policy.specific.versions[:] = sorted(served.loaded)
        config.parameters[SERVING_KEY].string_value = "" if served.serving is None else str(served.serving)
        config.parameters[HISTORY_KEY].string_value = ",".join(str(v) for v in served.history)
        path = self.folder / CONFIG_FILE
        comments = [line for line in path.read_text(encoding="utf-8").splitlines() if line.startswith("#")]
        body = text_format.MessageToString(config)
        tmp = path.with_suffix(".tmp")
        tmp.write_text("\n".join([*comments, body]).rstrip("\n") + "\n", encoding="utf-8")
        tmp.replace(path)

    def promote(self, version: int) -> ServedVersions:
        """``version`` serves; the one serving before goes on the history; shadows stay loaded."""
        now = self.served()
        history = (*now.history, now.serving) if now.serving is not None and now.serving != version else now.history
        loaded = tuple(sorted({version, *now.shadows} - {now.serving} | ({version})))
        new = ServedVersions(version, loaded, history)
        self.write_served(new)
        return new

    def rollback(self) -> ServedVersions:
        """The version served before the current one serves again; the current one is unloaded."""
        now = self.served()
        if not now.history:
            raise ValueError(f"{self.model}: nothing to roll back to (no earlier serving version recorded)")
        previous = now.history[-1]
        loaded = tuple(sorted({previous, *now.shadows} - {now.serving} | {previous}))
        new = ServedVersions(previous, loaded, now.history[:-1])
        self.write_served(new)
        return new

    def set_shadows(self, shadows: list[int]) -> ServedVersions:
        """Loads these versions beside the serving one (for shadow workers), or none."""
        now = self.served()
        loaded = tuple(sorted({*shadows} | ({now.serving} if now.serving is not None else set())))
        new = ServedVersions(now.serving, loaded, now.history)
        self.write_served(new)
        return new
