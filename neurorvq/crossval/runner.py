"""``neurorvq cv``: subject-independent k-fold fine-tuning (or baseline training) from one recipe.

1. The recipe (a LightningCLI fine-tuning recipe: ``model``, ``data``, ``trainer``) is instantiated with any
   dotted overrides. Its DataModule loads every labelled window once, all subjects pooled
   (:meth:`~neurorvq.data.windows.RecordingDataModule.load_pooled`).
2. Folds come from :func:`neurorvq.data.splits.subject_kfold` over the windows' groups (subjects, or recordings
   with ``group_by="recording"`` for within-subject runs), stratified by label. Each fold's validation part is
   drawn from its *training* groups; the test groups never take part in model selection. (The published
   benchmark protocol picks validation subjects inside the test fold, which leaks; see docs/foundation-model.md.)
   The folds are written to ``<out>/folds.json`` first and reused on every later run into ``<out>``.
3. Per fold, a fresh model and Trainer from the recipe train on the fold's :class:`FoldDataModule`; a
   :class:`~lightning.pytorch.callbacks.ModelCheckpoint` keeps the epoch with the best validation metric
   (``monitor``) and the last one; the test part is scored with the selected checkpoint (the last epoch when the
   fold has no validation part). ``<out>/fold_<k>/metrics.json`` marks a finished fold: a re-run skips it, and an
   interrupted fold resumes from its ``last.ckpt``.
4. ``metrics_per_fold.csv``, ``summary.csv``, ``summary.md`` and ``summary.json`` (mean ± std) in ``<out>``.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from neurorvq.crossval.fold_data import FoldDataModule
from neurorvq.crossval.report import write_summary
from neurorvq.data.splits import Fold, load_folds, save_folds, subject_kfold
from neurorvq.data.windows import WindowDataset
from neurorvq.errors import ConfigError

GROUPINGS = ("subject", "recording")
DONE_FILE = "metrics.json"


@dataclass
class CVSettings:
    """What defines a cross-validation run (stored in ``<out>/cv.json``; a resumed run must match it).

    ``recipe``: the fine-tuning recipe; ``overrides``: LightningCLI arguments after it (``--trainer.max_epochs=3``,
    ``--model=...``); ``n_folds``; ``seed`` (folds); ``val_fraction`` of each fold's training groups used for
    model selection (0 = none: the last epoch is tested); ``group_by``: ``subject`` or ``recording``;
    ``monitor``/``mode``: the validation metric that selects the checkpoint; ``require_all_classes``: refuse
    a fold whose test part misses a class; ``name``: the model's row label in the tables; ``baseline``: train
    this supervised baseline (``eegnet``, ``shallow_convnet``) instead of the recipe's model, with the recipe's
    data, trainer, modality and classes (:func:`baseline_recipe`); ``folds_file``: take the folds of another run
    (its ``folds.json``) instead of making them from ``seed``.
    """

    recipe: str
    overrides: list[str] = field(default_factory=list)
    n_folds: int = 10
    seed: int = 0
    val_fraction: float = 0.1
    group_by: str = "subject"
    monitor: str = "val/balanced_accuracy"
    mode: str = "max"
    require_all_classes: bool = True
    name: str | None = None
    baseline: str | None = None
    folds_file: str | None = None

    def identity(self) -> dict[str, Any]:
        """What must not change between an interrupted run and its resumption."""
        return {"recipe": str(Path(self.recipe).resolve()), "overrides": list(self.overrides),
                "n_folds": self.n_folds, "seed": self.seed, "val_fraction": self.val_fraction,
                "group_by": self.group_by, "monitor": self.monitor, "mode": self.mode, "baseline": self.baseline}


def baseline_recipe(recipe: str, overrides: Sequence[str], architecture: str, out: Path) -> tuple[str, list[str]]:
    """``(recipe path, overrides)`` that train ``architecture`` (:class:`~neurorvq.tasks.baseline.BaselineTask`)
    on the recipe's data with its trainer: the model section is replaced (keeping ``modality`` and
    ``num_classes``, also from ``--model.init_args.*`` overrides), written to ``<out>/baseline_recipe.yaml``;
    the other model overrides are dropped (they belong to the replaced model)."""
    import yaml

    config = yaml.safe_load(Path(recipe).read_text()) or {}
    original = dict((config.get("model") or {}).get("init_args") or {})
    init_args = {"architecture": architecture, "modality": original.get("modality", "eeg"),
                 "num_classes": original.get("num_classes", 2)}
    kept = []
    for arg in overrides:
        key = arg.split("=", 1)[0]
        if key in ("--model.init_args.modality", "--model.init_args.num_classes") and "=" in arg:
            init_args[key.rsplit(".", 1)[1]] = yaml.safe_load(arg.split("=", 1)[1])
        elif key.startswith("--model"):
            _say(f"baseline {architecture}: ignoring the recipe model's override {arg}")
        else:
            kept.append(arg)
    config["model"] = {"class_path": "neurorvq.tasks.baseline.BaselineTask", "init_args": init_args}
    path = out / "baseline_recipe.yaml"
    path.write_text(f"# {recipe} with the model replaced by the {architecture} baseline (neurorvq cv --baseline)\n"
                    + yaml.safe_dump(config, sort_keys=False))
    return str(path), kept


def instantiate_recipe(recipe: str, overrides: Sequence[str], root: Path, callbacks: list | None = None):
    """``LightningCLI(run=False)`` over the recipe: a fresh model, DataModule and Trainer writing under ``root``."""
    import lightning as L
    from lightning.pytorch.cli import LightningCLI

    from neurorvq.recipe_check import check_recipe_fields

    args = ["--config", str(recipe), *overrides, f"--trainer.default_root_dir={root}"]
    check_recipe_fields(args)
    saved, sys.argv = sys.argv, sys.argv[:1]  # the recipe's arguments are `args`, not the cv command line
    try:
        return LightningCLI(L.LightningModule, L.LightningDataModule, subclass_mode_model=True,
                            subclass_mode_data=True, args=args, run=False, save_config_kwargs={"overwrite": True},
                            trainer_defaults={"callbacks": list(callbacks or [])}, auto_configure_optimizers=False)
    finally:
        sys.argv = saved


def pooled_windows(datamodule: Any) -> WindowDataset:
    """Every labelled window of the DataModule, all subjects pooled (each window keeps its subject id)."""
    if not hasattr(datamodule, "load_pooled"):
        raise ConfigError(f"neurorvq cv needs a DataModule that loads labelled recordings with subject ids (a "
                          f"RecordingDataModule such as the ones in neurorvq.datamodules); {type(datamodule).__name__} "
                          "is not one")
    pool = WindowDataset(datamodule.load_pooled())
    if pool.labels is None:
        raise ConfigError(f"{type(datamodule).__name__} gives unlabelled windows; choose a labelled task in the "
                          "recipe's data section (e.g. data.init_args.task)")
    if pool.subjects is None:
        raise ConfigError(f"{type(datamodule).__name__} gives windows without subject ids; subject-independent "
                          "folds need them")
    return pool


def window_groups(pool: WindowDataset, group_by: str, datamodule: Any) -> np.ndarray:
    """``[N]`` group of every window: the subject name, or the recording file (relative to the data root)."""
    if group_by == "subject":
        names = {number: name for name, number in getattr(datamodule, "subject_ids", {}).items()}
        return np.asarray([names.get(int(s), str(int(s))) for s in pool.subjects])
    if group_by == "recording":
        root = Path(getattr(datamodule, "root", "/"))
        return np.asarray([str(Path(r).relative_to(root)) if Path(r).is_relative_to(root) else r
                           for r in pool.recordings])
    raise ConfigError(f"group_by is {group_by!r}; use one of {GROUPINGS}")


def check_labels(pool: WindowDataset, num_classes: int, folds: Sequence[Fold]) -> None:
    """Labels inside ``0..num_classes-1``; every fold's training part holds at least two classes."""
    labels = pool.labels
    outside = sorted(set(np.unique(labels[(labels < 0) | (labels >= num_classes)]).tolist()))
    if outside:
        raise ConfigError(f"the data has labels {outside} outside the model's classes 0..{num_classes - 1}; set "
                          "model.init_args.num_classes to the data's number of classes")
    for fold in folds:
        classes = np.unique(labels[fold.train])
        if len(classes) < 2:
            raise ConfigError(f"fold {fold.index}: its training part (groups {fold.train_subjects}) holds a single "
                              f"class ({classes.tolist()}); a classifier cannot be trained on it. Use fewer folds or "
                              "a data selection where every training part has several classes")


