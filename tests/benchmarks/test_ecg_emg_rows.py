"""The ECG and EMG tables as data: each row's recipe exists and agrees with the row (classes, data folder, DataModule
with a download or a source), its split is readable and of the expected kind (folds by strat_fold or subject, parts
by user_set or subject, the dataset's own), the cv settings each row would run with, and the 43-class row marked
undetermined. Nothing is loaded or trained here."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import yaml

from neurorvq.benchmarks.run import BenchmarkSettings, DATASET_SPLIT_FILE, cv_settings, model_entries, plan_jobs
from neurorvq.benchmarks.tables import TABLES, recipe_path, split_folds, split_kind, split_path
from neurorvq.data.split_files import read_split_file

# row -> (table, split kind, group_by, folds, classes, metric, data folder)
ROWS = {
    "ptbxl_5class": ("ecg", "folds", "strat_fold", 10, 5, "accuracy", "ptb-xl"),
    "ptbxl_43class": ("ecg", "folds", "strat_fold", 10, 43, "accuracy", "ptb-xl"),
    "discrete_gestures": ("emg", "dataset", "subject", 1, 9, "balanced_accuracy", "discrete_gestures"),
    "epn612": ("emg", "parts", "user_set", 1, 6, "accuracy", "epn612"),
    "ninapro_db5": ("emg", "folds", "subject", 10, 52, "accuracy", "ninapro-db5"),
    "uci": ("emg", "parts", "subject", 1, 7, "accuracy", "uci-emg"),
}


@pytest.mark.parametrize("key", list(ROWS))
def test_row_recipe_split_and_classes_agree(key):
    name, kind, group_by, folds, classes, metric, folder = ROWS[key]
    table = TABLES[name]
    row = table.row(key)
    assert row.available and (row.group_by, row.classes, row.metric, row.data_folder) == (group_by, classes, metric,
                                                                                          folder)
    assert split_kind(table, row) == kind and split_folds(table, row) == folds
    recipe = recipe_path(table, row)
    assert recipe.is_file(), f"{recipe} is missing"
    config = yaml.safe_load(recipe.read_text())
    assert config["model"]["init_args"]["num_classes"] == classes
    assert Path(config["data"]["init_args"]["root"]).name == folder  # data/benchmarks/<folder>
    module, _, cls = config["data"]["class_path"].rpartition(".")
    imported = importlib.import_module(module)
    assert hasattr(imported, cls)
    assert callable(getattr(imported, "download", None)) or "registration" in row.get  # NinaPro: by hand
    assert row.note and not row.balance_per_subject  # protocol choices shown; no per-subject undersampling


def test_the_split_files_of_the_rows():
    ecg, emg = TABLES["ecg"], TABLES["emg"]
    strat = read_split_file(split_path(ecg, ecg.row("ptbxl_5class")), by="strat_fold")
    assert strat.kind == "folds" and strat.groups == {str(k): [k] for k in range(1, 11)}
    epn = read_split_file(split_path(emg, emg.row("epn612")), by="user_set")
    assert epn.kind == "parts" and epn.groups == {"train": ["training"], "test": ["testing"]}
    assert emg.row("epn612").val_group_by == "subject"  # one training user_set: clean validation users
    uci = read_split_file(split_path(emg, emg.row("uci")), by="subject")
    assert [len(v) for v in uci.groups.values()] == [24, 6, 6] and uci.groups["test"] == list(range(31, 37))
    loso = read_split_file(split_path(emg, emg.row("ninapro_db5")), by="subject")
    assert list(loso.groups.values()) == [[k] for k in range(1, 11)]
    assert emg.row("discrete_gestures").split == "dataset"
    dg = yaml.safe_load(recipe_path(emg, emg.row("discrete_gestures")).read_text())
    assert dg["data"]["init_args"]["corpus_split"] is True  # Meta's user split is the DataModule's default


def test_the_43_class_row_is_marked_undetermined():
    ecg = TABLES["ecg"]
    five, forty_three = ecg.rows
    assert not five.undetermined and five.column == "PTB-XL 5-class"
    assert forty_three.column == "PTB-XL 43-class (undetermined)"
    assert "count_top_statements" in forty_three.undetermined and not forty_three.all_classes_in_test
    config = yaml.safe_load(recipe_path(ecg, forty_three).read_text())["data"]["init_args"]
    assert (config["label_mode"], config["min_class_records"]) == ("top_statement", 1)
    assert yaml.safe_load(recipe_path(ecg, five).read_text())["data"]["init_args"]["label_mode"] == \
        "top_statement_superclass"


@pytest.mark.parametrize("protocol", ["clean", "parity"])
def test_the_cv_settings_of_every_row(tmp_path, protocol):
    """What each row runs neurorvq cv with: its split file, folds, grouping, validation and class checks."""
    entries = model_entries(None, None, ["logpower"])
    jobs = []
    for name in ("ecg", "emg"):
        settings = BenchmarkSettings(TABLES[name], baselines=["logpower"], protocol=protocol, out=tmp_path)
        jobs += [(job, cv_settings(settings, job)) for job in plan_jobs(settings, entries)]
    runs = {job.row.key: (job, cv) for job, cv in jobs}
    assert set(runs) == set(ROWS)
    for key, (job, cv) in runs.items():
        _, kind, group_by, folds, _, _, _ = ROWS[key]
        assert (job.kind, cv.n_folds, cv.unlisted, cv.protocol) == (kind, folds, "drop", protocol)
        assert cv.val_fraction == (0.0 if protocol == "parity" else 0.1) and cv.balanced is False
        assert job.folder == tmp_path / ROWS[key][0] / key / "logpower"
    assert runs["ptbxl_5class"][1].group_by == "strat_fold" and runs["ptbxl_5class"][1].require_all_classes
    assert not runs["ptbxl_43class"][1].require_all_classes
    epn = runs["epn612"][1]
    assert (epn.group_by, epn.val_group_by) == ("user_set", "subject") and epn.folds_file.endswith("epn612.json")
    job, dg = runs["discrete_gestures"]
    assert (dg.group_by, dg.val_group_by) == ("subject", None)
    assert Path(dg.folds_file) == job.folder / DATASET_SPLIT_FILE and not Path(dg.folds_file).exists()  # written
    assert runs["uci"][1].folds_file.endswith("uci_emg.json") and runs["uci"][1].group_by == "subject"
