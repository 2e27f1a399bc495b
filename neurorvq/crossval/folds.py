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
* Parts files (a split file with ``train`` / ``val`` / ``test`` parts, or ``train`` / ``test``): run as **one**
  fold (``--folds 1``, :func:`parts_fold`). Test = the windows of the ``test`` part's groups. Validation: with
  ``val_fraction > 0`` (``clean``) the file's ``val`` part when it has one, else a share ``val_fraction`` of the
  training side's groups drawn by ``(seed, 0)`` as for a fold of a folds file; with ``val_fraction == 0``
  (``parity``) there is none and a ``val`` part joins training. Train = every other group (the ``train`` part,
  and the groups the file lists in no part unless ``--unlisted drop``).
* Validation groups of another column (``val_group_by``, e.g. ``subject`` for a split by ``user_set`` whose
  training side is a single group): the fold is then expressed in the groups of that column. Each of them must lie
  inside one part (or inside or outside each fold's test part): a group with windows on both sides is an error
  naming it. The stored ``folds.json`` lists groups of that column.
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
                     stratify: np.ndarray | None = None, ids: Mapping[str, int] | None = None,
                     units: np.ndarray | None = None, units_by: str | None = None) -> list[Fold]:
    """Fold ``k``: test = the windows whose group the file's ``k``-th fold lists (matched to ``groups``, the
    ``[N]`` group of every window, by :meth:`SplitFile.match_all`; ``ids`` maps subject names to ids), train =
    every other group less a validation share ``val_fraction`` of them, drawn by ``(seed, k)`` in proportion to
    the groups' majority ``stratify`` value as :func:`subject_kfold` does. ``units`` (``[N]`` values of column
    ``units_by``): draw the validation groups among these instead, the folds then listing them
    (:func:`nested_units`)."""
    if split.kind != "folds":
        raise ConfigError(f"split file '{split.path}' gives train/val/test parts ({', '.join(split.groups)}); it is "
                          "one split, run as one fold: pass --folds 1 (neurorvq cv), or give a split file with folds "
                          "(a JSON \"folds\" object, fold name -> held-out values, or a CSV with the header "
                          f"'{split.by},fold')")
    _check_val_fraction(val_fraction)
    unique = np.unique(groups)
    held_out = split.match_all(unique, ids)
    folds = []
    for k, (name, test_part) in enumerate(held_out.items()):
        where = f"split file '{split.path}' {split.where(name)}: fold {name!r}"
        test_units = test_part if units is None else nested_units(groups, test_part, units, units_by,
                                                                  f"{where} ({split.by} {_show(test_part)})")
        folds.append(held_out_fold(groups if units is None else units, test_units, k, seed, val_fraction, stratify,
                                   too_few=lambda n_rest, n_val, where=where: (
            f"{where} leaves {n_rest} {units_by or split.by} group(s) outside its test part, too few for {n_val} "
            f"validation and one training group (--val_fraction {val_fraction}); lower --val_fraction (0: none)")))
    return folds


def _check_val_fraction(val_fraction: float) -> None:
    if not 0.0 <= float(val_fraction) < 1.0:
        raise ConfigError(f"--val_fraction is {val_fraction}; give a fraction in [0, 1)")


def _show(values: Any, limit: int = 8) -> str:
    values = [v.item() if isinstance(v, np.generic) else v for v in values]
    return repr(values[:limit])[:-1] + (", ...]" if len(values) > limit else "]")


def nested_units(groups: np.ndarray, part: Any, units: np.ndarray, units_by: str | None, where: str) -> list:
    """The values of ``units`` (``[N]``, e.g. subjects) of the windows whose ``groups`` value is in ``part``
    (sorted); a unit that also has windows outside ``part`` is a :class:`ConfigError` naming it and ``where``:
    the validation groups of ``val_group_by`` must each lie on one side of the split."""
    inside = np.isin(groups, np.asarray(list(part), dtype=groups.dtype)) if len(part) else np.zeros(len(groups), bool)
    mine = set(np.unique(units[inside]).tolist())
    crossing = sorted(mine & set(np.unique(units[~inside]).tolist()), key=str)
    if crossing:
        raise ConfigError(f"--val_group_by {units_by!r}: {units_by} value(s) {_show(crossing)} have windows both in "
                          f"and outside {where}; validation groups must each lie inside one part. Choose a "
                          f"--val_group_by nested in --group_by (e.g. subject inside user_set), or none")
    return sorted(mine, key=lambda v: (str(type(v)), v))