def make_folds(settings: CVSettings, pool: WindowDataset, groups: np.ndarray, out: Path) -> list[Fold]:
    """The folds of ``<out>/folds.json`` when present (checked against the data), else new ones saved there."""
    path = out / "folds.json"
    if settings.folds_file and not path.is_file():
        source = Path(settings.folds_file)
        if not source.is_file():
            raise ConfigError(f"--folds_file '{source}' does not exist; give the folds.json of an earlier neurorvq cv run")
        path.write_text(source.read_text())
    if path.is_file():
        folds = load_folds(path, subjects=groups)
        if len(folds) != settings.n_folds:
            raise ConfigError(f"{path} holds {len(folds)} folds but --folds is {settings.n_folds}; use another --out")
        return folds
    folds = subject_kfold(groups, pool.labels, n_folds=settings.n_folds, seed=settings.seed,
                          val_fraction=settings.val_fraction, require_all_classes=settings.require_all_classes)
    save_folds(folds, path, metadata={"group_by": settings.group_by, "seed": settings.seed,
                                      "val_fraction": settings.val_fraction, "recipe": settings.recipe,
                                      "windows": len(groups)})
    return folds


def check_resumable(settings: CVSettings, out: Path) -> None:
    """Write ``<out>/cv.json``, or check that an earlier run into ``out`` had the same settings."""
    path = out / "cv.json"
    identity = settings.identity()
    if path.is_file():
        earlier = json.loads(path.read_text())
        changed = {k: (earlier.get(k), v) for k, v in identity.items() if earlier.get(k) != v}
        if changed:
            raise ConfigError(f"'{out}' holds a cross-validation run with other settings {changed} (earlier, now); "
                              "resume with the same command or choose another --out")
        return
    path.write_text(json.dumps(identity, indent=1) + "\n")


