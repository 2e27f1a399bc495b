"""Benchmark tables as data: the EEG, ECG, EMG and reconstruction rows against their recipes and the shipped split
files (kinds, columns, classes), their published numbers, and table files (format and mistakes)."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest
import yaml

from neurorvq import splits
from neurorvq.benchmarks.published import BUILT_IN
from neurorvq.benchmarks.tables import TABLES, checkout_recipes, get_table, read_table, recipe_path
from neurorvq.data.split_files import read_split_file
from neurorvq.errors import ConfigError

EEG_ROWS = {"motor": ("hgd", 14, 4, "high_gamma"), "erp": ("kuerp", 54, 2, "kuerp"),
            "memory": ("pavlov", 65, 2, "pavlov2022"), "sleep": ("sleepedf", 78, 6, "sleep-edf"),
            "eyes": ("eyes", 103, 2, "eegmmidb")}


def test_tables_and_their_rows():
    assert list(TABLES) == ["eeg", "ecg", "emg", "recon"]
    eeg = TABLES["eeg"]
    assert [r.key for r in eeg.rows] == list(EEG_ROWS) and all(r.available for r in eeg.rows)
    assert [r.task for r in eeg.rows] == ["Motor", "ERP", "Memory", "Sleep*", "Eyes"]
    assert [r.balance_per_subject for r in eeg.rows] == [False, True, True, True, True]  # HGD: "already balanced"
    assert [r.extra for r in eeg.rows] == ["benchmarks", "benchmarks", "benchmarks", None, None]
    for key in ("ecg", "emg", "recon"):
        assert TABLES[key].rows and all(r.available for r in TABLES[key].rows)
    assert [r.key for r in TABLES["ecg"].rows] == ["ptbxl_5class", "ptbxl_43class"]
    assert [r.key for r in TABLES["emg"].rows] == ["discrete_gestures", "epn612", "ninapro_db5", "uci"]
    assert [r.key for r in TABLES["recon"].rows] == ["brainomni", "high_gamma", "pavlov"]
    assert [t.kind for t in TABLES.values()] == ["classification"] * 3 + ["reconstruction"]
    assert get_table("reconstruction") is TABLES["recon"]


@pytest.mark.parametrize("key", list(EEG_ROWS))
def test_eeg_row_split_file_is_the_official_ten_fold_list(key):
    name, subjects, _, _ = EEG_ROWS[key]
    row = TABLES["eeg"].row(key)
    assert row.split == name
    split = read_split_file(splits.path(name), by="subject")
    assert len(split.groups) == 10 and sum(len(v) for v in split.groups.values()) == subjects


@pytest.mark.parametrize("key", list(EEG_ROWS))
def test_eeg_row_recipe_matches_the_row(key):
    """The recipe exists (recipes/benchmarks), has the row's classes and data folder, and its DataModule's module
    offers download() for the messages. (tests/test_recipes.py trains each recipe one step.)"""
    _, _, classes, folder = EEG_ROWS[key]
    row = TABLES["eeg"].row(key)
    recipe = recipe_path(TABLES["eeg"], row)
    assert recipe == checkout_recipes() / row.recipe and recipe.is_file(), f"{recipe} is missing"
    config = yaml.safe_load(recipe.read_text())
    assert row.classes == classes == config["model"]["init_args"]["num_classes"]
    assert config["model"]["init_args"]["fm"] == "NeuroRVQ_EEG_foundation_model_v1.pt"
    assert config["data"]["init_args"]["root"] == f"data/benchmarks/{folder}" and row.data_folder == folder
    module, _, name = config["data"]["class_path"].rpartition(".")
    imported = importlib.import_module(module)
    assert hasattr(imported, name) and callable(getattr(imported, "download", None))


def test_published_numbers_of_the_ecg_emg_and_reconstruction_tables():
    ecg, = BUILT_IN["ecg"]
    assert (ecg.metric, ecg.score("ptbxl_5class").mean, ecg.score("ptbxl_43class").mean) == ("accuracy", 0.7019,
                                                                                             0.7917)
    balanced, plain = BUILT_IN["emg"]  # Discrete Gestures is published as balanced accuracy, the others as accuracy
    assert (balanced.metric, {k: s.mean for k, s in balanced.scores.items()}) == (
        "balanced_accuracy", {"discrete_gestures": 0.708})
    assert (plain.metric, {k: s.mean for k, s in plain.scores.items()}) == (
        "accuracy", {"epn612": 0.9465, "ninapro_db5": 0.4136, "uci": 0.8943})
    assert TABLES["emg"].row("discrete_gestures").metric == "balanced_accuracy"
    recon, = BUILT_IN["recon"]
    assert recon.metric == "mse" and {k: s.mean for k, s in recon.scores.items()} == {
        "brainomni": 0.191, "high_gamma": 0.084, "pavlov": 0.090}
    assert all(s.std is None for m in (ecg, balanced, plain, recon) for s in m.scores.values())
    for table in ("ecg", "emg", "recon"):  # every row has a published number, every published row a table row
        keys = {k for m in BUILT_IN[table] for k in m.scores}
        assert keys == {r.key for r in TABLES[table].rows}


def test_a_table_file_reads_relative_paths_against_its_folder(tmp_path):
    (tmp_path / "folds.json").write_text(json.dumps({"0": [1], "1": [2]}))
    (tmp_path / "a.yaml").write_text("model: {}\n")
    (tmp_path / "t.yaml").write_text("""rows:
  - {key: a, recipe: a.yaml, split: folds.json, classes: 3, metric: accuracy, balance_per_subject: false}
  - {key: b, task: Task B, split: eyes}
