"""The folds of a ``neurorvq cv`` run: made once and saved as ``<out>/folds.json``, then reused by every later run
into ``<out>`` (checked against the data).

:func:`make_folds` reads ``folds.json`` or makes new folds (:func:`new_folds`): drawn by ``seed``
(:func:`~neurorvq.crossval.folds.kfold`), copied from another run's ``folds.json``, or read from a split file with
folds or train/val/test parts (:mod:`neurorvq.data.split_files`; validation groups from the training side, or from the
finer column ``val_group_by``, :func:`fold_units`). :func:`apply_unlisted` leaves out the groups a split file lists
nowhere (``unlisted="drop"``) before the folds are made, on every run, so the stored folds index the same windows.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from neurorvq.crossval.folds import (drop_unlisted, is_run_folds, kfold, parts_fold, split_file_folds,
                                     stratify_values, window_groups)
from neurorvq.data.split_files import read_split_file
from neurorvq.data.splits import Fold, check_test_classes, load_folds, save_folds
from neurorvq.data.windows import WindowDataset
from neurorvq.errors import ConfigError

if TYPE_CHECKING:  # the runner imports this module
    from neurorvq.crossval.runner import CVSettings


def say(message: str) -> None:
    """A progress line of ``neurorvq cv``."""
    print(f"[neurorvq cv] {message}", flush=True)


def make_folds(settings: CVSettings, pool: WindowDataset, groups: np.ndarray, out: Path,
               datamodule: Any = None) -> list[Fold]:
    """The folds of ``<out>/folds.json`` when present (checked against the data), else new ones saved there: from
    ``settings.folds_file`` (another run's ``folds.json`` or a split file with folds), or drawn by ``seed``."""
    path = out / "folds.json"
    if not path.is_file():
        folds, metadata = new_folds(settings, pool, groups, datamodule)
        if metadata is None:  # another run's folds.json: kept as it is
            path.write_text(Path(settings.folds_file).read_text())
        else:
            save_folds(folds, path, metadata=metadata)
        return folds
    folds = load_folds(path, subjects=fold_units(settings, pool, groups, datamodule))
    if len(folds) != settings.n_folds:
        raise ConfigError(f"{path} holds {len(folds)} folds but --folds is {settings.n_folds}; use another --out")
    return folds


def fold_units(settings: CVSettings, pool: WindowDataset, groups: np.ndarray, datamodule: Any = None) -> np.ndarray:
    """``[N]`` groups the folds list: ``groups`` (of ``group_by``), or the values of ``val_group_by`` when it is
    set (and differs)."""
    if settings.val_group_by is None or settings.val_group_by == settings.group_by:
        return groups
    if not isinstance(settings.val_group_by, str) or not settings.val_group_by.strip():
        raise ConfigError(f"--val_group_by is {settings.val_group_by!r}; give a column of the windows (e.g. subject)")
    return window_groups(pool, settings.val_group_by, datamodule)


def new_folds(settings: CVSettings, pool: WindowDataset, groups: np.ndarray,
              datamodule: Any = None) -> tuple[list[Fold], dict[str, Any] | None]:
    """``(folds, metadata to save with them)``; the metadata is ``None`` for another run's ``folds.json``, which
    is copied unchanged."""
    metadata = {"group_by": settings.group_by, "stratify_by": settings.stratify_by, "seed": settings.seed,
                "val_fraction": settings.val_fraction, "recipe": settings.recipe, "windows": len(groups)}
    nested = settings.val_group_by is not None and settings.val_group_by != settings.group_by
    if nested:
        metadata["val_group_by"] = settings.val_group_by
    stratify = stratify_values(pool, settings.stratify_by)
    source = settings.folds_file
    if nested and (source is None or is_run_folds(source)):
        raise ConfigError(f"--val_group_by {settings.val_group_by} draws the validation groups inside the parts of a "
                          "split file; give --folds_file <split file> (folds or train/val/test parts), or drop "
                          "--val_group_by")
    if source is None:
        folds = kfold(groups, pool.labels, settings.stratify_by, stratify, n_folds=settings.n_folds,
                      seed=settings.seed, val_fraction=settings.val_fraction,
                      require_all_classes=settings.require_all_classes)
        return folds, metadata
    if not Path(source).is_file():
        raise ConfigError(f"--folds_file '{source}' does not exist; give the folds.json of an earlier neurorvq cv run "
                          "or a split file with folds (JSON or CSV)")
    if is_run_folds(source):
        earlier = json.loads(Path(source).read_text()).get("metadata") or {}
        if earlier.get("group_by", settings.group_by) != settings.group_by:
            raise ConfigError(f"--folds_file '{source}' holds folds by {earlier['group_by']!r} but --group_by is "
                              f"{settings.group_by!r}; pass --group_by {earlier['group_by']}")
        folds = load_folds(source, subjects=groups)
        if len(folds) != settings.n_folds:
            raise ConfigError(f"--folds_file '{source}' holds {len(folds)} folds but --folds is {settings.n_folds}; "
                              f"pass --folds {len(folds)}")
        return folds, None
    split = read_split_file(source, by=settings.group_by)
    if split.kind == "folds" and len(split.groups) != settings.n_folds:
        raise ConfigError(f"split file '{source}' holds {len(split.groups)} folds but --folds is {settings.n_folds}; "
                          f"pass --folds {len(split.groups)}")
    if split.kind == "parts" and settings.n_folds != 1:
        raise ConfigError(f"split file '{source}' holds train/val/test parts ({', '.join(split.groups)}): one split, "
                          f"run as one fold, but --folds is {settings.n_folds}; pass --folds 1")
    ids = getattr(datamodule, "subject_ids", None) if settings.group_by == "subject" else None
    units = fold_units(settings, pool, groups, datamodule) if nested else None
    common = dict(seed=settings.seed, val_fraction=settings.val_fraction, stratify=stratify, ids=ids, units=units,
                  units_by=settings.val_group_by if nested else None)
    folds = [parts_fold(split, groups, **common)] if split.kind == "parts" else split_file_folds(split, groups,
                                                                                                 **common)
    check_test_classes(pool.labels, folds, settings.require_all_classes,
                       fix="the file fixes the test parts: run on data holding every class in each",
                       override="--allow_missing_classes")
    listed = {v for values in split.match_all(np.unique(groups), ids).values() for v in values}
    untested = sorted((g for g in np.unique(groups).tolist() if g not in listed), key=str)
    if untested:
        where = "fold" if split.kind == "folds" else "part"
        say(f"{len(untested)} {settings.group_by} values are in no {where} of {source} and train in every fold: "
             f"{untested[:10]}{' ...' if len(untested) > 10 else ''} (--unlisted drop leaves them out)")
    metadata.update(folds_file=str(source), fold_names=list(split.groups), by=split.by, source=split.source,
                    unlisted=settings.unlisted, kind=split.kind)
    return folds, metadata


def apply_unlisted(settings: CVSettings, pool: WindowDataset, groups: np.ndarray,
                   datamodule: Any = None) -> tuple[WindowDataset, np.ndarray, list]:
    """``(pool, groups, dropped)``: with ``unlisted="drop"`` and a split file as ``folds_file``, the pool and its
    ``[M]`` groups without the windows of the groups the file lists in no fold (a printed line says how many and
    which); otherwise the inputs unchanged and ``dropped`` empty. Done on every run into ``out`` (resumes too), so
    the stored folds always index the same windows."""
    source = settings.folds_file
    if settings.unlisted != "drop" or source is None or not Path(source).is_file() or is_run_folds(source):
        return pool, groups, []  # another run's folds.json names every group's part
    split = read_split_file(source, by=settings.group_by)
    ids = getattr(datamodule, "subject_ids", None) if settings.group_by == "subject" else None
    before = len(groups)
    pool, groups, dropped = drop_unlisted(pool, groups, split, ids)
    if dropped:
        say(f"--unlisted drop: {len(dropped)} {settings.group_by} value(s) that no {split.kind[:-1]} of {source} "
             f"lists are left out ({before - len(groups)} of {before} windows): {dropped}")
    return pool, groups, dropped


__all__ = ["apply_unlisted", "fold_units", "make_folds", "new_folds", "say"]
