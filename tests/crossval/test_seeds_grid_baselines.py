"""neurorvq cv with training seeds, a selection grid, the classical baselines and the linear probe: layout,
selection on validation only, identical folds, channel sensitivity in every record, bad inputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from neurorvq.cli import main
from neurorvq.crossval.grid import check_seeds, grid_settings
from neurorvq.crossval.runner import run_cv
from neurorvq.errors import ConfigError

from test_runner import RECIPE, TINY, armband, settings  # noqa: F401  (armband: the generated recordings fixture)


@pytest.fixture(scope="module")
def seeded(armband, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("seeded")
    run_cv(settings(armband, n_folds=2, seeds=[0, 1], grid=["model.init_args.lr=[1e-3, 1e-2]"]), out)
    return out


def test_every_fold_runs_once_per_seed_and_tables_give_intervals(seeded):
    records = sorted(seeded.glob("fold_*/seed_*/metrics.json"))
    assert len(records) == 4
    seeds = {(r["fold"], r["seed"]) for r in map(lambda p: json.loads(p.read_text()), records)}
    assert seeds == {(0, 0), (0, 1), (1, 0), (1, 1)}
    summary = json.loads((seeded / "summary.json").read_text())
    stats = summary["metrics"]["balanced_accuracy"]
    assert stats["folds"] == 2 and stats["seeds"] == 2 and stats["runs"] == 4 and stats["ci95"] is not None
    text = (seeded / "summary.md").read_text()
    assert "t-interval over the per-fold means across seeds" in text and "channel sensitivity" in text


def test_seeds_change_the_training_and_the_grid_is_chosen_on_validation(seeded):
    for fold in (0, 1):
        a, b = (json.loads((seeded / f"fold_{fold}/seed_{s}/metrics.json").read_text()) for s in (0, 1))
        assert a["test_subjects"] == b["test_subjects"]  # fixed folds
        for record in (a, b):
            tried = record["settings_tried"]
            assert [t["overrides"][0] for t in tried] == ["--model.init_args.lr=1e-3", "--model.init_args.lr=1e-2"]
            scores = [t["val_score"] for t in tried]
            assert record["selected_setting"] == scores.index(max(scores))  # validation decides, ties -> first
            assert record["model"]["backbone"] == "scratch" and record["model"]["layer_decay_mode"] == "block"
            assert record["channel_sensitivity"]["relative_change"] is not None
    first = json.loads((seeded / "fold_0/seed_0/setting_0/selection.json").read_text())
    second = json.loads((seeded / "fold_0/seed_1/setting_0/selection.json").read_text())
    assert first["val_score"] is not None and "--seed_everything=0" in first["overrides"]
    assert "--seed_everything=1" in second["overrides"]


def test_classical_baselines_find_the_burst_channel(armband, tmp_path):
    """The generated motions differ in which channel carries a 40 Hz burst: band power and covariances see it
    (two training subjects per fold, the middle C without a validation part)."""
    common = ["--config", str(RECIPE), "--folds", "2", "--val_fraction", "0", *TINY, f"--data.init_args.root={armband}",
              "--model.init_args.num_classes=3"]
    for name in ("logpower", "riemann"):
        out = tmp_path / name
        assert main(["cv", *common, "--baseline", name, "--out", str(out), "--seeds", "0", "1"]) == 0
        summary = json.loads((out / "summary.json").read_text())
        assert summary["name"] == name and summary["metrics"]["balanced_accuracy"]["mean"] >= 0.9
        record = json.loads((out / "fold_0/seed_1/metrics.json").read_text())
        assert record["model"]["selected_C"] == 0.1 and record["model"]["settings"]["seed"] == 1
        assert record["channel_sensitivity"]["channel_blind"] is False


def test_classical_baseline_on_identical_folds_and_the_paired_report(armband, seeded, tmp_path, capsys):
    out = tmp_path / "logpower"
    assert main(["cv", "--config", str(RECIPE), "--folds", "2", "--val_fraction", "0.34", "--folds_file",
                 str(seeded / "folds.json"), *TINY, f"--data.init_args.root={armband}",
                 "--model.init_args.num_classes=3", "--baseline", "logpower", "--out", str(out)]) == 0
    record = json.loads((out / "fold_0/metrics.json").read_text())
    assert len(record["model"]["validation_scores"]) == 3  # C chosen on the validation subject
    assert record["val_subjects"] == json.loads((seeded / "folds.json").read_text())["folds"][0]["val_subjects"]
    capsys.readouterr()
    assert main(["cv-report", str(out), str(seeded), "--paired"]) == 0
    text = capsys.readouterr().out
    assert "mean difference" in text and "paired on identical folds" in text


def test_linear_probe_on_frozen_features(armband, seeded, tmp_path):
    out = tmp_path / "probe"
    summary = run_cv(settings(armband, n_folds=2, folds_file=str(seeded / "folds.json"), baseline="linear_probe",
                              extra=["--model.init_args.pooling=channel_concat"]), out)
    assert summary["name"] == "linear probe (channel_concat) on random FM"
    record = json.loads((out / "fold_0/metrics.json").read_text())
    assert record["model"]["frozen"] and record["model"]["pooling"] == "ChannelConcatPooling"
    assert 0.0 <= record["metrics"]["balanced_accuracy"] <= 1.0


def test_bad_seeds_and_grids():
    with pytest.raises(ConfigError, match=r"repeats \[1\]"):
        check_seeds([0, 1, 1])
    with pytest.raises(ConfigError, match=r"negative values \[-2\]"):
        check_seeds([-2, 0])
    with pytest.raises(ConfigError, match="at most 3"):
        grid_settings(["model.init_args.lr=[1, 2]", "model.init_args.layer_decay=[0.5, 0.9]"])
    with pytest.raises(ConfigError, match="YAML list"):
        grid_settings(["model.init_args.lr=0.1"])
    with pytest.raises(ConfigError, match="KEY="):
        grid_settings(["model.init_args.lr"])
    assert grid_settings(None) == [[]]


def test_a_grid_needs_validation_groups_and_baselines_are_known(armband, tmp_path):
    with pytest.raises(ConfigError, match="val_fraction is 0"):
        s = settings(armband, grid=["model.init_args.lr=[1e-3, 1e-2]"])
        s.val_fraction = 0.0
        run_cv(s, tmp_path / "a")
    with pytest.raises(ConfigError, match="unknown baseline 'svm'"):
        run_cv(settings(armband, baseline="svm"), tmp_path / "b")
    with pytest.raises(ConfigError, match="does not apply to riemann"):
        run_cv(settings(armband, baseline="riemann", grid=["model.init_args.lr=[1e-3, 1e-2]"]), tmp_path / "c")


def test_resuming_without_the_seeds_or_grid_is_refused(armband, seeded):
    with pytest.raises(ConfigError, match="other settings .*seeds"):
        run_cv(settings(armband, n_folds=2, grid=["model.init_args.lr=[1e-3, 1e-2]"]), seeded)
    with pytest.raises(ConfigError, match="other settings .*grid"):
        run_cv(settings(armband, n_folds=2, seeds=[0, 1]), seeded)
