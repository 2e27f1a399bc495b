"""Reading a window cache: :class:`StreamingWindows`, an ``IterableDataset`` that streams each (rank, worker)'s
own shards with bounded memory and verifies their checksums; see "Reading" in :mod:`neurorvq.data.cache`."""

from __future__ import annotations

import importlib
import json
import os
import warnings
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from neurorvq.data.cache.checksum import _ShardStream
from neurorvq.data.cache.index import CHECKSUM, CacheIndex, PathLike, _open_url, load_index
from neurorvq.data.cache.tar import _damaged, _load_npy, _tar_members
from neurorvq.errors import ConfigError


def _dist_rank_world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def _decode(sample: Mapping[str, Any], with_meta: bool, location: str | None = None) -> dict[str, Any]:
    """A grouped sample as tensors; a missing or unreadable member is a :class:`CacheError` naming it."""
    key, url = sample.get("__key__"), str(sample.get("__url__"))
    for name in ("signal.npy", "json"):
        if name not in sample:
            raise _damaged(url, f"sample {key} lacks its member {key}.{name}", location)
    try:
        signal = _load_npy(sample["signal.npy"])
    except (ValueError, OSError, EOFError, SyntaxError, TypeError) as exc:
        raise _damaged(url, f"member {key}.signal.npy is not a readable .npy array ({exc})", location) from exc
    try:
        meta = json.loads(sample["json"])
        channel_ids = np.asarray(meta["channel_ids"], dtype=np.int64)
    except (ValueError, KeyError, TypeError) as exc:  # ValueError: bad JSON or bytes that are not UTF-8
        raise _damaged(url, f"member {key}.json is not the window's JSON metadata ({type(exc).__name__}: {exc})",
                       location) from exc
    if signal.ndim != 2 or channel_ids.shape != (signal.shape[0],):
        raise _damaged(url, f"sample {key} has signal {tuple(signal.shape)} and channel_ids "
                            f"{tuple(channel_ids.shape)} (members {key}.signal.npy, {key}.json)", location)
    out: dict[str, Any] = {"signal": torch.from_numpy(signal), "channel_ids": torch.from_numpy(channel_ids)}
    for name in ("label", "subject"):
        if meta.get(name) is not None:
            out[name] = torch.from_numpy(np.array(meta[name], dtype=np.int64))  # 0-d; 4x faster than torch.tensor
    if with_meta:
        out.update(recording=meta.get("recording"), start=meta.get("start"), key=sample["__key__"],
                   columns=dict(meta.get("columns") or {}))
    return out


