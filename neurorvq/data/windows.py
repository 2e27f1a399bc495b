"""Recording windows held in memory, a channel-bucketing batch sampler, and the base DataModule of
recording-based datasets.

* :class:`WindowSet`: the windows cut from one recording (one channel set), ``float32 [W, C, T]`` in the
  modality's unit at its sampling rate, with per-window start samples and optional labels and subject ids.
* :class:`WindowDataset`: a map-style dataset over a list of window sets. Item ``i`` is ``{"signal": float32
  [C, T], "channel_ids": int64 [C]}`` plus ``"label"`` / ``"subject"`` (int64 scalars) when the set has them.
* :class:`ChannelBucketSampler`: a batch sampler that only puts windows of the same channel set (and length)
  into a batch. Recordings with different montages are never zero-padded to a common channel list: the
  encoder's GroupNorm spans every token of a sample, so padded channels would change the real ones' features.
* :class:`RecordingDataModule`: the Lightning base of file-based datasets (EEGMMIDB, Sleep-EDF, a folder of
  EEG files, ...). A subclass lists its recordings (:meth:`RecordingDataModule.find_recordings`) and turns one
  into window sets (:meth:`RecordingDataModule.load_windows`, using the helpers :meth:`~RecordingDataModule.read_raw`,
  :meth:`~RecordingDataModule.preprocess` and :meth:`~RecordingDataModule.cut`); the base checks the root,
  splits subjects, loads every recording with progress, skips bad files with a warning (or raises in strict
  mode), and summarises what was kept, rejected and skipped. With ``cache_dir`` it writes the windows of each
  split once into a sharded on-disk cache (:mod:`neurorvq.data.cache`) and streams batches from it instead of
  holding them in memory.

Batches (default collate over one bucket): ``{"signal": float32 [B, C, T], "channel_ids": int64 [B, C]}`` and,
when present, ``"label": int64 [B]``, ``"subject": int64 [B]``.
"""

from __future__ import annotations

import json
import logging
import math
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterator, Sequence

import lightning as L
import numpy as np
import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, Sampler

from neurorvq.data.channels import map_channels
from neurorvq.data.preprocess import (DataError, PickChannels, Pipeline, Recording, RejectionReport, cut_windows,
                                      steps_from_config)
from neurorvq.errors import ConfigError
from neurorvq.registry import ModalitySpec, get_modality

SPLITS = ("train", "val", "test")
CACHE_LAYOUT_VERSION = 2
"""Version of what :class:`RecordingDataModule` writes into a window cache (part of every cache key). 2: windows
touching samples outside the file's declared range or saturated at a rail are rejected, and a ``Clip`` limit
holds after resampling (caches of version 1 may hold such windows, so they are not reused)."""
_CACHE_SUMMARY = "summary.json"  # sidecar next to a cache's index.json: the split's loading counts
_NOT_IN_CACHE_KEY = ("batch_size", "num_workers", "verbose", "cache_dir", "seed", "val_subjects", "test_subjects",
                     "val_fraction", "test_fraction")  # loader / split settings; the split's subjects are keyed


class RecordingSkippedWarning(UserWarning):
    """A recording was left out (the message names the file and the reason)."""


# ------------------------------------------------------------------------------------------------ WindowSet
@dataclass
class WindowSet:
    """Windows cut from one recording, all with the same channels and length.

    Attributes:
        signals: ``float32 [W, C, T]`` in the modality's unit (``spec.unit``) at ``spec.sampling_rate``.
        channel_ids: ``int64 [C]`` vocabulary ids (``spec.channel_index``) of the signal rows.
        labels: ``int64 [W]`` class of each window, or ``None`` for unlabelled data.
        subjects: ``int64 [W]`` subject id of each window, or ``None``. Subject ids are integers so that they
            batch; :class:`RecordingDataModule` fills them from the recording's
            :attr:`RecordingInfo.subject_id` (e.g. 1 for EEGMMIDB's ``S001``) or, when the dataset has no
            numeric ids, from the subject's position in :attr:`RecordingDataModule.subject_names`.
        recording: the source file.
        starts: ``int64 [W]`` first sample of each window at the spec rate, counted from the start of the
            source recording (``None`` -> ``-1``, unknown).
        channels: vocabulary names of the rows (length C), for reports.
    """

    signals: np.ndarray
    channel_ids: np.ndarray
    labels: np.ndarray | None = None
    subjects: np.ndarray | None = None
    recording: str = ""
    starts: np.ndarray | None = None
    channels: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.signals = np.ascontiguousarray(self.signals, dtype=np.float32)
        self.channel_ids = np.asarray(self.channel_ids, dtype=np.int64).reshape(-1)
        self.recording = str(self.recording)
        if self.signals.ndim != 3:
            raise DataError(f"{self.recording}: WindowSet.signals must be [W, C, T], got shape "
                            f"{tuple(self.signals.shape)}")
        w, c, _ = self.signals.shape
        if self.channel_ids.shape[0] != c:
            raise DataError(f"{self.recording}: {self.channel_ids.shape[0]} channel ids for {c} signal rows")
        if self.starts is None:
            self.starts = np.full(w, -1, dtype=np.int64)
        for name in ("labels", "subjects", "starts"):
            value = getattr(self, name)
            if value is None:
                continue
            value = np.asarray(value, dtype=np.int64).reshape(-1)
            if value.shape[0] != w:
                raise DataError(f"{self.recording}: WindowSet.{name} has {value.shape[0]} entries for {w} windows")
            setattr(self, name, value)
        self.channels = [str(ch) for ch in self.channels]
        if self.channels and len(self.channels) != c:
            raise DataError(f"{self.recording}: {len(self.channels)} channel names for {c} signal rows")

    def __len__(self) -> int:
        return int(self.signals.shape[0])

    @property
    def num_channels(self) -> int:
        return int(self.signals.shape[1])

    @property
    def num_samples(self) -> int:
        return int(self.signals.shape[2])

    @property
    def key(self) -> tuple:
        """What windows must share to be batched: channel ids, length, and which optional fields exist."""
        return (tuple(self.channel_ids.tolist()), self.num_samples, self.labels is not None,
                self.subjects is not None)


