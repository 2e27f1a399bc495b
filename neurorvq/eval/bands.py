"""Reconstruction error per frequency band, as the paper's Table 1 computes it (method.md §7.1).

Signals and reconstructions are standardised per sample (mean and unbiased std over all channels and time of
the sample), then band-filtered with a zero-phase Butterworth filter of order 2; the MSE is taken between
the filtered standardised signals. "raw" is the MSE of the unfiltered standardised signals.

Two filtering modes (families.md §B.6): per continuous channel (``patch_length=None``, what ``neurorvq
reconstruct`` reports: second-order sections, ``sosfiltfilt``), or per patch row (``patch_length=T``: every
T-sample patch of every channel filtered on its own, in transfer-function form with ``filtfilt``'s default
padding, as the official plotting code does). The delta column depends on the mode.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
from scipy.signal import butter, filtfilt, sosfiltfilt

from neurorvq.errors import ConfigError, InputError


def standardize_per_sample(x: np.ndarray) -> np.ndarray:
    """``x [batch, channels, time]`` -> per-sample standardised copy (unbiased std, variance floor 1e-8)."""
    axes = tuple(range(1, x.ndim))
    mean = x.mean(axis=axes, keepdims=True)
    std = np.sqrt(np.maximum(x.var(axis=axes, ddof=1, keepdims=True), 1e-8))
    return (x - mean) / std


def _butter(low: float, high: float, fs: float, order: int, output: str):
    """Butterworth band-pass coefficients (``high`` at Nyquist -> high-pass, ``low`` 0 -> low-pass)."""
    nyquist = fs / 2
    if not 0 <= low < high <= nyquist:
        raise ConfigError(f"band ({low}, {high}) Hz is not inside (0, {nyquist}] Hz at fs={fs} Hz")
    if high >= nyquist:
        return butter(order, low, btype="highpass", fs=fs, output=output)
    if low <= 0:
        return butter(order, high, btype="lowpass", fs=fs, output=output)
    return butter(order, [low, high], btype="bandpass", fs=fs, output=output)


def band_filter(x: np.ndarray, low: float, high: float, fs: float, order: int = 2,
                patch_length: int | None = None) -> np.ndarray:
    """Zero-phase Butterworth band-pass of ``x [..., time]`` along the last axis (``high`` at Nyquist ->
    high-pass); ``low``/``high`` and ``fs`` in Hz.

    ``patch_length=None``: the whole axis at once (``sosfiltfilt``). ``patch_length=T``: each T-sample patch on its
    own (``time`` must be a multiple of T), with ``(b, a)`` coefficients and ``filtfilt``'s default padding, for
    parity with the official plotting code (families.md §B.6)."""
    if patch_length is None:
        return sosfiltfilt(_butter(low, high, fs, order, "sos"), x, axis=-1)
    t = int(patch_length)
    if t < 1 or x.shape[-1] % t:
        raise ConfigError(f"patch_length={patch_length} does not divide the {x.shape[-1]} samples of a channel; "
                          "give the tokenizer's patch length")
    b, a = _butter(low, high, fs, order, "ba")
    padlen = 3 * max(len(a), len(b))  # filtfilt's default
    if t <= padlen:
        raise ConfigError(f"patch_length={t} samples is too short to filter per patch (filtfilt pads {padlen} "
                          "samples); use the per-channel mode")
    rows = x.reshape(*x.shape[:-1], x.shape[-1] // t, t)
    return filtfilt(b, a, rows, axis=-1).reshape(x.shape)


def band_mse_per_window(signal: np.ndarray, reconstruction: np.ndarray, bands: Sequence[tuple[str, float, float]],
                        fs: float, patch_length: int | None = None) -> dict[str, np.ndarray]:
    """``{"raw": [batch], band: [batch], ...}``: each window's MSE of the per-sample standardised signals, raw
    and band-filtered (:func:`band_filter`, per patch when ``patch_length`` is given); ``signal`` and
    ``reconstruction`` are ``[batch, channels, time]`` in the same unit, ``fs`` in Hz."""
    x = standardize_per_sample(np.asarray(signal, dtype=np.float64))
    r = standardize_per_sample(np.asarray(reconstruction, dtype=np.float64))
    if x.shape != r.shape:
        raise InputError(f"reconstruction has shape {r.shape} but the signal {x.shape}")
    axes = tuple(range(1, x.ndim))
    out = {"raw": np.mean((x - r) ** 2, axis=axes)}
    for name, low, high in bands:
        # the filters are linear (filtfilt's odd padding too): filtering the difference is one pass, not two
        out[name] = np.mean(band_filter(x - r, low, high, fs, patch_length=patch_length) ** 2, axis=axes)
    return out


@dataclass
class BandErrors:
    """Running sums of squared errors per band; ``table()`` gives the MSEs. ``patch_length``: filter per patch of
    that many samples (see :func:`band_filter`); None: per continuous channel."""

    bands: tuple[tuple[str, float, float], ...]
    fs: float
    sums: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    patch_length: int | None = None

    def update(self, signal: np.ndarray, reconstruction: np.ndarray) -> None:
        """Add a batch: ``[batch, channels, time]`` arrays in the same unit."""
        x = standardize_per_sample(np.asarray(signal, dtype=np.float64))
        r = standardize_per_sample(np.asarray(reconstruction, dtype=np.float64))
        self._add("raw", x, r)
        for name, low, high in self.bands:
            self._add(name, band_filter(x, low, high, self.fs, patch_length=self.patch_length),
                      band_filter(r, low, high, self.fs, patch_length=self.patch_length))

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
