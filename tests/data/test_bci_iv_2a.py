"""BCI Competition IV 2a. MNE cannot write GDF, so sessions are MNE Raw objects built here with the data set's
channel names ('EEG-Fz', 'EEG-0', ..., 'EOG-left', ...) at 250 Hz and its event codes as annotations; the
true-labels files (A01E.mat, classlabel) are written with scipy. The DataModule reads them through an
overridden read_recording (mne.io.read_raw_gdf for real files)."""

from __future__ import annotations

from pathlib import Path

import mne
import numpy as np
import pytest
from scipy.io import savemat

from neurorvq.data.preprocess import DataError
from neurorvq.data.windows import RecordingSkippedWarning
from neurorvq.datamodules.bci_iv_2a import (CHANNEL_MAP, CLASS_NAMES, EOG_CHANNELS, GDF_EEG_CHANNELS, POSITIONS,
                                            BCIIV2aDataModule, parse_trials, read_true_labels)
from neurorvq.errors import ConfigError
from neurorvq.registry import get_modality

SFREQ = 250.0
TRIAL = 8.0  # s between trial starts (the protocol's 6 s plus a break)
FIRST = 10.0  # s of EOG calibration before the first trial
CLASSES = [1, 2, 3, 4, 2, 1, 4, 3]  # classlabel of the 8 trials of a session
REJECTED_TRIALS = (3,)  # 0-based trials marked 1023


def make_session(session: str, classes=CLASSES, rejected=REJECTED_TRIALS, seed: int = 0,
                 extra: tuple[tuple[float, str], ...] = ()) -> mne.io.RawArray:
    """A 2a-like session: EOG run events, then trials (768 at t0, the cue at t0 + 2 s: 769-772 in 'T', 783 in
    'E'; 1023 at t0 for rejected trials). EEG ~5 uV noise (in volts, as MNE reads GDF) plus a 10-Hz, 40-uV burst
    on EEG-C3 during 0-4 s after every cue (to check channel mapping, alignment and units)."""
    n = int((FIRST + TRIAL * len(classes) + 2.0) * SFREQ)
    rng = np.random.default_rng(seed)
    data = rng.normal(0, 5e-6, (25, n))
    c3 = GDF_EEG_CHANNELS.index("EEG-C3")
    onsets, descriptions = [0.0, 2.0, 4.0, 6.0, FIRST - 0.5], ["32766", "276", "277", "1072", "32766"]
    for k, label in enumerate(classes):
        t0 = FIRST + TRIAL * k
        cue = t0 + 2.0
        onsets += [t0, cue]
        descriptions += ["768", str(768 + label) if session == "T" else "783"]
        if k in rejected:
            onsets.append(t0)
            descriptions.append("1023")
        i = np.arange(int(cue * SFREQ), int((cue + 4.0) * SFREQ))
        data[c3, i] += 40e-6 * np.sin(2 * np.pi * 10 * i / SFREQ)
    for onset, description in extra:
        onsets.append(onset)
        descriptions.append(description)
    info = mne.create_info(list(GDF_EEG_CHANNELS) + list(EOG_CHANNELS), SFREQ, "eeg")
    raw = mne.io.RawArray(data, info, verbose="error")
    raw.set_annotations(mne.Annotations(onsets, [0.0] * len(onsets), descriptions))
    return raw


def cue_times(classes=CLASSES) -> np.ndarray:
    return FIRST + TRIAL * np.arange(len(classes)) + 2.0


