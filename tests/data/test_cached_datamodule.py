"""RecordingDataModule with ``cache_dir``: the cached (streamed) windows equal the in-memory ones, a second
module reuses the cache without loading a recording, a changed hyper-parameter builds a new cache, batches
never mix channel sets, and the loading summary survives reuse."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_windows import FakeModule, fake_root  # noqa: E402

from neurorvq.data.windows import SPLITS, RecordingSkippedWarning  # noqa: E402
from neurorvq.errors import ConfigError  # noqa: E402


class CountingModule(FakeModule):
    calls = 0

    def load_windows(self, info, pipeline):
        type(self).calls += 1
        return super().load_windows(info, pipeline)


NAMES = [f"sub{i}_{k}.rec" for i in range(6) for k in range(2)] + ["sub1_bad.rec", "sub0_flat.rec"]


def _module(root, cache_dir, **kwargs):
    args = dict(window_seconds=1.0, batch_size=4, seed=0, verbose=False, cache_dir=None if cache_dir is None
                else str(cache_dir))
    args.update(kwargs)
    return CountingModule(str(root), **args)


def _setup(dm):
    with pytest.warns(RecordingSkippedWarning):
        dm.prepare_data()
        dm.setup("fit")
    return dm


def _windows(loader):
    """Every window of the loader's batches as (subject, label, C, signal bytes), sorted; checks the buckets."""
    out = []
    for batch in loader:
        ids = batch["channel_ids"]
        assert (ids == ids[0]).all(), "a batch mixes channel sets"
        assert batch["signal"].shape[:2] == ids.shape and batch["signal"].shape[0] <= 4
        for b in range(ids.shape[0]):
            out.append((int(batch["subject"][b]), int(batch["label"][b]), int(ids.shape[1]),
                        batch["signal"][b].numpy().tobytes()))
    return sorted(out)


