"""Meta's discrete gestures on HDF5 files written here in the released structure (an h5py compound ``data``
dataset with ``time`` [s] and ``emg`` [16, volts] at 2 kHz and a ``task`` attribute; pandas/PyTables ``prompts``
and ``stages`` tables) plus ``discrete_gestures_corpus.csv``: one window per prompt, labels in Meta's order,
c1..c16 at 1 kHz in µV, the corpus CSV's user split, partitions, bad files, download, the benchmark recipe."""

from __future__ import annotations

import csv
import tarfile
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from neurorvq.data.preprocess import DataError
from neurorvq.data.windows import RecordingSkippedWarning
from neurorvq.datamodules.discrete_gestures import (CORPUS_CSV, GESTURES, DiscreteGesturesDataModule, download,
                                                    read_corpus, read_recording)
from neurorvq.errors import ConfigError

RATE = 2000
SECONDS = 12.0
T0 = 1645824198.0  # the files' clock is absolute (unix) seconds
BURST_HZ, BURST_V = 230.0, 100e-6  # a 230-Hz burst (no 50/60-Hz harmonic) of 100 µV amplitude on the gesture's channel
PROMPTS = [(name, 1.0 + k) for k, name in enumerate(GESTURES)]  # gesture k at 1+k s: channel c<k+1> bursts
# across the partition gap, not one of the 9 gestures, at the recording's end
EXTRA = [("index_press", 4.5), ("rest", 10.5), ("thumb_up", 11.8)]
PARTITIONS = [(0.5, 4.7), (4.9, 11.5)]  # s after T0
SPLITS = {0: "train", 1: "val", 2: "test"}


def dataset_name(user: int) -> str:
    return f"discrete_gestures_user_{user:03d}_dataset_000"


def write_recording(path: Path, prompts=PROMPTS + EXTRA, seed: int = 0, channels: int = 16, rate: float = RATE,
                    task: str = "discrete_gestures", with_prompts: bool = True) -> Path:
    """One recording in Meta's structure: noise of ~5 µV, and after each prompt a 0.3-s burst on the channel of its
    gesture (c1 for index_press ... c9 for thumb_up)."""
    n = int(SECONDS * rate)
    time = T0 + np.arange(n) / rate
    rng = np.random.default_rng(seed)
    emg = rng.normal(0.0, 5e-6, (n, channels))
    for name, t in prompts:
        if name in GESTURES and GESTURES.index(name) < channels:
            burst = (time >= T0 + t + 0.05) & (time < T0 + t + 0.35)
            emg[burst, GESTURES.index(name)] += BURST_V * np.sin(2 * np.pi * BURST_HZ * (time[burst] - T0))
    data = np.zeros(n, dtype=[("time", "<f8"), ("emg", "<f4", (channels,))])
    data["time"], data["emg"] = time, emg
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        f.create_dataset("data", data=data)
        f["data"].attrs["task"] = task
    if with_prompts:
        pd.DataFrame({"name": [p for p, _ in prompts], "time": [T0 + t for _, t in prompts]}).to_hdf(
            path, key="prompts", mode="a")
    pd.DataFrame({"name": ["static_arm_in_front", "static_arm_in_lap"], "start": [T0 + a for a, _ in PARTITIONS],
                  "end": [T0 + b for _, b in PARTITIONS]}).to_hdf(path, key="stages", mode="a")
    return path


def write_corpus(root: Path, splits: dict[int, str]) -> Path:
    path = root / CORPUS_CSV
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["dataset", "start", "end", "split"])
        for user, split in splits.items():
            for a, b in PARTITIONS:
                writer.writerow([dataset_name(user), f"{T0 + a:.6f}", f"{T0 + b:.6f}", split])
    return path