# ------------------------------------------------------------------------------------------------ dataset
class WindowDataset(Dataset):
    """Map-style dataset over the windows of ``sets`` (empty sets are dropped), in order.

    Item ``i``: ``{"signal": float32 [C, T], "channel_ids": int64 [C]}`` plus ``"label"`` and ``"subject"``
    (int64 scalars) when its set has them. Windows of different sets may differ in C (and T): batch them
    with :class:`ChannelBucketSampler`.
    """

    def __init__(self, sets: Sequence[WindowSet]) -> None:
        super().__init__()
        self.sets: list[WindowSet] = [s for s in sets if len(s)]
        self.offsets = np.cumsum([0] + [len(s) for s in self.sets]).astype(np.int64)
        keys: dict[tuple, int] = {}
        for s in self.sets:
            keys.setdefault(s.key, len(keys))
        self.bucket_of_key = keys
        self.bucket_ids = np.concatenate(
            [np.full(len(s), keys[s.key], dtype=np.int64) for s in self.sets]) if self.sets else np.zeros(0, np.int64)

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def locate(self, index: int) -> tuple[int, int]:
        """``(set position, window position in that set)`` of window ``index``."""
        n = len(self)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(f"window {index} out of range for a WindowDataset of {n} windows")
        s = int(np.searchsorted(self.offsets, index, side="right") - 1)
        return s, int(index - self.offsets[s])

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        s, i = self.locate(int(index))
        ws = self.sets[s]
        item = {"signal": torch.from_numpy(ws.signals[i]), "channel_ids": torch.from_numpy(ws.channel_ids)}
        if ws.labels is not None:
            item["label"] = torch.tensor(int(ws.labels[i]), dtype=torch.long)
        if ws.subjects is not None:
            item["subject"] = torch.tensor(int(ws.subjects[i]), dtype=torch.long)
        return item

    @property
    def channel_sets(self) -> list[tuple[int, ...]]:
        """Distinct channel-id tuples, in order of first appearance."""
        return list(dict.fromkeys(key[0] for key in self.bucket_of_key))

    def _concat(self, name: str) -> np.ndarray | None:
        parts = [getattr(s, name) for s in self.sets]
        if not parts or any(p is None for p in parts):
            return None
        return np.concatenate(parts)

    @property
    def labels(self) -> np.ndarray | None:
        """``int64 [N]`` labels of every window, or ``None`` unless every set is labelled."""
        return self._concat("labels")

    @property
    def subjects(self) -> np.ndarray | None:
        """``int64 [N]`` subject ids of every window, or ``None`` unless every set has them."""
        return self._concat("subjects")

    @property
    def recordings(self) -> list[str]:
        """Source file of every window (length N)."""
        return [s.recording for s in self.sets for _ in range(len(s))]

    def subset(self, indices: Sequence[int] | np.ndarray) -> "WindowDataset":
        """A new dataset of the windows at ``indices`` (window order kept within each set; signals are copied
        only for the selected windows)."""
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        if indices.size and (indices.min() < 0 or indices.max() >= len(self)):
            raise IndexError(f"subset indices span {indices.min()}..{indices.max()} for {len(self)} windows")
        which = np.searchsorted(self.offsets, indices, side="right") - 1
        sets = []
        for s in np.unique(which):
            ws, local = self.sets[s], np.sort(indices[which == s] - self.offsets[s])
            pick = (lambda a: None if a is None else a[local])
            sets.append(WindowSet(ws.signals[local], ws.channel_ids, labels=pick(ws.labels), subjects=pick(ws.subjects),
                                  recording=ws.recording, starts=pick(ws.starts), channels=list(ws.channels)))
        return WindowDataset(sets)


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


def replicas_of(sampler: Sampler | None, num_replicas: int | None, rank: int | None) -> tuple[int, int]:
    """``(num_replicas, rank)``: explicit values, else those of a DistributedSampler (how Lightning re-creates a
    batch sampler under DDP), else ``(1, 0)``."""
    distributed = isinstance(sampler, torch.utils.data.DistributedSampler)
    num_replicas = int(num_replicas if num_replicas is not None else (sampler.num_replicas if distributed else 1))
    rank = int(rank if rank is not None else (sampler.rank if distributed else 0))
    if num_replicas < 1 or not 0 <= rank < num_replicas:
        raise ConfigError(f"rank {rank} / num_replicas {num_replicas}: need 0 <= rank < num_replicas")
    return num_replicas, rank


