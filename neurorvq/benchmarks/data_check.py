"""Is a benchmark row's dataset here? Checked without loading a signal: the data folder exists, the recipe's
DataModule lists recordings in it (:meth:`~neurorvq.data.datamodule.RecordingDataModule.find_recordings`), and the
values of the row's split file are among them: subjects, or for a split by another column (``strat_fold``,
``user_set``) that column's values in the recordings' columns (a per-window column cannot be checked before loading:
its values count as found). A row without a split file (the dataset's own split, a reconstruction row) is present
when the DataModule lists recordings.

:func:`dataset_status` describes what it finds (for ``--list``); :func:`require_dataset` raises a
:class:`~neurorvq.errors.ConfigError` saying how to get the data (the DataModule module's ``download()``, the pip
extra, ``--root ROW=PATH``) or which subjects are missing and whether the download looks incomplete (some of the
split's subjects found) or the folder wrong (none found).

A subject counts as found when one of its listed recordings exists as a file or folder; a DataModule whose
recording paths are not files (none exists) counts every subject it lists.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from neurorvq.benchmarks.tables import Row, Table
from neurorvq.data.preprocess import DataError
from neurorvq.data.split_files import read_split_file, resolve_values
from neurorvq.errors import ConfigError

SHOWN = 20
"""Missing subjects listed in a message (then "...")."""


@dataclass
class DataStatus:
    """What is present for a row: ``root`` (absolute), whether it is a folder, the subjects the DataModule lists
    there (names and ids), the split's subjects (``listed``) and the ones of them not found (``missing``);
    ``problem``: why the DataModule could not list them (``None`` when it could)."""

    root: Path
    exists: bool
    listed: list = field(default_factory=list)
    found: list[str] = field(default_factory=list)
    missing: list = field(default_factory=list)
    problem: str | None = None
    module: str | None = None
    by: str = "subject"
    split: bool = True
    """Whether the row has a split file whose values are matched (``False``: the dataset's own split or none)."""

    @property
    def noun(self) -> str:
        """``subjects``, or ``<by> values`` for a split by another column."""
        return "subjects" if self.by == "subject" else f"{self.by} values"

    @property
    def present(self) -> bool:
        """The folder exists, the DataModule lists recordings, and every subject of the split is among them."""
        return self.exists and self.problem is None and bool(self.found) and not self.missing

    def text(self) -> str:
        """One line for ``--list``: ``present (103 of 103 split subjects)``, ``absent``, ``incomplete ...``."""
        if not self.exists:
            return f"absent ({self.root} does not exist)"
        if self.problem is not None:
            return f"not readable: {self.problem}"
        if not self.split:
            return f"present ({len(self.found)} subjects found)" if self.found else "no recordings found"
        n_listed, n_found = len(self.listed), len(self.listed) - len(self.missing)
        if not self.missing:
            return f"present ({n_found} of {n_listed} split {self.noun})"
        if n_found == 0:
            return f"wrong folder? none of the {n_listed} split {self.noun} found ({len(self.found)} other {self.noun})"
        return f"incomplete ({n_found} of {n_listed} split {self.noun} found)"


def recipe_data(recipe: Path) -> dict[str, Any]:
    """The recipe's ``data`` section (``class_path``, ``init_args``); :class:`ConfigError` when absent."""
    from neurorvq.file_io import read_yaml

    config = read_yaml(recipe) or {}
    section = config.get("data") if isinstance(config, dict) else None
    if not isinstance(section, dict) or "class_path" not in section:
        raise ConfigError(f"recipe '{recipe}' has no data section with a class_path; a benchmark recipe is a "
                          "fine-tuning recipe with model, data and trainer sections")
    return {"class_path": section["class_path"], "init_args": dict(section.get("init_args") or {})}


def download_hint(class_path: str | None, row: Row) -> str:
    """How to get the row's data: the DataModule module's ``download(...)`` when it has one, the row's source,
    the pip extra its reader needs."""
    parts = []
    if class_path:
        module_name = class_path.rsplit(".", 1)[0]
        try:
            module = importlib.import_module(module_name)
        except Exception:  # noqa: BLE001 - a hint only; the DataModule itself reports an import problem
            module = None
        download = getattr(module, "download", None) if module is not None else None
        if callable(download):
            try:
                params = [p.name if p.default is inspect.Parameter.empty else f"{p.name}={p.default!r}"
                          for p in inspect.signature(download).parameters.values()]
            except (TypeError, ValueError):
                params = ["..."]
            parts.append(f"{module_name}.download({', '.join(params)})")
    if row.get:
        parts.append(f"source: {row.get}")
    if row.extra:
        parts.append(f"needs pip install 'neurorvq[{row.extra}]'")
    if row.licence:
        parts.append(f"licence: {row.licence}")
    return "; ".join(parts) if parts else "see the dataset's page"


def _present(datamodule: Any) -> list:
    """The recordings the DataModule lists whose file or folder exists (all of them when none does: paths that are
    not files)."""
    infos = list(datamodule.find_recordings())
    exists = [Path(i.path).exists() for i in infos]
    return [i for i, e in zip(infos, exists) if e] if any(exists) else infos


def _subjects(datamodule: Any, by: str = "subject") -> tuple[list, dict[str, int] | None]:
    """``(names, {name: id})`` of the subjects with a recording present (ids as the DataModule numbers them); for
    ``by`` another column, ``(its values in the present recordings' columns, None)`` (``None`` values: a column
    the recordings do not carry)."""
    infos = list(datamodule.find_recordings())
    if not infos:
        return [], {}
    kept = _present(datamodule) if by != "subject" else None
    if by != "subject":
        if not any(by in i.columns for i in kept):
            return None, None
        return sorted({i.columns[by] for i in kept if by in i.columns}, key=lambda v: (str(type(v)), v)), None
    exists = [Path(i.path).exists() for i in infos]
    kept = [i for i, e in zip(infos, exists) if e] if any(exists) else infos
    names = sorted({i.subject for i in kept})
    if all(i.subject_id is not None for i in infos):
        ids = {i.subject: int(i.subject_id) for i in infos if i.subject in names}
    else:
        every = sorted({i.subject for i in infos})
        ids = {name: k for k, name in enumerate(every) if name in names}
    return names, ids


def dataset_status(recipe: Path, root: Path, split: Path | None, data_overrides: Sequence[str] = (),
                   by: str = "subject") -> DataStatus:
    """The row's :class:`DataStatus`: the recipe's DataModule built on ``root`` (with ``key=value``
    ``data_overrides`` of its init_args) lists its recordings; the split file's values of column ``by`` (subjects by
    default) are matched to them. ``split`` ``None``: no file to match (the dataset's own split, a reconstruction
    row): present when recordings are listed."""
    from neurorvq.commands import load_datamodule

    section = recipe_data(recipe)
    status = DataStatus(Path(root), Path(root).is_dir(), module=section["class_path"], by=by,
                        split=split is not None)
    if split is not None:
        folds = read_split_file(split, by=by)
        status.listed = [value for values in folds.groups.values() for value in values]
    if not status.exists:
        status.missing = list(status.listed)
        return status
    try:
        datamodule = load_datamodule(str(recipe), [f"root={root}", *data_overrides])
        names, ids = _subjects(datamodule, by)
        if names is None:  # a per-window column: its values are known once loaded
            names, ids = list(status.listed), None
        if split is None:
            names, ids = sorted({i.subject for i in _present(datamodule)}), None
    except (ConfigError, DataError) as error:
        status.problem = str(error)
        status.missing = list(status.listed)
        return status
    except Exception as error:  # noqa: BLE001 - jsonargparse wraps a class that cannot be imported or built
        cause = error.__cause__ or error
        first = str(cause).splitlines()[0] if str(cause) else repr(cause)
        status.problem = f"{section['class_path']} cannot be built: {first}"
        status.missing = list(status.listed)
        return status
    status.found = names
    if split is not None:
        _, status.missing = resolve_values(status.listed, names, ids, where=f"split file '{split}'")
    return status


def _show(values: Sequence) -> str:
    listed = [str(v) for v in values]
    return ", ".join(listed[:SHOWN]) + (f", ... ({len(listed) - SHOWN} more)" if len(listed) > SHOWN else "")


def require_dataset(table: Table, row: Row, recipe: Path, root: Path, split: Path | None,
                    data_overrides: Sequence[str] = ()) -> DataStatus:
    """:func:`dataset_status`, or a :class:`ConfigError` when the row cannot run on what is there: the folder is
    absent (how to download it, ``--root``), the DataModule cannot list it (or lists nothing), or split values are
    missing (listed; an incomplete download when some are found, a wrong folder when none are)."""
    status = dataset_status(recipe, root, split, data_overrides, by=row.group_by if split is not None else "subject")
    where = f"row '{row.key}' ({row.dataset})"
    point = (f"or point the row at a local copy with --root {row.key}=PATH (or --data_dir DIR holding "
             f"'{row.data_folder}/', or the recipe's data.init_args.root)")
    if not status.exists:
        raise ConfigError(f"{where}: the data folder {root} does not exist. Download the data into it "
                          f"({download_hint(status.module, row)}), {point}")
    if status.problem is not None:
        raise ConfigError(f"{where}: {status.problem}")
    if not status.split and not status.found:
        raise ConfigError(f"{where}: the DataModule lists no recordings under {root}; {point}, or download the data "
                          f"({download_hint(status.module, row)})")
    if status.missing:
        n_listed, n_missing = len(status.listed), len(status.missing)
        found = n_listed - n_missing
        noun = status.noun
        if found:
            diagnosis = (f"the download looks incomplete ({found} of the {n_listed} {noun} are there): download "
                         f"the missing {noun} ({download_hint(status.module, row)})")
        else:
            seen = f"it holds {noun} {_show(status.found)}" if status.found else "no recordings were found in it"
            diagnosis = (f"none of them are there ({seen}): the folder looks wrong; {point}, or download the data "
                         f"({download_hint(status.module, row)})")
        what = "subject(s)" if row.group_by == "subject" else f"{row.group_by} value(s)"
        raise ConfigError(f"{where}: split file {split} lists {n_missing} {what} missing under {root}: "
                          f"{_show(status.missing)}; {diagnosis}")
    return status


__all__ = ["DataStatus", "dataset_status", "download_hint", "recipe_data", "require_dataset"]
