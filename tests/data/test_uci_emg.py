"""UCI "EMG data for gestures" on text files written here in the published layout (folders 01..36, files
<series>_raw_data_<time>_<date>.txt: a tab-separated header 'time channel1 ... channel8 class', then rows logged
about every millisecond with irregular steps, the Myo's 200-Hz values held over several rows and written as
device units x 1e-5 with 5 decimals, classes 0 (unmarked) and 1..7): the 200-Hz grid, windows inside class runs,
labels for 6 and 7 classes, channels, units, columns, the 24/6/6 subject split, malformed lines, the sampling-rate
check and the recipe."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from neurorvq.data.preprocess import DataError
from neurorvq.data.split_files import read_split_file
from neurorvq.data.windows import RecordingSkippedWarning
from neurorvq.datamodules.uci_emg import SPLIT, UCIEMGDataModule, class_runs, hold_on_grid, read_file
from neurorvq.errors import ConfigError

RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "benchmarks" / "emg_uci.yaml"
SPLIT_FILE = Path(__file__).resolve().parents[2] / "neurorvq" / "splits" / "uci_emg.json"
HEADER = "time\tchannel1\tchannel2\tchannel3\tchannel4\tchannel5\tchannel6\tchannel7\tchannel8\tclass"
SUBJECTS = (1, 25, 31)  # one per part of the default split
GESTURE_MS, PAUSE_MS = 1600, 500  # each class held 1.6 s (320 grid samples: 2 windows), unmarked pauses of 0.5 s
NAMES = {1: "1_raw_data_13-12_22.03.16.txt", 2: "2_raw_data_14-19_22.03.16.txt"}


def series_rows(classes: list[int], seed: int) -> np.ndarray:
    """``[N, 10]`` rows: time [ms] in steps of 1 ms (some 2-3 ms), the Myo's 200-Hz int values held between its
    updates (every 5 ms), class c adding a burst on channel ((c - 1) mod 8) + 1, an unmarked pause before each."""
    rng = np.random.default_rng(seed)
    labels_ms = np.concatenate([np.concatenate([np.zeros(PAUSE_MS), np.full(GESTURE_MS, c)]) for c in classes]
                               + [np.zeros(PAUSE_MS)])
    total = labels_ms.size
    myo = rng.normal(0, 3, (total // 5 + 1, 8))  # one value per 5 ms
    for i, c in enumerate(labels_ms[::5]):
        if c:
            myo[i, (int(c) - 1) % 8] += rng.normal(0, 30)
    myo = np.clip(np.round(myo), -128, 127)
    time = np.concatenate([[0], np.cumsum(rng.choice([1, 1, 1, 1, 2, 3], size=total))])  # ~every ms, irregular
    time = time[time < total] + 1
    rows = np.column_stack([time, myo[(time - 1) // 5] * 1e-5, labels_ms[time - 1]])
    return rows


def write_file(path: Path, rows: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savetxt(path, rows, fmt=["%d"] + ["%.5f"] * 8 + ["%d"], delimiter="\t", header=HEADER, comments="")
    return path


def write_uci_emg_layout(root: Path) -> Path:
    """Subjects 01, 25 and 31 (two series each; subject 01's first series also has class 7) in the published
    layout under ``root``; returns the dataset root."""
    for subject in SUBJECTS:
        for series in (1, 2):
            classes = list(range(1, 8 if (subject, series) == (1, 1) else 7))
            write_file(root / f"{subject:02d}" / NAMES[series], series_rows(classes, seed=subject * 10 + series))
    return root


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return write_uci_emg_layout(tmp_path_factory.mktemp("uci") / "EMG_data_for_gestures-master")


@pytest.fixture(scope="module")
def loaded(root) -> UCIEMGDataModule:
    dm = UCIEMGDataModule(str(root), verbose=False)
    dm.setup()
    return dm


# ------------------------------------------------------------------------------------------------ reading
def test_the_rows_are_held_on_a_200_hz_grid(root):
    path = root / "01" / NAMES[2]
    rows, dropped = read_file(path)
    assert rows.shape[1] == 10 and not dropped and rows[0, 0] == 1
    held = hold_on_grid(rows[:, 0])
    assert held.size == int((rows[-1, 0] - rows[0, 0]) // 5) + 1
    grid = rows[0, 0] + 5 * np.arange(held.size)
    assert np.all(rows[held, 0] <= grid) and np.all(held == np.searchsorted(rows[:, 0], grid, side="right") - 1)
    values = rows[held, 1:9] * 1e5
    assert np.allclose(values, np.round(values), atol=1e-6)  # the Myo's int device units
    assert class_runs(np.array([0, 0, 1, 1, 1, 0, 7])) == [(0, 2, 0), (2, 5, 1), (5, 6, 0), (6, 7, 7)]


# ------------------------------------------------------------------------------------------------ windows
def test_windows_inside_class_runs_with_labels_channels_units_and_columns(loaded):
    train = loaded.datasets["train"]
    per_run = (320 - 200) // 100 + 1  # 1-s windows every 0.5 s in a 1.6-s run (320 grid samples, +-1)
    assert len(train) == per_run * (7 + 6)  # subject 01: classes 1-7 in series 1, 1-6 in series 2
    assert train[0]["signal"].shape == (8, 200) and loaded.num_samples == 200
    assert loaded.channel_names_used() == [f"c{k}" for k in range(1, 9)] and loaded.spec.unit == "au"
    assert loaded.num_classes == 7 and loaded.label_names[0] == "hand at rest" and loaded.label_names[6] == \
        "extended palm"
    meta = loaded.window_metadata("train")
    assert np.array_equal(train.labels, meta["gesture"] - 1) and sorted(set(meta["series"])) == [1, 2]
    assert np.bincount(train.labels).tolist() == [4, 4, 4, 4, 4, 4, 2]
    assert set(loaded.summary["notes"]["max_gap_ms"].values()) == {3.0}  # the writer's longest step
    for ws in train.sets:  # the burst channel of each class; device units after filtering
        for label, signal in zip(ws.labels, ws.signals):
            rms = np.sqrt(np.mean(signal ** 2, axis=1))
            assert int(np.argmax(rms)) == label % 8 and 10.0 < rms.max() < 45.0 and np.median(rms) < 5.0


def test_six_classes_drop_the_extended_palm(root):
    dm = UCIEMGDataModule(str(root), subjects=[1], classes=6, verbose=False)
    dm.setup()
    assert dm.num_classes == 6 and len(dm.datasets["train"]) == 2 * 12
    assert sorted(set(dm.datasets["train"].labels.tolist())) == [0, 1, 2, 3, 4, 5]


# ------------------------------------------------------------------------------------------------ splits
def test_the_default_split_is_subjects_1_24_25_30_31_36(loaded):
    assert loaded.splits == {"train": ["01"], "val": ["25"], "test": ["31"]}
    assert set(loaded.datasets["val"].subjects.tolist()) == {25} and set(loaded.datasets["test"].subjects) == {31}
    assert len(loaded.datasets["val"]) == len(loaded.datasets["test"]) == 2 * 6 * 2


def test_the_shipped_split_file_holds_the_same_lists(root):
    split = read_split_file(SPLIT_FILE)
    assert split.by == "subject" and split.kind == "parts" and split.groups == SPLIT
    dm = UCIEMGDataModule(str(root), val_subjects=[31], test_subjects=[25], verbose=False)
    dm.resolve_plan()
    assert dm.splits == {"train": ["01"], "val": ["31"], "test": ["25"]}


# ------------------------------------------------------------------------------------------------ bad input
def test_a_malformed_line_names_the_file_and_line(tmp_path):
    path = write_file(tmp_path / "01" / NAMES[1], series_rows([1, 2], seed=3))
    good = path.read_text().splitlines()
    lines = list(good)
    lines[56] = "\t".join(lines[56].split("\t")[:9])  # line 57 lost its class
    path.write_text("\n".join(lines) + "\n")
    write_file(tmp_path / "01" / NAMES[2], series_rows([1, 2], seed=4))
    with pytest.raises(DataError, match=rf"{NAMES[1]}: line 57: 9 fields; expected 10 \(time, channel1..channel8, "
                                        r"class\).*malformed_lines=skip"):
        UCIEMGDataModule(str(tmp_path), strict=True, verbose=False).setup()
    dm = UCIEMGDataModule(str(tmp_path), verbose=False)
    with pytest.warns(RecordingSkippedWarning, match=rf"{NAMES[1]}: line 57: 9 fields"):
        dm.setup()
    assert dm.summary["recordings_loaded"] == 1
    dm = UCIEMGDataModule(str(tmp_path), malformed_lines="skip", verbose=False)
    dm.setup()
    assert dm.summary["recordings_loaded"] == 2 and dm.summary["notes"]["malformed_lines"] == {NAMES[1]: [57]}
    lines[56] = lines[56] + "\tabc"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"line 57: 'abc' is not a number"):
        read_file(path)
    lines = list(good)
    lines[56], lines[80] = lines[80], lines[56]  # line 58 is logged before line 57
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"line 58: time \d+ ms is earlier than the line before"):
        read_file(path)


def test_a_file_without_header_or_with_a_bad_class_is_refused(tmp_path):
    path = write_file(tmp_path / "x.txt", series_rows([1], seed=5))
    text = path.read_text().splitlines()
    path.write_text("\n".join(text[1:]) + "\n")
    with pytest.raises(DataError, match="line 1 holds numbers, not the header"):
        read_file(path)
    text[9] = "\t".join(text[9].split("\t")[:9] + ["9"])
    path.write_text("\n".join(text) + "\n")
    with pytest.raises(DataError, match=r"line 10: class 9 is not one of 0..7"):
        read_file(path)


def test_options_are_checked(root):
    for kwargs, message in [({"classes": 5}, "classes is 5"), ({"malformed_lines": "drop"}, "malformed_lines is"),
                            ({"scale": -1.0}, "scale is -1.0"), ({"stride_seconds": 0.003}, "stride_seconds is"),
                            ({"grid_rate": 500}, "grid_rate is 500")]:
        with pytest.raises(ConfigError, match=message):
            UCIEMGDataModule(str(root), verbose=False, **kwargs)
    with pytest.raises(DataError, match=r"no folder for subject\(s\) \[2\]"):
        UCIEMGDataModule(str(root), subjects=[2], verbose=False).setup()


# ------------------------------------------------------------------------------------------------ sampling rate
def test_the_emg_modality_needs_an_explicit_upsampling(root):
    with pytest.raises(DataError, match=r"UCI EMG data for gestures at 200 Hz with modality 'emg': recorded at 200 Hz, "
                                        r"far below the 'emg' rate of 1000 Hz.*allow_upsample=True"):
        UCIEMGDataModule(str(root), modality="emg", verbose=False)
    dm = UCIEMGDataModule(str(root), modality="emg", subjects=[31], verbose=False,
                          steps=[{"step": "Resample", "allow_upsample": True}, {"step": "Notch", "freqs": [50.0]},
                                 {"step": "BandPass", "low": 20.0, "high": 450.0}])
    dm.setup()
    signal = dm.datasets["test"][0]["signal"]
    assert signal.shape == (8, 1000) and dm.spec.unit == "uV" and len(dm.datasets["test"]) == 24


def test_the_1000_hz_grid_keeps_the_rows_as_logged(root):
    rows, _ = read_file(root / "31" / NAMES[1])
    dm = UCIEMGDataModule(str(root), modality="emg", grid_rate=1000, subjects=[31], steps=[], scale=1e5,
                          verbose=False)  # no Resample needed, no filter: the held rows themselves
    dm.setup()
    ws = dm.datasets["test"].sets[0]
    assert ws.signals.shape[1:] == (8, 1000) and len(dm.datasets["test"]) == 24
    held = hold_on_grid(rows[:, 0], 1000.0)
    start = int(ws.starts[0])
    assert np.allclose(ws.signals[0], rows[held[start:start + 1000], 1:9].T * 1e5, atol=1e-3)
    assert ws.labels[0] == rows[held[start], -1] - 1
    dm = UCIEMGDataModule(str(root), grid_rate=1000, subjects=[31], verbose=False)  # semg200: filtered, then down
    dm.setup()
    assert dm.datasets["test"][0]["signal"].shape == (8, 200) and len(dm.datasets["test"]) == 24
    with pytest.raises(DataError, match=r"at 1000 Hz but modality 'semg200' runs at 200 Hz and the steps hold no "
                                        r"Resample: add \{step: Resample\} to the steps"):
        UCIEMGDataModule(str(root), grid_rate=1000, steps=[{"step": "Notch", "freqs": [50.0]}], verbose=False)


# ------------------------------------------------------------------------------------------------ recipe
def test_the_recipe_matches_the_datamodule():
    config = yaml.safe_load(RECIPE.read_text())
    init, model = config["data"]["init_args"], config["model"]["init_args"]
    assert config["data"]["class_path"] == "neurorvq.datamodules.uci_emg.UCIEMGDataModule"
    assert init["root"] == "data/benchmarks/uci-emg" and init["modality"] == model["modality"] == "semg200"
    assert model["num_classes"] == init["classes"] == 7
    header = RECIPE.read_text().split("seed_everything")[0]
    assert "89.43" in header and "neurorvq benchmark --table emg --rows uci --model" in header
