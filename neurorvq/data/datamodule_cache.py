"""The window cache of a :class:`~neurorvq.data.datamodule.RecordingDataModule` (its ``cache_dir``): what a split's
cache is keyed by (:meth:`WindowCacheMixin.cache_config`), opening or building the cache of every split with its
loading-summary sidecar, and the DataLoader that streams a split from it. The cache itself (format, writer,
streaming reader) is :mod:`neurorvq.data.cache`.

:class:`WindowCacheMixin` is a base of :class:`~neurorvq.data.datamodule.RecordingDataModule` only: it uses the
DataModule's settings (``hparams``, ``cache_dir``, ``batch_size``, ``num_workers``, ``seed``, ``verbose``), its
split (``plan``, ``splits``, ``subject_ids``, ``_find_and_split``, ``_select``), its loading loop
(``iter_recordings``, ``make_pipeline``) and its summary (``_finish_summary``, ``_say``, ``_check_cacheable``).

The pooled windows of :meth:`~neurorvq.data.datamodule.RecordingDataModule.load_all` (what ``neurorvq cv`` folds)
have a cache of their own, built with the same lock and read back with the same checks: the pseudo-split ``all``
(:data:`POOLED_SPLIT`), keyed like a split's cache but by every recording found and no split membership
(:meth:`WindowCacheMixin.pooled_cache_config`). Besides the summary it keeps ``sets.json``: where each window set
begins and ends in the stream (recording, window count, channel names, which of labels and subjects it has, its
metadata columns and their NumPy dtypes), so :meth:`WindowCacheMixin._pooled_from_cache` rebuilds exactly the window
sets of the in-memory load, in the same order (the folds' window indices depend on it), bit for bit. No new key
field and no new :data:`CACHE_LAYOUT_VERSION`: the split caches are unchanged, and ``split: "all"`` (which no split
cache has) with no ``membership`` gives the pooled caches keys of their own. ``load_all`` never calls ``load()``,
so the pool is cacheable even where a subclass's ``load()`` override keeps the split caches off.
"""

from __future__ import annotations

import json
import warnings
from collections import Counter
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np
from torch.utils.data import DataLoader

from neurorvq.data.preprocess import DataError, Pipeline, RejectionReport
from neurorvq.data.recording import RecordingInfo, RecordingSkippedWarning
from neurorvq.data.splits import SPLITS
from neurorvq.data.windowset import WindowSet

CACHE_LAYOUT_VERSION = 3
"""Version of what :class:`~neurorvq.data.datamodule.RecordingDataModule` writes into a window cache (part of
every cache key). 2: windows touching samples outside the file's declared range or saturated at a rail are
rejected, and a ``Clip`` limit holds after resampling (caches of version 1 may hold such windows, so they are not
reused). 3: every window carries its metadata columns (session, run, trial, ...) and a split's content is keyed
by its membership (the column it is split by and the values of the split), so caches of version 2, which lack the
columns, are rebuilt."""
_CACHE_SUMMARY = "summary.json"  # sidecar next to a cache's index.json: the split's loading counts
_CACHE_SETS = "sets.json"  # sidecar of the pooled cache: the window sets the stream is cut into
POOLED_SPLIT = "all"
"""The ``split`` of the pooled cache's key (:meth:`WindowCacheMixin.pooled_cache_config`): every recording found,
no split membership; no split is called so, so its caches never share a key with a split's."""
_NOT_IN_CACHE_KEY = ("batch_size", "num_workers", "verbose", "cache_dir", "seed", "val_subjects", "test_subjects",
                     "val_fraction", "test_fraction", "split")  # loader / split settings; the membership is keyed


