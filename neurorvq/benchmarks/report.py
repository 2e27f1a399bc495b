"""A benchmark table in the paper's layout: Markdown (``table.md``), long CSV (``table.csv``) and a figure
(``table.png``, :mod:`neurorvq.benchmarks.figure`) in ``<out>/<table>/``.

Rows = models: ours, the baselines, then the published models labelled "(published)"; columns = the table's tasks
and Mean. Two tables: balanced accuracy first (what the paper reports), then accuracy (what the benchmark's own
script logs); published models appear in the table of their metric. A cell is ``mean ± std``: for our runs the mean
and the **population** std (``ddof=0``) over the per-fold scores, a fold's score being its mean over the training
seeds (:func:`~neurorvq.crossval.stats.per_fold_means`); a run that covers fewer folds than its split gets
``(k of n folds)``. A row with one published split (a parts split or the dataset's own, run as one fold) has no
spread over folds: its cell reads ``0.812 (1 split)``, or with several ``--seeds`` ``0.812 ± 0.010 (1 split, ± over
3 seeds)``, the ± then being the population std over the training seeds. Mean = the mean of the task means ± the
mean of the task stds (the published table's convention), shown when every task has a score; the ± is left out when
the rows' ± are not all of one kind (folds or seeds). Rows marked "(undetermined)" and the rows' protocol notes
are spelled out under the tables. The results are read from every row's folder of the call's models,
so rows run by earlier calls into the same ``--out`` are in the table too.

``table.csv`` (long format): ``table, row, model, metric, mean, std, spread, folds, seeds, source`` with ``spread``
what the std is over (``folds`` or ``seeds``; empty without a std), ``source`` ``ours`` or ``published`` and ``row``
``mean`` for the Mean column.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from neurorvq.benchmarks.published import PublishedModel, Score, published_mean
from neurorvq.benchmarks.tables import Table
from neurorvq.errors import ConfigError

METRICS = ("balanced_accuracy", "accuracy")
"""The two tables, in order."""
METRIC_TITLES = {"balanced_accuracy": "Balanced accuracy (what the paper reports)",
                 "accuracy": "Accuracy (what the benchmark script logs)", "mse": "Raw-signal MSE"}
MISSING = "—"
FILES = {"markdown": "table.md", "csv": "table.csv", "figure": "table.png"}


@dataclass
class Cell:
    """One model's score on one task: ``mean`` and population ``std`` over ``folds`` per-fold scores (each the
    mean over ``seeds``), of a split with ``expected_folds`` folds, under ``protocol``. ``spread``: what ``std``
    is over, ``"folds"``, or ``"seeds"`` for a one-split row run with several seeds (``std`` ``None`` with one)."""

    mean: float
    std: float | None
    folds: int
    seeds: list[int] = field(default_factory=list)
    protocol: str | None = None
    expected_folds: int | None = None
    spread: str = "folds"

    @property
    def one_split(self) -> bool:
        return self.expected_folds == 1

    def text(self) -> str:
        body = f"{self.mean:.3f}" + ("" if self.std is None else f" ± {self.std:.3f}")
        if self.one_split:
            body += f" (1 split, ± over {len(self.seeds)} seeds)" if self.std is not None else " (1 split)"
        elif self.expected_folds is not None and self.folds < self.expected_folds:
            body += f" ({self.folds} of {self.expected_folds} folds)"
        return body


@dataclass
class ModelResults:
    """A model's cells: ``cells[metric][row key]``; ``published``: a published model's row (``model``: it)."""

    label: str
    cells: dict[str, dict[str, Cell | Score]]
    published: bool = False
    model: PublishedModel | None = None


def run_cells(folder: Path, expected_folds: int | None) -> dict[str, Cell]:
    """``{metric: Cell}`` of a ``neurorvq cv`` output folder (empty when it holds no finished fold)."""
    from neurorvq.crossval.report import read_records
    from neurorvq.crossval.stats import per_fold_means, record_seed

    records = read_records(folder) if folder.is_dir() else []
    if not records:
        return {}
    identity = folder / "cv.json"
    protocol = json.loads(identity.read_text()).get("protocol", "clean") if identity.is_file() else None
    seeds = sorted({record_seed(r) for r in records})
    cells = {}
    for metric in METRICS:
        scores = list(per_fold_means(records, metric).values())
        if not scores:
            continue
        values = np.asarray(scores, dtype=np.float64)
        if expected_folds == 1:  # one split: no spread over folds; the spread over seeds when there are several
            per_seed = np.asarray([r["metrics"][metric] for r in records if metric in r.get("metrics", {})],
                                  dtype=np.float64)
            std = float(per_seed.std()) if len(seeds) > 1 else None
            cells[metric] = Cell(float(values.mean()), std, len(scores), seeds, protocol, expected_folds, "seeds")
        else:
            cells[metric] = Cell(float(values.mean()), float(values.std()), len(scores), seeds, protocol,
                                 expected_folds)
    return cells


def _expected_folds(table: Table, key: str) -> int | None:
    from neurorvq.benchmarks.tables import split_folds

    row = table.row(key)
    if row.split is None:
        return None
    try:
        return split_folds(table, row)
    except ConfigError:
        return None


def collect(table: Table, entries: Sequence[Any], out: Path) -> list[ModelResults]:
    """Our models' cells (every row's folder ``<out>/<table>/<row>/<slug>``), then the published models'."""
    expected = {row.key: _expected_folds(table, row.key) for row in table.rows}
    results = []
    for entry in entries:
        cells: dict[str, dict[str, Cell | Score]] = {m: {} for m in METRICS}
        for row in table.rows:
            for metric, cell in run_cells(out / table.key / row.key / entry.slug, expected[row.key]).items():
                cells[metric][row.key] = cell
        results.append(ModelResults(entry.label, cells))
    for model in table.published:
        results.append(ModelResults(model.label, {model.metric: {k: s for k, s in model.scores.items() if s}},
                                    published=True, model=model))
    return results


