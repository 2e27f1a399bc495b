"""Figures: original vs reconstruction, in time and frequency, with the context needed to read them."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from neurorvq.eval.bands import standardize_per_sample

# How a spec's unit is written on an axis (specs spell micro as "u" to stay ASCII).
_UNIT_LABELS = {"uV": "µV", "au": "a.u."}


def unit_label(unit: str | None) -> str:
    """``" (µV)"`` for ``"uV"``, ``" (mV)"`` for ``"mV"``, ...; ``""`` when the unit is unknown."""
    return f" ({_UNIT_LABELS.get(unit, unit)})" if unit else ""


def window_mse(signal: np.ndarray, reconstruction: np.ndarray) -> float:
    """MSE of one window ``[channels, time]`` after per-window standardisation, as ``neurorvq reconstruct``'s
    "raw" column computes it (so a figure's number and the table's are comparable)."""
    x = standardize_per_sample(np.asarray(signal, dtype=np.float64)[None])
    r = standardize_per_sample(np.asarray(reconstruction, dtype=np.float64)[None])
    return float(np.mean((x - r) ** 2))


def reconstruction_title(split: str, window: int | None = None, subject: int | None = None,
                         checkpoint: str | None = None, epoch: int | None = None, mse: float | None = None) -> str:
    """One line naming what a reconstruction figure shows, e.g.
    ``"test split, window 0 (subject 3) | last.ckpt | MSE 0.412 (standardised)"``."""
    what = f"{split} split" + (f", window {window}" if window is not None else "")
    what += f" (subject {subject})" if subject is not None else ""
    parts = [what]
    if checkpoint:
        parts.append(checkpoint)
    if epoch is not None:
        parts.append(f"epoch {epoch}")
    if mse is not None:
        parts.append(f"MSE {mse:.3f} (standardised)")
    return " | ".join(parts)


def reconstruction_figure(signal: np.ndarray, reconstruction: np.ndarray, channel_names: Sequence[str],
                          fs: float, max_channels: int = 3, *, title: str | None = None, unit: str | None = None):
    """A matplotlib figure: for up to ``max_channels`` channels, time traces (left) and single-sided amplitude
    spectra ``2|FFT|/n`` (right, log scale) of ``signal`` and ``reconstruction``, both ``[channels, time]`` in
    ``unit`` (e.g. ``"uV"``; shown on the amplitude axes when given). ``title`` goes above the figure."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    n = min(max_channels, signal.shape[0])
    fig, axes = plt.subplots(n, 2, figsize=(11, 2.2 * n + (0.4 if title else 0.0)), squeeze=False)
    samples = signal.shape[-1]
    t = np.arange(samples) / fs
    freqs = np.fft.rfftfreq(samples, 1 / fs)
    suffix = unit_label(unit)
    for i in range(n):
        ax_t, ax_f = axes[i]
        ax_t.plot(t, signal[i], lw=0.8, label="original")
        ax_t.plot(t, reconstruction[i], lw=0.8, alpha=0.8, label="reconstruction")
        ax_t.set_ylabel(f"{channel_names[i]}\namplitude{suffix}")
        ax_f.semilogy(freqs, 2 * np.abs(np.fft.rfft(signal[i])) / samples + 1e-12, lw=0.8)
        ax_f.semilogy(freqs, 2 * np.abs(np.fft.rfft(reconstruction[i])) / samples + 1e-12, lw=0.8, alpha=0.8)
        ax_f.set_ylabel(f"|FFT| amplitude{suffix}")
    axes[0][0].legend(loc="upper right", fontsize=8)
    axes[-1][0].set_xlabel("time (s)")
    axes[-1][1].set_xlabel("frequency (Hz)")
    axes[0][0].set_title("signal")
    axes[0][1].set_title("amplitude spectrum")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
