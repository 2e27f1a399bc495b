"""The folds of ``neurorvq cv``: what a fold holds out (``--group_by``), what its test parts are balanced on
(``--stratify_by``), and folds read from a file (``--folds_file``).

* Groups: ``subject`` (the subject names of the DataModule), ``recording`` (the file, relative to the data root) or
  any column of the pooled windows (:meth:`~neurorvq.data.windowset.WindowDataset.column`: ``session``, ``run``,
  ``trial``, ...).
* Stratification: ``label`` (the class, as :func:`~neurorvq.data.splits.subject_kfold` does by default), ``none``,
  or any column (e.g. ``repetition``): scikit-learn's ``StratifiedGroupKFold`` balances that column's values over
  the test parts, and the validation groups are drawn in proportion to the groups' majority value of it. Whatever
  the column, the *label* checks stay on the labels: a test part missing a class is refused unless
  ``--allow_missing_classes`` (:func:`~neurorvq.data.splits.check_test_classes`).
* Files: the ``folds.json`` of an earlier run (format ``neurorvq-subject-folds``, :func:`~neurorvq.data.splits.
  load_folds`), or a split file with folds (:mod:`neurorvq.data.split_files`): fold ``k`` of the run tests the
  groups listed by the file's ``k``-th fold (file order) and trains on every other group, with validation groups
  drawn from that training side by ``val_fraction``, seeded by ``(seed, k)`` as in ``subject_kfold`` (``0``: no
  validation, the published benchmark protocol). Groups the file lists in no fold train in every fold
  (``--unlisted train``) or are dropped from the data first (``--unlisted drop``, :func:`drop_unlisted`: the
  benchmark tests and trains only on the subjects its fold lists name).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from neurorvq.data.preprocess import DataError
from neurorvq.data.split_files import SplitFile
from neurorvq.data.splits import FOLDS_FORMAT, Fold, check_test_classes, held_out_fold, subject_kfold
from neurorvq.data.windowset import WindowDataset
from neurorvq.errors import ConfigError

NAMED_GROUPS = ("subject", "recording")
"""Groupings whose values are names rather than the raw column (subject names, paths relative to the root)."""
UNSTRATIFIED = "none"


def column_values(pool: WindowDataset, name: str, option: str) -> np.ndarray:
    """``[N]`` values of column ``name``; a missing one is a :class:`ConfigError` naming ``option`` and listing
    the columns."""
    try:
        return pool.column(name)
    except DataError as error:
        raise ConfigError(f"{option} {name!r}: {error}") from None


def window_groups(pool: WindowDataset, group_by: str, datamodule: Any) -> np.ndarray:
    """``[N]`` group of every window: the subject name (``subject``), the recording file relative to the data
    root (``recording``), or the window's value of column ``group_by``."""
    if group_by == "subject":
        names = {number: name for name, number in getattr(datamodule, "subject_ids", {}).items()}
        return np.asarray([names.get(int(s), str(int(s))) for s in pool.subjects])
    if group_by == "recording":
        root = Path(getattr(datamodule, "root", "/"))
        return np.asarray([str(Path(r).relative_to(root)) if Path(r).is_relative_to(root) else r
                           for r in pool.recordings])
    return column_values(pool, group_by, "--group_by")


def stratify_values(pool: WindowDataset, stratify_by: str) -> np.ndarray | None:
    """``[N]`` values the folds are stratified by: the labels (``label``), none (``none``) or a column."""
    if stratify_by == UNSTRATIFIED:
        return None
    if stratify_by == "label":
        return pool.labels
    values = column_values(pool, stratify_by, "--stratify_by")
    distinct = np.unique(values)
    if len(distinct) < 2:
        raise ConfigError(f"--stratify_by {stratify_by!r}: every window has the value {distinct[0].item()!r}, so "
                          "there is nothing to stratify by; use --stratify_by none or another column")
    return values