# ------------------------------------------------------------------------------------------------ parsing
def test_training_session_cues_labels_and_rejections():
    trials = parse_trials(make_session("T"))
    assert np.allclose(trials.onsets, cue_times())
    assert trials.labels.tolist() == [c - 1 for c in CLASSES]  # 769 left hand = 0 ... 772 tongue = 3
    assert trials.rejected.tolist() == [k in REJECTED_TRIALS for k in range(len(CLASSES))]
    assert trials.codes[:4] == ["769", "770", "771", "772"] and len(trials) == 8
    assert CLASS_NAMES == ("left hand", "right hand", "feet", "tongue")
    # the T true labels, when given, must agree
    assert parse_trials(make_session("T"), CLASSES).labels.tolist() == trials.labels.tolist()
    with pytest.raises(DataError, match=r"cue 2 at 20\.000 s is 770 \(right hand\) but the true labels say 1"):
        parse_trials(make_session("T"), [1, 1, 3, 4, 2, 1, 4, 3])


def test_evaluation_session_takes_the_true_labels():
    raw = make_session("E")
    trials = parse_trials(raw, np.asarray(CLASSES))
    assert trials.codes == ["783"] * 8 and trials.labels.tolist() == [c - 1 for c in CLASSES]
    assert trials.rejected.tolist() == [k in REJECTED_TRIALS for k in range(8)]
    with pytest.raises(DataError, match="cue 783 .*needs the true labels"):
        parse_trials(raw)
    with pytest.raises(DataError, match="7 labels for 8 cues"):
        parse_trials(raw, CLASSES[:7])
    with pytest.raises(DataError, match=r"true labels \[5\] are outside the classes 1\.\.4"):
        parse_trials(raw, CLASSES[:7] + [5])


def test_bad_annotations():
    with pytest.raises(DataError, match=r"unknown event code\(s\) \['999'\]"):
        parse_trials(make_session("T", extra=((1.0, "999"),)))
    raw = make_session("T")
    raw.set_annotations(mne.Annotations([1.0], [0.0], ["768"]))
    with pytest.raises(DataError, match="no cue events"):
        parse_trials(raw)
    # a 1023 on the cue itself also rejects that trial; MNE's BAD_ annotations are ignored
    raw = make_session("T", rejected=(), extra=((cue_times()[5], "1023"), (3.0, "BAD_segment")))
    assert np.flatnonzero(parse_trials(raw).rejected).tolist() == [5]


def test_true_labels_file(tmp_path):
    savemat(tmp_path / "A01E.mat", {"classlabel": np.asarray(CLASSES, dtype=np.uint8)[:, None]})
    assert read_true_labels(tmp_path / "A01E.mat").tolist() == CLASSES
    savemat(tmp_path / "bad.mat", {"labels": np.ones((8, 1))})
    with pytest.raises(DataError, match="missing variable 'classlabel'"):
        read_true_labels(tmp_path / "bad.mat")
    savemat(tmp_path / "range.mat", {"classlabel": np.array([[1], [0], [7]])})
    with pytest.raises(DataError, match=r"'classlabel' values \[0, 7\] are outside the classes 1\.\.4"):
        read_true_labels(tmp_path / "range.mat")


def test_channel_map_is_the_documented_montage():
    assert len(CHANNEL_MAP) == 22 and list(CHANNEL_MAP.values()) == list(POSITIONS)
    assert CHANNEL_MAP["EEG-Fz"] == "Fz" and CHANNEL_MAP["EEG-0"] == "FC3" and CHANNEL_MAP["EEG-C3"] == "C3"
    assert CHANNEL_MAP["EEG-6"] == "C1" and CHANNEL_MAP["EEG-11"] == "CPz" and CHANNEL_MAP["EEG-16"] == "POz"
    spec = get_modality("eeg")
    assert all(p.lower() in spec.channels for p in POSITIONS)


