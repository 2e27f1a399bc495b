"""The official 10-fold subject lists of the EEG benchmark, shipped as split files (neurorvq.splits): checked by
content against ../shared/docs/benchmarks.md §2.2 (14, 54, 65, 78 and 103 subjects, each in exactly one of 10
folds) and against the subject ids the existing DataModules give (EEGMMIDB, Sleep-EDF); and PTB-XL's strat_fold
folds (benchmarks.md §4.1; the PTB-XL tests run them on data)."""

from __future__ import annotations

import pytest

from neurorvq import splits
from neurorvq.data.split_files import read_split_file
from neurorvq.errors import ConfigError

COUNTS = {"hgd": 14, "kuerp": 54, "pavlov": 65, "sleepedf": 78, "eyes": 103}


def test_names():
    assert set(splits.EEG_NAMES) == set(COUNTS)
    assert set(splits.NAMES) == set(COUNTS) | {"ptbxl_strat_fold", "ninapro_db5_loso", "epn612", "uci_emg"}


@pytest.mark.parametrize("name", sorted(COUNTS))
def test_every_subject_is_in_exactly_one_of_ten_folds(name):
    split = read_split_file(splits.path(name))  # the reader refuses a value in two folds
    assert split.kind == "folds" and split.by == "subject" and list(split.groups) == [str(k) for k in range(10)]
    subjects = [s for fold in split.groups.values() for s in fold]
    assert len(subjects) == len(set(subjects)) == COUNTS[name]
    assert all(split.groups.values()) and "splits/" in split.source


def test_ids_are_the_datasets_own():
    hgd, kuerp = read_split_file(splits.path("hgd")), read_split_file(splits.path("kuerp"))
    assert sorted(s for f in hgd.groups.values() for s in f) == list(range(1, 15))  # MOABB subjects 1-14
    assert sorted(s for f in kuerp.groups.values() for s in f) == list(range(1, 55))
    assert read_split_file(splits.path("hgd")).groups["0"] == [1, 13]  # "highgamma_s01", "highgamma_s13"
    pavlov = [s for f in read_split_file(splits.path("pavlov")).groups.values() for s in f]
    assert "039" in pavlov and all(len(s) == 3 and s.isdigit() for s in pavlov)  # BIDS labels (sub-039)


def test_eyes_and_sleep_ids_match_the_datamodules_subjects():
    """EEGMMIDB names its subjects S001... with ids 1..109, Sleep-EDF's cassette subjects carry their numbers as
    ids: the files' ids resolve to those names through the DataModules' name -> id maps."""
    eyes = read_split_file(splits.path("eyes"))
    eegmmidb = {f"S{k:03d}": k for k in range(1, 110)}
    matched = eyes.match_all(list(eegmmidb), ids=eegmmidb)
    assert matched["0"][0] == "S007" and sum(len(v) for v in matched.values()) == 103
    sleep = read_split_file(splits.path("sleepedf"))
    cassette = {f"SC4{k:02d}": k for k in range(83)}
    assert sleep.match_all(list(cassette), ids=cassette)["0"][0] == "SC404"


def test_ptbxl_folds_are_the_ten_strat_fold_values():
    split = read_split_file(splits.path("ptbxl_strat_fold"), by="strat_fold")
    assert split.kind == "folds" and list(split.groups) == [str(k) for k in range(1, 11)]
    assert split.groups == {str(k): [k] for k in range(1, 11)} and "strat_fold" in split.source
    # values are matched to the data's strat_fold column (integers; digit strings also match)
    assert split.match_all(list(range(10, 0, -1)))["10"] == [10]
    assert split.match_all([str(k) for k in range(1, 11)])["3"] == ["3"]
    with pytest.raises(ConfigError, match=r"'strat_fold' value 10 is not in the data"):
        split.match_all(list(range(1, 10)))  # a pool without fold 10


def test_an_unknown_name_says_which_exist():
    with pytest.raises(ConfigError, match=r"no benchmark split named 'hdg' \(known: hgd, kuerp, pavlov, sleepedf, "
                                          r"eyes, ptbxl_strat_fold, ninapro_db5_loso, "
                                          r"epn612, uci_emg\); did you mean 'hgd'"):
        splits.path("hdg")


def test_the_emg_split_files_hold_the_published_parts():
    """UCI-EMG subjects 1-24 / 25-30 / 31-36 (benchmarks.md §5.4); EPN-612 training vs testing users (§5.2); NinaPro
    DB5 leave-one-subject-out (10 folds of one subject)."""
    uci = read_split_file(splits.path("uci_emg"), by="subject")
    assert uci.kind == "parts" and {k: list(v) for k, v in uci.groups.items()} == {
        "train": list(range(1, 25)), "val": list(range(25, 31)), "test": list(range(31, 37))}
    epn = read_split_file(splits.path("epn612"), by="user_set")
    assert {k: list(v) for k, v in epn.groups.items()} == {"train": ["training"], "test": ["testing"]}
    loso = read_split_file(splits.path("ninapro_db5_loso"), by="subject")
    assert loso.kind == "folds" and [list(v) for v in loso.groups.values()] == [[k] for k in range(1, 11)]
