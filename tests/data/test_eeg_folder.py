"""A folder of EEG files: the real EEGLAB .set of ../shared/data/eeglab-set, mixed formats and montages
(bucketing), and bad files (truncated, shorter than a window, a flat channel)."""

from __future__ import annotations

import shutil
from pathlib import Path

import mne
import pytest

from neurorvq.data.channels import clean_channel_name
from neurorvq.data.preprocess import DataError
from neurorvq.data.windows import RecordingSkippedWarning
from neurorvq.datamodules.eeg_folder import EEGFolderDataModule, file_extension
from neurorvq.errors import ConfigError

LIGHT_STEPS = [{"step": "PickChannels"}, {"step": "Resample"}]
MONTAGE_19 = ["Fp1.", "Fp2.", "F7..", "F3..", "Fz..", "F4..", "F8..", "T7..", "C3..", "Cz..", "C4..", "T8..",
              "P7..", "P3..", "Pz..", "P4..", "P8..", "O1..", "Oz.."]


@pytest.fixture(scope="module")
def set_file(data_dir) -> Path:
    path = data_dir / "eeglab-set" / "eegmmidb-S003" / "S003_R01_raw.set"
    if not path.exists():
        pytest.skip(f"EEGLAB sample not found at {path}")
    return path


def test_reads_the_eeglab_set(set_file):
    dm = EEGFolderDataModule(str(set_file.parents[1]), window_seconds=4.0, verbose=False)
    dm.setup()
    assert dm.subject_names == ["eegmmidb-S003"] and dm.summary["recordings_loaded"] == 1
    ws = dm.datasets["train"].sets[0]
    assert Path(ws.recording) == set_file and ws.labels is None
    assert ws.signals.shape == (61 // 4, 64, 800)  # 61 s at 160 Hz -> 200 Hz, 4-s windows
    names = mne.io.read_raw_eeglab(set_file, verbose="error").ch_names
    assert ws.channels == [clean_channel_name(n) for n in names] and dm.summary["dropped_channels"] == {}
    std = float(ws.signals.std())
    assert 5 < std < 100, f"EEG std {std:.3g} is not tens of uV"
    batch = next(iter(dm.train_dataloader()))
    assert set(batch) == {"signal", "channel_ids", "subject"} and batch["signal"].shape[1:] == (64, 800)


def _fif(raw: mne.io.BaseRaw, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    raw.save(path, overwrite=True, verbose="error")
    return path


@pytest.fixture(scope="module")
def mixed_root(set_file, tmp_path_factory) -> Path:
    """subA: the .set and its 19-channel subset as FIF; subB: an EDF copy; bad/: truncated, short and flat files."""
    root = tmp_path_factory.mktemp("eeg_folder")
    raw = mne.io.read_raw_eeglab(set_file, preload=True, verbose="error")
    (root / "subA").mkdir()
    shutil.copy(set_file, root / "subA" / set_file.name)
    _fif(raw.copy().pick(MONTAGE_19).crop(0, 20), root / "subA" / "montage19_raw.fif")
    edf = set_file.parents[2] / "eegmmidb" / "S003" / "S003R02.edf"
    if not edf.exists():
        pytest.skip(f"EEGMMIDB sample not found at {edf}")
    (root / "subB").mkdir()
    shutil.copy(edf, root / "subB" / "S003R02.edf")
    data = edf.read_bytes()
    (root / "bad").mkdir()
    (root / "bad" / "cut.edf").write_bytes(data[: len(data) // 2])
    _fif(raw.copy().pick(MONTAGE_19).crop(0, 2), root / "bad" / "short_raw.fif")
    flat = raw.copy().pick(MONTAGE_19).crop(0, 20)
    flat._data[3] = 0.0  # F3 dead for the whole recording
    _fif(flat, root / "bad" / "flat_raw.fif")
    (root / "bad" / "notes.txt").write_text("not a recording")
    return root


def test_mixed_formats_and_montages_are_bucketed_and_bad_files_skipped(mixed_root):
    dm = EEGFolderDataModule(str(mixed_root), steps=LIGHT_STEPS, batch_size=4, val_fraction=0, test_fraction=0,
                             verbose=False)
    with pytest.warns(RecordingSkippedWarning) as caught:
        dm.setup()
    reasons = {Path(path).name: reason for path, reason in dm.summary["skipped"].items()}
    assert set(reasons) == {"cut.edf", "short_raw.fif", "flat_raw.fif"}
    assert "truncated" in reasons["cut.edf"]
    assert "shorter than one 4 s window" in reasons["short_raw.fif"]
    assert "f3: flat" in reasons["flat_raw.fif"]
    messages = " | ".join(str(w.message) for w in caught)
    for name in reasons:
        assert str(mixed_root / "bad" / name) in messages
    ds = dm.datasets["train"]
    assert sorted(Path(s.recording).name for s in ds.sets) == ["S003R02.edf", "S003_R01_raw.set", "montage19_raw.fif"]
    assert dm.summary["channel_sets"] == 2 and dm.subject_names == ["bad", "subA", "subB"]
    sizes = sorted(s.num_channels for s in ds.sets)
    assert sizes == [19, 64, 64]
    n = 0
    for batch in dm.train_dataloader():  # a batch never mixes the 19- and 64-channel recordings
        ids = batch["channel_ids"]
        assert (ids == ids[0]).all() and batch["signal"].shape[1] in (19, 64)
        n += ids.shape[0]
    assert n == len(ds)
    with pytest.raises(DataError, match=r"cut\.edf: truncated"):
        EEGFolderDataModule(str(mixed_root / "bad"), steps=LIGHT_STEPS, strict=True, verbose=False).setup()


def test_flat_channel_can_be_dropped_and_subject_from_stem(mixed_root):
    dm = EEGFolderDataModule(str(mixed_root / "bad"), extensions=["fif"], subject_from="stem", steps=LIGHT_STEPS,
                             dead_channels="drop", verbose=False)
    with pytest.warns(RecordingSkippedWarning, match="short_raw.fif"):
        dm.setup()
    assert dm.subject_names == ["flat_raw", "short_raw"]
    (ws,) = dm.datasets["train"].sets + dm.datasets["val"].sets
    assert ws.num_channels == 18 and "f3" not in ws.channels and "f3" in dm.summary["dropped_channels"]


def test_options_and_extensions(tmp_path):
    assert file_extension(Path("a/B.FIF.gz")) == ".fif.gz" and file_extension(Path("x.vhdr")) == ".vhdr"
    assert file_extension(Path("x.fdt")) is None
    with pytest.raises(ConfigError, match="extensions"):
        EEGFolderDataModule(str(tmp_path), extensions=[".csv"])
    with pytest.raises(ConfigError, match="subject_from"):
        EEGFolderDataModule(str(tmp_path), subject_from="folder")
    with pytest.raises(DataError, match=r"does not exist: set data\.init_args\.root"):
        EEGFolderDataModule(str(tmp_path / "missing"))
    (tmp_path / "readme.txt").write_text("no recordings here")
    with pytest.raises(DataError, match="no EEG folder recordings found"):
        EEGFolderDataModule(str(tmp_path), verbose=False).setup()


def test_recordings_at_mixed_sampling_rates_all_reach_the_spec_rate(set_file, tmp_path):
    """A folder mixing 160 Hz, 250 Hz and 200 Hz files: each is resampled on its own, nothing is skipped."""
    raw = mne.io.read_raw_eeglab(set_file, preload=True, verbose="error").pick(MONTAGE_19).crop(0, 12)
    _fif(raw.copy(), tmp_path / "s1" / "at160_raw.fif")
    _fif(raw.copy().resample(250.0, verbose="error"), tmp_path / "s2" / "at250_raw.fif")
    _fif(raw.copy().resample(200.0, verbose="error"), tmp_path / "s3" / "at200_raw.fif")
    dm = EEGFolderDataModule(str(tmp_path), window_seconds=4.0, steps=LIGHT_STEPS, val_fraction=0.0,
                             test_fraction=0.0, verbose=False)
    dm.setup()
    assert dm.summary["recordings_loaded"] == 3 and dm.summary["recordings_skipped"] == 0
    shapes = {ws.signals.shape for ws in dm.datasets["train"].sets}
    assert shapes == {(3, 19, 800)}  # 12 s at 200 Hz whatever the source rate
