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
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import os
import pickle
import shutil
import sys
import tarfile
import time
import warnings
import zlib
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np
import torch
from torch.utils.data import IterableDataset, default_collate, get_worker_info

from neurorvq.errors import ConfigError, NeuroRVQError
from neurorvq.file_io import FileWriteError

FORMAT = "neurorvq-window-cache"
FORMAT_VERSION = 2
READABLE_FORMAT_VERSIONS = (1, 2)
"""Index versions this module reads: 1 (no shard checksums, read unverified) and 2."""
CHECKSUM = "crc32"
"""Algorithm of the shard checksums (``zlib.crc32`` of the whole shard file), stored as ``"crc32:<8 hex>"``."""
HEADER_BYTES = 64 * 1024
"""Bytes of each source file hashed into the cache key (its header; large files are not re-read)."""
DEFAULT_MAX_WINDOWS_PER_SHARD = 10_000
DEFAULT_MAX_BYTES_PER_SHARD = 128 * 1024 * 1024
_KEY_HEX = 24  # characters of the SHA-256 kept in the key (96 bits)
_TAR_MEMBER_OVERHEAD = 2 * 1024  # header + padding of the 2 members of a sample, for shard-size planning

PathLike = str | os.PathLike


class CacheError(NeuroRVQError, RuntimeError):
    """A cache that cannot be written or read (names the folder or shard and the reason)."""


# ------------------------------------------------------------------------------------------------ key
def _jsonable(obj: Any) -> Any:
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable; give the config as plain JSON values")


def _config_json(config: Mapping[str, Any] | None) -> str:
    try:
        return json.dumps(config or {}, sort_keys=True, default=_jsonable, separators=(",", ":"))
    except TypeError as exc:
        raise ConfigError(f"cache config: {exc}") from exc


