"""KU ERP speller (Lee2019): session files written with scipy.io.savemat in the published struct layout
(EEG_ERP_train / EEG_ERP_test with x in uV, t, y_dec, fs, chan, class, EMG ...), 62 EEG + 4 EMG channels at
1000 Hz, in GigaDB's session<s>/s<k>/ folders and in the folder MOABB downloads to (placed there by MOABB's own
download code, from a local copy). ``write_lee2019_erp_layout`` serves the recipe tests."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy.io import savemat

from neurorvq import splits
from neurorvq.data.preprocess import DataError, Pipeline, steps_from_config
from neurorvq.data.split_files import read_split_file
from neurorvq.data.windows import RecordingSkippedWarning
from neurorvq.datamodules.lee2019_erp import (BENCHMARK_STEPS, EEG_CHANNELS, MOABB_FOLDER, OUTSIDE_REASON,
                                              OUTSIDE_VOCABULARY, Lee2019ERPDataModule, download, read_runs)
from neurorvq.errors import ConfigError
from neurorvq.registry import get_modality

RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "benchmarks" / "erp_kuerp.yaml"
SFREQ = 1000
# the 62 EEG channels of benchmarks.md §3.2, in file order, and the 4 EMG channels
CHANNELS = ("Fp1 Fp2 F7 F3 Fz F4 F8 FC5 FC1 FC2 FC6 T7 C3 Cz C4 T8 TP9 CP5 CP1 CP2 CP6 TP10 P7 P3 Pz P4 P8 PO9 O1 Oz "
            "O2 PO10 FC3 FC4 C5 C1 C2 C6 CP3 CPz CP4 P1 P2 POz FT9 FTT9h TTP7h TP7 TPP9h FT10 FTT10h TPP8h TP8 TPP10h "
            "F9 F10 AF7 AF3 AF4 AF8 PO3 PO4").split()
EMG = ["EMG1", "EMG2", "EMG3", "EMG4"]
NOT_IN_VOCABULARY = ["FT9", "FT10", "FTT9h", "FTT10h", "TPP8h", "TPP9h", "TPP10h", "TTP7h"]  # benchmarks.md §3.2
SECONDS = 12.0
FLASHES = 30  # flashes well inside the run (every 6th a target: 1:5), plus one at each edge of the run
FT9_UV = 31.0  # a 10-Hz sine on FT9 only: a CAR over the 62 channels moves -31/62 = -0.5 uV of it onto every other
ERP_UV = 20.0  # a bump on Pz 0.3 s after every target flash


def flash_onsets(n: int, flashes: int = FLASHES) -> tuple[np.ndarray, np.ndarray]:
    """``(t, y_dec)``: an edge flash 0.1 s after the start (its window starts before the run), ``flashes`` every
    0.3 s from 0.5 s (every 6th a target: y_dec 1, else 2), an edge flash 0.3 s before the end (its window ends
    after the run)."""
    inner = 500 + 300 * np.arange(flashes)
    t = np.concatenate([[100], inner, [n - 300]])
    y = np.concatenate([[2], np.where(np.arange(flashes) % 6 == 0, 1, 2), [2]])
    return t.astype(np.float64), y.astype(np.float64)


def make_run(seconds: float = SECONDS, flashes: int = FLASHES, seed: int = 0, y_dec: np.ndarray | None = None) -> dict:
    """One run struct as the published files hold it: x time x 62 in uV (1 uV noise, a 1000-uV offset and a 3-Hz
    common mode on every channel, a 10-Hz sine on FT9, the ERP on Pz), t, y_dec, y_logic, y_class, class, fs,
    chan, EMG and EMG_index."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SFREQ)
    time = np.arange(n) / SFREQ
    t, y = flash_onsets(n, flashes)
    if y_dec is not None:
        y = np.asarray(y_dec, dtype=np.float64)
    x = rng.normal(0.0, 1.0, (n, len(CHANNELS))) + 1000.0 + 50.0 * np.sin(2 * np.pi * 3.0 * time)[:, None]
    x[:, CHANNELS.index("FT9")] += FT9_UV * np.sin(2 * np.pi * 10.0 * time)
    for onset in t[y == 1]:
        x[:, CHANNELS.index("Pz")] += ERP_UV * np.exp(-0.5 * ((time - onset / SFREQ - 0.3) / 0.03) ** 2)
    classes = np.empty((2, 2), dtype=object)
    classes[:] = [[1.0, "target"], [2.0, "nontarget"]]
    return {
        "x": x.astype(np.float32), "t": t[None, :], "fs": float(SFREQ), "y_dec": y[None, :],
        "y_logic": np.stack([y == 1, y == 2]).astype(np.uint8),
        "y_class": np.array(["target" if v == 1 else "nontarget" for v in y], dtype=object)[None, :],
        "class": classes, "chan": np.array(CHANNELS, dtype=object)[None, :],
        "EMG": rng.normal(0.0, 10.0, (n, 4)).astype(np.float32), "EMG_index": np.array(EMG, dtype=object)[None, :],
    }


