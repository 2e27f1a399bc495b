"""EEGMMIDB on the real files in ../shared/data/eegmmidb (S001: all runs, S003: R01-R03): tasks, labels,
channels, rate, unit, subjects, and damaged or missing files."""

from __future__ import annotations

import shutil
from pathlib import Path

import mne
import numpy as np
import pytest

from neurorvq.data.channels import clean_channel_name
from neurorvq.data.preprocess import DataError
from neurorvq.data.windows import RecordingSkippedWarning
from neurorvq.datamodules.eegmmidb import TASK_RUNS, EEGMMIDBDataModule
from neurorvq.errors import ConfigError
from neurorvq.registry import get_modality

LIGHT_STEPS = [{"step": "PickChannels"}, {"step": "Resample"}]  # for tests of file handling, not of the signal


@pytest.fixture(scope="module")
def root(data_dir) -> Path:
    path = data_dir / "eegmmidb"
    if not (path / "S001" / "S001R04.edf").exists():
        pytest.skip(f"EEGMMIDB sample not found under {path}")
    return path


@pytest.fixture(scope="module")
def eyes(root) -> EEGMMIDBDataModule:
    dm = EEGMMIDBDataModule(str(root), task="eyes", subjects=[1], batch_size=8, verbose=False)
    dm.setup("fit")
    return dm


@pytest.fixture(scope="module")
def imagery(root) -> EEGMMIDBDataModule:
    dm = EEGMMIDBDataModule(str(root), task="imagery_lr", subjects=[1], verbose=False)
    dm.setup("fit")
    return dm


def test_eyes_windows_labels_channels_rate_and_unit(eyes, root):
    ds = eyes.datasets["train"]
    assert eyes.splits == {"train": ["S001"], "val": [], "test": []}  # one subject: all of it in train
    assert [Path(s.recording).name for s in ds.sets] == ["S001R01.edf", "S001R02.edf"]
    # 60-s baselines (this copy; see the data README) -> 15 windows of 4 s at 200 Hz = 800 samples
    for ws, label in zip(ds.sets, (0, 1)):
        assert ws.signals.shape == (15, 64, 800) and ws.signals.dtype == np.float32
        assert ws.labels.tolist() == [label] * 15  # R01 eyes open = 0, R02 eyes closed = 1
        assert ws.subjects.tolist() == [1] * 15  # S001 -> subject 1
        assert ws.starts.tolist() == list(range(0, 15 * 800, 800))
    names = mne.io.read_raw_edf(root / "S001" / "S001R01.edf", verbose="error").ch_names
    assert len(names) == 64 and names[0] == "Fc5."
    assert ds.sets[0].channels == [clean_channel_name(n) for n in names]  # file order, vocabulary names
    spec = get_modality("eeg")
    assert ds.sets[0].channel_ids.tolist() == [spec.channel_index(clean_channel_name(n)) for n in names]
    assert eyes.summary["dropped_channels"] == {} and eyes.summary["channel_sets"] == 1
    assert eyes.spec.sampling_rate == 200 and eyes.spec.unit == "uV" and eyes.num_samples == 800
    std = float(ds.sets[0].signals.std())
    assert 5 < std < 100, f"EEG std {std:.3g} is not tens of uV"
    assert np.abs(ds.sets[0].signals).max() <= 500.0  # the 500 uV clip holds after resampling too
    assert eyes.label_names == ("eyes open", "eyes closed")


def test_eyes_batches(eyes):
    batches = list(eyes.train_dataloader())
    assert sum(b["signal"].shape[0] for b in batches) == 30 and len(batches) == 4
    b = batches[0]
    assert b["signal"].shape == (8, 64, 800) and b["channel_ids"].shape == (8, 64)
    assert set(b) == {"signal", "channel_ids", "label", "subject"}
    assert sorted(int(x) for b in batches for x in b["label"]) == [0] * 15 + [1] * 15
    assert len(eyes.val_dataloader()) == 0  # no val subject with one subject


def test_imagery_epochs_follow_t1_t2_annotations(imagery, root):
    ds = imagery.datasets["train"]
    assert [Path(s.recording).name for s in ds.sets] == ["S001R04.edf", "S001R08.edf", "S001R12.edf"]
    rejected = sum(imagery.summary["rejected"].values())
    expected = 0
    for ws in ds.sets:
        annotations = mne.read_annotations(ws.recording)
        cues = [(a["onset"], a["description"]) for a in annotations if a["description"] in ("T1", "T2")]
        expected += len(cues)
        assert ws.signals.shape[1:] == (64, 800)
        if rejected == 0:  # epoch k starts at cue k's onset (200 Hz samples), T1 -> 0 (left), T2 -> 1 (right)
            assert ws.starts.tolist() == [round(onset * 200) for onset, _ in cues]
            assert ws.labels.tolist() == [0 if d == "T1" else 1 for _, d in cues]
    assert expected == 45  # 15 cues per run in these files
    assert len(ds) == expected - rejected
    assert imagery.summary["windows_kept"] == len(ds)
    assert set(ds.labels.tolist()) == {0, 1}
    assert imagery.label_names == ("imagined left fist", "imagined right fist") and imagery.num_classes == 2


