"""``neurorvq cv``: subject-independent k-fold fine-tuning (or baseline training) from one recipe.

1. The recipe (a LightningCLI fine-tuning recipe: ``model``, ``data``, ``trainer``) is instantiated with any
   dotted overrides. Its DataModule loads every labelled window once, all subjects pooled
   (:meth:`~neurorvq.data.windows.RecordingDataModule.load_pooled`).
2. Folds come from :func:`neurorvq.data.splits.subject_kfold` over the windows' groups (``group_by``: subjects;
   recordings for within-subject runs; or any column of the windows such as ``session``), stratified by label
   (``stratify_by``: or by any column, or not at all; :mod:`neurorvq.crossval.folds`). Each fold's validation
   part is drawn from its *training* groups; the test groups never take part in model selection. (The published
   EEG benchmark has no validation part: it scores the held-out fold at the last epoch; ``protocol="parity"``
   below reproduces it, with the official fine-tuning code's class weights and undersampling.)
   ``folds_file`` takes them instead from another run's ``folds.json`` or from a split file with folds
   (:mod:`neurorvq.data.split_files`, e.g. a benchmark's fold lists), or from a split file with train / val /
   test parts, run as one fold (``n_folds=1``; :func:`~neurorvq.crossval.folds.parts_fold`: test = the test
   part; validation = the val part, or groups drawn from the training side when the file has none; under
   ``parity`` the val part trains). ``val_group_by`` draws the validation groups from another, finer column than
   ``group_by`` (e.g. subjects inside a split by ``user_set``). The folds are written to ``<out>/folds.json``
   first and reused on every later run into ``<out>``.
3. Per fold (and per training seed with ``seeds``: ``<out>/fold_<k>/seed_<s>/``), a fresh model and Trainer
   from the recipe train on the fold's :class:`FoldDataModule`; a
   :class:`~lightning.pytorch.callbacks.ModelCheckpoint` keeps the epoch with the best validation metric
   (``monitor``) and the last one. With a selection ``grid`` (at most 3 settings, :mod:`neurorvq.crossval.grid`)
   every setting is trained (``setting_<j>/``) and the best on validation is kept. The test part is scored once,
   with the selected checkpoint (the last epoch when the fold has no validation part), and the model's channel
   sensitivity is measured on it (:mod:`neurorvq.crossval.sensitivity`). ``metrics.json`` marks a finished run:
   a re-run skips it, and an interrupted one resumes from its ``last.ckpt``.
   The classical baselines and the linear probe (:mod:`neurorvq.crossval.feature_models`) are fitted instead
   of trained, on the same folds, with their ``C`` chosen among 3 values on the same validation groups.
4. ``metrics_per_fold.csv``, ``summary.csv``, ``summary.md`` and ``summary.json`` (mean ± std, 95% interval, the
   channel-sensitivity column, the pretraining diagnostics of the FM checkpoint when it has them) in ``<out>``.

``protocol`` (:mod:`neurorvq.crossval.protocol`): ``clean`` (the above) or ``parity``, the published EEG benchmark's
and the official fine-tuning code's: no validation part (the last epoch is tested), class weights from the training
and held-out labels together (a leak of the test label distribution, kept for parity), training windows
undersampled per subject to each subject's minority class. ``unlisted``: groups a split file lists in no fold train
in every fold (``train``) or are dropped before the folds (``drop``).
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from neurorvq.crossval.feature_models import (CLASSICAL, FEATURE_MODELS, PROBE, FrozenFeatures, fit_feature_model,
                                              window_arrays)
from neurorvq.crossval.fold_data import FoldDataModule
from neurorvq.crossval.folds import window_groups
from neurorvq.crossval.grid import check_seeds, grid_settings
from neurorvq.crossval.per_fold import check_fold_fields, check_fold_paths, fold_overrides, has_fold_field
from neurorvq.crossval.protocol import (CLEAN, DEFAULT_BALANCE, check_protocol, class_weight_labels,
                                        default_val_fraction, fold_protocol_record, protocol_fold, protocol_markdown,
                                        protocol_summary, resolve_balance, sklearn_class_weight)
from neurorvq.crossval.report import write_summary
from neurorvq.crossval.run_folds import apply_unlisted, make_folds
from neurorvq.crossval.run_folds import say as _say
from neurorvq.crossval.sensitivity import sensitivity_cell, task_sensitivity
from neurorvq.data.splits import Fold
from neurorvq.data.windows import WindowDataset
from neurorvq.errors import ConfigError
from neurorvq.file_io import read_lightning_checkpoint, read_yaml

DONE_FILE = "metrics.json"
SELECTION_FILE = "selection.json"
DEEP_BASELINES = ("eegnet", "shallow_convnet")
BASELINES = (*DEEP_BASELINES, *FEATURE_MODELS)


@dataclass
class CVSettings:
    """What defines a cross-validation run (stored in ``<out>/cv.json``; a resumed run must match it).

    ``recipe``: the fine-tuning recipe; ``overrides``: LightningCLI arguments after it (``--trainer.max_epochs=3``,
    ``--model=...``); ``n_folds``; ``seed`` (folds); ``val_fraction`` of each fold's training groups used for
    model selection (0 = none: the last epoch is tested); ``group_by``: what a fold holds out, ``subject``,
    ``recording`` or any column of the windows (``session``, ``run``, ...); ``stratify_by``: what the test parts
    are balanced on, ``label``, ``none`` or any column (part of the run's identity only when not ``label``, so
    that runs made before it existed resume); ``monitor``/``mode``: the validation metric that selects the
    checkpoint; ``require_all_classes``: refuse a fold whose test part misses a class (of the labels, whatever
    ``stratify_by``); ``name``: the model's row label in the tables; ``baseline``: train this supervised baseline
    (``eegnet``, ``shallow_convnet``) instead of the recipe's model, with the recipe's data, trainer, modality and
    classes (:func:`baseline_recipe`), or fit ``logpower``, ``riemann`` or ``linear_probe`` (frozen features of
    the recipe's FM, pooled by its ``pooling``); ``folds_file``: take the folds of another run (its
    ``folds.json``) or of a split file with folds by ``group_by`` (:mod:`neurorvq.data.split_files`) instead of
    making them from ``seed``; ``seeds``: training seeds (every fold once per seed; ``None`` = one run with the
    recipe's seed); ``grid``: ``--grid`` items (at most 3 settings chosen per fold on validation); ``only_folds``:
    run just these fold indices now (e.g. to spread the folds over machines into one ``out``); not part of the
    run's identity, and the tables then cover the finished folds only. ``{fold}`` in an override is replaced by
    each fold's index (one pretrained checkpoint per fold: :mod:`neurorvq.crossval.per_fold`).

    A ``folds_file`` split file with parts (train / val / test) is one split: ``n_folds`` must be 1
    (:func:`~neurorvq.crossval.folds.parts_fold`). ``val_group_by``: the column whose groups form the validation
    part, drawn from the training side (default ``None``: ``group_by``'s groups), for a ``folds_file`` whose
    training side holds too few groups of ``group_by`` (EMG-EPN-612's split by ``user_set``: one training group);
    each of its groups must lie on one side of the split. Part of the identity only when set.

    ``protocol`` (:mod:`neurorvq.crossval.protocol`): ``clean`` (validation groups from the training side, class
    weights from the training labels) or ``parity`` (the published benchmark's: no validation part, the last
    epoch tested, class weights from the training + held-out labels, which leaks the test label distribution into
    the loss; training windows undersampled per subject). ``val_fraction`` ``None`` (the default) resolves to the
    protocol's (0.1 ``clean``, 0 ``parity``; ``parity`` refuses any other). ``balance_per_subject``: undersample
    each subject's training windows to its minority class (``None`` = the protocol's default: ``parity`` yes,
    ``clean`` no; false for an already balanced data set such as High-Gamma). ``unlisted``: what happens to the
    groups a ``folds_file`` split file lists in no fold: ``train`` (they train in every fold) or ``drop`` (their
    windows are removed before the folds are made). These three are part of the run's identity only when not at
    their defaults (``balance_per_subject`` when it differs from the protocol's), so older runs resume.
    """

    recipe: str
    overrides: list[str] = field(default_factory=list)
    n_folds: int = 10
    seed: int = 0
    val_fraction: float | None = None
    group_by: str = "subject"
    stratify_by: str = "label"
    monitor: str = "val/balanced_accuracy"
    mode: str = "max"
    require_all_classes: bool = True
    name: str | None = None
    baseline: str | None = None
    folds_file: str | None = None
    seeds: list[int] | None = None
    grid: list[str] | None = None
    only_folds: list[int] | None = None
    protocol: str = CLEAN
    balance_per_subject: bool | None = None
    unlisted: str = "train"
    val_group_by: str | None = None

    def __post_init__(self) -> None:
        if self.val_fraction is None:
            self.val_fraction = default_val_fraction(self.protocol)

    @property
    def balanced(self) -> bool:
        """Whether training windows are undersampled per subject (``balance_per_subject`` or the protocol's
        default)."""
        return resolve_balance(self.protocol, self.balance_per_subject)

    def identity(self) -> dict[str, Any]:
        """What must not change between an interrupted run and its resumption."""
        identity = {"recipe": str(Path(self.recipe).resolve()), "overrides": list(self.overrides),
                    "n_folds": self.n_folds, "seed": self.seed, "val_fraction": self.val_fraction,
                    "group_by": self.group_by, "monitor": self.monitor, "mode": self.mode, "baseline": self.baseline}
        if self.stratify_by != "label":  # a key missing from an older cv.json would count as changed
            identity["stratify_by"] = self.stratify_by
        if self.protocol != CLEAN:
            identity["protocol"] = self.protocol
        if self.balanced != DEFAULT_BALANCE.get(self.protocol, False):
            identity["balance_per_subject"] = self.balanced
        if self.unlisted != "train":
            identity["unlisted"] = self.unlisted
        if self.val_group_by is not None:
            identity["val_group_by"] = self.val_group_by
        identity["seeds"] = None if self.seeds is None else list(self.seeds)
        identity["grid"] = list(self.grid) if self.grid else None
        return identity


def baseline_recipe(recipe: str, overrides: Sequence[str], architecture: str, out: Path) -> tuple[str, list[str]]:
    """``(recipe path, overrides)`` that train ``architecture`` (:class:`~neurorvq.tasks.baseline.BaselineTask`)
    on the recipe's data with its trainer: the model section is replaced (keeping ``modality`` and
    ``num_classes``, also from ``--model.init_args.*`` overrides), written to ``<out>/baseline_recipe.yaml``;
    the other model overrides are dropped (they belong to the replaced model)."""
    import yaml

    config = read_yaml(recipe) or {}
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
    """``LightningCLI(run=False)`` over the recipe: a fresh model, DataModule and Trainer writing under ``root``.
    The Trainer writes its checkpoints atomically and stores the random state in them, so an interrupted fold
    resumes from ``last.ckpt`` as the uninterrupted run would have gone on
    (:func:`~neurorvq.checkpoint_io.fault_tolerant`)."""
    import lightning as L
    from lightning.pytorch.cli import LightningCLI

    from neurorvq.checkpoint_io import fault_tolerant
    from neurorvq.recipe_check import check_recipe_fields

    args = ["--config", str(recipe), *overrides, f"--trainer.default_root_dir={root}"]
    check_recipe_fields(args)
    saved, sys.argv = sys.argv, sys.argv[:1]  # the recipe's arguments are `args`, not the cv command line
    try:
        cli = LightningCLI(L.LightningModule, L.LightningDataModule, subclass_mode_model=True,
                           subclass_mode_data=True, args=args, run=False, save_config_kwargs={"overwrite": True},
                           trainer_defaults={"callbacks": list(callbacks or [])}, auto_configure_optimizers=False)
    finally:
        sys.argv = saved
    fault_tolerant(cli.trainer)
    return cli


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


def check_resumable(settings: CVSettings, out: Path) -> None:
    """Write ``<out>/cv.json``, or check that an earlier run into ``out`` had the same settings."""
    path = out / "cv.json"
    identity = settings.identity()
    if path.is_file():
        earlier = json.loads(path.read_text())
        keys = [*identity, *(k for k in earlier if k not in identity)]  # a setting dropped now counts as changed
        changed = {k: (earlier.get(k), identity.get(k)) for k in keys if earlier.get(k) != identity.get(k)}
        if changed:
            raise ConfigError(f"'{out}' holds a cross-validation run with other settings {changed} (earlier, now); "
                              "resume with the same command or choose another --out")
        return
    path.write_text(json.dumps(identity, indent=1) + "\n")


def model_name(model: Any, baseline: str | None = None) -> str:
    """The table label of a model: the baseline's name, the linear probe with its pooling, or the FM
    with/without pretraining."""
    hparams = dict(getattr(model, "hparams", {}))
    if baseline == PROBE:
        pooling = hparams.get("pooling", "mean")
        return f"linear probe ({pooling}) on {'pretrained' if hparams.get('fm') else 'random'} FM"
    if baseline:
        return baseline
    if hparams.get("architecture"):
        return str(hparams["architecture"])
    name = getattr(getattr(model, "fm", None), "display_name", "NeuroRVQ-FM")  # the family's FM (LaBraM, ...)
    return name + ("" if hparams.get("fm") else " (no pretraining)")


def _weights(model: Any) -> list[float] | None:
    """The class weights a trained classifier's loss used (its ``class_weight`` buffer), when it has one."""
    weights = getattr(model, "class_weight", None)
    return None if weights is None else [float(w) for w in weights.detach().cpu().tolist()]


def _description(model: Any) -> dict[str, Any]:
    describe = getattr(model, "description", None)
    return describe() if callable(describe) else {"class": type(model).__name__}


def train_setting(settings: CVSettings, pool: WindowDataset, fold: Fold, spec: Any, where: Path,
                  overrides: list[str], seed: int | None) -> dict[str, Any]:
    """Train one setting of one fold (resuming from ``last.ckpt``); returns (and writes) its ``selection.json``:
    the selected checkpoint, its epoch and validation score."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    done = where / SELECTION_FILE
    if done.is_file():
        return json.loads(done.read_text())
    has_val = len(fold.val) > 0
    checkpoint = ModelCheckpoint(dirpath=where / "checkpoints", save_last=not has_val,
                                 monitor=settings.monitor if has_val else None, mode=settings.mode,
                                 filename="best-{epoch}" if has_val else "epoch-{epoch}")
    callbacks = [checkpoint]
    if has_val:
        # Lightning 2.6 refreshes a monitoring ModelCheckpoint's last.ckpt only when the best improves: a run
        # interrupted later would resume from the best epoch and train the epochs after it again. This one writes
        # last.ckpt after every epoch, so a resume starts where the run stopped.
        callbacks.append(ModelCheckpoint(dirpath=where / "checkpoints", filename="last", monitor=None, save_top_k=1,
                                         enable_version_counter=False))
    cli = instantiate_recipe(settings.recipe, overrides, where, callbacks=callbacks)
    fold_data = fold_datamodule(cli.datamodule, pool, fold, spec, seed,
                                class_weight_labels(settings.protocol, pool.labels, fold))
    last = where / "checkpoints" / "last.ckpt"
    started = time.monotonic()
    cli.trainer.fit(cli.model, datamodule=fold_data, ckpt_path=str(last) if last.is_file() else None)
    selected = checkpoint.best_model_path if has_val and checkpoint.best_model_path else checkpoint.last_model_path
    if not selected:
        raise ConfigError(f"fold {fold.index}: training wrote no checkpoint under {where / 'checkpoints'}")
    score = checkpoint.best_model_score if has_val else None
    record = {"overrides": overrides, "selected_checkpoint": str(selected),
              "val_score": None if score is None else float(score), "wall_seconds": time.monotonic() - started}
    done.write_text(json.dumps(record, indent=1) + "\n")
    return record


def fold_datamodule(data: Any, pool: WindowDataset, fold: Fold, spec: Any, seed: int | None,
                    weight_labels: np.ndarray | None = None) -> FoldDataModule:
    """The fold's windows with the recipe DataModule's batch size and workers; batches shuffled by the
    training ``seed`` (the DataModule's own seed when ``None``); ``weight_labels``: the labels the class weights
    are computed from instead of the training labels (``parity``: :func:`~neurorvq.crossval.protocol.
    class_weight_labels`)."""
    return FoldDataModule(pool, fold, spec, batch_size=getattr(data, "batch_size", 32),
                          num_workers=getattr(data, "num_workers", 0),
                          seed=getattr(data, "seed", 0) if seed is None else seed,
                          label_names=getattr(data, "label_names", None), class_weight_labels=weight_labels)


def fold_for_protocol(settings: CVSettings, labels: np.ndarray, subjects: np.ndarray | None, fold: Fold,
                      seed: int | None) -> Fold:
    """The fold as the protocol trains on it: training windows undersampled per subject when
    ``settings.balanced`` (seeded by the training seed and the fold index), else unchanged."""
    balanced = protocol_fold(fold, labels, subjects, settings.balanced, seed)
    if balanced is not fold:
        _say(f"fold {fold.index}: training windows undersampled per subject to each subject's minority class: "
             f"{len(fold.train)} -> {len(balanced.train)}")
    return balanced


def pick_setting(trained: list[dict[str, Any]], mode: str) -> int:
    """Index of the setting with the best validation score (``mode`` max or min); ties -> the first."""
    scores = [t["val_score"] for t in trained]
    if len(trained) == 1:
        return 0
    if any(s is None for s in scores):
        raise ConfigError(f"settings {[t['overrides'][-1] for t in trained]} have no validation score to choose "
                          f"between ({scores}); the fold needs validation windows (--val_fraction)")
    best = max(scores) if mode == "max" else min(scores)
    return scores.index(best)


def run_fold(settings: CVSettings, pool: WindowDataset, fold: Fold, spec: Any, out: Path,
             seed: int | None = None) -> dict[str, Any]:
    """Train (every setting of the grid), select on validation, test once and measure channel sensitivity for
    one fold and training seed; returns (and writes) its ``metrics.json`` record. ``out`` is the run's folder.
    The protocol applies here: the training part undersampled per subject, the class weights' labels
    (:mod:`neurorvq.crossval.protocol`)."""
    unbalanced = len(fold.train)
    fold = fold_for_protocol(settings, pool.labels, pool.subjects, fold, seed)
    seed_overrides = [] if seed is None else [f"--seed_everything={seed}"]
    candidates = grid_settings(settings.grid)
    overrides = fold_overrides(settings.overrides, fold.index)
    trained = []
    for j, extra in enumerate(candidates):
        where = out / f"setting_{j}" if len(candidates) > 1 else out
        trained.append(train_setting(settings, pool, fold, spec, where, [*overrides, *extra, *seed_overrides], seed))
    chosen = pick_setting(trained, settings.mode)
    selected = trained[chosen]["selected_checkpoint"]
    cli = instantiate_recipe(settings.recipe, trained[chosen]["overrides"], out / "test")
    fold_data = fold_datamodule(cli.datamodule, pool, fold, spec, seed,
                                class_weight_labels(settings.protocol, pool.labels, fold))
    results = cli.trainer.test(cli.model, datamodule=fold_data, ckpt_path=selected, verbose=False)
    metrics = {k.removeprefix("test/"): float(v) for k, v in (results[0] if results else {}).items()
               if k.startswith("test/") and k != "test/loss"}
    sensitivity = task_sensitivity(cli.model, fold_data.test_dataloader(), cli.trainer.strategy.root_device)
    epoch = read_lightning_checkpoint(selected).get("epoch")
    has_val = len(fold.val) > 0
    record = {"fold": fold.index, "seed": seed if seed is not None else cli.config.get("seed_everything"),
              "name": settings.name or model_name(cli.model),
              "test_subjects": list(fold.test_subjects), "val_subjects": list(fold.val_subjects),
              "train_subjects": list(fold.train_subjects), "windows": fold_data.summary()["windows"],
              "selected_checkpoint": str(selected), "selected_epoch": epoch,
              "selection": f"best {settings.monitor} ({settings.mode})" if has_val else "last epoch (no validation part)",
              "settings_tried": [{"overrides": t["overrides"][len(settings.overrides):], "val_score": t["val_score"]}
                                 for t in trained] if len(trained) > 1 else [],
              "selected_setting": chosen, "model": _description(cli.model), "channel_sensitivity": sensitivity,
              "protocol": fold_protocol_record(settings.protocol, settings.balanced, settings.unlisted, unbalanced,
                                               _weights(cli.model)),
              "wall_seconds": sum(t.get("wall_seconds", 0.0) for t in trained), "metrics": metrics}
    (out / DONE_FILE).write_text(json.dumps(record, indent=1) + "\n")
    return record


def run_feature_fold(settings: CVSettings, fold: Fold, arrays: dict[str, Any], out: Path, seed: int | None,
                     num_classes: int, spec: Any) -> dict[str, Any]:
    """Fit a classical baseline or the linear probe on one fold (C chosen on validation), test it, and write the
    fold's ``metrics.json`` record, in the layout of :func:`run_fold`; the protocol's undersampling and class
    weights apply as for the deep models."""
    started = time.monotonic()
    unbalanced = len(fold.train)
    fold = fold_for_protocol(settings, arrays["labels"], arrays.get("subjects"), fold, seed)
    class_weight = sklearn_class_weight(settings.protocol, arrays["labels"], fold)
    result = fit_feature_model(settings.baseline, fold, arrays["x"], arrays["labels"], num_classes,
                               0 if seed is None else seed, spec, probe_features=arrays.get("probe"),
                               channel_ids=arrays["channel_ids"], pool_features=arrays.get("features"),
                               class_weight=class_weight)
    record = {"fold": fold.index, "seed": seed, "name": settings.name,
              "test_subjects": list(fold.test_subjects), "val_subjects": list(fold.val_subjects),
              "train_subjects": list(fold.train_subjects),
              "windows": {"train": len(fold.train), "val": len(fold.val), "test": len(fold.test)},
              "selection": "best validation balanced accuracy over C" if len(fold.val) else "middle C (no validation)",
              "model": result["model"], "channel_sensitivity": result["channel_sensitivity"],
              "protocol": fold_protocol_record(settings.protocol, settings.balanced, settings.unlisted, unbalanced,
                                               class_weight),
              "wall_seconds": time.monotonic() - started, "metrics": result["metrics"]}
    out.mkdir(parents=True, exist_ok=True)
    (out / DONE_FILE).write_text(json.dumps(record, indent=1) + "\n")
    return record


def feature_arrays(settings: CVSettings, pool: WindowDataset, model: Any) -> dict[str, Any]:
    """The pool as arrays for the feature models (``x``, ``labels``, ``channel_ids``, ``subjects``); for the probe
    also the frozen FM's features of every window (computed once for all folds)."""
    x, labels, channel_ids = window_arrays(pool)
    arrays: dict[str, Any] = {"x": x, "labels": labels, "channel_ids": channel_ids, "subjects": pool.subjects}
    if settings.baseline == PROBE:
        fm = getattr(model, "fm", None)
        if fm is None:
            raise ConfigError("--baseline linear_probe needs a fine-tuning recipe whose model is the foundation model "
                              "(FinetuneTask); set --model.init_args.fm to the checkpoint to probe")
        pooling = dict(getattr(model, "hparams", {})).get("pooling", "mean")
        _say(f"linear probe: frozen features ({pooling} pooling) of {len(x)} windows")
        arrays["probe"] = FrozenFeatures(fm, pooling, x.shape[1], source=dict(getattr(model, "hparams", {})).get("fm"))
        arrays["features"] = arrays["probe"](x, channel_ids)
    return arrays


def pretrain_sections(rows: Sequence[dict[str, Any]], out: Path) -> list[tuple[str, str]]:
    """The pretraining diagnostics of the FM checkpoints the runs started from (``model.fm`` of each record),
    when they have them, as a report section: the full table for one checkpoint (copied to
    ``<out>/pretrain_diagnostics.json``), one line per fold for per-fold checkpoints (``{fold}`` overrides; the
    file then maps each checkpoint to its folds and table)."""
    from neurorvq.tasks.pretrain_diagnostics import (diagnostics_markdown, diagnostics_overview_markdown,
                                                     read_pretrain_diagnostics)

    folds: dict[str, set[int]] = {}
    for row in rows:
        fm = (row.get("model") or {}).get("fm")
        if fm and str(fm).endswith(".ckpt") and Path(fm).is_file():
            folds.setdefault(str(fm), set()).add(int(row["fold"]))
    tables = {fm: table for fm in folds if (table := read_pretrain_diagnostics(fm)) is not None}
    if not tables:
        return []
    intro = ("Masked-token accuracy of the FM whose weights were fine-tuned, beside always predicting the most "
             "frequent code; codebook usage of the tokenizer that gave its targets.\n\n")
    if len(tables) == 1:
        (fm, table), = tables.items()
        (out / "pretrain_diagnostics.json").write_text(json.dumps(table, indent=1) + "\n")
        return [(f"Pretraining diagnostics of {fm}", intro + diagnostics_markdown(table))]
    ordered = sorted(tables, key=lambda fm: min(folds[fm]))
    (out / "pretrain_diagnostics.json").write_text(json.dumps(
        {"checkpoints": {fm: {"folds": sorted(folds[fm]), "diagnostics": tables[fm]} for fm in ordered}},
        indent=1) + "\n")
    entries = [(", ".join(f"fold {k}" for k in sorted(folds[fm])), fm, tables[fm]) for fm in ordered]
    return [("Pretraining diagnostics, one FM per fold", intro + diagnostics_overview_markdown(entries))]


def run_cv(settings: CVSettings, out: str | Path, task: str | None = None) -> dict[str, Any]:
    """Run (or resume) every fold and write the tables; returns the summary (``summary.json``)."""
    for option, value in (("--group_by", settings.group_by), ("--stratify_by", settings.stratify_by)):
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"{option} is {value!r}; give a column of the windows (e.g. subject, session)")
    if settings.baseline is not None and settings.baseline not in BASELINES:
        raise ConfigError(f"unknown baseline {settings.baseline!r}; valid: {', '.join(BASELINES)}")
    check_protocol(settings.protocol, settings.val_fraction, settings.balance_per_subject, settings.unlisted)
    settings.seeds = check_seeds(settings.seeds)
    grid = grid_settings(settings.grid)
    if len(grid) > 1 and settings.val_fraction <= 0:
        raise ConfigError("--grid chooses among settings on validation groups, but --val_fraction is 0; give each "
                          "fold validation groups from its training side (e.g. --val_fraction 0.25)")
    if settings.grid and settings.baseline in FEATURE_MODELS:
        raise ConfigError(f"--grid does not apply to {settings.baseline}: its 3 settings are the logistic "
                          "regression's C values, chosen on validation")
    if settings.baseline == "riemann":
        from neurorvq.baselines.classical import require_pyriemann

        require_pyriemann()  # before loading any data
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    check_resumable(settings, out)
    if settings.baseline in DEEP_BASELINES or settings.baseline in CLASSICAL:
        # a classical baseline needs only the recipe's data, modality and classes: the (lazily built, never
        # trained) EEGNet task carries them without loading the recipe's foundation model
        architecture = settings.baseline if settings.baseline in DEEP_BASELINES else "eegnet"
        recipe, overrides = baseline_recipe(settings.recipe, settings.overrides, architecture, out)
        settings = replace(settings, recipe=recipe, overrides=overrides)
    check_fold_fields(settings.overrides, settings.grid)
    first = settings.only_folds[0] if settings.only_folds else 0  # per-fold overrides: any fold can load the data
    check_fold_paths(settings.overrides, [first])
    loader = instantiate_recipe(settings.recipe, fold_overrides(settings.overrides, first), out / "data")
    datamodule, model = loader.datamodule, loader.model
    _say(f"loading every labelled window of {type(datamodule).__name__} (all subjects pooled)")
    pool = pooled_windows(datamodule)
    groups = window_groups(pool, settings.group_by, datamodule)
    pool, groups, dropped = apply_unlisted(settings, pool, groups, datamodule)
    folds = make_folds(settings, pool, groups, out, datamodule)
    num_classes = int(getattr(model, "num_classes", 0) or 0)
    if num_classes:
        check_labels(pool, num_classes, folds)
    name = settings.name or model_name(model, settings.baseline)
    settings.name = name
    per_fold_probe = settings.baseline == PROBE and has_fold_field(settings.overrides)  # one FM per fold
    arrays = feature_arrays(settings, pool, model) if settings.baseline in FEATURE_MODELS and not per_fold_probe \
        else None
    task = task or " ".join(str(part) for part in (getattr(datamodule, "dataset_name", type(datamodule).__name__),
                                                   getattr(datamodule, "hparams", {}).get("task")) if part)
    _say(f"{name} on {task}: {len(pool)} windows, {len(np.unique(groups))} {settings.group_by}s, "
         f"{len(folds)} folds, protocol {settings.protocol} -> {out}")
    rows, started = [], time.monotonic()
    wanted = {f.index for f in folds}
    if settings.only_folds is not None:
        unknown = sorted(set(settings.only_folds) - wanted)
        if unknown:
            raise ConfigError(f"--only_folds {unknown}: no such fold; the folds are 0..{len(folds) - 1}")
        wanted = set(settings.only_folds)
    runs = [(fold, seed) for fold in folds for seed in (settings.seeds or [None])]
    where_of = {(fold.index, seed): out / f"fold_{fold.index}" / ("" if seed is None else f"seed_{seed}")
                for fold, seed in runs}
    check_fold_paths(settings.overrides, sorted({k for (k, seed), where in where_of.items()
                                                 if k in wanted and not (where / DONE_FILE).is_file()}))
    fold_arrays: dict[int, dict[str, Any]] = {}
    for n, (fold, seed) in enumerate(runs, 1):
        where = where_of[(fold.index, seed)]
        label = f"run {n}/{len(runs)} (fold {fold.index}{'' if seed is None else f', seed {seed}'})"
        done = where / DONE_FILE
        if done.is_file():
            rows.append(json.loads(done.read_text()))
            _say(f"{label} already finished (kept from {done})")
            continue
        if fold.index not in wanted:
            continue
        _say(f"{label}: test {settings.val_group_by or settings.group_by}s {fold.test_subjects}, validation "
             f"{fold.val_subjects or 'none (last epoch is tested)'}, {len(fold.train)}/{len(fold.val)}/"
             f"{len(fold.test)} train/val/test windows")
        if per_fold_probe and fold.index not in fold_arrays:  # runs go fold by fold: keep one fold's features
            fold_model = model if fold.index == first else instantiate_recipe(
                settings.recipe, fold_overrides(settings.overrides, fold.index), out / "data").model
            fold_arrays = {fold.index: feature_arrays(settings, pool, fold_model)}
        feature_data = fold_arrays[fold.index] if per_fold_probe else arrays
        if feature_data is not None:
            record = run_feature_fold(settings, fold, feature_data, where, seed, num_classes, datamodule.spec)
        else:
            record = run_fold(settings, pool, fold, datamodule.spec, where, seed)
        rows.append(record)
        elapsed = time.monotonic() - started
        shown = ", ".join(f"{k} {v:.3f}" for k, v in record["metrics"].items())
        _say(f"{label} done in {record['wall_seconds']:.0f} s: {shown}; {elapsed / 60:.1f} min so far")
    if not rows:
        raise ConfigError(f"no finished run under {out} to summarise")
    budget = 3 if settings.baseline in FEATURE_MODELS else len(grid)
    protocol = protocol_summary(settings.protocol, settings.val_fraction, settings.balanced, settings.unlisted,
                                dropped)
    extra = {"extra_columns": {"channel sensitivity": sensitivity_cell(rows), "settings": str(budget),
                               "protocol": settings.protocol},
             "selection_budget": budget, "model": rows[0].get("model") if rows else None, "protocol": protocol}
    sections = [("Protocol", protocol_markdown(protocol)), *pretrain_sections(rows, out)]
    summary = write_summary(rows, out, name, task, extra=extra, sections=sections)
    _say(f"summary in {out / 'summary.md'}")
    return summary


__all__ = ["BASELINES", "CVSettings", "check_labels", "fold_for_protocol", "instantiate_recipe", "pooled_windows",
           "run_cv", "run_feature_fold", "run_fold"]
