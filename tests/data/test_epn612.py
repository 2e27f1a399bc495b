"""EMG-EPN-612 on user files written here with json.dump in the published layout (trainingJSON/userK/userK.json,
testingJSON/userK/userK.json; generalInfo, userInfo, synchronizationGesture, trainingSamples and testingSamples of
idx_K samples with emg ch1..ch8 int8 lists, gestureName, groundTruth and 1-based groundTruthIndex; the testing
users' testingSamples unlabelled): gesture-centred and sliding windows, labels, channels, units, columns, the
user-set split, the shipped split file, unlabelled samples, the sampling-rate check and the recipe."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import yaml

from neurorvq.data.preprocess import DataError
from neurorvq.data.split_files import read_split_file
from neurorvq.data.windows import RecordingSkippedWarning
from neurorvq.datamodules.epn612 import (CHANNELS, LABEL_NAMES, TESTING_ID_OFFSET, EPN612DataModule,
                                         gesture_centre)
from neurorvq.errors import ConfigError

RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "benchmarks" / "emg_epn612.yaml"
SPLIT_FILE = Path(__file__).resolve().parents[2] / "neurorvq" / "splits" / "epn612.json"
TRAINING_USERS, TESTING_USERS = (1, 2, 3), (1, 2)
LENGTHS = (992, 1000, 1010, 1050, 980, 1120)  # EMG values per sample (~5 s at 200 Hz), one per gesture below
GESTURES = ("noGesture", "waveIn", "waveOut", "pinch", "open", "fist")  # one sample of each per block
BURST = 30.0  # device units of the movement (noise elsewhere: 2)


def truth(k: int, n: int) -> tuple[int, int]:
    """1-based inclusive ``[first, last]`` of sample ``k``'s movement: 150-400 values long, placed anywhere (the
    last sample's one near the end, so its window must shift inside the sample)."""
    if k % 6 == 5:
        return n - 154, n - 5
    length = 150 + 50 * (k % 6)
    first = 100 + 97 * (k % 7)
    return first, first + length - 1


