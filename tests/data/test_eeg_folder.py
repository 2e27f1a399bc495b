"""A folder of EEG files: the real EEGLAB .set of ../shared/data/eeglab-set, mixed formats and montages
(bucketing), and bad files (truncated, shorter than a window, a flat channel)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import mne
import numpy as np
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


# ------------------------------------------------------------------------------------------------ channel_map
OWN_MAP = {"EEG 000": "fp1", "EEG 001": "fp2", "EEG 002": "cz", "EEG 003": "oz"}


@pytest.mark.parametrize("form", ["dict", "csv", "json"])
def test_own_channel_names_through_a_channel_map(tmp_path, form, anonymised_edf):
    edf = anonymised_edf(tmp_path / "data" / "sub-01" / "rec.edf", 6)
    assert mne.io.read_raw_edf(edf, verbose="error").ch_names[:2] == ["EEG 000", "EEG 001"]
    if form == "csv":
        channel_map = tmp_path / "channels.csv"
        channel_map.write_text("recording,electrode\n# EEG 004 and EEG 005 are not used\n"
                               + "".join(f"{k},{v.upper()}\n" for k, v in OWN_MAP.items()))
    elif form == "json":
        channel_map = tmp_path / "channels.json"
        channel_map.write_text(json.dumps(OWN_MAP))
    else:
        channel_map = OWN_MAP
    dm = EEGFolderDataModule(str(tmp_path / "data"), channel_map=channel_map if form == "dict" else str(channel_map),
                             steps=LIGHT_STEPS, val_fraction=0, test_fraction=0, verbose=False)
    dm.setup()
    (ws,) = dm.datasets["train"].sets
    spec = dm.spec
    assert ws.channels == ["fp1", "fp2", "cz", "oz"] and ws.signals.shape == (2, 4, 800)
    assert ws.channel_ids.tolist() == [spec.channel_index(n) for n in ("fp1", "fp2", "cz", "oz")]
    std = ws.signals.std(axis=(0, 2))  # 10, 20, 30, 40 uV sines: the rows are EEG 000 ... EEG 003, in order
    assert np.allclose(std / std[0], [1, 2, 3, 4], rtol=0.05), std
    dropped = dm.summary["dropped_channels"]
    assert set(dropped) == {"EEG 004", "EEG 005"} and "not in the 'eeg' vocabulary" in dropped["EEG 004"]
    batch = next(iter(dm.train_dataloader()))
    assert batch["channel_ids"][0].tolist() == ws.channel_ids.tolist()


def test_without_a_map_the_refusal_says_what_to_set(tmp_path, anonymised_edf):
    anonymised_edf(tmp_path / "sub-01" / "rec.edf", 6)
    with pytest.raises(DataError) as caught:
        EEGFolderDataModule(str(tmp_path), steps=LIGHT_STEPS, strict=True, verbose=False).setup()
    message = str(caught.value)
    assert "rec.edf: no channel maps onto the 'eeg' vocabulary: 6 channels dropped, e.g. 'EEG 000' (" in message
    assert "; and 1 more." in message and "EEG 005" not in message
    assert 'set channel_map in the data section of the recipe, e.g. `channel_map: {"EEG 000": fp1' in message
    with pytest.warns(RecordingSkippedWarning, match="set channel_map in the data section"):
        with pytest.raises(DataError, match="none of the 1 EEG folder recordings"):
            EEGFolderDataModule(str(tmp_path), steps=LIGHT_STEPS, verbose=False).setup()


def test_map_naming_channels_a_file_lacks(tmp_path, anonymised_edf):
    """A typo, or the map of another export, stops loading with the file and the names; a folder mixing
    montages opts in with channel_map_partial."""
    anonymised_edf(tmp_path / "sub-01" / "wide.edf", 6)
    narrow = anonymised_edf(tmp_path / "sub-02" / "narrow.edf", 4)
    wide_map = {**OWN_MAP, "EEG 004": "o1", "EEG 005": "o2"}
    dm = EEGFolderDataModule(str(tmp_path), channel_map=wide_map, steps=LIGHT_STEPS, verbose=False)
    with pytest.raises(ConfigError, match=rf"^{narrow} lacks 2 channel\(s\) named in channel_map: 'EEG 004', "
                                          r"'EEG 005' \(its 4 channels: 'EEG 000', 'EEG 001', 'EEG 002', 'EEG 003'\)\. "
                                          r"Correct these names .* set channel_map_partial: true"):
        dm.setup()
    dm = EEGFolderDataModule(str(tmp_path), channel_map=wide_map, channel_map_partial=True, steps=LIGHT_STEPS,
                             val_fraction=0, test_fraction=0, verbose=False)
    dm.setup()
    sets = {Path(ws.recording).name: ws for ws in dm.datasets["train"].sets}
    assert sets["wide.edf"].channels == ["fp1", "fp2", "cz", "oz", "o1", "o2"]
    assert sets["narrow.edf"].channels == ["fp1", "fp2", "cz", "oz"] and dm.summary["channel_sets"] == 2
    assert "absent from some recordings" in dm.summary["dropped_channels"]["EEG 005"]


def test_bad_channel_maps_fail_at_construction(tmp_path):
    with pytest.raises(ConfigError, match=r"'EEG 002' -> 'czz', closest: cz"):
        EEGFolderDataModule(str(tmp_path), channel_map={"EEG 000": "fp1", "EEG 002": "czz"})
    with pytest.raises(ConfigError, match=r"'EEG 000' and 'EEG 001' both map to 'fp1'"):
        EEGFolderDataModule(str(tmp_path), channel_map={"EEG 000": "fp1", "EEG 001": "Fp1"})
    (tmp_path / "map.csv").write_text("EEG 000;fp1\n")
    with pytest.raises(ConfigError, match=r"map\.csv', line 1: expected two columns old,new"):
        EEGFolderDataModule(str(tmp_path), channel_map=str(tmp_path / "map.csv"))
    with pytest.raises(ConfigError, match=r"steps has none: add \{step: PickChannels\}"):
        EEGFolderDataModule(str(tmp_path), channel_map=OWN_MAP, steps=[{"step": "Resample"}])
