"""Reconstruction figures: title, units on the amplitude axes, labelled spectrum axis."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest

from neurorvq.eval.figures import reconstruction_figure, reconstruction_title, unit_label, window_mse

FS = 200.0


def signals(channels: int = 3, seconds: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * FS)) / FS
    x = 20.0 * np.sin(2 * np.pi * 10.0 * t) + rng.normal(size=(channels, t.size))
    return x, x + rng.normal(scale=0.5, size=x.shape)


def test_figure_has_title_units_and_axis_labels():
    x, r = signals()
    title = reconstruction_title("test", window=0, subject=7, checkpoint="last.ckpt", mse=window_mse(x, r))
    fig = reconstruction_figure(x, r, ["fp1", "cz", "o2"], FS, max_channels=2, title=title, unit="uV")
    try:
        assert fig._suptitle is not None
        text = fig._suptitle.get_text()
        assert "test split" in text and "window 0" in text and "subject 7" in text and "last.ckpt" in text
        assert "MSE" in text
        axes = np.asarray(fig.axes).reshape(2, 2)
        assert [a.get_ylabel() for a in axes[:, 0]] == ["fp1\namplitude (µV)", "cz\namplitude (µV)"]
        assert all(a.get_ylabel() == "|FFT| amplitude (µV)" for a in axes[:, 1])
        assert axes[-1, 0].get_xlabel() == "time (s)" and axes[-1, 1].get_xlabel() == "frequency (Hz)"
    finally:
        plt.close(fig)


def test_spectrum_is_single_sided_amplitude():
    t = np.arange(400) / FS
    x = 10.0 * np.sin(2 * np.pi * 10.0 * t)[None]  # 10 µV at 10 Hz, an exact FFT bin
    fig = reconstruction_figure(x, x, ["cz"], FS, max_channels=1, unit="uV")
    try:
        freqs, amplitude = fig.axes[1].lines[0].get_data()
        assert freqs[np.argmax(amplitude)] == pytest.approx(10.0) and amplitude.max() == pytest.approx(10.0)
    finally:
        plt.close(fig)


def test_existing_callers_still_work_without_context():
    x, r = signals(channels=1)
    fig = reconstruction_figure(x, r, ["cz"], FS)
    try:
        assert fig._suptitle is None
        assert fig.axes[0].get_ylabel() == "cz\namplitude" and fig.axes[1].get_ylabel() == "|FFT| amplitude"
    finally:
        plt.close(fig)


def test_title_unit_label_and_window_mse():
    assert reconstruction_title("val", window=0, epoch=4, mse=0.1234) == "val split, window 0 | epoch 4 | MSE 0.123 " \
                                                                         "(standardised)"
    assert unit_label("uV") == " (µV)" and unit_label("mV") == " (mV)" and unit_label(None) == ""
    x, _ = signals()
    assert window_mse(x, x) == pytest.approx(0.0, abs=1e-12)
    assert window_mse(x, 3.0 * x + 5.0) == pytest.approx(0.0, abs=1e-12)  # standardised: scale and offset drop