def sample(k: int, gesture: str, n: int, seed: int, labelled: bool = True) -> dict:
    """One sample as the dataset stores it: int8 lists per channel; a noise burst on channel (k mod 8) + 1 over
    the ground truth for a gesture; quaternion/gyro/accel as the Myo's 50-Hz streams."""
    rng = np.random.default_rng(seed)
    emg = rng.normal(0, 2, (8, n))
    entry: dict = {"startTime": 0}
    if gesture != "noGesture":
        first, last = truth(k, n)
        emg[k % 8, first - 1:last] += rng.normal(0, BURST, last - first + 1)
        if labelled:
            entry["groundTruth"] = [int(first <= i + 1 <= last) for i in range(n)]
            entry["groundTruthIndex"] = [first, last]
    emg = np.clip(np.round(emg), -128, 127).astype(int)
    entry["emg"] = {f"ch{c + 1}": emg[c].tolist() for c in range(8)}
    entry["pointGestureBegins"] = 0
    entry["quaternion"] = {a: [0.0] * (n // 4) for a in ("w", "x", "y", "z")}
    if labelled:
        entry["gestureName"] = gesture
    entry["myoDetection"] = [65535] * n
    return entry


def user_file(user_set: str, number: int) -> dict:
    seed = number * 100 + (50 if user_set == "testing" else 0)
    blocks = {}
    for b, block in enumerate(("trainingSamples", "testingSamples")):
        labelled = not (user_set == "testing" and block == "testingSamples")
        blocks[block] = {f"idx_{k + 1}": sample(k, g, LENGTHS[k], seed + 10 * b + k, labelled)
                         for k, g in enumerate(GESTURES)}
    return {"generalInfo": {"deviceModel": "Myo Armband", "samplingFrequencyInHertz": 200,
                            "recordingTimeInSeconds": 5, "repetitionsForSynchronizationGesture": 5},
            "userInfo": {"name": f"user{number}", "age": 22, "gender": "man", "handedness": "right",
                         "armPerimeterInCm": 25, "ethnicGroup": "mestizo"},
            "synchronizationGesture": {"samples": {"idx_1": sample(1, "waveOut", 500, seed + 99)}},
            **blocks}


def write_user(root: Path, user_set: str, number: int, content: dict | None = None) -> Path:
    path = root / f"{user_set}JSON" / f"user{number}" / f"user{number}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(user_file(user_set, number) if content is None else content, f)
    return path


def write_epn612_layout(root: Path) -> Path:
    """Three training and two testing users in the published layout under ``root``; returns the dataset root."""
    for number in TRAINING_USERS:
        write_user(root, "training", number)
    for number in TESTING_USERS:
        write_user(root, "testing", number)
    return root


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return write_epn612_layout(tmp_path_factory.mktemp("epn612") / "EMG-EPN612 Dataset")


@pytest.fixture(scope="module")
def loaded(root) -> EPN612DataModule:
    dm = EPN612DataModule(str(root), val_fraction=0.34, seed=1, verbose=False)
    dm.setup()
    return dm


# ------------------------------------------------------------------------------------------------ windows
def test_one_window_per_sample_with_labels_channels_and_units(loaded):
    train, test = loaded.datasets["train"], loaded.datasets["test"]
    assert len(loaded.datasets["val"]) == 12 and len(train) == 24  # 2 training users x 12 / 1 x 12
    assert len(test) == 12  # 2 testing users x their 6 labelled trainingSamples
    item = train[0]
    assert item["signal"].shape == (8, 400) and loaded.num_samples == 400
    assert loaded.channel_names_used() == list(CHANNELS) and loaded.spec.unit == "au"
    assert loaded.spec.sampling_rate == 200.0 and loaded.num_classes == 6
    assert loaded.label_names == ("noGesture", "waveIn", "waveOut", "pinch", "open", "fist")
    table = loaded.window_metadata("test")
    assert set(table["block"]) == {"trainingSamples"} and set(table["user_set"]) == {"testing"}
    assert test.labels.tolist() == [LABEL_NAMES.index(GESTURES[k - 1]) for k in table["sample"]]
    assert np.bincount(train.labels, minlength=6).tolist() == [4] * 6


def test_the_window_is_centred_on_the_ground_truth_movement(loaded):
    ws = next(s for s in loaded.datasets["test"].sets)  # testing-user1's samples, in order
    for start, k, signal in zip(ws.starts, ws.columns["sample"], ws.signals):
        n = LENGTHS[k - 1]
        if GESTURES[k - 1] == "noGesture":
            assert start == n // 2 - 200
            continue
        first, last = truth(k - 1, n)
        assert start == int(np.clip(round((first - 1 + last) / 2 - 200), 0, n - 400))
        inside = slice(max(first - 1 - start + 20, 0), min(last - start - 20, 400))  # away from the edges
        burst = np.sqrt(np.mean(signal[(k - 1) % 8, inside] ** 2))
        quiet = np.sqrt(np.mean(signal[((k - 1) % 8 + 4) % 8] ** 2))
        assert 10.0 < burst < 40.0 and quiet < 3.0  # device units, filtered (20-95 Hz keeps most of the noise)
    assert ws.starts[-1] == LENGTHS[-1] - 400  # the movement at the end: the window shifted inside the sample


def test_gesture_centre_reads_index_then_mask_then_middle():
    assert gesture_centre({"groundTruthIndex": [101, 300]}, 1000, "x") == 200.0
    assert gesture_centre({"groundTruth": [0] * 100 + [1] * 200 + [0] * 700}, 1000, "x") == 200.0
    assert gesture_centre({}, 990, "x") == 495.0
    with pytest.raises(DataError, match=r"x: groundTruthIndex \[0, 30\] is not \[first, last\]"):
        gesture_centre({"groundTruthIndex": [0, 30]}, 1000, "x")


def test_sliding_windows_cover_each_sample(root):
    dm = EPN612DataModule(str(root), user_sets=["testing"], align="sliding", window_seconds=1.0,
                          stride_seconds=1.0, verbose=False)
    dm.setup()
    windows = sum(n // 200 for n in LENGTHS) * len(TESTING_USERS)
    assert len(dm.datasets["test"]) == windows and dm.datasets["test"][0]["signal"].shape == (8, 200)
    starts = dm.datasets["test"].sets[0].starts
    assert starts[:5].tolist() == [0, 200, 400, 600, 0]  # sample 1 (992 values): 4 windows, then sample 2


# ------------------------------------------------------------------------------------------------ splits
def test_the_default_split_holds_out_the_testing_users(loaded):
    splits = loaded.splits
    assert splits["test"] == ["testing-user1", "testing-user2"]
    assert len(splits["val"]) == 1 and sorted(splits["train"] + splits["val"]) == [
        "training-user1", "training-user2", "training-user3"]
    assert sorted(set(loaded.datasets["test"].subjects.tolist())) == [TESTING_ID_OFFSET + 1, TESTING_ID_OFFSET + 2]
    train = loaded.window_metadata("train")
    assert set(train["block"]) == {"trainingSamples", "testingSamples"} and set(train["user_set"]) == {"training"}
    assert set(loaded.datasets["train"].subjects.tolist()) <= {1, 2, 3}


def test_the_shipped_split_file_is_the_published_user_split(root):
    split = read_split_file(SPLIT_FILE)
    assert split.by == "user_set" and split.groups == {"train": ["training"], "test": ["testing"]}
    dm = EPN612DataModule(str(root), split=str(SPLIT_FILE), verbose=False)
    plan = dm.resolve_plan()
    assert dm.splits["val"] == [] and len(dm.splits["train"]) == 3 and len(dm.splits["test"]) == 2
    assert plan.by == "user_set"


def test_val_and_test_subjects_replace_the_default_split(root):
    dm = EPN612DataModule(str(root), val_subjects=["training-user2"], test_subjects=[TESTING_ID_OFFSET + 1],
                          verbose=False)
    dm.resolve_plan()
    assert dm.splits["val"] == ["training-user2"] and dm.splits["test"] == ["testing-user1"]
    assert "testing-user2" in dm.splits["train"]


# ------------------------------------------------------------------------------------------------ bad input
def test_an_unlabelled_testing_sample_requested_for_testing_names_the_file_and_sample(root):
    dm = EPN612DataModule(str(root), user_sets=["testing"], testing_blocks=["trainingSamples", "testingSamples"],
                          strict=True, verbose=False)
    with pytest.raises(DataError, match=r"testingJSON/user1/user1\.json: testingSamples\.idx_1: no gestureName, so "
                                        r"no label \(the testing users' testingSamples are unlabelled"):
        dm.setup()
    dm = EPN612DataModule(str(root), testing_blocks=["testingSamples"], verbose=False)
    with pytest.warns(RecordingSkippedWarning, match=r"user\d\.json: testingSamples\.idx_1: no gestureName"):
        dm.setup()
    assert dm.summary["recordings_skipped"] == 2 and len(dm.datasets["test"]) == 0


def test_damaged_user_files_are_skipped_naming_the_problem(tmp_path):
    write_user(tmp_path, "training", 1)
    bad = user_file("training", 2)
    del bad["trainingSamples"]["idx_4"]["emg"]["ch5"]
    write_user(tmp_path, "training", 2, bad)
    bad = user_file("training", 3)
    bad["testingSamples"]["idx_2"]["gestureName"] = "thumbsUp"
    write_user(tmp_path, "training", 3, bad)
    truncated = write_user(tmp_path, "training", 4)
    truncated.write_text(truncated.read_text()[:5000])
    (tmp_path / "trainingJSON" / "user5").mkdir()  # a user folder without its file
    dm = EPN612DataModule(str(tmp_path), val_fraction=0.0, verbose=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dm.setup()
    skipped = dm.summary["skipped"]
    assert len(dm.datasets["train"]) == 12 and dm.summary["recordings_loaded"] == 1
    assert "trainingSamples.idx_4: emg lacks channel(s) ['ch5']" in skipped[
        str(tmp_path / "trainingJSON/user2/user2.json")]
    assert "testingSamples.idx_2: gestureName 'thumbsUp' is not one of" in skipped[
        str(tmp_path / "trainingJSON/user3/user3.json")]
    assert skipped[str(tmp_path / "trainingJSON/user4/user4.json")].startswith("not JSON (")
    assert skipped[str(tmp_path / "trainingJSON/user5/user5.json")] == "file not found"
    assert sum(issubclass(w.category, RecordingSkippedWarning) for w in caught) == 4


def test_a_short_or_dead_sample_gives_no_window_and_the_others_stay(tmp_path):
    content = user_file("training", 1)
    content["trainingSamples"]["idx_1"] = sample(0, "noGesture", 300, 0)
    content["testingSamples"]["idx_3"]["emg"]["ch2"] = [0] * LENGTHS[2]  # a flat channel in one sample
    write_user(tmp_path, "training", 1, content)
    dm = EPN612DataModule(str(tmp_path), val_fraction=0.0, verbose=False)
    dm.setup()
    assert len(dm.datasets["train"]) == 10 and dm.summary["rejected"] == {
        "sample shorter than one 2-s window": 1,
        "sample rejected (dead channel(s) over the whole recording (c2: flat (std <= 1e-6 au)); set "
        "data.init_args.dead_channels=drop to keep the other channels)": 1}


def test_options_are_checked(root):
    for kwargs, message in [({"align": "centre"}, "align is 'centre'"),
                            ({"user_sets": ["validation"]}, "user_sets is"),
                            ({"testing_blocks": ["samples"]}, "testing_blocks is"),
                            ({"scale": 0}, "scale is 0"),
                            ({"window_seconds": 1.1}, "not a whole number of 'semg200' patches")]:
        with pytest.raises(ConfigError, match=message):
            EPN612DataModule(str(root), verbose=False, **kwargs)


# ------------------------------------------------------------------------------------------------ sampling rate
def test_the_emg_modality_needs_an_explicit_upsampling(root):
    with pytest.raises(DataError, match=r"EMG-EPN-612 at 200 Hz with modality 'emg': recorded at 200 Hz, far below "
                                        r"the 'emg' rate of 1000 Hz: .*Resample\(allow_upsample=True\)"):
        EPN612DataModule(str(root), modality="emg", verbose=False)
    with pytest.raises(DataError, match=r"EMG-EPN-612 is at 200 Hz but modality 'emg' runs at 1000 Hz and the steps "
                                        r"hold no Resample: add \{step: Resample, allow_upsample: true\}"):
        EPN612DataModule(str(root), modality="emg", steps=[{"step": "IIRBandPass"}], verbose=False)
    dm = EPN612DataModule(str(root), modality="emg", user_sets=["testing"], verbose=False,
                          steps=[{"step": "IIRNotch"}, {"step": "IIRBandPass"},
                                 {"step": "Resample", "allow_upsample": True}])
    dm.setup()
    signal = dm.datasets["test"][0]["signal"]
    assert signal.shape == (8, 2000) and dm.spec.unit == "uV" and dm.num_samples == 2000  # 10 patches of 200
    assert 0.5 < float(signal.std()) < 10.0  # device units read as µV, not scaled by 1e6


# ------------------------------------------------------------------------------------------------ recipe
def test_the_recipe_matches_the_datamodule():
    config = yaml.safe_load(RECIPE.read_text())
    init, model = config["data"]["init_args"], config["model"]["init_args"]
    assert config["data"]["class_path"] == "neurorvq.datamodules.epn612.EPN612DataModule"
    assert init["root"] == "data/benchmarks/epn612" and init.get("modality", "semg200") == model["modality"]
    assert model["num_classes"] == len(LABEL_NAMES)
    header = RECIPE.read_text().split("seed_everything")[0]
    assert "94.65" in header and "neurorvq benchmark --table emg --rows epn612 --model" in header