def source_identity(path: PathLike) -> dict[str, Any]:
    """``{"path", "size", "mtime_ns", "header_sha256"}`` of a source file; the SHA-256 covers its first
    ``HEADER_BYTES`` (64 KiB) only, so identifying a large corpus does not re-read it."""
    p = Path(path)
    try:
        st = p.stat()
        if not p.is_file():
            raise CacheError(f"cache source {p} is not a file; list the files (not folders) a cache is built from")
        with open(p, "rb") as f:
            header = hashlib.sha256(f.read(HEADER_BYTES)).hexdigest()
    except FileNotFoundError as exc:
        raise CacheError(f"cache source {p} does not exist") from exc
    return {"path": os.fspath(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns, "header_sha256": header}


def cache_key(sources: Sequence[PathLike], config: Mapping[str, Any] | None) -> str:
    """Key of the cache built from ``sources`` (in this order) with the preprocessing ``config``.

    SHA-256 (first 24 hex characters) of: the format version, each source's :func:`source_identity` (path as
    given, size, mtime_ns, SHA-256 of its first 64 KiB) and ``config`` as JSON with sorted keys. Touching,
    resizing or editing the header of a file, or changing any config value, gives another key.
    """
    h = hashlib.sha256()
    h.update(f"{FORMAT}/{FORMAT_VERSION}\n".encode())
    for src in sources:
        h.update(json.dumps(source_identity(src), sort_keys=True).encode())
        h.update(b"\n")
    h.update(_config_json(config).encode())
    return h.hexdigest()[:_KEY_HEX]


# ------------------------------------------------------------------------------------------------ index
@dataclass
class ShardInfo:
    """One shard: file ``name`` in the cache folder, ``windows`` it holds, file size ``bytes``,
    ``channel_sets`` (indices into :attr:`CacheIndex.channel_sets`) present in it, and ``checksum`` of the
    whole file (``"crc32:<8 hex digits>"``; ``None`` in a format-1 cache, which is read unverified)."""

    name: str
    windows: int
    bytes: int
    channel_sets: list[int] = field(default_factory=list)
    checksum: str | None = None

    def crc32(self) -> int | None:
        """The recorded CRC-32 as an int (``None`` when the index has no checksum)."""
        if self.checksum is None:
            return None
        algorithm, _, value = str(self.checksum).partition(":")
        if algorithm != CHECKSUM or len(value) != 8:
            raise CacheError(f"shard {self.name}: checksum {self.checksum!r} is not '{CHECKSUM}:<8 hex digits>'; "
                             "the index was written by a newer neurorvq or is damaged")
        try:
            return int(value, 16)
        except ValueError:
            raise CacheError(f"shard {self.name}: checksum {self.checksum!r} is not hexadecimal; index.json is "
                             "damaged") from None


@dataclass
class CacheIndex:
    """A complete cache's manifest (``index.json``) and where it lives (``location``: folder or URL prefix)."""

    location: str
    key: str
    config: dict[str, Any]
    sources: list[dict[str, Any]]
    shards: list[ShardInfo]
    channel_sets: list[dict[str, Any]]  # [{"channel_ids": [int, ...], "windows": int}]
    total_windows: int
    total_bytes: int
    format_version: int = FORMAT_VERSION

    @classmethod
    def from_json(cls, location: str, doc: Mapping[str, Any]) -> "CacheIndex":
        if doc.get("format") != FORMAT or doc.get("format_version") not in READABLE_FORMAT_VERSIONS:
            raise CacheError(f"{location}/index.json is format {doc.get('format')!r} version "
                             f"{doc.get('format_version')!r}; this neurorvq reads {FORMAT!r} versions "
                             f"{', '.join(map(str, READABLE_FORMAT_VERSIONS))}")
        return cls(location=location, key=doc["key"], config=doc.get("config", {}), sources=doc.get("sources", []),
                   shards=[ShardInfo(**s) for s in doc["shards"]], channel_sets=doc.get("channel_sets", []),
                   total_windows=int(doc["totals"]["windows"]), total_bytes=int(doc["totals"]["bytes"]),
                   format_version=doc["format_version"])

    def shard_url(self, name: str) -> str:
        return _join(self.location, name)

    @property
    def shard_urls(self) -> list[str]:
        return [self.shard_url(s.name) for s in self.shards]

    @property
    def has_checksums(self) -> bool:
        """Whether every shard has a recorded checksum (format 2); format-1 caches have none."""
        return all(s.checksum is not None for s in self.shards)


def _join(location: str, name: str) -> str:
    if "{shard}" in location:
        return location.replace("{shard}", name)
    if "://" in location or location.startswith("pipe:"):
        return location.rstrip("/") + "/" + name
    return os.path.join(location, name)


@contextlib.contextmanager
def _open_url(url: str, storage_options: Mapping[str, Any] | None = None):
    """Binary read stream of a local path, ``file://`` URL, ``pipe:`` command or any fsspec URL."""
    if url.startswith("pipe:"):
        from webdataset.gopen import gopen

        stream = gopen(url, "rb")
    elif url.startswith("file://"):
        from urllib.parse import urlparse
        from urllib.request import url2pathname

        stream = open(url2pathname(urlparse(url).path), "rb")
    elif "://" in url:
        import fsspec

        stream = fsspec.open(url, "rb", **(storage_options or {})).open()
    else:
        stream = open(url, "rb")
    try:
        yield stream
    finally:
        stream.close()


def load_index(location: PathLike, storage_options: Mapping[str, Any] | None = None) -> CacheIndex:
    """Read ``index.json`` at ``location`` (folder, ``file://``/fsspec URL prefix, or ``pipe:`` with
    ``{shard}``). Raises :class:`CacheError` if it is missing or unreadable; does not check the shards."""
    location = os.fspath(location)
    url = _join(location, "index.json")
    try:
        with _open_url(url, storage_options) as f:
            doc = json.loads(f.read())
    except (OSError, ValueError) as exc:
        raise CacheError(f"no readable cache index at {url}: {exc}") from exc
    return CacheIndex.from_json(location, doc)


def check_cache(folder: PathLike, key: str | None = None, checksums: bool = False) -> str | None:
    """Why the local cache ``folder`` is not complete (``None`` if it is): ``index.json`` missing or
    unreadable, written for another key or format, or a listed shard missing or of the wrong size. With
    ``checksums`` also every shard's checksum (reads the whole cache: a full check, e.g. after copying a
    cache; :func:`open_cache` and reading do not need it, reading verifies each shard as it streams)."""
    folder = Path(folder)
    if not (folder / "index.json").is_file():
        return f"{folder}/index.json is missing (build interrupted or never run)"
    try:
        index = load_index(folder)
    except (CacheError, KeyError, TypeError) as exc:
        return f"{folder}/index.json is unusable: {exc}"
    if key is not None and index.key != key:
        return f"{folder}/index.json is for key {index.key}, not {key}"
    for shard in index.shards:
        p = folder / shard.name
        if not p.is_file():
            return f"shard {p} listed in index.json is missing"
        if p.stat().st_size != shard.bytes:
            return f"shard {p} has {p.stat().st_size} bytes, index.json says {shard.bytes}"
        try:
            want = shard.crc32() if checksums else None
        except CacheError as exc:
            return str(exc)
        if want is not None:
            with open(p, "rb") as f:
                reader = _ShardStream(f, checksum=True)
                crc, _ = reader.finish()
            if crc != want:
                return f"shard {p} has checksum {CHECKSUM}:{crc:08x}, index.json says {shard.checksum}"
    return None


def open_cache(root_dir: PathLike, key: str) -> CacheIndex | None:
    """The complete cache ``<root_dir>/<key>/`` or ``None`` if it is missing or incomplete (see
    :func:`check_cache` for the reason)."""
    folder = Path(root_dir) / key
    if check_cache(folder, key) is not None:
        return None
    return load_index(folder)


# ------------------------------------------------------------------------------------------------ writing
def _window_sample(win: Mapping[str, Any], key: str, default_recording: str) -> tuple[dict, bytes]:
    """Validate one window dict and encode it as a WebDataset sample; also returns its channel-set key."""
    from webdataset.writer import numpy_dumps

    try:
        signal = np.ascontiguousarray(win["signal"], dtype=np.float32)
        channel_ids = np.ascontiguousarray(win["channel_ids"], dtype=np.int64)
    except KeyError as exc:
        raise CacheError(f"window {key} from {default_recording} has no {exc.args[0]!r}; a window dict needs "
                         f"'signal' [C, T] and 'channel_ids' [C]") from exc
    if signal.ndim != 2 or channel_ids.shape != (signal.shape[0],):
        raise CacheError(f"window {key} from {default_recording}: signal {tuple(signal.shape)} and channel_ids "
                         f"{tuple(channel_ids.shape)}; need signal [C, T] and channel_ids [C]")
    meta: dict[str, Any] = {"channel_ids": channel_ids.tolist(),
                            "recording": str(win.get("recording", default_recording)),
                            "start": None if win.get("start") is None else int(win["start"])}
    for name in ("label", "subject"):
        if win.get(name) is not None:
            meta[name] = int(win[name])
    sample = {"__key__": key, "signal.npy": numpy_dumps(signal), "json": json.dumps(meta).encode()}
    return sample, channel_ids.tobytes()


_PARTIAL = ".partial"


def _disk_full(error: OSError) -> bool:
    """Whether ``error`` says the disk (``ENOSPC``) or the user's quota (``EDQUOT``) is full."""
    import errno

    return error.errno is not None and error.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))


