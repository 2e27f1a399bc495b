"""Figures: original vs reconstruction, in time and frequency."""

from __future__ import annotations

from typing import Sequence

import numpy as np


def reconstruction_figure(signal: np.ndarray, reconstruction: np.ndarray, channel_names: Sequence[str],
                          fs: float, max_channels: int = 3):
    """A matplotlib figure: for up to ``max_channels`` channels, time traces (left) and amplitude spectra
    (right) of ``signal`` and ``reconstruction``, both ``[channels, time]`` in the signal's unit."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    n = min(max_channels, signal.shape[0])
    fig, axes = plt.subplots(n, 2, figsize=(11, 2.2 * n), squeeze=False)
    t = np.arange(signal.shape[-1]) / fs
    freqs = np.fft.rfftfreq(signal.shape[-1], 1 / fs)
    for i in range(n):
        ax_t, ax_f = axes[i]
        ax_t.plot(t, signal[i], lw=0.8, label="original")
        ax_t.plot(t, reconstruction[i], lw=0.8, alpha=0.8, label="reconstruction")
        ax_t.set_ylabel(channel_names[i])
        ax_f.semilogy(freqs, np.abs(np.fft.rfft(signal[i])) + 1e-12, lw=0.8)
        ax_f.semilogy(freqs, np.abs(np.fft.rfft(reconstruction[i])) + 1e-12, lw=0.8, alpha=0.8)
    axes[0][0].legend(loc="upper right", fontsize=8)
    axes[-1][0].set_xlabel("time (s)")
    axes[-1][1].set_xlabel("frequency (Hz)")
    axes[0][1].set_title("amplitude spectrum")
    fig.tight_layout()
    return fig
