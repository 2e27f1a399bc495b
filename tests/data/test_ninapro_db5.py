"""NinaPro DB5 on .mat files written here in the documented layout (s<k>/S<k>_E<j>_A1.mat with emg [N, 16] at
200 Hz, restimulus and rerepetition [N, 1]): windows inside each repetition, global gesture labels, rest,
repetition-based and subject-wise splits, damaged files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.io import savemat

from neurorvq.data.preprocess import DataError
from neurorvq.data.windows import RecordingSkippedWarning
from neurorvq.datamodules.ninapro_db5 import (EXERCISE_OFFSETS, NinaProDB5DataModule, loso_split_file, read_mat,
                                              repetition_segments)
from neurorvq.errors import ConfigError

GESTURES = {1: (1, 5, 12), 2: (1, 17), 3: (23,)}  # exercise-local ids written per exercise (first/last ones)
MOVE, REST, REPS = 400, 200, 6  # samples: 2-s movements, 1-s rests, 6 repetitions


def session(subject: int, exercise: int, gestures=None, seed: int = 0) -> dict:
    """A DB5-like session: rest, then each gesture 6 x (2 s movement, 1 s rest); emg in Myo-like units."""
    stim, rep = [np.zeros(REST)], [np.zeros(REST)]
    for g in GESTURES[exercise] if gestures is None else gestures:
        for r in range(1, REPS + 1):
            stim += [np.full(MOVE, g), np.zeros(REST)]
            rep += [np.full(MOVE, r), np.zeros(REST)]
    stim, rep = np.concatenate(stim), np.concatenate(rep)
    rng = np.random.default_rng(seed)
    emg = rng.normal(0, 5, (stim.size, 16)) * (1 + (stim > 0))[:, None]  # ~5-10 device units, like Myo's int8
    return {"emg": emg, "restimulus": stim[:, None].astype(np.uint8), "rerepetition": rep[:, None].astype(np.uint8),
            "stimulus": stim[:, None], "repetition": rep[:, None], "subject": np.array([[subject]]),
            "exercise": np.array([[exercise]]), "frequency": np.array([[200]])}


def write(root: Path, subject: int, exercise: int, content: dict | None = None, **kwargs) -> Path:
    path = root / f"s{subject}" / f"S{subject}_E{exercise}_A1.mat"
    path.parent.mkdir(parents=True, exist_ok=True)
    savemat(path, session(subject, exercise, seed=subject * 10 + exercise, **kwargs) if content is None else content)
    return path


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("db5")
    for subject in (1, 2, 3):
        for exercise in (1, 2, 3):
            write(root, subject, exercise)
    return root


def _window_count(gestures: int, rest: bool = False) -> int:
    per_move = (MOVE - 200) // 100 + 1  # 1-s windows every 0.5 s in a 2-s repetition: 3
    return gestures * REPS * per_move + (gestures * REPS + 1 if rest else 0)  # each 1-s rest: 1 window


def test_windows_stay_inside_each_repetition_with_global_labels(root):
    dm = NinaProDB5DataModule(str(root), val_fraction=0.0, test_fraction=0.0, verbose=False)
    dm.setup()
    ds = dm.datasets["train"]
    assert dm.summary["recordings_loaded"] == 9 and dm.summary["skipped"] == {}
    assert dm.num_classes == 52 and dm.label_names[0] == "gesture 1 (E1 #1)"
    assert dm.label_names[12] == "gesture 13 (E2 #1)" and dm.label_names[51] == "gesture 52 (E3 #23)"
    meta = dm.window_metadata("train")
    # global ids: E1 1, 5, 12; E2 1 -> 13, 17 -> 29; E3 23 -> 52; label = global id - 1
    assert sorted(set(meta["gesture"].tolist())) == [1, 5, 12, 13, 29, 52]
    assert np.array_equal(ds.labels, meta["gesture"] - 1)
    assert set(meta["repetition"].tolist()) == set(range(1, 7))
    for ws in ds.sets:
        exercise = int(ws.exercises[0])
        content = session(int(ws.subjects[0]), exercise)
        stim, rep = content["restimulus"].ravel(), content["rerepetition"].ravel()
        assert ws.signals.shape[1:] == (16, 200) and len(ws) == _window_count(len(GESTURES[exercise]))
        for start, gesture, repetition in zip(ws.starts, ws.gestures, ws.repetitions):
            inside = slice(int(start), int(start) + 200)
            assert set(stim[inside].tolist()) == {gesture - EXERCISE_OFFSETS[exercise]}
            assert set(rep[inside].tolist()) == {repetition}
    assert ds.sets[0].channels == [f"c{k}" for k in range(1, 17)]
    std = float(np.concatenate([ws.signals for ws in ds.sets]).std())
    assert 1.0 < std < 20.0  # device units passed through (band-passed), not rescaled
    batch = next(iter(dm.train_dataloader()))
    assert batch["signal"].shape == (32, 16, 200) and set(batch) == {"signal", "channel_ids", "label", "subject"}
    assert set(ds.subjects.tolist()) == {1, 2, 3}


def test_rest_and_exercise_subset(root):
    dm = NinaProDB5DataModule(str(root), subjects=[2], exercises=[2], include_rest=True, val_fraction=0.0,
                              test_fraction=0.0, verbose=False)
    dm.setup()
    assert dm.num_classes == 18 and dm.label_names[0] == "rest" and dm.class_gestures[1] == 13
    ws = dm.datasets["train"].sets[0]
    assert len(ws) == _window_count(2, rest=True)
    labels = dict(zip(ws.gestures.tolist(), ws.labels.tolist()))
    assert labels == {0: 0, 13: 1, 29: 17}
    rest = ws.gestures == 0
    # the initial rest takes repetition 1; each other rest the repetition it follows
    assert ws.repetitions[rest].tolist() == [1] + [r for _ in range(2) for r in range(1, 7)]


def test_split_by_repetition_keeps_every_subject_in_every_split(root):
    dm = NinaProDB5DataModule(str(root), subjects=[1, 3], exercises=[1], test_repetitions=[2, 5],
                              val_repetitions=[3], verbose=False)
    dm.setup()
    assert dm.splits == {"train": ["S1", "S3"], "val": ["S1", "S3"], "test": ["S1", "S3"]}
    reps = {split: set(dm.window_metadata(split)["repetition"].tolist()) for split in ("train", "val", "test")}
    assert reps == {"train": {1, 4, 6}, "val": {3}, "test": {2, 5}}
    per_rep = _window_count(3) // REPS  # windows of one repetition of one subject
    assert dm.summary["windows"] == {"train": 2 * 3 * per_rep, "val": 2 * per_rep, "test": 2 * 2 * per_rep}
    assert len(dm.test_dataloader().dataset) == 2 * 2 * per_rep
    with pytest.raises(ConfigError, match="cannot be combined"):
        NinaProDB5DataModule(str(root), test_repetitions=[2], test_subjects=[1])
    with pytest.raises(ConfigError, match=r"repetitions \[2\] are in both"):
        NinaProDB5DataModule(str(root), test_repetitions=[2], val_repetitions=[2])


def test_subject_split(root):
    dm = NinaProDB5DataModule(str(root), exercises=[3], test_subjects=[2], val_subjects=["S3"], verbose=False)
    dm.setup()
    assert dm.splits == {"train": ["S1"], "val": ["S3"], "test": ["S2"]}
    assert set(dm.datasets["test"].subjects.tolist()) == {2} and dm.num_classes == 23


def test_segments_and_options():
    stim = np.array([0, 0, 3, 3, 3, 0, 3, 3, 0])
    rep = np.array([0, 0, 1, 1, 1, 0, 2, 2, 0])
    assert repetition_segments(stim, rep) == [(0, 2, 0, 1), (2, 5, 3, 1), (5, 6, 0, 1), (6, 8, 3, 2), (8, 9, 0, 2)]
    with pytest.raises(ConfigError, match="exercises is"):
        NinaProDB5DataModule(".", exercises=[4])
    with pytest.raises(ConfigError, match="stride_seconds is 0.0025"):
        NinaProDB5DataModule(".", stride_seconds=0.0025)
    with pytest.raises(ConfigError, match="whole number"):
        NinaProDB5DataModule(".", window_seconds=0.3)
    with pytest.raises(ConfigError, match="test_repetitions is"):
        NinaProDB5DataModule(".", test_repetitions=[0])


def test_missing_root(tmp_path):
    with pytest.raises(DataError, match=rf"'{tmp_path / 'db5'}' does not exist: set data\.init_args\.root"):
        NinaProDB5DataModule(str(tmp_path / "db5"))


def test_damaged_files_are_skipped_with_a_warning(tmp_path):
    root = tmp_path / "db5"
    write(root, 1, 1, gestures=(1,))
    bad = session(1, 2, gestures=(1,))
    del bad["restimulus"]
    write(root, 1, 2, bad)  # a missing variable
    write(root, 2, 1, gestures=(13,))  # a gesture id outside exercise 1's 1..12
    narrow = session(2, 2, gestures=(1,))
    narrow["emg"] = narrow["emg"][:, :8]
    write(root, 2, 2, narrow)  # one armband only
    wrong = session(3, 1, gestures=(1,))
    wrong["subject"] = np.array([[7]])
    write(root, 3, 1, wrong)  # the subject variable contradicts the name
    (root / "s3" / "S3_E2_A1.mat").write_bytes(b"not a mat file")
    fast = session(5, 1, gestures=(1,))
    fast["frequency"] = np.array([[2000]])
    write(root, 5, 1, fast)  # another rate than DB5's 200 Hz
    dm = NinaProDB5DataModule(str(root), subjects=[1, 2, 3, 4, 5], exercises=[1, 2], val_fraction=0.0,
                              test_fraction=0.0, verbose=False)
    with pytest.warns(RecordingSkippedWarning) as caught:
        dm.setup()
    messages = [str(w.message) for w in caught]
    expect = {"S1_E2_A1.mat": "missing variable(s) ['restimulus']",
              "S2_E1_A1.mat": "restimulus values [13] are outside exercise 1's gestures 0..12",
              "S2_E2_A1.mat": "'emg' has shape (3800, 8); expected [samples, 16]",
              "S3_E1_A1.mat": "variable 'subject' is 7 but the file name says 3",
              "S3_E2_A1.mat": "unreadable .mat file", "S4_E1_A1.mat": "file not found",
              "S4_E2_A1.mat": "file not found", "S5_E1_A1.mat": "variable 'frequency' is 2000 Hz",
              "S5_E2_A1.mat": "file not found"}
    for name, reason in expect.items():
        hits = [m for m in messages if name in m]
        assert len(hits) == 1 and reason in hits[0], (name, messages)
    assert len(messages) == len(expect) and dm.summary["recordings_loaded"] == 1
    with pytest.raises(DataError, match=r"S1_E2_A1\.mat: missing variable\(s\) \['restimulus'\].*strict=True"):
        NinaProDB5DataModule(str(root), subjects=[1], exercises=[1, 2], strict=True, verbose=False).setup()
    with pytest.raises(DataError, match=r"missing variable\(s\) \['restimulus'\]"):
        read_mat(root / "s1" / "S1_E2_A1.mat")


def test_the_repetition_split_builds_and_streams_a_window_cache(root, tmp_path):
    """No load() override any more: the split by the per-window ``repetition`` column is cached, columns included."""
    from cache_checks import assert_cache_matches_memory

    args = dict(subjects=[1, 3], exercises=[1], test_repetitions=[2, 5], val_repetitions=[3], verbose=False)
    memory = NinaProDB5DataModule(str(root), **args)
    memory.setup()
    cached = NinaProDB5DataModule(str(root), cache_dir=str(tmp_path / "cache"), **args)
    cached.prepare_data()
    cached.setup()
    assert_cache_matches_memory(memory, cached)
    assert set(memory.window_table("test")["repetition"].tolist()) == {2, 5}


def test_leave_one_subject_out_split_file(tmp_path):
    """The subject-independent protocol: fold k of the shipped LOSO file tests subject k+1, under `fit` (a split
    rule) and under `neurorvq cv` (its fold reader)."""
    from neurorvq.crossval.folds import split_file_folds
    from neurorvq.data.split_files import read_split_file

    root = tmp_path / "db5"
    for subject in range(1, 11):
        write(root, subject, 1, gestures=(1,))
    split = read_split_file(loso_split_file())
    assert split.by == "subject" and split.groups == {str(k): [k + 1] for k in range(10)}
    for fold in ("0", "3", "9"):
        plan = NinaProDB5DataModule(str(root), exercises=[1], split={"file": str(loso_split_file()), "fold": fold},
                                    verbose=False).resolve_plan()
        test = f"S{int(fold) + 1}"
        assert plan.values["test"] == [test] and len(plan.values["val"]) == 1 and len(plan.values["train"]) == 8
        assert test not in plan.values["train"] + plan.values["val"]
    dm = NinaProDB5DataModule(str(root), exercises=[1], split={"file": str(loso_split_file()), "fold": "3"},
                              verbose=False)
    dm.setup()
    assert dm.splits["test"] == ["S4"] and set(dm.datasets["test"].subjects.tolist()) == {4}
    assert len(dm.datasets["test"]) == _window_count(1)
    names = np.asarray([f"S{k}" for k in range(1, 11) for _ in range(3)])  # three windows per subject
    folds = split_file_folds(split, names, seed=0, val_fraction=0.0, ids={f"S{k}": k for k in range(1, 11)})
    assert [sorted(set(names[f.test].tolist())) for f in folds] == [[f"S{k}"] for k in range(1, 11)]
    assert all(len(f.train) == 27 and not len(f.val) for f in folds)
