"""Statistics of cross-validation records: per-fold means over training seeds, t-intervals, paired differences.

A record is one ``metrics.json`` of ``neurorvq cv`` (one fold trained with one seed): ``fold``, ``test_subjects``,
``metrics`` and, since training seeds exist, ``seed`` (a record without it is seed 0). The folds are the unit of
the intervals: the seeds of one fold share its test subjects, so they are averaged first (the per-fold mean) and
the interval is a Student t-interval over the per-fold means, ``mean ± t(0.5 + level/2, k - 1) · sd / √k`` with the
sample standard deviation (``ddof=1``) of the ``k`` per-fold means. One fold gives no interval (``None``).
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Sequence

import numpy as np

from neurorvq.errors import ConfigError


def record_seed(row: dict[str, Any]) -> int:
    """The training seed of a record; 0 for records written before training seeds existed."""
    seed = row.get("seed")
    return 0 if seed is None else int(seed)


def metric_value(row: dict[str, Any], metric: str) -> float | None:
    """The record's test value of ``metric``; ``None`` when absent, null or not finite."""
    value = row.get("metrics", {}).get(metric)
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def per_fold_means(rows: Iterable[dict[str, Any]], metric: str) -> dict[int, float]:
    """``{fold: mean of the metric over that fold's seeds}``, in fold order. Records without the metric (e.g. a
    single-class test fold's AUROC) or with a non-finite value are left out; a fold with no value is absent."""
    values: dict[int, list[float]] = {}
    for row in rows:
        value = metric_value(row, metric)
        if value is not None:
            values.setdefault(int(row["fold"]), []).append(value)
    return {fold: float(np.mean(values[fold])) for fold in sorted(values)}


def t_interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float | None, float | None]:
    """``(mean, low, high)``: the Student t-interval of the mean of ``values`` at ``level`` (two-sided), with the
    sample standard deviation (``ddof=1``). Fewer than two values give ``(mean, None, None)``."""
    data = np.asarray(list(values), dtype=np.float64)
    if data.size == 0:
        raise ValueError("t_interval needs at least one value")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level is {level}; use a value between 0 and 1, e.g. 0.95")
    mean = float(data.mean())
    if data.size < 2:
        return mean, None, None
    from scipy.stats import t

    half = float(t.ppf(0.5 + level / 2.0, data.size - 1)) * float(data.std(ddof=1)) / math.sqrt(data.size)
    return mean, mean - half, mean + half


def fold_subjects(rows: Iterable[dict[str, Any]], label: str = "run") -> dict[int, list[str]]:
    """``{fold: test subjects}`` of a run; its seeds of one fold must share the test subjects."""
    out: dict[int, list[str]] = {}
    for row in rows:
        fold, subjects = int(row["fold"]), [str(s) for s in row.get("test_subjects", [])]
        if fold in out and out[fold] != subjects:
            raise ConfigError(f"{label}: fold {fold} has records with different test subjects ({out[fold]} and "
                              f"{subjects}); its seeds must share one fold")
        out.setdefault(fold, subjects)
    return dict(sorted(out.items()))


def check_identical_folds(rows_a: Sequence[dict[str, Any]], rows_b: Sequence[dict[str, Any]],
                          names: tuple[str, str] = ("A", "B")) -> dict[int, list[str]]:
    """``{fold: test subjects}`` shared by both runs; :class:`ConfigError` naming the first fold (in index order)
    that one run lacks or whose test subjects differ."""
    a, b = fold_subjects(rows_a, names[0]), fold_subjects(rows_b, names[1])
    for fold in sorted(set(a) | set(b)):
        if fold not in b or fold not in a:
            has, lacks = (names[0], names[1]) if fold in a else (names[1], names[0])
            raise ConfigError(f"the runs' folds differ: fold {fold} is in {has} but not in {lacks}; a paired "
                              "comparison needs identical folds (run the second with --folds_file of the first)")
        if a[fold] != b[fold]:
            raise ConfigError(f"the runs' folds differ: fold {fold} tests {a[fold]} in {names[0]} but {b[fold]} in "
                              f"{names[1]}; a paired comparison needs identical folds (run the second with "
                              "--folds_file of the first)")
    return a


def paired_difference(rows_a: Sequence[dict[str, Any]], rows_b: Sequence[dict[str, Any]], metric: str,
                      level: float = 0.95, names: tuple[str, str] = ("A", "B")) -> dict[str, Any]:
    """Paired comparison of two runs on identical folds (same indices, same test subjects).

    Returns ``{"metric", "level", "n", "folds": [{"fold", "test_subjects", "a", "b", "difference", "seeds_a",
    "seeds_b"}], "mean_difference", "ci": [low, high] or None, "skipped": [folds without the metric in a run]}``;
    ``a``/``b`` are per-fold means over each run's seeds, ``difference = a - b``, the interval is the t-interval of
    the per-fold differences (``n`` folds)."""
    subjects = check_identical_folds(rows_a, rows_b, names)
    mean_a, mean_b = per_fold_means(rows_a, metric), per_fold_means(rows_b, metric)
    seeds = [{}, {}]
    for side, rows in enumerate((rows_a, rows_b)):
        for row in rows:
            if metric_value(row, metric) is not None:
                seeds[side].setdefault(int(row["fold"]), set()).add(record_seed(row))
    folds, skipped = [], []
    for fold, tested in subjects.items():
        if fold not in mean_a or fold not in mean_b:
            skipped.append(fold)
            continue
        folds.append({"fold": fold, "test_subjects": tested, "a": mean_a[fold], "b": mean_b[fold],
                      "difference": mean_a[fold] - mean_b[fold], "seeds_a": len(seeds[0][fold]),
                      "seeds_b": len(seeds[1][fold])})
    if not folds:
        raise ConfigError(f"no fold has {metric!r} in both runs ({names[0]}, {names[1]}); pick a metric both report")
    mean, low, high = t_interval([f["difference"] for f in folds], level)
    return {"metric": metric, "level": level, "n": len(folds), "folds": folds, "mean_difference": mean,
            "ci": None if low is None else [low, high], "skipped": skipped}


__all__ = ["check_identical_folds", "fold_subjects", "metric_value", "paired_difference", "per_fold_means",
           "record_seed", "t_interval"]