def write_discrete_gestures_layout(root: Path) -> Path:
    """Three users (train, val, test: the released split's structure) with every gesture once, and the corpus CSV;
    returns ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    for user in SPLITS:
        write_recording(root / f"{dataset_name(user)}.hdf5", seed=user)
    write_corpus(root, SPLITS)
    return root


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return write_discrete_gestures_layout(tmp_path_factory.mktemp("discrete_gestures"))


@pytest.fixture(scope="module")
def loaded(root) -> DiscreteGesturesDataModule:
    dm = DiscreteGesturesDataModule(str(root), verbose=False)
    dm.setup()
    return dm


def test_one_window_per_prompt_with_meta_labels_at_1khz_in_uv(loaded):
    dm = loaded
    assert dm.summary["recordings_loaded"] == 3 and dm.summary["skipped"] == {}
    assert dm.num_classes == 9 and dm.label_names == GESTURES and dm.label_names[4] == "thumb_click"
    for split in ("train", "val", "test"):
        ds = dm.datasets[split]
        assert len(ds) == 9 and sorted(ds.labels.tolist()) == list(range(9))
        ws = ds.sets[0]
        assert ws.signals.shape == (9, 16, 400)  # 0.4 s at 1 kHz: two 200-sample patches
        assert sorted(ws.channels, key=lambda c: int(c[1:])) == [f"c{k}" for k in range(1, 17)]
        times = dm.window_table(split)["event_time"]
        # the window starts at the prompt (1 kHz samples from the first one); the gesture's channel carries the burst
        assert np.array_equal(ws.starts, np.round((times - T0) * 1000).astype(np.int64))
        for signal, label in zip(ws.signals, ws.labels):
            rms = np.sqrt((signal ** 2).mean(axis=1))
            loudest = ws.channels[int(rms.argmax())]
            assert loudest == f"c{label + 1}"
            assert 40.0 < rms.max() < 70.0  # 100 µV sine on 0.3 s of 0.4 s: 100 / sqrt(2) * sqrt(0.75) ~ 61 µV
            assert float(np.median(rms)) < 10.0  # the ~5 µV noise elsewhere, in µV (not V)
    rejected = dm.summary["rejected"]
    assert rejected["prompt not one of the 9 gestures"] == 3
    assert rejected["prompt window outside the corpus CSV's partitions"] == 6  # 4.5 s and 11.8 s, 3 users
    batch = next(iter(dm.train_dataloader()))
    assert batch["signal"].shape == (9, 16, 400) and set(batch) == {"signal", "channel_ids", "label", "subject"}
    assert batch["subject"].tolist() == [0] * 9


def test_the_corpus_csv_gives_the_user_split(loaded, root):
    dm = loaded
    assert dm.splits == {"train": ["user_000"], "val": ["user_001"], "test": ["user_002"]}
    assert dm.summary["split"]["by"] == "corpus_split"
    for split in ("train", "val", "test"):
        assert set(dm.window_table(split)["corpus_split"].tolist()) == {split}
    corpus = read_corpus(root / CORPUS_CSV)
    assert corpus[dataset_name(1)].split == "val" and corpus[dataset_name(1)].partitions == [
        (pytest.approx(T0 + a), pytest.approx(T0 + b)) for a, b in PARTITIONS]
    # corpus_split=false: the base class's subject split (here: all three users train)
    free = DiscreteGesturesDataModule(str(root), corpus_split=False, val_fraction=0.0, test_fraction=0.0,
                                      users=[0, 2], verbose=False)
    free.setup()
    assert free.splits == {"train": ["user_000", "user_002"], "val": [], "test": []}
    with pytest.raises(ConfigError, match="corpus_split is true"):
        DiscreteGesturesDataModule(str(root), test_subjects=[2])


def test_loading_processes_give_the_same_windows(loaded, root):
    """Workers rebuild the DataModule from its arguments: each recording's partitions travel with it."""
    dm = DiscreteGesturesDataModule(str(root), num_workers=2, verbose=False)
    dm.setup()
    for split in ("train", "val", "test"):
        assert np.array_equal(dm.datasets[split].sets[0].signals, loaded.datasets[split].sets[0].signals)
    assert dm.summary["rejected"] == loaded.summary["rejected"]


def test_options_window_offset_and_partitions(root):
    dm = DiscreteGesturesDataModule(str(root), users=[0], window_seconds=0.6, offset_seconds=-0.1,
                                    within_partitions=False, verbose=False)
    dm.setup()
    ws = dm.datasets["train"].sets[0]
    # every gesture prompt (the one across the partition gap included); 11.7-12.3 s runs past the 12-s recording
    assert ws.signals.shape == (10, 16, 600) and dm.summary["rejected"]["outside recording"] == 1
    times = dm.window_table("train")["event_time"]
    assert np.allclose(np.sort(times - T0), sorted([t - 0.1 for _, t in PROMPTS] + [4.4]))
    assert np.array_equal(ws.starts, np.round((times - T0) * 1000).astype(np.int64))
    with pytest.raises(ConfigError, match="whole number"):
        DiscreteGesturesDataModule(str(root), window_seconds=0.3)
    with pytest.raises(ConfigError, match="use modality 'emg'"):
        DiscreteGesturesDataModule(str(root), modality="semg200", window_seconds=0.5)
    with pytest.raises(ConfigError, match="users is"):
        DiscreteGesturesDataModule(str(root), users=[])


