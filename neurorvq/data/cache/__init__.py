"""A sharded on-disk cache of preprocessed windows, written once and streamed back with bounded memory.

Why: preprocessing (reading EDF/WFDB files, filtering, resampling, cutting windows) costs far more than
reading its result back, and a corpus is read many epochs over, often by many GPUs on many machines. This
module writes the windows once as standard `WebDataset <https://github.com/webdataset/webdataset>`_ tar
shards and streams them back; each (rank, DataLoader worker) reads its own disjoint set of shards, from a
local folder or from object storage.

Format (``FORMAT_VERSION`` 2), one folder per cache key::

    <root>/<key>/
        index.json              the manifest; a folder without it (or with another key) is not a cache
        shard-000000.tar        standard WebDataset tar shards, uncompressed, in source order
        shard-000001.tar
        ...

Each window is one WebDataset sample, two tar members sharing the key ``<source:06d>_<window:06d>``:

* ``<key>.signal.npy``  float32 ``[C, T]`` in the modality's unit (uV for EEG/EMG, mV for ECG), NumPy ``.npy``
* ``<key>.json``        ``{"channel_ids": [C ints] (vocabulary positions of the rows, ``spec.channel_index``),
  "recording": str, "start": int | null (first sample of the window in the preprocessed recording),
  "label": int (optional), "subject": int (optional)}``

so ``webdataset.WebDataset(urls).decode()`` (or ``tar tf``) reads the shards without this module.
``index.json`` holds ``format``, ``format_version``, ``key``, ``config`` (the preprocessing config), ``sources``
(identity of every source file and its window count), ``shards`` (name, window count, file size in bytes,
indices into ``channel_sets``, ``checksum``), ``channel_sets`` (``channel_ids`` and window count of every
distinct channel set) and ``totals`` (windows, bytes, shards, sources). A shard's ``checksum`` is
``"crc32:<8 hex digits>"``: ``zlib.crc32`` of the whole shard file, computed from the bytes as they are written
(by hand: ``f"{zlib.crc32(open(path, 'rb').read()):08x}"``). Format 1 (before checksums) differs only in lacking
``checksum``; it is still read, unverified and with a warning. Since the format version is part of the key, an
upgraded neurorvq builds a new, checksummed cache under a new key instead of reusing a format-1 one (the old
folder stays until deleted).

Integrity: CRC-32 rather than a cryptographic hash because it guards against accidents (disk, copy, in-place
edits), not attacks, and it is the cheapest hash in the standard library (~4 GB/s here vs ~1.8 for SHA-256 and ~0.9
for BLAKE2b), which matters when each worker streams ~400 MB/s. :class:`StreamingWindows` hashes each shard's
bytes as they pass (one read, no second pass) and compares at the end of the shard; a damaged header or member
fails where it is met. Every such failure is one :class:`CacheError` naming the cache folder, the shard (and the
member or byte offset where known) and the fix: the cache cannot repair itself, and :func:`open_cache` still sees
it as complete (sizes match), so **delete the cache folder and run again**; the next ``prepare_data()`` /
:func:`get_or_build` rebuilds it. :func:`check_cache` with ``checksums=True`` verifies a whole cache at once.

Writing (:func:`get_or_build` / :func:`build_cache`): the key is :func:`cache_key` of the source files'
identity and the preprocessing config. Shards are written into ``<root>/<key>.partial/``, then ``index.json``,
then the folder is renamed to ``<root>/<key>/`` (atomic on POSIX); an interrupted build leaves at most a
``.partial`` folder, which the next build removes. A write that fails (a full disk or quota, no permission)
stops the build with one :class:`~neurorvq.file_io.FileWriteError` (a :class:`NeuroRVQError` and an ``OSError``
with its ``errno``) naming the file being written, the free space on its filesystem and the fix (free space or
point ``cache_dir`` elsewhere); the ``.partial`` folder is removed and an existing cache of that key is left as it
was. :func:`open_cache` counts a folder as complete only if its ``index.json`` names the same key and every listed
shard exists with the listed size. Builds of one key are serialised by an advisory lock file ``<root>/<key>.lock``
(:func:`build_lock`, ``fcntl.flock``; harmless to delete while no build runs). :func:`get_or_build` (and
``RecordingDataModule.prepare_data``) look again once they hold the lock: a cache a concurrent builder finished
meanwhile is reused, not rebuilt and swapped under its readers (:func:`build_cache` itself always writes). The
per-source work is a top-level (importable, picklable) function ``process(source) -> iterable of window dicts``;
with ``num_workers > 0`` it runs in a ``ProcessPoolExecutor`` and every worker writes its own shards.

Reading (:class:`StreamingWindows`): an ``IterableDataset`` over a cache folder or URL prefix (``/data/cache/
<key>``, ``file:///data/cache/<key>``, ``s3://bucket/cache/<key>``, ``gs://...``, ``memory://...``: any fsspec
URL, with its fsspec backend installed, e.g. ``s3fs``; or a ``pipe:`` command with ``{shard}`` in it, e.g.
``pipe:aws s3 cp s3://bucket/cache/<key>/{shard} -``). Upload a cache by copying the folder as it is
(``aws s3 sync <root>/<key> s3://bucket/cache/<key>``). Memory stays bounded: only the shard being read
(one tar member at a time) and the shuffle buffer are held, never the whole cache. Members are grouped into
samples by ``webdataset.tariterators.group_by_keys``; shards are read by a small ustar reader that
puts each ``.npy`` payload straight into its array (falling back to ``tarfile`` for any other tar dialect); it
only reads forward, so ``pipe:`` streams take the same path. Each shard's window count and checksum are checked
against ``index.json``.

In a Lightning ``DataModule``, build in ``prepare_data`` (runs on one process per node, or once with
``prepare_data_per_node=False`` on a shared filesystem) and create :class:`StreamingWindows` in ``setup`` or
``*_dataloader``; ranks come from ``torch.distributed`` when it is initialised. Call
``dataset.set_epoch(trainer.current_epoch)`` at each epoch start (e.g. in ``train_dataloader`` with
``reload_dataloaders_every_n_epochs=1``, or in ``on_train_epoch_start`` with ``persistent_workers=False``) for a
new shard order each epoch; Lightning calls ``set_epoch`` only on samplers, not on iterable datasets.

Modules, one job each (lower ones never import higher ones): :mod:`~neurorvq.data.cache.checksum` (CRC-32 while
writing and reading), :mod:`~neurorvq.data.cache.index` (format constants, :class:`CacheError`, ``index.json``,
completeness), :mod:`~neurorvq.data.cache.key` (:func:`cache_key`), :mod:`~neurorvq.data.cache.tar` (the shard
reader), :mod:`~neurorvq.data.cache.writer` (:func:`build_cache`, :func:`get_or_build`),
:mod:`~neurorvq.data.cache.stream` (:class:`StreamingWindows`) and :mod:`~neurorvq.data.cache.batching`
(:func:`bucket_batches`). This package re-exports their public names.
"""

