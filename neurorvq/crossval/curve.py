"""The pretraining curve: downstream score of an FM fine-tuned from checkpoints taken at several points of its
pretraining (0 = the from-scratch twin), on identical folds; ``neurorvq cv-report --curve 0=A 5=B 15=C``.

Each point is a ``neurorvq cv`` output folder. Its per-fold score is the mean over the chosen training seeds
(``seeds``; all by default), the interval a t-interval over folds (:mod:`neurorvq.crossval.stats`), and every point
beyond the first is also compared with the first fold by fold (paired difference and its interval): the number
that says whether more pretraining helped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from neurorvq.crossval.report import read_records
from neurorvq.crossval.stats import check_identical_folds, paired_difference, per_fold_means, record_seed, t_interval
from neurorvq.errors import ConfigError


def parse_point(text: str) -> tuple[float, Path]:
    """``"X=FOLDER"`` -> ``(x, folder)``: ``x`` the pretraining position (epochs or steps) of the run in FOLDER."""
    x, sep, folder = text.partition("=")
    try:
        value = float(x)
    except ValueError:
        value = None
    if not sep or not folder or value is None:
        raise ConfigError(f"curve point {text!r}: write X=FOLDER, X the pretraining epochs (or steps) of the FM "
                          "that FOLDER's cv run fine-tuned, e.g. 0=runs/cv/scratch 15=runs/cv/pretrained")
    return value, Path(folder)


def curve_points(points: Sequence[tuple[float, str | Path]], metric: str = "balanced_accuracy",
                 seeds: Sequence[int] | None = None, level: float = 0.95) -> list[dict[str, Any]]:
    """One entry per point, in the given order: ``{"x", "folder", "per_fold": {fold: score}, "mean", "ci",
    "seeds", "vs_first": paired difference with the first point or None}``. Every folder must hold the same
    folds (test subjects) and, when ``seeds`` is given, records of those seeds."""
    if len(points) < 2:
        raise ConfigError("a curve needs at least two points, e.g. 0=runs/cv/scratch 15=runs/cv/pretrained")
    wanted = None if seeds is None else {int(s) for s in seeds}
    loaded = []
    for x, folder in points:
        rows = [r for r in read_records(folder) if wanted is None or record_seed(r) in wanted]
        if not rows:
            raise ConfigError(f"curve point {x:g}: no finished cv record in {folder}"
                              + ("" if wanted is None else f" for seeds {sorted(wanted)}"))
        loaded.append((x, Path(folder), rows))
    first_x, first_folder, first_rows = loaded[0]
    out = []
    for x, folder, rows in loaded:
        check_identical_folds(first_rows, rows, (str(first_folder), str(folder)))
        scores = per_fold_means(rows, metric)
        if not scores:
            raise ConfigError(f"curve point {x:g}: the records in {folder} have no {metric!r}")
        mean, low, high = t_interval(list(scores.values()), level)
        paired = None if folder == first_folder else paired_difference(rows, first_rows, metric, level,
                                                                       (str(folder), str(first_folder)))
        out.append({"x": x, "folder": str(folder), "per_fold": scores, "mean": mean,
                    "ci": None if low is None else [low, high], "seeds": sorted({record_seed(r) for r in rows}),
                    "vs_first": paired})
    return out


def _interval(ci: Sequence[float] | None) -> str:
    return "—" if ci is None else f"{ci[0]:.3f} to {ci[1]:.3f}"


def curve_markdown(curve: Sequence[dict[str, Any]], metric: str = "balanced_accuracy", xlabel: str = "epochs") -> str:
    """A Markdown table: one row per point, the per-fold scores, the mean with its interval and the paired
    difference with the first point."""
    folds = sorted({fold for point in curve for fold in point["per_fold"]})
    head = f"| pretraining ({xlabel}) | " + " | ".join(f"fold {k}" for k in folds) + \
        f" | mean {metric} | 95% CI | minus {curve[0]['x']:g} {xlabel} (95% CI) | seeds |"
    lines = [head, "|---:|" + "---:|" * len(folds) + "---:|---|---|---|"]
    for point in curve:
        cells = [f"{point['per_fold'][k]:.3f}" if k in point["per_fold"] else "—" for k in folds]
        paired = point["vs_first"]
        versus = "—" if paired is None else f"{paired['mean_difference']:+.3f} ({_interval(paired['ci'])})"
        lines.append(f"| {point['x']:g} | " + " | ".join(cells) + f" | {point['mean']:.3f} | {_interval(point['ci'])}"
                     f" | {versus} | {','.join(map(str, point['seeds']))} |")
    lines.append("")
    lines.append("Per-fold scores are means over the listed training seeds; intervals are t-intervals over folds; the "
                 "last column is the paired per-fold difference with the first point.")
    return "\n".join(lines) + "\n"


def curve_figure(curve: Sequence[dict[str, Any]], path: str | Path, metric: str = "balanced_accuracy",
                 xlabel: str = "pretraining epochs", chance: float | None = None,
                 references: dict[str, float] | None = None) -> Path:
    """A small PNG: the mean with its 95% interval per point, each fold as a thin line, optional horizontal
    reference lines (``references``: label -> score, e.g. the best classical baseline) and chance."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = [point["x"] for point in curve]
    fig, ax = plt.subplots(figsize=(5.0, 3.4))
    for fold in sorted({fold for point in curve for fold in point["per_fold"]}):
        ax.plot(xs, [point["per_fold"].get(fold, float("nan")) for point in curve], color="0.75", lw=0.8,
                marker=".", zorder=1)
    means = [point["mean"] for point in curve]
    low = [m - point["ci"][0] if point["ci"] else 0.0 for m, point in zip(means, curve)]
    high = [point["ci"][1] - m if point["ci"] else 0.0 for m, point in zip(means, curve)]
    ax.errorbar(xs, means, yerr=[low, high], color="C0", lw=2, marker="o", capsize=3, zorder=3,
                label="mean over folds (95% CI)")
    for i, (label, value) in enumerate((references or {}).items()):
        ax.axhline(value, color=f"C{i + 1}", ls="--", lw=1, label=label)
    if chance is not None:
        ax.axhline(chance, color="k", ls=":", lw=1, label="chance")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(metric.replace("_", " "))
    ax.set_xticks(xs)
    ax.legend(fontsize=7, loc="best")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


__all__ = ["curve_figure", "curve_markdown", "curve_points", "parse_point"]
