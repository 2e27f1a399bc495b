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
