"""Cross-validation tables: per-fold metrics and mean ± std, as CSV and Markdown.

Layout of the paper's downstream table (method.md §7.3): one row per model, one ``mean±std`` cell per metric
(the paper reports balanced accuracy). The std is the population standard deviation over folds
(``numpy.std``, ``ddof=0``); each summary also gives the number of folds.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from neurorvq.errors import ConfigError
from neurorvq.tasks.classification import METRIC_NAMES

METRIC_TITLES = {"balanced_accuracy": "balanced accuracy", "cohen_kappa": "Cohen's kappa",
                 "f1_weighted": "weighted F1", "auroc": "AUROC", "auc_pr": "AUC-PR"}
SUMMARY_FILE = "summary.json"


def metric_columns(rows: Sequence[dict[str, Any]]) -> list[str]:
    """The metrics of :data:`METRIC_NAMES` present in any row, in table order."""
    return [m for m in METRIC_NAMES if any(m in row.get("metrics", {}) for row in rows)]


def summarise(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """``{metric: {"mean", "std", "folds"}}`` over the folds' test metrics (a fold without a metric, e.g. a
    single-class test fold's AUROC, is left out of that metric's mean)."""
    out = {}
    for name in metric_columns(rows):
        values = np.asarray([row["metrics"][name] for row in rows if name in row["metrics"]], dtype=np.float64)
        values = values[np.isfinite(values)]
        if values.size:
            out[name] = {"mean": float(values.mean()), "std": float(values.std()), "folds": int(values.size)}
    return out


def cell(stats: dict[str, float] | None) -> str:
    return "—" if not stats else f"{stats['mean']:.3f}±{stats['std']:.3f}"


def write_fold_csv(rows: Sequence[dict[str, Any]], path: Path) -> Path:
    """One line per fold: index, test subjects, window counts, the selected epoch, then the test metrics."""
    metrics = metric_columns(rows)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["fold", "test_subjects", "val_subjects", "train_windows", "val_windows", "test_windows",
                         "selected_epoch", "wall_seconds", *metrics])
        for row in rows:
            writer.writerow([row["fold"], " ".join(map(str, row["test_subjects"])),
                             " ".join(map(str, row["val_subjects"])), row["windows"]["train"],
                             row["windows"]["val"], row["windows"]["test"], row.get("selected_epoch", ""),
                             f"{row.get('wall_seconds', 0):.1f}",
                             *[f"{row['metrics'][m]:.6f}" if m in row["metrics"] else "" for m in metrics]])
    return path


def write_summary(rows: Sequence[dict[str, Any]], out: Path, name: str, task: str) -> dict[str, Any]:
    """``metrics_per_fold.csv``, ``summary.csv``, ``summary.md`` and ``summary.json`` in ``out``."""
    stats = summarise(rows)
    write_fold_csv(rows, out / "metrics_per_fold.csv")
    with open(out / "summary.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["model", "task", "metric", "mean", "std", "folds"])
        for metric, s in stats.items():
            writer.writerow([name, task, metric, f"{s['mean']:.6f}", f"{s['std']:.6f}", s["folds"]])
    summary = {"name": name, "task": task, "folds": len(rows), "metrics": stats}
    (out / SUMMARY_FILE).write_text(json.dumps(summary, indent=1) + "\n")
    (out / "summary.md").write_text(markdown_table([summary]) + "\n\n" + fold_table(rows) + "\n")
    return summary


def markdown_table(summaries: Sequence[dict[str, Any]]) -> str:
    """Rows = models, columns = metrics (``mean±std`` over folds), as the paper's downstream table."""
    metrics = [m for m in METRIC_NAMES if any(m in s["metrics"] for s in summaries)]
    lines = ["| model | task | folds | " + " | ".join(METRIC_TITLES[m] for m in metrics) + " |",
             "|---|---|---|" + "---|" * len(metrics)]
    for s in summaries:
        lines.append(f"| {s['name']} | {s['task']} | {s['folds']} | "
                     + " | ".join(cell(s["metrics"].get(m)) for m in metrics) + " |")
    return "\n".join(lines)


def fold_table(rows: Sequence[dict[str, Any]]) -> str:
    """Per-fold Markdown table (test subjects, windows, test metrics)."""
    metrics = metric_columns(rows)
    lines = ["| fold | test subjects | train/val/test windows | " + " | ".join(METRIC_TITLES[m] for m in metrics) + " |",
             "|---|---|---|" + "---|" * len(metrics)]
    for row in rows:
        w = row["windows"]
        lines.append(f"| {row['fold']} | {', '.join(map(str, row['test_subjects']))} | "
                     f"{w['train']}/{w['val']}/{w['test']} | "
                     + " | ".join(f"{row['metrics'][m]:.3f}" if m in row["metrics"] else "—" for m in metrics) + " |")
    return "\n".join(lines)


def combine(folders: Sequence[str | Path]) -> str:
    """One Markdown table of several ``neurorvq cv`` output folders; warns in the text when their folds differ."""
    summaries, folds = [], {}
    for folder in map(Path, folders):
        path = folder / SUMMARY_FILE
        if not path.is_file():
            raise ConfigError(f"'{folder}' holds no {SUMMARY_FILE}: pass folders written by a finished neurorvq cv run")
        summaries.append(json.loads(path.read_text()))
        fold_file = folder / "folds.json"
        if fold_file.is_file():
            folds[str(folder)] = [(f["train_subjects"], f["val_subjects"], f["test_subjects"])
                                  for f in json.loads(fold_file.read_text())["folds"]]
    table = markdown_table(summaries)
    if len({json.dumps(v) for v in folds.values()}) > 1:
        table += "\n\nNote: these runs did not use identical folds."
    return table


__all__ = ["METRIC_TITLES", "combine", "fold_table", "markdown_table", "summarise", "write_summary"]