def write_session(path: Path, seed: int = 0, seconds: float = SECONDS, flashes: int = FLASHES,
                  structs: tuple[str, ...] = ("EEG_ERP_train", "EEG_ERP_test"), **run) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    savemat(path, {name: make_run(seconds, flashes, seed + k, **run) for k, name in enumerate(structs)})
    return path


def gigadb_path(root: Path, session: int, subject: int) -> Path:
    return root / f"session{session}" / f"s{subject}" / f"sess{session:02d}_subj{subject:02d}_EEG_ERP.mat"


def write_gigadb(root: Path, subjects=(1, 3), sessions=(1, 2), **options) -> Path:
    for subject in subjects:
        for session in sessions:
            write_session(gigadb_path(root, session, subject), seed=10 * subject + session, **options)
    return root


def write_lee2019_erp_layout(root: Path) -> Path:
    """A small GigaDB folder for the recipe tests: subjects 1 and 3, both sessions, train and test runs of 6 s
    with 12 flashes each; returns ``root`` (for ``data.init_args.root``)."""
    return write_gigadb(Path(root), seconds=6.0, flashes=12)


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return write_gigadb(tmp_path_factory.mktemp("kuerp") / "dataset")


@pytest.fixture(scope="module")
def loaded(root) -> Lee2019ERPDataModule:
    dm = Lee2019ERPDataModule(str(root), val_fraction=0.0, test_fraction=0.0, verbose=False)
    dm.setup()
    return dm


# ------------------------------------------------------------------------------------------------ windows
def test_windows_labels_channels_and_units(loaded):
    ds = loaded.datasets["train"]
    spec = get_modality("eeg")
    kept = sorted(set(CHANNELS) - set(NOT_IN_VOCABULARY), key=CHANNELS.index)
    assert len(ds) == 2 * 2 * 2 * FLASHES and set(ds.subjects.tolist()) == {1, 3}
    _, y = flash_onsets(int(SECONDS * SFREQ))
    for ws in ds.sets:
        assert ws.signals.shape == (FLASHES, 54, 200) and ws.signals.dtype == np.float32  # -0.2..0.8 s at 200 Hz
        assert ws.channels == [c.lower() for c in kept]
        assert ws.channel_ids.tolist() == [spec.channel_index(c.lower()) for c in kept]
        assert ws.labels.tolist() == [1 if v == 1 else 0 for v in y[1:-1]]  # y_dec 1 target -> 1, 2 -> 0
        assert ws.starts.tolist() == [int(np.rint(t / 5)) - 40 for t in 500 + 300 * np.arange(FLASHES)]
    signals, labels = np.concatenate([ws.signals for ws in ds.sets]), ds.labels
    assert (labels == 1).sum() * 5 == (labels == 0).sum()  # 1:5
    pz = ds.sets[0].channels.index("pz")
    target, other = signals[labels == 1, pz].mean(axis=0), signals[labels == 0, pz].mean(axis=0)
    assert 99 <= int(np.argmax(target)) <= 101 and target[100] > 12.0  # 0.3 s after the flash: 40 + 60 samples, uV
    assert abs(other[100]) < 3.0
    cz = ds.sets[0].channels.index("cz")
    # in uV: 1-uV white noise kept below 45 of 500 Hz (0.3 uV) and FT9's -0.5-uV sine; the offset and common mode
    # (1000 and 50 uV) are gone
    assert 0.35 < signals[:, cz].std() < 0.6
    assert loaded.label_names == ("non-target", "target") and loaded.num_classes == 2
    batch = next(iter(loaded.train_dataloader()))
    assert batch["signal"].shape[1:] == (54, 200) and set(batch) == {"signal", "channel_ids", "label", "subject"}


