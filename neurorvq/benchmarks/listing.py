"""``neurorvq benchmark --list``: every table, its rows (task, dataset, split and what it is by, recipe, published
NeuroRVQ number, the row's protocol note, and "UNDETERMINED" with what stays open) and whether each row's dataset is
present locally: the data folder exists, the recipe's DataModule lists recordings there (nothing is loaded) and how
many of the split's values it finds. Rows without a recipe show "not yet available"."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

from neurorvq.benchmarks.data_check import dataset_status, download_hint, recipe_data
from neurorvq.benchmarks.tables import (DATASET_SPLIT, NOT_AVAILABLE, TABLES, UNDETERMINED, Row, Table, data_root,
                                       recipe_path, split_kind, split_path)
from neurorvq.errors import ConfigError


def _published(table: Table, row: Row) -> str:
    scores = [(m, m.score(row.key)) for m in table.published if m.model == "NeuroRVQ"]
    return "; ".join(f"published {m.model} {m.metric.replace('_', ' ')} {s.text()}" for m, s in scores
                     if s is not None)


def _split_text(table: Table, row: Row) -> str:
    from neurorvq.data.split_files import read_split_file

    if row.reconstruction:
        return (f"none: the DataModule's {row.read_split} split, --max_windows of its windows drawn reproducibly "
                "(reconstruction)")
    if row.split == DATASET_SPLIT:
        return ("the dataset's own published split (the DataModule's default_split), resolved without loading when "
                "the row runs and written into its run folder as split.json; one split, by subject")
    try:
        path = split_path(table, row)
        split = read_split_file(path, by=row.group_by)
    except ConfigError as error:
        return f"{row.split} ({error})"
    noun = "subjects" if split.by == "subject" else f"{split.by} values"
    if split.kind == "parts":
        parts = " / ".join(f"{name} {len(values)}" for name, values in split.groups.items())
        validation = f"; clean validation by {row.val_group_by}" if row.val_group_by else ""
        return f"{row.split}: parts {parts} {noun}, one split{validation} ({path})"
    values = sum(len(v) for v in split.groups.values())
    return f"{row.split}: {values} {noun} in {len(split.groups)} folds ({path})"


def row_lines(table: Table, row: Row, recipes: str | Path | None, data_dir: str | Path | None,
              roots: Mapping[str, str], data_overrides: Sequence[str] = ()) -> list[str]:
    """The lines of one row: heading, then split, recipe, data (status and how to get it)."""
    published = _published(table, row)
    classes = f", {row.classes} classes" if row.classes else ""
    marked = f" [{UNDETERMINED.upper()}]" if row.undetermined else ""
    head = f"  {row.key} ({row.task}){marked}: {row.dataset}{classes}" + (f" — {published}" if published else "")
    if not row.available:
        return [head, f"      {NOT_AVAILABLE} (no recipe yet); data: {row.get or 'see the dataset page'}"
                      + (f"; licence: {row.licence}" if row.licence else "")]
    recipe = recipe_path(table, row, recipes)
    lines = [head, f"      split:  {_split_text(table, row)}"]
    if row.note:
        lines.append(f"      note:   {row.note}")
    if row.undetermined:
        lines.append(f"      {UNDETERMINED}: {row.undetermined}")
    if not recipe.is_file():
        root = data_root(table, row, data_dir, roots)
        lines += [f"      recipe: {recipe} (missing)",
                  f"      data:   {root}: {'exists' if root.is_dir() else 'absent'} (the recipe is needed to check it)"]
        return lines
    lines.append(f"      recipe: {recipe}")
    try:
        section = recipe_data(recipe)
        root = data_root(table, row, data_dir, roots, section["init_args"].get("root"))
        with_file = split_kind(table, row) in ("folds", "parts")
        status = dataset_status(recipe, root, split_path(table, row) if with_file else None, data_overrides,
                                by=row.group_by if with_file else "subject")
    except ConfigError as error:
        lines.append(f"      data:   cannot check: {error}")
        return lines
    lines.append(f"      data:   {root}: {status.text()}")
    if not status.present:
        lines.append(f"      get:    {download_hint(status.module, row)}")
    return lines


def list_tables(tables: Sequence[Table] | None = None, recipes: str | Path | None = None,
                data_dir: str | Path | None = None, roots: Mapping[str, str] | None = None,
                data_overrides: Sequence[str] = ()) -> str:
    """The ``--list`` text of ``tables`` (default: every built-in table)."""
    lines = []
    for table in (tables if tables is not None else list(TABLES.values())):
        ready = sum(r.available for r in table.rows)
        lines.append(f"table {table.key}: {table.title} ({len(table.rows)} rows, {ready} runnable; {table.source})")
        for row in table.rows:
            lines += row_lines(table, row, recipes, data_dir, roots or {}, data_overrides)
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


__all__ = ["list_tables", "row_lines"]
