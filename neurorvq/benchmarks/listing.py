"""``neurorvq benchmark --list``: every table, its rows (task, dataset, split file, recipe, published NeuroRVQ
number) and whether each row's dataset is present locally: the data folder exists, the recipe's DataModule lists
recordings there (nothing is loaded) and how many of the split's subjects it finds. Rows without a recipe show
"not yet available"."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

from neurorvq.benchmarks.data_check import dataset_status, download_hint, recipe_data
from neurorvq.benchmarks.tables import NOT_AVAILABLE, TABLES, Row, Table, data_root, recipe_path, split_path
from neurorvq.errors import ConfigError


def _published(table: Table, row: Row) -> str:
    scores = [(m, m.score(row.key)) for m in table.published if m.model == "NeuroRVQ"]
    return "; ".join(f"published {m.model} {row.metric.replace('_', ' ')} {s.text()}" for m, s in scores
                     if s is not None)


def _split_text(table: Table, row: Row) -> str:
    from neurorvq.data.split_files import read_split_file

    try:
        path = split_path(table, row)
        split = read_split_file(path, by="subject")
    except ConfigError as error:
        return f"{row.split} ({error})"
    subjects = sum(len(v) for v in split.groups.values())
    return f"{row.split}: {subjects} subjects in {len(split.groups)} folds ({path})"


def row_lines(table: Table, row: Row, recipes: str | Path | None, data_dir: str | Path | None,
              roots: Mapping[str, str], data_overrides: Sequence[str] = ()) -> list[str]:
    """The lines of one row: heading, then split, recipe, data (status and how to get it)."""
    published = _published(table, row)
    classes = f", {row.classes} classes" if row.classes else ""
    head = f"  {row.key} ({row.task}): {row.dataset}{classes}" + (f" — {published}" if published else "")
    if not row.available:
        return [head, f"      {NOT_AVAILABLE} (no recipe yet); data: {row.get or 'see the dataset page'}"
                      + (f"; licence: {row.licence}" if row.licence else "")]
    recipe = recipe_path(table, row, recipes)
    lines = [head, f"      split:  {_split_text(table, row)}"]
    if not recipe.is_file():
        root = data_root(table, row, data_dir, roots)
        lines += [f"      recipe: {recipe} (missing)",
                  f"      data:   {root}: {'exists' if root.is_dir() else 'absent'} (the recipe is needed to check it)"]
        return lines
    lines.append(f"      recipe: {recipe}")
    try:
        section = recipe_data(recipe)
        root = data_root(table, row, data_dir, roots, section["init_args"].get("root"))
        status = dataset_status(recipe, root, split_path(table, row), data_overrides)
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
