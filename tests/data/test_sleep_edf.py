"""Sleep-EDF: the real hypnogram of ../shared/data/sleep-edf parses; a PSG written here (the real file is not
in the sample: same channel names, 100 Hz, EDF via mne.export) paired with a cut of the real hypnogram gives
30-s epochs with the hypnogram's labels, the documented channel choice, wake trimming and the 6-class variant."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import mne
import numpy as np
import pytest

from neurorvq.data.preprocess import DataError
from neurorvq.data.windows import RecordingSkippedWarning
from neurorvq.datamodules.sleep_edf import (CLASS_NAMES, SleepEDFDataModule, hypnogram_epochs, night_of,
                                            trim_wake)
from neurorvq.errors import ConfigError

PSG_CHANNELS = ["EEG Fpz-Cz", "EEG Pz-Oz", "EOG horizontal", "Resp oro-nasal", "EMG submental", "Temp rectal",
                "Event marker"]
TMIN, TMAX = 30450.0, 31950.0  # 25 min of the real night: wake, sleep onset, N1, N2, N3/S3-S4, a wake epoch


@pytest.fixture(scope="module")
def hypnogram_file(data_dir) -> Path:
    path = data_dir / "sleep-edf" / "sleep-cassette" / "SC4001EC-Hypnogram.edf"
    if not path.exists():
        pytest.skip(f"Sleep-EDF hypnogram not found at {path}")
    return path


def _triples(annotations: mne.Annotations) -> list[tuple[float, float, str]]:
    return list(zip(annotations.onset, annotations.duration, annotations.description))


def test_the_real_hypnogram_parses(hypnogram_file):
    annotations = mne.read_annotations(hypnogram_file)
    assert len(annotations) == 154
    onsets, labels, dropped = hypnogram_epochs(_triples(annotations), classes=5)
    seconds = Counter()
    for onset, duration, description in _triples(annotations):
        seconds[description] += duration
    expected = {0: seconds["Sleep stage W"], 1: seconds["Sleep stage 1"], 2: seconds["Sleep stage 2"],
                3: seconds["Sleep stage 3"] + seconds["Sleep stage 4"], 4: seconds["Sleep stage R"]}
    assert Counter(labels.tolist()) == {k: int(v // 30) for k, v in expected.items()}
    assert dropped == {"unscored epoch (?)": int(seconds["Sleep stage ?"] // 30)}
    assert np.all(np.diff(onsets) > 0) and onsets[0] == 0.0 and labels[0] == 0
    six = hypnogram_epochs(_triples(annotations), classes=6)[1]
    assert Counter(six.tolist())[3] == seconds["Sleep stage 3"] // 30
    assert Counter(six.tolist())[4] == seconds["Sleep stage 4"] // 30 and Counter(six.tolist())[5] > 0
    with pytest.raises(DataError, match="unparsable hypnogram annotation 'Lights off'"):
        hypnogram_epochs([(0.0, 30.0, "Lights off")])
    with pytest.raises(DataError, match="not a whole number"):
        hypnogram_epochs([(0.0, 45.0, "Sleep stage W")])
    assert hypnogram_epochs([(0.0, 60.0, "Movement time")])[2] == {"movement time": 2}


def test_trim_wake_and_names():
    onsets = np.arange(10) * 30.0
    labels = np.array([0, 0, 0, 0, 2, 2, 0, 0, 0, 0])
    assert trim_wake(onsets, labels, 1.0).tolist() == [False, False, True, True, True, True, True, True, False, False]
    assert trim_wake(onsets, labels, None).all() and trim_wake(onsets, np.zeros(10, int), 1.0).all()
    assert night_of("SC4001E0-PSG.edf") == ("SC400", 0, 1) and night_of("SC4122E0-PSG.edf") == ("SC412", 12, 2)
    assert night_of("ST7011J0-PSG.edf") == ("ST701", 101, 1) and night_of("other.edf") is None


def _cut(annotations: mne.Annotations, tmin: float, tmax: float) -> mne.Annotations:
    """The annotations overlapping [tmin, tmax), clipped to it and shifted to start at 0."""
    onset, duration, description = [], [], []
    for o, d, desc in _triples(annotations):
        start, end = max(o, tmin), min(o + d, tmax)
        if end > start:
            onset.append(start - tmin)
            duration.append(end - start)
            description.append(desc)
    return mne.Annotations(onset, duration, description)


def _write_psg(path: Path, seconds: float, seed: int = 0) -> None:
    sfreq = 100.0
    rng = np.random.default_rng(seed)
    n = int(seconds * sfreq)
    t = np.arange(n) / sfreq
    data = rng.normal(0, 15e-6, (len(PSG_CHANNELS), n)) + 20e-6 * np.sin(2 * np.pi * 10 * t)  # ~20 uV EEG
    info = mne.create_info(PSG_CHANNELS, sfreq, ["eeg", "eeg", "eog", "misc", "emg", "misc", "misc"])
    mne.export.export_raw(path, mne.io.RawArray(data, info, verbose="error"), fmt="edf", overwrite=True,
                          verbose="error")


def _write_hypnogram(path: Path, annotations: mne.Annotations, seconds: float) -> None:
    info = mne.create_info(["Event marker"], 1.0, "misc")
    raw = mne.io.RawArray(np.zeros((1, int(seconds))) + np.arange(int(seconds)) * 1e-6, info, verbose="error")
    raw.set_annotations(annotations)
    mne.export.export_raw(path, raw, fmt="edf", overwrite=True, verbose="error")


@pytest.fixture(scope="module")
def night(hypnogram_file, tmp_path_factory) -> tuple[Path, mne.Annotations]:
    pytest.importorskip("edfio", reason="mne.export.export_raw writes EDF with edfio")
    root = tmp_path_factory.mktemp("sleep-edf")
    folder = root / "sleep-cassette"
    folder.mkdir()
    cut = _cut(mne.read_annotations(hypnogram_file), TMIN, TMAX)
    _write_psg(folder / "SC4001E0-PSG.edf", TMAX - TMIN)
    _write_hypnogram(folder / "SC4001EC-Hypnogram.edf", cut, TMAX - TMIN)
    _write_psg(folder / "SC4011E0-PSG.edf", 120.0, seed=1)  # its hypnogram is missing
    return root, cut


def test_epochs_take_the_hypnogram_labels(night):
    root, cut = night
    written = mne.read_annotations(root / "sleep-cassette" / "SC4001EC-Hypnogram.edf")
    assert list(written.description) == list(cut.description)  # the cut survived the EDF round trip
    dm = SleepEDFDataModule(str(root), val_fraction=0, test_fraction=0, verbose=False)
    with pytest.warns(RecordingSkippedWarning, match=r"SC4011E0-PSG\.edf: missing hypnogram"):
        dm.setup()
    ds = dm.datasets["train"]
    (ws,) = ds.sets
    _, expected, _ = hypnogram_epochs(_triples(cut), classes=5)
    assert len(expected) == 50 and set(expected.tolist()) == {0, 1, 2, 3}
    assert ws.signals.shape == (50, 2, 6000)  # 30 s at 200 Hz, after 100 -> 200 Hz upsampling
    assert ws.labels.tolist() == expected.tolist()
    assert ws.starts.tolist() == [k * 6000 for k in range(50)]
    assert ws.channels == ["fpz", "pz"]  # the documented choice for the bipolar derivations
    dropped = dm.summary["dropped_channels"]
    assert set(dropped) == set(PSG_CHANNELS[2:])
    assert 10 < float(ws.signals.std()) < 60  # uV
    assert dm.subject_names == ["SC400", "SC401"] and ws.subjects.tolist() == [0] * 50
    assert dm.summary["skipped"] == {str(root / "sleep-cassette" / "SC4011E0-PSG.edf"):
                                     "missing hypnogram: no SC4011*-Hypnogram.edf under " + str(root)}
    assert dm.label_names == CLASS_NAMES[5] and dm.num_classes == 5
    batch = next(iter(dm.train_dataloader()))
    assert batch["signal"].shape[1:] == (2, 6000) and set(batch) == {"signal", "channel_ids", "label", "subject"}
    with pytest.raises(DataError, match=r"SC4011E0-PSG\.edf: missing hypnogram"):
        SleepEDFDataModule(str(root), strict=True, verbose=False).setup()


def test_wake_trimming_six_classes_and_sub_windows(night):
    root, cut = night
    _, five, _ = hypnogram_epochs(_triples(cut), classes=5)
    first_sleep = int(np.flatnonzero(five != 0)[0])  # 6 wake epochs before sleep onset
    dm = SleepEDFDataModule(str(root), classes=6, trim_wake_minutes=1.0, window_seconds=10.0,
                            channel_map={"EEG Fpz-Cz": "fpz", "EEG Pz-Oz": "pz", "EOG horizontal": "eog"},
                            val_fraction=0, test_fraction=0, verbose=False)
    with pytest.warns(RecordingSkippedWarning):
        dm.setup()
    (ws,) = dm.datasets["train"].sets
    kept = 50 - (first_sleep - 2)  # 1 min = 2 wake epochs kept before the first sleep epoch
    assert dm.summary["rejected"]["wake trimmed"] == 3 * (first_sleep - 2)
    assert ws.signals.shape == (3 * kept, 3, 2000) and ws.channels == ["fpz", "pz", "eog"]
    _, six, _ = hypnogram_epochs(_triples(cut), classes=6)
    assert ws.labels.tolist() == np.repeat(six[first_sleep - 2:], 3).tolist()
    assert ws.starts[0] == (first_sleep - 2) * 6000 and ws.starts[1] - ws.starts[0] == 2000
    assert {3, 4} <= set(ws.labels.tolist())  # R&K stages 3 and 4 stay apart


def test_options_are_checked(tmp_path):
    with pytest.raises(ConfigError, match="classes"):
        SleepEDFDataModule(str(tmp_path), classes=4)
    with pytest.raises(ConfigError, match="divisor of 30"):
        SleepEDFDataModule(str(tmp_path), window_seconds=4.0)
    with pytest.raises(DataError, match=r"does not exist: set data\.init_args\.root"):
        SleepEDFDataModule(str(tmp_path / "sleep"))


def test_the_benchmark_sleep_row_keeps_sleep_cassette_six_classes_and_the_two_channel_reference(night, tmp_path):
    """recipes/benchmarks/sleep_sleep_edf.yaml's data section: only SC nights (an ST night beside them is ignored),
    R&K classes, and the CAR over the two derivations, which leaves one antisymmetric signal (fpz = -pz)."""
    import shutil

    import yaml

    root, cut = night
    mixed = tmp_path / "mixed"
    shutil.copytree(root / "sleep-cassette", mixed / "sleep-cassette")
    telemetry = mixed / "sleep-telemetry"
    telemetry.mkdir()
    _write_psg(telemetry / "ST7011J0-PSG.edf", 120.0, seed=2)
    _write_hypnogram(telemetry / "ST7011JP-Hypnogram.edf", mne.Annotations([0.0], [120.0], ["Sleep stage 2"]), 120.0)
    recipe = Path(__file__).resolve().parents[2] / "recipes" / "benchmarks" / "sleep_sleep_edf.yaml"
    init = dict(yaml.safe_load(recipe.read_text())["data"]["init_args"])
    init.update(root=str(mixed), verbose=False, val_fraction=0, test_fraction=0)
    dm = SleepEDFDataModule(**init)
    assert [i.subject for i in dm.find_recordings()] == ["SC400", "SC401"]
    with pytest.warns(RecordingSkippedWarning):  # SC4011's hypnogram is missing
        dm.setup()
    (ws,) = dm.datasets["train"].sets
    _, six, _ = hypnogram_epochs(_triples(cut), classes=6)
    assert ws.labels.tolist() == six.tolist() and dm.label_names == CLASS_NAMES[6]
    assert ws.signals.shape == (50, 2, 6000) and ws.channels == ["fpz", "pz"]
    np.testing.assert_allclose(ws.signals[:, 0], -ws.signals[:, 1], atol=1e-4)
    assert [i.subject for i in SleepEDFDataModule(str(mixed), study="ST", verbose=False).find_recordings()] == ["ST701"]
    with pytest.raises(ConfigError, match="study"):
        SleepEDFDataModule(str(mixed), study="XY")