def shard_batches(batches: list[list[int]], rank: int, num_replicas: int) -> list[list[int]]:
    """Every ``num_replicas``-th batch from ``rank`` on, the list padded by repeating its first batches so every
    rank gets the same number (none dropped)."""
    if num_replicas == 1 or not batches:
        return batches
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
    sampler under DDP; its indices are not used), else to 1 / 0. Any other ``sampler`` is ignored.
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
        return shard_batches(self.global_batches(), self.rank, self.num_replicas)

    def __iter__(self) -> Iterator[list[int]]:
        # lazy: the epoch's order is drawn at the first next(), not when the iterator is made. On resume Lightning
        # makes the iterator before it calls set_epoch, and an eager list would replay epoch 0's order
        yield from self.batches()

    def __len__(self) -> int:
        sizes = Counter(self.dataset.bucket_ids.tolist())
        n = sum(s // self.batch_size if self.drop_last else math.ceil(s / self.batch_size) for s in sizes.values())
        return n if self.num_replicas == 1 or n == 0 else math.ceil(n / self.num_replicas)


# ------------------------------------------------------------------------------------------------ splits
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


def split_subjects(subjects: Sequence[str], seed: int = 0, val_fraction: float = 0.1, test_fraction: float = 0.1,
                   val_subjects: Sequence[str] | None = None,
                   test_subjects: Sequence[str] | None = None) -> dict[str, list[str]]:
    """Assign every subject to exactly one of 'train', 'val', 'test' (lists sorted).

    Explicit ``val_subjects`` / ``test_subjects`` are taken as given. A split without a list gets
    ``round(fraction x number of subjects)`` subjects (at least 1 when its fraction is > 0), drawn from the
    others by a generator seeded with ``seed``; val is served before test, and train always keeps at least one
    subject, so 1 subject -> train only, 2 -> train + val, 3 -> one each. Train gets everything else.
    """
    names = sorted(dict.fromkeys(str(s) for s in subjects))
    val = [str(s) for s in val_subjects] if val_subjects is not None else None
    test = [str(s) for s in test_subjects] if test_subjects is not None else None
    both = sorted(set(val or []) & set(test or []))
    if both:
        raise ConfigError(f"subjects {both} are in both val_subjects and test_subjects; a subject belongs to one split")
    unknown = sorted((set(val or []) | set(test or [])) - set(names))
    if unknown:
        raise ConfigError(f"val/test subjects {unknown} are not among the subjects found: {names[:20]}"
                          f"{' ...' if len(names) > 20 else ''}")
    for name, f in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0 <= f < 1:
            raise ConfigError(f"{name} is {f}; give a fraction in [0, 1)")
    taken = set(val or []) | set(test or [])
    rest = [names[i] for i in np.random.default_rng([int(seed), 0x5B17]).permutation(len(names))
            if names[i] not in taken]

    def draw(fraction: float) -> list[str]:
        want = 0 if fraction <= 0 else max(1, round(fraction * len(names)))
        k = max(0, min(want, len(rest) - 1))
        out = rest[:k]
        del rest[:k]
        return out

    val = draw(val_fraction) if val is None else val
    test = draw(test_fraction) if test is None else test
    return {"train": sorted(rest), "val": sorted(val), "test": sorted(test)}


def _load_one_in_worker(args: tuple) -> tuple[list[WindowSet], dict[str, Any], str | None]:
    module, info, pipeline = args
    return module.load_one(info, pipeline)


# ------------------------------------------------------------------------------------------------ reading
TRUNCATION_HINTS = ("does not match the file size", "file size", "truncated", "end of file")


def read_raw_checked(path: str | Path, reader: Callable[..., Any], **kwargs: Any):
    """``reader(path, **kwargs)`` (an ``mne.io.read_raw_*``) with MNE's warnings caught: a warning that the
    file is shorter than its header says (MNE reads what is there and warns) becomes a :class:`DataError`
    naming the file; other warnings are dropped."""
    mne_logger = logging.getLogger("mne")
    mute = logging.Filter("mne.muted")  # passes no record of the 'mne' logger: the warnings are handled here
    mne_logger.addFilter(mute)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            raw = reader(str(path), verbose="warning", **kwargs)
    finally:
        mne_logger.removeFilter(mute)
    for w in caught:
        message = str(w.message)
        if any(hint in message.lower() for hint in TRUNCATION_HINTS):
            raise DataError(f"{path}: truncated or corrupt file ({message.strip()})")
    return raw


# ------------------------------------------------------------------------------------------------ DataModule
@dataclass
class RecordingInfo:
    """One recording a :class:`RecordingDataModule` will load.

    path: the file; subject: the dataset's subject name (e.g. ``'S001'``), the unit of the train/val/test
    split; subject_id: its number where the dataset has one (EEGMMIDB ``S001`` -> 1), else ``None``;
    metadata: anything the subclass needs in :meth:`RecordingDataModule.load_windows` (run, label file, ...).
    """

    path: Path
    subject: str
    subject_id: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


def _window_samples(spec: ModalitySpec, seconds: float, what: str = "window_seconds") -> int:
    """Samples of a ``seconds`` window; a :class:`ConfigError` unless it is a whole, positive number of patches.
    (Whether a model's temporal table holds that many patches is checked when a task meets the data:
    :mod:`neurorvq.compat`.)"""
    if not seconds > 0:
        raise ConfigError(f"{what} is {seconds}; give a positive length in seconds, a multiple of the "
                          f"'{spec.name}' patch length of {spec.patch_seconds:g} s")
    patches = seconds * spec.sampling_rate / spec.patch_length
    if abs(patches - round(patches)) > 1e-6 or round(patches) < 1:
        raise ConfigError(f"{what}={seconds} is not a whole number of '{spec.name}' patches ({spec.patch_seconds:g} s "
                          f"each); use a multiple of {spec.patch_seconds:g} s")
    return int(round(patches)) * spec.patch_length


class RecordingDataModule(SplitLoaders, L.LightningDataModule):
    """Base of DataModules that load windows from recording files into memory.

    Subclasses set :attr:`dataset_name`, :attr:`root_layout` (how the root folder looks, for error messages) and
    implement :meth:`find_recordings` and :meth:`load_windows`; they may override :meth:`default_pipeline` and
    set :attr:`label_names`.

    Args:
        root: the dataset's folder (checked at construction: a missing folder is a :class:`DataError` naming it
            and the option ``data.init_args.root``).
        window_seconds: window length [s], a whole number of patches of the modality.
        stride_seconds: step between sliding windows [s]; ``None`` = ``window_seconds`` (no overlap).
        batch_size, num_workers: DataLoader settings (batches are bucketed by channel set); ``num_workers > 0``
            also reads and preprocesses the recordings in that many processes (in memory or building the cache).
        seed: seeds the subject split and the shuffling of training batches.
        strict: raise a :class:`DataError` on the first bad recording instead of skipping it with a
            :class:`RecordingSkippedWarning`.
        max_amplitude: reject windows whose absolute value exceeds this [spec unit], checked on the final
            windows (after resampling); ``None`` = no limit.
        steps: preprocessing steps as ``[{"step": "BandPass", "low": 1.0, "high": 40.0}, ...]``
            (:func:`~neurorvq.data.preprocess.steps_from_config`); ``None`` = :meth:`default_pipeline`. Windows
            touching samples outside an EDF/BDF/GDF header's range or saturated at its rails are rejected (reasons
            in the summary); add ``{"step": "RangeCheck", "on_fault": "keep"}`` to keep them with a warning
            (:class:`~neurorvq.data.preprocess.RangeCheck`).
        val_subjects / test_subjects: subjects (names such as ``'S001'``, or the integer ids the batches carry
            such as ``1``) of those splits; a split given no list gets ``val_fraction`` / ``test_fraction`` of the subjects, drawn by
            ``seed`` (:func:`split_subjects`). A subject is never in two splits.
        dead_channels: a channel that is all NaN or flat over a whole recording: ``'skip'`` the recording
            (default) or ``'drop'`` the channel (the recording then forms its own channel-set bucket).
        verbose: print loading progress and the summary (rank 0 only).
        modality: registered modality name.
        cache_dir: opt-in on-disk window cache (``None``: load everything into memory). When set,
            :meth:`prepare_data` writes the windows of each split once (exactly those the in-memory path
            produces) as WebDataset shards under ``<cache_dir>/<key>/``, or reuses a complete cache of the same
            key: the key covers the split's recording files (size, mtime, header checksum), the dataset class,
            its window-affecting hyper-parameters (all init args except ``batch_size``, ``num_workers``,
            ``verbose``, ``cache_dir`` and the split options, which enter as the split's subject list), the
            preprocessing pipeline config and :data:`CACHE_LAYOUT_VERSION`. :meth:`setup` then loads no recording;
            the loaders stream the shards (:class:`~neurorvq.data.cache.StreamingWindows`) and batch them by
            channel set (:func:`~neurorvq.data.cache.bucket_batches`); training reads shards in a seeded order
            through a shuffle buffer of :attr:`cache_shuffle_buffer` windows. Lightning calls ``set_epoch`` only on
            samplers, so :meth:`train_dataloader` sets the trainer's current epoch on the stream: use
            ``Trainer(reload_dataloaders_every_n_epochs=1)`` for a new order every epoch (otherwise every epoch
            reads the epoch-0 order). On a filesystem shared by several nodes use
            ``prepare_data_per_node=False``. The loading summary is kept in a ``summary.json`` next to each
            cache's ``index.json`` and reloaded on reuse. Builders of one cache take turns on its lock and
            whoever comes second reuses what the first built. Shards are checksummed and verified as they stream: a
            damaged cache raises :class:`~neurorvq.data.cache.CacheError` naming it (delete its folder and run
            again to rebuild). Subclasses that change the windows after loading by
            overriding :meth:`load` cannot use the cache (a :class:`ConfigError` says so).

    After :meth:`setup` (which loads everything once): :attr:`datasets` (``{split: WindowDataset}``; empty with
    ``cache_dir``, where :attr:`caches` holds ``{split: CacheIndex}`` instead), :attr:`summary` (counts),
    :attr:`subject_names`, :attr:`subject_ids`, :attr:`splits`.
    """

    dataset_name: ClassVar[str] = "recordings"
    root_layout: ClassVar[str] = "the dataset's files"
    label_names: tuple[str, ...] | None = None
    cache_shuffle_buffer: ClassVar[int] = 1024
    """Windows held in the training shuffle buffer when streaming from ``cache_dir`` (per DataLoader worker)."""
    cache_max_windows_per_shard: ClassVar[int] = 1000
    """Shard size (windows) of caches written by :meth:`prepare_data`: small enough to spread over workers."""

    def __init__(self, root: str, window_seconds: float = 4.0, stride_seconds: float | None = None,
                 batch_size: int = 32, num_workers: int = 0, seed: int = 0, strict: bool = False,
                 max_amplitude: float | None = None, steps: list[dict] | None = None,
                 val_subjects: list[int | str] | None = None, test_subjects: list[int | str] | None = None,
                 val_fraction: float = 0.1, test_fraction: float = 0.1, dead_channels: str = "skip",
                 verbose: bool = True, modality: str = "eeg", cache_dir: str | None = None) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.spec_: ModalitySpec = get_modality(modality)
        if int(batch_size) < 1:
            raise ConfigError(f"batch_size is {batch_size}; give at least 1")
        if int(num_workers) < 0:
            raise ConfigError(f"num_workers is {num_workers}; give 0 (load in the main process) or more")
        if int(seed) < 0:
            raise ConfigError(f"seed is {seed}; use an integer >= 0")
        if stride_seconds is not None and not stride_seconds > 0:
            raise ConfigError(f"stride_seconds is {stride_seconds}; give a positive step in seconds, or null for "
                              "non-overlapping windows")
        if dead_channels not in ("skip", "drop"):
            raise ConfigError(f"dead_channels is {dead_channels!r}; use 'skip' or 'drop'")
        if max_amplitude is not None and not max_amplitude > 0:
            raise ConfigError(f"max_amplitude is {max_amplitude}; give a positive limit in {self.spec_.unit} or null")
        self.window_samples = _window_samples(self.spec_, float(window_seconds))
        self.window_seconds = float(window_seconds)
        self.stride_seconds = None if stride_seconds is None else float(stride_seconds)
        self.batch_size = int(batch_size)
        self.num_workers = int(num_workers)
        self.seed = int(seed)
        self.strict = bool(strict)
        self.max_amplitude = max_amplitude
        self.steps = steps
        self.val_subjects = None if val_subjects is None else list(val_subjects)
        self.test_subjects = None if test_subjects is None else list(test_subjects)
        self.val_fraction = float(val_fraction)
        self.test_fraction = float(test_fraction)
        self.dead_channels = dead_channels
        self.verbose = bool(verbose)
        self.cache_dir = None if cache_dir is None else Path(cache_dir).expanduser()
        if steps is not None:
            steps_from_config(steps)  # bad steps fail at configuration time
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            what = "is a file, not a folder" if self.root.exists() else "does not exist"
            raise DataError(f"{self.dataset_name} root '{self.root}' {what}: set data.init_args.root (the `root` "
                            f"argument of {type(self).__name__}) to the folder holding {self.root_layout}")
        self.datasets: dict[str, WindowDataset] = {}
        self.splits: dict[str, list[str]] = {}
        self.subject_names: list[str] = []
        self.subject_ids: dict[str, int] = {}
        self._summary: dict[str, Any] = {}
        self._scratch: dict[str, Any] = {}
        self.caches: dict[str, Any] = {}  # {split: neurorvq.data.cache.CacheIndex} with cache_dir

    # ----------------------------------------------------------------------------------------- to implement
    def find_recordings(self) -> list[RecordingInfo]:  # pragma: no cover - interface
        """Every recording of the dataset under :attr:`root` (missing expected files may be listed: the base
        reports them as skipped)."""
        raise NotImplementedError

    def load_windows(self, info: RecordingInfo, pipeline: Pipeline) -> list[WindowSet]:  # pragma: no cover
        """Window sets of one recording; raise :class:`DataError` (naming the reason) for an unusable one."""
        raise NotImplementedError

    def default_pipeline(self) -> Pipeline:
        """Preprocessing used when ``steps`` is not given: :meth:`Pipeline.default` of the modality."""
        return Pipeline.default(self.spec_)

    # ----------------------------------------------------------------------------------------- helpers
    @property
    def spec(self) -> ModalitySpec:
        """The modality's :class:`~neurorvq.registry.ModalitySpec` (rate, unit, vocabulary)."""
        return self.spec_

    @property
    def summary(self) -> dict[str, Any]:
        """Counts of the last load (empty before :meth:`setup`): ``recordings_found``, ``recordings_loaded``,
        ``recordings_skipped``, ``skipped`` ({file: reason}), ``windows`` ({split: count}), ``windows_kept``,
        ``rejected`` ({reason: count}), ``dropped_channels`` ({recording channel name: reason}),
        ``subjects`` ({split: [names]}), ``channel_sets`` (distinct channel sets loaded)."""
        return self._summary

    @property
    def num_samples(self) -> int:
        """Samples per window, T."""
        return self.window_samples

    @property
    def num_classes(self) -> int | None:
        """Number of label classes (``len(label_names)``), ``None`` for unlabelled data."""
        return None if self.label_names is None else len(self.label_names)

    def make_pipeline(self) -> Pipeline:
        """The preprocessing pipeline: ``steps`` if given, else :meth:`default_pipeline`."""
        if self.steps is not None:
            return Pipeline(self.spec_, steps_from_config(self.steps))
        return self.default_pipeline()

    def read_raw(self, path: str | Path, reader: Callable[..., Any], **kwargs: Any):
        """Open ``path`` with ``reader`` (an ``mne.io.read_raw_*``); truncated files raise :class:`DataError`."""
        return read_raw_checked(path, reader, **kwargs)

    def preprocess(self, raw, info: RecordingInfo, pipeline: Pipeline) -> Recording:
        """Run ``pipeline`` on ``raw`` and check the result.

        Channels that do not map onto the vocabulary are dropped before the data are loaded (so unused
        channels of large files never reach memory) and reported; a channel that is all NaN or flat over the
        whole recording skips the recording (:class:`DataError`) or is dropped (``dead_channels='drop'``).
        """
        pre_dropped: dict[str, str] = {}
        pick = next((s for s in pipeline.steps if isinstance(s, PickChannels)), None)
        if pick is not None:
            mapping = map_channels(raw.ch_names, self.spec_, explicit=pick.explicit, aliases=pick.aliases)
            if mapping.picks and len(mapping.picks) < len(raw.ch_names):
                pre_dropped = dict(mapping.dropped)
                raw = raw.copy().pick([raw.ch_names[i] for i in mapping.picks])
        recording = pipeline.run(raw, str(info.path))
        recording.dropped_channels = {**pre_dropped, **recording.dropped_channels}
        data = recording.data
        nan = np.isnan(data).all(axis=1)
        with warnings.catch_warnings():  # nanstd of an all-NaN row warns; those rows are reported below
            warnings.simplefilter("ignore", RuntimeWarning)
            flat = ~nan & (np.nanstd(data, axis=1) <= 1e-6)
        dead = {ch: ("all NaN" if nan[i] else f"flat (std <= 1e-6 {recording.unit})")
                for i, ch in enumerate(recording.channels) if nan[i] or flat[i]}
        if dead:
            if self.dead_channels == "skip" or len(dead) == len(recording.channels):
                listed = ", ".join(f"{ch}: {why}" for ch, why in dead.items())
                raise DataError(f"dead channel(s) over the whole recording ({listed}); set "
                                "data.init_args.dead_channels=drop to keep the other channels")
            keep = [i for i, ch in enumerate(recording.channels) if ch not in dead]
            recording.data = data[keep]
            recording.channels = [recording.channels[i] for i in keep]
            recording.dropped_channels.update({ch: why for ch, why in dead.items()})
            recording.faults = [f for f in recording.faults if f.channel not in dead]  # e.g. a rail-saturated lead
        self._scratch.setdefault("dropped", {}).update(recording.dropped_channels)
        return recording

    def note_rejected(self, reason: str, count: int = 1) -> None:
        """Count ``count`` windows/epochs of the recording being loaded as rejected for ``reason`` (summary)."""
        if count:
            self._scratch.setdefault("report", RejectionReport()).rejected[reason] += int(count)

    def cut(self, recording: Recording, info: RecordingInfo, starts: np.ndarray | None = None,
            labels: Sequence[int] | np.ndarray | None = None, offset: int = 0) -> WindowSet:
        """Cut ``recording`` into :attr:`window_seconds` windows and reject bad ones (touching samples the file
        marks as invalid, NaN, flat, over ``max_amplitude`` on the final windows; counted by reason in the summary;
        see :func:`~neurorvq.data.preprocess.cut_windows`).

        ``starts`` (samples at the spec rate, e.g. event onsets) replaces the sliding grid of
        ``stride_seconds``; ``labels`` (one per start, or one per grid window) are kept aligned with the
        windows that survive. ``offset`` [samples] is added to the stored starts when ``recording`` begins
        after the source file's first sample (a cropped recording). A recording shorter than one window is a
        :class:`DataError`.
        """
        n = recording.data.shape[1]
        if n < self.window_samples:
            raise DataError(f"recording is {n / recording.sfreq:g} s long, shorter than one {self.window_seconds:g} s "
                            "window")
        if starts is None:
            stride = self.window_samples if self.stride_seconds is None else int(round(self.stride_seconds *
                                                                                      recording.sfreq))
            starts = np.arange(0, n - self.window_samples + 1, stride, dtype=np.int64)
        starts = np.asarray(starts, dtype=np.int64).reshape(-1)
        label_array = None
        if labels is not None:
            label_array = np.asarray(labels, dtype=np.int64).reshape(-1)
            if label_array.shape[0] == 1 and starts.shape[0] != 1:
                label_array = np.full(starts.shape[0], label_array[0], dtype=np.int64)
            if label_array.shape[0] != starts.shape[0]:
                raise DataError(f"{label_array.shape[0]} labels for {starts.shape[0]} windows")
        windows, kept, report = cut_windows(recording, self.window_seconds, self.stride_seconds,
                                            max_amplitude=self.max_amplitude, starts=starts)
        self._scratch.setdefault("report", RejectionReport()).merge(report)
        if label_array is not None:  # kept starts are a subsequence of starts, in order
            keep, j = [], 0
            for i, s in enumerate(starts):
                if j < len(kept) and s == kept[j]:
                    keep.append(i)
                    j += 1
            label_array = label_array[keep]
        ids = [self.spec_.channel_index(ch) for ch in recording.channels]
        return WindowSet(windows, np.asarray(ids, dtype=np.int64), labels=label_array, recording=str(info.path),
                         starts=kept + int(offset), channels=list(recording.channels))

    # ----------------------------------------------------------------------------------------- loading
    def _say(self, message: str) -> None:
        from lightning.pytorch.utilities import rank_zero_only

        if self.verbose and getattr(rank_zero_only, "rank", 0) == 0:
            print(message, flush=True)

    def _resolve_subjects(self, entries: list | None, ids: dict[str, int], option: str) -> list[str] | None:
        """Subject names of ``entries`` (names, case-insensitive, or the integer ids the batches carry)."""
        if entries is None:
            return None
        by_name = {name: name for name in ids}
        by_lower = {name.lower(): name for name in ids}
        by_id = {number: name for name, number in ids.items()}
        out = []
        for entry in entries:
            if isinstance(entry, (int, np.integer)) and not isinstance(entry, bool) and int(entry) in by_id:
                out.append(by_id[int(entry)])
            elif str(entry) in by_name:
                out.append(by_name[str(entry)])
            elif str(entry).lower() in by_lower:
                out.append(by_lower[str(entry).lower()])
            else:
                known = sorted(by_name)
                raise ConfigError(f"{option}: subject {entry!r} is not among the subjects found under {self.root}: "
                                  f"{known[:20]}{' ...' if len(known) > 20 else ''}")
        return out

    def _find_and_split(self) -> list[RecordingInfo]:
        """Every recording (sorted by path); sets :attr:`subject_names`, :attr:`subject_ids` and :attr:`splits`."""
        infos = sorted(self.find_recordings(), key=lambda i: str(i.path))
        if not infos:
            raise DataError(f"no {self.dataset_name} recordings found under '{self.root}': set data.init_args.root "
                            f"to the folder holding {self.root_layout}")
        names = sorted({i.subject for i in infos})
        if all(i.subject_id is not None for i in infos):
            ids = {i.subject: int(i.subject_id) for i in infos}
        else:
            ids = {name: k for k, name in enumerate(names)}
        self.subject_names, self.subject_ids = names, ids
        self.splits = split_subjects(names, self.seed, self.val_fraction, self.test_fraction,
                                     self._resolve_subjects(self.val_subjects, ids, "val_subjects"),
                                     self._resolve_subjects(self.test_subjects, ids, "test_subjects"))
        return infos

    def _split_of(self) -> dict[str, str]:
        return {s: split for split, members in self.splits.items() for s in members}

    def iter_recordings(self, infos: Sequence[RecordingInfo], pipeline: Pipeline,
                        tally: dict[str, Any]) -> Iterator[tuple[RecordingInfo, list[WindowSet]]]:
        """Load ``infos`` one by one: yields ``(info, window sets)`` of every usable recording (subject ids
        filled in); a bad one is skipped with a :class:`RecordingSkippedWarning` (or raises in strict mode).
        ``tally`` accumulates ``report`` (:class:`RejectionReport`), ``skipped`` ({file: reason}), ``dropped``
        (channels) and ``loaded`` (count). The one loading loop of both the in-memory and the cached path."""
        tally.setdefault("report", RejectionReport())
        tally.setdefault("skipped", {})
        tally.setdefault("dropped", {})
        tally.setdefault("loaded", 0)
        split_of = self._split_of()
        progress_every = max(1, len(infos) // 20)
        for n, (info, window_sets, scratch, reason) in enumerate(self._load_all(infos, pipeline), 1):
            if reason is not None:  # a bad file must not stop the others (unless strict)
                if self.strict:
                    raise DataError(f"{info.path}: {reason} (strict=True; set data.init_args.strict=false to skip "
                                    "bad recordings with a warning)")
                warnings.warn(f"skipped {info.path}: {reason}", RecordingSkippedWarning, stacklevel=3)
                tally["skipped"][str(info.path)] = reason
                self._say(f"[{n}/{len(infos)}] {info.path.name}: skipped ({reason})")
                continue
            tally["loaded"] += 1
            tally["report"].merge(scratch.get("report", RejectionReport()))
            tally["dropped"].update(scratch.get("dropped", {}))
            for ws in window_sets:
                ws.subjects = np.full(len(ws), self.subject_ids[info.subject], dtype=np.int64)
            if n % progress_every == 0 or n == len(infos):  # about 20 progress lines, whatever the corpus size
                count = sum(len(ws) for ws in window_sets)
                self._say(f"[{n}/{len(infos)}] {info.path.name}: {count} windows ({split_of[info.subject]})")
            yield info, window_sets

    def load_one(self, info: RecordingInfo, pipeline: Pipeline) -> tuple[list[WindowSet], dict[str, Any], str | None]:
        """``(window sets, scratch counts, reason it is unusable or None)`` of one recording; never raises for a
        bad file (a :class:`ConfigError` still propagates)."""
        self._scratch = {}
        try:
            if not Path(info.path).exists():
                raise DataError("file not found")
            window_sets = [ws for ws in self.load_windows(info, pipeline) if len(ws)]
            if not window_sets:
                rejected = self._scratch.get("report", RejectionReport())
                raise DataError(f"no usable window ({rejected.summary()})")
            return window_sets, self._scratch, None
        except ConfigError:
            raise
        except Exception as exc:
            reason = str(exc) if isinstance(exc, DataError) else f"{type(exc).__name__}: {exc}"
            return [], self._scratch, reason.removeprefix(f"{info.path}: ").strip() or type(exc).__name__
        finally:
            self._scratch = {}

    def _load_all(self, infos: Sequence[RecordingInfo], pipeline: Pipeline):
        """``(info, window sets, scratch, reason)`` per recording, in order; with ``num_workers > 0`` the
        recordings are read and preprocessed in that many processes (results still arrive in order)."""
        if self.num_workers <= 0 or len(infos) < 2:
            for info in infos:
                yield (info, *self.load_one(info, pipeline))
            return
        import copy
        from concurrent.futures import ProcessPoolExecutor

        worker_copy = copy.copy(self)  # what each process needs: settings, not a trainer or loaded data
        worker_copy.__dict__.pop("_trainer", None)
        worker_copy.__dict__["datasets"] = {}
        with ProcessPoolExecutor(min(self.num_workers, len(infos))) as pool:
            for info, result in zip(infos, pool.map(_load_one_in_worker,
                                                    [(worker_copy, info, pipeline) for info in infos])):
                yield (info, *result)

    def _finish_summary(self, found: int, tally: dict[str, Any], windows: dict[str, int],
                        channel_sets: int) -> None:
        report, skipped, dropped, loaded = tally["report"], tally["skipped"], tally["dropped"], tally["loaded"]
        if not loaded:
            raise DataError(f"none of the {found} {self.dataset_name} recordings under '{self.root}' could be "
                            f"loaded; reasons: {sorted(set(skipped.values()))[:5]}")
        self._summary = {
            "recordings_found": found, "recordings_loaded": loaded, "recordings_skipped": len(skipped),
            "skipped": dict(skipped), "windows": dict(windows),
            "windows_kept": report.kept, "rejected": dict(report.rejected), "dropped_channels": dict(dropped),
            "subjects": {split: list(self.splits[split]) for split in SPLITS},
            "channel_sets": channel_sets,
        }
        w = self._summary["windows"]
        self._say(f"{self.dataset_name}: {loaded}/{found} recordings loaded, {len(skipped)} skipped; windows "
                  f"train/val/test = {w['train']}/{w['val']}/{w['test']} from "
                  f"{len(self.splits['train'])}/{len(self.splits['val'])}/{len(self.splits['test'])} subjects; "
                  f"{report.summary()}"
                  + (f"; channels dropped: {sorted(dropped)}" if dropped else ""))
        for split in ("val", "test"):
            if not w[split]:
                self._say(f"{self.dataset_name}: the {split} split is empty")

    def load_pooled(self) -> list[WindowSet]:
        """Load every subject into one pool (the ``train`` split, no subject split) and return its window sets:
        for datasets whose splits are not by subject (sessions, repetitions), which then re-split them."""
        saved = (self.val_fraction, self.test_fraction)
        self.val_fraction = self.test_fraction = 0.0
        try:
            RecordingDataModule.load(self)
        finally:
            self.val_fraction, self.test_fraction = saved
        return list(self.datasets["train"].sets)

    def load(self) -> None:
        """Find, split and load every recording into memory (once); called by :meth:`setup` without
        ``cache_dir``."""
        if self.datasets:
            return
        infos = self._find_and_split()
        split_of = self._split_of()
        sets: dict[str, list[WindowSet]] = {split: [] for split in SPLITS}
        tally: dict[str, Any] = {}
        for info, window_sets in self.iter_recordings(infos, self.make_pipeline(), tally):
            sets[split_of[info.subject]].extend(window_sets)
        datasets = {split: WindowDataset(sets[split]) for split in SPLITS}
        self._finish_summary(len(infos), tally, {split: len(datasets[split]) for split in SPLITS},
                             len({key for split in SPLITS for key in datasets[split].channel_sets}))
        self.datasets = datasets

    # ----------------------------------------------------------------------------------------- cache
    def cache_config(self, split: str, infos: Sequence[RecordingInfo]) -> dict[str, Any]:
        """What the windows of ``split`` depend on besides the source files (part of the cache key)."""
        hparams = {k: v for k, v in dict(self.hparams).items() if k not in _NOT_IN_CACHE_KEY}
        subjects = list(self.splits[split])
        return {
            "layout_version": CACHE_LAYOUT_VERSION,
            "dataset": f"{type(self).__module__}.{type(self).__qualname__}",
            "hparams": json.loads(json.dumps(hparams, sort_keys=True, default=str)),
            "pipeline": json.loads(json.dumps(self.make_pipeline().config(), sort_keys=True, default=str)),
            "split": split,
            "subjects": {s: self.subject_ids[s] for s in subjects},
            "recordings": [[str(i.path), i.subject] for i in infos],
            "missing": [str(i.path) for i in infos if not Path(i.path).is_file()],
        }

    def _check_cacheable(self) -> None:
        if type(self).load is not RecordingDataModule.load:
            raise ConfigError(f"{type(self).__name__} post-processes its windows in load(), which the window cache "
                              "does not replay; leave data.init_args.cache_dir unset for this dataset")

    def _cache_windows(self, pairs: Iterator[tuple[RecordingInfo, list[WindowSet]]]):
        """``(recording name, window dicts)`` pairs for :func:`~neurorvq.data.cache.build_cache`."""
        for info, window_sets in pairs:
            def windows(window_sets=window_sets):
                for ws in window_sets:
                    for i in range(len(ws)):
                        win = {"signal": ws.signals[i], "channel_ids": ws.channel_ids, "recording": ws.recording,
                               "start": int(ws.starts[i])}
                        if ws.labels is not None:
                            win["label"] = int(ws.labels[i])
                        if ws.subjects is not None:
                            win["subject"] = int(ws.subjects[i])
                        yield win
            yield str(info.path), windows()

    def _open_caches(self, build: bool) -> None:
        """Open (and with ``build``, write the missing) cache of every split; sets :attr:`caches` and the summary."""
        from neurorvq.data import cache as wcache

        self._check_cacheable()
        infos = self._find_and_split()
        split_of = self._split_of()
        pipeline = self.make_pipeline() if build else None
        caches: dict[str, Any] = {}
        parts: dict[str, dict[str, Any]] = {}
        for split in SPLITS:
            mine = [i for i in infos if split_of[i.subject] == split]
            sources = [str(i.path) for i in mine if Path(i.path).is_file()]
            key = wcache.cache_key(sources, self.cache_config(split, mine))
            sidecar = self.cache_dir / key / _CACHE_SUMMARY
            index, part = self._complete_cache(key), None
            if index is None:
                if not build:
                    raise DataError(f"no complete {split} cache {key} under '{self.cache_dir}': run prepare_data() "
                                    "(the Trainer does) to build it")
                # One builder: whoever holds the lock looks again, so a cache another process (a second run, or
                # another rank on a shared filesystem) finished while this one waited is reused, not replaced.
                with wcache.build_lock(self.cache_dir, key):
                    index = self._complete_cache(key)
                    if index is None:
                        index, part = self._build_split_cache(split, key, mine, pipeline)
            if part is None:
                part = self._cached_summary(sidecar)
                for path, reason in part["skipped"].items():  # what an in-memory load would have warned about
                    warnings.warn(f"skipped {path}: {reason} (recorded in the window cache)", RecordingSkippedWarning,
                                  stacklevel=3)
            caches[split], parts[split] = index, part
        tally = {"report": RejectionReport(), "skipped": {}, "dropped": {}, "loaded": 0}
        for part in parts.values():
            tally["loaded"] += part["recordings_loaded"]
            tally["skipped"].update(part["skipped"])
            tally["dropped"].update(part["dropped_channels"])
            tally["report"].merge(RejectionReport(part["windows_kept"], Counter(part["rejected"])))
        channel_sets = {tuple(c["channel_ids"]) for index in caches.values() for c in index.channel_sets}
        self._finish_summary(len(infos), tally, {split: caches[split].total_windows for split in SPLITS},
                             len(channel_sets))
        self.caches = caches

    def _complete_cache(self, key: str) -> Any:
        """The :class:`~neurorvq.data.cache.CacheIndex` of ``key`` under :attr:`cache_dir` if that cache is complete
        with its summary sidecar, else ``None``."""
        from neurorvq.data import cache as wcache

        index = wcache.open_cache(self.cache_dir, key)
        return index if index is not None and (self.cache_dir / key / _CACHE_SUMMARY).is_file() else None

    def _build_split_cache(self, split: str, key: str, mine: Sequence[RecordingInfo],
                           pipeline: Pipeline) -> tuple[Any, dict[str, Any]]:
        """Write the cache ``key`` of ``split`` and its summary sidecar; returns ``(CacheIndex, summary part)``.
        The caller holds the build lock, so this builds with ``lock=False`` (``fcntl.flock`` belongs to an open
        file: taking the lock again here would wait forever)."""
        from neurorvq.data import cache as wcache

        tally: dict[str, Any] = {}
        self._say(f"{self.dataset_name}: building the {split} window cache {key} ({len(mine)} recordings)")
        windows = self._cache_windows(self.iter_recordings(mine, pipeline, tally))
        part: dict[str, Any] = {}

        def summary() -> dict[str, str]:  # written inside the cache folder before it appears (one rename)
            part.update({"recordings_found": len(mine), "recordings_loaded": tally.get("loaded", 0),
                         "skipped": tally.get("skipped", {}), "dropped_channels": tally.get("dropped", {}),
                         "windows_kept": tally["report"].kept if "report" in tally else 0,
                         "rejected": dict(tally["report"].rejected) if "report" in tally else {}})
            return {_CACHE_SUMMARY: json.dumps(part, indent=1, sort_keys=True)}

        index = wcache.build_cache(self.cache_dir, key, windows, config=self.cache_config(split, mine),
                                   max_windows_per_shard=self.cache_max_windows_per_shard, progress=self.verbose,
                                   lock=False, sidecars=summary)
        return index, part

    @staticmethod
    def _cached_summary(sidecar: Path) -> dict[str, Any]:
        """The loading counts kept next to a cache's ``index.json`` (a :class:`~neurorvq.data.cache.CacheError`
        naming the file when it is damaged)."""
        from neurorvq.data.cache import CacheError

        fields = ("recordings_found", "recordings_loaded", "skipped", "dropped_channels", "windows_kept", "rejected")
        try:
            part = json.loads(sidecar.read_text())
            problem = None if isinstance(part, dict) and all(k in part for k in fields) else f"it lacks one of {fields}"
        except (OSError, ValueError) as exc:  # ValueError: bad JSON or bytes that are not UTF-8
            problem = f"{type(exc).__name__}: {exc}"
        if problem is not None:
            raise CacheError(f"window cache summary {sidecar} is damaged ({problem}); delete the cache folder "
                             f"{sidecar.parent} and run again to rebuild it")
        return part

    def prepare_data(self) -> None:
        """With ``cache_dir``: build (or reuse) the window cache of every split. Without: nothing."""
        if self.cache_dir is not None:
            self._open_caches(build=True)

    def setup(self, stage: str | None = None) -> None:
        if self.cache_dir is None:
            self.load()
        elif not self.caches:
            self._open_caches(build=True)  # reuses what prepare_data built; builds when called without it

    # ----------------------------------------------------------------------------------------- loaders
    def _cached_loader(self, split: str, shuffle: bool) -> DataLoader:
        from neurorvq.data.cache import StreamingWindows, bucket_batches

        if not self.caches:
            self.setup()
        index = self.caches[split]
        if not index.total_windows:
            if split == "train":
                raise DataError(f"the train split of {self.dataset_name} under '{self.root}' has no windows "
                                f"(subjects: {self.splits.get('train')}); check the subjects and the skipped files in "
                                "the summary")
            return DataLoader([], batch_size=None)
        stream = StreamingWindows(index, shuffle_shards=shuffle, seed=self.seed,
                                  shuffle_buffer=self.cache_shuffle_buffer if shuffle else 0)
        trainer = getattr(self, "trainer", None)
        if shuffle and trainer is not None:
            stream.set_epoch(int(trainer.current_epoch))
        return DataLoader(bucket_batches(stream, self.batch_size), batch_size=None, num_workers=self.num_workers,
                          persistent_workers=self.num_workers > 0)

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        if self.cache_dir is not None:
            return self._cached_loader(split, shuffle)
        self.load()
        dataset = self.datasets[split]
        if split == "train" and not len(dataset):
            raise DataError(f"the train split of {self.dataset_name} under '{self.root}' has no windows (subjects: "
                            f"{self.splits.get('train')}); check the subjects and the skipped files in the summary")
        return window_loader(dataset, self.batch_size, shuffle, self.seed, self.num_workers)


__all__ = ["CACHE_LAYOUT_VERSION", "ChannelBucketSampler", "RecordingDataModule", "RecordingInfo",
           "RecordingSkippedWarning", "SplitLoaders", "WindowDataset", "window_loader",
           "WindowSet", "read_raw_checked", "split_subjects"]
