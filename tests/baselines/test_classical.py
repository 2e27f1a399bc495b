"""Classical baselines (log band power, Riemannian tangent space) on small generated problems."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score

from neurorvq.baselines.classical import CLASSICAL_BASELINES, ClassicalBaseline, require_pyriemann
from neurorvq.errors import ConfigError, InputError

FS = 200.0
BANDS = {"theta": (4.0, 8.0), "alpha": (8.0, 13.0), "beta": (13.0, 30.0)}


def alpha_problem(n: int, seed: int, n_channels: int = 4, n_samples: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """Class 1 adds a 10 Hz sine (random phase, amplitude 1 uV) to channel 1; both classes have unit noise."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    x = rng.standard_normal((n, n_channels, n_samples))
    t = np.arange(n_samples) / FS
    phase = rng.uniform(0, 2 * np.pi, n)
    x[:, 1] += y[:, None] * np.sin(2 * np.pi * 10.0 * t[None] + phase[:, None])
    return x, y


def correlation_problem(n: int, seed: int, n_channels: int = 4, n_samples: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """Channels 0 and 1 correlate with rho = +0.8 (class 0) or -0.8 (class 1); every channel has unit variance."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    z = rng.standard_normal((n, n_channels, n_samples))
    x = z.copy()
    rho = np.where(y == 0, 0.8, -0.8)[:, None]
    x[:, 1] = rho * z[:, 0] + np.sqrt(1 - rho ** 2) * z[:, 1]
    return x, y


def held_out_score(model: ClassicalBaseline, x: np.ndarray, y: np.ndarray) -> float:
    return float(balanced_accuracy_score(y, model.predict_proba(x).argmax(axis=1)))


# ---------------------------------------------------------------------------------------- logpower
def test_logpower_separates_alpha_amplitude():
    x, y = alpha_problem(60, seed=0)
    x_test, y_test = alpha_problem(60, seed=1)
    model = ClassicalBaseline("logpower", FS, bands=BANDS).fit(x, y)
    assert model.features(x).shape == (60, 4 * len(BANDS))
    assert held_out_score(model, x_test, y_test) >= 0.95


def test_logpower_features_are_channel_major():
    x, _ = alpha_problem(8, seed=2)
    model = ClassicalBaseline("logpower", FS, bands=BANDS)
    before = model.features(x)
    boosted = x.copy()
    boosted[:, 2] += 5 * np.sin(2 * np.pi * 10.0 * np.arange(x.shape[-1]) / FS)
    after = model.features(boosted)
    n_bands = len(BANDS)
    changed = np.abs(after - before).max(axis=0) > 1e-9
    assert changed[2 * n_bands:3 * n_bands].any()
    assert not np.delete(changed, np.s_[2 * n_bands:3 * n_bands]).any()
    alpha = list(BANDS).index("alpha")
    assert (after - before)[:, 2 * n_bands + alpha].min() > 1.0  # log power of channel 2's alpha rises most


def test_logpower_bands_default_to_the_modality_spec():
    from neurorvq.registry import get_modality

    model = ClassicalBaseline("logpower", FS)
    assert list(model.bands) == [name for name, _, _ in get_modality("eeg").bands]
    x, _ = alpha_problem(3, seed=3)
    assert model.features(x).shape == (3, 4 * len(model.bands))


# ----------------------------------------------------------------------------------------- riemann
def test_riemann_separates_spatial_correlation_where_logpower_cannot():
    x, y = correlation_problem(60, seed=0)
    x_test, y_test = correlation_problem(60, seed=1)
    riemann = ClassicalBaseline("riemann", FS).fit(x, y)
    assert riemann.features(x).shape == (60, 4 * 5 // 2)
    assert held_out_score(riemann, x_test, y_test) >= 0.95
    logpower = ClassicalBaseline("logpower", FS, bands=BANDS).fit(x, y)
    assert held_out_score(logpower, x_test, y_test) < 0.8  # the problem really is spatial


# --------------------------------------------------------------------------------------- selection
@pytest.mark.parametrize("name", CLASSICAL_BASELINES)
def test_selection_keeps_best_validation_score_and_train_only_fit(name):
    x, y = (alpha_problem if name == "logpower" else correlation_problem)(40, seed=4)
    x_val, y_val = (alpha_problem if name == "logpower" else correlation_problem)(40, seed=5)
    grid = (1.0, 0.01, 0.1)
    model = ClassicalBaseline(name, FS, bands=BANDS, C_grid=grid).fit(x, y, x_val, y_val)
    scores = model.validation_scores
    assert set(scores) == set(grid)
    best = max(scores.values())
    assert model.selected_C == min(c for c, s in scores.items() if s == best)  # ties -> smaller C
    # the kept model is the training-only fit with the selected C
    alone = ClassicalBaseline(name, FS, bands=BANDS, C_grid=(model.selected_C,)).fit(x, y)
    np.testing.assert_allclose(model.predict_proba(x_val), alone.predict_proba(x_val))
    assert model.describe()["selected_C"] == model.selected_C


def test_selection_picks_a_strictly_better_setting():
    # one informative feature (channel 1 alpha) among many noise features, few training windows: heavy
    # regularisation hurts (C=1e-4 shrinks every weight towards zero)
    x, y = alpha_problem(30, seed=6, n_channels=6)
    x_val, y_val = alpha_problem(60, seed=7, n_channels=6)
    model = ClassicalBaseline("logpower", FS, bands=BANDS, C_grid=(1e-4, 1.0)).fit(x, y, x_val, y_val)
    assert model.validation_scores[1.0] > model.validation_scores[1e-4]
    assert model.selected_C == 1.0


def test_without_validation_the_middle_setting_is_used():
    x, y = alpha_problem(20, seed=8)
    model = ClassicalBaseline("logpower", FS, bands=BANDS, C_grid=(1.0, 0.01, 0.1)).fit(x, y)
    assert model.selected_C == 0.1
    assert model.validation_scores == {}


def test_more_than_three_settings_is_refused():
    with pytest.raises(ConfigError, match="at most 3"):
        ClassicalBaseline("logpower", FS, bands=BANDS, C_grid=(0.01, 0.1, 1.0, 10.0))


# ---------------------------------------------------------------------------------- probabilities
@pytest.mark.parametrize("name", CLASSICAL_BASELINES)
def test_predict_proba_has_num_classes_columns(name):
    x, y = alpha_problem(30, seed=9)
    y = np.where(y == 1, 3, 0)  # classes 1 and 2 never appear in training
    model = ClassicalBaseline(name, FS, bands=BANDS, num_classes=5).fit(x, y)
    proba = model.predict_proba(x[:7])
    assert proba.shape == (7, 5)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert np.all(proba[:, [1, 2, 4]] == 0)
    inferred = ClassicalBaseline(name, FS, bands=BANDS).fit(x, y)
    assert inferred.predict_proba(x[:7]).shape == (7, 4)  # max label + 1


@pytest.mark.parametrize("name", CLASSICAL_BASELINES)
def test_two_fits_give_identical_probabilities(name):
    x, y = (alpha_problem if name == "logpower" else correlation_problem)(30, seed=10)
    x_val, y_val = (alpha_problem if name == "logpower" else correlation_problem)(20, seed=11)
    first = ClassicalBaseline(name, FS, bands=BANDS, seed=3).fit(x, y, x_val, y_val).predict_proba(x_val)
    second = ClassicalBaseline(name, FS, bands=BANDS, seed=3).fit(x, y, x_val, y_val).predict_proba(x_val)
    np.testing.assert_array_equal(first, second)


def test_describe_reports_settings_and_versions():
    x, y = correlation_problem(20, seed=12)
    info = ClassicalBaseline("riemann", FS).fit(x, y, x, y).describe()
    assert info["name"] == "riemann"
    assert info["settings"]["covariance_estimator"] == "oas"
    assert set(info["validation_scores"]) == {0.01, 0.1, 1.0}
    assert info["versions"]["pyriemann"] and info["versions"]["sklearn"]


# ------------------------------------------------------------------------------------------ errors
def test_scm_with_fewer_samples_than_channels_names_the_fix():
    x = np.random.default_rng(0).standard_normal((10, 8, 5))
    model = ClassicalBaseline("riemann", FS, covariance_estimator="scm")
    with pytest.raises(InputError, match=r"C=8, T=5.*'oas'"):
        model.fit(x, np.arange(10) % 2)
    # the shrinkage default copes with the same windows
    assert ClassicalBaseline("riemann", FS).fit(x, np.arange(10) % 2).features(x).shape == (10, 36)


def test_singular_covariance_names_the_window_and_fix():
    x, y = correlation_problem(10, seed=13)
    x[4, 3] = x[4, 2]  # window 4 has a duplicated channel
    with pytest.raises(InputError, match=r"window 4.*not positive definite.*'oas'"):
        ClassicalBaseline("riemann", FS, covariance_estimator="scm").fit(x, y)


def test_nan_window_index_is_named():
    x, y = alpha_problem(10, seed=14)
    x[7, 2, 11] = np.nan
    with pytest.raises(InputError, match="window 7"):
        ClassicalBaseline("logpower", FS, bands=BANDS).fit(x, y)


def test_non_3d_input_is_refused():
    with pytest.raises(InputError, match="3-D"):
        ClassicalBaseline("logpower", FS, bands=BANDS).features(np.zeros((4, 100)))


def test_band_above_nyquist_names_band_and_rate():
    with pytest.raises(ConfigError, match=r"gamma.*120.*Nyquist.*200"):
        ClassicalBaseline("logpower", FS, bands={"gamma": (30.0, 120.0)})


def test_unknown_name_lists_valid_names():
    with pytest.raises(ConfigError, match="logpower, riemann"):
        ClassicalBaseline("csp", FS)


def test_single_training_class_is_refused():
    x, _ = alpha_problem(10, seed=15)
    with pytest.raises(InputError, match="single class"):
        ClassicalBaseline("logpower", FS, bands=BANDS).fit(x, np.ones(10, dtype=int))


def test_missing_pyriemann_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "pyriemann", None)  # makes `import pyriemann` raise ImportError
    with pytest.raises(ConfigError, match=r'neurorvq\[classical\]'):
        require_pyriemann()
    with pytest.raises(ConfigError, match=r'neurorvq\[classical\]'):
        ClassicalBaseline("riemann", FS)
    x, y = alpha_problem(20, seed=16)  # logpower does not need it
    model = ClassicalBaseline("logpower", FS, bands=BANDS).fit(x, y)
    assert model.describe()["versions"]["pyriemann"] is None
