"""``neurorvq fit|validate|test|predict``: LightningCLI over any recipe, with checks that keep a user's mistakes
from costing a run folder.

* ``--ckpt_path`` naming a missing file is refused before anything is built.
* Resuming a run that already reached ``max_epochs`` (or ``max_steps``) says so and how to extend it (raise
  ``--trainer.max_epochs``), instead of Lightning's bare "max_epochs reached".
* A run that fails before it processed any batch leaves no ``version_N`` folder behind (only its saved config
  would be in it; :class:`DropEmptyRunFolder`).
* A damaged ``--ckpt_path`` is named before LightningCLI reads it (:func:`~neurorvq.file_io.read_lightning_checkpoint`); so is
  the temporary file of an unfinished checkpoint write (``<name>.ckpt.tmp``), which is refused.
* Every Trainer writes its checkpoints atomically and stores the random state in them, so a full disk leaves no
  partial checkpoint and a resumed run continues as the uninterrupted one would
  (:func:`neurorvq.checkpoint_io.fault_tolerant`). Resuming removes the leftover temporary files of a killed
  run's checkpoint writes beside the checkpoint it resumes from.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any, Sequence

from lightning.pytorch.callbacks import Callback
from lightning.pytorch.cli import LightningCLI

from neurorvq.checkpoint_io import fault_tolerant, temporary_name
from neurorvq.errors import CheckpointError, ConfigError
from neurorvq.file_io import TEMP_SUFFIX, checkpoint_read_error, read_lightning_checkpoint, unfinished_write

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


def local_checkpoint(ckpt_path: str | None) -> bool:
    """Whether ``ckpt_path`` names a local file or folder (not a special Lightning value or a URL)."""
    return bool(ckpt_path) and ckpt_path not in ("null", "None") and \
        ckpt_path.split(":")[0] not in SPECIAL_CKPT_PATHS and "://" not in ckpt_path


def check_ckpt_exists(ckpt_path: str | None) -> None:
    """Refuse a local ``ckpt_path`` that exists neither as a file nor as a (sharded checkpoint) folder, or that is
    the temporary file of an unfinished checkpoint write."""
    if not local_checkpoint(ckpt_path):
        return
    path = Path(str(ckpt_path))
    if not path.exists():
        leftover = temporary_name(path)
        hint = (f" ('{leftover.name}' beside it is an interrupted write of it, not a usable checkpoint)"
                if leftover.is_file() else "")
        raise CheckpointError(f"--ckpt_path '{ckpt_path}' does not exist{hint}; give the checkpoint to resume from "
                              "(e.g. <run>/checkpoints/last.ckpt) or leave --ckpt_path out to start a new run")
    if unfinished_write(path):
        raise checkpoint_read_error(path, ValueError("an unfinished write"))


def remove_leftover_writes(folder: Path) -> list[Path]:
    """Delete the temporary files of checkpoint writes that never finished (``*.ckpt.tmp``: the run was killed
    while saving) in ``folder``; returns them."""
    leftovers = sorted(folder.glob(f"*.ckpt{TEMP_SUFFIX}")) if folder.is_dir() else []
    for path in leftovers:
        path.unlink(missing_ok=True)
    return leftovers


def finished_training(ckpt_path: str, max_epochs: int | None, max_steps: int | None) -> str | None:
    """Why resuming ``ckpt_path`` would train nothing (it already reached ``max_epochs``/``max_steps``), or None."""
    ckpt = read_lightning_checkpoint(ckpt_path)
    if not isinstance(ckpt, dict) or "epoch" not in ckpt:
        return None
    fit_loop = (ckpt.get("loops") or {}).get("fit_loop", {})
    progress = fit_loop.get("epoch_progress", {}).get("current", {})
    epochs_done = int(progress.get("processed", int(ckpt["epoch"]) + 1))
    if int(progress.get("started", 0)) > epochs_done and fit_loop.get("epoch_loop.batch_progress", {}).get(
            "is_last_batch"):  # saved at validation end, after the epoch's last batch but before it was counted
        epochs_done += 1
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
    """On an exception before the run processed any batch, delete the logger's new ``version_N`` folder (it holds
    only what the start of a run writes: saved config, hyper-parameters, empty event files).

    Conservative by construction: only a logger with its own ``log_dir`` (TensorBoard, CSV) is considered; a folder
    that existed before the run, one holding a checkpoint, or any folder once a training, validation (not the
    sanity check), test or predict batch has completed is kept; only global rank 0 deletes, without collectives."""

    def __init__(self) -> None:
        self.folder: Path | None = None  # set by remember(trainer) before the run, when the folder is new
        self.progressed = False

    def remember(self, trainer: Any) -> None:
        """Note the run folder if it does not exist yet (a folder that did is never deleted)."""
        log_dir = getattr(trainer.logger, "log_dir", None) if trainer.logger is not None else None
        self.folder = Path(log_dir) if log_dir and not Path(log_dir).exists() else None
        self.progressed = False

    def _progress(self, trainer: Any, *args: Any, **kwargs: Any) -> None:
        if not trainer.sanity_checking:
            self.progressed = True

    on_train_batch_end = on_validation_batch_end = on_test_batch_end = on_predict_batch_end = _progress

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        if self.folder is None or self.progressed or not trainer.is_global_zero:
            return
        # a finished checkpoint keeps the folder; the temporary file of an unfinished write (*.ckpt.tmp) does not
        if self.folder.is_dir() and not any(p.suffix == ".ckpt" for p in self.folder.rglob("*")):
            shutil.rmtree(self.folder, ignore_errors=True)


class NeuroRVQCLI(LightningCLI):
    """LightningCLI with the checks of this module (the model and data come from the recipe's ``class_path``)."""

    def instantiate_trainer(self, **kwargs: Any) -> Any:
        return fault_tolerant(super().instantiate_trainer(**kwargs))

    def _remember_run_folder(self) -> None:
        for callback in self.trainer.callbacks:
            if isinstance(callback, DropEmptyRunFolder):
                callback.remember(self.trainer)

    def before_fit(self) -> None:
        self._remember_run_folder()
        ckpt_path = self.config[self.subcommand].get("ckpt_path")
        check_ckpt_exists(ckpt_path)
        if local_checkpoint(ckpt_path) and Path(str(ckpt_path)).is_file():
            why = finished_training(str(ckpt_path), self.trainer.max_epochs, self.trainer.max_steps)
            if why:
                raise ConfigError(f"nothing to resume from '{ckpt_path}': {why}")
            if self.trainer.is_global_zero:
                remove_leftover_writes(Path(str(ckpt_path)).parent)

    def _before_evaluation(self) -> None:
        self._remember_run_folder()
        check_ckpt_exists(self.config[self.subcommand].get("ckpt_path"))

    before_validate = before_test = before_predict = _before_evaluation


def run_lightning_cli(argv: Sequence[str] | None) -> NeuroRVQCLI:
    """Run ``fit|validate|test|predict`` from ``argv`` (a recipe via ``--config`` plus dotted overrides)."""
    import lightning as L

    from neurorvq.recipe_check import check_recipe_fields

    import warnings

    args = list(sys.argv[1:] if argv is None else argv)
    check_recipe_fields(args)
    ckpt_path = ckpt_path_argument(args)
    check_ckpt_exists(ckpt_path)
    if local_checkpoint(ckpt_path) and Path(ckpt_path).is_file():
        read_lightning_checkpoint(ckpt_path)  # LightningCLI reads it first: a damaged one is named
    # DDP starts its workers from sys.argv: it must hold the arguments (LightningCLI's warning about both is moot)
    saved, sys.argv = sys.argv, [sys.argv[0], *args]
    try:
        warnings.filterwarnings("ignore", message="LightningCLI's args parameter is intended", category=UserWarning)
        return NeuroRVQCLI(L.LightningModule, L.LightningDataModule, subclass_mode_model=True,
                           subclass_mode_data=True, args=args, save_config_kwargs={"overwrite": True},
                           auto_configure_optimizers=False, trainer_defaults={"callbacks": [DropEmptyRunFolder()]})
    finally:
        sys.argv = saved


__all__ = ["DropEmptyRunFolder", "NeuroRVQCLI", "check_ckpt_exists", "finished_training", "local_checkpoint",
           "remove_leftover_writes", "run_lightning_cli"]