class WindowCacheMixin:
    """The ``cache_dir`` path of :class:`~neurorvq.data.datamodule.RecordingDataModule` (see its ``cache_dir``
    argument): cache key inputs, opening and building the split caches, the streaming loader."""

    def cache_config(self, split: str, infos: Sequence[RecordingInfo]) -> dict[str, Any]:
        """What the windows of ``split`` depend on besides the source files (part of the cache key)."""
        subjects = list(self.splits[split])
        return {
            **self._dataset_config(),
            "split": split,
            "membership": self.plan.membership(split),
            "subjects": {s: self.subject_ids[s] for s in subjects},
            **self._recordings_config(infos),
        }

    def pooled_cache_config(self, infos: Sequence[RecordingInfo]) -> dict[str, Any]:
        """What the pooled windows of :meth:`load_all` depend on besides the source files (part of the key of their
        cache): the fields of :meth:`cache_config` with ``split`` :data:`POOLED_SPLIT`, every subject found and no
        ``membership`` (the pool ignores the split)."""
        return {
            **self._dataset_config(),
            "split": POOLED_SPLIT,
            "subjects": {s: self.subject_ids[s] for s in self.subject_names},
            **self._recordings_config(infos),
        }

    def _dataset_config(self) -> dict[str, Any]:
        """The key fields of every cache of this DataModule: layout version, class, hyper-parameters, pipeline."""
        hparams = {k: v for k, v in dict(self.hparams).items() if k not in _NOT_IN_CACHE_KEY}
        return {
            "layout_version": CACHE_LAYOUT_VERSION,
            "dataset": f"{type(self).__module__}.{type(self).__qualname__}",
            "hparams": json.loads(json.dumps(hparams, sort_keys=True, default=str)),
            "pipeline": json.loads(json.dumps(self.make_pipeline().config(), sort_keys=True, default=str)),
        }

    @staticmethod
    def _recordings_config(infos: Sequence[RecordingInfo]) -> dict[str, Any]:
        return {"recordings": [[str(i.path), i.subject] for i in infos],
                "missing": [str(i.path) for i in infos if not Path(i.path).is_file()]}

    @staticmethod
    def _window_dicts(window_sets: Iterable[WindowSet]) -> Iterator[dict[str, Any]]:
        """The windows of ``window_sets`` in order, as the window dicts :func:`~neurorvq.data.cache.build_cache`
        writes."""
        for ws in window_sets:
            for i in range(len(ws)):
                win = {"signal": ws.signals[i], "channel_ids": ws.channel_ids, "recording": ws.recording,
                       "start": int(ws.starts[i])}
                if ws.labels is not None:
                    win["label"] = int(ws.labels[i])
                if ws.subjects is not None:
                    win["subject"] = int(ws.subjects[i])
                if ws.columns:
                    win["columns"] = {name: values[i].item() for name, values in ws.columns.items()}
                yield win

    def _cache_windows(self, split: str, pairs: Iterator[tuple[RecordingInfo, list[WindowSet]]]):
        """``(recording name, window dicts)`` pairs of ``split`` for :func:`~neurorvq.data.cache.build_cache`."""
        for info, window_sets in pairs:
            yield str(info.path), self._window_dicts(self._select(split, window_sets))

    def _open_caches(self, build: bool) -> None:
        """Open (and with ``build``, write the missing) cache of every split; sets :attr:`caches` and the summary."""
        from neurorvq.data import cache as wcache

        self._check_cacheable()
        infos = self._find_and_split()
        pipeline = self.make_pipeline() if build else None
        caches: dict[str, Any] = {}
        parts: dict[str, dict[str, Any]] = {}
        for split in SPLITS:
            mine = [i for i in infos if split in self.plan.parts_of[str(i.path)]]
            sources = [str(i.path) for i in mine if Path(i.path).is_file()]
            key = wcache.cache_key(sources, self.cache_config(split, mine))
            sidecar = self.cache_dir / key / _CACHE_SUMMARY
            if build:
                index, built = self._reuse_or_build(key, (_CACHE_SUMMARY,),
                                                    partial(self._build_split_cache, split, key, mine, pipeline))
            else:
                index, built = self._complete_cache(key), None
                if index is None:
                    raise DataError(f"no complete {split} cache {key} under '{self.cache_dir}': run prepare_data() "
                                    "(the Trainer does) to build it")
            if built is None:
                part = self._reused_summary(sidecar)
            else:
                index, part = built
            caches[split], parts[split] = index, part
        channel_sets = {tuple(c["channel_ids"]) for index in caches.values() for c in index.channel_sets}
        self._finish_summary(len(infos), self._tally_of(parts.values()),
                             {split: caches[split].total_windows for split in SPLITS}, len(channel_sets))
        self.caches = caches

    def _reuse_or_build(self, key: str, sidecars: Sequence[str], build: Callable[[], Any]) -> tuple[Any, Any]:
        """``(CacheIndex, None)`` of the complete cache ``key`` (with its ``sidecars``), or ``(None, build())``
        after building it. One builder: whoever holds the lock looks again, so a cache another process (a second
        run, or another rank on a shared filesystem) finished while this one waited is reused, not replaced."""
        from neurorvq.data import cache as wcache

        index = self._complete_cache(key, sidecars)
        if index is None:
            with wcache.build_lock(self.cache_dir, key):
                index = self._complete_cache(key, sidecars)
                if index is None:
                    return None, build()
        return index, None

    def _reused_summary(self, sidecar: Path) -> dict[str, Any]:
        """The summary part kept with a reused cache; warns about the recordings it skipped, as a load would."""
        part = self._cached_summary(sidecar)
        for path, reason in part["skipped"].items():  # what an in-memory load would have warned about
            warnings.warn(f"skipped {path}: {reason} (recorded in the window cache)", RecordingSkippedWarning,
                          stacklevel=4)
        return part

    @staticmethod
    def _tally_of(parts: Iterable[dict[str, Any]]) -> dict[str, Any]:
        """The loading tally (as :meth:`iter_recordings` keeps it) of the summary parts of one or more caches."""
        tally: dict[str, Any] = {"report": RejectionReport(), "skipped": {}, "dropped": {}, "loaded": 0}
        for part in parts:
            tally["loaded"] += part["recordings_loaded"]
            tally["skipped"].update(part["skipped"])
            tally["dropped"].update(part["dropped_channels"])
            tally["report"].merge(RejectionReport(part["windows_kept"], Counter(part["rejected"])))
            for kind, entries in part.get("notes", {}).items():
                tally.setdefault("notes", {}).setdefault(kind, {}).update(entries)
        return tally

    @staticmethod
    def _summary_part(found: int, tally: dict[str, Any]) -> dict[str, Any]:
        """The summary sidecar of a cache built from ``found`` recordings whose loading kept ``tally``."""
        return {"recordings_found": found, "recordings_loaded": tally.get("loaded", 0),
                "skipped": tally.get("skipped", {}), "dropped_channels": tally.get("dropped", {}),
                "windows_kept": tally["report"].kept if "report" in tally else 0,
                "rejected": dict(tally["report"].rejected) if "report" in tally else {},
                "notes": tally.get("notes", {})}

    def _complete_cache(self, key: str, sidecars: Sequence[str] = (_CACHE_SUMMARY,)) -> Any:
        """The :class:`~neurorvq.data.cache.CacheIndex` of ``key`` under :attr:`cache_dir` if that cache is complete
        with its ``sidecars`` (the summary; the pooled cache's also ``sets.json``), else ``None``."""
        from neurorvq.data import cache as wcache

        index = wcache.open_cache(self.cache_dir, key)
        complete = index is not None and all((self.cache_dir / key / name).is_file() for name in sidecars)
        return index if complete else None

    def _build_split_cache(self, split: str, key: str, mine: Sequence[RecordingInfo],
                           pipeline: Pipeline) -> tuple[Any, dict[str, Any]]:
        """Write the cache ``key`` of ``split`` and its summary sidecar; returns ``(CacheIndex, summary part)``.
        The caller holds the build lock, so this builds with ``lock=False`` (``fcntl.flock`` belongs to an open
        file: taking the lock again here would wait forever)."""
        from neurorvq.data import cache as wcache

        tally: dict[str, Any] = {}
        self._say(f"{self.dataset_name}: building the {split} window cache {key} ({len(mine)} recordings)")
        windows = self._cache_windows(split, self.iter_recordings(mine, pipeline, tally))
        part: dict[str, Any] = {}

        def summary() -> dict[str, str]:  # written inside the cache folder before it appears (one rename)
            part.update(self._summary_part(len(mine), tally))
            return {_CACHE_SUMMARY: json.dumps(part, indent=1, sort_keys=True)}

        index = wcache.build_cache(self.cache_dir, key, windows, config=self.cache_config(split, mine),
                                   max_windows_per_shard=self.cache_max_windows_per_shard, progress=self.verbose,
                                   lock=False, sidecars=summary)
        return index, part

    # ------------------------------------------------------------------------------------- the pooled windows
    def _pooled_from_cache(self, infos: Sequence[RecordingInfo]) -> tuple[list[WindowSet], dict[str, Any]]:
        """``(window sets, loading tally)`` of every recording of ``infos`` (found by :meth:`load_all`, which set
        the pooled plan) through the pooled cache under :attr:`cache_dir`: read back when complete (no recording is
        opened), else built from one in-memory load (whose window sets are returned as they are)."""
        from neurorvq.data import cache as wcache

        sources = [str(i.path) for i in infos if Path(i.path).is_file()]
        key = wcache.cache_key(sources, self.pooled_cache_config(infos))
        index, built = self._reuse_or_build(key, (_CACHE_SUMMARY, _CACHE_SETS),
                                            partial(self._build_pooled_cache, key, infos))
        if built is not None:
            sets, part = built
        else:
            part = self._reused_summary(self.cache_dir / key / _CACHE_SUMMARY)
            self._say(f"{self.dataset_name}: reading the pooled window cache {key} ({index.total_windows} windows)")
            sets = self._read_pooled(index, self._cached_layout(self.cache_dir / key / _CACHE_SETS))
        return sets, self._tally_of([part])

    def _build_pooled_cache(self, key: str, infos: Sequence[RecordingInfo]) -> tuple[list[WindowSet], dict]:
        """Load ``infos`` once, write their windows as the pooled cache ``key`` with its summary and ``sets.json``;
        returns ``(window sets, summary part)``. The caller holds the build lock (``lock=False``)."""
        from neurorvq.data import cache as wcache

        tally: dict[str, Any] = {}
        sets: list[WindowSet] = []
        self._say(f"{self.dataset_name}: building the pooled window cache {key} ({len(infos)} recordings)")

        def pairs():
            for info, window_sets in self.iter_recordings(infos, self.make_pipeline(), tally):
                sets.extend(window_sets)
                yield str(info.path), self._window_dicts(window_sets)

        part: dict[str, Any] = {}

        def sidecars() -> dict[str, str]:  # written inside the cache folder before it appears (one rename)
            part.update(self._summary_part(len(infos), tally))
            layout = [{"recording": ws.recording, "windows": len(ws), "channels": list(ws.channels),
                       "labels": ws.labels is not None, "subjects": ws.subjects is not None,
                       "columns": [[name, values.dtype.str] for name, values in ws.columns.items()]} for ws in sets]
            return {_CACHE_SUMMARY: json.dumps(part, indent=1, sort_keys=True),
                    _CACHE_SETS: json.dumps({"sets": layout})}

        wcache.build_cache(self.cache_dir, key, pairs(), config=self.pooled_cache_config(infos),
                           max_windows_per_shard=self.cache_max_windows_per_shard, progress=self.verbose, lock=False,
                           sidecars=sidecars)
        return sets, part

    @staticmethod
    def _cached_layout(path: Path) -> list[dict[str, Any]]:
        """The window sets listed in a pooled cache's ``sets.json`` (a :class:`~neurorvq.data.cache.CacheError`
        naming the file when it is damaged)."""
        from neurorvq.data.cache import CacheError

        fields = ("recording", "windows", "channels", "labels", "subjects", "columns")
        try:
            layout = json.loads(path.read_text())["sets"]
            ok = isinstance(layout, list) and all(isinstance(e, dict) and all(k in e for k in fields) for e in layout)
            problem = None if ok else f"an entry lacks one of {fields}"
        except (OSError, ValueError, KeyError, TypeError) as exc:
            problem = f"{type(exc).__name__}: {exc}"
        if problem is not None:
            raise CacheError(f"pooled window cache layout {path} is damaged ({problem}); delete the cache folder "
                             f"{path.parent} and run again to rebuild it")
        return layout

    @staticmethod
    def _read_pooled(index: Any, layout: Sequence[dict[str, Any]]) -> list[WindowSet]:
        """The window sets of ``layout`` filled from the cache ``index``, streamed in order with every shard's
        checksum verified: the windows, labels, subjects, starts, channels and columns of the load that built it."""
        from neurorvq.data.cache import CacheError, StreamingWindows

        def damaged(problem: str) -> CacheError:
            return CacheError(f"pooled window cache {index.location} {problem}; delete that folder and run again to "
                              "rebuild it")

        listed = sum(int(entry["windows"]) for entry in layout)
        if listed != index.total_windows:
            raise damaged(f"holds {index.total_windows} windows but its {_CACHE_SETS} lists {listed}")
        stream = iter(StreamingWindows(index, with_meta=True, rank=0, world_size=1, worker_id=0, num_workers=1))
        sets = []
        for entry in layout:
            n, recording = int(entry["windows"]), str(entry["recording"])
            if n < 1:
                raise damaged(f"lists an empty window set of {recording} in its {_CACHE_SETS}")
            signals, channel_ids, meta = None, None, []
            for i in range(n):
                win = next(stream, None)
                if win is None:
                    raise damaged(f"ends before the {n} windows {_CACHE_SETS} lists for {recording}")
                if signals is None:
                    channel_ids = win["channel_ids"].numpy()
                    signals = np.empty((n, *win["signal"].shape), dtype=np.float32)
                if (win["recording"] != recording or tuple(win["signal"].shape) != signals.shape[1:]
                        or not np.array_equal(win["channel_ids"].numpy(), channel_ids)):
                    raise damaged(f"window {win['key']} ({win['recording']}) is not where {_CACHE_SETS} puts it "
                                  f"({recording}, {signals.shape[1]} channels x {signals.shape[2]} samples)")
                signals[i] = win["signal"].numpy()
                win.pop("signal")
                meta.append(win)
            try:
                labels = np.array([int(w["label"]) for w in meta], np.int64) if entry["labels"] else None
                subjects = np.array([int(w["subject"]) for w in meta], np.int64) if entry["subjects"] else None
                starts = np.array([int(w["start"]) for w in meta], np.int64)
                columns = {name: np.asarray([w["columns"][name] for w in meta], dtype=np.dtype(dtype))
                           for name, dtype in entry["columns"]}
            except (KeyError, TypeError, ValueError) as exc:
                raise damaged(f"lacks a field {_CACHE_SETS} lists for {recording} ({type(exc).__name__}: {exc})")
            sets.append(WindowSet(signals, channel_ids, labels=labels, subjects=subjects, recording=recording,
                                  starts=starts, channels=list(entry["channels"]), columns=columns))
        if next(stream, None) is not None:  # also finishes the last shard's checksum
            raise damaged(f"holds more windows than its {_CACHE_SETS} lists")
        return sets

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


__all__ = ["CACHE_LAYOUT_VERSION", "POOLED_SPLIT", "WindowCacheMixin"]
