"""The reconstruction table in the paper's layout: ``table.md``, ``table.csv`` and ``table.png`` in
``<out>/<table>/`` from the (row, tokenizer) folders of :mod:`neurorvq.benchmarks.recon`.

``table.md``: first the raw-signal MSE (rows = our tokenizers then the published NeuroRVQ, labelled "(published)";
columns = the datasets), then per dataset the per-band MSE in filtering mode ``patch`` (raw, delta, theta, alpha,
beta, gamma and the number of windows; the published rows report raw MSE only: the bands show —). A cell is the
mean over the compared windows of the per-window MSE of standardised signals (the harness's definition, quoted in
the footer); no ± (the spread over windows is in ``table.csv`` as ``std``, population, over windows). No Mean
column: the papers report none for these rows.

``table.csv`` (long format): ``table, row, model, metric, band, mode, mean, std, windows, source`` with ``metric``
``mse``, ``band`` ``raw`` or a band name, ``source`` ``ours`` or ``published`` (published rows: raw, mode "not
stated", no std or windows).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from neurorvq.benchmarks.report import MISSING, write_table_files
from neurorvq.benchmarks.tables import Table

MODE = "patch"


@dataclass
class ReconResult:
    """One tokenizer's results per row: ``mse[row][band]``, ``std[row][band]`` (mode :data:`MODE`, over windows),
    ``windows[row]`` and ``family``; ``published`` for a published model (raw only)."""

    label: str
    mse: dict[str, dict[str, float]] = field(default_factory=dict)
    std: dict[str, dict[str, float]] = field(default_factory=dict)
    windows: dict[str, int] = field(default_factory=dict)
    family: str = ""
    published: bool = False
    bands: list[str] = field(default_factory=list)
    modes: dict[str, str] = field(default_factory=dict)
    definition: str = ""


def read_run(folder: Path) -> dict[str, Any] | None:
    """``{"mse", "mse_std", "windows", "family", "bands", "modes", "definition"}`` of a finished (row, model)
    folder (its ``recon.json`` and the harness's ``comparison.json``), ``None`` when it is not finished."""
    from neurorvq.benchmarks.recon import DONE

    done, full = folder / DONE, folder / "comparison.json"
    if not done.is_file() or not full.is_file():
        return None
    record, comparison = json.loads(done.read_text()), json.loads(full.read_text())
    scores = (comparison.get("tokenizers") or [{}])[0]
    return {"mse": record["mse"], "mse_std": record.get("mse_std", {}), "windows": int(record["windows"]),
            "family": scores.get("family", ""), "bands": [b[0] for b in comparison.get("bands", [])],
            "modes": comparison.get("mode_definitions", {}), "definition": comparison.get("mse_definition", "")}


def collect(table: Table, entries: Sequence[Any], out: Path) -> list[ReconResult]:
    """Our tokenizers' results (every row's folder ``<out>/<table>/<row>/<slug>``), then the published models'."""
    results = []
    for entry in entries:
        result = ReconResult(entry.label)
        for row in table.rows:
            run = read_run(out / table.key / row.key / entry.slug)
            if run is None or MODE not in run["mse"]:
                continue
            result.mse[row.key], result.std[row.key] = run["mse"][MODE], run["mse_std"].get(MODE, {})
            result.windows[row.key], result.family = run["windows"], run["family"]
            result.bands = result.bands or run["bands"]
            result.modes, result.definition = run["modes"] or result.modes, run["definition"] or result.definition
        results.append(result)
    for model in table.published:
        results.append(ReconResult(model.label, {k: {"raw": s.mean} for k, s in model.scores.items() if s},
                                   published=True))
    return results


def _value(value: float | None, digits: int = 4) -> str:
    return MISSING if value is None else f"{value:.{digits}f}"


def raw_table(table: Table, results: Sequence[ReconResult]) -> str:
    """Raw-signal MSE: one row per model, one column per dataset."""
    head = ["model", *[r.column for r in table.rows]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for result in results:
        digits = 3 if result.published else 4
        lines.append("| " + " | ".join([result.label, *[_value(result.mse.get(r.key, {}).get("raw"), digits)
                                                         for r in table.rows]]) + " |")
    return "\n".join(lines)


def band_tables(table: Table, results: Sequence[ReconResult]) -> list[str]:
    """One per-band table per dataset with a result of ours (mode :data:`MODE`)."""
    bands = next((r.bands for r in results if r.bands), [])
    parts = []
    for row in table.rows:
        ours = [r for r in results if not r.published and row.key in r.mse]
        if not ours:
            continue
        lines = [f"### {row.column}", "", "| model | family | windows | raw | " + " | ".join(bands) + " |",
                 "|---|---|---|---|" + "---|" * len(bands)]
        for result in ours:
            cells = result.mse[row.key]
            lines.append(f"| {result.label} | {result.family} | {result.windows[row.key]} | "
                         + " | ".join(_value(cells.get(c)) for c in ["raw", *bands]) + " |")
        for result in results:
            if result.published and row.key in result.mse:
                lines.append(f"| {result.label} | — | — | {_value(result.mse[row.key]['raw'], 3)} | "
                             + " | ".join(MISSING for _ in bands) + " |")
        parts.append("\n".join(lines))
    return parts


def footer(table: Table, results: Sequence[ReconResult], max_windows: int | None) -> str:
    """What the numbers are: the MSE definition, the filtering mode, which windows, the published numbers, notes."""
    ours = [r for r in results if not r.published]
    definition = next((r.definition for r in ours if r.definition), "MSE of per-window standardised signals")
    mode = next((r.modes.get(MODE) for r in ours if r.modes.get(MODE)), "each patch of each channel filtered alone")
    per_task: dict[str, set] = {}
    for result in ours:
        for key, n in result.windows.items():
            per_task.setdefault(key, set()).add(n)
    counts = ", ".join(f"{table.row(k).task} {'/'.join(map(str, sorted(v)))}" for k, v in per_task.items())
    lines = [f"Ours: {definition}; raw = no filtering. Per-band columns in filtering mode `{MODE}`: {mode} (the "
             "official plotting code's; each run's comparison.md also has mode `channel`).",
             f"Windows [I]: the first {max_windows or 'all'} windows of the split each task reads ("
             + ", ".join(f"{r.task}: {r.read_split}" for r in table.rows) + "); the recipes put every subject in "
             "it and its train loader is shuffled by the DataModule's seed: a reproducible random draw over all "
             "subjects, the same for every tokenizer"
             + (f" (windows per task: {counts})" if counts else " (no finished runs yet)") + "."]
    for model in table.published:
        notes = "".join(f" Note: {n}." for n in model.notes)
        lines.append(f"{model.label}: raw-signal MSE from {model.source}.{notes}")
    notes = [f"{row.task}: {row.note}." for row in table.rows if row.note]
    if notes:
        lines.append("Data per task ([I] = the project's reading where the paper is silent): " + " ".join(notes))
    return "\n\n".join(lines)


def table_markdown(table: Table, results: Sequence[ReconResult], max_windows: int | None) -> str:
    """The whole ``table.md``."""
    parts = [f"# {table.title}", "", "## Raw-signal MSE (lower is better)", "", raw_table(table, results), ""]
    bands = band_tables(table, results)
    if bands:
        parts += [f"## Per-band MSE, filtering mode `{MODE}`", ""]
        for text in bands:
            parts += [text, ""]
    parts += [footer(table, results, max_windows), ""]
    return "\n".join(parts)


def write_csv(table: Table, results: Sequence[ReconResult], path: Path) -> Path:
    """``table.csv``: one line per (row, model, band) with a score."""
    from neurorvq.eval.compare.report import PUBLISHED_MODE

    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["table", "row", "model", "metric", "band", "mode", "mean", "std", "windows", "source"])
        for result in results:
            for row in table.rows:
                for band, value in result.mse.get(row.key, {}).items():
                    std = result.std.get(row.key, {}).get(band)
                    writer.writerow([table.key, row.key, result.label, "mse", band,
                                     PUBLISHED_MODE if result.published else MODE, f"{value:.6f}",
                                     "" if std is None else f"{std:.6f}", result.windows.get(row.key, ""),
                                     "published" if result.published else "ours"])
    return path


def save_figure(table: Table, results: Sequence[ReconResult], path: Path, dpi: int = 110) -> Path:
    """Grouped bars of the raw MSE per dataset, one bar per model (published hatched)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    drawn = [r for r in results if any("raw" in v for v in r.mse.values())]
    fig, ax = plt.subplots(figsize=(max(6.0, 2.0 * len(table.rows)) + 3.0, 3.6))
    position = np.arange(len(table.rows))
    width = 0.8 / max(len(drawn), 1)
    for i, result in enumerate(drawn):
        values = [result.mse.get(r.key, {}).get("raw", np.nan) for r in table.rows]
        offset = (i - (len(drawn) - 1) / 2) * width
        ax.bar(position + offset, values, width, label=result.label, hatch="//" if result.published else None,
               edgecolor="black" if result.published else None, alpha=0.6 if result.published else 1.0)
    ax.set_xticks(position, [r.column for r in table.rows])
    ax.set_ylabel("raw-signal MSE (standardised)")
    ax.set_title("Reconstruction MSE of per-window standardised signals (lower is better)", fontsize=9)
    if drawn:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.suptitle(table.title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def write_recon_report(table: Table, entries: Sequence[Any], out: Path, max_windows: int | None,
                       figure: bool = True) -> dict[str, Any]:
    """Write ``table.md``, ``table.csv`` and (``figure``) ``table.png`` in ``<out>/<table>/``, print the Markdown;
    returns ``{"results": [ReconResult], "files": {kind: path}}``."""
    results = collect(table, entries, Path(out))
    files = write_table_files(Path(out) / table.key, table_markdown(table, results, max_windows),
                              lambda path: write_csv(table, results, path),
                              (lambda path: save_figure(table, results, path)) if figure else None)
    return {"results": results, "files": files}


__all__ = ["MODE", "ReconResult", "band_tables", "collect", "footer", "raw_table", "read_run", "save_figure",
           "table_markdown", "write_csv", "write_recon_report"]
