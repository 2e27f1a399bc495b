"""The window cache of a :class:`~neurorvq.data.datamodule.RecordingDataModule` (its ``cache_dir``): what a split's
cache is keyed by (:meth:`WindowCacheMixin.cache_config`), opening or building the cache of every split with its
loading-summary sidecar, and the DataLoader that streams a split from it. The cache itself (format, writer,
streaming reader) is :mod:`neurorvq.data.cache`.

:class:`WindowCacheMixin` is a base of :class:`~neurorvq.data.datamodule.RecordingDataModule` only: it uses the
DataModule's settings (``hparams``, ``cache_dir``, ``batch_size``, ``num_workers``, ``seed``, ``verbose``), its
split (``plan``, ``splits``, ``subject_ids``, ``_find_and_split``, ``_select``), its loading loop
(``iter_recordings``, ``make_pipeline``) and its summary (``_finish_summary``, ``_say``, ``_check_cacheable``).
"""

from __future__ import annotations

import json
import warnings
from collections import Counter
from pathlib import Path
from typing import Any, Iterator, Sequence

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
_NOT_IN_CACHE_KEY = ("batch_size", "num_workers", "verbose", "cache_dir", "seed", "val_subjects", "test_subjects",
                     "val_fraction", "test_fraction", "split")  # loader / split settings; the membership is keyed


class WindowCacheMixin:
    """The ``cache_dir`` path of :class:`~neurorvq.data.datamodule.RecordingDataModule` (see its ``cache_dir``
    argument): cache key inputs, opening and building the split caches, the streaming loader."""

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
            "membership": self.plan.membership(split),
            "subjects": {s: self.subject_ids[s] for s in subjects},
            "recordings": [[str(i.path), i.subject] for i in infos],
            "missing": [str(i.path) for i in infos if not Path(i.path).is_file()],
        }

    def _cache_windows(self, split: str, pairs: Iterator[tuple[RecordingInfo, list[WindowSet]]]):
        """``(recording name, window dicts)`` pairs of ``split`` for :func:`~neurorvq.data.cache.build_cache`."""
        for info, window_sets in pairs:
            def windows(window_sets=self._select(split, window_sets)):
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
            yield str(info.path), windows()

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
            for kind, entries in part.get("notes", {}).items():
                tally.setdefault("notes", {}).setdefault(kind, {}).update(entries)
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
        windows = self._cache_windows(split, self.iter_recordings(mine, pipeline, tally))
        part: dict[str, Any] = {}

        def summary() -> dict[str, str]:  # written inside the cache folder before it appears (one rename)
            part.update({"recordings_found": len(mine), "recordings_loaded": tally.get("loaded", 0),
                         "skipped": tally.get("skipped", {}), "dropped_channels": tally.get("dropped", {}),
                         "windows_kept": tally["report"].kept if "report" in tally else 0,
                         "rejected": dict(tally["report"].rejected) if "report" in tally else {},
                         "notes": tally.get("notes", {})})
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


__all__ = ["CACHE_LAYOUT_VERSION", "WindowCacheMixin"]
