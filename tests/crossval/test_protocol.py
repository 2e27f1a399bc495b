"""neurorvq cv protocols: ``parity`` (no validation, last epoch, class weights from the training + held-out labels,
per-subject undersampling of the training windows) against ``clean``; ``--unlisted drop``; plain accuracy in the
records and tables; runs made before these options still resume."""

from __future__ import annotations

import csv
from collections import Counter
import json
from pathlib import Path
from types import SimpleNamespace

import lightning as L
import numpy as np
import pytest
import torch

from neurorvq.baselines.logistic import LogisticProbe
from neurorvq.cli import main
from neurorvq.crossval import run_folds, runner
from neurorvq.crossval.folds import window_groups
from neurorvq.crossval.protocol import (PARITY, balanced_indices, class_weight_labels, protocol_fold,
                                        sklearn_class_weight)
from neurorvq.crossval.report import protocol_note
from neurorvq.crossval.runner import CVSettings, run_cv
from neurorvq.data.split_files import save_split_file
from neurorvq.data.splits import Fold
from neurorvq.data.windowset import WindowDataset, WindowSet
from neurorvq.errors import ConfigError
from neurorvq.file_io import read_lightning_checkpoint
from neurorvq.registry import get_modality
from neurorvq.tasks.baseline import BaselineTask
from neurorvq.tasks.classification import balanced_class_weights

from test_runner import RECIPE, TINY, write_armband

OLD_IDENTITY = {"recipe", "overrides", "n_folds", "seed", "val_fraction", "group_by", "monitor", "mode", "baseline",
                "seeds", "grid"}  # the keys of a cv.json written before the protocol options existed


# ------------------------------------------------------------------------------------------- undersampling

def test_undersampling_per_subject_and_class():
    # subject 1: class counts 5, 2, 3 -> 2 each; subject 2: 4, 4 -> unchanged; subject 3 has one class: kept
    labels = np.array([0] * 5 + [1] * 2 + [2] * 3 + [0] * 4 + [1] * 4 + [2] * 3 + [1] * 6)
    subjects = np.array([1] * 10 + [2] * 8 + [3] * 3 + [4] * 6)
    train = np.flatnonzero(subjects != 4)  # subject 4 is the held-out one: never touched
    kept = balanced_indices(train, labels, subjects, seed=3, fold_index=1)
    assert set(kept) <= set(train) and np.all(np.diff(kept) > 0)
    counts = Counter(zip(subjects[kept].tolist(), labels[kept].tolist()))
    assert counts == {(1, 0): 2, (1, 1): 2, (1, 2): 2, (2, 0): 4, (2, 1): 4, (3, 2): 3}
    assert np.array_equal(kept, balanced_indices(train, labels, subjects, seed=3, fold_index=1))  # reruns
    draws = {tuple(balanced_indices(train, labels, subjects, seed=s, fold_index=k)) for s in range(4) for k in range(3)}
    assert len(draws) > 1  # the seed and the fold choose the windows
    assert balanced_indices(np.array([], np.int64), labels, subjects, seed=0).size == 0


def test_protocol_fold_balances_the_training_part_only():
    labels = np.array([0, 0, 0, 1, 0, 0, 1, 1, 1, 0])
    subjects = np.array([1, 1, 1, 1, 2, 2, 2, 2, 3, 3])
    fold = Fold(index=2, train=np.arange(8), val=np.array([], np.int64), test=np.array([8, 9]),
                train_subjects=[1, 2], val_subjects=[], test_subjects=[3])
    balanced = protocol_fold(fold, labels, subjects, balance=True, seed=None)
    assert np.array_equal(balanced.train, balanced_indices(fold.train, labels, subjects, seed=0, fold_index=2))
    assert len(balanced.train) == 6 and np.array_equal(balanced.test, [8, 9]) and balanced.test_subjects == [3]
    assert protocol_fold(fold, labels, subjects, balance=False, seed=0) is fold
    with pytest.raises(ConfigError, match="needs windows with subject ids; pass --balance_per_subject false"):
        protocol_fold(fold, labels, None, balance=True, seed=0)


# ------------------------------------------------------------------------------------------- class weights

