"""Batches of one channel set each, without padding: :func:`bucket_batches` and :class:`BucketBatches`."""

from __future__ import annotations

from typing import Any, Iterable, Iterator

import torch
from torch.utils.data import IterableDataset, default_collate

from neurorvq.errors import ConfigError


def _collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    # default_collate stacks straight into shared memory inside DataLoader workers (no copy when sent)
    out: dict[str, Any] = {"signal": default_collate([x["signal"] for x in items]),
                           "channel_ids": default_collate([x["channel_ids"] for x in items])}
    for name in ("label", "subject"):
        if any(name in x for x in items):
            missing = torch.tensor(-1, dtype=torch.long)
            out[name] = default_collate([x.get(name, missing) for x in items])
    for name in ("recording", "start", "key"):
        if name in items[0]:
            out[name] = [x.get(name) for x in items]
    return out


def _bucketed(stream: Iterable[dict[str, Any]], batch_size: int, drop_last: bool,
              max_open_buckets: int) -> Iterator[dict[str, Any]]:
    buckets: dict[tuple, list] = {}  # insertion order = age, oldest first
    for item in stream:
        sig, ids = item["signal"], item["channel_ids"]
        group = (ids.numpy().tobytes(), sig.shape[-1])
        bucket = buckets.setdefault(group, [])
        bucket.append(item)
        if len(bucket) == batch_size:
            del buckets[group]
            yield _collate(bucket)
        elif len(buckets) > max_open_buckets:
            oldest = next(iter(buckets))
            partial = buckets.pop(oldest)
            if not drop_last:
                yield _collate(partial)
    if not drop_last:
        for bucket in buckets.values():
            yield _collate(bucket)


class BucketBatches(IterableDataset):
    """An ``IterableDataset`` of batches of ``dataset`` grouped by channel set (see :func:`bucket_batches`);
    use it with ``DataLoader(batch_size=None)``. Batching runs inside each DataLoader worker."""

    def __init__(self, dataset: Iterable[dict[str, Any]], batch_size: int, *, drop_last: bool = False,
                 max_open_buckets: int = 4):
        super().__init__()
        if batch_size < 1 or max_open_buckets < 1:
            raise ConfigError("batch_size and max_open_buckets must be >= 1")
        self.dataset, self.batch_size = dataset, batch_size
        self.drop_last, self.max_open_buckets = drop_last, max_open_buckets

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return _bucketed(iter(self.dataset), self.batch_size, self.drop_last, self.max_open_buckets)


def bucket_batches(stream: Iterable[dict[str, Any]], batch_size: int, *, drop_last: bool = False,
                   max_open_buckets: int = 4):
    """Group windows into batches of one channel set (and one length) each: no padding, no mixing.

    Windows of the same channel set (``channel_ids`` and ``T``) are collected in a bucket; a full bucket
    (``batch_size`` windows) is emitted as ``{"signal": float32 [B, C, T], "channel_ids": int64 [B, C] (rows
    identical), "label"/"subject": int64 [B] when any window has one (-1 where missing), "recording"/"start"/
    "key": lists when the windows carry them}``. At most ``max_open_buckets`` partial buckets are held (memory
    <= ``max_open_buckets x batch_size`` windows); opening one more emits the oldest partial bucket as a
    smaller batch (dropped with ``drop_last``), as are the leftovers at the end. ``max_open_buckets=1``
    batches runs of consecutive windows only.

    ``stream`` an ``IterableDataset`` (e.g. :class:`StreamingWindows`): returns a :class:`BucketBatches`
    dataset for ``DataLoader(dataset, batch_size=None, num_workers=...)`` (batches are formed in the workers).
    Any other iterable: returns a generator of batches.
    """
    if isinstance(stream, IterableDataset):
        return BucketBatches(stream, batch_size, drop_last=drop_last, max_open_buckets=max_open_buckets)
    if batch_size < 1 or max_open_buckets < 1:
        raise ConfigError("batch_size and max_open_buckets must be >= 1")
    return _bucketed(stream, batch_size, drop_last, max_open_buckets)
