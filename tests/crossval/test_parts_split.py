"""neurorvq cv on a split file with train / val / test parts, run as one fold: the test part is tested; the val part
validates under clean and trains under parity; without a val part clean draws validation groups from the training
side, or from a finer column (val_group_by); the bad inputs; and the whole path through `neurorvq cv --folds_file
<parts file> --folds 1` on generated armband recordings."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from neurorvq.cli import main
from neurorvq.crossval import run_folds
from neurorvq.crossval.folds import window_groups
from neurorvq.crossval.runner import CVSettings
from neurorvq.data.split_files import save_split_file
from neurorvq.data.windowset import WindowDataset, WindowSet
from neurorvq.errors import ConfigError

SITES = {1: "north", 2: "north", 3: "north", 4: "north", 5: "south", 6: "south"}


def pool_of(subjects=(1, 2, 3, 4, 5, 6)):
    """4 windows (2 per class) per subject, a ``site`` column grouping the subjects; a DataModule stand-in naming
    them ``sub<k>``."""
    sets = [WindowSet(np.zeros((4, 1, 8), np.float32), [0], labels=[0, 1, 0, 1], subjects=[s] * 4,
                      recording=f"/data/sub{s}.csv", columns={"site": SITES[s]}) for s in subjects]
    data = SimpleNamespace(subject_ids={f"sub{s}": s for s in subjects}, root="/data")
    return data, WindowDataset(sets)


def folds_of(tmp_path: Path, parts: dict, by: str = "subject", **kwargs):
    data, pool = pool_of()
    path = save_split_file(tmp_path / "parts.json", by=by, splits=parts)
    settings = CVSettings(recipe="r.yaml", n_folds=1, folds_file=str(path), group_by=by, **kwargs)
    groups = window_groups(pool, by, data)
    pool, groups, _ = run_folds.apply_unlisted(settings, pool, groups, data)
    return run_folds.new_folds(settings, pool, groups, data)


def test_val_part_validates_under_clean_and_trains_under_parity(tmp_path):
    parts = {"train": ["sub1", "sub2", "sub3"], "val": ["sub4"], "test": ["sub5", "sub6"]}
    (fold,), metadata = folds_of(tmp_path, parts)  # clean: val_fraction 0.1
    assert (fold.index, fold.train_subjects, fold.val_subjects, fold.test_subjects) == (
        0, ["sub1", "sub2", "sub3"], ["sub4"], ["sub5", "sub6"])
    assert fold.test.tolist() == list(range(16, 24)) and fold.val.tolist() == list(range(12, 16))
    assert metadata["kind"] == "parts" and metadata["fold_names"] == ["train", "val", "test"]
    (fold,), _ = folds_of(tmp_path, parts, protocol="parity")
    assert (fold.train_subjects, fold.val_subjects) == (["sub1", "sub2", "sub3", "sub4"], [])
    assert fold.train.tolist() == list(range(16))


def test_without_a_val_part_clean_draws_validation_from_the_training_side(tmp_path):
    parts = {"train": ["sub1", "sub2", "sub3", "sub4"], "test": ["sub5", "sub6"]}
    (fold,), _ = folds_of(tmp_path, parts, val_fraction=0.25)
    assert len(fold.val_subjects) == 1 and set(fold.val_subjects) < set(parts["train"])
    assert sorted(fold.train_subjects + fold.val_subjects) == parts["train"] and fold.test_subjects == parts["test"]
    (again,), _ = folds_of(tmp_path, parts, val_fraction=0.25)
    assert again.val_subjects == fold.val_subjects  # seeded by (seed, 0)
    (none,), _ = folds_of(tmp_path, parts, val_fraction=0)
    assert none.val_subjects == [] and none.train_subjects == parts["train"]


def test_groups_in_no_part_train_or_are_dropped(tmp_path, capsys):
    parts = {"train": ["sub1", "sub2"], "test": ["sub5"]}
    (fold,), _ = folds_of(tmp_path, parts, val_fraction=0)
    assert fold.train_subjects == ["sub1", "sub2", "sub3", "sub4", "sub6"]
    assert "3 subject values are in no part of" in capsys.readouterr().out
    (fold,), _ = folds_of(tmp_path, parts, val_fraction=0, unlisted="drop")
    assert fold.train_subjects == ["sub1", "sub2"] and fold.test.tolist() == [8, 9, 10, 11]
    assert "that no part of" in capsys.readouterr().out


def test_validation_from_a_finer_column_inside_a_coarse_split(tmp_path):
    """A split by site (one training site) cannot give clean validation sites; val_group_by subject draws
    validation subjects inside the training site, and the fold lists subjects."""
    parts = {"train": ["north"], "test": ["south"]}
    with pytest.raises(ConfigError, match="training side holds 1 site group.*--val_group_by, e.g. subject"):
        folds_of(tmp_path, parts, by="site")
    (fold,), metadata = folds_of(tmp_path, parts, by="site", val_group_by="subject", val_fraction=0.25)
    assert fold.test_subjects == ["sub5", "sub6"] and len(fold.val_subjects) == 1
    assert sorted(fold.train_subjects + fold.val_subjects) == ["sub1", "sub2", "sub3", "sub4"]
    assert metadata["val_group_by"] == "subject"
    (parity,), _ = folds_of(tmp_path, parts, by="site", val_group_by="subject", protocol="parity")
    assert parity.train_subjects == ["sub1", "sub2", "sub3", "sub4"] and parity.val_subjects == []


def test_a_finer_column_crossing_the_parts_is_refused(tmp_path):
    """Sites do not lie inside subjects' parts: validation sites would straddle train and test."""
    with pytest.raises(ConfigError, match=r"--val_group_by 'site': site value\(s\) \['north', 'south'\] have "
                                          r"windows both in and outside the test part"):
        folds_of(tmp_path, {"train": ["sub1", "sub2", "sub5"], "test": ["sub3", "sub4", "sub6"]},
                 val_group_by="site")