def test_parity_class_weights_come_from_training_and_held_out_labels(tmp_path):
    """An imbalanced fold: training labels 6 x class 0, 2 x class 1; held-out 2 x class 0, 6 x class 1. Clean
    weights come from the training labels only, parity from all 16 (balanced: equal weights)."""
    rng = np.random.default_rng(0)
    pool = WindowDataset([WindowSet(rng.normal(0, 5, (8, 3, 400)).astype(np.float32), [36, 9, 10], labels=labels,
                                    subjects=[subject] * 8)
                          for subject, labels in ((1, [0] * 6 + [1] * 2), (2, [0] * 2 + [1] * 6))])
    fold = Fold(index=0, train=np.arange(8), val=np.array([], np.int64), test=np.arange(8, 16),
                train_subjects=[1], val_subjects=[], test_subjects=[2])
    data = SimpleNamespace(batch_size=8, num_workers=0, seed=0)

    def weights(protocol: str) -> np.ndarray:
        task = BaselineTask("shallow_convnet", num_classes=2, implementation="neurorvq")
        fold_data = runner.fold_datamodule(data, pool, fold, get_modality("eeg"), 0,
                                           class_weight_labels(protocol, pool.labels, fold))
        L.Trainer(accelerator="cpu", max_epochs=1, limit_train_batches=1, limit_val_batches=0, logger=False,
                  enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                  default_root_dir=tmp_path).fit(task, fold_data)
        return task.class_weight.numpy()

    clean, parity = weights("clean"), weights(PARITY)
    assert clean == pytest.approx([0.5, 1.5])  # 1/6 and 1/2, normalised to sum to 2
    assert parity == pytest.approx([1.0, 1.0])  # 8 and 8 over training + held-out labels
    assert parity == pytest.approx(balanced_class_weights(torch.as_tensor(pool.labels), 2).numpy())
    # the feature models get the same leak, in scikit-learn's "balanced" scale n / (K count)
    assert sklearn_class_weight(PARITY, pool.labels, fold) == {0: 1.0, 1: 1.0}
    assert sklearn_class_weight("clean", pool.labels, fold) == "balanced"


def test_logistic_regression_takes_fixed_class_weights():
    """A dict of weights (parity) may name a class the training part lacks (held out only); it must name every
    training class."""
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 3)), np.repeat([0, 1], 20)
    x[y == 1, 0] += 5.0
    probe = LogisticProbe(3, (1.0,), class_weight={0: 0.8, 1: 0.8, 2: 1.6}).fit(x, y)
    assert probe.predict_proba(x).shape == (40, 3) and (probe.predict_proba(x).argmax(1) == y).mean() > 0.9
    assert probe.classifier[-1].class_weight == {0: 0.8, 1: 0.8}
    with pytest.raises(ConfigError, match=r"has no weight for the training classes \[1\]; give one per class"):
        LogisticProbe(2, (1.0,), class_weight={0: 1.0}).fit(x, y)


# ------------------------------------------------------------------------------------------- options

def test_bad_protocol_options(tmp_path, cli_error):
    base = {"recipe": str(RECIPE), "n_folds": 2}
    with pytest.raises(ConfigError, match=r"--protocol parity has no validation part .* --val_fraction is 0.1; omit"):
        run_cv(CVSettings(**base, protocol="parity", val_fraction=0.1), tmp_path / "a")
    with pytest.raises(ConfigError, match="--protocol is 'paritty'; use clean"):
        run_cv(CVSettings(**base, protocol="paritty"), tmp_path / "b")
    with pytest.raises(ConfigError, match="--unlisted is 'keep'; use train"):
        run_cv(CVSettings(**base, unlisted="keep"), tmp_path / "c")
    with pytest.raises(ConfigError, match="--balance_per_subject is 'yes'; use true or false"):
        run_cv(CVSettings(**base, balance_per_subject="yes"), tmp_path / "d")
    assert not (tmp_path / "a").exists()  # refused before anything is written
    err = cli_error(["cv", "--config", str(RECIPE), "--protocol", "parity", "--val_fraction", "0.2", "--out",
                     str(tmp_path / "e")])
    assert "--protocol parity has no validation part" in err
    # the protocol resolves the validation share when none is given
    assert CVSettings(recipe="r.yaml", protocol="parity").val_fraction == 0.0
    assert CVSettings(recipe="r.yaml").val_fraction == 0.1


def loaded_pool():
    """Three subjects of 4 windows (2 per class); a datamodule stand-in naming them."""
    sets = [WindowSet(np.zeros((4, 1, 8), np.float32), [0], labels=[0, 1, 0, 1], subjects=[sub] * 4,
                      recording=f"/data/sub{sub}.csv") for sub in (1, 2, 3)]
    return SimpleNamespace(subject_ids={"sub1": 1, "sub2": 2, "sub3": 3}, root="/data"), WindowDataset(sets)


