"""High-Gamma Dataset: small subjects written here as EDF+ with mne.export (edfio), in the GIN layout
(data/train/<k>.edf) and in MOABB's download folder, with the files' 133 channel labels ('EEG Fp1', ...,
'EOG EOGh', 'EMG EMG_RH', ...) at 500 Hz and cue annotations named as MOABB reads them (right_hand, left_hand,
rest, feet). Checks windows, labels, channels, CAR over the 78 EEG channels, units, columns, subject ids
against the shipped fold lists, the recipe, and the errors."""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

import mne
import numpy as np
import pytest
import yaml

from neurorvq.data.preprocess import DataError, Pipeline, steps_from_config
from neurorvq.data.recording import RecordingSkippedWarning
from neurorvq.data.split_files import read_split_file
from neurorvq.datamodules.high_gamma import (BENCHMARK_DROPPED, CLASS_NAMES, GIN_PATH, MOABB_FOLDER,
                                             NON_EEG_CHANNELS, PAST_THE_END, HighGammaDataModule, benchmark_steps,
                                             download)
from neurorvq.errors import ConfigError
from neurorvq.registry import get_modality

pytest.importorskip("edfio", reason="mne.export.export_raw writes EDF with edfio")

RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "benchmarks" / "motor_high_gamma.yaml"
SFREQ = 500.0
SECONDS = 20.0
EEG_CHANNELS = (  # the 128 EEG electrodes in file order (MOABB 1.7.2 Schirrmeister2017 metadata sensors)
    "Fp1", "Fp2", "Fpz", "F7", "F3", "Fz", "F4", "F8", "FC5", "FC1", "FC2", "FC6", "M1", "T7", "C3", "Cz", "C4", "T8",
    "M2", "CP5", "CP1", "CP2", "CP6", "P7", "P3", "Pz", "P4", "P8", "POz", "O1", "Oz", "O2", "AF7", "AF3", "AF4",
    "AF8", "F5", "F1", "F2", "F6", "FC3", "FCz", "FC4", "C5", "C1", "C2", "C6", "CP3", "CPz", "CP4", "P5", "P1", "P2",
    "P6", "PO5", "PO3", "PO4", "PO6", "FT7", "FT8", "TP7", "TP8", "PO7", "PO8", "FT9", "FT10", "TPP9h", "TPP10h",
    "PO9", "PO10", "P9", "P10", "AFF1", "AFz", "AFF2", "FFC5h", "FFC3h", "FFC4h", "FFC6h", "FCC5h", "FCC3h", "FCC4h",
    "FCC6h", "CCP5h", "CCP3h", "CCP4h", "CCP6h", "CPP5h", "CPP3h", "CPP4h", "CPP6h", "PPO1", "PPO2", "I1", "Iz", "I2",
    "AFp3h", "AFp4h", "AFF5h", "AFF6h", "FFT7h", "FFC1h", "FFC2h", "FFT8h", "FTT9h", "FTT7h", "FCC1h", "FCC2h",
    "FTT8h", "FTT10h", "TTP7h", "CCP1h", "CCP2h", "TTP8h", "TPP7h", "CPP1h", "CPP2h", "TPP8h", "PPO9h", "PPO5h",
    "PPO6h", "PPO10h", "POO9h", "POO3h", "POO4h", "POO10h", "OI1h", "OI2h")
# the files' labels: the 5 non-EEG channels follow O2
FILE_LABELS = ([f"EEG {c}" for c in EEG_CHANNELS[:32]] + ["EOG EOGh", "EOG EOGv", "EMG EMG_RH", "EMG EMG_LH",
               "EMG EMG_RF"] + [f"EEG {c}" for c in EEG_CHANNELS[32:]])
KEPT_78 = [c for c in EEG_CHANNELS if c not in BENCHMARK_DROPPED]
NOT_IN_VOCABULARY = ("M1", "M2", "PO5", "PO6", "FT9", "FT10", "TPP9h", "TPP10h", "FTT9h", "FTT10h", "TTP7h", "TPP8h")
VOCAB_66 = [c.lower() for c in KEPT_78 if c not in NOT_IN_VOCABULARY]  # benchmarks.md §3.1: the 12 left out