class StreamingWindows(IterableDataset):
    """Windows of a cache, streamed shard by shard; each (rank, DataLoader worker) reads its own shards.

    Args:
        location: a :class:`CacheIndex`, a cache folder, or a URL prefix (``file:///...``, ``s3://bucket/cache/
            <key>``, ``memory://...``: any fsspec URL; or ``pipe:<command with {shard}>``).
        shuffle_shards: shuffle the shard order each epoch (seeded by ``seed`` and :meth:`set_epoch`, the same
            order on every rank) before assigning shards.
        seed: seed of the shard order and of the shuffle buffer.
        shuffle_buffer: windows held in a bounded shuffle buffer (0: stream order). Memory: about
            ``shuffle_buffer x C x T x 4`` bytes per worker.
        rank, world_size: this process's place among the readers; default ``torch.distributed``'s when it is
            initialised, else env ``RANK``/``WORLD_SIZE``, else 0/1.
        worker_id, num_workers: override the DataLoader worker (default ``get_worker_info()``, or 0/1 outside
            workers); for tests and custom launchers.
        equal_windows_per_rank: stop every rank after the same number of windows (the smallest rank's count,
            from the index), so DDP ranks run the same number of steps; drops at most the few windows of the
            largest shards. With channel-set bucketing, batch counts can still differ if ranks see different
            mixtures of channel sets.
        with_meta: also yield ``recording`` (str), ``start`` (int or None), ``key`` (str) and ``columns`` (the
            window's metadata columns, ``{name: int | float | str}``; empty for caches written without them).
        storage_options: passed to ``fsspec.open`` for URLs (credentials, endpoint, ...).
        verify: check each shard against the CRC-32 in ``index.json`` as it streams (default). The bytes are
            hashed as they pass, so a shard is read once; a mismatch raises :class:`CacheError` naming the
            shard when the shard's last window has been read (its earlier windows have been yielded by then: the
            run stops with the error, it does not go on). A shard read only in part (``equal_windows_per_rank``
            stopping early, a loader torn down mid-epoch) is not verified. Costs about 11-15% of the streaming
            rate (``benchmarks/cache_speed.py --verify both``). A format-1 cache has no checksums: it is read
            unverified, with a warning.

    Shard assignment: the shard list (shuffled or not) goes round-robin to ranks (``shards[rank::world_size]``),
    then each rank's list round-robin to its workers; so the (rank, worker) subsets are disjoint and together
    cover every shard once. A rank's shards do not depend on the worker count. With fewer shards than
    ``world_size x num_workers`` some readers get none (a warning says so): write smaller shards.

    Yields ``{"signal": float32 [C, T] (modality unit), "channel_ids": int64 [C], "label": int64 [] and
    "subject": int64 [] when stored}``. Batch with ``DataLoader(batch_size=B)`` when all windows share one
    channel set, or with :func:`bucket_batches` and ``DataLoader(batch_size=None)`` otherwise.
    """

    def __init__(self, location: CacheIndex | PathLike, *, shuffle_shards: bool = False, seed: int = 0,
                 shuffle_buffer: int = 0, rank: int | None = None, world_size: int | None = None,
                 worker_id: int | None = None, num_workers: int | None = None, equal_windows_per_rank: bool = False,
                 with_meta: bool = False, storage_options: Mapping[str, Any] | None = None, verify: bool = True):
        super().__init__()
        importlib.import_module("webdataset.tariterators")  # imported here so forked DataLoader workers inherit it

        self.index = location if isinstance(location, CacheIndex) else load_index(location, storage_options)
        if shuffle_buffer < 0:
            raise ConfigError(f"shuffle_buffer is {shuffle_buffer}; use 0 (no shuffling) or a positive count")
        if (rank is None) != (world_size is None):
            raise ConfigError("give both rank and world_size, or neither")
        if (worker_id is None) != (num_workers is None):
            raise ConfigError("give both worker_id and num_workers, or neither")
        for name, i, n in (("rank", rank, world_size), ("worker_id", worker_id, num_workers)):
            if n is not None and not 0 <= i < n:
                raise ConfigError(f"{name}={i} is outside 0..{n - 1}")
        self.shuffle_shards, self.seed, self.shuffle_buffer = shuffle_shards, int(seed), int(shuffle_buffer)
        self.rank, self.world_size = rank, world_size
        self.worker_id, self.num_workers = worker_id, num_workers
        self.equal_windows_per_rank, self.with_meta = equal_windows_per_rank, with_meta
        self.storage_options = dict(storage_options or {})
        self.verify = bool(verify)
        self.epoch = 0
        if self.verify and not self.index.has_checksums:
            warnings.warn(f"window cache {self.index.location} (format {self.index.format_version}) has no shard "
                          "checksums, so damage to its shards goes unnoticed; delete the folder and run again to "
                          "rebuild it with checksums", stacklevel=2)

    def set_epoch(self, epoch: int) -> None:
        """Epoch of the next iteration (seeds the shard order and the shuffle buffer)."""
        self.epoch = int(epoch)

    def __getstate__(self):
        # Pickled into spawned DataLoader workers from the main process: fix the rank there, where
        # torch.distributed is initialised (it is not in a spawned worker).
        state = self.__dict__.copy()
        if state["rank"] is None:
            state["rank"], state["world_size"] = _dist_rank_world()
        return state

    def _rank_world(self) -> tuple[int, int]:
        if self.rank is not None:
            return self.rank, self.world_size
        return _dist_rank_world()

    def _worker(self) -> tuple[int, int]:
        if self.worker_id is not None:
            return self.worker_id, self.num_workers
        info = get_worker_info()
        return (info.id, info.num_workers) if info is not None else (0, 1)

    def shard_order(self) -> list[int]:
        """Shard indices in this epoch's order (the same on every rank)."""
        order = list(range(len(self.index.shards)))
        if self.shuffle_shards:
            np.random.default_rng([self.seed, self.epoch, 0x5A4D]).shuffle(order)
        return order

    def assignment(self, rank: int | None = None, world_size: int | None = None, worker_id: int | None = None,
                   num_workers: int | None = None) -> list[int]:
        """Shard indices read by (rank, worker) this epoch (defaults: this reader's)."""
        r, w = (rank, world_size) if rank is not None else self._rank_world()
        k, n = (worker_id, num_workers) if worker_id is not None else self._worker()
        return self.shard_order()[r::w][k::n]

    def _window_limit(self, rank: int, world: int, worker: int, workers: int) -> int | None:
        if not self.equal_windows_per_rank:
            return None
        order = self.shard_order()
        counts = [self.index.shards[i].windows for i in order]
        per_rank = min(sum(counts[r::world]) for r in range(world))
        left = per_rank
        for k in range(workers):  # fill the rank's quota worker by worker
            mine = sum(counts[rank::world][k::workers])
            take = min(mine, left)
            if k == worker:
                return take
            left -= take
        return 0

    def num_windows(self) -> int:
        """Windows this (rank, worker) yields this epoch."""
        (r, w), (k, n) = self._rank_world(), self._worker()
        limit = self._window_limit(r, w, k, n)
        total = sum(self.index.shards[i].windows for i in self.assignment(r, w, k, n))
        return total if limit is None else min(total, limit)

    def _samples(self, shard_ids: Sequence[int]) -> Iterator[dict[str, Any]]:
        from webdataset.tariterators import group_by_keys

        location = self.index.location
        for i in shard_ids:
            shard = self.index.shards[i]
            url = self.index.shard_url(shard.name)
            want = shard.crc32() if self.verify else None
            count = 0
            with _open_url(url, self.storage_options) as stream:
                reader = _ShardStream(stream, checksum=want is not None)
                try:
                    for sample in group_by_keys(_tar_members(reader, url, location)):
                        count += 1
                        yield _decode(sample, self.with_meta, location)
                except ValueError as exc:  # group_by_keys: a member name twice in a row
                    raise _damaged(url, f"members out of order ({exc.args[0]})", location) from exc
                if count != shard.windows:
                    raise _damaged(url, f"holds {count} windows, index.json says {shard.windows} (truncated, damaged "
                                        "or not from this cache)", location)
                if want is not None:
                    crc, size = reader.finish()
                    if (crc, size) != (want, shard.bytes):
                        raise _damaged(url, f"its content does not match index.json ({CHECKSUM}:{crc:08x} over {size} "
                                            f"bytes, index.json says {shard.checksum} over {shard.bytes}): it changed "
                                            "after the cache was written (disk or copy damage, or an edit), so the "
                                            "windows read from it cannot be trusted", location)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        (r, w), (k, n) = self._rank_world(), self._worker()
        mine = self.assignment(r, w, k, n)
        if not mine and len(self.index.shards) < w * n:
            warnings.warn(f"cache {self.index.location} has {len(self.index.shards)} shards for {w} ranks x {n} "
                          f"workers: rank {r} worker {k} reads nothing; build with smaller shards", stacklevel=2)
        limit = self._window_limit(r, w, k, n)
        stream = self._samples(mine)
        if self.shuffle_buffer > 0:
            stream = _shuffled(stream, self.shuffle_buffer, np.random.default_rng([self.seed, self.epoch, r, k]))
        for count, sample in enumerate(stream):
            if limit is not None and count >= limit:
                break
            yield sample


def _shuffled(stream: Iterable, size: int, rng: np.random.Generator) -> Iterator:
    """Bounded shuffle: hold ``size`` items, emit a random one as each new one arrives, then the rest."""
    buf: list = []
    for item in stream:
        if len(buf) < size:
            buf.append(item)
            continue
        j = int(rng.integers(size))
        buf[j], item = item, buf[j]
        yield item
    rng.shuffle(buf)
    yield from buf
