"""In-memory windows: WindowSet/WindowDataset items, channel-set bucketing, subject splits, and the base
RecordingDataModule's root checks, skipping and strict mode (on a small in-memory subclass, no files read)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from neurorvq.data.preprocess import DataError, Pipeline, Recording
from neurorvq.data.windows import (ChannelBucketSampler, RecordingDataModule, RecordingInfo, RecordingSkippedWarning,
                                   WindowDataset, WindowSet, split_subjects)
from neurorvq.errors import ConfigError


def make_set(n: int, channels: list[int], t: int = 200, label: int | None = None, subject: int | None = None,
             name: str = "rec", fill: float | None = None) -> WindowSet:
    rng = np.random.default_rng(len(channels) * 1000 + n)
    signals = rng.normal(size=(n, len(channels), t)).astype(np.float32) if fill is None else \
        np.full((n, len(channels), t), fill, np.float32)
    return WindowSet(signals, np.asarray(channels), labels=None if label is None else np.full(n, label),
                     subjects=None if subject is None else np.full(n, subject), recording=name,
                     starts=np.arange(n) * t)


def two_montages() -> WindowDataset:
    # 19- and 2-channel recordings, interleaved, so a naive loader would mix them
    return WindowDataset([make_set(7, list(range(19)), label=0, subject=1, name="a"),
                          make_set(5, [3, 8], label=1, subject=2, name="b"),
                          make_set(0, [1, 2], name="empty"),
                          make_set(6, list(range(19)), label=1, subject=3, name="c"),
                          make_set(4, [3, 8], label=0, subject=4, name="d")])


# ------------------------------------------------------------------------------------------- WindowSet / dataset
def test_windowset_checks_shapes_and_casts_dtypes():
    ws = WindowSet(np.zeros((3, 2, 10), np.float64), [1, 2], labels=[0, 1, 0], starts=[0, 10, 20])
    assert ws.signals.dtype == np.float32 and ws.channel_ids.dtype == np.int64 and ws.labels.dtype == np.int64
    assert len(ws) == 3 and ws.num_channels == 2 and ws.num_samples == 10
    assert ws.key == ((1, 2), 10, True, False)
    assert WindowSet(np.zeros((2, 1, 4)), [0]).starts.tolist() == [-1, -1]
    with pytest.raises(DataError, match="channel ids"):
        WindowSet(np.zeros((3, 2, 10)), [1])
    with pytest.raises(DataError, match="labels has 2 entries for 3 windows"):
        WindowSet(np.zeros((3, 2, 10)), [1, 2], labels=[0, 1])
    with pytest.raises(DataError, match=r"\[W, C, T\]"):
        WindowSet(np.zeros((2, 10)), [1, 2])


def test_window_dataset_items_follow_the_sets():
    ds = two_montages()
    assert len(ds) == 22 and len(ds.sets) == 4  # the empty set is dropped
    item = ds[7]  # first window of set "b"
    assert set(item) == {"signal", "channel_ids", "label", "subject"}
    assert item["signal"].shape == (2, 200) and item["signal"].dtype == torch.float32
    assert item["channel_ids"].tolist() == [3, 8] and item["channel_ids"].dtype == torch.int64
    assert item["label"].item() == 1 and item["subject"].item() == 2 and item["label"].dtype == torch.int64
    np.testing.assert_array_equal(item["signal"].numpy(), ds.sets[1].signals[0])
    np.testing.assert_array_equal(ds[-1]["signal"].numpy(), ds.sets[3].signals[-1])
    with pytest.raises(IndexError):
        ds[22]
    assert ds.channel_sets == [tuple(range(19)), (3, 8)]
    assert ds.labels.tolist() == [0] * 7 + [1] * 5 + [1] * 6 + [0] * 4
    assert ds.recordings[7] == "b"
    unlabelled = WindowDataset([make_set(2, [0, 1])])
    assert set(unlabelled[0]) == {"signal", "channel_ids"} and unlabelled.labels is None


# ------------------------------------------------------------------------------------------- bucketing
@pytest.mark.parametrize("shuffle", [True, False])
def test_batches_never_mix_channel_sets(shuffle):
    ds = two_montages()
    sampler = ChannelBucketSampler(ds, batch_size=4, shuffle=shuffle, seed=3)
    batches = list(sampler)
    assert len(batches) == len(sampler)
    assert sorted(i for b in batches for i in b) == list(range(len(ds)))  # every window exactly once
    for batch in batches:
        assert len({ds.bucket_ids[i] for i in batch}) == 1
    seen = 0
    for batch in DataLoader(ds, batch_sampler=sampler):  # default collate works on every bucket
        ids = batch["channel_ids"]
        assert (ids == ids[0]).all() and batch["signal"].shape[1] == ids.shape[1]
        assert batch["label"].shape == batch["subject"].shape == (ids.shape[0],)
        seen += ids.shape[0]
    assert seen == len(ds)
    if not shuffle:
        assert batches[:2] == [[0, 1, 2, 3], [4, 5, 6, 12]] and batches[4] == [7, 8, 9, 10]


def test_bucket_sampler_is_deterministic_by_seed_and_epoch():
    ds = two_montages()
    a = ChannelBucketSampler(ds, 4, shuffle=True, seed=0)
    assert list(a) == list(ChannelBucketSampler(ds, 4, shuffle=True, seed=0))
    assert list(a) != list(ChannelBucketSampler(ds, 4, shuffle=True, seed=1))
    first = list(a)
    a.set_epoch(1)
    assert list(a) != first
    a.sampler.set_epoch(0)  # what Lightning calls each epoch (batch_sampler.sampler.set_epoch)
    assert list(a) == first and a.epoch == 0


def test_bucket_sampler_drop_last_and_ranks():
    ds = two_montages()  # buckets of 13 and 9 windows
    dropped = ChannelBucketSampler(ds, 4, shuffle=True, drop_last=True)
    assert len(dropped) == 3 + 2 == len(list(dropped)) and all(len(b) == 4 for b in dropped)
    full = ChannelBucketSampler(ds, 4, shuffle=True, seed=5)
    ranks = [ChannelBucketSampler(ds, 4, shuffle=True, seed=5, num_replicas=3, rank=r) for r in range(3)]
    per_rank = [list(r) for r in ranks]
    # 4 + 3 = 7 batches over 3 ranks: 3 each, the first 2 batches repeated so that no rank waits for another
    assert [len(b) for b in per_rank] == [len(r) for r in ranks] == [3, 3, 3]
    assert set(map(tuple, sum(per_rank, []))) == set(map(tuple, full)) and len(list(full)) == 7
    sampler = torch.utils.data.DistributedSampler(ds, num_replicas=4, rank=3, shuffle=False)
    injected = ChannelBucketSampler(ds, 4, sampler=sampler)  # as Lightning re-creates it under DDP
    assert (injected.num_replicas, injected.rank) == (4, 3) and len(list(injected)) == len(injected) == 2
    with pytest.raises(ConfigError, match="batch_size"):
        ChannelBucketSampler(ds, 0)


# ------------------------------------------------------------------------------------------- subject splits
def test_split_subjects_is_disjoint_complete_and_seeded():
    subjects = [f"S{i:03d}" for i in range(1, 21)]
    split = split_subjects(subjects, seed=0)
    assert [len(split[s]) for s in ("train", "val", "test")] == [16, 2, 2]
    assert sorted(sum(split.values(), [])) == subjects
    assert not (set(split["train"]) & set(split["val"])) and not (set(split["val"]) & set(split["test"]))
    assert split == split_subjects(list(reversed(subjects)), seed=0)
    assert split != split_subjects(subjects, seed=1)
    explicit = split_subjects(subjects, seed=0, val_subjects=["S001"], test_subjects=["S002", "S003"])
    assert explicit["val"] == ["S001"] and explicit["test"] == ["S002", "S003"] and len(explicit["train"]) == 17
    assert split_subjects(["a"], 0) == {"train": ["a"], "val": [], "test": []}
    assert [len(v) for v in split_subjects(["a", "b"], 0).values()] == [1, 1, 0]
    assert [len(v) for v in split_subjects(["a", "b", "c"], 0).values()] == [1, 1, 1]
    with pytest.raises(ConfigError, match="both val_subjects and test_subjects"):
        split_subjects(subjects, val_subjects=["S001"], test_subjects=["S001"])
    with pytest.raises(ConfigError, match="not among the subjects found"):
        split_subjects(subjects, val_subjects=["S999"])


# ------------------------------------------------------------------------------------------- base DataModule
class FakeModule(RecordingDataModule):
    """Recordings are empty files named <subject>_<k>.rec; 'bad' in a name raises, 'flat' gives flat windows."""

    dataset_name = "fake"
    root_layout = "<subject>_<k>.rec files"

    def find_recordings(self) -> list[RecordingInfo]:
        return [RecordingInfo(p, p.stem.split("_")[0]) for p in sorted(self.root.glob("*.rec"))]

    def load_windows(self, info: RecordingInfo, pipeline: Pipeline) -> list[WindowSet]:
        assert isinstance(pipeline, Pipeline)
        if "bad" in info.path.name:
            raise DataError(f"{info.path}: unparsable labels")
        names = list(self.spec.channels[:2] if info.subject.endswith("2") else self.spec.channels[:19])
        data = np.random.default_rng(0).normal(0, 20, (len(names), 3 * 200)).astype(np.float32)
        if "flat" in info.path.name:
            data[:] = 1.0
        recording = Recording(data, names, 200.0, "uV", str(info.path))
        return [self.cut(recording, info, labels=[0])]  # 3 windows of 1 s, all labelled 0


def fake_root(tmp_path: Path, names: list[str]) -> Path:
    for name in names:
        (tmp_path / name).touch()
    return tmp_path


def test_module_splits_subjects_and_batches_by_channel_set(tmp_path):
    root = fake_root(tmp_path, [f"sub{i}_{k}.rec" for i in range(10) for k in range(2)])
    dm = FakeModule(str(root), window_seconds=1.0, batch_size=4, seed=0, verbose=False)
    dm.setup("fit")
    subjects = {split: set(dm.datasets[split].subjects.tolist()) for split in ("train", "val", "test")}
    assert not (subjects["train"] & subjects["val"]) and not (subjects["train"] & subjects["test"])
    assert not (subjects["val"] & subjects["test"])
    assert sum(len(s) for s in dm.splits.values()) == 10 and all(dm.splits.values())
    assert dm.summary["windows"] == {s: len(dm.datasets[s]) for s in ("train", "val", "test")}
    assert sum(dm.summary["windows"].values()) == 60 and dm.summary["recordings_loaded"] == 20
    assert dm.subject_ids == {f"sub{i}": i for i in range(10)}
    for batch in dm.train_dataloader():
        assert (batch["channel_ids"] == batch["channel_ids"][0]).all()
    explicit = FakeModule(str(root), window_seconds=1.0, val_subjects=["sub3"], test_subjects=[4], verbose=False)
    explicit.setup()
    assert explicit.splits["val"] == ["sub3"] and explicit.splits["test"] == ["sub4"]
    assert set(explicit.datasets["val"].subjects.tolist()) == {3}


def test_module_skips_bad_recordings_with_a_warning_and_raises_in_strict_mode(tmp_path):
    root = fake_root(tmp_path, ["a_1.rec", "a_bad.rec", "b_flat.rec"])
    dm = FakeModule(str(root), window_seconds=1.0, verbose=False)
    with pytest.warns(RecordingSkippedWarning) as caught:
        dm.setup()
    messages = [str(w.message) for w in caught]
    assert any("a_bad.rec" in m and "unparsable labels" in m for m in messages)
    assert any("b_flat.rec" in m and "no usable window (0 windows kept; rejected: flat: 3)" in m for m in messages)
    assert dm.summary["recordings_skipped"] == 2 and dm.summary["recordings_loaded"] == 1
    assert set(dm.summary["skipped"]) == {str(root / "a_bad.rec"), str(root / "b_flat.rec")}
    with pytest.raises(DataError, match=r"a_bad\.rec: unparsable labels.*strict"):
        FakeModule(str(root), window_seconds=1.0, strict=True, verbose=False).setup()


def test_module_names_the_missing_root_and_the_option(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(DataError, match=rf"'{missing}' does not exist: set data\.init_args\.root"):
        FakeModule(str(missing))
    (tmp_path / "file.txt").touch()
    with pytest.raises(DataError, match="is a file, not a folder"):
        FakeModule(str(tmp_path / "file.txt"))
    with pytest.raises(DataError, match=r"no fake recordings found under .*data\.init_args\.root"):
        FakeModule(str(tmp_path), verbose=False).setup()


def test_module_checks_its_settings(tmp_path):
    with pytest.raises(ConfigError, match="whole number of 'eeg' patches"):
        FakeModule(str(tmp_path), window_seconds=2.5)
    with pytest.raises(ConfigError, match="unknown preprocessing step"):
        FakeModule(str(tmp_path), steps=[{"step": "Nope"}])
    with pytest.raises(ConfigError, match="dead_channels"):
        FakeModule(str(tmp_path), dead_channels="ignore")
    with pytest.raises(ConfigError, match="val_subjects: subject 'x' is not among"):
        FakeModule(str(fake_root(tmp_path, ["a_1.rec"])), val_subjects=["x"], verbose=False).setup()


def test_subset_keeps_the_selected_windows_and_their_fields():
    a = WindowSet(np.arange(3 * 2 * 4, dtype=np.float32).reshape(3, 2, 4), [1, 2], labels=[0, 1, 0],
                  subjects=[7, 7, 7], recording="a.edf", starts=[0, 4, 8])
    b = WindowSet(np.ones((2, 1, 4), np.float32), [5], labels=[1, 1], subjects=[9, 9], recording="b.edf")
    dataset = WindowDataset([a, b])
    part = dataset.subset([4, 0, 2])
    assert len(part) == 3 and part.labels.tolist() == [0, 0, 1] and part.subjects.tolist() == [7, 7, 9]
    assert part.recordings == ["a.edf", "a.edf", "b.edf"] and part.sets[0].starts.tolist() == [0, 8]
    assert np.array_equal(part[1]["signal"].numpy(), a.signals[2]) and part.channel_sets == [(1, 2), (5,)]
    assert len(dataset.subset([])) == 0
    with pytest.raises(IndexError, match="subset indices span 0..5 for 5 windows"):
        dataset.subset([0, 5])


def test_module_names_the_channels_its_windows_use(tmp_path):
    """After setup a DataModule says which vocabulary channels its windows use, so a model with a smaller
    vocabulary than the modality's (LaBraM's) is checked against those, not the whole vocabulary."""
    root = fake_root(tmp_path, ["sub1_0.rec", "sub2_0.rec"])
    dm = FakeModule(str(root), window_seconds=1.0, val_fraction=0, test_fraction=0, verbose=False)
    assert dm.channel_names_used() is None
    dm.setup()
    assert dm.channel_names_used() == list(dm.spec.channels[:19])  # sub2's 2 channels are among sub1's 19
    cached = FakeModule(str(root), window_seconds=1.0, val_fraction=0, test_fraction=0, verbose=False,
                        cache_dir=str(tmp_path / "cache"))
    cached.setup()
    assert cached.channel_names_used() == dm.channel_names_used()
