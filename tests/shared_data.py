"""Where the labelled datasets are (``../shared/data``); a fresh clone has none, so tests skip."""

from __future__ import annotations

from settings import REPO_ROOT

SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
