"""Reconstruction error per frequency band, as the paper's Table 1 computes it (method.md §7.1).

Signals and reconstructions are standardised per sample (mean and unbiased std over all channels and time of
the sample), then band-filtered with a zero-phase Butterworth filter of order 2; the MSE is taken between
the filtered standardised signals. "raw" is the MSE of the unfiltered standardised signals.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.signal import butter, sosfiltfilt

from neurorvq.errors import ConfigError


def standardize_per_sample(x: np.ndarray) -> np.ndarray:
    """``x [batch, channels, time]`` -> per-sample standardised copy (unbiased std, variance floor 1e-8)."""
    axes = tuple(range(1, x.ndim))
    mean = x.mean(axis=axes, keepdims=True)
    std = np.sqrt(np.maximum(x.var(axis=axes, ddof=1, keepdims=True), 1e-8))
    return (x - mean) / std


def band_filter(x: np.ndarray, low: float, high: float, fs: float, order: int = 2) -> np.ndarray:
    """Zero-phase Butterworth band-pass of ``x`` along the last axis (``high`` at Nyquist -> high-pass)."""
    nyquist = fs / 2
    if not 0 <= low < high <= nyquist:
        raise ConfigError(f"band ({low}, {high}) Hz is not inside (0, {nyquist}] Hz at fs={fs} Hz")
    if high >= nyquist:
        sos = butter(order, low, btype="highpass", fs=fs, output="sos")
    elif low <= 0:
        sos = butter(order, high, btype="lowpass", fs=fs, output="sos")
    else:
        sos = butter(order, [low, high], btype="bandpass", fs=fs, output="sos")
    return sosfiltfilt(sos, x, axis=-1)


@dataclass
class BandErrors:
    """Running sums of squared errors per band; ``table()`` gives the MSEs."""

    bands: tuple[tuple[str, float, float], ...]
    fs: float
    sums: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def update(self, signal: np.ndarray, reconstruction: np.ndarray) -> None:
        """Add a batch: ``[batch, channels, time]`` arrays in the same unit."""
        x = standardize_per_sample(np.asarray(signal, dtype=np.float64))
        r = standardize_per_sample(np.asarray(reconstruction, dtype=np.float64))
        self._add("raw", x, r)
        for name, low, high in self.bands:
            self._add(name, band_filter(x, low, high, self.fs), band_filter(r, low, high, self.fs))

    def _add(self, name: str, x: np.ndarray, r: np.ndarray) -> None:
        self.sums[name] = self.sums.get(name, 0.0) + float(np.sum((x - r) ** 2))
        self.counts[name] = self.counts.get(name, 0) + x.size

    def table(self) -> dict[str, float]:
        """``{"raw": mse, band: mse, ...}`` in band order."""
        return {name: self.sums[name] / self.counts[name] for name in ["raw", *[b[0] for b in self.bands]]
                if name in self.counts}


def format_table(errors: dict[str, float], title: str = "reconstruction MSE (standardised signals)") -> str:
    """A Markdown table with one row: raw and each band."""
    names = list(errors)
    head = "| " + " | ".join(names) + " |"
    rule = "|" + "|".join("---" for _ in names) + "|"
    row = "| " + " | ".join(f"{errors[n]:.4f}" for n in names) + " |"
    return f"{title}\n\n{head}\n{rule}\n{row}"
