"""Same recording: Chromaprint fingerprints compared at their best alignment.

``fpcalc -raw`` (Debian ``libchromaprint-tools``, the fingerprinter MusicBrainz and AcoustID use)
turns decoded PCM into one 32-bit sub-fingerprint per ~0.124 s. Two takes of one recording agree
bit for bit at the right offset, whatever the encoding, gain or noise; a trimmed copy only shifts
it. The score is ``1 - 2 * BER`` at the offset with the lowest bit-error rate (BER) over at least
``MIN_OVERLAP`` frames: 1 identical, about 0 for unrelated audio (random bits disagree half the
time). All offsets at once: with the bits as +-1 signals, the agreement at every lag is one
cross-correlation, summed over the 32 bit planes in the frequency domain.
"""

from __future__ import annotations

import numpy as np

from media.loading import SAMPLE_RATE
from media.process import MediaError, run_bounded

FRAME_S = 0.1238  # Chromaprint algorithm 2: 4096-sample hop over 11025 Hz audio, /3 overlap
MIN_OVERLAP = 40  # ~5 s of audio in common
MAX_FRAMES = 1024  # ~127 s, the most fpcalc reads by default (120 s)


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


_FFT = 2 * MAX_FRAMES


def _bit_planes(fp: np.ndarray) -> np.ndarray:
    """(32, n) float32 of +-1."""
    bits = (fp[None, :].astype(np.uint64) >> np.arange(32, dtype=np.uint64)[:, None]) & 1
    return bits.astype(np.float32) * 2.0 - 1.0


class FingerprintSpectra:
    """Fingerprints prepared once (their bit planes' spectra) for many comparisons."""

    def __init__(self, fingerprints: list[np.ndarray]) -> None:
        self.lengths = np.array([len(f) for f in fingerprints], dtype=np.int64)
        self.spectra = np.stack([np.fft.rfft(_bit_planes(f), n=_FFT, axis=1) for f in fingerprints])

    def similarities(self, query: np.ndarray) -> np.ndarray:
        """Score of ``query`` against every prepared fingerprint: (n,) float in [0, 1]."""
        q = np.fft.rfft(_bit_planes(query), n=_FFT, axis=1)
        # corr[k, lag]: agreements minus disagreements of query[i] and other[i - lag], summed over bits.
        corr = np.fft.irfft((np.conj(q)[None] * self.spectra).sum(axis=1), n=_FFT, axis=1)
        nq = len(query)
        lags = np.fft.fftfreq(_FFT, 1.0 / _FFT).astype(np.int64)  # 0, 1, ..., -1
        # Overlap of query[j] with other[j + lag] for j in range(nq), j + lag in range(n_other).
        starts = np.maximum(0, -lags)[None, :]
        ends = np.minimum(nq, self.lengths[:, None] - lags[None, :])
        overlap = np.clip(ends - starts, 0, None)
        # conj(Q) * S correlates sum_j q[j] s[j + lag]: lag is the other's delay.
        errors = (32.0 * overlap - corr) / 2.0
        with np.errstate(divide="ignore", invalid="ignore"):
            ber = np.where(overlap >= MIN_OVERLAP, errors / (32.0 * np.maximum(overlap, 1)), 1.0)
        best = ber.min(axis=1)
        return np.clip(1.0 - 2.0 * best, 0.0, 1.0)


def fingerprint_similarity(a: np.ndarray, b: np.ndarray) -> float:
    return float(FingerprintSpectra([b]).similarities(a)[0])


def reference_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """The same score by brute force over every offset (popcount of XOR): the independent check."""
    best = 1.0
    for lag in range(-(len(a) - MIN_OVERLAP), len(b) - MIN_OVERLAP + 1):
        lo, hi = max(0, -lag), min(len(a), len(b) - lag)
        if hi - lo < MIN_OVERLAP:
            continue
        x = np.bitwise_xor(a[lo:hi], b[lo + lag : hi + lag])
        errors = int(np.unpackbits(x.view(np.uint8)).sum())
        best = min(best, errors / (32.0 * (hi - lo)))
    return max(0.0, 1.0 - 2.0 * best)