def test_pretrain_is_unlabelled_sliding_windows(root):
    dm = EEGMMIDBDataModule(str(root), task="pretrain", subjects=[3], runs=[1], window_seconds=4.0,
                            stride_seconds=2.0, verbose=False)
    dm.setup()
    ws = dm.datasets["train"].sets[0]
    assert Path(ws.recording).name == "S003R01.edf" and ws.labels is None
    assert len(ws) == (61 - 4) // 2 + 1 and ws.starts[1] == 400 and ws.subjects.tolist() == [3] * len(ws)
    assert "label" not in next(iter(dm.train_dataloader()))
    assert dm.num_classes is None


def test_options_are_checked(root, tmp_path):
    with pytest.raises(ConfigError, match="task is 'motor'"):
        EEGMMIDBDataModule(str(root), task="motor")
    with pytest.raises(ConfigError, match=r"runs \[3\] are not runs of task 'imagery_lr'"):
        EEGMMIDBDataModule(str(root), task="imagery_lr", runs=[3, 4])
    with pytest.raises(DataError, match=rf"'{tmp_path / 'eegmmidb'}' does not exist: set data\.init_args\.root"):
        EEGMMIDBDataModule(str(tmp_path / "eegmmidb"))
    with pytest.raises(DataError, match=r"no EEGMMIDB recordings found .*S001/"):
        EEGMMIDBDataModule(str(tmp_path), verbose=False).setup()
    assert TASK_RUNS["imagery_fists_feet"] == (6, 10, 14) and TASK_RUNS["execution_fists_feet"] == (5, 9, 13)


def test_truncated_and_missing_files_are_skipped_or_raise_in_strict_mode(root, tmp_path):
    (tmp_path / "S001").mkdir()
    data = (root / "S001" / "S001R01.edf").read_bytes()
    (tmp_path / "S001" / "S001R01.edf").write_bytes(data[: len(data) // 3])  # cut mid-recording
    shutil.copy(root / "S001" / "S001R02.edf", tmp_path / "S001" / "S001R02.edf")
    dm = EEGMMIDBDataModule(str(tmp_path), task="eyes", subjects=[1, 2], steps=LIGHT_STEPS, verbose=False)
    with pytest.warns(RecordingSkippedWarning) as caught:
        dm.setup()
    messages = [str(w.message) for w in caught]
    assert any("S001R01.edf" in m and "truncated" in m for m in messages), messages
    assert any("S002R01.edf" in m and "file not found" in m for m in messages), messages
    assert dm.summary["recordings_loaded"] == 1 and dm.summary["recordings_skipped"] == 3
    assert [Path(s.recording).name for s in dm.datasets["train"].sets + dm.datasets["val"].sets] == ["S001R02.edf"]
    with pytest.raises(DataError, match=r"S001R01\.edf: truncated or corrupt file"):
        EEGMMIDBDataModule(str(tmp_path), task="eyes", subjects=[1], steps=LIGHT_STEPS, strict=True,
                           verbose=False).setup()


def test_the_benchmark_eyes_row_gives_referenced_non_overlapping_4s_windows(root):
    """recipes/benchmarks/eyes_eegmmidb.yaml's data section on the real S001 runs: 15 windows per 1-min run, 64
    channels at 200 Hz, the common average reference (channel mean zero at every sample), labels per run."""
    import yaml

    recipe = Path(__file__).resolve().parents[2] / "recipes" / "benchmarks" / "eyes_eegmmidb.yaml"
    init = dict(yaml.safe_load(recipe.read_text())["data"]["init_args"])
    init.update(root=str(root), subjects=[1], verbose=False, val_fraction=0, test_fraction=0)
    dm = EEGMMIDBDataModule(**init)
    dm.setup("fit")
    sets = dm.datasets["train"].sets
    assert [ws.signals.shape for ws in sets] == [(15, 64, 800)] * 2
    assert [ws.labels.tolist() for ws in sets] == [[0] * 15, [1] * 15]
    assert [ws.starts[1] - ws.starts[0] for ws in sets] == [800, 800]
    for ws in sets:
        assert np.abs(ws.signals.mean(axis=1)).max() < 1e-3 * np.abs(ws.signals).max()
    assert [s["step"] for s in dm.make_pipeline().config()["steps"]] == [
        "Resample", "BandPass", "CommonAverageReference", "PickChannels"]