def test_common_average_reference_is_over_the_62_eeg_channels(loaded):
    """FT9 (dropped after the CAR) carries a 10-Hz sine: referenced over 62 channels, every kept channel holds
    -1/62 of it (-0.5 uV), so the mean over the 54 kept channels is that sine; a CAR over the 54 would make it 0."""
    assert sorted(loaded.summary["dropped_channels"]) == sorted(NOT_IN_VOCABULARY) == sorted(OUTSIDE_VOCABULARY)
    for ws in loaded.datasets["train"].sets:
        mean = ws.signals.mean(axis=1).astype(np.float64)  # [W, 200]
        sine = np.sin(2 * np.pi * 10.0 * (ws.starts[:, None] + np.arange(200)) / 200.0)
        amplitude = (mean * sine).sum(axis=1) / (sine * sine).sum(axis=1)
        assert np.all(np.abs(amplitude + FT9_UV / 62) < 0.1), amplitude


def test_columns_sessions_runs_and_flash_counts(loaded):
    table = loaded.window_table("train")
    assert {"session", "run", "subject", "label", "start"} <= set(table)
    pairs = list(zip(table["subject"].tolist(), table["session"].tolist(), table["run"].tolist()))
    assert sorted(set(pairs)) == [(k, s, r) for k in (1, 3) for s in (1, 2) for r in ("test", "train")]
    assert all(pairs.count(p) == FLASHES for p in set(pairs))
    notes = loaded.summary["notes"]["flashes"]
    assert notes["sess01_subj01_EEG_ERP.mat train"] == {"target": 5, "non-target": 27}  # as read, edges included
    assert len(notes) == 8


def test_trials_shorter_than_the_window_are_rejected_by_name(loaded, tmp_path):
    """The flash 0.1 s after a run's start and the one 0.3 s before its end have no full -0.2..0.8 s window."""
    assert loaded.summary["rejected"] == {OUTSIDE_REASON: 2 * 8}
    assert loaded.summary["windows_kept"] == 8 * FLASHES
    # a run shorter than the window: no flash has one, and the file has no usable window
    write_session(gigadb_path(tmp_path, 1, 5), seconds=0.9, flashes=0, structs=("EEG_ERP_train",))
    dm = Lee2019ERPDataModule(str(tmp_path), sessions=[1], runs=["train"], val_fraction=0.0, test_fraction=0.0,
                              verbose=False)
    with pytest.raises(DataError, match=r"no usable window \(0 windows kept; rejected: flash window outside its run"):
        with pytest.warns(RecordingSkippedWarning, match="sess01_subj05_EEG_ERP.mat: no usable window"):
            dm.setup()


def test_the_default_pipeline_is_the_benchmarks(loaded, root):
    config = loaded.make_pipeline().config()
    assert [s["step"] for s in config["steps"]] == ["Resample", "BandPass", "CommonAverageReference",
                                                    "PickChannels"]
    assert config["steps"][1]["low"] == 0.5 and config["steps"][1]["high"] == 45.0
    assert config == Pipeline(get_modality("eeg"), steps_from_config(BENCHMARK_STEPS)).config()
    assert tuple(EEG_CHANNELS) == tuple(CHANNELS)


