"""The local Milvus' root credentials: generated once per installation, readable by its owner only.

Milvus 2.3 creates its ``root`` user with a well-known default password and has no setting to
change it, so the stack replaces it through the API the first time a fresh data folder comes
up (``deploy/stack.py``). The resolver never reads this file itself: the command line and the
test session hand the password over as ``MILVUS_TOKEN``, exactly as for a remote Milvus.
"""

from __future__ import annotations

import os
import secrets
import stat
from collections.abc import MutableMapping
from urllib.parse import urlsplit

from settings import Settings, StackSettings

ROOT_USER = "root"
# What Milvus 2.3 gives root on a new data folder; only used to replace it.
DEFAULT_ROOT_PASSWORD = "Milvus"


class MilvusRootPassword:
    """``<state>/milvus-root-password``, mode 0600, created on first use."""

    def __init__(self, stack: StackSettings) -> None:
        self.path = stack.state_dir / "milvus-root-password"

    def read_or_create(self) -> str:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            # O_EXCL: two processes starting at once agree on one password.
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return self._read()
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            # Milvus passwords are 6-256 characters; url-safe keeps it shell- and URI-friendly.
            f.write(secrets.token_urlsafe(24) + "\n")
        return self._read()

    def _read(self) -> str:
        mode = stat.S_IMODE(self.path.stat().st_mode)
        if mode & 0o077:
            # Someone widened it (a copy, an archive): narrow it again rather than keep it readable.
            os.chmod(self.path, 0o600)
        password = self.path.read_text(encoding="utf-8").strip()
        if not password:
            raise ValueError(f"{self.path} is empty: remove it and the Milvus data folder (stack up --fresh-milvus)")
        return password

    def token(self) -> str:
        return f"{ROOT_USER}:{self.read_or_create()}"


def is_local_milvus(uri: str, stack: StackSettings) -> bool:
    parsed = urlsplit(uri if "//" in uri else f"http://{uri}")
    return parsed.hostname in ("127.0.0.1", "localhost", "::1") and parsed.port == stack.milvus_port


def export_local_milvus_token(env: MutableMapping[str, str]) -> None:
    """Sets ``MILVUS_TOKEN`` for the local stack's Milvus, unless the resolver points elsewhere.

    A token given explicitly wins; a Milvus other than the local one never gets this password."""
    if "MILVUS_TOKEN" in env or "RESOLVER_WORKER_MILVUS_TOKEN" in env:
        return
    settings = Settings.from_env(dict(env))
    if not is_local_milvus(settings.worker.milvus_uri, settings.stack):
        return
    env["MILVUS_TOKEN"] = MilvusRootPassword(settings.stack).token()