def model_name(model: Any) -> str:
    """The table label of a model: the baseline's architecture, or the FM with/without pretraining."""
    hparams = dict(getattr(model, "hparams", {}))
    if hparams.get("architecture"):
        return str(hparams["architecture"])
    return "NeuroRVQ-FM" + ("" if hparams.get("fm") else " (no pretraining)")


def _say(message: str) -> None:
    print(f"[neurorvq cv] {message}", flush=True)


def run_fold(settings: CVSettings, pool: WindowDataset, fold: Fold, spec: Any, out: Path) -> dict[str, Any]:
    """Train, select and test one fold; returns (and writes) its ``metrics.json`` record."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    fold_dir = out / f"fold_{fold.index}"
    has_val = len(fold.val) > 0
    checkpoint = ModelCheckpoint(dirpath=fold_dir / "checkpoints", save_last=True,
                                 monitor=settings.monitor if has_val else None, mode=settings.mode,
                                 filename="best-{epoch}" if has_val else "epoch-{epoch}")
    cli = instantiate_recipe(settings.recipe, settings.overrides, fold_dir, callbacks=[checkpoint])
    data = cli.datamodule
    fold_data = FoldDataModule(pool, fold, spec, batch_size=getattr(data, "batch_size", 32),
                               num_workers=getattr(data, "num_workers", 0), seed=getattr(data, "seed", 0),
                               label_names=getattr(data, "label_names", None))
    last = fold_dir / "checkpoints" / "last.ckpt"
    started = time.monotonic()
    cli.trainer.fit(cli.model, datamodule=fold_data, ckpt_path=str(last) if last.is_file() else None)
    selected = checkpoint.best_model_path if has_val and checkpoint.best_model_path else checkpoint.last_model_path
    if not selected:
        raise ConfigError(f"fold {fold.index}: training wrote no checkpoint under {fold_dir / 'checkpoints'}")
    results = cli.trainer.test(cli.model, datamodule=fold_data, ckpt_path=selected, verbose=False)
    metrics = {k.removeprefix("test/"): float(v) for k, v in (results[0] if results else {}).items()
               if k.startswith("test/") and k != "test/loss"}
    import torch

    epoch = torch.load(selected, map_location="cpu", weights_only=False).get("epoch")
    record = {"fold": fold.index, "name": settings.name or model_name(cli.model),
              "test_subjects": list(fold.test_subjects), "val_subjects": list(fold.val_subjects),
              "train_subjects": list(fold.train_subjects), "windows": fold_data.summary()["windows"],
              "selected_checkpoint": str(selected), "selected_epoch": epoch,
              "selection": f"best {settings.monitor} ({settings.mode})" if has_val else "last epoch (no validation part)",
              "wall_seconds": time.monotonic() - started, "metrics": metrics}
    (fold_dir / DONE_FILE).write_text(json.dumps(record, indent=1) + "\n")
    return record


def run_cv(settings: CVSettings, out: str | Path, task: str | None = None) -> dict[str, Any]:
    """Run (or resume) every fold and write the tables; returns the summary (``summary.json``)."""
    if settings.group_by not in GROUPINGS:
        raise ConfigError(f"group_by is {settings.group_by!r}; use one of {GROUPINGS}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    check_resumable(settings, out)
    if settings.baseline:
        recipe, overrides = baseline_recipe(settings.recipe, settings.overrides, settings.baseline, out)
        settings = replace(settings, recipe=recipe, overrides=overrides)
    loader = instantiate_recipe(settings.recipe, settings.overrides, out / "data")
    datamodule, model = loader.datamodule, loader.model
    _say(f"loading every labelled window of {type(datamodule).__name__} (all subjects pooled)")
    pool = pooled_windows(datamodule)
    groups = window_groups(pool, settings.group_by, datamodule)
    folds = make_folds(settings, pool, groups, out)
    num_classes = int(getattr(model, "num_classes", 0) or 0)
    if num_classes:
        check_labels(pool, num_classes, folds)
    name = settings.name or model_name(model)
    settings.name = name
    task = task or " ".join(str(part) for part in (getattr(datamodule, "dataset_name", type(datamodule).__name__),
                                                   getattr(datamodule, "hparams", {}).get("task")) if part)
    _say(f"{name} on {task}: {len(pool)} windows, {len(np.unique(groups))} {settings.group_by}s, "
         f"{len(folds)} folds -> {out}")
    rows, started = [], time.monotonic()
    for n, fold in enumerate(folds, 1):
        done = out / f"fold_{fold.index}" / DONE_FILE
        if done.is_file():
            rows.append(json.loads(done.read_text()))
            _say(f"fold {n}/{len(folds)} already finished (kept from {done})")
            continue
        _say(f"fold {n}/{len(folds)}: test {settings.group_by}s {fold.test_subjects}, validation "
             f"{fold.val_subjects or 'none (last epoch is tested)'}, {len(fold.train)}/{len(fold.val)}/"
             f"{len(fold.test)} train/val/test windows")
        record = run_fold(settings, pool, fold, datamodule.spec, out)
        rows.append(record)
        elapsed = time.monotonic() - started
        shown = ", ".join(f"{k} {v:.3f}" for k, v in record["metrics"].items())
        _say(f"fold {n}/{len(folds)} done in {record['wall_seconds']:.0f} s: {shown}; {elapsed / 60:.1f} min so far")
    summary = write_summary(rows, out, name, task)
    _say(f"summary in {out / 'summary.md'}")
    return summary


__all__ = ["CVSettings", "check_labels", "instantiate_recipe", "make_folds", "pooled_windows", "run_cv", "run_fold",
           "window_groups"]