# ------------------------------------------------------------------------------------------------ DataModule
class InMemory2a(BCIIV2aDataModule):
    """Reads the sessions built here instead of GDF files (placeholder files mark which exist)."""

    sessions_by_name: dict[str, mne.io.BaseRaw] = {}

    def read_recording(self, path: Path):
        if path.name in self.sessions_by_name:
            return self.sessions_by_name[path.name]
        return super().read_recording(path)  # the real GDF reader


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bci2a")
    InMemory2a.sessions_by_name = {}
    for subject in (1, 2):
        for session in ("T", "E"):
            name = f"A0{subject}{session}.gdf"
            (root / name).write_bytes(b"")
            InMemory2a.sessions_by_name[name] = make_session(session, seed=subject)
    (root / "true_labels").mkdir()
    for subject in (1, 2):
        savemat(root / "true_labels" / f"A0{subject}E.mat", {"classlabel": np.asarray(CLASSES, np.uint8)[:, None]})
    return root


def test_datamodule_epochs_channels_units_and_labels(root):
    dm = InMemory2a(str(root), val_fraction=0.0, test_fraction=0.0, verbose=False)
    dm.setup()
    s = dm.summary
    assert s["recordings_loaded"] == 4 and s["skipped"] == {}
    assert s["rejected"] == {"trial marked rejected (1023)": 4}  # one per session
    assert sorted(s["dropped_channels"]) == sorted(EOG_CHANNELS)
    ds = dm.datasets["train"]
    assert len(ds) == 4 * 7 and set(ds.subjects.tolist()) == {1, 2}
    kept = [k for k in range(8) if k not in REJECTED_TRIALS]
    spec = get_modality("eeg")
    for ws in ds.sets:
        assert ws.signals.shape == (7, 22, 800)  # 4 s at 200 Hz
        assert ws.channels == [p.lower() for p in POSITIONS]
        assert ws.channel_ids.tolist() == [spec.channel_index(p.lower()) for p in POSITIONS]
        assert ws.labels.tolist() == [CLASSES[k] - 1 for k in kept]  # E sessions: from A0<k>E.mat
        assert ws.starts.tolist() == [int(round(t * 200)) for t in cue_times()[kept]]
        c3, c4 = ws.channels.index("c3"), ws.channels.index("c4")
        rms = np.sqrt((ws.signals[:, :, 100:700] ** 2).mean(axis=-1))  # uV
        assert np.all((rms[:, c3] > 25) & (rms[:, c3] < 35)) and np.all(rms[:, c4] < 8)
    assert sorted(dm.window_sessions("train")) == ["E"] * 14 + ["T"] * 14
    batch = next(iter(dm.train_dataloader()))
    assert batch["signal"].shape == (28, 22, 800) and set(batch) == {"signal", "channel_ids", "label", "subject"}
    assert dm.num_classes == 4


def test_options_offset_rejected_and_session_split(root):
    dm = InMemory2a(str(root), subjects=[1], sessions=["T"], cue_offset_seconds=-1.0, window_seconds=2.0,
                    drop_rejected=False, val_fraction=0.0, test_fraction=0.0, verbose=False)
    dm.setup()
    ws = dm.datasets["train"].sets[0]
    assert ws.signals.shape == (8, 22, 400) and ws.starts.tolist() == [int(round((t - 1) * 200)) for t in cue_times()]
    dm = InMemory2a(str(root), test_sessions=["E"], verbose=False)
    dm.setup()
    assert dm.splits == {"train": ["A01", "A02"], "val": [], "test": ["A01", "A02"]}
    assert set(dm.window_sessions("test")) == {"E"} and set(dm.window_sessions("train")) == {"T"}
    assert dm.summary["windows"] == {"train": 14, "val": 0, "test": 14}
    dm = InMemory2a(str(root), test_subjects=[2], val_fraction=0.0, verbose=False)
    dm.setup()
    assert dm.splits == {"train": ["A01"], "val": [], "test": ["A02"]}
    with pytest.raises(ConfigError, match="test_sessions is"):
        InMemory2a(str(root), sessions=["T"], test_sessions=["E"])
    with pytest.raises(ConfigError, match="cannot be combined"):
        InMemory2a(str(root), test_sessions=["E"], test_subjects=[1])
    with pytest.raises(ConfigError, match="subjects is"):
        InMemory2a(str(root), subjects=[10])