def test_a_recording_without_its_prompts_table_is_named(tmp_path):
    path = write_recording(tmp_path / f"{dataset_name(0)}.hdf5", with_prompts=False)
    with pytest.raises(DataError, match=rf"{path}: no 'prompts' table .*tables in the file: \['data', 'stages'\]"):
        read_recording(path)
    write_corpus(tmp_path, {0: "train"})
    with pytest.raises(DataError, match=rf"{path}: no 'prompts' table.*strict=True"):
        DiscreteGesturesDataModule(str(tmp_path), strict=True, verbose=False).setup()


def test_without_pytables_the_prompts_table_names_the_extra(tmp_path, monkeypatch):
    import importlib.util

    path = write_recording(tmp_path / f"{dataset_name(0)}.hdf5")
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tables" else real(name, *a))
    with pytest.raises(ConfigError, match=r'PyTables \(tables\): pip install "neurorvq\[benchmarks\]"'):
        read_recording(path)


def test_bad_recordings_are_skipped_and_files_outside_the_csv_left_out(tmp_path):
    write_recording(tmp_path / f"{dataset_name(0)}.hdf5")
    write_recording(tmp_path / f"{dataset_name(1)}.hdf5", rate=1000.0)  # another clock than 2 kHz
    write_recording(tmp_path / "sub" / f"{dataset_name(2)}.hdf5", channels=8)  # one folder down: found
    write_recording(tmp_path / f"{dataset_name(3)}.hdf5", task="handwriting")
    (tmp_path / f"{dataset_name(4)}.hdf5").write_bytes(b"not an hdf5 file")
    write_recording(tmp_path / f"{dataset_name(5)}.hdf5", prompts=[("rest", 2.0)])
    write_recording(tmp_path / f"{dataset_name(99)}.hdf5")  # not in the CSV
    write_corpus(tmp_path, {u: "train" for u in range(7)})  # user 6 has no file (a partial download)
    dm = DiscreteGesturesDataModule(str(tmp_path), val_fraction=0.0, test_fraction=0.0, verbose=False)
    with pytest.warns(RecordingSkippedWarning) as caught:
        dm.setup()
    messages = [str(w.message) for w in caught]
    expect = {1: "the timestamps give 1000 Hz, not the wristband's 2000 Hz",
              2: "'emg' has (8,) values per sample; expected (16,)", 3: "a 'handwriting' recording",
              4: "unreadable HDF5 file", 5: "no prompt of the 9 gestures inside the corpus CSV's partitions"}
    for user, reason in expect.items():
        hits = [m for m in messages if dataset_name(user) in m]
        assert len(hits) == 1 and reason in hits[0], (user, messages)
    assert len(messages) == len(expect) and dm.summary["recordings_loaded"] == 1
    assert dm.summary["excluded"] == {"HDF5 file not in the corpus CSV": 1, "in the corpus CSV, no file under root": 1}


def test_corpus_csv_errors(tmp_path):
    with pytest.raises(DataError, match=rf"{tmp_path / CORPUS_CSV} not found"):
        DiscreteGesturesDataModule(str(tmp_path), verbose=False).setup()
    (tmp_path / CORPUS_CSV).write_text("dataset,start,split\nx,1.0,train\n")
    with pytest.raises(DataError, match=r"missing column\(s\) \['end'\]"):
        read_corpus(tmp_path / CORPUS_CSV)
    (tmp_path / CORPUS_CSV).write_text("dataset,start,end,split\nx,1.0,2.0,holdout\n")
    with pytest.raises(DataError, match=r"line 2: split 'holdout' is not one of \['train', 'val', 'test'\]"):
        read_corpus(tmp_path / CORPUS_CSV)
    (tmp_path / CORPUS_CSV).write_text("dataset,start,end,split\nx,1.0,2.0,train\nx,3.0,4.0,test\n")
    with pytest.raises(DataError, match="line 3: x is in both the train and the test split"):
        read_corpus(tmp_path / CORPUS_CSV)


def test_download_fetches_and_extracts_the_tar_and_the_csv(root, tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    with tarfile.open(served / "small_subset.tar", "w") as tar:
        for path in sorted(root.glob("*.hdf5")):
            tar.add(path, arcname=path.name)
    (served / CORPUS_CSV).write_bytes((root / CORPUS_CSV).read_bytes())
    target = download(tmp_path / "data", "small_subset", base_url=served.as_uri())  # file:// : no network
    assert sorted(p.name for p in target.iterdir()) == sorted([CORPUS_CSV] + [f"{dataset_name(u)}.hdf5"
                                                                              for u in SPLITS])
    dm = DiscreteGesturesDataModule(str(target), users=[2], verbose=False)
    dm.setup()
    assert len(dm.datasets["test"]) == 9
    with pytest.raises(ConfigError, match="variant is 'tiny'"):
        download(tmp_path / "data", "tiny")