def _free(folder: Path) -> str:
    """Free space of the filesystem holding ``folder`` (its nearest existing parent), for messages."""
    for candidate in (folder, *folder.parents):
        if candidate.exists():
            try:
                return f"{shutil.disk_usage(candidate).free / 1e6:.1f} MB free on that filesystem"
            except OSError:
                break
    return "free space unknown"


def _written(folder: Path) -> float:
    """MB of files under ``folder`` (what this build has written so far)."""
    try:
        return sum(e.stat().st_size for e in os.scandir(folder) if e.is_file()) / 1e6
    except OSError:
        return 0.0


def _write_error(path: Path, partial: Path, error: OSError) -> FileWriteError:
    """The one error of a cache build whose write of ``path`` (in the build folder ``partial``) failed: the path,
    the reason, the free space, what became of the build and what to do; a :class:`FileWriteError` (an
    ``OSError`` too, ``errno`` kept). Raised ``from`` the original error."""
    final = partial.with_name(partial.name[:-len(_PARTIAL)]) if partial.name.endswith(_PARTIAL) else partial
    if _disk_full(error):
        fix = "Free space there, or point cache_dir (build_cache's root_dir) at a filesystem with room, and run again"
    else:
        fix = ("Check that the folder is writable and its disk healthy, or point cache_dir (build_cache's root_dir) "
               "elsewhere, and run again")
    return FileWriteError(error.errno, f"could not write the window cache file '{path}': "
                          f"{error.strerror or error} ({_free(partial)}; {_written(partial):.1f} MB of this build "
                          f"written). The build stopped and its folder {partial} is removed (if a killed process "
                          f"leaves it, the next build removes it); no cache was written under {final}. {fix}.")


class _Crc32Writer:
    """A write-only file wrapper that feeds every byte written to CRC-32 (the shard checksum, computed as the
    tar is written: no second pass over the file). After :meth:`discard` it swallows writes (a failed shard's
    tar writer can then be closed without touching the file again)."""

    def __init__(self, file) -> None:
        self.file, self.crc, self.size = file, 0, 0
        self.discarding = False

    def discard(self) -> None:
        self.discarding = True

    def write(self, data) -> int:
        if self.discarding:
            return memoryview(data).nbytes
        self.crc = zlib.crc32(data, self.crc)
        self.size += memoryview(data).nbytes
        return self.file.write(data)

    def flush(self) -> None:
        if not self.discarding:
            self.file.flush()


class _ShardSink:
    """Writes samples into ``<folder>/<prefix>-NNNNNN.tar`` files, starting a new one before a shard would
    pass ``max_windows`` windows or ``max_bytes`` bytes (a single larger window still gets its own shard).
    Each shard's CRC-32 is computed from the bytes as they are written. A failed write (a full disk) is one
    :class:`FileWriteError` naming the shard (:func:`_write_error`); :meth:`abort` drops the open shard without
    writing to it again, so no second error follows the first."""

    def __init__(self, folder: Path, prefix: str, max_windows: int, max_bytes: int, fsync: bool):
        self.folder, self.prefix, self.fsync = folder, prefix, fsync
        self.max_windows, self.max_bytes = max_windows, max_bytes
        self.shards: list[dict[str, Any]] = []  # {"file", "windows", "bytes", "channel_sets": {bytes: count}}
        self._file = self._writer = self._crc = None
        self._planned = 0

    def write(self, sample: dict, channel_set: bytes) -> None:
        from webdataset.writer import TarWriter

        size = sum(len(v) for k, v in sample.items() if k != "__key__") + _TAR_MEMBER_OVERHEAD
        cur = self.shards[-1] if self.shards else None
        if self._writer is None or cur["windows"] >= self.max_windows or (
                cur["windows"] > 0 and self._planned + size > self.max_bytes):
            self._close()
            name = f"{self.prefix}-{len(self.shards):06d}.tar"
            try:
                self._file = open(self.folder / name, "wb")
            except OSError as exc:
                raise _write_error(self.folder / name, self.folder, exc) from exc
            self._crc = _Crc32Writer(self._file)
            # integer mtime: a float one makes tarfile add a PAX header to every member (2x slower to read)
            self._writer = TarWriter(self._crc, encoder=False, mtime=0)
            self.shards.append({"file": name, "windows": 0, "bytes": 0, "channel_sets": {}})
            self._planned = 0
            cur = self.shards[-1]
        try:
            self._writer.write(sample)
        except OSError as exc:
            path = self.folder / cur["file"]
            self.abort()
            raise _write_error(path, self.folder, exc) from exc
        self._planned += size
        cur["windows"] += 1
        cur["channel_sets"][channel_set] = cur["channel_sets"].get(channel_set, 0) + 1

    def _close(self) -> None:
        if self._writer is not None:
            path = self.folder / self.shards[-1]["file"]
            try:
                self._writer.close()  # writes the tar end blocks; the file object stays ours
                self._file.flush()
                if self.fsync:
                    os.fsync(self._file.fileno())
                self._file.close()
            except OSError as exc:
                self.abort()
                raise _write_error(path, self.folder, exc) from exc
            size = os.path.getsize(path)
            if size != self._crc.size:  # pragma: no cover - a writer that bypassed the wrapper
                raise CacheError(f"shard {self.folder / self.shards[-1]['file']} has {size} bytes, {self._crc.size} "
                                 "were written through the checksum")
            self.shards[-1]["bytes"] = size
            self.shards[-1]["checksum"] = f"{CHECKSUM}:{self._crc.crc & 0xFFFFFFFF:08x}"
            self._writer = self._file = self._crc = None

    def close(self) -> list[dict[str, Any]]:
        self._close()
        return self.shards

    def abort(self) -> None:
        """Close the open shard, if any, without writing to it again (after a failure: the build folder is
        removed anyway); never raises."""
        if self._writer is None:
            return
        self._crc.discard()
        with contextlib.suppress(Exception):
            self._writer.close()  # ends the tar writer's own state; its remaining bytes go nowhere
        with contextlib.suppress(OSError):
            self._file.close()  # a buffered file whose flush fails still closes its descriptor
        self._writer = self._file = self._crc = None