@pytest.mark.parametrize("parts, kwargs, message", [
    ({"train": ["sub1"], "val": ["sub2"]}, {}, "has no (or an empty) test part"),
    ({"train": ["sub1"], "test": []}, {}, "has no (or an empty) test part"),
    ({"train": ["sub1"], "test": ["sub2"]}, {"n_folds": 10}, "one split, run as one fold, but --folds is 10; pass "
                                                              "--folds 1"),
    ({"train": ["sub1"], "test": ["sub9"]}, {}, "subject 'sub9' is not in the data"),
])
def test_bad_parts_files(tmp_path, parts, kwargs, message):
    data, pool = pool_of()
    path = save_split_file(tmp_path / "parts.json", by="subject", splits=parts)
    settings = CVSettings(recipe="r.yaml", folds_file=str(path), **{"n_folds": 1, **kwargs})
    with pytest.raises(ConfigError) as error:
        run_folds.new_folds(settings, pool, window_groups(pool, "subject", data), data)
    assert message in str(error.value) and "parts.json" in str(error.value)


def test_val_group_by_needs_a_split_file(tmp_path):
    data, pool = pool_of()
    settings = CVSettings(recipe="r.yaml", n_folds=2, group_by="site", val_group_by="subject")
    with pytest.raises(ConfigError, match="--val_group_by subject draws the validation groups inside the parts"):
        run_folds.new_folds(settings, pool, window_groups(pool, "site", data), data)
    assert "val_group_by" not in CVSettings(recipe="r.yaml").identity()
    assert CVSettings(recipe="r.yaml", val_group_by="subject").identity()["val_group_by"] == "subject"


def test_a_folds_file_with_validation_from_a_finer_column(tmp_path):
    data, pool = pool_of()
    path = save_split_file(tmp_path / "f.json", by="site", folds={"0": ["north"], "1": ["south"]})
    settings = CVSettings(recipe="r.yaml", n_folds=2, folds_file=str(path), group_by="site", val_group_by="subject",
                          val_fraction=0.5)
    folds, _ = run_folds.new_folds(settings, pool, window_groups(pool, "site", data), data)
    assert [f.test_subjects for f in folds] == [["sub1", "sub2", "sub3", "sub4"], ["sub5", "sub6"]]
    assert [len(f.val_subjects) for f in folds] == [1, 2] and folds[1].train_subjects and folds[0].train_subjects


def test_parts_file_end_to_end_through_the_cli(tmp_path, capsys):
    """`neurorvq cv --folds_file <parts> --folds 1` with the logpower baseline on armband-layout recordings: one
    fold testing the test part, validated on the val part; the table has one fold; a rerun keeps it."""
    from test_runner import RECIPE, write_armband

    root = write_armband(tmp_path / "data", subjects=(1, 2, 3, 4, 5), trials=2)
    parts = save_split_file(tmp_path / "parts.json", by="subject",
                            splits={"train": ["sub1", "sub2", "sub3"], "val": ["sub4"], "test": ["sub5"]})
    out = tmp_path / "out"
    args = ["cv", "--config", str(RECIPE), "--folds_file", str(parts), "--folds", "1", "--baseline", "logpower",
            "--out", str(out), f"--data.init_args.root={root}", "--model.init_args.num_classes=3",
            "--model.init_args.fm=null"]
    assert main(args) == 0
    fold, = json.loads((out / "folds.json").read_text())["folds"]
    assert (fold["train_subjects"], fold["val_subjects"], fold["test_subjects"]) == (
        ["sub1", "sub2", "sub3"], ["sub4"], ["sub5"])
    record = json.loads((out / "fold_0" / "metrics.json").read_text())
    assert record["test_subjects"] == ["sub5"] and record["windows"] == {"train": 18, "val": 6, "test": 6}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["folds"] == 1 and 0.0 <= summary["metrics"]["balanced_accuracy"]["mean"] <= 1.0
    capsys.readouterr()
    assert main(args) == 0
    assert "already finished" in capsys.readouterr().out


def test_the_command_line_passes_val_group_by(monkeypatch):
    """`neurorvq cv --val_group_by subject` reaches the runner's settings."""
    import neurorvq.crossval.runner as runner_module

    seen = {}

    def fake_run_cv(settings, out, task=None):
        seen["settings"] = settings
        raise SystemExit(0)

    monkeypatch.setattr(runner_module, "run_cv", fake_run_cv)
    with pytest.raises(SystemExit):
        main(["cv", "--config", "r.yaml", "--group_by", "user_set", "--val_group_by", "subject", "--folds", "1"])
    assert seen["settings"].val_group_by == "subject" and seen["settings"].group_by == "user_set"