def parts_fold(split: SplitFile, groups: np.ndarray, *, seed: int, val_fraction: float,
               stratify: np.ndarray | None = None, ids: Mapping[str, int] | None = None,
               units: np.ndarray | None = None, units_by: str | None = None) -> Fold:
    """The one fold (index 0) of a parts split file (``train`` / ``val`` / ``test``; module docstring).

    Test = the windows whose group (``groups``, ``[N]``; values matched by :meth:`SplitFile.match_all`, ``ids``
    mapping subject names to ids) the ``test`` part lists. Validation, with ``val_fraction > 0``: the ``val``
    part's windows when the file has a non-empty one, else a share ``val_fraction`` of the other groups drawn by
    ``(seed, 0)`` in proportion to their majority ``stratify`` value (:func:`held_out_fold`); with
    ``val_fraction == 0`` none (a ``val`` part trains). Train = every other window. ``units``: the fold is made of
    these groups (``val_group_by``) instead, each lying inside one part (:func:`nested_units`)."""
    if split.kind != "parts":
        raise ConfigError(f"split file '{split.path}' holds {len(split.groups)} folds; run it with --folds "
                          f"{len(split.groups)} (a parts file, train/val/test, is the one-fold case)")
    _check_val_fraction(val_fraction)
    matched = split.match_all(np.unique(groups), ids)
    test_part, val_part = matched.get("test") or [], matched.get("val") or []
    if not test_part:
        raise ConfigError(f"split file '{split.path}' has no (or an empty) test part (parts: "
                          f"{', '.join(f'{k} {len(v)}' for k, v in split.groups.items())}); neurorvq cv scores the "
                          "test part: give the file one")
    use_val = bool(val_part) and float(val_fraction) > 0
    label = units_by or split.by
    fold_groups = groups if units is None else units

    def part_of(values: list, name: str) -> list:
        if units is None:
            return list(values)
        return nested_units(groups, values, units, units_by, f"the {name} part of split file '{split.path}' "
                            f"({split.by} {_show(values)})")

    test_units = part_of(test_part, "test")
    if not use_val:
        return held_out_fold(fold_groups, test_units, 0, seed, val_fraction, stratify, too_few=lambda n_rest, n_val: (
            f"split file '{split.path}' has no val part and its training side holds {n_rest} {label} group(s), "
            f"too few for {n_val} validation and one training group (--val_fraction {val_fraction}); give the file a "
            f"val part, draw validation groups from a finer column (--val_group_by, e.g. subject), or pass "
            "--val_fraction 0 (no validation: the last epoch is tested)"))
    val_units = part_of(val_part, "val")
    taken = {_plain(v) for v in [*test_units, *val_units]}
    train_units = [v for v in (_plain(u) for u in np.unique(fold_groups)) if v not in taken]
    if not train_units:
        raise ConfigError(f"split file '{split.path}': no {label} group is left for training outside the val and "
                          "test parts; add a train part")

    def indices(values: list) -> np.ndarray:
        if not values:
            return np.zeros(0, dtype=np.int64)
        return np.flatnonzero(np.isin(fold_groups, np.asarray(values, dtype=fold_groups.dtype))).astype(np.int64)

    ordered = [sorted(v, key=lambda x: (str(type(x)), x)) for v in (train_units, val_units, test_units)]
    return Fold(index=0, train=indices(ordered[0]), val=indices(ordered[1]), test=indices(ordered[2]),
                train_subjects=ordered[0], val_subjects=ordered[1], test_subjects=ordered[2])


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def unlisted_groups(split: SplitFile, groups: np.ndarray, ids: Mapping[str, int] | None = None) -> list:
    """Sorted values of ``groups`` (``[N]``, one per window) that no fold (or part) of the split file lists
    (matched as :func:`split_file_folds` matches them)."""
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
           "nested_units", "parts_fold", "split_file_folds", "stratify_values", "unlisted_groups", "window_groups"]
