"""A pretraining mixture over datasets with different channel sets, batched by bucketing.

Every batch holds windows of one channel set from one component (no zero padding inside a sample: the
encoder's GroupNorm spans all tokens, method.md Q1). Which component the next training batch comes from is
drawn with the mixture ``weights`` (default: proportional to each component's number of windows, i.e. every
window seen about once per epoch), by a generator seeded with ``(seed, epoch)``. Validation and test batches
run through every component in order.

Recipe example::

    data:
      class_path: neurorvq.datamodules.mixture.MixtureDataModule
      init_args:
        components:
          - class_path: neurorvq.datamodules.eegmmidb.EEGMMIDBDataModule
            init_args: {root: data/eegmmidb, task: pretrain}
          - class_path: neurorvq.datamodules.eeg_folder.EEGFolderDataModule
            init_args: {root: data/my_lab}
        weights: [0.7, 0.3]
"""

from __future__ import annotations

import math
from typing import Iterator, Sequence

import lightning as L
import numpy as np
from torch.utils.data import BatchSampler, ConcatDataset, DataLoader, Sampler

from neurorvq.compat import mismatches
from neurorvq.data.windows import ChannelBucketSampler, RecordingDataModule, SplitLoaders, replicas_of, shard_batches
from neurorvq.errors import ConfigError


class MixtureBatchSampler(BatchSampler):
    """Batches over a :class:`ConcatDataset` of the components' window datasets.

    ``component_samplers[k]`` yields batches of component ``k`` (indices local to it). With ``weights`` the
    order of components is drawn per batch (``batches_per_epoch`` batches, default the sum of the components'
    batch counts; a component that runs out starts its next pass); without, components follow each other.
    Under DDP (``sampler`` a DistributedSampler, as Lightning passes it, or explicit ``num_replicas``/``rank``)
    each rank takes every ``num_replicas``-th batch of the same global list.
    """

    def __init__(self, component_samplers: Sequence[ChannelBucketSampler], offsets: Sequence[int],
                 weights: Sequence[float] | None = None, seed: int = 0, batches_per_epoch: int | None = None,
                 sampler: Sampler | None = None, num_replicas: int | None = None, rank: int | None = None) -> None:
        self.component_samplers = list(component_samplers)
        self.offsets = list(offsets)
        self.weights = None if weights is None else np.asarray(weights, dtype=np.float64) / float(np.sum(weights))
        self.seed = int(seed)
        self.batches_per_epoch = batches_per_epoch
        self.epoch = 0
        self.num_replicas, self.rank = replicas_of(sampler, num_replicas, rank)
        self.sampler = self  # Lightning calls batch_sampler.sampler.set_epoch
        self.batch_size = None
        self.drop_last = False

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _component_batches(self, k: int, cycle: int) -> list[list[int]]:
        sampler = self.component_samplers[k]
        sampler.set_epoch(self.epoch * 1000 + cycle)
        return [[i + self.offsets[k] for i in batch] for batch in sampler.global_batches()]

    def global_batches(self) -> list[list[int]]:
        if self.weights is None:
            return [b for k in range(len(self.component_samplers)) for b in self._component_batches(k, 0)]
        rng = np.random.default_rng([self.seed, self.epoch])
        queues = {k: self._component_batches(k, 0) for k in range(len(self.component_samplers))}
        cycles = {k: 0 for k in queues}
        total = self.batches_per_epoch or sum(len(q) for q in queues.values())
        out = []
        for k in rng.choice(len(queues), size=total, p=self.weights):
            if not queues[k]:
                cycles[k] += 1
                queues[k] = self._component_batches(k, cycles[k])
                if not queues[k]:
                    continue
            out.append(queues[k].pop(0))
        return out

    def __iter__(self) -> Iterator[list[int]]:
        return iter(shard_batches(self.global_batches(), self.rank, self.num_replicas))

    def __len__(self) -> int:
        n = len(self.global_batches())
        return math.ceil(n / self.num_replicas)


class MixtureDataModule(SplitLoaders, L.LightningDataModule):
    """Several :class:`RecordingDataModule` s of one modality as one pretraining corpus.

    Args:
        components: the DataModules (each with its own root, task, preprocessing and batch size).
        weights: sampling weight of each component per training batch; ``None`` = proportional to its
            number of training windows.
        batches_per_epoch: training batches per epoch (default: the components' batches summed).
        seed: seeds the component draw (with the epoch).
    """

    def __init__(self, components: list[RecordingDataModule], weights: list[float] | None = None,
                 batches_per_epoch: int | None = None, seed: int = 0, num_workers: int = 0) -> None:
        super().__init__()
        if not components:
            raise ConfigError("MixtureDataModule.components is empty; list at least one DataModule")
        first = components[0].spec
        for i, component in enumerate(components[1:], 1):  # ids must mean the same rows in every component
            spec = component.spec
            differs = [m.text for m in mismatches(spec, first, ("sampling_rate", "unit", "patch_length"))]
            if tuple(spec.channels) != tuple(first.channels):
                differs.append(f"a different channel vocabulary ({len(spec.channels)} vs {len(first.channels)} names)")
            if differs:
                raise ConfigError(f"mixture components have different signals: component {i} ('{spec.name}') vs "
                                  f"component 0 ('{first.name}'): {'; '.join(differs)}; one tokenizer reads one "
                                  "signal: mix datasets of the same modality")
        if weights is not None and (len(weights) != len(components) or any(w < 0 for w in weights) or
                                    not sum(weights) > 0):
            raise ConfigError(f"weights {weights} must be {len(components)} non-negative numbers with a positive sum")
        self.components = list(components)
        self.weights = weights
        self.batches_per_epoch = batches_per_epoch
        self.seed = int(seed)
        self.num_workers = int(num_workers)

    @property
    def spec(self):
        return self.components[0].spec

    def setup(self, stage: str | None = None) -> None:
        for component in self.components:
            component.setup(stage)

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        datasets, samplers, offsets, offset = [], [], [], 0
        for component in self.components:
            component.setup("fit")
            dataset = component.datasets[split]
            datasets.append(dataset)
            samplers.append(ChannelBucketSampler(dataset, component.batch_size, shuffle=shuffle, seed=self.seed))
            offsets.append(offset)
            offset += len(dataset)
        weights = None
        if shuffle:
            sizes = [len(d) for d in datasets]
            weights = self.weights if self.weights is not None else sizes
            if not sum(weights):
                raise ConfigError(f"the mixture's {split} split has no windows")
        sampler = MixtureBatchSampler(samplers, offsets, weights, self.seed,
                                      self.batches_per_epoch if shuffle else None)
        return DataLoader(ConcatDataset(datasets), batch_sampler=sampler, num_workers=self.num_workers)
