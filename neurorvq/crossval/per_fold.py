"""Per-fold overrides of ``neurorvq cv``: ``{fold}`` in an override is replaced by the fold's index.

A foundation model compared with its from-scratch twin under leave-one-subject-out must not have been pretrained
on the test subject. Pretrain one FM per fold on that fold's training subjects only, then point every fold at its
own checkpoint::

    neurorvq cv ... --model.init_args.fm=runs/fm_fold{fold}/checkpoints/last.ckpt

The override is kept as written in ``cv.json`` (a resumed run must give the same template); each fold trains,
tests and reports with its resolved value. Paths that a fold resolves to are checked before any training.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from neurorvq.errors import ConfigError

FOLD_FIELD = "{fold}"
PATH_SUFFIXES = (".ckpt", ".pt", ".pth", ".safetensors", ".bin", ".yaml", ".json")


def has_fold_field(overrides: Sequence[str]) -> bool:
    """Whether any override depends on the fold."""
    return any(FOLD_FIELD in arg for arg in overrides)


def fold_overrides(overrides: Sequence[str], index: int) -> list[str]:
    """``overrides`` with ``{fold}`` replaced by ``index`` (the fold's number in ``folds.json``)."""
    return [arg.replace(FOLD_FIELD, str(int(index))) for arg in overrides]


def check_fold_fields(overrides: Sequence[str], grid: Sequence[str] | None = None) -> None:
    """``{fold}`` only in ``--model...`` overrides: the data are loaded once for all folds (a per-fold data
    override would silently keep the first fold's value) and a grid's settings are the same for every fold."""
    misplaced = [arg for arg in overrides if FOLD_FIELD in arg and not arg.startswith("--model")]
    misplaced += [f"--grid {item}" for item in (grid or []) if FOLD_FIELD in item]
    if misplaced:
        raise ConfigError(f"{FOLD_FIELD} is only replaced in --model... overrides (one checkpoint per fold); not in "
                          f"{misplaced}: the data are loaded once for every fold and --grid settings are shared")


def check_fold_paths(overrides: Sequence[str], indices: Sequence[int]) -> None:
    """Refuse, before any training, a per-fold override that names a file or folder missing for some fold.

    A value counts as a path when it has a folder separator or a checkpoint/config suffix; other values (e.g.
    ``--seed_everything={fold}``) are not checked."""
    missing = []
    for arg in overrides:
        if FOLD_FIELD not in arg or "=" not in arg:
            continue
        key, value = arg.split("=", 1)
        if "/" not in value and not value.endswith(PATH_SUFFIXES):
            continue
        for index in indices:
            resolved = value.replace(FOLD_FIELD, str(int(index)))
            if not Path(resolved).exists():
                missing.append(f"fold {index}: {key}={resolved}")
    if missing:
        raise ConfigError("per-fold override names files that do not exist:\n  " + "\n  ".join(missing)
                          + "\n({fold} is each fold's index in folds.json; make the file for every fold first, e.g. "
                          "pretrain one FM per fold on its training subjects, or run the ready folds with "
                          "--only_folds)")


__all__ = ["FOLD_FIELD", "check_fold_fields", "check_fold_paths", "fold_overrides", "has_fold_field"]
