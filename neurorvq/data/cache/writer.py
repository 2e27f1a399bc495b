"""Writing a window cache: window samples, shard sinks (with their CRC-32), full-disk errors, the build lock,
the worker process pool, ``index.json`` and :func:`build_cache` / :func:`get_or_build`; see "Writing" in
:mod:`neurorvq.data.cache`."""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np

from neurorvq.data.cache.checksum import _Crc32Writer
from neurorvq.data.cache.index import CHECKSUM, FORMAT, FORMAT_VERSION, CacheError, CacheIndex, PathLike, open_cache
from neurorvq.data.cache.key import _config_json, cache_key, source_identity
from neurorvq.errors import ConfigError
from neurorvq.file_io import FileWriteError

DEFAULT_MAX_WINDOWS_PER_SHARD = 10_000
DEFAULT_MAX_BYTES_PER_SHARD = 128 * 1024 * 1024
_TAR_MEMBER_OVERHEAD = 2 * 1024  # header + padding of the 2 members of a sample, for shard-size planning


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
    if win.get("columns"):  # per-window metadata: JSON scalars (int, float, str)
        meta["columns"] = {name: (value.item() if isinstance(value, np.generic) else value)
                           for name, value in win["columns"].items()}
    sample = {"__key__": key, "signal.npy": numpy_dumps(signal), "json": json.dumps(meta).encode()}
    return sample, channel_ids.tobytes()


def _column_type(value: Any) -> str:
    """``int``, ``float`` or ``str``: the type of a per-window column in the cache index."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, str, np.integer, np.floating)):
        raise CacheError(f"a window column holds {type(value).__name__} values; columns hold int, float or str")
    return "int" if isinstance(value, (int, np.integer)) else "float" if isinstance(value, (float, np.floating)) \
        else "str"


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

    def write(self, sample: dict, channel_set: bytes, columns: Mapping[str, Any] | None = None) -> None:
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
        if columns:
            for name, value in columns.items():
                cur.setdefault("columns", {}).setdefault(name, _column_type(value))

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
                sink.write(sample, cset, win.get("columns"))
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
                items: Callable[[Any], Iterable[Mapping]] | Iterable[tuple[Any, Iterable[Mapping]]], *,
                sources: Sequence[Any] | None = None, config: Mapping[str, Any] | None = None,
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
                sink.write(sample, cset, win.get("columns"))
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


def _neurorvq_version() -> str:
    """The neurorvq version writing the cache (a newer reader's message names it)."""
    from neurorvq import __version__

    return __version__


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
    columns: dict[str, str] = {}
    for r in results:
        for s in r["shards"]:
            for name, kind in s.get("columns", {}).items():
                columns.setdefault(name, kind)
    doc = {"format": FORMAT, "format_version": FORMAT_VERSION, "key": key,
           "config": json.loads(_config_json(config)), "sources": identities, "shards": shards,
           "channel_sets": channel_sets, **({"columns": columns} if columns else {}),
           "totals": {"windows": sum(s["windows"] for s in shards), "bytes": sum(s["bytes"] for s in shards),
                      "shards": len(shards), "sources": len(identities)},
           "writer": {"neurorvq": _neurorvq_version(), "webdataset": _wds_version(), "created_unix": time.time()}}
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
