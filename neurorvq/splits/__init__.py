"""The official 10-fold subject lists of the NeuroRVQ EEG benchmark (MLSP'25; ../shared/docs/benchmarks.md §3), as
split files (:mod:`neurorvq.data.split_files`, format ``neurorvq-split``): ``hgd``, ``kuerp``, ``pavlov``,
``sleepedf``, ``eyes``. Fold ``k`` holds out its subjects and trains on all the others; the ids are the datasets'
own subject ids (MOABB or PhysioNet subject numbers; Pavlov's BIDS labels), converted from the benchmark's prefixed
strings. Besides them, ``ptbxl_strat_fold``: PTB-XL's published patient-disjoint folds (benchmarks.md §4.1) by the
``strat_fold`` column, folds ``"1"``..``"10"`` each holding out its own ``strat_fold`` value (``neurorvq cv
--group_by strat_fold``); ``ninapro_db5_loso``: NinaPro DB5 leave-one-subject-out (fold ``k`` holds out subject
``k + 1``); ``epn612``: EMG-EPN-612's published users split by the ``user_set`` column (training users train,
testing users test); ``uci_emg``: UCI-EMG subjects 1-24 / 25-30 / 31-36 (train / val / test). ``path(name)`` gives a file for ``split: {file: ..., fold: "3"}`` or ``neurorvq cv
--folds_file``."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from neurorvq.errors import ConfigError
from neurorvq.suggest import did_you_mean

EEG_NAMES = ("hgd", "kuerp", "pavlov", "sleepedf", "eyes")
"""The EEG benchmark's five 10-fold subject lists."""
NAMES = (*EEG_NAMES, "ptbxl_strat_fold", "ninapro_db5_loso", "epn612", "uci_emg")


def path(name: str) -> Path:
    """The split file of the benchmark task ``name`` (one of :data:`NAMES`)."""
    if name not in NAMES:
        raise ConfigError(f"no benchmark split named {name!r} (known: {', '.join(NAMES)}){did_you_mean(name, NAMES)}")
    return Path(str(resources.files(__name__) / f"{name}.json"))


__all__ = ["EEG_NAMES", "NAMES", "path"]
