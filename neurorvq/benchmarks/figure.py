"""The benchmark figure: grouped bars per task (and Mean), one bar per model with its std as an error bar; one panel
for balanced accuracy (with the published NeuroRVQ, hatched and labelled "(published)") and one for accuracy when
any run has it."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from neurorvq.benchmarks.report import METRIC_TITLES, METRICS, ModelResults, mean_cell
from neurorvq.benchmarks.tables import Table

MARKED = "NeuroRVQ"
"""The published model drawn beside ours."""


def _bars(table: Table, results: Sequence[ModelResults], metric: str) -> list[tuple[ModelResults, list, list]]:
    """``(model, means, stds)`` per drawn model: ours and the baselines with a score of ``metric``, and the published
    :data:`MARKED` model of that metric; NaN where a task has no score."""
    from neurorvq.benchmarks.published import published_mean

    keys = [r.key for r in table.rows]
    drawn = []
    for result in results:
        cells = result.cells.get(metric) or {}
        if result.published:
            model = result.model
            if model.model != MARKED or not cells:
                continue
            mean = published_mean(model, keys)
        elif not cells:
            continue
        else:
            mean = mean_cell(cells, keys)
        scores = [cells.get(k) for k in keys] + [mean]
        drawn.append((result, [np.nan if s is None else s.mean for s in scores],
                      [0.0 if s is None or s.std is None else s.std for s in scores]))
    return drawn


def table_figure(table: Table, results: Sequence[ModelResults]):
    """A matplotlib figure (Agg): one panel per metric with scores, grouped bars (x = tasks + Mean, one bar per
    model, error bar = the std of the table)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    panels = [(m, bars) for m in METRICS if (bars := _bars(table, results, m))]
    fig, axes = plt.subplots(len(panels) or 1, 1, figsize=(max(6.0, 1.6 * (len(table.rows) + 1)) + 3.0,
                                                            3.4 * max(len(panels), 1)), squeeze=False)
    columns = [r.column for r in table.rows] + ["Mean"]
    position = np.arange(len(columns))
    for ax, (metric, bars) in zip(axes[:, 0], panels):
        width = 0.8 / len(bars)
        for i, (result, means, stds) in enumerate(bars):
            offset = (i - (len(bars) - 1) / 2) * width
            ax.bar(position + offset, means, width, yerr=stds, capsize=2, label=result.label,
                   hatch="//" if result.published else None, edgecolor="black" if result.published else None,
                   alpha=0.6 if result.published else 1.0)
        ax.set_xticks(position, columns)
        ax.set_ylabel(metric.replace("_", " "))
        ax.set_ylim(0.0, 1.05)
        ax.set_title(METRIC_TITLES[metric] + ": mean ± std over folds (over seeds for a one-split task)", fontsize=9)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    if not panels:
        axes[0, 0].text(0.5, 0.5, "no finished runs yet", ha="center", va="center")
        axes[0, 0].set_axis_off()
    fig.suptitle(table.title, fontsize=10)
    fig.tight_layout()
    return fig


def save_table_figure(table: Table, results: Sequence[ModelResults], path: str | Path, dpi: int = 110) -> Path:
    """:func:`table_figure` saved as ``path`` (PNG); the figure is closed."""
    import matplotlib.pyplot as plt

    fig = table_figure(table, results)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


__all__ = ["MARKED", "save_table_figure", "table_figure"]