def mean_cell(cells: dict[str, Cell | Score], rows: Sequence[str]) -> Score | None:
    """Mean of the task means ± mean of the task stds, when every row has a score (the ± only when every row has
    one, all over folds or all over seeds)."""
    if not rows or any(r not in cells for r in rows):
        return None
    stds = [cells[r].std for r in rows]
    spreads = {getattr(cells[r], "spread", "folds") for r in rows}
    return Score(float(np.mean([cells[r].mean for r in rows])),
                 None if any(s is None for s in stds) or len(spreads) > 1 else float(np.mean(stds)))


def _cell_text(cell: Cell | Score | None, protocol: str) -> str:
    if cell is None:
        return MISSING
    text = cell.text()
    if isinstance(cell, Cell) and cell.protocol is not None and cell.protocol != protocol:
        text += f" [{cell.protocol}]"
    return text


def _escape(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def metric_table(table: Table, results: Sequence[ModelResults], metric: str, protocol: str) -> str:
    """One Markdown table: rows = the models with a score of ``metric`` (ours first, published last), columns =
    the tasks and Mean."""
    keys = [r.key for r in table.rows]
    head = ["model", *[_escape(r.column) for r in table.rows], "Mean"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for result in results:
        cells = result.cells.get(metric)
        if result.published and cells is None:
            continue
        cells = cells or {}
        if result.published:
            mean = published_mean(result.model, keys)
        else:
            mean = mean_cell(cells, keys)
        mean_text = _cell_text(mean, protocol) if result.published or mean is None else mean.text(digits=3)
        lines.append("| " + " | ".join([_escape(result.label), *[_cell_text(cells.get(k), protocol) for k in keys],
                                         mean_text]) + " |")
    return "\n".join(lines)


def _folds_text(table: Table, results: Sequence[ModelResults]) -> str:
    counts = {}
    for result in results:
        if result.published:
            continue
        for cells in result.cells.values():
            for key, cell in cells.items():
                counts.setdefault(key, set()).add(cell.folds)
    if not counts:
        return "no finished runs yet"
    expected = {r.key: _expected_folds(table, r.key) for r in table.rows}
    return ", ".join(f"{table.row(k).task} " + ("1 split" if expected[k] == 1 else '/'.join(map(str, sorted(v))))
                     for k, v in sorted(counts.items(), key=lambda kv: [r.key for r in table.rows].index(kv[0])))


def _seeds_text(results: Sequence[ModelResults]) -> str:
    seeds = sorted({s for r in results if not r.published for cells in r.cells.values() for c in cells.values()
                    for s in c.seeds})
    return ", ".join(map(str, seeds)) if seeds else "none yet"


def footer(table: Table, results: Sequence[ModelResults], protocol: str) -> str:
    """What the cells mean: the std convention, folds, seeds, protocol, the Mean column, the published numbers."""
    from neurorvq.crossval.protocol import PARITY

    balanced = [r.task for r in table.rows if r.balance_per_subject]
    undersampling = ("training windows undersampled per subject" if len(balanced) == len(table.rows) else
                     "no per-subject undersampling of the training windows" if not balanced else
                     f"training windows undersampled per subject for {', '.join(balanced)}")
    described = ("parity: the published benchmark's protocol: no validation part, the last epoch is tested, class "
                 f"weights from the training + held-out labels, {undersampling}" if protocol == PARITY else
                 "clean: validation subjects drawn from each fold's training side select the checkpoint, class "
                 "weights from the training labels")
    lines = [f"Ours and the baselines: mean ± std over the folds of each task's official split; std = population "
             f"standard deviation (ddof 0) over the per-fold scores, a fold's score being its mean over the training "
             f"seeds. Folds per task: {_folds_text(table, results)}; training seeds: {_seeds_text(results)}; "
             f"protocol {described}."]
    single = [r.task for r in table.rows if _expected_folds(table, r.key) == 1]
    if single:
        lines.append(f"{', '.join(single)}: one published split (train/test parts, run as one fold), so there is "
                     "no spread over folds and the cell reads \"(1 split)\"; with several --seeds the ± is the "
                     "population std (ddof 0) over the training seeds of that split, marked \"± over N seeds\". "
                     + ("Under parity the validation part of a split trains; under clean it selects the checkpoint "
                        "(or, without one, validation groups are drawn from the training side)."))
    lines.append("Mean: the mean of the task means ± the mean of the task stds (the published table's convention), "
                 "shown when every task has a score; without ± when the tasks' ± are not all over folds or all over "
                 "seeds.")
    for row in table.rows:
        if row.undetermined:
            lines.append(f"{row.column}: {row.undetermined}.")
    notes = [f"{row.task}: {row.note}." for row in table.rows if row.note]
    if notes:
        lines.append("Protocol choices per task ([I] = the project's reading where the paper is silent): "
                     + " ".join(notes))
    others = sorted({c.protocol for r in results if not r.published for cells in r.cells.values()
                     for c in cells.values() if c.protocol is not None and c.protocol != protocol})
    if others:
        lines.append(f"Cells marked [{'] or ['.join(others)}] were run under that protocol by an earlier call into "
                     "the same --out.")
    for model in table.published:
        folds = f" over {model.folds} folds" if model.folds else ""
        notes = "".join(f" Note: {n}." for n in model.notes)
        with_std = any(s is not None and s.std is not None for s in model.scores.values())
        convention = "; the published std convention (population or sample) is not stated" if with_std else ""
        lines.append(f"{model.label}: {model.metric.replace('_', ' ')}{folds}, from {model.source}{convention}."
                     f"{notes}")
    if not any(m.metric == "accuracy" for m in table.published):
        lines.append("The published tables report no plain accuracy: the accuracy table holds our runs only.")
    return "\n\n".join(lines)


def table_markdown(table: Table, results: Sequence[ModelResults], protocol: str) -> str:
    """The whole ``table.md``."""
    parts = [f"# {table.title}", ""]
    metrics = [*METRICS, *sorted({m.metric for m in table.published} - set(METRICS))]
    for metric in metrics:
        parts += [f"## {METRIC_TITLES.get(metric, metric)}", "", metric_table(table, results, metric, protocol), ""]
    parts += [footer(table, results, protocol), ""]
    return "\n".join(parts)


def write_csv(table: Table, results: Sequence[ModelResults], path: Path) -> Path:
    """``table.csv``: one line per (row or mean, model, metric) with a score."""
    keys = [r.key for r in table.rows]
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["table", "row", "model", "metric", "mean", "std", "spread", "folds", "seeds", "source"])
        for result in results:
            published = result.model if result.published else None
            for metric, cells in result.cells.items():
                mean = published_mean(published, keys) if published is not None else mean_cell(cells, keys)
                entries = [(k, cells[k]) for k in keys if k in cells] + ([("mean", mean)] if mean else [])
                for key, cell in entries:
                    if isinstance(cell, Cell):
                        folds, seeds, spread = cell.folds, " ".join(map(str, cell.seeds)), cell.spread
                    else:
                        folds, seeds = (published.folds or "") if published is not None else "", ""
                        spread = "folds" if key != "mean" or published is not None else ""
                    writer.writerow([table.key, key, result.label, metric, f"{cell.mean:.6f}",
                                     "" if cell.std is None else f"{cell.std:.6f}",
                                     spread if cell.std is not None else "", folds, seeds,
                                     "published" if result.published else "ours"])
    return path


def write_table_files(folder: Path, text: str, write_csv_file: Callable[[Path], Path],
                      save_figure: Callable[[Path], Path] | None) -> dict[str, Path]:
    """Write a table's Markdown ``text``, its CSV (``write_csv_file(path)``) and, unless ``save_figure`` is None,
    its figure into ``folder`` under the names of :data:`FILES`; print the Markdown and the paths; returns
    ``{kind: path}``."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {"markdown": folder / FILES["markdown"], "csv": write_csv_file(folder / FILES["csv"])}
    files["markdown"].write_text(text)
    if save_figure is not None:
        files["figure"] = save_figure(folder / FILES["figure"])
    print(text)
    print("written: " + ", ".join(str(p) for p in files.values()))
    return files


def write_report(table: Table, entries: Sequence[Any], out: Path, protocol: str, figure: bool = True) -> dict[str, Any]:
    """Write ``table.md``, ``table.csv`` and (``figure``) ``table.png`` in ``<out>/<table>/``, print the Markdown;
    returns ``{"results": [ModelResults], "files": {kind: path}}``."""
    from neurorvq.benchmarks.figure import save_table_figure

    results = collect(table, entries, Path(out))
    files = write_table_files(Path(out) / table.key, table_markdown(table, results, protocol),
                              lambda path: write_csv(table, results, path),
                              (lambda path: save_table_figure(table, results, path)) if figure else None)
    return {"results": results, "files": files}


__all__ = ["Cell", "FILES", "METRICS", "ModelResults", "collect", "footer", "mean_cell", "metric_table", "run_cells",
           "table_markdown", "write_csv", "write_report", "write_table_files"]
