"""Write a :class:`~neurorvq.eval.compare.run.Comparison`: Markdown in NeuroRVQ's Table 1 layout (one table per
filtering mode, named in its heading, with the published rows beside ours), CSVs of the same numbers, a JSON of
everything and a figure (:mod:`neurorvq.eval.compare.figure`).

Files in the output folder: ``comparison.md``, ``comparison.csv`` (one row per model and mode: MSE columns, bits/s,
mean codebook usage and perplexity), ``codebook.csv`` (one row per model, group and level), ``comparison.json``,
``comparison.png``.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

from neurorvq.eval.codebook import format_usage
from neurorvq.eval.compare.published import PUBLISHED_LABEL, published_rows
from neurorvq.eval.compare.run import Comparison
from neurorvq.file_io import json_ready, write_atomic

MSE_DEFINITION = ("MSE of per-window standardised signals (mean and unbiased std over all channels and time, "
                  "variance floor 1e-8); bands: zero-phase Butterworth of order 2 (method.md §7.1); means over "
                  "windows")
PUBLISHED_MODE = "not stated"
"""The filtering mode of the published rows (families.md §B.6)."""
FILES = {"markdown": "comparison.md", "csv": "comparison.csv", "codebook_csv": "codebook.csv",
         "json": "comparison.json", "figure": "comparison.png"}


def _data_line(comparison: Comparison, context: Mapping[str, Any]) -> str:
    d = comparison.data
    where = ", ".join(f"{k} {v}" for k, v in context.items() if k in ("data", "split") and v is not None)
    return (f"Data: '{d['name']}' ({d['sampling_rate']:g} Hz, {d['unit']}, {d['patch_length']}-sample patches)"
            + (f", {where}" if where else "") + f"; {comparison.windows} windows, the same for every tokenizer.")


def mse_table(comparison: Comparison, mode: str) -> str:
    """Table 1 for one filtering ``mode``: a heading naming the mode, then one row per tokenizer and one per
    published model (labelled :data:`~neurorvq.eval.compare.published.PUBLISHED_LABEL`)."""
    columns = comparison.columns
    lines = [f"## Reconstruction MSE, filtering mode `{mode}`", "",
             f"Mode `{mode}`: {comparison.mode_text(mode)}.", "",
             "| model | family | windows | " + " | ".join(columns) + " |",
             "|---|---|---|" + "---|" * len(columns)]
    for s in comparison.scores:
        lines.append(f"| {s.name} | {s.family} | {s.windows} | "
                     + " | ".join(f"{s.mse[mode][c]:.4f}" for c in columns) + " |")
    for row in published_rows(columns):
        lines.append(f"| {row.label} | — | — | " + " | ".join(f"{row.mse[c]:.3f}" for c in columns) + " |")
    return "\n".join(lines)


def rate_table(comparison: Comparison) -> str:
    """Bits per second, token rate and mean codebook usage/perplexity per tokenizer."""
    lines = ["## Rate and codebooks", "",
             "Bits per second of signal, per channel: sum over the streams (code groups x levels) of log2(codebook "
             "size) x tokens per second; side information (e.g. per-window amplitude statistics) is not counted. "
             "Usage: share of each codebook's codes seen on these windows; perplexity: exp(entropy) of their counts.",
             "", "| model | family | bits/s per channel | tokens/s per channel | streams | mean usage | "
             "mean perplexity |", "|---|---|---|---|---|---|---|"]
    for s in comparison.scores:
        lines.append(f"| {s.name} | {s.family} | {s.bits_per_second:g} | {s.tokens_per_second:g} | "
                     f"{s.layout.num_streams} | {100 * s.codebook['mean_usage']:.1f}% | "
                     f"{s.codebook['mean_perplexity']:.1f} |")
    return "\n".join(lines)


def markdown_report(comparison: Comparison, context: Mapping[str, Any] | None = None) -> str:
    """The whole Markdown report: context, one MSE table per mode, the rate table, per-level codebook tables."""
    context = dict(context or {})
    parts = ["# Tokenizer comparison (NeuroRVQ Table 1 layout)", "", _data_line(comparison, context),
             MSE_DEFINITION + ".", ""]
    if published_rows(comparison.columns):
        parts += [f"Rows marked \"{PUBLISHED_LABEL}\" are the paper's Table 1 (method.md §7.1): other data, "
                  f"filtering mode {PUBLISHED_MODE}.", ""]
    for mode in comparison.modes:
        parts += [mse_table(comparison, mode), ""]
    parts += [rate_table(comparison), ""]
    for s in comparison.scores:
        parts += [format_usage(s.codebook, f"### {s.name}: codebook usage per level, % of codes used "
                                           "(perplexity)"), ""]
    return "\n".join(parts)


def csv_rows(comparison: Comparison) -> list[dict[str, Any]]:
    """One dict per (model, mode): ``model, source, family, mode, windows``, the MSE columns, ``bits_per_second,
    tokens_per_second, mean_usage, mean_perplexity`` (published rows: the MSE columns only, mode "not stated")."""
    columns = comparison.columns
    rows: list[dict[str, Any]] = []
    for mode in comparison.modes:
        for s in comparison.scores:
            rows.append({"model": s.name, "source": "this run", "family": s.family, "mode": mode,
                         "windows": s.windows, **{c: s.mse[mode][c] for c in columns},
                         "bits_per_second": s.bits_per_second, "tokens_per_second": s.tokens_per_second,
                         "mean_usage": s.codebook["mean_usage"], "mean_perplexity": s.codebook["mean_perplexity"]})
    for row in published_rows(columns):
        rows.append({"model": row.model, "source": PUBLISHED_LABEL, "family": "", "mode": PUBLISHED_MODE,
                     "windows": "", **{c: row.mse[c] for c in columns}, "bits_per_second": "",
                     "tokens_per_second": "", "mean_usage": "", "mean_perplexity": ""})
    return rows


def codebook_rows(comparison: Comparison) -> list[dict[str, Any]]:
    """One dict per (model, group, level): ``codebook_size, usage, perplexity, tokens``."""
    rows = []
    for s in comparison.scores:
        for (group, level, size), usage, perplexity in zip(
                s.layout.streams, [u for row in s.codebook["usage"] for u in row],
                [p for row in s.codebook["perplexity"] for p in row]):
            rows.append({"model": s.name, "group": group, "level": level, "codebook_size": size, "usage": usage,
                         "perplexity": perplexity, "tokens": s.codebook["tokens"]})
    return rows


def _csv(rows: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def report_dict(comparison: Comparison, context: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Everything, for ``comparison.json``: the comparison, the published rows, the definitions, ``context``."""
    return json_ready({**comparison.to_dict(), "mse_definition": MSE_DEFINITION,
                       "published": [r.to_dict() for r in published_rows(comparison.columns)],
                       "published_mode": PUBLISHED_MODE, "context": dict(context or {}),
                       "written": datetime.now(timezone.utc).isoformat(timespec="seconds")}, finite=True)


def write_report(comparison: Comparison, out: str | Path, context: Mapping[str, Any] | None = None,
                 figure: bool = True) -> dict[str, Path]:
    """Write :data:`FILES` into the folder ``out`` (created; files of the same names replaced); ``context``
    (e.g. data source, split, checkpoints) goes into the Markdown's data line and the JSON. Returns the paths."""
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {key: folder / name for key, name in FILES.items() if figure or key != "figure"}
    write_atomic(paths["markdown"], markdown_report(comparison, context))
    write_atomic(paths["csv"], _csv(csv_rows(comparison)))
    write_atomic(paths["codebook_csv"], _csv(codebook_rows(comparison)))
    if figure:
        from neurorvq.eval.compare.figure import save_comparison_figure

        save_comparison_figure(comparison, paths["figure"])
    result = report_dict(comparison, context)
    result["files"] = {key: str(path.resolve()) for key, path in paths.items()}
    write_atomic(paths["json"], json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    return paths


__all__ = ["FILES", "MSE_DEFINITION", "PUBLISHED_MODE", "codebook_rows", "csv_rows", "markdown_report",
           "mse_table", "rate_table", "report_dict", "write_report"]
