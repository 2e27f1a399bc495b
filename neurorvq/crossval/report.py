"""Cross-validation tables: per-fold metrics, mean ± std and 95% intervals, as CSV and Markdown.

Layout of the paper's downstream table (method.md §7.3): one row per model, one cell per metric (the paper reports
balanced accuracy, the benchmark's code logs plain accuracy: both are columns). A run is a set of records, one per
(fold, training seed) (``fold_<k>/metrics.json`` or, with several seeds, ``fold_<k>/seed_<s>/metrics.json``; a
record without ``seed`` is seed 0). Each cell is ``mean±std (95% CI low–high)``: mean and population standard
deviation (``numpy.std``, ``ddof=0``) over every (fold, seed) record, and a Student t-interval over the per-fold
means (a fold's mean over its seeds; the folds are the independent unit, n = number of folds; see
:mod:`neurorvq.crossval.stats`). One fold gives no interval (—).

A summary (``summary.json``) may carry ``extra_columns`` (``{title: cell text}``, shown after the metrics) and any
other keys (``implementation``, ``notes``, ``protocol``, ...), which the tables ignore. :func:`combine` warns when
the runs' folds, selection budgets or protocols differ; :func:`paired_report` compares two runs on identical folds
(per-fold difference, its mean and t-interval).
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from neurorvq.crossval.stats import metric_value, paired_difference, per_fold_means, record_seed, t_interval
from neurorvq.errors import ConfigError
from neurorvq.tasks.classification import METRIC_NAMES

METRIC_TITLES = {"balanced_accuracy": "balanced accuracy", "accuracy": "accuracy", "cohen_kappa": "Cohen's kappa",
                 "f1_weighted": "weighted F1", "auroc": "AUROC", "auc_pr": "AUC-PR"}
SUMMARY_FILE = "summary.json"
RECORD_FILE = "metrics.json"
CAPTION = ("mean ± std over folds and seeds (population std); "
           "95% CI: t-interval over the per-fold means across seeds (n = number of folds), centred on the mean of "
           "the per-fold means (equal to the mean when every fold has the same seeds)")
MISSING = "—"


# ----------------------------------------------------------------------------------------------------- records

def _index(path: Path, prefix: str) -> int | None:
    match = re.fullmatch(rf"{prefix}_(-?\d+)", path.name)
    return int(match.group(1)) if match else None


def read_records(folder: str | Path) -> list[dict[str, Any]]:
    """Every record of a ``neurorvq cv`` output folder, sorted by (fold, seed): ``fold_<k>/metrics.json`` (one
    seed) and ``fold_<k>/seed_<s>/metrics.json`` (several seeds). A record lacking ``fold``/``seed`` gets them from
    its folder names (``fold_<k>/metrics.json`` without ``seed`` is seed 0); where both layouts hold the same
    (fold, seed), the per-seed record is kept. An empty list when the folder holds none."""
    found: dict[tuple[int, int], dict[str, Any]] = {}
    for fold_dir in sorted(Path(folder).glob("fold_*")):
        fold = _index(fold_dir, "fold")
        if fold is None or not fold_dir.is_dir():
            continue
        for seed_file in sorted(fold_dir.glob(f"seed_*/{RECORD_FILE}")):
            seed = _index(seed_file.parent, "seed")
            if seed is None:
                continue
            record = json.loads(seed_file.read_text())
            record.setdefault("fold", fold)
            record.setdefault("seed", seed)
            found[(int(record["fold"]), record_seed(record))] = record
        single = fold_dir / RECORD_FILE
        if single.is_file():
            record = json.loads(single.read_text())
            record.setdefault("fold", fold)
            found.setdefault((int(record["fold"]), record_seed(record)), record)
    return [found[key] for key in sorted(found)]


def _ordered(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(rows, key=lambda row: (int(row["fold"]), record_seed(row)))


# ------------------------------------------------------------------------------------------------------ summary

def metric_columns(rows: Sequence[dict[str, Any]]) -> list[str]:
    """The metrics of :data:`METRIC_NAMES` present in any row, in table order."""
    return [m for m in METRIC_NAMES if any(m in row.get("metrics", {}) for row in rows)]


def summarise(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """``{metric: {"mean", "std", "folds", "seeds", "runs", "ci95"}}`` over the test metrics of the records.

    ``mean``/``std`` (population, ``ddof=0``) over every (fold, seed) record with a finite value; ``folds`` and
    ``seeds`` count the distinct folds and seeds among them, ``runs`` the records; ``ci95`` is ``[low, high]``, the
    t-interval of the mean of the per-fold means (each fold's mean over its seeds; n = folds), or ``None`` with one
    fold. A record without a metric (e.g. a single-class test fold's AUROC) is left out of that metric."""
    out = {}
    for name in metric_columns(rows):
        kept = [row for row in rows if metric_value(row, name) is not None]
        if not kept:
            continue
        values = np.asarray([metric_value(row, name) for row in kept], dtype=np.float64)
        _, low, high = t_interval(list(per_fold_means(kept, name).values()), 0.95)
        counts = run_counts(kept)
        out[name] = {"mean": float(values.mean()), "std": float(values.std()), "folds": counts["folds"],
                     "seeds": counts["seeds"], "runs": counts["runs"], "ci95": None if low is None else [low, high]}
    return out


def run_counts(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """``{"folds", "seeds", "seed_values", "runs"}`` of a set of records (distinct folds and seeds, records)."""
    seeds = sorted({record_seed(row) for row in rows})
    return {"folds": len({int(row["fold"]) for row in rows}), "seeds": len(seeds), "seed_values": seeds,
            "runs": len(rows)}


def _number(value: float) -> str:
    return f"{value:.3f}"


def cell(stats: Mapping[str, Any] | None) -> str:
    """``mean±std (95% CI low–high)``; ``(95% CI —)`` without an interval (one fold); plain ``mean±std`` for a
    summary written before intervals existed (no ``ci95`` key)."""
    if not stats:
        return MISSING
    text = f"{_number(stats['mean'])}±{_number(stats['std'])}"
    if "ci95" not in stats:
        return text
    ci = stats["ci95"]
    return text + (f" (95% CI {MISSING})" if not ci else f" (95% CI {_number(ci[0])}–{_number(ci[1])})")


def _escape(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _folds_cell(summary: Mapping[str, Any]) -> str:
    seeds = int(summary.get("seeds", 1) or 1)
    return f"{summary['folds']}×{seeds}" if seeds > 1 else str(summary["folds"])


def caption() -> str:
    return (f"Table: {CAPTION}. The folds column counts folds (× training seeds where a run has several); "
            f"a run with a single fold has no interval ({MISSING}).")


def markdown_table(summaries: Sequence[Mapping[str, Any]], with_caption: bool = True) -> str:
    """Rows = models, columns = task, folds (× seeds), one ``mean±std (95% CI low–high)`` cell per metric, then the
    summaries' ``extra_columns`` (titles in order of appearance; a summary without one shows —). The caption
    (:data:`CAPTION`) comes first unless ``with_caption`` is false."""
    metrics = [m for m in METRIC_NAMES if any(m in s.get("metrics", {}) for s in summaries)]
    extras: list[str] = []
    for s in summaries:
        extras += [title for title in (s.get("extra_columns") or {}) if title not in extras]
    titles = [METRIC_TITLES[m] for m in metrics] + [_escape(title) for title in extras]
    lines = ["| model | task | folds | " + " | ".join(titles) + " |", "|---|---|---|" + "---|" * len(titles)]
    for s in summaries:
        extra = s.get("extra_columns") or {}
        cells = [cell(s.get("metrics", {}).get(m)) for m in metrics]
        cells += [_escape(extra[title]) if title in extra else MISSING for title in extras]
        lines.append(f"| {_escape(s['name'])} | {_escape(s.get('task', ''))} | {_folds_cell(s)} | "
                     + " | ".join(cells) + " |")
    table = "\n".join(lines)
    return caption() + "\n\n" + table if with_caption else table


def fold_table(rows: Sequence[dict[str, Any]]) -> str:
    """Per-fold Markdown table (test subjects, seed, windows, test metrics). The seed column appears when the
    records carry seeds; a fold trained with several seeds gets one row per seed and a ``mean`` row (the per-fold
    mean that the interval is computed from)."""
    rows = _ordered(rows)
    metrics = metric_columns(rows)
    with_seed = any("seed" in row for row in rows) or len({record_seed(row) for row in rows}) > 1
    head = ["fold", "test subjects", *(["seed"] if with_seed else []), "train/val/test windows",
            *(METRIC_TITLES[m] for m in metrics)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def line(fold: Any, subjects: str, seed: str, windows: str, cells: list[str]) -> str:
        return "| " + " | ".join([str(fold), subjects, *([seed] if with_seed else []), windows, *cells]) + " |"

    by_fold: dict[int, list[dict[str, Any]]] = {}
    for row in rows:
        by_fold.setdefault(int(row["fold"]), []).append(row)
    for fold, fold_rows in by_fold.items():
        subjects = ", ".join(map(str, fold_rows[0].get("test_subjects", [])))
        for row in fold_rows:
            w = row.get("windows") or {}
            windows = "/".join(str(w.get(k, MISSING)) for k in ("train", "val", "test")) if w else MISSING
            lines.append(line(fold, subjects, str(record_seed(row)), windows,
                              [_number(row["metrics"][m]) if m in row["metrics"] else MISSING for m in metrics]))
        if len(fold_rows) > 1:
            means = [per_fold_means(fold_rows, m).get(fold) for m in metrics]
            lines.append(line(fold, subjects, f"mean ({len(fold_rows)} seeds)", "",
                              [MISSING if v is None else _number(v) for v in means]))
    return "\n".join(lines)


def write_fold_csv(rows: Sequence[dict[str, Any]], path: Path) -> Path:
    """One line per (fold, seed): index, seed, test subjects, window counts, the selected epoch, then the test
    metrics."""
    rows = _ordered(rows)
    metrics = metric_columns(rows)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["fold", "seed", "test_subjects", "val_subjects", "train_windows", "val_windows",
                         "test_windows", "selected_epoch", "wall_seconds", *metrics])
        for row in rows:
            w = row.get("windows") or {}
            selected = row.get("selected_epoch")
            writer.writerow([row["fold"], record_seed(row), " ".join(map(str, row.get("test_subjects", []))),
                             " ".join(map(str, row.get("val_subjects", []))), w.get("train", ""),
                             w.get("val", ""), w.get("test", ""), "" if selected is None else selected,
                             f"{row.get('wall_seconds', 0):.1f}",
                             *[f"{row['metrics'][m]:.6f}" if m in row["metrics"] else "" for m in metrics]])
    return path


def write_summary_csv(summary: Mapping[str, Any], path: Path) -> Path:
    """One line per metric: model, task, metric, mean, std, folds, seeds, runs, ci95_low, ci95_high."""
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["model", "task", "metric", "mean", "std", "folds", "seeds", "runs", "ci95_low",
                         "ci95_high"])
        for metric, s in summary["metrics"].items():
            ci = s.get("ci95") or ["", ""]
            writer.writerow([summary["name"], summary["task"], metric, f"{s['mean']:.6f}", f"{s['std']:.6f}",
                             s["folds"], s.get("seeds", 1), s.get("runs", s["folds"]),
                             *[f"{v:.6f}" if v != "" else "" for v in ci]])
    return path


def summary_markdown(summary: Mapping[str, Any], rows: Sequence[dict[str, Any]],
                     sections: Sequence[tuple[str, str]] = ()) -> str:
    """Text of ``summary.md``: caption and model table, the per-fold table, then ``sections`` (``(title, Markdown)``
    pairs, e.g. diagnostics), each under a ``## title`` heading."""
    parts = [markdown_table([summary]), "Per fold (test metrics):\n\n" + fold_table(rows)]
    parts += [f"## {title}\n\n{body.strip()}" for title, body in sections]
    return "\n\n".join(parts) + "\n"


def write_summary(rows: Sequence[dict[str, Any]], out: Path, name: str, task: str, *,
                  extra: Mapping[str, Any] | None = None,
                  sections: Sequence[tuple[str, str]] = ()) -> dict[str, Any]:
    """``metrics_per_fold.csv``, ``summary.csv``, ``summary.md`` and ``summary.json`` in ``out``; returns the
    summary ``{"name", "task", "folds", "seeds", "seed_values", "runs", "metrics", **extra}``. ``extra`` may hold
    ``extra_columns`` (``{title: cell text}``, shown in the tables) and any other keys (``implementation``,
    ``notes``, ...), stored in ``summary.json``; ``sections`` are appended to ``summary.md``."""
    out = Path(out)
    summary = {"name": name, "task": task, **run_counts(rows), "metrics": summarise(rows), **dict(extra or {})}
    write_fold_csv(rows, out / "metrics_per_fold.csv")
    write_summary_csv(summary, out / "summary.csv")
    (out / SUMMARY_FILE).write_text(json.dumps(summary, indent=1) + "\n")
    (out / "summary.md").write_text(summary_markdown(summary, rows, sections))
    return summary


# ------------------------------------------------------------------------------------------------ several runs

def read_summary(folder: str | Path) -> dict[str, Any]:
    """``summary.json`` of a finished run; :class:`ConfigError` when absent."""
    folder = Path(folder)
    path = folder / SUMMARY_FILE
    if not path.is_file():
        raise ConfigError(f"'{folder}' holds no {SUMMARY_FILE}: pass folders written by a finished neurorvq cv run")
    return json.loads(path.read_text())


def combine(folders: Sequence[str | Path]) -> str:
    """One Markdown table of several ``neurorvq cv`` output folders; warns in the text when their folds differ.
    A summary written before intervals existed gets its statistics recomputed from the folder's records."""
    summaries, full, short = [], {}, {}
    for folder in map(Path, folders):
        summary = read_summary(folder)
        records = read_records(folder)
        if records and any("ci95" not in s for s in summary.get("metrics", {}).values()):
            summary = {**summary, **run_counts(records), "metrics": summarise(records)}
        summaries.append(summary)
        fold_file = folder / "folds.json"
        if fold_file.is_file():
            listed = json.loads(fold_file.read_text())["folds"]
            full[str(folder)] = [(f["train_subjects"], f["val_subjects"], f["test_subjects"]) for f in listed]
            short[str(folder)] = sorted((int(f["index"]), [str(s) for s in f["test_subjects"]]) for f in listed)
        elif records:  # no folds.json: compare the records' fold indices and test subjects
            short[str(folder)] = sorted({(int(r["fold"]), tuple(map(str, r.get("test_subjects", []))))
                                         for r in records})
            short[str(folder)] = [(k, list(v)) for k, v in short[str(folder)]]
    folds = full if len(full) == len(short) else short
    table = markdown_table(summaries)
    if len({json.dumps(v) for v in folds.values()}) > 1:
        table += "\n\nNote: these runs did not use identical folds."
    table += budget_note(summaries) + protocol_note(summaries)
    return table


def protocol_note(summaries: Sequence[dict[str, Any]]) -> str:
    """A warning when the runs used different protocols (``clean`` / ``parity``, :mod:`neurorvq.crossval.
    protocol`; a summary without one is ``clean``)."""
    names = {s.get("name", "?"): (s.get("protocol") or {}).get("name", "clean") for s in summaries}
    if len(set(names.values())) > 1:
        listed = ", ".join(f"{name}: {protocol}" for name, protocol in names.items())
        return f"\n\nNote: these runs used different protocols ({listed}); their numbers are not comparable."
    return ""


def budget_note(summaries: Sequence[dict[str, Any]]) -> str:
    """A warning when the runs' selection budgets (settings chosen on validation per fold) differ: a comparison
    is fair only when every model had the same number of tries."""
    budgets = {s.get("name", "?"): s.get("selection_budget") for s in summaries if s.get("selection_budget")}
    if len(set(budgets.values())) > 1:
        listed = ", ".join(f"{name}: {budget}" for name, budget in budgets.items())
        return (f"\n\nNote: these runs had different selection budgets (settings chosen on validation per fold: "
                f"{listed}); give every deep model the same --grid for a fair comparison.")
    return ""


def _run_name(folder: Path, records: Sequence[dict[str, Any]]) -> str:
    path = folder / SUMMARY_FILE
    if path.is_file():
        name = json.loads(path.read_text()).get("name")
        if name:
            return str(name)
    return str(records[0].get("name") or folder.name) if records else folder.name


def _seed_text(counts: Sequence[int]) -> str:
    low, high = min(counts), max(counts)
    n = str(low) if low == high else f"{low}–{high}"
    return f"{n} seed" + ("" if n == "1" else "s")


def paired_report(folder_a: str | Path, folder_b: str | Path, metric: str = "balanced_accuracy") -> str:
    """Markdown paired comparison of two ``neurorvq cv`` runs on identical folds: one row per fold (fold, test
    subjects, A, B, A − B; A and B are each run's mean over its seeds of that fold), then ``mean difference d (95%
    CI low–high, t-interval over n folds; paired on identical folds)``. :class:`ConfigError` when a folder holds no
    records, the metric is unknown, or the folds differ (naming the first differing fold)."""
    if metric not in METRIC_TITLES:
        raise ConfigError(f"metric is {metric!r}; use one of {list(METRIC_TITLES)}")
    folders, records, names = (Path(folder_a), Path(folder_b)), [], []
    for folder in folders:
        rows = read_records(folder)
        if not rows:
            raise ConfigError(f"'{folder}' holds no fold_*/{RECORD_FILE} or fold_*/seed_*/{RECORD_FILE}: pass "
                              "folders written by neurorvq cv")
        records.append(rows)
        names.append(_run_name(folder, rows))
    if names[0] == names[1]:
        names = [f"{name} ({folder})" for name, folder in zip(names, folders)]
    result = paired_difference(records[0], records[1], metric, names=(f"A ({names[0]})", f"B ({names[1]})"))
    title = METRIC_TITLES[metric]
    head = (f"Paired comparison of {title}: A = {_escape(names[0])} ({folders[0]}), B = {_escape(names[1])} "
            f"({folders[1]}); each value is the run's mean over its training seeds on that fold "
            f"(A: {_seed_text([f['seeds_a'] for f in result['folds']])}, "
            f"B: {_seed_text([f['seeds_b'] for f in result['folds']])}).")
    lines = [f"| fold | test subjects | A: {_escape(names[0])} | B: {_escape(names[1])} | A − B |",
             "|---|---|---|---|---|"]
    for f in result["folds"]:
        lines.append(f"| {f['fold']} | {', '.join(f['test_subjects'])} | {_number(f['a'])} | {_number(f['b'])} | "
                     f"{f['difference']:+.3f} |")
    ci = result["ci"]
    interval = MISSING if ci is None else f"{_number(ci[0])}–{_number(ci[1])}"
    n = result["n"]
    tail = (f"mean difference {result['mean_difference']:+.3f} (95% CI {interval}, t-interval over {n} "
            f"fold{'' if n == 1 else 's'}; paired on identical folds)")
    if result["skipped"]:
        tail += f"\n\nFolds without {title} in both runs (left out): {', '.join(map(str, result['skipped']))}."
    summaries = [json.loads((Path(f) / SUMMARY_FILE).read_text()) for f in (folder_a, folder_b)
                 if (Path(f) / SUMMARY_FILE).is_file()]
    tail += budget_note(summaries)
    return head + "\n\n" + "\n".join(lines) + "\n\n" + tail


__all__ = ["CAPTION", "METRIC_TITLES", "cell", "combine", "fold_table", "markdown_table", "paired_report",
           "protocol_note", "read_records", "read_summary", "run_counts", "summarise", "summary_markdown",
           "write_fold_csv", "write_summary", "write_summary_csv"]