# test signals [uV]: a 10-Hz burst on C3 in every trial; whole-recording sines on M1 (kept for the CAR, then out of
# the vocabulary), on FFC5h (a dropped half position) and on EOGh (non-EEG): only M1's reaches the windows, as
# -1/78 of it on every channel
BURST_HZ, BURST_UV = 10.0, 40.0
M1_HZ, FFC5H_HZ, EOG_HZ, SINE_UV = 20.0, 30.0, 35.0, 780.0
NOISE_UV = 2.0

CUES = {  # (subject, run) -> [(onset s, annotation)]; S01's test file ends 3 s into its last trial
    (1, "train"): [(1.0, "rest"), (5.5, "left_hand"), (10.0, "right_hand"), (14.5, "feet")],
    (1, "test"): [(2.0, "feet"), (7.0, "right_hand"), (17.0, "left_hand")],
    (2, "train"): [(1.0, "right_hand"), (6.0, "feet"), (11.0, "rest"), (15.5, "left_hand")],
    (2, "test"): [(1.5, "left_hand"), (8.0, "rest")],
}
LABEL_OF = {"rest": 0, "left_hand": 1, "right_hand": 2, "feet": 3}
SMALL = ["EEG C3", "EEG C4", "EEG Cz", "EOG EOGh"]  # for the error cases: few channels, small files


# ------------------------------------------------------------------------------------------------ writers
def write_edf(path: Path, cues, seconds: float = SECONDS, seed: int = 0, labels=FILE_LABELS) -> Path:
    """An EDF+ file like the data set's: ``labels`` (default all 133; types from their prefixes) at 500 Hz, noise
    plus the test signals (in volts, as MNE takes them), one annotation per cue (4 s, cut at the end of the file)."""
    types = [label.split()[0].lower() for label in labels]
    n = int(seconds * SFREQ)
    t = np.arange(n) / SFREQ
    data = np.random.default_rng(seed).normal(0.0, NOISE_UV, (len(labels), n))
    index = {label: i for i, label in enumerate(labels)}
    for label, hz in (("EEG M1", M1_HZ), ("EEG FFC5h", FFC5H_HZ), ("EOG EOGh", EOG_HZ)):
        if label in index:
            data[index[label]] += SINE_UV * np.sin(2 * np.pi * hz * t)
    if "EEG C3" in index:
        for onset, _ in cues:
            i = np.arange(int(onset * SFREQ), min(n, int((onset + 4.0) * SFREQ)))
            data[index["EEG C3"], i] += BURST_UV * np.sin(2 * np.pi * BURST_HZ * t[i])
    raw = mne.io.RawArray(data * 1e-6, mne.create_info(list(labels), SFREQ, types), verbose="error")
    raw.set_annotations(mne.Annotations([o for o, _ in cues], [min(4.0, seconds - o) for o, _ in cues],
                                        [d for _, d in cues]))
    path.parent.mkdir(parents=True, exist_ok=True)
    mne.export.export_raw(str(path), raw, fmt="edf", overwrite=True, verbose="error")
    return path


def write_subject(data_folder: Path, subject: int, runs=("train", "test")) -> None:
    """Subject ``subject``'s files (cues of :data:`CUES`) as ``<data_folder>/<run>/<subject>.edf``."""
    for run in runs:
        cues = CUES.get((subject, run), CUES[(2, run)])  # subjects after 2 repeat S02's cues
        write_edf(data_folder / run / f"{subject}.edf", cues, seed=10 * subject + len(run))


def write_high_gamma_layout(root: Path) -> Path:
    """A two-subject High-Gamma folder in the GIN layout (``root/data/train/1.edf`` ... ``root/data/test/2.edf``,
    133 channels, 20 s each); returns ``root``, to pass as ``data.init_args.root``."""
    for subject in (1, 2):
        write_subject(root / "data", subject)
    return root


