"""``neurorvq benchmark --table recon``: the reconstruction rows (unseen EEG, benchmarks.md §6) through the
comparison harness (:func:`neurorvq.eval.compare.run.compare_tokenizers`), any tokenizer family.

Models: every ``--model`` (repeatable; ``name=path`` labels one) is a tokenizer :func:`neurorvq.load` takes: an
official tokenizer file, a ``save_pretrained`` folder, a ``TokenizerTask`` ``.ckpt`` or an ``hf://`` id. Baselines,
``--seeds`` and ``--protocol parity`` do not apply (nothing is trained): they are refused.

Per row: the row's data-only recipe (``recipes/benchmarks/recon_*.yaml``: a ``data:`` section) is instantiated on the
row's data folder, the split the row names read (:attr:`~neurorvq.benchmarks.tables.Row.read_split`: ``train`` for
High-Gamma and Pavlov, ``test`` for the one-segment BrainOmni sample), and the first ``--max_windows`` windows
(default 1000) of that split's loader reconstructed by every pending tokenizer in one pass, so all of them see the
same windows. Which windows [I]: the High-Gamma and Pavlov recipes put **every subject** in the train split
(``val_fraction: 0``, ``test_fraction: 0``) and the train loader shuffles by the DataModule's ``seed``, so the first
``max_windows`` windows are a reproducible random draw over all subjects' benchmark windows (the same on every call
with the same data, recipe, batch size and seed; the published sample size is not stated). Scores are the
harness's: MSE of per-window standardised signals, raw and per band, in both filtering modes; the table reports mode
``patch`` (the official plotting code's; method.md §7, benchmarks.md §6.1), the per-run files both.

Output: ``<out>/recon/<row>/<model>/`` holds the harness's report of that tokenizer on that row
(``comparison.md``, ``comparison.csv``, ``codebook.csv``, ``comparison.json``) and ``recon.json``, written last:
a (row, model) whose ``recon.json`` has the same identity (recipe, data folder, data overrides, ``max_windows``,
tokenizer source) is finished and reused without loading its data. Then ``<out>/recon/table.md``, ``table.csv`` and
``table.png`` (:mod:`neurorvq.benchmarks.recon_report`), the published raw MSE beside ours.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from neurorvq.benchmarks.data_check import recipe_data, require_dataset
from neurorvq.benchmarks.tables import Row, data_root, recipe_path, with_rows
from neurorvq.errors import ConfigError

DONE = "recon.json"
"""Marks a finished (row, model) and holds its identity."""
TABLE_MODE = "patch"
"""The filtering mode of the table (the official one); the per-run files hold both modes."""


@dataclass(frozen=True)
class TokenizerEntry:
    """One tokenizer of the call: output folder ``slug``, table ``label`` and ``source`` (an absolute path or an
    ``hf://`` id)."""

    slug: str
    label: str
    source: str


@dataclass
class ReconJob:
    """One (row, tokenizer): the row's data-only ``recipe``, data ``root`` and the run's ``folder``."""

    row: Row
    entry: TokenizerEntry
    recipe: Path
    root: Path
    folder: Path


def tokenizer_entries(models: Sequence[str], name: str | None) -> list[TokenizerEntry]:
    """The tokenizers of ``--model`` (``name=path`` labels one; ``--name`` labels the only one); a path that does
    not exist is a :class:`ConfigError` naming it."""
    from neurorvq.benchmarks.run import slug
    from neurorvq.eval.compare.command import parse_sources

    if not models:
        raise ConfigError("nothing to run: the reconstruction table needs --model <tokenizer> (repeatable: an official "
                          "tokenizer file, a save_pretrained folder, a TokenizerTask .ckpt or an hf:// id; name=path "
                          "labels one)")
    if name is not None and len(models) > 1:
        raise ConfigError("--name labels a single --model; label several as --model name=path")
    sources = parse_sources(list(models))
    entries = []
    for label, source in sources.items():
        if not source.startswith("hf://"):
            path = Path(source).expanduser()
            if not path.exists():
                raise ConfigError(f"--model '{source}': no such file or folder; give a tokenizer neurorvq.load takes "
                                  "(an official tokenizer file, a save_pretrained folder, a TokenizerTask .ckpt)")
            source = str(path.resolve())
        label = name or label
        entries.append(TokenizerEntry(slug(label), label, source))
    slugs = [e.slug for e in entries]
    twice = sorted({s for s in slugs if slugs.count(s) > 1})
    if twice:
        raise ConfigError(f"two tokenizers would share the output folder {twice[0]!r}; label them as --model name=path")
    return entries


def check_options(settings: Any) -> list[str]:
    """The ``key=value`` data overrides of the call; :class:`ConfigError` for what does not apply to the
    reconstruction table (baselines, seeds, parity, model or trainer overrides)."""
    from neurorvq.benchmarks.run import data_overrides
    from neurorvq.crossval.protocol import PARITY

    if settings.baselines:
        raise ConfigError(f"--baselines {' '.join(settings.baselines)}: baselines do not apply to the reconstruction "
                          "table (they are classifiers); compare tokenizers by giving several --model")
    if settings.seeds:
        raise ConfigError("--seeds does not apply to the reconstruction table: nothing is trained (the windows are "
                          "drawn by the recipe's data.init_args.seed)")
    if settings.protocol == PARITY:
        raise ConfigError("--protocol does not apply to the reconstruction table: nothing is trained or selected")
    others = [a for a in settings.overrides if not a.startswith("--data.init_args.")]
    if others:
        raise ConfigError(f"{others[0]}: the reconstruction table takes only data overrides (--data.init_args.KEY="
                          "VALUE); it trains no model")
    if settings.max_windows is not None and int(settings.max_windows) < 1:
        raise ConfigError(f"--max_windows is {settings.max_windows}; give 1 or more (or null for every window)")
    return data_overrides(settings.overrides)


def identity(job: ReconJob, overrides: Sequence[str], max_windows: int | None) -> dict[str, Any]:
    """What a finished (row, model) must match to be reused."""
    return {"row": job.row.key, "recipe": str(job.recipe.resolve()), "root": str(job.root),
            "split": job.row.read_split, "data_overrides": list(overrides), "max_windows": max_windows,
            "tokenizer": job.entry.source}


def finished(job: ReconJob, wanted: dict[str, Any]) -> bool:
    """Whether ``job.folder`` holds a finished run of the same identity (``recon.json`` and ``comparison.json``)."""
    done = job.folder / DONE
    if not done.is_file() or not (job.folder / "comparison.json").is_file():
        return False
    try:
        return json.loads(done.read_text()).get("identity") == json.loads(json.dumps(wanted))
    except json.JSONDecodeError:
        return False


def plan(settings: Any, entries: Sequence[TokenizerEntry]) -> list[ReconJob]:
    """The (row, tokenizer) jobs, rows in table order; a row without a recipe file is an error naming it."""
    table = settings.table
    rows = with_rows(table, settings.rows)
    unknown = sorted(set(settings.roots) - {r.key for r in table.rows})
    if unknown:
        raise ConfigError(f"--root {unknown[0]}=...: table '{table.key}' has no row {unknown[0]!r} (rows: "
                          f"{', '.join(r.key for r in table.rows)})")
    jobs = []
    for row in rows:
        recipe = recipe_path(table, row, settings.recipes)
        if recipe is None or not recipe.is_file():
            raise ConfigError(f"row '{row.key}': recipe {recipe or '(none)'} does not exist; give the folder holding "
                              "the benchmark recipes with --recipes DIR (the checkout's recipes/benchmarks by "
                              "default)")
        root = data_root(table, row, settings.data_dir, settings.roots, recipe_data(recipe)["init_args"].get("root"))
        for entry in entries:
            jobs.append(ReconJob(row, entry, recipe, root, Path(settings.out) / table.key / row.key / entry.slug))
    return jobs


def run_row(jobs: Sequence[ReconJob], overrides: Sequence[str], max_windows: int | None, device: str) -> None:
    """Reconstruct the row's windows with every tokenizer of ``jobs`` (one row) in one pass of the harness and
    write each one's report and ``recon.json`` into its folder."""
    from neurorvq.commands import load_datamodule, split_loader
    from neurorvq.eval.compare.report import write_report
    from neurorvq.eval.compare.run import MODES, Comparison, compare_tokenizers

    first = jobs[0]
    datamodule = load_datamodule(str(first.recipe), [f"root={first.root}", *overrides])
    loader = split_loader(datamodule, first.row.read_split)
    comparison = compare_tokenizers({job.entry.label: job.entry.source for job in jobs}, loader, datamodule,
                                    modes=MODES, max_windows=max_windows, device=device)
    scores = {score.name: score for score in comparison.scores}
    for job in jobs:
        single = Comparison([scores[job.entry.label]], comparison.modes, comparison.bands, comparison.windows,
                            comparison.data)
        context = {"data": str(job.recipe.resolve()), "split": job.row.read_split, "root": str(job.root),
                   "overrides": list(overrides), "max_windows": max_windows,
                   "tokenizers": {job.entry.label: job.entry.source}, "row": job.row.key}
        write_report(single, job.folder, context, figure=False)
        record = {"identity": identity(job, overrides, max_windows), "windows": comparison.windows,
                  "subjects": len(getattr(datamodule, "splits", {}).get(job.row.read_split, [])) or None,
                  "mse": scores[job.entry.label].mse, "mse_std": scores[job.entry.label].mse_std}
        (job.folder / DONE).write_text(json.dumps(record, indent=1) + "\n")


def run_reconstruction(settings: Any) -> dict[str, Any]:
    """Run (or reuse) every (row, tokenizer) of the call, then write ``<out>/<table>/table.md``, ``table.csv`` and
    ``table.png``; returns ``{"results": ..., "files": ...}`` (:func:`~neurorvq.benchmarks.recon_report.
    write_recon_report`)."""
    from neurorvq.benchmarks.recon_report import write_recon_report
    from neurorvq.benchmarks.run import data_overrides, say

    overrides = check_options(settings)
    models = list(settings.models) or ([settings.model] if settings.model else [])
    entries = tokenizer_entries(models, settings.name)
    jobs = plan(settings, entries)
    pending = [job for job in jobs if not finished(job, identity(job, overrides, settings.max_windows))]
    problems, checked = [], set()
    for job in pending:  # every missing dataset at once, before anything is loaded
        if job.row.key in checked:
            continue
        checked.add(job.row.key)
        try:
            require_dataset(settings.table, job.row, job.recipe, job.root, None, data_overrides(settings.overrides))
        except ConfigError as error:
            problems.append(str(error))
    if problems:
        raise ConfigError(" | ".join(problems))
    say(f"table '{settings.table.key}': {len({j.row.key for j in jobs})} row(s) x {len(entries)} tokenizer(s), "
        f"{len(pending)} to run, {len(jobs) - len(pending)} already finished -> "
        f"{Path(settings.out) / settings.table.key}")
    for job in jobs:
        if job not in pending:
            say(f"row '{job.row.key}' ({job.row.task}), {job.entry.label}: already finished (reused from "
                f"{job.folder})")
    for key in dict.fromkeys(job.row.key for job in pending):
        row_jobs = [job for job in pending if job.row.key == key]
        say(f"row '{key}' ({row_jobs[0].row.task}): {len(row_jobs)} tokenizer(s) on at most "
            f"{settings.max_windows or 'all'} windows of {row_jobs[0].root}")
        run_row(row_jobs, overrides, settings.max_windows, settings.device)
    return write_recon_report(settings.table, entries, Path(settings.out), settings.max_windows,
                              figure=settings.figure)


__all__ = ["DONE", "ReconJob", "TABLE_MODE", "TokenizerEntry", "check_options", "finished", "identity",
           "plan", "run_reconstruction", "run_row", "tokenizer_entries"]