def test_missing_root_labels_and_damaged_files(root, tmp_path):
    with pytest.raises(DataError, match=rf"'{tmp_path / 'nowhere'}' does not exist: set data\.init_args\.root"):
        BCIIV2aDataModule(str(tmp_path / "nowhere"))
    with pytest.raises(DataError, match=r"labels_root .* is not a folder: set data\.init_args\.labels_root"):
        BCIIV2aDataModule(str(root), labels_root=str(tmp_path / "nowhere"))
    # E labels looked up in an empty labels_root: the E sessions are skipped, naming the labels file
    (tmp_path / "labels").mkdir()
    dm = InMemory2a(str(root), labels_root=str(tmp_path / "labels"), val_fraction=0.0, test_fraction=0.0,
                    verbose=False)
    with pytest.warns(RecordingSkippedWarning) as caught:
        dm.setup()
    messages = sorted(str(w.message) for w in caught)
    assert len(messages) == 2 and all("no true-labels file A0" in m and "E.gdf" in m for m in messages)
    assert len(dm.datasets["train"]) == 14
    with pytest.raises(DataError, match=r"A01E\.gdf: no true-labels file A01E\.mat .*strict=True"):
        InMemory2a(str(root), subjects=[1], labels_root=str(tmp_path / "labels"), strict=True, verbose=False).setup()
    # a labels file with classes outside 1..4; an unknown event code; a real (garbage) GDF; a missing subject
    broken = tmp_path / "broken"
    (broken / "true_labels").mkdir(parents=True)
    savemat(broken / "true_labels" / "A01E.mat", {"classlabel": np.full((8, 1), 9)})
    for name in ("A01E.gdf", "A01T.gdf", "A02T.gdf", "A03T.gdf"):
        (broken / name).write_bytes(b"0" * 64)
    good = InMemory2a.sessions_by_name["A01T.gdf"]
    InMemory2a.sessions_by_name["A01T.gdf"] = make_session("T", extra=((1.0, "555"),))
    try:
        dm = InMemory2a(str(broken), subjects=[1, 2, 3, 4], val_fraction=0.0, test_fraction=0.0, verbose=False)
        with pytest.warns(RecordingSkippedWarning):
            dm.setup()
    finally:
        InMemory2a.sessions_by_name["A01T.gdf"] = good
    reasons = {Path(k).name: v for k, v in dm.summary["skipped"].items()}
    assert dm.summary["recordings_loaded"] == 1 and len(dm.datasets["train"]) == 7  # A02T only
    assert "'classlabel' values [9] are outside the classes 1..4" in reasons["A01E.gdf"]
    assert "unknown event code(s) ['555']" in reasons["A01T.gdf"]
    assert all(reasons[f"A0{k}"] == "file not found" for k in ("2E.gdf", "3E.gdf", "4T.gdf", "4E.gdf"))
    assert sorted(reasons) == ["A01E.gdf", "A01T.gdf", "A02E.gdf", "A03E.gdf", "A03T.gdf", "A04E.gdf", "A04T.gdf"]
    assert reasons["A03T.gdf"].startswith("unreadable GDF file")  # the real GDF reader ran on the garbage


def test_the_session_split_builds_and_streams_a_window_cache(root, tmp_path):
    """No load() override any more: BCI IV 2a takes cache_dir, its session split and columns included."""
    from cache_checks import assert_cache_matches_memory

    memory = InMemory2a(str(root), test_sessions=["E"], verbose=False)
    memory.setup()
    cached = InMemory2a(str(root), test_sessions=["E"], verbose=False, cache_dir=str(tmp_path / "cache"))
    cached.prepare_data()
    cached.setup()
    assert_cache_matches_memory(memory, cached)
    assert cached.splits == {"train": ["A01", "A02"], "val": [], "test": ["A01", "A02"]}