def _write_sources(task: int, sources: Sequence[tuple[int, Any]], process: Callable[[Any], Iterable[Mapping]],
                   folder: str, max_windows: int, max_bytes: int, fsync: bool,
                   on_source: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Worker body: run ``process`` on each ``(source_index, source)`` and write the windows to this task's own
    shards ``part-<task>-NNNNNN.tar``. Returns the shards written and the window count per source."""
    sink = _ShardSink(Path(folder), f"part-{task:06d}", max_windows, max_bytes, fsync)
    counts = {}
    try:
        for index, source in sources:
            n = 0
            for n, win in enumerate(process(source), start=1):
                sample, cset = _window_sample(win, f"{index:06d}_{n - 1:06d}", str(source))
                sink.write(sample, cset)
            counts[index] = n
            if on_source is not None:
                on_source(n)
    except BaseException:
        sink.abort()  # the build folder is removed: finishing the shard would only fail again on a full disk
        raise
    return {"task": task, "shards": sink.close(), "counts": counts}


def _progress(total: int, desc: str, enabled: bool):
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - tqdm ships with lightning
        return None
    return tqdm(total=total, desc=desc, unit="source", file=sys.stderr, dynamic_ncols=True)


@contextlib.contextmanager
def build_lock(root_dir: PathLike, key: str) -> Iterator[None]:
    """Exclusive advisory lock serialising builds of ``key`` under ``root_dir`` (the file
    ``<root_dir>/<key>.lock``; a no-op where ``fcntl`` is missing). Whoever gets it should look again whether
    the cache is complete (another process may have just finished it) before building with
    ``build_cache(..., lock=False)``. Not re-entrant: ``fcntl.flock`` locks belong to an open file, so taking it
    again inside itself, even in the same process, waits forever."""
    root = Path(root_dir)
    root.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with open(root / f"{key}.lock", "a+") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def build_cache(root_dir: PathLike, key: str,
                items: Callable[[Any], Iterable[Mapping]] | Iterable[tuple[Any, Iterable[Mapping]]], *, sources: Sequence[Any] | None = None, config: Mapping[str, Any] | None = None,
                num_workers: int = 0, max_windows_per_shard: int = DEFAULT_MAX_WINDOWS_PER_SHARD,
                max_bytes_per_shard: int = DEFAULT_MAX_BYTES_PER_SHARD, sources_per_task: int | None = None,
                progress: bool = True, fsync: bool = True, mp_context: Any = None, lock: bool = True,
                sidecars: Callable[[], Mapping[str, str]] | None = None) -> CacheIndex:
    """Write the cache ``<root_dir>/<key>/`` (replacing any existing folder of that key) and return its index.

    ``items`` is either

    * a callable ``process(source) -> iterable of window dicts``, applied to every element of ``sources`` in
      order; with ``num_workers > 0`` it runs in that many worker processes (``ProcessPoolExecutor``), so it
      must be a **top-level, importable function** (or another picklable callable; no lambda or closure), and
      each worker writes its own shards; or
    * an iterable of ``(source_name, windows)`` pairs, written in this process (``num_workers`` is ignored).

    A window dict holds ``signal`` (float32 ``[C, T]`` in the modality's unit; other float dtypes are cast to
    float32), ``channel_ids`` (int ``[C]``, vocabulary positions) and optionally ``label`` and ``subject``
    (ints), ``recording`` (str; default ``str(source)``) and ``start`` (first sample of the window in the
    preprocessed recording). ``process`` may return a list or, to keep memory bounded, a generator.

    Shards hold at most ``max_windows_per_shard`` windows and about ``max_bytes_per_shard`` bytes (a shard
    ends before the window that would exceed it). Sources are split into contiguous tasks of
    ``sources_per_task`` sources (default: about 4 tasks per worker); the shards end up numbered in source
    order whatever the worker count. Everything is written into ``<key>.partial/``, which is renamed to
    ``<key>/`` only after ``index.json``: an exception (or a kill) leaves no complete-looking cache; the
    ``.partial`` folder is removed on an exception and by the next build otherwise. A failed write (a full
    disk) is one :class:`~neurorvq.file_io.FileWriteError` naming the file, the free space and the fix. Builds of
    one key are serialised by the lock file ``<root_dir>/<key>.lock`` (:func:`build_lock`); ``lock=False`` builds
    without taking it, for a caller that already holds it (it looked again under the lock and found no complete
    cache, as :func:`get_or_build` does). ``fsync`` makes shards and index durable before the rename.
    ``progress`` shows a tqdm bar (stderr) over sources. ``mp_context`` is passed to ``ProcessPoolExecutor``
    (default: the platform's default start method). ``sidecars``, called once every window is written, gives
    ``{file name: text}`` files (e.g. a loading summary) written into the folder before it is renamed, so the cache
    and its sidecars appear together or not at all.
    """
    root = Path(root_dir)
    root.mkdir(parents=True, exist_ok=True)
    options = dict(sources=sources, config=config, num_workers=num_workers, max_windows_per_shard=max_windows_per_shard,
                   max_bytes_per_shard=max_bytes_per_shard, sources_per_task=sources_per_task, progress=progress,
                   fsync=fsync, mp_context=mp_context, sidecars=sidecars)
    if not lock:
        return _build(root, key, items, **options)
    with build_lock(root, key):
        return _build(root, key, items, **options)


def _build(root: Path, key: str, items, *, sources, config, num_workers, max_windows_per_shard, max_bytes_per_shard,
           sources_per_task, progress, fsync, mp_context, sidecars) -> CacheIndex:
    """:func:`build_cache` once the build lock is held."""
    final, partial = root / key, root / f"{key}{_PARTIAL}"
    if max_windows_per_shard < 1 or max_bytes_per_shard < 1:
        raise ConfigError("max_windows_per_shard and max_bytes_per_shard must be positive")
    if partial.exists():
        shutil.rmtree(partial)
    try:
        partial.mkdir()
    except OSError as exc:
        raise _write_error(partial, partial, exc) from exc
    t0 = time.perf_counter()
    try:
        if callable(items):
            if sources is None:
                raise ConfigError("build_cache(items=process) needs the list of sources to apply it to")
            results, identities = _run_process(items, list(sources), partial, num_workers, max_windows_per_shard,
                                               max_bytes_per_shard, sources_per_task, progress, fsync, mp_context, key)
        else:
            results, names = _run_pairs(items, partial, max_windows_per_shard, max_bytes_per_shard, progress, fsync,
                                        key)
            identities = [{"path": str(n)} for n in names]
            if sources is not None:
                identities = [_identity_or_name(s) for s in sources]
        for name, text in (sidecars() if sidecars is not None else {}).items():
            try:
                (partial / name).write_text(text)
            except OSError as exc:
                raise _write_error(partial / name, partial, exc) from exc
        doc = _finish(partial, key, config, identities, results)
        if fsync:
            _fsync_dir(partial)
        if final.exists():
            shutil.rmtree(final)
        os.rename(partial, final)
        if fsync:
            _fsync_dir(root)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    if progress:
        totals = doc["totals"]
        print(f"cache {key}: {totals['windows']} windows, {totals['shards']} shards, "
              f"{totals['bytes'] / 1e6:.1f} MB in {time.perf_counter() - t0:.1f} s -> {final}", file=sys.stderr)
    return CacheIndex.from_json(os.fspath(final), doc)


def _identity_or_name(source: Any) -> dict[str, Any]:
    try:
        return source_identity(source)
    except (CacheError, TypeError):
        return {"path": str(source)}


def _run_process(process, sources, partial, num_workers, max_windows, max_bytes, sources_per_task, progress, fsync,
                 mp_context, key):
    identities = [_identity_or_name(s) for s in sources]
    bar = _progress(len(sources), f"cache {key[:8]}", progress)
    try:
        if num_workers <= 0 or len(sources) <= 1:
            on_source = (lambda n: bar.update(1)) if bar is not None else None
            results = [_write_sources(0, list(enumerate(sources)), process, os.fspath(partial), max_windows,
                                      max_bytes, fsync, on_source)]
        else:
            try:
                pickle.dumps(process)
            except Exception as exc:
                raise ConfigError(f"build_cache with num_workers={num_workers} needs a picklable, top-level "
                                  f"process function (not a lambda or closure): {exc}") from exc
            per_task = sources_per_task or max(1, -(-len(sources) // (4 * num_workers)))
            numbered = list(enumerate(sources))
            tasks = [numbered[i:i + per_task] for i in range(0, len(numbered), per_task)]
            results = []
            with ProcessPoolExecutor(max_workers=num_workers, mp_context=mp_context) as pool:
                futures = {pool.submit(_write_sources, t, chunk, process, os.fspath(partial), max_windows,
                                       max_bytes, fsync): len(chunk) for t, chunk in enumerate(tasks)}
                try:
                    for fut in as_completed(futures):
                        results.append(fut.result())
                        if bar is not None:
                            bar.update(futures[fut])
                except BaseException:
                    for f in futures:
                        f.cancel()
                    raise
    finally:
        if bar is not None:
            bar.close()
    for r in results:
        for index, n in r["counts"].items():
            identities[index]["windows"] = n
    return sorted(results, key=lambda r: r["task"]), identities


def _run_pairs(pairs, partial, max_windows, max_bytes, progress, fsync, key):
    sink = _ShardSink(partial, "part-000000", max_windows, max_bytes, fsync)
    names = []
    bar = _progress(0, f"cache {key[:8]}", progress)
    try:
        for index, (name, windows) in enumerate(pairs):
            names.append(name)
            for n, win in enumerate(windows):
                sample, cset = _window_sample(win, f"{index:06d}_{n:06d}", str(name))
                sink.write(sample, cset)
            if bar is not None:
                bar.update(1)
        shards = sink.close()
    except BaseException:
        sink.abort()
        raise
    finally:
        if bar is not None:
            bar.close()
    return [{"task": 0, "shards": shards, "counts": {}}], names


def _finish(partial: Path, key: str, config, identities, results) -> dict[str, Any]:
    """Rename the tasks' shards to ``shard-NNNNNN.tar`` in source order, number channel sets, write index.json."""
    cset_index: dict[bytes, int] = {}
    cset_counts: list[int] = []
    shards = []
    for r in results:
        for s in r["shards"]:
            if s["windows"] == 0:  # cannot happen (a shard opens with a window), kept for safety
                os.remove(partial / s["file"])
                continue
            name = f"shard-{len(shards):06d}.tar"
            os.rename(partial / s["file"], partial / name)
            ids = []
            for cset, n in s["channel_sets"].items():
                if cset not in cset_index:
                    cset_index[cset] = len(cset_counts)
                    cset_counts.append(0)
                cset_counts[cset_index[cset]] += n
                ids.append(cset_index[cset])
            shards.append({"name": name, "windows": s["windows"], "bytes": s["bytes"], "channel_sets": sorted(ids),
                           "checksum": s["checksum"]})
    channel_sets = [{"channel_ids": np.frombuffer(c, dtype=np.int64).tolist(), "windows": cset_counts[i]}
                    for c, i in cset_index.items()]
    doc = {"format": FORMAT, "format_version": FORMAT_VERSION, "key": key,
           "config": json.loads(_config_json(config)), "sources": identities, "shards": shards,
           "channel_sets": channel_sets,
           "totals": {"windows": sum(s["windows"] for s in shards), "bytes": sum(s["bytes"] for s in shards),
                      "shards": len(shards), "sources": len(identities)},
           "writer": {"webdataset": _wds_version(), "created_unix": time.time()}}
    tmp = partial / "index.json.tmp"
    try:
        with open(tmp, "w") as f:
            json.dump(doc, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
    except OSError as exc:
        raise _write_error(partial / "index.json", partial, exc) from exc
    os.rename(tmp, partial / "index.json")
    return doc


def _wds_version() -> str:
    try:
        from importlib.metadata import version

        return version("webdataset")
    except Exception:  # pragma: no cover
        return "unknown"


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def get_or_build(root_dir: PathLike, sources: Sequence[PathLike], config: Mapping[str, Any] | None,
                 process: Callable[[Any], Iterable[Mapping]], **build_kwargs: Any) -> CacheIndex:
    """The cache of ``process`` over ``sources`` with ``config``: reused when ``<root_dir>/<key>/`` is complete
    (``process`` is not called), built with :func:`build_cache` otherwise (``build_kwargs``: ``num_workers``,
    ``max_windows_per_shard``, ``max_bytes_per_shard``, ``progress``, ...). ``config`` must describe everything
    ``process`` does (the preprocessing config, window length, labels, ...): it is part of the key, so a change
    rebuilds under a new key; old keys are left in place (delete them by hand)."""
    root = Path(root_dir)
    root.mkdir(parents=True, exist_ok=True)
    key = cache_key(sources, config)
    found = open_cache(root, key)
    if found is not None:
        return found
    with build_lock(root, key):
        found = open_cache(root, key)  # built by another process while we waited for the lock
        if found is not None:
            return found
        kwargs = {"num_workers": 0, "max_windows_per_shard": DEFAULT_MAX_WINDOWS_PER_SHARD,
                  "max_bytes_per_shard": DEFAULT_MAX_BYTES_PER_SHARD, "sources_per_task": None, "progress": True,
                  "fsync": True, "mp_context": None, "sidecars": None}
        unknown = set(build_kwargs) - set(kwargs)
        if unknown:
            raise ConfigError(f"get_or_build: unknown build options {sorted(unknown)}; valid: {sorted(kwargs)}")
        return _build(root, key, process, sources=sources, config=config, **{**kwargs, **build_kwargs})


# ------------------------------------------------------------------------------------------------ reading
def _dist_rank_world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


_TAR_BLOCK = 512
_TAR_END = b"\0" * _TAR_BLOCK
_FINISH_CHUNK = 1 << 20


def _octal(field: bytes) -> int | None:
    field = field.split(b"\0", 1)[0].strip()
    try:
        return int(field, 8) if field else 0
    except ValueError:
        return None


def _folder_of(url: str) -> str:
    """The cache folder (or URL prefix) a shard URL lies in, for messages."""
    if url.startswith("pipe:"):
        return url
    return url.rsplit("/", 1)[0] if "://" in url else os.path.dirname(url) or "."


def _damaged(url: str, problem: str, location: str | None = None) -> CacheError:
    """The one error of a damaged shard: the shard, what is wrong (naming the member where known) and the fix."""
    folder = location or _folder_of(url)
    return CacheError(f"window cache shard {url}: {problem}. The cache is damaged: delete the cache folder {folder} "
                      "and run again to rebuild it (prepare_data() or get_or_build() build a missing cache; upload "
                      "the rebuilt folder again if this copy lives in object storage)")


class _ShardStream:
    """Forward-only reader of one shard that feeds every byte passing through it (read, read into an array, or
    skipped) to CRC-32 when ``checksum``, so a shard is verified in the single pass that reads it.

    Never seeks: ``unread`` gives back bytes just read (they are not hashed twice), which is all the tar reader
    needs to hand a header over to ``tarfile``; so local files, fsspec files and ``pipe:`` streams take the same
    path. ``offset``: bytes consumed so far; :meth:`finish` reads to the end and returns ``(crc, total size)``."""

    def __init__(self, stream, checksum: bool = False) -> None:
        self._stream = stream
        self._readinto = getattr(stream, "readinto", None)
        self.checksum, self.crc, self.offset = checksum, 0, 0
        self._pending = b""

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            parts = []
            while chunk := self.read(_FINISH_CHUNK):
                parts.append(chunk)
            return b"".join(parts)
        out = b""
        if self._pending:
            out, self._pending = self._pending[:n], self._pending[n:]
            self.offset += len(out)
            n -= len(out)
        parts = [out] if out else []
        while n > 0:
            chunk = self._stream.read(n)
            if not chunk:
                break
            if self.checksum:
                self.crc = zlib.crc32(chunk, self.crc)
            parts.append(chunk)
            self.offset += len(chunk)
            n -= len(chunk)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def readinto(self, buffer) -> int:
        view = memoryview(buffer).cast("B")
        done = 0
        if self._pending:
            done = min(len(self._pending), len(view))
            view[:done], self._pending = self._pending[:done], self._pending[done:]
        while done < len(view):
            if self._readinto is not None:
                got = self._readinto(view[done:]) or 0
            else:
                chunk = self._stream.read(len(view) - done)
                got = len(chunk)
                view[done:done + got] = chunk
            if not got:
                break
            if self.checksum:
                self.crc = zlib.crc32(view[done:done + got], self.crc)
            done += got
        self.offset += done
        return done

    def unread(self, data: bytes) -> None:
        self._pending = data + self._pending
        self.offset -= len(data)

    def finish(self) -> tuple[int, int]:
        """Read (and hash) whatever is left, e.g. the tar end blocks and padding; ``(crc32, bytes in all)``."""
        buffer = bytearray(_FINISH_CHUNK)
        while self.readinto(buffer):
            pass
        return self.crc & 0xFFFFFFFF, self.offset


def _tarfile_members(reader: _ShardStream, url: str, location: str | None) -> Iterator[tuple[str, bytes]]:
    """Regular members via the standard library (any tar dialect, read as a stream), one member in memory at
    a time."""
    try:
        tar = tarfile.open(fileobj=reader, mode="r|")
    except tarfile.TarError as exc:
        raise _damaged(url, f"tar header at byte {reader.offset} is not readable ({exc})", location) from exc
    name = None
    try:
        for info in tar:
            name = info.name
            if info.isreg():
                yield info.name, tar.extractfile(info).read()
            tar.members = []  # tarfile keeps every TarInfo otherwise
    except tarfile.TarError as exc:
        where = f"after member {name}" if name else "in its first member"
        raise _damaged(url, f"not a readable tar file {where} ({exc})", location) from exc
    finally:
        tar.close()


def _signed_tar_checksum(header: bytes) -> int:
    """The header checksum as some old tar writers compute it (bytes as signed chars); ``tarfile`` accepts it."""
    return sum(header[:148]) + 256 + sum(header[156:]) - 256 * sum(1 for b in header[:148] + header[156:] if b > 127)


def _tar_members(stream, url: str, location: str | None = None) -> Iterator[dict[str, Any]]:
    """``{"fname", "data", "__url__"}`` of each regular member of an uncompressed tar stream, one member in
    memory at a time: the input of ``webdataset.tariterators.group_by_keys``. ``stream`` is a binary stream or a
    :class:`_ShardStream` (which then also hashes the bytes); ``location`` names the cache in errors.

    The plain ustar members this module writes take a fast path: the 512-byte header is parsed directly (name,
    prefix, size, checksum), and a C-order ``.npy`` payload is read with one ``readinto`` straight into its final
    ``numpy`` array (``data`` is then the array; otherwise ``bytes``). That is about 2.5x faster than ``tarfile``
    on 200 KB windows and copies nothing. A header whose checksum is wrong is damage (a :class:`CacheError`
    naming its byte offset and the member before it); at the first valid member the fast path does not handle
    (PAX or GNU headers, links, base-256 sizes) the rest of the shard goes to ``tarfile`` in stream mode."""
    reader = stream if isinstance(stream, _ShardStream) else _ShardStream(stream)
    last = None  # name of the last member read, to place damage
    while True:
        start = reader.offset
        header = reader.read(_TAR_BLOCK)
        if len(header) == 0 or header == _TAR_END:
            return
        after = f" (after member {last})" if last else " (the first member)"
        if len(header) < _TAR_BLOCK:
            raise _damaged(url, f"truncated inside the tar header at byte {start}{after}", location)
        checksum, unsigned = _octal(header[148:156]), sum(header[:148]) + 256 + sum(header[156:])
        if checksum != unsigned and (checksum is None or checksum != _signed_tar_checksum(header)):
            raise _damaged(url, f"the tar header at byte {start}{after} is damaged (its checksum does not match "
                                "its bytes)", location)
        size = _octal(header[124:136])
        if (header[156:157] not in (b"0", b"\0") or header[257:262] != b"ustar" or size is None
                or checksum != unsigned):
            reader.unread(header)  # not a plain member: let tarfile read the rest
            for name, data in _tarfile_members(reader, url, location):
                yield {"fname": name, "data": data, "__url__": url}
            return
        name = header[:100].split(b"\0", 1)[0]
        prefix = header[345:500].split(b"\0", 1)[0]
        if prefix:
            name = prefix + b"/" + name
        member = name.decode("utf-8", errors="replace")
        data = _read_npy_member(reader, size) if name.endswith(b".npy") else reader.read(size)
        got = size if isinstance(data, np.ndarray) else len(data)  # an array is only returned complete
        if got != size:
            raise _damaged(url, f"truncated in member {member} ({got} of {size} bytes)", location)
        if size % _TAR_BLOCK:
            padding = _TAR_BLOCK - size % _TAR_BLOCK
            if len(reader.read(padding)) != padding:
                raise _damaged(url, f"truncated after member {member}", location)
        last = member
        yield {"fname": member, "data": data, "__url__": url}


_NPY_HEADERS: dict[bytes, tuple[np.dtype, tuple[int, ...], bool]] = {}


def _npy_header(head: bytes) -> tuple[np.dtype, tuple[int, ...], bool]:
    """``(dtype, shape, fortran_order)`` of a complete ``.npy`` header, memoised: one parse per shape and
    dtype instead of one ``ast.literal_eval`` per window."""
    parsed = _NPY_HEADERS.get(head)
    if parsed is None:
        stream = io.BytesIO(head)
        read_header = (np.lib.format.read_array_header_1_0 if np.lib.format.read_magic(stream) == (1, 0)
                       else np.lib.format.read_array_header_2_0)
        shape, fortran, dtype = read_header(stream)
        parsed = (dtype, shape, fortran)
        if len(_NPY_HEADERS) < 1024:
            _NPY_HEADERS[head] = parsed
    return parsed


def _npy_offset(start: bytes) -> int | None:
    """Payload offset of a version 1 or 2 ``.npy`` from its first 12 bytes (``None``: not one)."""
    if len(start) < 12 or start[:6] != b"\x93NUMPY" or start[6:8] not in (b"\x01\x00", b"\x02\x00"):
        return None
    return 10 + int.from_bytes(start[8:10], "little") if start[6] == 1 else 12 + int.from_bytes(start[8:12], "little")


def _read_npy_member(reader: _ShardStream, size: int) -> np.ndarray | bytes:
    """Read a tar member of ``size`` bytes holding a ``.npy``: straight into a new array when it is a plain
    C-order numeric ``.npy`` of exactly that size, else as its bytes (fewer than ``size`` when the stream ends
    early; a damaged header is then reported by :func:`_decode`, naming the member)."""
    start = reader.read(min(12, size))
    offset = _npy_offset(start)
    if offset is None or offset > size:
        return start + reader.read(size - len(start))
    head = start + reader.read(offset - len(start))
    if len(head) != offset:
        return head
    try:
        dtype, shape, fortran = _npy_header(head)
    except (ValueError, SyntaxError, TypeError):
        return head + reader.read(size - offset)
    if fortran or dtype.hasobject or offset + math.prod(shape) * dtype.itemsize != size:
        return head + reader.read(size - offset)
    array = np.empty(shape, dtype=dtype)
    if array.nbytes:
        got = reader.readinto(memoryview(array).cast("B"))
        if got != array.nbytes:
            return head + memoryview(array).cast("B")[:got].tobytes()
    return array


def _load_npy(data: bytes | np.ndarray) -> np.ndarray:
    """A ``.npy`` member as a writable array (``data`` already read into one by :func:`_tar_members`, or the
    ``.npy`` bytes)."""
    if isinstance(data, np.ndarray):
        return data
    offset = _npy_offset(data[:12])
    if offset is not None:
        dtype, shape, fortran = _npy_header(bytes(data[:offset]))
        if not dtype.hasobject:
            array = np.frombuffer(data, dtype=dtype, count=math.prod(shape), offset=offset)
            return array.reshape(shape, order="F" if fortran else "C").copy(order="K")
    return np.lib.format.read_array(io.BytesIO(bytes(data)), allow_pickle=False)


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
        out.update(recording=meta.get("recording"), start=meta.get("start"), key=sample["__key__"])
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
        with_meta: also yield ``recording`` (str), ``start`` (int or None) and ``key`` (str).
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
        import webdataset.tariterators  # noqa: F401  imported here so forked DataLoader workers inherit it

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


# ------------------------------------------------------------------------------------------------ batching
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


__all__ = ["FORMAT_VERSION", "CacheError", "CacheIndex", "ShardInfo", "StreamingWindows", "BucketBatches",
           "bucket_batches", "build_cache", "build_lock", "cache_key", "check_cache", "get_or_build", "load_index",
           "open_cache", "source_identity"]
