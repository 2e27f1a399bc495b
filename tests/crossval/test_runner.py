"""neurorvq cv: folds disjoint by subject, tables, resume after an interruption, baselines on identical folds,
and the bad inputs (fewer subjects than folds, labels outside the classes, single-class folds)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from neurorvq.cli import main
from neurorvq.crossval import runner
from neurorvq.crossval.runner import CVSettings, run_cv
from neurorvq.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
RECIPE = REPO / "recipes" / "finetune" / "semg_armband.yaml"
TINY = ["--model.init_args.fm=null", "--model.init_args.fm_overrides={depth: 1}", "--trainer.max_epochs=1",
        "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false", "--trainer.logger=false",
        "--data.init_args.batch_size=8"]


def write_armband(root: Path, subjects=(1, 2, 3, 4), motions=(1, 2, 3), trials=3, motion_of=None) -> Path:
    """Armband-layout CSVs whose motion sets which channel carries a 40 Hz burst (learnable, tiny)."""
    t = np.arange(300) / 200.0
    for sub in subjects:
        for motion in (motion_of(sub) if motion_of else motions):
            for trial in range(1, trials + 1):
                rng = np.random.default_rng(sub * 100 + motion * 10 + trial)
                data = rng.normal(0, 0.05, (300, 8))
                data[:, motion % 8] += 0.3 * np.sin(2 * np.pi * 40 * t)
                path = root / f"sub{sub}" / "day1" / f"D1M{motion}T{trial}.csv"
                path.parent.mkdir(parents=True, exist_ok=True)
                np.savetxt(path, data, delimiter=",", fmt="%.5f")
    return root


def settings(root: Path, n_folds: int = 3, extra=(), **kwargs) -> CVSettings:
    overrides = [*TINY, f"--data.init_args.root={root}", "--model.init_args.num_classes=3", *extra]
    return CVSettings(recipe=str(RECIPE), overrides=overrides, n_folds=n_folds, val_fraction=0.34, **kwargs)


@pytest.fixture(scope="module")
def armband(tmp_path_factory) -> Path:
    return write_armband(tmp_path_factory.mktemp("armband") / "data")


@pytest.fixture(scope="module")
def finished(armband, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cv")
    run_cv(settings(armband), out)
    return out


def test_folds_are_disjoint_by_subject_and_validation_comes_from_training_subjects(finished):
    folds = json.loads((finished / "folds.json").read_text())["folds"]
    tests = [set(f["test_subjects"]) for f in folds]
    assert set().union(*tests) == {"sub1", "sub2", "sub3", "sub4"} and sum(map(len, tests)) == 4
    for fold in folds:
        train, val, test = (set(fold[f"{p}_subjects"]) for p in ("train", "val", "test"))
        assert not (train & val) and not (train & test) and not (val & test)
        assert val and len(train | val | test) == 4
        record = json.loads((finished / f"fold_{fold['index']}" / "metrics.json").read_text())
        assert record["test_subjects"] == fold["test_subjects"] and record["selection"].startswith("best")
        assert record["windows"] == {"train": 9 * len(train), "val": 9 * len(val), "test": 9 * len(test)}


def test_tables_hold_every_fold_and_the_mean_and_std(finished):
    rows = list(csv.DictReader(open(finished / "metrics_per_fold.csv")))
    assert [r["fold"] for r in rows] == ["0", "1", "2"]
    values = np.array([float(r["balanced_accuracy"]) for r in rows])
    summary = json.loads((finished / "summary.json").read_text())
    assert summary["metrics"]["balanced_accuracy"]["mean"] == pytest.approx(values.mean(), abs=1e-6)
    assert summary["metrics"]["balanced_accuracy"]["std"] == pytest.approx(values.std(), abs=1e-6)
    assert summary["folds"] == 3 and "auroc" not in summary["metrics"]  # 3 classes: no binary metrics
    text = (finished / "summary.md").read_text()
    assert "| model | task | folds | balanced accuracy | accuracy | Cohen's kappa | weighted F1 |" in text
    assert f"{values.mean():.3f}±{values.std():.3f}" in text
    assert "| fold | test subjects |" in text


def test_resume_runs_only_the_unfinished_folds(armband, tmp_path, monkeypatch):
    calls = []
    real = runner.run_fold

    def interrupted(s, pool, fold, spec, out, seed=None):
        calls.append(fold.index)
        if fold.index == 1:
            raise KeyboardInterrupt  # the machine stops during the second fold
        return real(s, pool, fold, spec, out)

    monkeypatch.setattr(runner, "run_fold", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_cv(settings(armband), tmp_path)
    first = (tmp_path / "fold_0" / "metrics.json").read_text()

    def counted(s, pool, fold, spec, out, seed=None):
        calls.append(fold.index)
        return real(s, pool, fold, spec, out)

    monkeypatch.setattr(runner, "run_fold", counted)
    summary = run_cv(settings(armband), tmp_path)
    assert calls == [0, 1, 1, 2]  # fold 0 was not run again
    assert (tmp_path / "fold_0" / "metrics.json").read_text() == first and summary["folds"] == 3
    with pytest.raises(ConfigError, match="other settings .*n_folds"):
        run_cv(settings(armband, n_folds=2), tmp_path)


def test_baseline_runs_on_identical_folds_and_report_combines(armband, finished, tmp_path, capsys):
    out = tmp_path / "eegnet"
    assert main(["cv", "--config", str(RECIPE), "--folds", "3", "--val_fraction", "0.34", "--baseline", "eegnet",
                 "--folds_file", str(finished / "folds.json"), "--out", str(out), *TINY,
                 f"--data.init_args.root={armband}", "--model.init_args.num_classes=3"]) == 0
    assert json.loads((out / "folds.json").read_text()) == json.loads((finished / "folds.json").read_text())
    assert "neurorvq.tasks.baseline.BaselineTask" in (out / "baseline_recipe.yaml").read_text()
    assert json.loads((out / "summary.json").read_text())["name"] == "eegnet"
    capsys.readouterr()
    assert main(["cv-report", str(finished), str(out), "--out", str(tmp_path / "table.md")]) == 0
    table = (tmp_path / "table.md").read_text()
    assert "| NeuroRVQ-FM (no pretraining) |" in table and "| eegnet |" in table
    assert "identical folds" not in table


def test_fewer_subjects_than_folds(armband, tmp_path):
    with pytest.raises(ConfigError, match="5 folds need at least 5 subjects.*4 subjects"):
        run_cv(settings(armband, n_folds=5), tmp_path)


def test_labels_outside_the_declared_classes(armband, tmp_path):
    with pytest.raises(ConfigError, match=r"labels \[2\] outside the model's classes 0\.\.1"):
        run_cv(settings(armband, extra=["--model.init_args.num_classes=2"]), tmp_path)


def test_a_fold_with_a_single_class(tmp_path):
    # subjects 1-2 perform motion 1 only, subjects 3-4 motion 2 only: a held-out subject's test part has one class
    root = write_armband(tmp_path / "data", motion_of=lambda sub: (1,) if sub <= 2 else (2,))
    with pytest.raises(ConfigError, match="fold .* its test part .* holds a single class"):
        run_cv(settings(root, n_folds=4, extra=["--model.init_args.num_classes=2"]), tmp_path / "out")
    # and a training part with a single class cannot be trained at all
    root = write_armband(tmp_path / "two", subjects=(1, 2, 3), motion_of=lambda sub: (1,) if sub <= 2 else (2,))
    with pytest.raises(ConfigError, match="its training part .* holds a single class"):
        run_cv(settings(root, n_folds=3, extra=["--model.init_args.num_classes=2"], require_all_classes=False),
               tmp_path / "out2")


def test_group_by_recording_for_within_subject_runs(armband, tmp_path):
    data = runner.instantiate_recipe(str(RECIPE), [*TINY, f"--data.init_args.root={armband}"], tmp_path).datamodule
    pool = runner.pooled_windows(data)
    groups = runner.window_groups(pool, "recording", data)
    assert len(set(groups)) == 36 and groups[0] == "sub1/day1/D1M1T1.csv"  # same file names in every subject
    with pytest.raises(ConfigError, match="--group_by 'sesion': the windows have no column 'sesion'"):
        runner.window_groups(pool, "sesion", data)