from neurorvq.data.cache import index as _index, key as _key, tar as _tar, writer as _writer
from neurorvq.data.cache.batching import BucketBatches, bucket_batches
from neurorvq.data.cache.index import (FORMAT_VERSION, CacheError, CacheIndex, ShardInfo, check_cache, load_index,
                                       open_cache)
from neurorvq.data.cache.key import cache_key, source_identity
from neurorvq.data.cache.stream import StreamingWindows
from neurorvq.data.cache.writer import build_cache, build_lock, get_or_build

# Not in __all__, but reachable here as they were before the split into modules: the format constants and the
# private ``.npy``/tar helpers that tests import.
FORMAT, READABLE_FORMAT_VERSIONS, CHECKSUM, PathLike = (_index.FORMAT, _index.READABLE_FORMAT_VERSIONS, _index.CHECKSUM,
                                                        _index.PathLike)
HEADER_BYTES = _key.HEADER_BYTES
DEFAULT_MAX_WINDOWS_PER_SHARD, DEFAULT_MAX_BYTES_PER_SHARD = (_writer.DEFAULT_MAX_WINDOWS_PER_SHARD,
                                                              _writer.DEFAULT_MAX_BYTES_PER_SHARD)
_npy_offset, _load_npy, _tar_members = _tar._npy_offset, _tar._load_npy, _tar._tar_members

__all__ = ["FORMAT_VERSION", "CacheError", "CacheIndex", "ShardInfo", "StreamingWindows", "BucketBatches",
           "bucket_batches", "build_cache", "build_lock", "cache_key", "check_cache", "get_or_build", "load_index",
           "open_cache", "source_identity"]