# ------------------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def gin_root(tmp_path_factory) -> Path:
    return write_high_gamma_layout(tmp_path_factory.mktemp("high_gamma") / "high-gamma-dataset")


@pytest.fixture(scope="module")
def dm(gin_root) -> HighGammaDataModule:
    module = HighGammaDataModule(str(gin_root), test_subjects=[2], val_fraction=0.0, batch_size=4, verbose=False)
    module.setup("fit")
    return module


def amplitude(x: np.ndarray, hz: float, start: int) -> float:
    """Amplitude [uV] of the ``sin(2 pi hz t)`` component of a 200-Hz window ``x`` starting at sample ``start``
    (``t`` from the recording's first sample, as the test sines; whole periods over 4 s)."""
    t = (start + np.arange(x.shape[-1])) / 200.0
    return float(2.0 / x.shape[-1] * np.dot(x, np.sin(2 * np.pi * hz * t)))


# ------------------------------------------------------------------------------------------------ tests
def test_channel_lists_match_the_benchmark():
    assert len(FILE_LABELS) == 133 and len(set(EEG_CHANNELS)) == 128
    assert len(BENCHMARK_DROPPED) == 50 and set(BENCHMARK_DROPPED) <= set(EEG_CHANNELS)
    assert NON_EEG_CHANNELS == ("EOGh", "EOGv", "EMG_RH", "EMG_LH", "EMG_RF")
    assert len(KEPT_78) == 78 and len(VOCAB_66) == 66
    vocabulary = set(get_modality("eeg").channels)
    assert [c for c in KEPT_78 if c.lower() not in vocabulary] == list(NOT_IN_VOCABULARY)


def test_windows_labels_channels_and_columns(dm, gin_root):
    assert dm.splits == {"train": ["S01"], "val": [], "test": ["S02"]}
    assert dm.subject_ids == {"S01": 1, "S02": 2} and dm.label_names == CLASS_NAMES and dm.num_classes == 4
    for split, subject in (("train", 1), ("test", 2)):
        sets = dm.datasets[split].sets
        assert [Path(ws.recording) for ws in sets] == [gin_root / "data" / run / f"{subject}.edf"
                                                       for run in ("test", "train")]
        for ws in sets:
            run = Path(ws.recording).parent.name
            cues = [c for c in CUES[(subject, run)] if c[0] + 4.0 <= SECONDS]
            assert ws.signals.shape == (len(cues), 66, 800) and ws.signals.dtype == np.float32
            assert ws.labels.tolist() == [LABEL_OF[d] for _, d in cues]
            assert ws.starts.tolist() == [round(o * 200) for o, _ in cues]  # 0-4 s after each cue
            assert ws.subjects.tolist() == [subject] * len(cues)
            assert ws.columns["run"].tolist() == [run] * len(cues)
            assert ws.channels == VOCAB_66  # file order, vocabulary names
            assert ws.channel_ids.tolist() == [get_modality("eeg").channel_index(c) for c in VOCAB_66]
    table = dm.window_table("train")
    assert sorted(table["run"].tolist()) == ["test"] * 2 + ["train"] * 4
    summary = dm.summary
    assert summary["rejected"] == {PAST_THE_END: 1}  # S01's last test cue, 3 s before the end of the file
    assert summary["windows"] == {"train": 6, "val": 0, "test": 6} and summary["recordings_loaded"] == 4
    dropped = set(summary["dropped_channels"])
    assert dropped == set(NON_EEG_CHANNELS) | set(BENCHMARK_DROPPED) | set(NOT_IN_VOCABULARY)
    batches = list(dm.train_dataloader())
    assert sum(len(b["label"]) for b in batches) == 6 and all(b["signal"].shape[1:] == (66, 800) for b in batches)
    assert set(batches[0]) == {"signal", "channel_ids", "label", "subject"}


