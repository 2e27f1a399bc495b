"""Long-term sEMG armband on the real CSVs in ../shared/data/long-term-semg-armband (5 subjects x 2 days x 22
motions x 4 trials): windows, labels, subjects, day/trial metadata, device units, leave-one-subject-out folds;
the short-segment IIR filters; damaged files written here."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import mne
import numpy as np
import pytest

from neurorvq.data.preprocess import DataError, Pipeline
from neurorvq.data.splits import subject_kfold
from neurorvq.data.windows import RecordingSkippedWarning
from neurorvq.datamodules.semg_armband import (CHANNELS, IIRBandPass, IIRNotch, MOTION_NAMES, SEMGArmbandDataModule,
                                               parse_name, read_segment)
from neurorvq.errors import ConfigError
from neurorvq.registry import get_modality


@pytest.fixture(scope="module")
def root(data_dir) -> Path:
    path = data_dir / "long-term-semg-armband" / "data"
    if not (path / "sub1" / "day1" / "D1M1T1.csv").exists():
        pytest.skip(f"long-term sEMG armband CSVs not found under {path}")
    return path


@pytest.fixture(scope="module")
def everything(root) -> SEMGArmbandDataModule:
    """All 880 files in 'train' (no val/test subjects): the pool for leave-one-subject-out folds."""
    dm = SEMGArmbandDataModule(str(root), val_fraction=0.0, test_fraction=0.0, batch_size=64, verbose=False)
    dm.setup("fit")
    return dm


def test_real_files_windows_labels_subjects_and_units(everything, root):
    ds = everything.datasets["train"]
    s = everything.summary
    assert s["recordings_found"] == s["recordings_loaded"] == s["windows_kept"] == len(ds) == 880
    assert s["skipped"] == {} and s["rejected"] == {} and s["channel_sets"] == 1
    assert everything.splits == {"train": [f"sub{k}" for k in range(1, 6)], "val": [], "test": []}
    subjects, labels = ds.subjects, ds.labels
    assert sorted(set(subjects.tolist())) == [1, 2, 3, 4, 5]
    for k in range(1, 6):  # every motion of every subject: 2 days x 4 trials each
        assert Counter(labels[subjects == k].tolist()) == {m: 8 for m in range(22)}
    meta = everything.window_metadata("train")
    assert Counter(meta["day"].tolist()) == {1: 440, 2: 440} and set(meta["trial"].tolist()) == {1, 2, 3, 4}
    assert np.array_equal(meta["motion"], labels + 1)
    # a window is its file: label and metadata from the name, signal from the file (filtered, not rescaled)
    i = ds.recordings.index(str(root / "sub3" / "day2" / "D2M7T4.csv"))
    assert labels[i] == 6 and subjects[i] == 3 and meta["day"][i] == 2 and meta["trial"][i] == 4
    source = np.loadtxt(root / "sub3" / "day2" / "D2M7T4.csv", delimiter=",").T
    window = ds[i]["signal"].numpy()
    assert window.shape == (8, 300)
    assert np.corrcoef(window[:, 50:250].ravel(), source[:, 50:250].ravel())[0, 1] > 0.9  # same signal, same scale
    spec = get_modality("semg200")
    assert spec.unit == "au" and everything.num_samples == 300 and everything.num_classes == 22
    assert ds.sets[0].channels == list(CHANNELS)
    assert ds.sets[0].channel_ids.tolist() == [spec.channel_index(f"c{k}") for k in range(1, 9)]
    signals = np.concatenate([ws.signals for ws in ds.sets])
    assert 0.05 < float(signals.std()) < 1.0 and float(np.abs(signals).max()) < 5.0  # device units, never x1e6
    assert everything.label_names == MOTION_NAMES and MOTION_NAMES[0] == "M1 (rest)"


def test_batches(everything):
    batches = list(everything.train_dataloader())
    assert sum(b["signal"].shape[0] for b in batches) == 880
    b = batches[0]
    assert set(b) == {"signal", "channel_ids", "label", "subject"}
    assert b["signal"].shape == (64, 8, 300) and b["channel_ids"].shape == (64, 8)
    assert 0 <= int(b["label"].min()) and int(b["label"].max()) <= 21
    assert set(int(x) for b in batches for x in b["subject"]) == {1, 2, 3, 4, 5}


def test_leave_one_subject_out_folds(everything):
    ds = everything.datasets["train"]
    folds = subject_kfold(ds.subjects, ds.labels, n_folds=5, require_all_classes=True)
    assert sorted(s for f in folds for s in f.test_subjects) == [1, 2, 3, 4, 5]
    for fold in folds:
        assert len(fold.test_subjects) == 1 and len(fold.test) == 176
        assert set(ds.subjects[fold.test].tolist()) == set(fold.test_subjects)
        assert set(ds.labels[fold.test].tolist()) == set(range(22))
        assert not set(fold.test_subjects) & (set(fold.train_subjects) | set(fold.val_subjects))


def test_one_held_out_subject_and_day_filter(root):
    dm = SEMGArmbandDataModule(str(root), subjects=[1, 4], days=[2], test_subjects=[4], val_fraction=0.0,
                               verbose=False)
    dm.setup()
    assert dm.splits == {"train": ["sub1"], "val": [], "test": ["sub4"]}
    assert len(dm.datasets["train"]) == 88 and len(dm.datasets["test"]) == 88
    assert set(dm.window_metadata("test")["day"].tolist()) == {2}
    assert set(dm.datasets["test"].subjects.tolist()) == {4}
    batch = next(iter(dm.test_dataloader()))
    assert batch["signal"].shape == (32, 8, 300) and set(batch["subject"].tolist()) == {4}


def test_shorter_windows_stay_inside_each_file(root):
    dm = SEMGArmbandDataModule(str(root), subjects=[5], days=[1], window_seconds=0.5, val_fraction=0.0,
                               test_fraction=0.0, verbose=False)
    dm.setup()
    ws = dm.datasets["train"].sets[0]
    assert ws.signals.shape == (3, 8, 100) and ws.starts.tolist() == [0, 100, 200] and len(set(ws.labels)) == 1
    with pytest.raises(ConfigError, match="at most 1.5"):
        SEMGArmbandDataModule(str(root), window_seconds=2.0)
    with pytest.raises(ConfigError, match="whole number"):
        SEMGArmbandDataModule(str(root), window_seconds=0.3)


# ------------------------------------------------------------------------------------------------ filters
def _raw(data: np.ndarray) -> mne.io.RawArray:
    return mne.io.RawArray(data, mne.create_info([f"c{k}" for k in range(1, data.shape[0] + 1)], 200.0, "emg"),
                           verbose="error")


def test_short_segment_iir_filters():
    spec = get_modality("semg200")
    t = np.arange(300) / 200.0
    mains, emg_band, drift = np.sin(2 * np.pi * 50 * t), np.sin(2 * np.pi * 70 * t), np.sin(2 * np.pi * 3 * t)
    out = Pipeline(spec, [IIRNotch((50.0, 60.0), 2.0)]).run(_raw(np.stack([mains, emg_band])), "x").data
    mid = slice(100, 200)
    assert np.abs(out[0, mid]).max() < 0.05  # 50 Hz removed in the middle of the 1.5-s segment
    assert np.allclose(out[1, mid], emg_band[mid], atol=0.02)  # 70 Hz untouched
    out = Pipeline(spec, [IIRBandPass(20.0, 95.0, 4)]).run(_raw(np.stack([drift, emg_band])), "x").data
    assert np.abs(out[0, mid]).max() < 0.05 and np.allclose(out[1, mid], emg_band[mid], atol=0.05)
    # zero phase and unit scale: no shift, no SI conversion of device units
    assert np.argmax(np.correlate(out[1], emg_band, "full")) == 299
    with pytest.raises(ConfigError):
        IIRBandPass(None, None)


def test_steps_option_accepts_the_iir_steps(root):
    dm = SEMGArmbandDataModule(str(root), subjects=[2], days=[1], verbose=False,
                               steps=[{"step": "IIRBandPass", "low": 30.0, "high": None, "order": 2}])
    assert [type(s).__name__ for s in dm.make_pipeline().steps] == ["IIRBandPass"]
    assert dm.hparams["steps"][0]["step"] == "IIRBandPass"
    assert [type(s).__name__ for s in SEMGArmbandDataModule(str(root), verbose=False).make_pipeline().steps] == [
        "IIRNotch", "IIRBandPass"]
    with pytest.raises(ConfigError, match="unknown preprocessing step 'Wavelet'"):
        SEMGArmbandDataModule(str(root), steps=[{"step": "Wavelet"}])


# ------------------------------------------------------------------------------------------------ bad input
def _write(path: Path, rows: int = 300, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savetxt(path, np.random.default_rng(seed).normal(0, 0.2, (rows, 8)), delimiter=",", fmt="%.5f")
    return path


@pytest.fixture()
def layout(tmp_path) -> Path:
    root = tmp_path / "data"
    for sub in (1, 2):
        for motion in (1, 2):
            _write(root / f"sub{sub}" / "day1" / f"D1M{motion}T1.csv", seed=sub * 10 + motion)
    return root


def test_names_and_missing_root(tmp_path):
    assert parse_name("D12M3T4.csv") == (12, 3, 4) and parse_name("d1m22t1.CSV") == (1, 22, 1)
    assert parse_name("D1M2.csv") is None and parse_name("notes.csv") is None
    with pytest.raises(DataError, match=rf"'{tmp_path / 'nowhere'}' does not exist: set data\.init_args\.root"):
        SEMGArmbandDataModule(str(tmp_path / "nowhere"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"no long-term sEMG armband recordings found .*sub1/"):
        SEMGArmbandDataModule(str(tmp_path / "empty"), verbose=False).setup()


def test_repository_root_is_accepted(layout):
    assert SEMGArmbandDataModule(str(layout.parent), verbose=False).root == layout  # <clone>/ -> <clone>/data


def test_damaged_files_are_skipped_with_a_warning_naming_them(layout):
    day = layout / "sub1" / "day1"
    _write(day / "D1M3T1.csv", rows=150)  # truncated: half the rows
    lines = (day / "D1M1T1.csv").read_text().splitlines()
    (day / "D1M4T1.csv").write_text("\n".join(lines[:-1] + [lines[-1][:12]]) + "\n")  # last row cut mid-line
    bad = lines.copy()
    bad[40] = "0.1,0.2,abc,0.4,0.5,0.6,0.7,0.8"
    (day / "D1M5T1.csv").write_text("\n".join(bad) + "\n")  # a non-numeric row
    _write(day / "D1Mx5T1.csv")  # label not parsable from the name
    _write(day / "D1M23T1.csv")  # motion outside 1..22
    _write(layout / "sub2" / "day1" / "D2M1T2.csv")  # day in the name differs from the folder
    (day / "D1M6T1.csv").write_text("")  # empty
    dm = SEMGArmbandDataModule(str(layout), val_fraction=0.0, test_fraction=0.0, verbose=False)
    with pytest.warns(RecordingSkippedWarning) as caught:
        dm.setup()
    messages = [str(w.message) for w in caught]
    expect = {"D1M3T1.csv": "150 rows x 8 columns; expected 300 x 8", "D1M4T1.csv": "unreadable CSV",
              "D1M5T1.csv": "could not convert string 'abc'", "D1Mx5T1.csv": "does not parse as D<day>M<motion>T",
              "D1M23T1.csv": "motion 23 in the file name is outside the dataset's motions 1..22",
              "D2M1T2.csv": "file name says day 2 but it lies in folder day1", "D1M6T1.csv": "empty file"}
    for name, reason in expect.items():
        hits = [m for m in messages if name in m]
        assert len(hits) == 1 and reason in hits[0], (name, messages)
    assert len(messages) == len(expect)
    assert dm.summary["recordings_loaded"] == 4 and len(dm.datasets["train"]) == 4
    assert sorted(Path(p).name for p in dm.summary["skipped"]) == sorted(expect)
    assert sorted(dm.datasets["train"].labels.tolist()) == [0, 0, 1, 1]


def test_strict_mode_raises_on_a_damaged_file(layout):
    _write(layout / "sub1" / "day1" / "D1M3T1.csv", rows=299)
    with pytest.raises(DataError, match=r"D1M3T1\.csv: .*299 rows .*strict=True"):
        SEMGArmbandDataModule(str(layout), strict=True, verbose=False).setup()
    (layout / "sub1" / "day1" / "D1M3T1.csv").unlink()
    _write(layout / "sub1" / "day1" / "D1M99T1.csv")
    with pytest.raises(DataError, match=r"D1M99T1\.csv: motion 99 .*strict=True"):
        SEMGArmbandDataModule(str(layout), strict=True, verbose=False).setup()


def test_read_segment_and_options(layout):
    assert read_segment(layout / "sub1" / "day1" / "D1M1T1.csv").shape == (300, 8)
    path = layout / "wide.csv"
    np.savetxt(path, np.zeros((300, 9)), delimiter=",")
    with pytest.raises(DataError, match=re.escape("300 rows x 9 columns")):
        read_segment(path)
    with pytest.raises(DataError, match=r"no folder for subject\(s\) \[7\]"):
        SEMGArmbandDataModule(str(layout), subjects=[7], verbose=False).setup()
    with pytest.raises(ConfigError, match="days is"):
        SEMGArmbandDataModule(str(layout), days=[0])
    with pytest.raises(ConfigError, match="runs at 1000 Hz"):
        SEMGArmbandDataModule(str(layout), modality="emg", window_seconds=1.4)