def test_options_select_subjects_sessions_and_runs(root):
    dm = Lee2019ERPDataModule(str(root), subjects=[3], sessions=[2], runs=["test"], val_fraction=0.0,
                              test_fraction=0.0, verbose=False)
    dm.setup()
    table = dm.window_table("train")
    assert set(table["subject"].tolist()) == {3} and set(table["session"].tolist()) == {2}
    assert set(table["run"].tolist()) == {"test"} and len(table["run"]) == FLASHES
    dm = Lee2019ERPDataModule(str(root), split={"by": "run", "test": ["test"], "val": []}, verbose=False)
    dm.setup()
    assert set(dm.window_table("test")["run"].tolist()) == {"test"}
    assert set(dm.window_table("train")["run"].tolist()) == {"train"}
    for bad, message in (({"subjects": [55]}, "subjects is"), ({"sessions": [3]}, "sessions is"),
                         ({"runs": ["online"]}, "runs is"), ({"stride_seconds": 0.5}, "stride_seconds")):
        with pytest.raises(ConfigError, match=message):
            Lee2019ERPDataModule(str(root), **bad)
    dm = Lee2019ERPDataModule(str(root), steps=[{"step": "Resample"}, {"step": "CommonAverageReference"}])
    with pytest.raises(ConfigError, match="need a PickChannels step"):
        dm.setup()


def test_the_run_split_builds_and_streams_a_window_cache(tmp_path):
    """The per-window ``run`` column routes windows through the on-disk cache as in memory."""
    from cache_checks import assert_cache_matches_memory

    root = write_lee2019_erp_layout(tmp_path / "kuerp")
    split = {"by": "run", "test": ["test"], "val": []}
    memory = Lee2019ERPDataModule(str(root), split=split, verbose=False)
    memory.setup()
    cached = Lee2019ERPDataModule(str(root), split=split, verbose=False, cache_dir=str(tmp_path / "cache"))
    cached.prepare_data()
    cached.setup()
    assert_cache_matches_memory(memory, cached)
    assert cached.summary["windows"] == {"train": 2 * 2 * 12, "val": 0, "test": 2 * 2 * 12}


# ------------------------------------------------------------------------------------------------ subjects
def test_subject_ids_match_the_benchmark_split_file(tmp_path):
    """All 54 subjects (links to one real file; resolving the split reads none): the shipped 10-fold lists
    resolve to the DataModule's subject names through its ids, and a fold of the file holds those subjects out."""
    one = write_session(tmp_path / "one.mat", seconds=2.0, flashes=2)
    root = tmp_path / "all"
    for subject in range(1, 55):
        for session in (1, 2):
            target = gigadb_path(root, session, subject)
            target.parent.mkdir(parents=True)
            try:
                os.link(one, target)
            except OSError:
                shutil.copy(one, target)
    dm = Lee2019ERPDataModule(str(root), verbose=False)
    dm.resolve_plan()
    assert dm.subject_names == [f"S{k:02d}" for k in range(1, 55)]
    assert dm.subject_ids == {f"S{k:02d}": k for k in range(1, 55)}
    kuerp = read_split_file(splits.path("kuerp"), by="subject")
    matched = kuerp.match_all(dm.subject_names, ids=dm.subject_ids)
    assert matched["0"] == ["S15", "S16", "S19", "S27", "S03", "S49"]  # the benchmark's "15", "16", ... "3", "49"
    assert sorted(s for fold in matched.values() for s in fold) == dm.subject_names
    for fold, subjects in kuerp.groups.items():
        assert [dm.subject_ids[name] for name in matched[fold]] == subjects  # ids line up
    dm = Lee2019ERPDataModule(str(root), split={"file": str(splits.path("kuerp")), "fold": "6"}, val_fraction=0.0,
                              verbose=False)
    dm.resolve_plan()
    assert dm.splits["test"] == ["S01", "S11", "S17", "S20", "S28"] and len(dm.splits["train"]) == 49


