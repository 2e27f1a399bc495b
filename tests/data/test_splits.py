"""Subject-wise splits: disjointness, coverage, determinism, stratification, validation inside training, errors, I/O."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from neurorvq.data import splits
from neurorvq.data.splits import Fold, SplitIndices, load_folds, save_folds, subject_kfold, subject_split
from neurorvq.errors import ConfigError


def dataset(n_subjects: int = 30, class_counts: tuple[int, ...] | None = None, seed: int = 0):
    """Per-window subject ids ('S00'...) and labels: 3-12 windows per subject, one label per subject.

    ``class_counts``: subjects per class (imbalanced by default: 18 / 9 / 3 of 30), in a shuffled subject order.
    """
    rng = np.random.default_rng(seed)
    class_counts = class_counts or (18, 9, 3)
    assert sum(class_counts) == n_subjects
    subject_class = rng.permutation(np.repeat(np.arange(len(class_counts)), class_counts))
    subjects, labels = [], []
    for s in range(n_subjects):
        n = int(rng.integers(3, 13))
        subjects += [f"S{s:02d}"] * n
        labels += [int(subject_class[s])] * n
    order = rng.permutation(len(subjects))  # windows interleaved across subjects
    return np.asarray(subjects)[order], np.asarray(labels)[order]


def parts_of(split) -> dict[str, set]:
    return {name: set(getattr(split, f"{name}_subjects")) for name in ("train", "val", "test")}


def check_consistent(split, subjects: np.ndarray) -> None:
    """Index arrays: int64, sorted, covering every window once, and matching the subject lists."""
    idx = np.concatenate([split.train, split.val, split.test])
    assert all(a.dtype == np.int64 for a in (split.train, split.val, split.test))
    assert np.array_equal(np.sort(idx), np.arange(len(subjects)))
    for name, part in parts_of(split).items():
        array = getattr(split, name)
        assert np.all(np.diff(array) > 0)
        assert set(subjects[array].tolist()) == part
    p = parts_of(split)
    assert not (p["train"] & p["val"]) and not (p["train"] & p["test"]) and not (p["val"] & p["test"])
    assert p["train"] | p["val"] | p["test"] == set(subjects.tolist())


# ------------------------------------------------------------------------------------------ subject_split
def test_subject_split_is_subject_wise_and_covers_every_window():
    subjects, labels = dataset()
    split = subject_split(subjects, labels, val_fraction=0.2, test_fraction=0.1, seed=3)
    assert isinstance(split, SplitIndices)
    check_consistent(split, subjects)
    assert (len(split.train_subjects), len(split.val_subjects), len(split.test_subjects)) == (21, 6, 3)


def test_subject_split_is_deterministic_by_seed_and_window_order():
    subjects, labels = dataset()
    a = subject_split(subjects, labels, seed=0)
    b = subject_split(subjects, labels, seed=0)
    assert parts_of(a) == parts_of(b) and np.array_equal(a.test, b.test) and np.array_equal(a.val, b.val)
    assert any(parts_of(subject_split(subjects, labels, seed=s)) != parts_of(a) for s in (1, 2, 3))
    order = np.random.default_rng(9).permutation(len(subjects))  # same windows, another order: same subjects
    assert parts_of(subject_split(subjects[order], labels[order], seed=0)) == parts_of(a)


def test_subject_split_keeps_at_least_one_subject_per_nonempty_part():
    subjects = np.repeat(["a", "b", "c"], 4)
    split = subject_split(subjects, val_fraction=0.01, test_fraction=0.01)
    assert [len(p) for p in (split.train_subjects, split.val_subjects, split.test_subjects)] == [1, 1, 1]
    no_val = subject_split(subjects, val_fraction=0.0, test_fraction=0.3)
    assert no_val.val_subjects == [] and no_val.val.size == 0 and len(no_val.test_subjects) == 1
    check_consistent(no_val, subjects)


def test_subject_split_stratifies_val_and_test_by_label():
    subjects, labels = dataset(30, (20, 10))
    for seed in range(5):
        split = subject_split(subjects, labels, val_fraction=0.2, test_fraction=0.2, seed=seed)
        for part in (split.val, split.test):  # 6 subjects of 30 with a 2:1 mix: both classes present
            assert set(labels[part].tolist()) == {0, 1}


def test_subject_split_explicit_lists_override_fractions():
    subjects, labels = dataset()
    split = subject_split(subjects, labels, val_fraction=0.5, test_fraction=0.5, test_subjects=["S03", "S07"],
                          val_subjects=["S10"])
    assert split.test_subjects == ["S03", "S07"] and split.val_subjects == ["S10"]
    assert len(split.train_subjects) == 27
    check_consistent(split, subjects)
    only_test = subject_split(subjects, val_fraction=0.1, test_subjects=["S00"], seed=1)
    assert only_test.test_subjects == ["S00"] and len(only_test.val_subjects) == 3
    assert "S00" not in only_test.val_subjects + only_test.train_subjects
    ints = subject_split(np.repeat(np.arange(5), 2), val_subjects=[], test_subjects=[4])
    assert ints.test_subjects == [4] and ints.val_subjects == [] and np.array_equal(ints.test, [8, 9])


def test_subject_split_errors():
    with pytest.raises(ConfigError, match=r"3 parts \(train, val, test\) need at least 3 subjects.*have 2"):
        subject_split(["a", "a", "b"])
    with pytest.raises(ConfigError, match=r"\['b'\] are listed in both val_subjects and test_subjects"):
        subject_split(list("abcd"), val_subjects=["a", "b"], test_subjects=["b"])
    with pytest.raises(ConfigError, match=r"test_subjects lists subjects \['zz'\] that have no windows"):
        subject_split(list("abcd"), test_subjects=["zz"])
    with pytest.raises(ConfigError, match="leave no training subject"):
        subject_split(list("abc"), val_subjects=["a", "b"], test_subjects=["c"])
    with pytest.raises(ConfigError, match="labels has 2 entries but subjects has 3"):
        subject_split(list("abc"), labels=[0, 1])
    with pytest.raises(ConfigError, match="test_fraction is 1.5"):
        subject_split(list("abcd"), test_fraction=1.5)


# ------------------------------------------------------------------------------------------ subject_kfold
def check_folds(folds: list[Fold], subjects: np.ndarray, n_folds: int) -> None:
    assert [f.index for f in folds] == list(range(n_folds))
    for fold in folds:
        check_consistent(fold, subjects)
    tested = [s for f in folds for s in f.test_subjects]
    assert sorted(tested) == sorted(set(subjects.tolist()))  # every subject tested exactly once


@pytest.mark.parametrize("use_labels", [True, False])
def test_kfold_tests_every_subject_once_and_validates_on_training_subjects(use_labels):
    subjects, labels = dataset()
    folds = subject_kfold(subjects, labels if use_labels else None, n_folds=10, seed=0, val_fraction=0.1)
    check_folds(folds, subjects, 10)
    everyone = set(subjects.tolist())
    for fold in folds:
        training = everyone - set(fold.test_subjects)  # the fold's training subjects before the val draw
        assert set(fold.val_subjects) <= training and not set(fold.val_subjects) & set(fold.test_subjects)
        assert len(fold.val_subjects) == int(0.1 * len(training) + 0.5)  # rounded share of the training subjects
        assert fold.test_subjects == sorted(fold.test_subjects) and len(fold.test_subjects) >= 1
    assert len({tuple(f.val_subjects) for f in folds}) > 1  # drawn per fold


@pytest.mark.parametrize("use_labels", [True, False])
def test_kfold_is_deterministic_by_seed(use_labels):
    subjects, labels = dataset()
    labels = labels if use_labels else None
    key = lambda folds: [(f.test_subjects, f.val_subjects) for f in folds]  # noqa: E731
    a, b = subject_kfold(subjects, labels, 5, seed=4), subject_kfold(subjects, labels, 5, seed=4)
    assert key(a) == key(b) and all(np.array_equal(x.train, y.train) for x, y in zip(a, b))
    assert key(subject_kfold(subjects, labels, 5, seed=5)) != key(a)


@pytest.mark.parametrize("n_folds,class_counts", [(10, (20, 10)), (5, (15, 10, 5))])
def test_kfold_stratification_puts_every_class_in_every_test_fold(n_folds, class_counts):
    subjects, labels = dataset(30, class_counts)
    overall = np.bincount(labels) / len(labels)
    for seed in range(3):
        folds = subject_kfold(subjects, labels, n_folds=n_folds, seed=seed, require_all_classes=True)
        for fold in folds:
            counts = np.bincount(labels[fold.test], minlength=len(class_counts))
            assert np.all(counts > 0), (seed, fold.index, counts)
            assert np.abs(counts / counts.sum() - overall).max() < 0.3  # proportions roughly kept


def test_kfold_window_level_labels_and_integer_subjects():
    rng = np.random.default_rng(1)
    subjects = np.repeat(np.arange(12), 20)
    labels = rng.integers(0, 4, subjects.size)  # several classes within each subject (e.g. sleep stages)
    folds = subject_kfold(subjects, labels, n_folds=4, seed=0, val_fraction=0.2)
    check_folds(folds, subjects, 4)
    assert all(isinstance(s, int) for f in folds for s in f.test_subjects)
    assert all(len(f.val_subjects) == 2 for f in folds)  # 0.2 of 9 training subjects, rounded


def test_kfold_without_validation_and_leave_one_subject_out():
    subjects = np.repeat(list("abcd"), 3)
    folds = subject_kfold(subjects, n_folds=4, val_fraction=0.0)
    assert [len(f.test_subjects) for f in folds] == [1] * 4 and all(f.val.size == 0 for f in folds)
    check_folds(folds, subjects, 4)
    with pytest.warns(UserWarning, match="4 of 4 test folds hold a single class"):
        subject_kfold(subjects, np.repeat([0, 0, 1, 1], 3), n_folds=4)


def test_kfold_errors():
    subjects, labels = dataset(6, (3, 3))
    with pytest.raises(ConfigError, match="10 folds need at least 10 subjects.*have 6 subjects"):
        subject_kfold(subjects, n_folds=10)
    with pytest.raises(ConfigError, match=r"labels have a single class \(0\)"):
        subject_kfold(subjects, np.zeros(len(subjects), dtype=int), n_folds=3)
    with pytest.raises(ConfigError, match=r"fold \d of 6: its test part \(1 subjects\) holds a single class; "
                                          r"window counts per class \{0: \d+, 1: \d+\}"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            subject_kfold(subjects, labels, n_folds=6, require_all_classes=True)
    with pytest.raises(ConfigError, match="n_folds is 1"):
        subject_kfold(subjects, n_folds=1)
    with pytest.raises(ConfigError, match="keep one for training"):
        subject_kfold(subjects, n_folds=3, val_fraction=0.9)


def test_kfold_reports_an_empty_stratified_fold(monkeypatch):
    monkeypatch.setattr(splits, "_stratified_folds", lambda *args: [["S00", "S01", "S02"], [], ["S03", "S04", "S05"]])
    subjects, labels = dataset(6, (3, 3))
    with pytest.raises(ConfigError, match=r"left folds \[1\] without test subjects"):
        subject_kfold(subjects, labels, n_folds=3)


# ---------------------------------------------------------------------------------------------------- I/O
def test_save_load_round_trip(tmp_path):
    subjects, labels = dataset()
    folds = subject_kfold(subjects, labels, n_folds=5, seed=2)
    path = save_folds(folds, tmp_path / "splits" / "folds.json", metadata={"dataset": "synthetic", "seed": 2})
    stored = json.loads(path.read_text())
    assert stored["n_folds"] == 5 and stored["metadata"] == {"dataset": "synthetic", "seed": 2}
    assert stored["folds"][0]["test_subjects"] == folds[0].test_subjects
    for loaded in (load_folds(path), load_folds(path, subjects=subjects)):
        assert len(loaded) == 5
        for a, b in zip(folds, loaded):
            assert a.index == b.index
            for name in ("train", "val", "test"):
                assert getattr(a, f"{name}_subjects") == getattr(b, f"{name}_subjects")
                assert np.array_equal(getattr(a, name), getattr(b, name))
                assert getattr(b, name).dtype == np.int64
    rewindowed = np.repeat(np.unique(subjects), 2)  # same subjects, other windows: indices follow the subjects
    for fold in load_folds(path, subjects=rewindowed):
        assert set(rewindowed[fold.test].tolist()) == set(fold.test_subjects)
    with pytest.raises(ConfigError, match="have no windows in the given subjects"):
        load_folds(path, subjects=np.array(["S00", "S01"]))
    (tmp_path / "other.json").write_text("{}")
    with pytest.raises(ConfigError, match="is not a folds file"):
        load_folds(tmp_path / "other.json")


def test_one_splitter_for_datamodules_and_per_window_arrays():
    """subject_split (per-window arrays) and split_subjects (a DataModule's subject names) are one draw
    (draw_groups): the same subjects, seed and fractions give the same parts."""
    from neurorvq.data.splits import draw_groups, split_subjects

    subjects, _ = dataset(30)
    names = sorted(set(subjects.tolist()))
    for seed in range(4):
        by_window = subject_split(subjects, val_fraction=0.2, test_fraction=0.1, seed=seed)
        by_name = split_subjects(names, seed, 0.2, 0.1)
        assert parts_of(by_window) == {part: set(members) for part, members in by_name.items()}
        assert by_name == draw_groups(names, seed, 0.2, 0.1)
