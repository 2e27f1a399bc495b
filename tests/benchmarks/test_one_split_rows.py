"""The built-in EMG rows whose published split is one train/test split, end to end on generated data in the
published layouts with the logpower baseline (nothing trains): Discrete Gestures' own corpus-CSV split resolved from
the DataModule into split.json and run as one fold (clean: its val users validate; parity: they train), and EPN-612's
user_set split with clean validation users drawn from the training users (val_group_by subject); the table says
"(1 split)"."""

from __future__ import annotations

import json

import pytest

from benchmark_data import layout_writers
from neurorvq.cli import main


@pytest.fixture(scope="module")
def roots(tmp_path_factory):
    pytest.importorskip("tables", reason="the discrete-gestures prompts table is written with pandas/PyTables")
    base = tmp_path_factory.mktemp("one_split")
    gestures = layout_writers("test_discrete_gestures").write_discrete_gestures_layout(base / "dg")
    epn = layout_writers("test_epn612").write_epn612_layout(base / "epn612")
    return {"discrete_gestures": gestures, "epn612": epn}


def run(roots, out, *extra) -> None:
    args = ["benchmark", "--table", "emg", "--rows", "discrete_gestures", "epn612", "--baselines", "logpower",
            "--root", f"discrete_gestures={roots['discrete_gestures']}", "--root", f"epn612={roots['epn612']}",
            "--out", str(out), "--figure", "false", *extra]
    assert main(args) == 0


def test_dataset_split_and_user_set_split_under_clean(roots, tmp_path, capsys):
    run(roots, tmp_path)
    dg = tmp_path / "emg" / "discrete_gestures" / "logpower"
    split = json.loads((dg / "split.json").read_text())
    assert split["by"] == "subject" and split["splits"] == {"train": ["user_000"], "val": ["user_001"],
                                                           "test": ["user_002"]}
    assert "DiscreteGesturesDataModule's own split (by corpus_split" in split["source"]
    fold, = json.loads((dg / "folds.json").read_text())["folds"]
    assert (fold["train_subjects"], fold["val_subjects"], fold["test_subjects"]) == (
        ["user_000"], ["user_001"], ["user_002"])
    record = json.loads((dg / "fold_0" / "metrics.json").read_text())
    assert record["windows"] == {"train": 9, "val": 9, "test": 9} and record["selection"].startswith("best")

    epn = tmp_path / "emg" / "epn612" / "logpower"
    identity = json.loads((epn / "cv.json").read_text())
    assert (identity["group_by"], identity["val_group_by"], identity["n_folds"]) == ("user_set", "subject", 1)
    fold, = json.loads((epn / "folds.json").read_text())["folds"]
    assert fold["test_subjects"] == ["testing-user1", "testing-user2"] and len(fold["val_subjects"]) == 1
    assert sorted(fold["train_subjects"] + fold["val_subjects"]) == [f"training-user{k}" for k in (1, 2, 3)]
    record = json.loads((epn / "fold_0" / "metrics.json").read_text())
    assert record["windows"] == {"train": 24, "val": 12, "test": 12}  # both blocks of training users, 6 per block

    text = (tmp_path / "emg" / "table.md").read_text()
    line = next(r for r in text.splitlines() if r.startswith("| log band power + LR |"))
    assert line.count("(1 split)") == 2 and line.endswith("| — | — | — |")  # DB5, UCI and the Mean not run
    assert "| NeuroRVQ (published) | 0.708 | — | — | — | — |" in text  # balanced accuracy table: DG only
    assert "| NeuroRVQ (published) | — | 0.9465 | 0.4136 | 0.8943 | — |" in text  # accuracy table
    assert "Discrete Gestures, EPN-612, UCI-EMG: one published split" in text
    assert "reused from" not in capsys.readouterr().out


def test_under_parity_the_validation_part_trains(roots, tmp_path):
    run(roots, tmp_path, "--protocol", "parity", "--rows", "discrete_gestures", "epn612")
    fold, = json.loads((tmp_path / "emg" / "discrete_gestures" / "logpower" / "folds.json").read_text())["folds"]
    assert (fold["train_subjects"], fold["val_subjects"]) == (["user_000", "user_001"], [])
    fold, = json.loads((tmp_path / "emg" / "epn612" / "logpower" / "folds.json").read_text())["folds"]
    assert fold["val_subjects"] == [] and len(fold["train_subjects"]) == 3


def test_list_checks_a_user_set_split_and_the_dataset_split(roots, capsys):
    assert main(["benchmark", "--list", "--table", "emg", "--root", f"epn612={roots['epn612']}", "--root",
                 f"discrete_gestures={roots['discrete_gestures']}"]) == 0
    out = capsys.readouterr().out
    assert f"data:   {roots['epn612']}: present (2 of 2 split user_set values)" in out
    assert f"data:   {roots['discrete_gestures']}: present (3 subjects found)" in out