def kfold(groups: np.ndarray, labels: np.ndarray, stratify_by: str, stratify: np.ndarray | None, *, n_folds: int,
          seed: int, val_fraction: float, require_all_classes: bool) -> list[Fold]:
    """Folds over ``groups`` stratified by ``stratify`` (:func:`subject_kfold`); the class checks of the test
    parts are made on ``labels`` whatever the stratification."""
    if stratify_by == "label":
        return subject_kfold(groups, labels, n_folds=n_folds, seed=seed, val_fraction=val_fraction,
                             require_all_classes=require_all_classes)
    try:
        with warnings.catch_warnings():  # its single-class warning would be about the column: labels are checked below
            warnings.filterwarnings("ignore", message=r".*test folds hold a single class", category=UserWarning)
            folds = subject_kfold(groups, stratify, n_folds=n_folds, seed=seed, val_fraction=val_fraction)
    except ConfigError as error:
        if stratify is None:
            raise
        raise ConfigError(f"--stratify_by {stratify_by!r}: {error}") from None
    check_test_classes(labels, folds, require_all_classes, fix="use another --seed, fewer folds or --stratify_by "
                       "label", override="--allow_missing_classes")
    return folds


def is_run_folds(path: str | Path) -> bool:
    """Whether ``path`` is the ``folds.json`` of a ``neurorvq cv`` run (rather than a split file)."""
    path = Path(path)
    if path.suffix.lower() != ".json":
        return False
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False  # the split file reader names the problem
    return isinstance(payload, dict) and payload.get("format") == FOLDS_FORMAT


def split_file_folds(split: SplitFile, groups: np.ndarray, *, seed: int, val_fraction: float,
                     stratify: np.ndarray | None = None, ids: Mapping[str, int] | None = None) -> list[Fold]:
    """Fold ``k``: test = the windows whose group the file's ``k``-th fold lists (matched to ``groups``, the
    ``[N]`` group of every window, by :meth:`SplitFile.match_all`; ``ids`` maps subject names to ids), train =
    every other group less a validation share ``val_fraction`` of them, drawn by ``(seed, k)`` in proportion to
    the groups' majority ``stratify`` value as :func:`subject_kfold` does."""
    if split.kind != "folds":
        raise ConfigError(f"split file '{split.path}' gives train/val/test parts ({', '.join(split.groups)}); "
                          "neurorvq cv needs folds: a JSON \"folds\" object (fold name -> held-out values) or a CSV "
                          f"with the header '{split.by},fold'")
    if not 0.0 <= float(val_fraction) < 1.0:
        raise ConfigError(f"--val_fraction is {val_fraction}; give a fraction in [0, 1)")
    unique = np.unique(groups)
    held_out = split.match_all(unique, ids)
    folds = []
    for k, (name, test_part) in enumerate(held_out.items()):
        folds.append(held_out_fold(groups, test_part, k, seed, val_fraction, stratify, too_few=lambda n_rest, n_val,
                                   name=name: (
            f"split file '{split.path}' {split.where(name)}: fold {name!r} leaves {n_rest} {split.by} group(s) "
            f"outside its test part, too few for {n_val} validation and one training group (--val_fraction "
            f"{val_fraction}); lower --val_fraction (0: none)")))
    return folds


def unlisted_groups(split: SplitFile, groups: np.ndarray, ids: Mapping[str, int] | None = None) -> list:
    """Sorted values of ``groups`` (``[N]``, one per window) that no fold of the split file lists (matched as
    :func:`split_file_folds` matches them)."""
    unique = np.unique(groups)
    listed = {value for values in split.match_all(unique, ids).values() for value in values}
    return sorted((g for g in unique.tolist() if g not in listed), key=str)


def drop_unlisted(pool: WindowDataset, groups: np.ndarray, split: SplitFile,
                  ids: Mapping[str, int] | None = None) -> tuple[WindowDataset, np.ndarray, list]:
    """``(pool, groups, dropped)`` without the windows of the groups no fold of ``split`` lists: the pool's
    subset (window order kept) and its ``[M]`` groups, and the dropped group values (sorted). Unchanged inputs
    when every group is listed (a listed value missing from the data is the split file reader's error)."""
    dropped = unlisted_groups(split, groups, ids)
    if not dropped:
        return pool, groups, []
    keep = np.flatnonzero(~np.isin(groups, np.asarray(dropped, dtype=groups.dtype)))
    return pool.subset(keep), groups[keep], dropped


__all__ = ["NAMED_GROUPS", "UNSTRATIFIED", "column_values", "drop_unlisted", "is_run_folds", "kfold",
           "split_file_folds", "stratify_values", "unlisted_groups", "window_groups"]
