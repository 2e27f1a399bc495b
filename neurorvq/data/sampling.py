"""Batches of one channel set from a :class:`~neurorvq.data.windowset.WindowDataset`, and the DataLoader hooks
of a DataModule.

* :class:`ChannelBucketSampler`: a batch sampler that only puts windows of the same channel set (and length)
  into a batch. Recordings with different montages are never zero-padded to a common channel list: the
  encoder's GroupNorm spans every token of a sample, so padded channels would change the real ones' features.
  Under DDP each rank takes its share of the batches (:func:`replicas_of`, :func:`shard_batches`).
* :func:`window_loader`: a DataLoader of a window dataset through that sampler.
* :class:`SplitLoaders`: the four ``*_dataloader`` hooks of a DataModule from one ``_loader(split, shuffle)``.

Batches (default collate over one bucket): ``{"signal": float32 [B, C, T], "channel_ids": int64 [B, C]}`` and,
when present, ``"label": int64 [B]``, ``"subject": int64 [B]``.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Iterator

import numpy as np
import torch
from torch.utils.data import BatchSampler, DataLoader, Sampler

from neurorvq.data.windowset import WindowDataset
from neurorvq.errors import ConfigError


# ------------------------------------------------------------------------------------------------ sampler
class _EpochRelay(Sampler[int]):
    """What Lightning finds as ``batch_sampler.sampler``: it calls ``set_epoch`` on it at every epoch start,
    which this forwards to the bucket sampler. Iterating it yields the flat index order of the batches."""

    def __init__(self, owner: "ChannelBucketSampler") -> None:
        self.owner = owner

    def __iter__(self) -> Iterator[int]:
        for batch in self.owner:
            yield from batch

    def __len__(self) -> int:
        return sum(len(b) for b in self.owner.batches())

    def set_epoch(self, epoch: int) -> None:
        self.owner.set_epoch(epoch)


def unrepeated(sampler: Sampler | None) -> bool:
    """Whether ``sampler`` is Lightning's prediction sampler (``UnrepeatedDistributedSampler``): under DDP
    ``trainer.predict`` re-creates the batch sampler with it, and every window must then be seen exactly once, so
    ranks are not padded to the same number of batches (prediction needs no lockstep)."""
    try:
        from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
    except ImportError:  # pragma: no cover - Lightning is a dependency; without it there is no such sampler
        return False
    return isinstance(sampler, UnrepeatedDistributedSampler)


def replicas_of(sampler: Sampler | None, num_replicas: int | None, rank: int | None) -> tuple[int, int]:
    """``(num_replicas, rank)``: explicit values, else those of a DistributedSampler (how Lightning re-creates a
    batch sampler under DDP), else ``(1, 0)``."""
    distributed = isinstance(sampler, torch.utils.data.DistributedSampler)
    num_replicas = int(num_replicas if num_replicas is not None else (sampler.num_replicas if distributed else 1))
    rank = int(rank if rank is not None else (sampler.rank if distributed else 0))
    if num_replicas < 1 or not 0 <= rank < num_replicas:
        raise ConfigError(f"rank {rank} / num_replicas {num_replicas}: need 0 <= rank < num_replicas")
    return num_replicas, rank


def shard_batches(batches: list[list[int]], rank: int, num_replicas: int, pad: bool = True) -> list[list[int]]:
    """Every ``num_replicas``-th batch from ``rank`` on. With ``pad`` (training) the list is padded by repeating
    its first batches so every rank gets the same number (none dropped, some seen twice); without (prediction)
    every batch goes to exactly one rank and ranks may differ by one batch."""
    if num_replicas == 1 or not batches:
        return batches
    if not pad:
        return batches[rank::num_replicas]
    per_rank = math.ceil(len(batches) / num_replicas)
    padded = batches + [batches[i % len(batches)] for i in range(per_rank * num_replicas - len(batches))]
    return padded[rank::num_replicas]


class ChannelBucketSampler(BatchSampler):
    """Batches of indices of ``dataset`` in which every window has the same channel set and length.

    Windows are grouped by :attr:`WindowSet.key` (bucket); each bucket is cut into batches of ``batch_size``
    (its last batch smaller unless ``drop_last``). With ``shuffle`` the windows inside each bucket and the
    order of all batches are permuted by a generator seeded with ``(seed, epoch)``: the same seed and epoch
    give the same batches on every machine; :meth:`set_epoch` (called by Lightning each epoch) changes them.
    Without ``shuffle`` buckets come in order of first appearance and windows in dataset order.

    Distributed training: every rank computes the same global batch list and takes every ``num_replicas``-th
    batch from ``rank`` on, the list padded by repeating its first batches so every rank gets the same number
    of batches (none are dropped). ``num_replicas`` / ``rank`` default to those of a
    :class:`~torch.utils.data.DistributedSampler` passed as ``sampler`` (that is how Lightning re-creates a batch
    sampler under DDP; its indices are not used), else to 1 / 0. Any other ``sampler`` is ignored. Distributed
    prediction (Lightning's ``UnrepeatedDistributedSampler`` as ``sampler``, :func:`unrepeated`) is not padded:
    each batch goes to one rank, so feature and token folders hold every window once.
    """

    def __init__(self, dataset: WindowDataset, batch_size: int, shuffle: bool = True, seed: int = 0,
                 drop_last: bool = False, sampler: Sampler | None = None, num_replicas: int | None = None,
                 rank: int | None = None) -> None:
        if not isinstance(dataset, WindowDataset):
            raise ConfigError(f"ChannelBucketSampler needs a WindowDataset, got {type(dataset).__name__}")
        if int(batch_size) < 1:
            raise ConfigError(f"batch_size is {batch_size}; give at least 1")
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.drop_last = bool(drop_last)
        self.epoch = 0
        self.num_replicas, self.rank = replicas_of(sampler, num_replicas, rank)
        self.pad = not unrepeated(sampler)
        self.sampler = _EpochRelay(self)

    def set_epoch(self, epoch: int) -> None:
        """Use the batches of ``epoch`` (with ``shuffle``); Lightning calls this at every epoch start."""
        self.epoch = int(epoch)

    def global_batches(self) -> list[list[int]]:
        """Every rank's batches of the current epoch, before sharding."""
        rng = np.random.default_rng([self.seed, self.epoch])
        ids = self.dataset.bucket_ids
        batches: list[list[int]] = []
        for bucket in range(len(self.dataset.bucket_of_key)):
            members = np.flatnonzero(ids == bucket)
            if self.shuffle:
                members = rng.permutation(members)
            for start in range(0, len(members), self.batch_size):
                chunk = members[start:start + self.batch_size]
                if self.drop_last and len(chunk) < self.batch_size:
                    continue
                batches.append([int(i) for i in chunk])
        if self.shuffle and batches:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        return batches

    def batches(self) -> list[list[int]]:
        """This rank's batches of the current epoch."""
        return shard_batches(self.global_batches(), self.rank, self.num_replicas, pad=self.pad)

    def __iter__(self) -> Iterator[list[int]]:
        # lazy: the epoch's order is drawn at the first next(), not when the iterator is made. On resume Lightning
        # makes the iterator before it calls set_epoch, and an eager list would replay epoch 0's order
        yield from self.batches()

    def __len__(self) -> int:
        sizes = Counter(self.dataset.bucket_ids.tolist())
        n = sum(s // self.batch_size if self.drop_last else math.ceil(s / self.batch_size) for s in sizes.values())
        if self.num_replicas == 1 or n == 0:
            return n
        return math.ceil(n / self.num_replicas) if self.pad else len(range(self.rank, n, self.num_replicas))


# ------------------------------------------------------------------------------------------------ loaders
def window_loader(dataset: WindowDataset, batch_size: int, shuffle: bool, seed: int = 0,
                  num_workers: int = 0) -> DataLoader:
    """A DataLoader of ``dataset`` in batches of one channel set (:class:`ChannelBucketSampler`); an empty dataset
    gives an empty loader."""
    if not len(dataset):
        return DataLoader([], batch_size=None)
    sampler = ChannelBucketSampler(dataset, batch_size, shuffle=shuffle, seed=seed)
    return DataLoader(dataset, batch_sampler=sampler, num_workers=num_workers, persistent_workers=num_workers > 0)


class SplitLoaders:
    """The four DataLoader hooks of a DataModule from one ``_loader(split, shuffle)``: training batches shuffled,
    the others in order; ``predict`` reads the test split."""

    def _loader(self, split: str, shuffle: bool) -> DataLoader:  # pragma: no cover - interface
        raise NotImplementedError

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)


__all__ = ["ChannelBucketSampler", "SplitLoaders", "replicas_of", "shard_batches", "unrepeated", "window_loader"]
