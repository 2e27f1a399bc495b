"""neurorvq benchmark --list (every table, row, dataset, split, recipe and what is present locally) and the command's
errors: an absent dataset, split subjects missing locally (incomplete download or wrong folder), rows not yet
available, and bad options (of the classification and the reconstruction tables). Nothing trains here: the checks
run before any fold."""

from __future__ import annotations

import pytest

from benchmark_data import write_eegmmidb, write_table
from neurorvq.cli import main


@pytest.fixture(autouse=True)
def in_tmp_folder(tmp_path, monkeypatch):
    """Every test runs in its own folder: the default --out and data/benchmarks/ are relative to it."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    pytest.importorskip("edfio", reason="mne.export writes the EDF files with edfio")
    base = tmp_path_factory.mktemp("bench_list")
    write_eegmmidb(base / "data" / "eegmmidb")
    write_eegmmidb(base / "partial" / "eegmmidb", subjects=(1, 2, 3))
    write_eegmmidb(base / "other" / "eegmmidb", subjects=(7, 8))
    return {"base": base, "table": str(write_table(base / "tables")), "tiny": str(base / "tables" / "tiny.yaml")}


def test_list_shows_every_table_row_and_what_is_present(generated, tmp_path, capsys):
    assert main(["benchmark", "--list", "--root", f"eyes={generated['base'] / 'data' / 'eegmmidb'}"]) == 0
    out = capsys.readouterr().out
    for table in ("eeg", "ecg", "emg", "recon"):
        assert f"table {table}: " in out
    for row in ("motor", "erp", "memory", "sleep", "eyes", "ptbxl_5class", "ptbxl_43class", "discrete_gestures",
                "epn612", "ninapro_db5", "uci", "brainomni", "high_gamma", "pavlov"):
        assert f"\n  {row} (" in out
    assert "not yet available" not in out and out.count("recipe: ") == 14  # every row of every table runs
    for table, rows in (("eeg", 5), ("ecg", 2), ("emg", 4), ("recon", 3)):
        assert f"({rows} rows, {rows} runnable;" in out.split(f"table {table}: ")[1].splitlines()[0]
    assert "motor (Motor): High-Gamma (Schirrmeister 2017), 4 classes — published NeuroRVQ balanced accuracy " \
           "0.700 ± 0.073" in out
    assert "split:  hgd: 14 subjects in 10 folds" in out and "split:  eyes: 103 subjects in 10 folds" in out
    assert f"data:   {tmp_path / 'data' / 'benchmarks' / 'high_gamma'}: absent" in out
    assert "get:    neurorvq.datamodules.high_gamma.download(root, subjects=None); source: MOABB" in out
    assert "needs pip install 'neurorvq[benchmarks]'" in out
    assert "eegmmidb: incomplete (5 of 103 split subjects found)" in out  # the generated S001-S005
    assert "ptbxl_5class (PTB-XL 5-class): PTB-XL 1.0.3 (diagnostic superclass of the top statement), 5 classes — " \
           "published NeuroRVQ accuracy 0.7019" in out
    assert "ptbxl_43class (PTB-XL 43-class) [UNDETERMINED]: " in out and "\n      undetermined: which of the 44" in out
    assert out.count("[UNDETERMINED]") == 1
    assert "split:  ptbxl_strat_fold: 10 strat_fold values in 10 folds" in out
    assert "split:  epn612: parts train 1 / test 1 user_set values, one split; clean validation by subject" in out
    assert "split:  uci_emg: parts train 24 / val 6 / test 6 subjects, one split" in out
    assert "split:  the dataset's own published split (the DataModule's default_split)" in out
    assert "discrete_gestures (Discrete Gestures): Meta generic neuromotor interface, discrete gestures, 9 " \
           "classes — published NeuroRVQ balanced accuracy 0.708" in out
    assert "uci (UCI-EMG): UCI EMG data for gestures (id 481), 7 classes — published NeuroRVQ accuracy 0.8943" in out
    assert "note:   split: leave-one-subject-out over the 10 subjects [I]" in out
    assert "brainomni (OOD (BrainOmni sample))" in out and "published NeuroRVQ mse 0.191" in out
    assert "split:  none: the DataModule's test split" in out and "split:  none: the DataModule's train split" in out


def test_list_of_a_table_file(generated, capsys):
    assert main(["benchmark", "--list", "--table", generated["table"], "--data_dir",
                 str(generated["base"] / "data")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("table two-tasks: Two generated EEGMMIDB tasks (2 rows, 2 runnable;")
    assert out.count("present (4 of 4 split subjects)") == 2 and "table eeg" not in out


def test_an_absent_dataset_says_how_to_download_it(generated, tmp_path, cli_error):
    err = cli_error(["benchmark", "--table", generated["table"], "--model", generated["tiny"],
                     "--data_dir", str(tmp_path / "nothing")])
    assert err.count("\n") == 2  # one message (and the --debug hint)
    for row in ("eyes", "imagery"):  # every row that would train, at once
        assert f"row '{row}' (generated EEGMMIDB" in err
    assert f"the data folder {tmp_path / 'nothing' / 'eegmmidb'} does not exist" in err
    assert "Download the data into it (neurorvq.datamodules.eegmmidb.download(root, subjects, runs=None)" in err
    assert "--list shows which datasets are present; --rows runs a subset" in err
    assert "--root eyes=PATH" in err and "recipe's data.init_args.root" in err
    assert not (tmp_path / "nothing").exists() and not (tmp_path / "runs").exists()  # nothing written


def test_builtin_row_absent_names_its_source_extra_and_licence(tmp_path, cli_error):
    err = cli_error(["benchmark", "--table", "eeg", "--rows", "motor", "--baselines", "logpower", "--data_dir",
                     str(tmp_path), "--out", str(tmp_path / "out")])
    assert "row 'motor' (High-Gamma (Schirrmeister 2017))" in err and "row 'eyes'" not in err
    assert "neurorvq.datamodules.high_gamma.download(root, subjects=None)" in err
    assert "MOABB Schirrmeister2017" in err and "needs pip install 'neurorvq[benchmarks]'" in err
    assert "licence: CC-BY-4.0" in err and "--root motor=PATH" in err


def test_missing_subjects_some_found_is_an_incomplete_download(generated, cli_error):
    err = cli_error(["benchmark", "--table", generated["table"], "--model", generated["tiny"], "--rows", "eyes",
                     "--root", f"eyes={generated['base'] / 'partial' / 'eegmmidb'}"])
    assert "row 'eyes'" in err and "row 'imagery'" not in err
    assert "lists 1 subject(s) missing under" in err and "eegmmidb: 4;" in err
    assert "the download looks incomplete (3 of the 4 subjects are there)" in err


def test_missing_subjects_none_found_is_a_wrong_folder(generated, cli_error):
    err = cli_error(["benchmark", "--table", generated["table"], "--baselines", "logpower", "--rows", "imagery",
                     "--data_dir", str(generated["base"] / "other")])
    assert "lists 4 subject(s) missing under" in err and ": 1, 2, 3, 4;" in err
    assert "none of them are there (it holds subjects S007, S008): the folder looks wrong" in err
    assert "--root imagery=PATH" in err


@pytest.mark.parametrize("args, message", [
    (["--table", "ecg", "--baselines", "logpower", "--model", "a.pt", "--model", "b.pt"],
     "table 'ecg' fine-tunes one --model per call (got 2)"),
    (["--table", "ecg", "--baselines", "logpower", "--max_windows", "5"], "--max_windows and --device apply to the "
     "reconstruction table"),
    (["--table", "recon", "--baselines", "logpower"], "baselines do not apply to the reconstruction table"),
    (["--table", "recon", "--model", "t", "--seeds", "0", "1"], "--seeds does not apply to the reconstruction table"),
    (["--table", "recon", "--model", "t", "--protocol", "parity"], "--protocol does not apply to the reconstruction"),
    (["--table", "recon", "--model", "t", "--trainer.max_epochs=1"], "--trainer.max_epochs=1: the reconstruction "
     "table takes only data overrides"),
    (["--table", "reconstruction"], "nothing to run: the reconstruction table needs --model <tokenizer>"),
    (["--table", "recon", "--model", "missing_tokenizer"], "--model 'missing_tokenizer': no such file or folder"),
    (["--table", "recon", "--model", "t", "--model", "t", "--name", "x"], "--name labels a single --model"),
    (["--table", "eeg", "--rows", "eye", "--baselines", "logpower"],
     "table 'eeg' has no row 'eye'; did you mean 'eyes'"),
    (["--table", "eeg"], "nothing to run: give --model"),
    (["--table", "eeg", "--model", "missing.pt"], "--model 'missing.pt': no such file or folder"),
    (["--table", "eeg", "--model", "missing.yaml"], "--model 'missing.yaml': no such recipe file"),
    (["--table", "eeg", "--baselines", "logpower", "--root", "eyes"], "--root 'eyes': expected ROW=PATH"),
    (["--table", "eeg", "--baselines", "logpower", "--root", "nope=/x"], "table 'eeg' has no row 'nope'"),
    (["--table", "eeg", "--baselines", "linear_probe"], "linear_probe probes the frozen features of --model"),
    (["--table", "eeg", "--baselines", "logpower", "--protocol", "leaky"], "--protocol"),
    (["--table", "eegg", "--baselines", "logpower"], "no such table; did you mean 'eeg'"),
    (["--baselines", "logpower"], "--table is required"),
    (["--table", "eeg", "--model"], "--model needs a value"),
])
def test_bad_options(args, message, cli_error):
    assert message in cli_error(["benchmark", *args])


def test_rows_without_a_recipe_are_not_yet_available(tmp_path, cli_error):
    (tmp_path / "t.yaml").write_text("rows: [{key: a, split: eyes}, {key: b, split: eyes, recipe: b.yaml}]\n")
    err = cli_error(["benchmark", "--table", str(tmp_path / "t.yaml"), "--baselines", "logpower"])
    assert "rows ['a'] are not yet available (no recipe); run the others with --rows b" in err


def test_a_model_recipe_without_a_model_section(generated, tmp_path, cli_error):
    (tmp_path / "m.yaml").write_text("trainer: {max_epochs: 1}\n")
    err = cli_error(["benchmark", "--table", generated["table"], "--model", str(tmp_path / "m.yaml")])
    assert "m.yaml' has no model section with a class_path" in err
    assert list(tmp_path.iterdir()) == [tmp_path / "m.yaml"]  # nothing written before the checks


def test_recipe_classes_must_match_the_table(generated, tmp_path, cli_error):
    table = tmp_path / "t.yaml"
    table.write_text(f"rows: [{{key: eyes, recipe: {generated['base'] / 'tables' / 'eyes.yaml'}, split: eyes, "
                     "classes: 3}]\n")
    err = cli_error(["benchmark", "--table", str(table), "--baselines", "logpower"])
    assert "model.init_args.num_classes 2, but the table says the task has 3 classes" in err


def test_a_dataset_split_needs_a_datamodule_with_its_own_split(generated, tmp_path, cli_error):
    table = tmp_path / "t.yaml"
    table.write_text(f"rows: [{{key: eyes, recipe: {generated['base'] / 'tables' / 'eyes.yaml'}, split: dataset, "
                     "folder: eegmmidb, classes: 2}]\n")
    err = cli_error(["benchmark", "--table", str(table), "--baselines", "logpower", "--data_dir",
                     str(generated["base"] / "data")])
    assert "EEGMMIDBDataModule has no published split of its own" in err and "instead of 'dataset'" in err
