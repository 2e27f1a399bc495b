"""Classical window classifiers: the first sanity check any deep biosignal model has to beat.

Two baselines, both ending in standardisation + (L2) logistic regression, both taking raw windows
``x [N, C, T]`` in the signal's unit (e.g. uV) at ``sampling_rate`` Hz:

``"logpower"``
    Per-channel log band power, the classical BCI/EEG feature (e.g. Pfurtscheller & Lopes da Silva 1999
    for the mu/beta rhythms; Blankertz et al. 2008 for its use before linear classifiers). The power
    spectral density is estimated with Welch's method (Hann window, ``nperseg = min(T, round(fs))``
    samples, i.e. about 1 Hz resolution for windows of at least a second, 50 % overlap), integrated over
    each band ``[lo, hi)`` Hz (rectangle rule) and logged: ``log(power + 1e-12)`` with power in unit^2.
    Features ``[N, C * n_bands]``, channel-major (all bands of channel 0, then channel 1, ...). Bands
    default to the modality spec's ``bands`` (``neurorvq.registry.get_modality(modality).bands``).

``"riemann"``
    Spatial covariance per window (pyriemann ``Covariances``, Ledoit-Wolf-type ``"oas"`` shrinkage by
    default so that short or rank-deficient windows still give a positive-definite matrix), mapped to the
    tangent space of the SPD manifold at the training set's Riemannian mean (pyriemann ``TangentSpace``,
    ``metric="riemann"``; Barachant et al. 2012, "Multiclass brain-computer interface classification by
    Riemannian geometry", IEEE TBME 59(4); Barachant et al. 2013, "Classification of covariance matrices
    using a Riemannian-based kernel for BCI applications", Neurocomputing 112). Features
    ``[N, C * (C + 1) / 2]`` (the upper triangle of the whitened log-map, off-diagonals scaled by sqrt 2).

Hyper-parameters: only the logistic regression's inverse regularisation ``C`` is tuned, over at most three
values (the comparison gives every model at most three settings). pyriemann is an optional dependency
(``pip install "neurorvq[classical]"``); ``"logpower"`` needs only numpy, scipy and scikit-learn.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any, Mapping, Sequence

import numpy as np

from neurorvq.baselines.logistic import LogisticProbe, check_C_grid
from neurorvq.errors import ConfigError, InputError

__all__ = ["CLASSICAL_BASELINES", "ClassicalBaseline", "require_pyriemann", "log_band_power"]

CLASSICAL_BASELINES: tuple[str, ...] = ("logpower", "riemann")
LOG_EPS = 1e-12  # [unit^2] keeps log finite for a flat channel without shifting any realistic power
_INSTALL_HINT = 'pip install "neurorvq[classical]"'


# ------------------------------------------------------------------------------------------- helpers
def require_pyriemann() -> ModuleType:
    """Import and return ``pyriemann``; raise :class:`ConfigError` naming the extra when it is missing."""
    try:
        return importlib.import_module("pyriemann")
    except ImportError as error:
        raise ConfigError(f"the 'riemann' classical baseline needs pyriemann, which could not be imported "
                          f"({error}); install it with {_INSTALL_HINT}, or use the 'logpower' baseline") from error


def _library_versions() -> dict[str, str | None]:
    import scipy
    import sklearn

    try:
        pyriemann_version = getattr(importlib.import_module("pyriemann"), "__version__", "unknown")
    except ImportError:
        pyriemann_version = None
    return {"numpy": np.__version__, "scipy": scipy.__version__, "sklearn": sklearn.__version__,
            "pyriemann": pyriemann_version}


def _check_windows(x: Any, what: str = "x") -> np.ndarray:
    """``x`` as float64 ``[N, C, T]``; InputError if it is not 3-D, empty or holds NaN/Inf."""
    array = np.asarray(x, dtype=np.float64)
    if array.ndim != 3:
        raise InputError(f"{what} has shape {array.shape}; give windows as a 3-D array [N windows, C channels, "
                         f"T samples]")
    if 0 in array.shape:
        raise InputError(f"{what} has shape {array.shape}; every dimension [N, C, T] must be >= 1")
    finite = np.isfinite(array).all(axis=(1, 2))
    if not finite.all():
        bad = np.flatnonzero(~finite)
        raise InputError(f"{what} window {int(bad[0])} holds NaN or Inf ({bad.size} bad window(s), first indices "
                         f"{bad[:5].tolist()}); drop or repair those windows before fitting/predicting")
    return array


def _check_labels(y: Any, n_windows: int, what: str = "y") -> np.ndarray:
    labels = np.asarray(y)
    if labels.ndim != 1 or labels.shape[0] != n_windows:
        raise InputError(f"{what} has shape {labels.shape}; give one integer label per window, shape [{n_windows}]")
    if labels.size and not np.all(np.equal(np.mod(labels, 1), 0)):
        raise InputError(f"{what} holds non-integer labels; give class indices 0..K-1")
    labels = labels.astype(np.int64)
    if labels.size and labels.min() < 0:
        raise InputError(f"{what} holds negative label {int(labels.min())}; give class indices 0..K-1")
    return labels


def _check_bands(bands: Mapping[str, Sequence[float]], sampling_rate: float) -> dict[str, tuple[float, float]]:
    if not bands:
        raise ConfigError("the 'logpower' baseline needs at least one frequency band, e.g. {'alpha': (8, 13)}")
    nyquist = sampling_rate / 2
    checked: dict[str, tuple[float, float]] = {}
    for band_name, edges in bands.items():
        low, high = (float(v) for v in edges)
        if high > nyquist:
            raise ConfigError(f"band {band_name}=({low}, {high}) Hz reaches above the Nyquist frequency "
                              f"{nyquist} Hz of sampling_rate={sampling_rate} Hz; lower the band's upper edge "
                              f"or give the right sampling rate")
        if not 0 <= low < high:
            raise ConfigError(f"band {band_name}=({low}, {high}) Hz: need 0 <= low < high")
        checked[str(band_name)] = (low, high)
    return checked


def log_band_power(x: np.ndarray, sampling_rate: float, bands: Mapping[str, tuple[float, float]]) -> np.ndarray:
    """Log band power per channel and band.

    Args:
        x: windows ``[N, C, T]`` in the signal's unit.
        sampling_rate: [Hz].
        bands: name -> ``(low, high)`` [Hz]; power is integrated over ``low <= f < high``.

    Returns:
        ``[N, C * n_bands]`` float64, channel-major: column ``c * n_bands + b`` is
        ``log(power of channel c in band b [unit^2] + 1e-12)``.
    """
    from scipy.signal import welch

    n_samples = x.shape[-1]
    nperseg = max(1, min(n_samples, int(round(sampling_rate))))
    freqs, psd = welch(x, fs=sampling_rate, nperseg=nperseg, axis=-1)  # psd [N, C, F] in unit^2/Hz
    df = freqs[1] - freqs[0] if freqs.size > 1 else sampling_rate
    powers = []
    for band_name, (low, high) in bands.items():
        in_band = (freqs >= low) & (freqs < high)
        if not in_band.any():
            raise InputError(f"band {band_name}=({low}, {high}) Hz holds no Welch frequency bin: windows of "
                             f"{n_samples} samples at {sampling_rate} Hz give a {df:.3g} Hz resolution; use "
                             f"longer windows or a wider band")
        powers.append(psd[..., in_band].sum(axis=-1) * df)
    power = np.stack(powers, axis=-1)  # [N, C, n_bands]
    return np.log(power + LOG_EPS).reshape(x.shape[0], -1)


# ---------------------------------------------------------------------------------------------- model
class ClassicalBaseline:
    """A log-band-power or Riemannian tangent-space window classifier (see the module docstring).

    Args:
        name: ``"logpower"`` or ``"riemann"``.
        sampling_rate: [Hz] of the windows.
        bands: name -> ``(low, high)`` [Hz] for ``"logpower"``; ``None`` takes ``modality``'s spec bands.
        C_grid: 1-3 inverse regularisation strengths of the logistic regression (sorted ascending).
        class_weight: passed to ``LogisticRegression`` (``"balanced"`` reweights classes by inverse frequency).
        seed: ``LogisticRegression(random_state=seed)``; with lbfgs the fit is deterministic anyway.
        covariance_estimator: pyriemann ``Covariances`` estimator for ``"riemann"`` (``"oas"``, ``"lwf"``,
            ``"scm"``, ...).
        num_classes: K, the number of probability columns; ``None`` infers ``max label + 1`` from the labels
            given to :meth:`fit` (training and validation).
        modality: registered modality whose ``bands`` are used when ``bands`` is None (default ``"eeg"``).
    """

    def __init__(self, name: str, sampling_rate: float, bands: Mapping[str, tuple[float, float]] | None = None,
                 C_grid: Sequence[float] = (0.01, 0.1, 1.0), class_weight: str | dict | None = "balanced",
                 seed: int = 0, covariance_estimator: str = "oas", num_classes: int | None = None,
                 modality: str = "eeg") -> None:
        key = name.lower() if isinstance(name, str) else name
        if key not in CLASSICAL_BASELINES:
            raise ConfigError(f"unknown classical baseline {name!r}; choose one of {', '.join(CLASSICAL_BASELINES)}")
        if not sampling_rate or float(sampling_rate) <= 0:
            raise ConfigError(f"sampling_rate={sampling_rate}; give the windows' rate in Hz, > 0")
        if num_classes is not None and int(num_classes) < 2:
            raise ConfigError(f"num_classes={num_classes}; a classifier needs at least 2 classes")
        self.name: str = key
        self.sampling_rate = float(sampling_rate)
        self.C_grid = check_C_grid(C_grid)
        self.class_weight = class_weight
        self.seed = int(seed)
        self.covariance_estimator = str(covariance_estimator)
        self._requested_num_classes = None if num_classes is None else int(num_classes)
        self.num_classes = self._requested_num_classes
        self.modality = modality
        self.bands: dict[str, tuple[float, float]] | None = None
        if key == "logpower":
            self.bands = _check_bands(self._default_bands() if bands is None else bands, self.sampling_rate)
        else:
            require_pyriemann()  # fail at construction, not after loading the data
        self.selected_C: float | None = None
        self.validation_scores: dict[float, float] = {}
        self._tangent_space: Any = None
        self._classifier: Any = None
        self._n_channels: int | None = None

    def _default_bands(self) -> dict[str, tuple[float, float]]:
        from neurorvq.registry import get_modality

        spec = get_modality(self.modality)
        if not spec.bands:
            raise ConfigError(f"modality '{spec.name}' defines no bands; pass bands={{name: (low, high)}} in Hz")
        return {band_name: (low, high) for band_name, low, high in spec.bands}

    # -------------------------------------------------------------------------------- features
    def _covariances(self, x: np.ndarray) -> np.ndarray:
        """``[N, C, C]`` covariances of ``x [N, C, T]``; InputError when one is not positive definite."""
        n_channels, n_samples = x.shape[1:]
        if self.covariance_estimator == "scm" and n_samples < n_channels:
            raise InputError(f"windows of shape [C={n_channels}, T={n_samples}] have fewer samples than channels, "
                             f"so the sample covariance ('scm') is singular; use a shrinkage estimator "
                             f"(covariance_estimator='oas' or 'lwf') or windows of at least {n_channels} samples")
        from pyriemann.estimation import Covariances

        try:
            covs = Covariances(estimator=self.covariance_estimator).transform(x)
        except ValueError as error:
            raise ConfigError(f"covariance_estimator={self.covariance_estimator!r} failed: {error}") from error
        eigenvalues = np.linalg.eigvalsh(covs)  # ascending, [N, C]
        tolerance = eigenvalues[:, -1:] * n_channels * np.finfo(np.float64).eps
        singular = ~(eigenvalues[:, :1] > np.maximum(tolerance, 0)).ravel()
        if singular.any():
            first = int(np.flatnonzero(singular)[0])
            raise InputError(f"the covariance of window {first} (shape [C={n_channels}, T={n_samples}]) is not "
                             f"positive definite ({int(singular.sum())} such window(s)): a flat or duplicated "
                             f"channel, or too few samples; use a shrinkage estimator (covariance_estimator='oas' "
                             f"or 'lwf'), drop the redundant channel, or use longer windows")
        return covs

    def _tangent_features(self, covs: np.ndarray, fit: bool) -> np.ndarray:
        try:
            if fit:
                from pyriemann.tangentspace import TangentSpace

                self._tangent_space = TangentSpace(metric="riemann").fit(covs)
            return self._tangent_space.transform(covs)
        except (ValueError, np.linalg.LinAlgError) as error:
            raise InputError(f"the tangent-space map failed ({error}); the covariances must be positive definite: "
                             f"use a shrinkage estimator (covariance_estimator='oas' or 'lwf') or longer "
                             f"windows") from error

    def _compute_features(self, x: np.ndarray, fit: bool) -> np.ndarray:
        if self.name == "logpower":
            return log_band_power(x, self.sampling_rate, self.bands)
        return self._tangent_features(self._covariances(x), fit)

    def features(self, x: np.ndarray) -> np.ndarray:
        """The features that enter the classifier, *before* standardisation.

        Args:
            x: windows ``[N, C, T]`` in the signal's unit.

        Returns:
            ``[N, F]`` float64: log band powers ``F = C * n_bands`` (channel-major) for ``"logpower"``;
            tangent vectors ``F = C * (C + 1) / 2`` at the training mean for ``"riemann"`` (needs :meth:`fit`).
        """
        x = self._check_input(x, "x")
        if self.name == "riemann" and self._tangent_space is None:
            raise ConfigError("the 'riemann' features need the training set's reference point: call fit() first")
        return self._compute_features(x, fit=False)

    def _check_input(self, x: Any, what: str) -> np.ndarray:
        array = _check_windows(x, what)
        if self._n_channels is not None and array.shape[1] != self._n_channels:
            raise InputError(f"{what} has {array.shape[1]} channels but the model was fitted on {self._n_channels}; "
                             f"give windows with the training channels in the training order")
        return array

    # ------------------------------------------------------------------------------------- fitting
    def _resolve_num_classes(self, *label_sets: np.ndarray) -> None:
        top = max(int(labels.max()) for labels in label_sets if labels.size)
        self.num_classes = self._requested_num_classes
        if self.num_classes is None:
            self.num_classes = top + 1
        elif top >= self.num_classes:
            raise InputError(f"label {top} is out of range for num_classes={self.num_classes}; labels must be "
                             f"0..{self.num_classes - 1}")

    def fit(self, x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray | None = None,
            y_val: np.ndarray | None = None) -> "ClassicalBaseline":
        """Fit the feature transform and the classifier.

        Args:
            x_train: windows ``[N, C, T]`` float in the signal's unit; y_train ``[N]`` int class indices.
            x_val, y_val: optional validation part, same layout (``T`` may differ).

        Every value of ``C_grid`` is fitted on the training part. With a validation part, the value with the
        best balanced accuracy on it is kept (ties -> the smaller C, i.e. stronger regularisation); the kept
        model *is* the training-only fit with that C (the validation part is used for selection only, never
        refitted on). Without one, the middle value of the sorted grid is used (the smaller of two).
        The covariance reference point and the standardisation are fitted on the training part only.
        Records ``selected_C`` and ``validation_scores`` ``{C: balanced accuracy}`` (empty without validation).
        """
        if (x_val is None) != (y_val is None):
            raise ConfigError("give both x_val and y_val, or neither")
        self._n_channels = None
        x_train = self._check_input(x_train, "x_train")
        y_train = _check_labels(y_train, x_train.shape[0], "y_train")
        if np.unique(y_train).size < 2:
            raise InputError(f"y_train holds a single class ({np.unique(y_train).tolist()}); a classifier needs "
                             f"training windows of at least 2 classes")
        self._n_channels = x_train.shape[1]
        label_sets = [y_train]
        if x_val is not None:
            x_val = self._check_input(x_val, "x_val")
            y_val = _check_labels(y_val, x_val.shape[0], "y_val")
            label_sets.append(y_val)
        self._resolve_num_classes(*label_sets)

        train_features = self._compute_features(x_train, fit=True)
        val_features = None if x_val is None else self._compute_features(x_val, fit=False)
        probe = LogisticProbe(self.num_classes, self.C_grid, self.class_weight, self.seed)
        probe.fit(train_features, y_train, val_features, y_val)
        self._classifier, self.selected_C, self.validation_scores = probe, probe.selected_C, probe.validation_scores
        return self

    # ---------------------------------------------------------------------------------- inference
    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities ``[N, num_classes]`` for windows ``x [N, C, T]``, columns in class order
        0..K-1; a class absent from the training labels gets a column of zeros. Rows sum to 1."""
        if self._classifier is None:
            raise ConfigError("call fit() before predict_proba()")
        return self._classifier.predict_proba(self.features(x))

    def predict_features(self, features: np.ndarray) -> np.ndarray:
        """Predicted classes ``[N]`` from :meth:`features` ``[N, F]`` (the logistic regression alone)."""
        if self._classifier is None:
            raise ConfigError("call fit() before predict_features()")
        return self._classifier.predict_proba(features).argmax(axis=1)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Predicted class indices ``[N]`` (argmax of :meth:`predict_proba`)."""
        return self.predict_proba(x).argmax(axis=1)

    def describe(self) -> dict[str, Any]:
        """Plain-data summary for reports: name, settings, selected C, validation scores, library versions."""
        settings: dict[str, Any] = {"sampling_rate": self.sampling_rate, "C_grid": list(self.C_grid),
                                    "class_weight": self.class_weight, "seed": self.seed,
                                    "num_classes": self.num_classes, "solver": "lbfgs", "max_iter": 1000,
                                    "standardise": True}
        if self.name == "logpower":
            settings.update(bands={k: list(v) for k, v in self.bands.items()}, psd="welch (hann, nperseg=min(T, fs))",
                            features="log(band power [unit^2] + 1e-12), channel-major [C * n_bands]")
        else:
            settings.update(covariance_estimator=self.covariance_estimator, tangent_space_metric="riemann",
                            features="tangent vectors [C * (C + 1) / 2] at the training Riemannian mean")
        return {"name": self.name, "settings": settings, "selected_C": self.selected_C,
                "validation_scores": dict(self.validation_scores), "versions": _library_versions()}