def test_unlisted_groups_train_or_are_dropped(tmp_path, capsys):
    data, pool = loaded_pool()
    path = save_split_file(tmp_path / "f.json", by="subject", folds={"0": ["sub1"], "1": ["sub2"]})
    groups = window_groups(pool, "subject", data)

    def settings(unlisted: str) -> CVSettings:
        return CVSettings(recipe="r.yaml", n_folds=2, val_fraction=0, folds_file=str(path), unlisted=unlisted)

    kept, kept_groups, dropped = run_folds.apply_unlisted(settings("train"), pool, groups, data)
    assert kept is pool and dropped == []
    folds, _ = run_folds.new_folds(settings("train"), pool, groups, data)
    assert [f.train_subjects for f in folds] == [["sub2", "sub3"], ["sub1", "sub3"]]  # today's behaviour
    assert "train in every fold: ['sub3'] (--unlisted drop leaves them out)" in capsys.readouterr().out

    small, small_groups, dropped = run_folds.apply_unlisted(settings("drop"), pool, groups, data)
    assert dropped == ["sub3"] and len(small) == 8 and small_groups.tolist() == ["sub1"] * 4 + ["sub2"] * 4
    assert small.subjects.tolist() == [1] * 4 + [2] * 4
    printed = capsys.readouterr().out
    assert "1 subject value(s) that no fold of" in printed and "(4 of 12 windows): ['sub3']" in printed
    folds, metadata = run_folds.new_folds(settings("drop"), small, small_groups, data)
    assert [f.train_subjects for f in folds] == [["sub2"], ["sub1"]] and metadata["unlisted"] == "drop"
    assert [f.test.tolist() for f in folds] == [[0, 1, 2, 3], [4, 5, 6, 7]]


# ------------------------------------------------------------------------------------------- end to end

@pytest.fixture(scope="module")
def imbalanced(tmp_path_factory) -> tuple[Path, Path]:
    """Armband recordings (4 subjects x 3 motions x 3 trials); subject 2 lacks two trials of motion 3 (3, 3, 1
    windows per class). The split file holds out subjects 1 and 2 in turn and does not list subjects 3 and 4."""
    root = write_armband(tmp_path_factory.mktemp("imbalanced") / "data")
    for trial in (2, 3):
        (root / "sub2" / "day1" / f"D1M3T{trial}.csv").unlink()
    split = save_split_file(root.parent / "folds.json", by="subject",
                            folds={"0": ["sub1"], "1": ["sub2"]}, source="test")
    return root, split


def parity(root: Path, split: Path, **kwargs) -> CVSettings:
    overrides = [*TINY, f"--data.init_args.root={root}", "--model.init_args.num_classes=3"]
    values = {"n_folds": 2, "folds_file": str(split), "protocol": "parity", "unlisted": "drop", **kwargs}
    return CVSettings(recipe=str(RECIPE), overrides=overrides, **values)


def test_parity_run_end_to_end(imbalanced, tmp_path, capsys):
    root, split = imbalanced
    out = tmp_path / "parity"
    summary = run_cv(parity(root, split), out)
    printed = capsys.readouterr().out
    assert "--unlisted drop: 2 subject value(s)" in printed and "(18 of 34 windows): ['sub3', 'sub4']" in printed
    folds = json.loads((out / "folds.json").read_text())["folds"]
    assert [(f["train_subjects"], f["val_subjects"]) for f in folds] == [(["sub2"], []), (["sub1"], [])]
    records = [json.loads((out / f"fold_{k}" / "metrics.json").read_text()) for k in range(2)]
    for record in records:
        assert record["selection"] == "last epoch (no validation part)" and record["selected_epoch"] == 0
        assert record["protocol"]["name"] == "parity" and record["protocol"]["balance_per_subject"] is True
        assert record["protocol"]["class_weights_from"] == "training + held-out labels"
        assert {"accuracy", "balanced_accuracy"} <= set(record["metrics"])
    # fold 0 trains on subject 2 (3, 3, 1 windows per class -> 1, 1, 1): 3 of 7 windows
    assert records[0]["windows"] == {"train": 3, "val": 0, "test": 9}
    assert records[0]["protocol"]["train_windows_before_balancing"] == 7
    # fold 1 holds out subject 2: weights from 3+3, 3+3, 3+1 windows per class, not the training's 3, 3, 3
    expected = balanced_class_weights(torch.tensor([0] * 6 + [1] * 6 + [2] * 4), 3)
    assert records[1]["protocol"]["class_weights"] == pytest.approx(expected.tolist())
    state = read_lightning_checkpoint(out / "fold_1" / "checkpoints" / "last.ckpt")["state_dict"]
    assert state["class_weight"].tolist() == pytest.approx(expected.tolist())
    assert not np.allclose(expected.numpy(), 1.0)  # clean's training-only weights would be equal
    assert summary["protocol"] == {"name": "parity", "val_fraction": 0.0, "balance_per_subject": True,
                                   "class_weights_from": "training + held-out labels", "unlisted": "drop",
                                   "dropped": ["sub3", "sub4"]}
    text = (out / "summary.md").read_text()
    assert "## Protocol\n\n**parity** (the published EEG benchmark" in text
    assert "2 group(s) the split file lists in no fold were left out (sub3, sub4)." in text
    assert "| balanced accuracy | accuracy |" in text and "| settings | protocol |" in text and "| 1 | parity |" in text
    rows = list(csv.DictReader(open(out / "metrics_per_fold.csv")))
    assert [float(r["accuracy"]) for r in rows] == pytest.approx([r["metrics"]["accuracy"] for r in records],
                                                                 abs=1e-6)
    assert json.loads((out / "cv.json").read_text())["protocol"] == "parity"
    # the explicit default resumes the same run; clean does not
    run_cv(parity(root, split, balance_per_subject=True), out)
    with pytest.raises(ConfigError, match="other settings .*protocol"):
        run_cv(parity(root, split, protocol="clean", val_fraction=0.1), out)


