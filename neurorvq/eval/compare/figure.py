"""The comparison figure: per-band MSE bars of every tokenizer (one panel per filtering mode), then, per
tokenizer, one window's first channel in time and its amplitude spectrum against the original."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from neurorvq.eval.compare.run import Comparison
from neurorvq.eval.figures import unit_label, window_mse


def comparison_figure(comparison: Comparison):
    """A matplotlib figure (Agg): row 0, grouped bars of raw and per-band MSE per tokenizer, one panel per mode;
    then one row per tokenizer: the example window's first channel, original vs reconstruction, in time (left,
    data unit) and as a single-sided amplitude spectrum ``2|FFT|/n`` (right, log scale)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    names = [s.name for s in comparison.scores]
    example = comparison.example
    rows = 1 + (len(names) if example is not None else 0)
    fig = plt.figure(figsize=(12, 3.2 + 2.2 * (rows - 1)))
    grid = fig.add_gridspec(rows, 2 * len(comparison.modes))
    columns = comparison.columns
    width = 0.8 / max(len(names), 1)
    position = np.arange(len(columns))
    span = 2  # grid columns per mode panel; the trace and spectrum panels take half the columns each
    for m, mode in enumerate(comparison.modes):
        ax = fig.add_subplot(grid[0, m * span:(m + 1) * span])
        for i, s in enumerate(comparison.scores):
            ax.bar(position + (i - (len(names) - 1) / 2) * width, [s.mse[mode][c] for c in columns], width,
                   label=s.name)
        ax.set_xticks(position, columns)
        ax.set_ylabel("MSE (standardised)")
        ax.set_title(f"mode '{mode}' ({comparison.windows} windows)", fontsize=9)
        if m == 0:
            ax.legend(fontsize=8)
    if example is not None:
        fs = comparison.data["sampling_rate"]
        suffix = unit_label(comparison.data["unit"])
        samples = example.signal.shape[-1]
        t = np.arange(samples) / fs
        freqs = np.fft.rfftfreq(samples, 1 / fs)
        half = len(comparison.modes)
        for r, name in enumerate(names, start=1):
            rec = example.reconstructions[name]
            ax_t = fig.add_subplot(grid[r, :half])
            ax_f = fig.add_subplot(grid[r, half:])
            ax_t.plot(t, example.signal[0], lw=0.8, label="original")
            ax_t.plot(t, rec[0], lw=0.8, alpha=0.8, label=name)
            ax_t.set_ylabel(f"{example.channels[0]}\namplitude{suffix}")
            ax_t.set_title(f"{name}: window 0, MSE {window_mse(example.signal, rec):.3f} (standardised, all "
                           "channels)", fontsize=9)
            ax_t.legend(loc="upper right", fontsize=8)
            ax_f.semilogy(freqs, 2 * np.abs(np.fft.rfft(example.signal[0])) / samples + 1e-12, lw=0.8)
            ax_f.semilogy(freqs, 2 * np.abs(np.fft.rfft(rec[0])) / samples + 1e-12, lw=0.8, alpha=0.8)
            ax_f.set_ylabel(f"|FFT| amplitude{suffix}")
            ax_f.set_title("amplitude spectrum", fontsize=9)
            if r == rows - 1:
                ax_t.set_xlabel("time (s)")
                ax_f.set_xlabel("frequency (Hz)")
    fig.suptitle(f"Tokenizer comparison on '{comparison.data['name']}' data", fontsize=10)
    fig.tight_layout()
    return fig


def save_comparison_figure(comparison: Comparison, path: str | Path, dpi: int = 110) -> Path:
    """:func:`comparison_figure` saved as ``path`` (PNG); the figure is closed."""
    import matplotlib.pyplot as plt

    fig = comparison_figure(comparison)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


__all__ = ["comparison_figure", "save_comparison_figure"]