@pytest.fixture()
def root(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    return fake_root(folder, NAMES)


def test_cached_windows_equal_the_in_memory_ones(root, tmp_path):
    memory = _setup(_module(root, None))
    cached = _setup(_module(root, tmp_path / "cache"))
    assert cached.datasets == {} and set(cached.caches) == set(SPLITS)
    assert cached.summary == memory.summary
    for split, loader in (("train", "train_dataloader"), ("val", "val_dataloader"), ("test", "test_dataloader")):
        a, b = _windows(getattr(memory, loader)()), _windows(getattr(cached, loader)())
        assert len(a) == memory.summary["windows"][split]
        assert a == b, split
    # both channel sets (2 and 19 channels) are present somewhere
    assert cached.summary["channel_sets"] == 2


def test_second_module_reuses_the_cache_and_the_summary(root, tmp_path):
    first = _setup(_module(root, tmp_path / "cache"))
    calls = CountingModule.calls
    assert calls > 0
    second = _module(root, tmp_path / "cache", batch_size=3, num_workers=0)  # loader settings are not keyed
    with pytest.warns(RecordingSkippedWarning, match="recorded in the window cache"):
        second.prepare_data()
        second.setup("fit")
    assert CountingModule.calls == calls, "reuse must not load a recording"
    assert second.summary == first.summary
    assert second.summary["recordings_skipped"] == 2
    assert {Path(f).name for f in second.summary["skipped"]} == {"sub1_bad.rec", "sub0_flat.rec"}
    assert {c.key for c in second.caches.values()} == {c.key for c in first.caches.values()}
    assert len(_windows(second.val_dataloader())) == first.summary["windows"]["val"]


def test_a_changed_hyper_parameter_builds_a_new_cache(root, tmp_path):
    cache = tmp_path / "cache"
    first = _setup(_module(root, cache))
    keys = {c.key for c in first.caches.values()}
    calls = CountingModule.calls
    other = _setup(_module(root, cache, window_seconds=2.0))
    assert CountingModule.calls > calls
    assert not keys & {c.key for c in other.caches.values()}
    assert other.summary["windows_kept"] * 3 == first.summary["windows_kept"]  # 1 window of 2 s per 3 s recording
    assert {b["signal"].shape[-1] for b in other.train_dataloader()} == {400}
    assert sum(1 for p in cache.iterdir() if (p / "index.json").is_file()) == 6


def test_train_stream_is_shuffled_by_epoch_and_covers_every_window(root, tmp_path):
    class SmallShards(CountingModule):
        cache_max_windows_per_shard = 4

    dm = _setup(SmallShards(str(root), window_seconds=1.0, batch_size=4, verbose=False, cache_dir=str(tmp_path / "c")))
    assert len(dm.caches["train"].shards) > 2

    def order(loader):
        return [(int(s), round(float(x), 3)) for b in loader for s, x in zip(b["subject"], b["signal"].sum(dim=(1, 2)))]

    plain = order(dm.val_dataloader()), order(dm.val_dataloader())
    assert plain[0] == plain[1]  # evaluation: stream order, no shuffling
    first, same = order(dm.train_dataloader()), order(dm.train_dataloader())
    assert len(first) == dm.summary["windows"]["train"] and first == same  # seeded

    class Trainer:
        current_epoch = 1

    dm.trainer = Trainer()  # what Lightning attaches; train_dataloader() sets its epoch on the stream
    again = order(dm.train_dataloader())
    assert sorted(again) == sorted(first) and again != first


def test_subclass_that_post_processes_in_load_is_refused(root, tmp_path):
    class PostProcessing(FakeModule):
        def load(self):
            super().load()

    with pytest.raises(ConfigError, match="cache_dir"):
        PostProcessing(str(root), window_seconds=1.0, verbose=False, cache_dir=str(tmp_path / "c")).prepare_data()


def test_eegmmidb_cached_windows_equal_the_in_memory_ones(data_dir, tmp_path):
    from neurorvq.datamodules.eegmmidb import EEGMMIDBDataModule

    root = data_dir / "eegmmidb"
    if not (root / "S001" / "S001R01.edf").exists():
        pytest.skip(f"EEGMMIDB sample not found under {root}")
    kwargs = dict(task="eyes", subjects=[1], runs=[1], batch_size=8, verbose=False,
                  steps=[{"step": "PickChannels"}, {"step": "Resample"}])
    memory = EEGMMIDBDataModule(str(root), **kwargs)
    memory.setup("fit")
    cached = EEGMMIDBDataModule(str(root), cache_dir=str(tmp_path / "cache"), **kwargs)
    cached.prepare_data()
    cached.setup("fit")
    assert "subjects" in cached.cache_config("train", [])["hparams"]  # subclass hyper-parameters are keyed
    assert cached.summary == memory.summary and cached.summary["windows"]["train"] > 0
    for split in SPLITS:  # unshuffled: the same windows in the same order (one recording, one channel set)
        a, b = list(memory._loader(split, shuffle=False)), list(cached._loader(split, shuffle=False))
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert (y["channel_ids"] == y["channel_ids"][0]).all()
            for name in ("signal", "channel_ids", "label", "subject"):
                np.testing.assert_array_equal(x[name].numpy(), y[name].numpy())


def test_recordings_load_in_worker_processes(data_dir, tmp_path):
    """num_workers > 0 reads and preprocesses recordings in that many processes, with the same windows, counts
    and order as one process; the cached build uses the same loop."""
    from neurorvq.datamodules.eegmmidb import EEGMMIDBDataModule

    root = data_dir / "eegmmidb"
    kwargs = dict(task="eyes", subjects=[1, 3], batch_size=8, verbose=False, val_fraction=0.0, test_fraction=0.0,
                  steps=[{"step": "PickChannels"}, {"step": "Resample"}])
    serial = EEGMMIDBDataModule(str(root), **kwargs)
    serial.setup("fit")
    parallel = EEGMMIDBDataModule(str(root), num_workers=2, **kwargs)
    parallel.setup("fit")
    assert parallel.summary == serial.summary and serial.summary["recordings_loaded"] == 4
    for a, b in zip(serial.datasets["train"].sets, parallel.datasets["train"].sets):
        assert a.recording == b.recording and np.array_equal(a.signals, b.signals)
    cached = EEGMMIDBDataModule(str(root), num_workers=2, cache_dir=str(tmp_path / "cache"), **kwargs)
    cached.prepare_data()
    cached.setup("fit")
    assert cached.summary["windows"] == serial.summary["windows"]


def test_the_cache_key_inputs_do_not_change_by_accident(root):
    """A key canary: what a DataModule's window cache is keyed by (besides the files' identity) for a fixed
    configuration. Changing it rebuilds every user's cache; do it on purpose (bump CACHE_LAYOUT_VERSION and update
    this pin), never as a side effect of a refactor."""
    import hashlib
    import json

    dm = _module(root, None)
    with pytest.warns(RecordingSkippedWarning):
        dm.setup("fit")
    infos = sorted(dm.find_recordings(), key=lambda i: str(i.path))
    config = dm.cache_config("train", [i for i in infos if i.subject in dm.splits["train"]])
    config["recordings"] = [[Path(p).name, s] for p, s in config["recordings"]]  # the tmp folder varies
    config["missing"] = [Path(p).name for p in config["missing"]]
    config["hparams"] = {k: v for k, v in config["hparams"].items() if k != "root"}
    digest = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]
    assert config["layout_version"] == 3
    assert digest == "e6e3ebc1c07a27ba", json.dumps(config, sort_keys=True)[:2000]
