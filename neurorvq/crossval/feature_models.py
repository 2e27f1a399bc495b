"""Models of ``neurorvq cv`` fitted on fixed features instead of trained by Lightning: the classical baselines
(``logpower``, ``riemann``: :mod:`neurorvq.baselines.classical`) and the **linear probe** — logistic regression
on frozen foundation-model features, the standard test of whether pretraining learned anything.

They see the same folds, the same windows and the same metrics (torchmetrics, :mod:`neurorvq.tasks.classification`)
as the deep models, and the same selection budget: their logistic regression's ``C`` is chosen among at most 3
values on each fold's validation groups (the training side), never on the test fold. Their class weights follow
the run's protocol (:mod:`neurorvq.crossval.protocol`): scikit-learn's ``"balanced"`` on the training labels
(``clean``), or the inverse frequencies of the training + held-out labels (``parity``, as the deep models get).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from neurorvq.data.splits import Fold
from neurorvq.data.windows import WindowDataset
from neurorvq.errors import ConfigError

CLASSICAL = ("logpower", "riemann")
PROBE = "linear_probe"
FEATURE_MODELS = (*CLASSICAL, PROBE)


def window_arrays(pool: WindowDataset) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(signals float32 [N, C, T], labels int64 [N], channel_ids int64 [C])`` of a single-montage pool."""
    sets = pool.channel_sets
    lengths = {s.num_samples for s in pool.sets}
    if len(sets) != 1 or len(lengths) != 1:
        raise ConfigError(f"the classical baselines and the linear probe read channels by position: the data must "
                          f"have one channel set and one window length, not {len(sets)} channel sets "
                          f"({sorted(len(s) for s in sets)} channels) and lengths {sorted(lengths)}; pick one "
                          "channel set in the recipe's data section")
    signals = np.concatenate([s.signals for s in pool.sets]).astype(np.float32, copy=False)
    return signals, pool.labels.astype(np.int64), np.asarray(sets[0], dtype=np.int64)


def score_probabilities(probabilities: np.ndarray, labels: np.ndarray, num_classes: int) -> dict[str, float]:
    """The deep models' test metrics (same torchmetrics objects, same names) from ``[N, K]`` probabilities."""
    from neurorvq.tasks.classification import classification_metrics

    metrics = classification_metrics(num_classes, "test/")
    probs, target = torch.as_tensor(probabilities, dtype=torch.float32), torch.as_tensor(labels, dtype=torch.long)
    out = {}
    for name, metric in metrics.items():
        metric.update(probs[:, 1] if name.endswith(("auroc", "auc_pr")) else probs, target)
        out[name.removeprefix("test/")] = float(metric.compute())
    return out


def _plain_weights(class_weight: str | dict | None) -> Any:
    """``class_weight`` as JSON (dict keys as strings)."""
    if isinstance(class_weight, dict):
        return {str(k): float(v) for k, v in class_weight.items()}
    return class_weight


class FrozenFeatures:
    """Features of a frozen FM for the linear probe: per-token features pooled by ``pooling`` (``mean`` = the
    official head's input; ``channel_concat`` = channel-aware), computed in batches without gradients.
    ``source``: where the FM's weights came from (its checkpoint), for the run's record."""

    def __init__(self, fm: Any, pooling: str, num_channels: int, batch_size: int = 64,
                 source: str | None = None) -> None:
        from neurorvq.models.pooling import build_pooling

        self.fm = fm.eval()
        self.source = None if source is None else str(source)
        self.pool = build_pooling(pooling, fm.feature_dim, num_channels)
        self.batch_size = int(batch_size)

    @torch.no_grad()
    def __call__(self, x: np.ndarray, channel_ids: np.ndarray) -> np.ndarray:
        ids = torch.as_tensor(channel_ids, dtype=torch.long)
        out = []
        for start in range(0, x.shape[0], self.batch_size):
            chunk = torch.as_tensor(x[start:start + self.batch_size])
            per_token, _ = self.fm.embed(chunk, ids)
            out.append(self.pool(per_token, ids).numpy())
        return np.concatenate(out) if out else np.zeros((0, self.pool.out_features), np.float32)


def fit_feature_model(kind: str, fold: Fold, x: np.ndarray, labels: np.ndarray, num_classes: int, seed: int,
                      spec: Any, probe_features: FrozenFeatures | None = None, channel_ids: np.ndarray | None = None,
                      pool_features: np.ndarray | None = None, C_grid: tuple[float, ...] = (0.01, 0.1, 1.0),
                      class_weight: str | dict[int, float] = "balanced") -> dict[str, Any]:
    """Fit ``kind`` on the fold's training windows (C chosen on its validation windows), test it, and measure its
    channel sensitivity. ``x [N, C, T]`` and ``labels [N]`` are the whole pool (the fold indexes them); for the
    probe, ``pool_features [N, F]`` are the frozen features of the whole pool (computed once for all folds) and
    ``probe_features`` computes those of the rolled test windows. ``class_weight``: the logistic regression's
    (``"balanced"``, or ``{class: weight}``: :func:`~neurorvq.crossval.protocol.sklearn_class_weight`). Returns
    ``{"metrics", "model", "channel_sensitivity"}``."""
    from neurorvq.crossval.sensitivity import array_sensitivity

    val = (x[fold.val], labels[fold.val]) if len(fold.val) else (None, None)
    if kind in CLASSICAL:
        from neurorvq.baselines.classical import ClassicalBaseline

        model = ClassicalBaseline(kind, spec.sampling_rate, bands={n: (lo, hi) for n, lo, hi in spec.bands} or None,
                                  C_grid=C_grid, class_weight=class_weight, seed=seed, num_classes=num_classes,
                                  modality=spec.name)
        model.fit(x[fold.train], labels[fold.train], *val)
        probabilities = model.predict_proba(x[fold.test])
        sensitivity = array_sensitivity(model.features, model.predict_features, x[fold.test])
        return {"metrics": score_probabilities(probabilities, labels[fold.test], num_classes), "model": model.describe(),
                "channel_sensitivity": sensitivity}
    if kind != PROBE or probe_features is None:
        raise ConfigError(f"unknown feature model {kind!r}; valid: {', '.join(FEATURE_MODELS)}")
    from neurorvq.baselines.logistic import LogisticProbe

    def features(windows: np.ndarray) -> np.ndarray:
        return probe_features(windows, channel_ids)

    if pool_features is None:
        pool_features = features(x)
    probe = LogisticProbe(num_classes, C_grid, class_weight=class_weight, seed=seed)
    probe.fit(pool_features[fold.train], labels[fold.train],
              pool_features[fold.val] if len(fold.val) else None, val[1])
    test_x = x[fold.test]
    probabilities = probe.predict_proba(pool_features[fold.test])
    sensitivity = array_sensitivity(features, lambda f: probe.predict_proba(f).argmax(1), test_x,
                                    computed=pool_features[fold.test])
    description = {"name": PROBE, "pooling": type(probe_features.pool).__name__, "selected_C": probe.selected_C,
                   "validation_scores": probe.validation_scores, "C_grid": list(probe.C_grid), "frozen": True,
                   "fm": probe_features.source, "class_weight": _plain_weights(class_weight)}
    return {"metrics": score_probabilities(probabilities, labels[fold.test], num_classes), "model": description,
            "channel_sensitivity": sensitivity}


__all__ = ["CLASSICAL", "FEATURE_MODELS", "FrozenFeatures", "PROBE", "fit_feature_model", "score_probabilities",
           "window_arrays"]