def test_moabb_download_folder(tmp_path, monkeypatch):
    """download() places the files where MOABB puts them (from a local store standing in for GigaDB, nothing is
    fetched), and the DataModule reads that folder given the path handed to MOABB."""
    moabb_download = pytest.importorskip("moabb.datasets.download")
    if not hasattr(moabb_download, "active_sourcedata_store"):
        pytest.skip("this MOABB has no local source store to fill a download from")
    store = write_gigadb(tmp_path / "gigadb", subjects=(2,), sessions=(1, 2), seconds=6.0, flashes=12)
    monkeypatch.setenv("MNE_DATA", str(tmp_path / "mne_data"))  # MOABB would otherwise configure ~/mne_data
    with moabb_download.active_sourcedata_store(store):
        folder = download(tmp_path / "moabb", subjects=[2])
    assert folder == tmp_path / "moabb" / MOABB_FOLDER
    assert (folder / "session2" / "s2" / "sess02_subj02_EEG_ERP.mat").is_file()
    for given in (tmp_path / "moabb", tmp_path / "moabb" / "MNE-lee2019-erp-data", folder):
        dm = Lee2019ERPDataModule(str(given), val_fraction=0.0, test_fraction=0.0, verbose=False)
        assert dm.root == folder
    dm.setup()
    assert len(dm.datasets["train"]) == 2 * 2 * 12 and set(dm.datasets["train"].subjects.tolist()) == {2}


def test_moabb_layout_written_directly(tmp_path):
    write_gigadb(tmp_path / MOABB_FOLDER, subjects=(4,), sessions=(1,), seconds=6.0, flashes=12)
    dm = Lee2019ERPDataModule(str(tmp_path), sessions=[1], val_fraction=0.0, test_fraction=0.0, verbose=False)
    dm.setup()
    assert dm.subject_ids == {"S04": 4} and len(dm.datasets["train"]) == 2 * 12


# ------------------------------------------------------------------------------------------------ errors
def test_download_without_moabb_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "moabb", None)
    monkeypatch.setitem(sys.modules, "moabb.datasets", None)
    with pytest.raises(ConfigError, match=r'needs MOABB: pip install "neurorvq\[benchmarks\]"'):
        download(tmp_path, subjects=[1])
    with pytest.raises(ConfigError, match="subjects is"):
        download(tmp_path, subjects=[0])


def test_a_root_in_another_layout_says_what_is_expected(tmp_path):
    flat = tmp_path / "flat"
    write_session(flat / "sess01_subj01_EEG_ERP.mat", seconds=2.0, flashes=2)
    with pytest.raises(DataError, match=r"is not in the published layout: expected session1/ and session2/ folders "
                                        r"as on GigaDB, e\.g\. '.*flat/session1/s1/sess01_subj01_EEG_ERP\.mat'.*"
                                        r"MNE-lee2019-erp-data/gigadb-datasets/.*found sess01_subj01_EEG_ERP\.mat "
                                        r"\(the \.mat files must sit in their session<s>/s<k>/ folders\)"):
        Lee2019ERPDataModule(str(flat))
    with pytest.raises(DataError, match="does not exist"):
        Lee2019ERPDataModule(str(tmp_path / "nowhere"))
    (tmp_path / "empty" / "session1").mkdir(parents=True)
    with pytest.raises(DataError, match=r"no KU ERP \(Lee2019\) recordings found under .*: set data\.init_args\.root "
                                        r"to the folder holding the GigaDB folders session1/ and session2/"):
        Lee2019ERPDataModule(str(tmp_path / "empty"), verbose=False).setup()


