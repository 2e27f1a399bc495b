"""neurorvq cv grouped and stratified by any column of the windows, folds from split files (JSON and CSV), the
errors for unknown columns and mismatched files, and runs made before --stratify_by still resume."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import yaml

from neurorvq.cli import main
from neurorvq.crossval import runner
from neurorvq.crossval.run_folds import new_folds
from neurorvq.crossval.runner import CVSettings, run_cv
from neurorvq.data.split_files import save_split_file
from neurorvq.data.windowset import WindowDataset, WindowSet
from neurorvq.datamodules.semg_armband import SEMGArmbandDataModule
from neurorvq.errors import ConfigError

from test_runner import RECIPE, TINY

EARLY, LATE = {"day1", "day2"}, {"day3", "day4"}  # repetitions 1-2 were recorded on days 1-2, 3-4 on days 3-4


class ColumnsArmband(SEMGArmbandDataModule):
    """The armband recordings with metadata columns: ``session`` (``day<d>``, the day folder), ``repetition`` (the
    file's trial number) and ``site`` (the same everywhere)."""

    def load_windows(self, info, pipeline):
        columns = {"session": f"day{info.metadata['day']}", "repetition": int(info.metadata["trial"]), "site": "A"}
        return [replace(ws, columns={**ws.columns, **columns}) for ws in super().load_windows(info, pipeline)]


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    """2 subjects x 4 days x 3 motions; days 1-2 hold trials 1-2, days 3-4 trials 3-4 (12 windows a session).
    The motion sets which channel carries a 40 Hz burst, so the classical baseline learns it."""
    root = tmp_path_factory.mktemp("sessions") / "data"
    t = np.arange(300) / 200.0
    for sub in (1, 2):
        for day in (1, 2, 3, 4):
            for motion in (1, 2, 3):
                for trial in ((1, 2) if day <= 2 else (3, 4)):
                    data = np.random.default_rng(sub * 1000 + day * 100 + motion * 10 + trial).normal(0, 0.05, (300, 8))
                    data[:, motion] += 0.3 * np.sin(2 * np.pi * 40 * t)
                    path = root / f"sub{sub}" / f"day{day}" / f"D{day}M{motion}T{trial}.csv"
                    path.parent.mkdir(parents=True, exist_ok=True)
                    np.savetxt(path, data, delimiter=",", fmt="%.5f")
    return root


@pytest.fixture(scope="module")
def recipe(tmp_path_factory) -> Path:
    config = yaml.safe_load(RECIPE.read_text())
    config["data"]["class_path"] = f"{__name__}.ColumnsArmband"
    path = tmp_path_factory.mktemp("recipe") / "columns.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def overrides(root: Path) -> list[str]:
    return [*TINY, f"--data.init_args.root={root}", "--model.init_args.num_classes=3"]


def cv(recipe: Path, root: Path, **kwargs) -> CVSettings:
    values = {"n_folds": 2, "seed": 5, "val_fraction": 0.5, "baseline": "logpower", **kwargs}
    return CVSettings(recipe=str(recipe), overrides=overrides(root), **values)


@pytest.fixture(scope="module")
def loaded():
    """``(datamodule stand-in, pooled windows)`` laid out as the generated sessions (one window per file): the
    fold logic without loading recordings."""
    sets = [WindowSet(np.zeros((1, 8, 300), np.float32), np.arange(8), labels=[motion - 1], subjects=[sub],
                      recording=f"/data/sub{sub}/day{day}/D{day}M{motion}T{trial}.csv",
                      columns={"session": f"day{day}", "repetition": trial, "site": "A"})
            for sub in (1, 2) for day in (1, 2, 3, 4) for motion in (1, 2, 3)
            for trial in ((1, 2) if day <= 2 else (3, 4))]
    return SimpleNamespace(subject_ids={"sub1": 1, "sub2": 2}, root="/data"), WindowDataset(sets)


def folds_of(settings: CVSettings, loaded) -> list:
    data, pool = loaded
    return new_folds(settings, pool, runner.window_groups(pool, settings.group_by, data), data)[0]


def test_group_by_session_stratified_by_repetition(recipe, root, tmp_path):
    out = tmp_path / "cv"
    run_cv(cv(recipe, root, group_by="session", stratify_by="repetition"), out)
    stored = json.loads((out / "folds.json").read_text())
    assert stored["metadata"]["group_by"] == "session" and stored["metadata"]["stratify_by"] == "repetition"
    for fold in stored["folds"]:
        test, val, train = (set(fold[f"{p}_subjects"]) for p in ("test", "val", "train"))
        # stratified by repetition: each test part holds one early and one late session
        assert len(test & EARLY) == 1 and len(test & LATE) == 1
        assert len(val) == 1 and len(train) == 1 and not (val | train) & test
        record = json.loads((out / f"fold_{fold['index']}" / "metrics.json").read_text())
        assert record["windows"] == {"train": 12, "val": 12, "test": 24} and record["test_subjects"] == sorted(test)
    assert sorted(s for f in stored["folds"] for s in f["test_subjects"]) == ["day1", "day2", "day3", "day4"]
    assert json.loads((out / "cv.json").read_text())["stratify_by"] == "repetition"
    assert json.loads((out / "summary.json").read_text())["metrics"]["balanced_accuracy"]["mean"] >= 0.75  # chance: 1/3


def test_stratification_changes_the_folds(loaded, recipe, root):
    stratified = folds_of(cv(recipe, root, group_by="session", stratify_by="repetition"), loaded)
    plain = folds_of(cv(recipe, root, group_by="session", stratify_by="none"), loaded)
    assert all(len(set(f.test_subjects) & EARLY) == 1 for f in stratified)
    # the same seed unstratified holds out both early sessions together (repetitions 1-2 never tested with 3-4)
    assert sorted(map(tuple, (f.test_subjects for f in plain))) == [("day1", "day2"), ("day3", "day4")]
    by_label = folds_of(cv(recipe, root, group_by="session"), loaded)
    assert all(len(f.test_subjects) == 2 for f in by_label)


def test_unknown_and_constant_columns(loaded, recipe, root, tmp_path, cli_error):
    data, pool = loaded
    with pytest.raises(ConfigError, match=r"^--group_by 'sesion': the windows have no column 'sesion' \(did you mean "
                                          r"'session'\?\); columns: subject, recording, start, label, .*session"):
        runner.window_groups(pool, "sesion", data)
    with pytest.raises(ConfigError, match=r"^--stratify_by 'site': every window has the value 'A'.*--stratify_by none"):
        folds_of(cv(recipe, root, group_by="session", stratify_by="site"), loaded)
    err = cli_error(["cv", "--config", str(recipe), "--folds", "2", "--group_by", "session", "--stratify_by",
                     "repetiton", "--baseline", "logpower", "--out", str(tmp_path), *overrides(root)])
    assert "--stratify_by 'repetiton': the windows have no column 'repetiton' (did you mean 'repetition'?)" in err


def test_split_files_as_folds_file(recipe, root, tmp_path):
    common = ["cv", "--config", str(recipe), "--folds", "2", "--group_by", "session", "--baseline", "logpower",
              *overrides(root)]
    json_file = save_split_file(tmp_path / "sessions.json", by="session",
                                folds={"early": ["day1", "DAY2"], "late": ["day3", "day4"]}, source="test days")
    assert main([*common, "--folds_file", str(json_file), "--val_fraction", "0", "--out", str(tmp_path / "j")]) == 0
    stored = json.loads((tmp_path / "j" / "folds.json").read_text())
    assert [(f["test_subjects"], f["val_subjects"], f["train_subjects"]) for f in stored["folds"]] == [
        (["day1", "day2"], [], ["day3", "day4"]), (["day3", "day4"], [], ["day1", "day2"])]
    assert stored["metadata"]["fold_names"] == ["early", "late"] and stored["metadata"]["source"] == "test days"
    record = json.loads((tmp_path / "j" / "fold_1" / "metrics.json").read_text())
    assert record["windows"]["test"] == 24 and record["selection"] == "middle C (no validation)"

    csv_file = tmp_path / "sessions.csv"
    csv_file.write_text("# two folds of one early and one late session\nsession,fold\nday1,a\nday3,a\n\nday2,b\n"
                        "day4,b\n")
    assert main([*common, "--folds_file", str(csv_file), "--val_fraction", "0.5", "--out", str(tmp_path / "c")]) == 0
    stored = json.loads((tmp_path / "c" / "folds.json").read_text())
    assert [f["test_subjects"] for f in stored["folds"]] == [["day1", "day3"], ["day2", "day4"]]
    for fold in stored["folds"]:  # one validation session drawn from the two training ones
        assert len(fold["val_subjects"]) == 1 and len(fold["train_subjects"]) == 1
        assert not set(fold["val_subjects"] + fold["train_subjects"]) & set(fold["test_subjects"])


def test_split_file_mistakes(loaded, recipe, root, tmp_path):
    def folds_from(path: Path, **kwargs):
        return folds_of(cv(recipe, root, folds_file=str(path), **{"group_by": "session", **kwargs}), loaded)

    parts = save_split_file(tmp_path / "parts.json", by="session", splits={"train": ["day1"], "test": ["day2"]})
    with pytest.raises(ConfigError, match=r"holds train/val/test parts \(train, test\): one split, run as one fold, "
                                          r"but --folds is 2; pass --folds 1"):  # tests/crossval/test_parts_split.py
        folds_from(parts)
    subjects = save_split_file(tmp_path / "subjects.json", by="subject", folds={"0": ["sub1"], "1": ["sub2"]})
    with pytest.raises(ConfigError, match="key 'by': the file splits by 'subject', but 'session' was asked for"):
        folds_from(subjects)
    with pytest.raises(ConfigError, match=r"holds 2 folds but --folds is 3; pass --folds 2"):
        folds_from(subjects, group_by="subject", n_folds=3)
    unknown = save_split_file(tmp_path / "unknown.json", by="session", folds={"0": ["day1"], "1": ["day9", "day8"]})
    with pytest.raises(ConfigError, match=r"unknown.json' key 'folds.1': sessions \['day9', 'day8'\] are not in the "
                                          r"data \(4 sessions found: 'day1', 'day2', 'day3', 'day4'\); fix the file"):
        folds_from(unknown)
    # the benchmark's bare form, subjects listed by their integer ids
    bare = tmp_path / "bare.txt"
    bare.write_text('{"0": [1], "1": [2]}')
    folds = folds_from(bare, group_by="subject", val_fraction=0)
    assert [f.test_subjects for f in folds] == [["sub1"], ["sub2"]] and [f.train_subjects for f in folds] == [
        ["sub2"], ["sub1"]]
    # another run's folds.json made by another grouping
    run_folds = tmp_path / "run" / "folds.json"
    run_folds.parent.mkdir()
    runner.make_folds(cv(recipe, root, group_by="subject", val_fraction=0), loaded[1],
                      runner.window_groups(loaded[1], "subject", loaded[0]), run_folds.parent, loaded[0])
    with pytest.raises(ConfigError, match="holds folds by 'subject' but --group_by is 'session'"):
        folds_from(run_folds)


def test_a_run_made_before_stratify_by_resumes(recipe, root, tmp_path, monkeypatch):
    run_cv(cv(recipe, root, group_by="session"), tmp_path)
    identity = json.loads((tmp_path / "cv.json").read_text())
    assert set(identity) == {"recipe", "overrides", "n_folds", "seed", "val_fraction", "group_by", "monitor", "mode",
                             "baseline", "seeds", "grid"}  # the cv.json of a run made before --stratify_by existed
    fitted = []
    monkeypatch.setattr(runner, "run_feature_fold", lambda *args, **kwargs: fitted.append(args))
    summary = run_cv(cv(recipe, root, group_by="session", stratify_by="label"), tmp_path)
    assert fitted == [] and summary["folds"] == 2
    with pytest.raises(ConfigError, match=r"other settings \{'stratify_by': \(None, 'repetition'\)\}"):
        run_cv(cv(recipe, root, group_by="session", stratify_by="repetition"), tmp_path)


def test_test_parts_missing_a_class_are_checked_on_the_labels(tmp_path):
    """Whatever the folds are balanced on (here: fixed by a split file), a test part without some class is
    refused, or only warned about with --allow_missing_classes."""
    sets = [WindowSet(np.zeros((2, 1, 8), np.float32), [0], labels=[label, label], subjects=[1, 1],
                      recording=f"{session}.edf", columns={"session": session})
            for session, label in (("A", 0), ("B", 0), ("C", 1), ("D", 1))]
    pool, data = WindowDataset(sets), SimpleNamespace(subject_ids={"S1": 1}, root="/")
    path = save_split_file(tmp_path / "f.json", by="session", folds={"0": ["A", "B"], "1": ["C", "D"]})
    settings = CVSettings(recipe="r.yaml", n_folds=2, val_fraction=0, group_by="session", folds_file=str(path))
    groups = runner.window_groups(pool, "session", data)
    with pytest.raises(ConfigError, match=r"fold 0 of 2: its test part \(2 groups\) holds a single class; window "
                                          r"counts per class \{0: 4, 1: 0\}.*--allow_missing_classes"):
        new_folds(settings, pool, groups, data)
    with pytest.warns(UserWarning, match="2 of 2 test folds hold a single class"):
        folds, _ = new_folds(replace(settings, require_all_classes=False), pool, groups, data)
    assert [f.test.tolist() for f in folds] == [[0, 1, 2, 3], [4, 5, 6, 7]]
