"""``neurorvq fit|validate|test|predict``: LightningCLI over any recipe, with checks that keep a user's mistakes
from costing a run folder.

* ``--ckpt_path`` naming a missing file is refused before anything is built.
* Resuming a run that already reached ``max_epochs`` (or ``max_steps``) says so and how to extend it (raise
  ``--trainer.max_epochs``), instead of Lightning's bare "max_epochs reached".
* A run that fails before its first training step leaves no ``version_N`` folder behind (only its saved config
  would be in it).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any, Sequence

from lightning.pytorch.callbacks import Callback
from lightning.pytorch.cli import LightningCLI

from neurorvq.errors import CheckpointError, ConfigError

SPECIAL_CKPT_PATHS = ("last", "best", "hpc", "registry")


def ckpt_path_argument(argv: Sequence[str]) -> str | None:
    """The value of ``--ckpt_path`` on the command line, if any."""
    args = list(argv)
    for i, arg in enumerate(args):
        if arg == "--ckpt_path" and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith("--ckpt_path="):
            return arg.split("=", 1)[1]
    return None


def check_ckpt_exists(ckpt_path: str | None) -> None:
    """Refuse a ``ckpt_path`` that is neither a special Lightning value nor an existing file."""
    if not ckpt_path or ckpt_path in ("null", "None") or ckpt_path.split(":")[0] in SPECIAL_CKPT_PATHS:
        return
    if not Path(ckpt_path).is_file():
        raise CheckpointError(f"--ckpt_path '{ckpt_path}' does not exist; give the checkpoint to resume from "
                              "(e.g. <run>/checkpoints/last.ckpt) or leave --ckpt_path out to start a new run")


def finished_training(ckpt_path: str, max_epochs: int | None, max_steps: int | None) -> str | None:
    """Why resuming ``ckpt_path`` would train nothing (it already reached ``max_epochs``/``max_steps``), or None."""
    import torch

    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False, mmap=True)
    if not isinstance(ckpt, dict) or "epoch" not in ckpt:
        return None
    progress = (ckpt.get("loops") or {}).get("fit_loop", {}).get("epoch_progress", {}).get("current", {})
    epochs_done = int(progress.get("processed", int(ckpt["epoch"]) + 1))
    steps_done = int(ckpt.get("global_step", 0))
    if max_steps is not None and max_steps > 0 and steps_done >= max_steps:
        return (f"the checkpoint already reached max_steps={max_steps} (step {steps_done}); to train on, raise "
                f"--trainer.max_steps (e.g. --trainer.max_steps={2 * max_steps})")
    if max_epochs is not None and max_epochs > 0 and epochs_done >= max_epochs and not (max_steps and max_steps > 0):
        return (f"the checkpoint already finished {epochs_done} epoch(s) and max_epochs is {max_epochs}: resuming "
                f"would train nothing. To extend the run, raise the limit, e.g. --trainer.max_epochs="
                f"{epochs_done + max_epochs} (the learning-rate schedule is recomputed for the new length)")
    return None


class DropEmptyRunFolder(Callback):
    """On an exception before the first optimiser step, delete the logger's new ``version_N`` folder when it holds
    nothing but what the start of a run writes (saved config, hyper-parameters, empty event files)."""

    def __init__(self) -> None:
        self.existed: bool | None = None  # set by remember(trainer) before the run starts; None = unknown: keep

    def remember(self, trainer: Any) -> None:
        """Note whether the run folder exists before the run (a folder that did is never deleted)."""
        log_dir = trainer.log_dir
        self.existed = None if not log_dir else Path(log_dir).exists()

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        log_dir = trainer.log_dir
        if not log_dir or self.existed is not False or trainer.global_step > 0 or not trainer.is_global_zero:
            return
        folder = Path(log_dir)
        if folder.is_dir() and not any(p.suffix == ".ckpt" for p in folder.rglob("*")):
            shutil.rmtree(folder, ignore_errors=True)


class NeuroRVQCLI(LightningCLI):
    """LightningCLI with the checks of this module (the model and data come from the recipe's ``class_path``)."""

    def _remember_run_folder(self) -> None:
        for callback in self.trainer.callbacks:
            if isinstance(callback, DropEmptyRunFolder):
                callback.remember(self.trainer)

    def before_fit(self) -> None:
        self._remember_run_folder()
        ckpt_path = self.config[self.subcommand].get("ckpt_path")
        check_ckpt_exists(ckpt_path)
        if ckpt_path and Path(str(ckpt_path)).is_file():
            why = finished_training(str(ckpt_path), self.trainer.max_epochs, self.trainer.max_steps)
            if why:
                raise ConfigError(f"nothing to resume from '{ckpt_path}': {why}")

    def _before_evaluation(self) -> None:
        self._remember_run_folder()
        check_ckpt_exists(self.config[self.subcommand].get("ckpt_path"))

    before_validate = before_test = before_predict = _before_evaluation


def run_lightning_cli(argv: Sequence[str] | None) -> NeuroRVQCLI:
    """Run ``fit|validate|test|predict`` from ``argv`` (a recipe via ``--config`` plus dotted overrides)."""
    import lightning as L

    from neurorvq.recipe_check import check_recipe_fields

    args = list(sys.argv[1:] if argv is None else argv)
    check_recipe_fields(args)
    check_ckpt_exists(ckpt_path_argument(args))
    saved, sys.argv = sys.argv, sys.argv[:1]  # the arguments are `args`; LightningCLI warns when both are given
    try:
        return NeuroRVQCLI(L.LightningModule, L.LightningDataModule, subclass_mode_model=True,
                           subclass_mode_data=True, args=args, save_config_kwargs={"overwrite": True},
                           auto_configure_optimizers=False, trainer_defaults={"callbacks": [DropEmptyRunFolder()]})
    finally:
        sys.argv = saved


__all__ = ["DropEmptyRunFolder", "NeuroRVQCLI", "check_ckpt_exists", "finished_training", "run_lightning_cli"]