def test_parity_feature_model_gets_the_same_treatment(imbalanced, tmp_path):
    root, split = imbalanced
    run_cv(parity(root, split, baseline="logpower"), tmp_path / "lp")
    record = json.loads((tmp_path / "lp" / "fold_1" / "metrics.json").read_text())
    # training: subject 1 (3, 3, 3); held out: subject 2 (3, 3, 1): n = 16, K = 3
    weights = {"0": 16 / 18, "1": 16 / 18, "2": 16 / 12}
    assert record["protocol"]["class_weights"] == pytest.approx(weights)
    assert record["model"]["settings"]["class_weight"] == pytest.approx(weights)
    assert record["windows"]["train"] == 9 and record["selection"] == "middle C (no validation)"
    assert "accuracy" in record["metrics"]
    # balancing off (High-Gamma), from the command line: every training window, and part of the run's identity
    assert main(["cv", "--config", str(RECIPE), "--folds", "2", "--folds_file", str(split), "--protocol", "parity",
                 "--balance_per_subject", "false", "--unlisted", "drop", "--baseline", "logpower", "--out",
                 str(tmp_path / "off"), *TINY, f"--data.init_args.root={root}", "--model.init_args.num_classes=3"]) == 0
    off = json.loads((tmp_path / "off" / "fold_0" / "metrics.json").read_text())
    assert off["windows"]["train"] == 7 and off["protocol"]["balance_per_subject"] is False
    assert off["windows"]["val"] == 0  # --val_fraction defaults to 0 under parity
    assert json.loads((tmp_path / "off" / "cv.json").read_text())["balance_per_subject"] is False


def test_tables_of_runs_with_different_protocols_say_so():
    runs = [{"name": "FM", "protocol": {"name": "parity"}}, {"name": "eegnet"}]  # a summary without one: clean
    assert "different protocols (FM: parity, eegnet: clean)" in protocol_note(runs)
    assert protocol_note(runs[:1]) == ""


def test_a_run_made_before_the_protocol_options_resumes(imbalanced, tmp_path, monkeypatch):
    root, split = imbalanced
    clean = CVSettings(recipe=str(RECIPE), overrides=[*TINY, f"--data.init_args.root={root}",
                                                      "--model.init_args.num_classes=3"],
                       n_folds=4, baseline="logpower", val_fraction=0)
    run_cv(clean, tmp_path)
    assert set(json.loads((tmp_path / "cv.json").read_text())) == OLD_IDENTITY
    record = json.loads((tmp_path / "fold_0" / "metrics.json").read_text())
    assert record["protocol"]["name"] == "clean" and record["protocol"]["class_weights"] == "balanced"
    assert record["windows"]["train"] + record["windows"]["test"] == 34  # no balancing, no subject dropped
    fitted = []
    monkeypatch.setattr(runner, "run_feature_fold", lambda *args, **kwargs: fitted.append(args))
    summary = run_cv(clean, tmp_path)
    assert fitted == [] and summary["folds"] == 4 and summary["protocol"]["name"] == "clean"
    with pytest.raises(ConfigError, match=r"other settings \{'unlisted': \(None, 'drop'\)\}"):
        run_cv(CVSettings(**{**clean.__dict__, "unlisted": "drop"}), tmp_path)