def test_common_average_over_the_78_channels_in_uv(dm):
    c3 = VOCAB_66.index("c3")
    for split in ("train", "test"):
        for ws in dm.datasets[split].sets:
            for w, start in zip(ws.signals.astype(np.float64), ws.starts):
                mean = w.mean(axis=0)
                # M1 (kept for the CAR, not in the vocabulary): -780/78 = -10 uV on every channel
                assert amplitude(mean, M1_HZ, start) == pytest.approx(-SINE_UV / 78, abs=0.3)
                # a dropped half position and the EOG never reach the reference
                assert abs(amplitude(mean, FFC5H_HZ, start)) < 0.2 and abs(amplitude(mean, EOG_HZ, start)) < 0.2
                # C3's 40-uV burst over the whole window (aligned with the cue), less its 1/78 in the reference
                assert amplitude(w[c3], BURST_HZ, start) == pytest.approx(BURST_UV * 77 / 78, abs=1.5)


def test_moabb_download_folder_and_legacy_place(tmp_path):
    """Subject 3 as MOABB 1.7.2 keeps it: train in the legacy place, test where data_dl mirrors the GIN URL."""
    path = tmp_path / "mne_data"
    write_subject(path / MOABB_FOLDER, 3, runs=("train",))
    write_subject(path / MOABB_FOLDER / GIN_PATH, 3, runs=("test",))
    expected = [path / MOABB_FOLDER / "train" / "3.edf", path / MOABB_FOLDER / GIN_PATH / "test" / "3.edf"]
    for root in (path, path / MOABB_FOLDER):
        module = HighGammaDataModule(str(root), runs=["test", "train"], verbose=False)
        assert [i.path for i in module.find_recordings()] == expected  # train, then test
        module.resolve_plan()
        assert module.subject_ids == {"S03": 3}
    module.setup()
    ws = {ws.columns["run"][0]: ws for ws in module.datasets["train"].sets}
    assert ws["train"].labels.tolist() == [2, 3, 0, 1] and ws["test"].labels.tolist() == [1, 0]


def test_download_without_moabb_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "moabb", None)  # `import moabb` fails as when it is not installed
    monkeypatch.setitem(sys.modules, "moabb.datasets", None)
    with pytest.raises(ConfigError, match=r'needs MOABB: pip install "neurorvq\[benchmarks\]"'):
        download(tmp_path, [1])
    with pytest.raises(ConfigError, match=r"subjects \[15\] are not High-Gamma subjects"):
        download(tmp_path, [1, 15])


def test_download_finds_files_moabb_already_has(tmp_path, monkeypatch):
    """MOABB's data_path on files already there (no network): download returns the root the DataModule reads, and
    the two agree on the files."""
    moabb = pytest.importorskip("moabb.datasets")
    monkeypatch.setenv("MNE_DATASETS_SCHIRRMEISTER2017_PATH", str(tmp_path))  # MOABB must not write MNE's config
    write_subject(tmp_path / MOABB_FOLDER / GIN_PATH, 2)
    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*.edf")}
    assert download(tmp_path, [2]) == tmp_path
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*.edf")} == before
    paths = [Path(p) for p in moabb.Schirrmeister2017().data_path(2, path=str(tmp_path))]
    module = HighGammaDataModule(str(tmp_path), verbose=False)
    assert [i.path for i in module.find_recordings()] == paths  # train, then test


def test_subject_ids_match_the_shipped_fold_lists(tmp_path):
    """All 14 subjects (small copies of one file): the names and ids the DataModule gives match every entry of
    neurorvq/splits/hgd.json, and fold 0 holds out S01 and S13."""
    from neurorvq import splits

    source = write_edf(tmp_path / "one.edf", [(0.5, "rest")], seconds=5.0, labels=["EEG C3", "EEG C4"])
    for k in range(1, 15):
        for run in ("train", "test"):
            (tmp_path / "hgd" / "data" / run).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, tmp_path / "hgd" / "data" / run / f"{k}.edf")
    module = HighGammaDataModule(str(tmp_path / "hgd"), split={"file": str(splits.path("hgd")), "fold": "0"},
                                 verbose=False)
    module.resolve_plan()
    assert module.subject_names == [f"S{k:02d}" for k in range(1, 15)]
    matched = read_split_file(splits.path("hgd"), by="subject").match_all(module.subject_names,
                                                                          ids=module.subject_ids)
    assert sorted(v for values in matched.values() for v in values) == module.subject_names
    assert matched["0"] == ["S01", "S13"] and module.splits["test"] == ["S01", "S13"]


