"""Per-band reconstruction error on signals with known band content."""

from __future__ import annotations

import numpy as np
import pytest

from neurorvq.errors import ConfigError
from neurorvq.eval.bands import BandErrors, band_filter, format_table, standardize_per_sample
from neurorvq.registry import get_modality

FS = 200.0


def tones(*freqs_amps, seconds=8, channels=3, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * FS)) / FS
    x = np.zeros((2, channels, t.size))
    for f, a in freqs_amps:
        x += a * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi, (2, channels, 1)))
    return x


def test_error_lands_in_the_band_that_was_lost():
    x = tones((2.0, 30.0), (10.0, 20.0), (20.0, 10.0))  # delta, alpha, beta content
    rec = tones((2.0, 30.0), (10.0, 20.0))               # the beta tone is missing
    errors = BandErrors(get_modality("eeg").bands, FS)
    errors.update(x, rec)
    table = errors.table()
    assert list(table) == ["raw", "delta", "theta", "alpha", "beta", "gamma"]
    assert table["beta"] > 0.05 and table["beta"] > 10 * max(table["delta"], table["theta"], table["gamma"])
    # the alpha tone survived, but standardisation rescaled it a little: small, not zero
    assert table["alpha"] < 0.1 * table["beta"]
    assert table["raw"] > table["alpha"]


def test_perfect_reconstruction_scores_zero():
    x = tones((6.0, 5.0), (40.0, 3.0))
    errors = BandErrors(get_modality("eeg").bands, FS)
    errors.update(x, x.copy())
    assert all(v < 1e-20 for v in errors.table().values())


def test_band_filter_passes_its_band_only():
    x = tones((10.0, 1.0), (35.0, 1.0), channels=1)
    alpha = band_filter(x, 8.0, 13.0, FS)
    assert np.std(alpha[..., 200:-200]) == pytest.approx(np.sqrt(0.5), rel=0.1)  # the 10 Hz tone
    assert np.std(band_filter(x, 13.0, 30.0, FS)[..., 200:-200]) < 0.35
    with pytest.raises(ConfigError, match="not inside"):
        band_filter(x, 30.0, 120.0, FS)


def test_standardise_and_table_format():
    z = standardize_per_sample(tones((5.0, 50.0)) + 7)
    assert np.allclose(z.mean(axis=(1, 2)), 0, atol=1e-9)
    text = format_table({"raw": 0.5, "alpha": 0.25})
    assert "| raw | alpha |" in text and "| 0.5000 | 0.2500 |" in text


def test_per_patch_filtering_is_filtfilt_on_each_patch_row():
    from scipy.signal import butter, filtfilt

    x = tones((2.0, 30.0), (10.0, 20.0), seconds=3)
    b, a = butter(2, [0.5, 4.0], btype="bandpass", fs=FS)
    expected = filtfilt(b, a, x.reshape(2, 3, 3, 200)).reshape(x.shape)  # [batch, channel, patch, 200] rows
    assert np.allclose(band_filter(x, 0.5, 4.0, FS, patch_length=200), expected, rtol=0, atol=1e-12)
    # each patch alone: changing the next patch leaves the first one's filtered values unchanged
    y = x.copy()
    y[..., 200:] = 0.0
    assert np.array_equal(band_filter(y, 0.5, 4.0, FS, patch_length=200)[..., :200],
                          band_filter(x, 0.5, 4.0, FS, patch_length=200)[..., :200])
    # the continuous default is unchanged: one pass over the whole channel
    assert not np.allclose(band_filter(x, 0.5, 4.0, FS), expected, atol=1e-3)
    with pytest.raises(ConfigError, match="patch_length=160 does not divide the 600 samples"):
        band_filter(x, 0.5, 4.0, FS, patch_length=160)
    with pytest.raises(ConfigError, match="patch_length=12 samples is too short to filter per patch"):
        band_filter(x, 0.5, 4.0, FS, patch_length=12)


def test_per_window_errors_and_running_sums_agree_in_both_modes():
    from neurorvq.eval.bands import band_mse_per_window

    x = tones((2.0, 30.0), (10.0, 20.0), (20.0, 10.0))
    rec = tones((2.0, 30.0), (10.0, 20.0))
    bands = get_modality("eeg").bands
    for patch_length in (None, 200):
        per_window = band_mse_per_window(x, rec, bands, FS, patch_length)
        assert per_window["raw"].shape == (2,)
        errors = BandErrors(bands, FS, patch_length=patch_length)
        errors.update(x, rec)
        table = errors.table()
        assert {k: float(np.mean(v)) for k, v in per_window.items()} == pytest.approx(table, rel=1e-9)
        assert table["beta"] > 10 * table["theta"]