def test_labels_outside_the_declared_classes(tmp_path):
    _, y = flash_onsets(int(4.0 * SFREQ), 6)
    y[3] = 3
    path = write_session(gigadb_path(tmp_path, 1, 1), seconds=4.0, flashes=6, y_dec=y)
    with pytest.raises(DataError, match=r"sess01_subj01_EEG_ERP\.mat: EEG_ERP_train\.y_dec holds \[3\.0\] \(first at "
                                        r"flash 4 of 8\): labels outside the declared classes 1 \(target\) and 2"):
        read_runs(path)
    write_session(gigadb_path(tmp_path, 1, 2), seconds=4.0, flashes=6)
    dm = Lee2019ERPDataModule(str(tmp_path), sessions=[1], val_fraction=0.0, test_fraction=0.0, verbose=False)
    with pytest.warns(RecordingSkippedWarning, match="labels outside the declared classes"):
        dm.setup()
    assert list(dm.summary["skipped"]) == [str(path)] and dm.subject_ids == {"S01": 1, "S02": 2}
    with pytest.raises(DataError, match=r"subj01_EEG_ERP\.mat: .*y_dec holds \[3\.0\].*strict=True"):
        Lee2019ERPDataModule(str(tmp_path), subjects=[1], sessions=[1], strict=True, verbose=False).setup()


def test_damaged_files_missing_structs_and_fields(tmp_path):
    only_train = write_session(gigadb_path(tmp_path, 1, 1), seconds=4.0, flashes=6, structs=("EEG_ERP_train",))
    with pytest.raises(DataError, match=r"no struct 'EEG_ERP_test' \(the test run\).*set data\.init_args\.runs"):
        read_runs(only_train)
    assert list(read_runs(only_train, ["train"])) == ["train"]
    run = make_run(4.0, 6)
    del run["y_dec"]
    savemat(tmp_path / "nofield.mat", {"EEG_ERP_train": run, "EEG_ERP_test": make_run(4.0, 6)})
    with pytest.raises(DataError, match=r"EEG_ERP_train has no field 'y_dec'"):
        read_runs(tmp_path / "nofield.mat")
    run = make_run(4.0, 6)
    run["class"][:, 1] = ["nontarget", "target"]
    savemat(tmp_path / "swapped.mat", {"EEG_ERP_train": run, "EEG_ERP_test": make_run(4.0, 6)})
    with pytest.raises(DataError, match=r"EEG_ERP_train\.class declares \{1: 'nontarget', 2: 'target'\}"):
        read_runs(tmp_path / "swapped.mat")
    run = make_run(4.0, 6)
    run["x"] = run["x"][:, :61]
    savemat(tmp_path / "columns.mat", {"EEG_ERP_train": run, "EEG_ERP_test": make_run(4.0, 6)})
    with pytest.raises(DataError, match=r"EEG_ERP_train\.x has shape \(4000, 61\).*time x 62 channels"):
        read_runs(tmp_path / "columns.mat")
    garbage = gigadb_path(tmp_path, 2, 1)
    garbage.parent.mkdir(parents=True)
    garbage.write_bytes(b"not a MATLAB file" * 10)
    dm = Lee2019ERPDataModule(str(tmp_path), runs=["train"], subjects=[1, 2], val_fraction=0.0, test_fraction=0.0,
                              verbose=False)
    with pytest.warns(RecordingSkippedWarning):
        dm.setup()
    reasons = {Path(k).name: v for k, v in dm.summary["skipped"].items()}
    assert reasons["sess02_subj01_EEG_ERP.mat"].startswith("unreadable .mat file")
    assert reasons["sess01_subj02_EEG_ERP.mat"] == reasons["sess02_subj02_EEG_ERP.mat"] == "file not found"
    assert dm.summary["recordings_loaded"] == 1


# ------------------------------------------------------------------------------------------------ recipe
def test_recipe_steps_are_the_default_pipeline(root):
    config = yaml.safe_load(RECIPE.read_text())
    data = config["data"]
    assert data["class_path"] == "neurorvq.datamodules.lee2019_erp.Lee2019ERPDataModule"
    assert data["init_args"]["window_seconds"] == 1.0 and config["model"]["init_args"]["num_classes"] == 2
    dm = Lee2019ERPDataModule(str(root), verbose=False)
    recipe_pipeline = Pipeline(get_modality("eeg"), steps_from_config(data["init_args"]["steps"]))
    assert recipe_pipeline.config() == dm.default_pipeline().config()