def test_options_are_checked(gin_root):
    with pytest.raises(ConfigError, match=r"subjects is \[0\]; give subject numbers 1\.\.14"):
        HighGammaDataModule(str(gin_root), subjects=[0])
    with pytest.raises(ConfigError, match=r"runs is \['val'\]; give a non-empty subset of \['train', 'test'\]"):
        HighGammaDataModule(str(gin_root), runs=["val"])


def test_a_root_in_another_layout_says_what_was_expected(tmp_path):
    flat = tmp_path / "flat"
    write_edf(flat / "1.edf", [(0.5, "rest")], seconds=5.0, labels=SMALL)
    expected = (r"not in a known layout: expected .*data/train/<k>\.edf.*e\.g\. "
                rf"'{re.escape(str(flat))}/data/train/1\.edf'.*found: \['1\.edf'\]")
    with pytest.raises(DataError, match=expected):
        HighGammaDataModule(str(flat), verbose=False).setup()


def test_a_listed_subject_without_files_is_skipped(gin_root):
    module = HighGammaDataModule(str(gin_root), subjects=[1, 5], runs=["train"], verbose=False)
    with pytest.warns(RecordingSkippedWarning, match=r"5\.edf: file not found"):
        module.setup()
    assert module.summary["skipped"] == {str(gin_root / "data" / "train" / "5.edf"): "file not found"}
    assert module.summary["recordings_loaded"] == 1


def test_labels_outside_the_declared_classes(tmp_path):
    bad = write_edf(tmp_path / "data" / "train" / "1.edf", [(0.5, "rest"), (2.0, "tongue")], seconds=8.0,
                    labels=SMALL)
    message = rf"{re.escape(str(bad))}: annotation 'tongue' at 2\.000 s .*labels outside the declared classes"
    with pytest.raises(DataError, match=message):
        HighGammaDataModule(str(tmp_path), runs=["train"], strict=True, verbose=False).setup()
    with pytest.warns(RecordingSkippedWarning, match=r"annotation 'tongue'"), \
            pytest.raises(DataError, match=r"none of the 1 High-Gamma recordings .* could be loaded"):
        HighGammaDataModule(str(tmp_path), runs=["train"], verbose=False).setup()


def test_trials_shorter_than_the_window(tmp_path):
    """Every cue less than 4 s before the end: a DataError (one that fits: the others are counted as rejected,
    see test_windows_labels_channels_and_columns)."""
    short = write_edf(tmp_path / "data" / "test" / "1.edf", [(5.0, "feet"), (6.0, "rest")], seconds=8.0,
                      labels=SMALL)
    message = rf"{re.escape(str(short))}: no trial fits: all 2 cues are less than 4 s before the end"
    with pytest.raises(DataError, match=message):
        HighGammaDataModule(str(tmp_path), runs=["test"], strict=True, verbose=False).setup()


def test_recipe_steps_are_the_default_pipeline(gin_root):
    config = yaml.safe_load(RECIPE.read_text())
    data = config["data"]
    assert data["class_path"] == "neurorvq.datamodules.high_gamma.HighGammaDataModule"
    assert data["init_args"]["steps"] == benchmark_steps()
    assert data["init_args"]["window_seconds"] == 4.0 and data["init_args"]["root"] == "data/benchmarks/high_gamma"
    default = HighGammaDataModule(str(gin_root), verbose=False).default_pipeline()
    assert Pipeline(default.spec, steps_from_config(data["init_args"]["steps"])).config() == default.config()
    assert config["model"]["init_args"]["num_classes"] == 4 and config["trainer"]["max_epochs"] == 20
