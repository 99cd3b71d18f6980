"""Same recording: Chromaprint fingerprints compared at their best alignment.

``fpcalc -raw`` (Debian ``libchromaprint-tools``, the fingerprinter MusicBrainz and AcoustID use)
turns decoded PCM into one 32-bit sub-fingerprint per ~0.124 s. Two takes of one recording agree
bit for bit at the right offset, whatever the encoding, gain or noise; a trimmed copy only shifts
it. The score is ``1 - 2 * BER`` at the offset with the lowest bit-error rate (BER) over at least
``MIN_OVERLAP`` frames: 1 identical, about 0 for unrelated audio (random bits disagree half the
time). The comparison is pure logic and lives in the core (``resolution.media_evidence``).
"""

from __future__ import annotations

import numpy as np

from media.loading import SAMPLE_RATE
from media.process import MediaError, run_bounded
from resolution.media_evidence import MAX_FRAMES, MIN_OVERLAP

FRAME_S = 0.1238  # Chromaprint algorithm 2: 4096-sample hop over 11025 Hz audio, /3 overlap


def chromaprint(samples: np.ndarray, timeout_s: float = 20.0) -> np.ndarray:
    """uint32 sub-fingerprints of mono float32 PCM at ``SAMPLE_RATE``."""
    pcm = (np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()
    # fpcalc exits 3 at the end of a raw stream it was fed whole; the fingerprint is printed.
    out = run_bounded(
        ["fpcalc", "-raw", "-format", "s16le", "-rate", str(SAMPLE_RATE), "-channels", "1", "-length", "120", "-"],
        timeout_s=timeout_s,
        max_output=1 << 20,
        stdin=pcm,
        accept_exit=(0, 3),
    )
    for line in out.decode("ascii", "replace").splitlines():
        if line.startswith("FINGERPRINT="):
            values = [int(v) for v in line.split("=", 1)[1].split(",") if v]
            if len(values) < MIN_OVERLAP:
                raise MediaError("too_short", f"{len(values)} fingerprint frames")
            return np.array(values[:MAX_FRAMES], dtype=np.uint64).astype(np.uint32)
    raise MediaError("fingerprint_failed", "fpcalc printed no fingerprint")
