"""Standardisation + L2 logistic regression on fixed features, with the regularisation chosen on a validation
part: the classifier of the classical baselines and of the linear probe on frozen foundation-model features."""

from __future__ import annotations

import math
import warnings
from typing import Any, Sequence

import numpy as np

from neurorvq.errors import ConfigError

MAX_SETTINGS = 3
"""Every model of a comparison gets at most this many settings chosen on validation subjects."""


def check_C_grid(C_grid: Sequence[float]) -> tuple[float, ...]:
    """1-3 positive inverse regularisation strengths, sorted ascending."""
    grid = tuple(float(c) for c in C_grid)
    if not 1 <= len(grid) <= MAX_SETTINGS:
        raise ConfigError(f"C_grid has {len(grid)} values {list(grid)}; give 1 to {MAX_SETTINGS} (the comparison "
                          f"gives every model at most {MAX_SETTINGS} settings)")
    if any(not math.isfinite(c) or c <= 0 for c in grid) or len(set(grid)) != len(grid):
        raise ConfigError(f"C_grid={list(grid)}: values must be distinct, finite and > 0")
    return tuple(sorted(grid))


class LogisticProbe:
    """``StandardScaler`` -> ``LogisticRegression`` (lbfgs) on features ``[N, F]``, ``C`` chosen on validation.

    Args:
        C_grid: 1-3 inverse regularisation strengths (sorted ascending).
        class_weight: ``LogisticRegression``'s: ``"balanced"`` reweights by the inverse class frequency of the
            training labels; a dict ``{class: weight}`` gives fixed weights (``neurorvq cv --protocol parity``
            passes inverse frequencies of the training + held-out labels); entries for classes absent from the
            training labels are left out of each fit (scikit-learn refuses them).
        seed: ``random_state``. num_classes: K, the number of probability columns.
    """

    def __init__(self, num_classes: int, C_grid: Sequence[float] = (0.01, 0.1, 1.0),
                 class_weight: str | dict | None = "balanced", seed: int = 0) -> None:
        self.num_classes = int(num_classes)
        self.C_grid = check_C_grid(C_grid)
        self.class_weight = class_weight
        self.seed = int(seed)
        self.selected_C: float | None = None
        self.validation_scores: dict[float, float] = {}
        self.classifier: Any = None

    def _weights_for(self, y_train: np.ndarray) -> str | dict | None:
        """``class_weight`` for a fit on ``y_train``: a dict restricted to the classes present there."""
        if not isinstance(self.class_weight, dict):
            return self.class_weight
        present = {int(c) for c in np.unique(y_train)}
        missing = sorted(present - {int(c) for c in self.class_weight})
        if missing:
            raise ConfigError(f"class_weight {self.class_weight} has no weight for the training classes {missing}; "
                              "give one per class")
        return {int(c): float(w) for c, w in self.class_weight.items() if int(c) in present}

    def _make(self, C: float, y_train: np.ndarray) -> Any:
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        return make_pipeline(StandardScaler(), LogisticRegression(
            C=C, class_weight=self._weights_for(y_train), solver="lbfgs", max_iter=1000, random_state=self.seed))

    def _proba(self, classifier: Any, features: np.ndarray) -> np.ndarray:
        proba = np.zeros((features.shape[0], self.num_classes), dtype=np.float64)
        proba[:, classifier.classes_] = classifier.predict_proba(features)
        return proba

    def fit(self, train: np.ndarray, y_train: np.ndarray, val: np.ndarray | None = None,
            y_val: np.ndarray | None = None) -> "LogisticProbe":
        """Fit every ``C`` on the training part; keep the one with the best balanced accuracy on the validation
        part (ties -> the smaller C, stronger regularisation); the kept model is that training-only fit. Without
        a validation part the middle value of the grid is used."""
        from sklearn.metrics import balanced_accuracy_score

        self.validation_scores = {}
        if val is None:
            self.selected_C = self.C_grid[(len(self.C_grid) - 1) // 2]
            self.classifier = self._make(self.selected_C, y_train).fit(train, y_train)
            return self
        best = -np.inf
        for C in self.C_grid:  # ascending: a strict ">" keeps the smaller C on ties
            classifier = self._make(C, y_train).fit(train, y_train)
            with warnings.catch_warnings():  # a class predicted but absent from y_val is fine here
                warnings.simplefilter("ignore", UserWarning)
                score = float(balanced_accuracy_score(y_val, self._proba(classifier, val).argmax(axis=1)))
            self.validation_scores[C] = score
            if score > best:
                best, self.classifier, self.selected_C = score, classifier, C
        return self

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        """``[N, num_classes]`` probabilities (classes absent from training get a column of zeros)."""
        if self.classifier is None:
            raise ConfigError("call fit() before predict_proba()")
        return self._proba(self.classifier, features)


__all__ = ["LogisticProbe", "MAX_SETTINGS", "check_C_grid"]