published:
  - {model: M, scores: {a: [0.5, 0.1]}, mean: 0.4, size: 1M}
""")
    table = get_table(str(tmp_path / "t.yaml"))
    assert table.key == "t" and table.title == "t" and table.base == tmp_path.resolve()
    a, b = table.rows
    assert (a.task, a.dataset, a.classes, a.metric, a.balance_per_subject, a.available) == ("a", "a", 3, "accuracy",
                                                                                             False, True)
    assert recipe_path(table, a) == tmp_path.resolve() / "a.yaml" and not b.available and b.task == "Task B"
    model, = table.published
    assert model.label == "M (published)" and model.score("a").text() == "0.500 ± 0.100" and model.mean.mean == 0.4


@pytest.mark.parametrize("text, message", [
    ("rows: []\n", "key 'rows': expected a non-empty list"),
    ("rowz: [{key: a}]\n", "unknown key 'rowz'; did you mean 'rows'"),
    ("rows: [{key: a, recpie: x.yaml}]\n", "key 'rows[0]': unknown key 'recpie'; did you mean 'recipe'"),
    ("rows: [{key: a}, {key: a}]\n", "row key 'a' is given twice"),
    ("rows: [{key: 'a b'}]\n", "'a b' is not a short name"),
    ("rows: [{key: a, metric: auc}]\n", "key 'metric': 'auc' is not one of"),
    ("rows: [{key: a, classes: 1}]\n", "key 'classes': expected an integer >= 2"),
    ("rows: [{key: a}]\npublished: [{model: M, scores: {b: 0.5}}]\n", "key 'scores.b': no row 'b'"),
    ("rows: [{key: a}]\npublished: [{model: M, scores: {a: [1, 2, 3]}}]\n", "expected a number, [mean] or [mean, std]"),
    ("rows: [{task: A}]\n", "key 'rows[0]' key 'key' is missing"),
    ("rows: [{key: a, metric: mse}, {key: b}]\n", "it mixes reconstruction rows (metric mse) with classification"),
    ("rows: [{key: a, metric: mse, classes: 3}]\n", "a reconstruction row (metric mse) has no classes"),
    ("rows: [{key: a, metric: mse, split: f.json}]\n", "a reconstruction row reads one split of its DataModule"),
    ("rows: [{key: a, all_classes_in_test: 1}]\n", "key 'all_classes_in_test': expected true or false"),
])
def test_table_file_mistakes_name_the_file_and_key(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match="bad.yaml") as error:
        read_table(path)
    assert message in str(error.value)


def test_unknown_table_names(tmp_path):
    with pytest.raises(ConfigError, match="no such table; did you mean 'eeg'"):
        get_table("eegg")
    with pytest.raises(ConfigError, match="table file .*missing.yaml' does not exist"):
        get_table(str(tmp_path / "missing.yaml"))
    with pytest.raises(ConfigError, match="table 'eeg' has no row 'eye'; did you mean 'eyes'"):
        TABLES["eeg"].row("eye")


def test_checkout_recipes_is_the_repository_folder():
    assert checkout_recipes() == Path(__file__).resolve().parents[2] / "recipes" / "benchmarks"
