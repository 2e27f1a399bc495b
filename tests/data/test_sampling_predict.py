"""Distributed prediction sees every window once: under DDP ``trainer.predict`` re-creates the bucket sampler with
Lightning's ``UnrepeatedDistributedSampler``, which must not pad ranks with repeated batches (training still does).
The ranks are built with explicit ``num_replicas``/``rank``: no process group needed."""

from __future__ import annotations

import numpy as np
import pytest
from lightning.fabric.utilities.data import _replace_dunder_methods
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSamplerWrapper
from lightning.pytorch.trainer.states import RunningStage
from lightning.pytorch.utilities.data import _update_dataloader
from torch.utils.data import BatchSampler, DataLoader, DistributedSampler, SequentialSampler

from neurorvq.data.sampling import ChannelBucketSampler, shard_batches, unrepeated
from neurorvq.data.windowset import WindowDataset, WindowSet


def windows() -> WindowDataset:
    """Buckets of 13 and 9 windows (batches of 4: 4 + 3 = 7 batches, odd over 2 ranks)."""
    rng = np.random.default_rng(0)

    def make(n: int, channels: list[int], name: str) -> WindowSet:
        return WindowSet(rng.normal(size=(n, len(channels), 50)).astype(np.float32), np.asarray(channels),
                         labels=np.arange(n) % 2, recording=name, starts=np.arange(n) * 50)

    return WindowDataset([make(7, list(range(5)), "a"), make(5, [3, 8], "b"), make(6, list(range(5)), "c"),
                          make(4, [3, 8], "d")])


def predict_ranks(dataset: WindowDataset, world: int) -> list[ChannelBucketSampler]:
    """The bucket sampler of each rank as ``trainer.predict`` re-creates it under DDP."""
    return [ChannelBucketSampler(dataset, 4, shuffle=False,
                                 sampler=UnrepeatedDistributedSamplerWrapper(SequentialSampler(dataset),
                                                                             num_replicas=world, rank=rank,
                                                                             shuffle=False))
            for rank in range(world)]


@pytest.mark.parametrize("world", [2, 3])
def test_prediction_ranks_cover_every_window_exactly_once(world):
    ds = windows()
    ranks = predict_ranks(ds, world)
    assert all(r.num_replicas == world and not r.pad for r in ranks) and [r.rank for r in ranks] == list(range(world))
    per_rank = [list(r) for r in ranks]
    assert [len(b) for b in per_rank] == [len(r) for r in ranks]  # __len__ agrees with what is iterated
    seen = sorted(i for batches in per_rank for batch in batches for i in batch)
    assert seen == list(range(len(ds)))  # no window twice, none missing
    assert sum(len(b) for b in per_rank) == len(ChannelBucketSampler(ds, 4, shuffle=False)) == 7
    for batches in per_rank:  # still one channel set per batch
        assert all(len({ds.bucket_ids[i] for i in batch}) == 1 for batch in batches)


def test_training_ranks_are_still_padded():
    ds = windows()
    ranks = [ChannelBucketSampler(ds, 4, shuffle=False, sampler=DistributedSampler(ds, num_replicas=2, rank=r))
             for r in range(2)]
    assert all(r.pad for r in ranks) and [len(list(r)) for r in ranks] == [len(r) for r in ranks] == [4, 4]
    seen = [i for r in ranks for batch in r for i in batch]
    assert len(seen) > len(ds) and sorted(set(seen)) == list(range(len(ds)))  # the first batch again, as before


def test_lightning_predict_loader_re_creation_does_not_repeat_windows():
    """What Lightning's data connector does to a DataModule's loader for ``predict`` on 2 devices."""
    ds = windows()
    with _replace_dunder_methods(DataLoader, "dataset"), _replace_dunder_methods(BatchSampler):
        loader = DataLoader(ds, batch_sampler=ChannelBucketSampler(ds, 4, shuffle=False))  # as in predict_dataloader
    seen = []
    for rank in range(2):
        sampler = UnrepeatedDistributedSamplerWrapper(loader.sampler, num_replicas=2, rank=rank, shuffle=False)
        predict_loader = _update_dataloader(loader, sampler, mode=RunningStage.PREDICTING)
        inner = predict_loader.batch_sampler._batch_sampler  # Lightning's index-recording wrapper around ours
        assert isinstance(inner, ChannelBucketSampler)
        assert (inner.num_replicas, inner.rank, inner.pad) == (2, rank, False)
        seen += [i for batch in predict_loader.batch_sampler for i in batch]
    assert sorted(seen) == list(range(len(ds)))


def test_shard_batches_without_padding():
    batches = [[i] for i in range(5)]
    assert shard_batches(batches, 0, 2, pad=False) == [[0], [2], [4]]
    assert shard_batches(batches, 1, 2, pad=False) == [[1], [3]]
    assert shard_batches(batches, 1, 2) == [[1], [3], [0]]  # padded: the first batch again
    assert not unrepeated(None) and not unrepeated(SequentialSampler(range(3)))
