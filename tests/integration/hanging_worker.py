"""A worker whose first batch hangs forever, as Faust sometimes does after a crash.

Run as ``python tests/integration/hanging_worker.py MARKER worker ...``: while the file MARKER
exists, the next batch removes it and never returns. The restarted interpreter (the worker
re-executes itself when stalled) finds no marker and works normally.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from content_resolver.cli import main
from streams import handler

MARKER = sys.argv.pop(1)
_handle = handler.EventBatchHandler.handle


async def _hang_once(self: handler.EventBatchHandler, messages: list, send: handler.Send) -> dict[int, int]:
    if os.path.exists(MARKER):
        os.unlink(MARKER)
        await asyncio.Event().wait()
    return await _handle(self, messages, send)


handler.EventBatchHandler.handle = _hang_once  # type: ignore[method-assign]

if __name__ == "__main__":
    sys.exit(main())
