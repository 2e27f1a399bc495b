"""The Lightning base of recording-based datasets (EEGMMIDB, Sleep-EDF, a folder of EEG files, ...).

A subclass of :class:`RecordingDataModule` lists its recordings (:meth:`RecordingDataModule.find_recordings`) and
turns one into window sets (:meth:`RecordingDataModule.load_windows`, using the helpers
:meth:`~RecordingDataModule.read_raw`, :meth:`~RecordingDataModule.preprocess` and :meth:`~RecordingDataModule.cut`);
the base checks the root, splits subjects (:func:`~neurorvq.data.splits.split_subjects`), loads every recording
with progress, skips bad files with a warning (or raises in strict mode), and summarises what was kept, rejected
and skipped. With ``cache_dir`` it writes the windows of each split once into a sharded on-disk cache
(:mod:`neurorvq.data.cache`, through :class:`~neurorvq.data.datamodule_cache.WindowCacheMixin`) and streams
batches from it instead of holding them in memory; the pooled windows of :meth:`RecordingDataModule.load_all`
(``neurorvq cv``) are cached too and read back into memory.
"""

from __future__ import annotations

import warnings
from collections import Counter
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterator, Sequence

import lightning as L
import numpy as np
from torch.utils.data import DataLoader

from neurorvq.data.channels import map_channels
from neurorvq.data.datamodule_cache import WindowCacheMixin
from neurorvq.data.preprocess import (CommonAverageReference, DataError, PickChannels, Pipeline, Recording,
                                      RejectionReport, cut_windows, steps_from_config)
from neurorvq.data.recording import (RecordingInfo, RecordingLoader, RecordingSkippedWarning, _window_samples,
                                     read_raw_checked)
from neurorvq.data.sampling import SplitLoaders, window_loader
from neurorvq.data.split_rules import SplitPlan, SplitRule, resolve_split
from neurorvq.data.splits import SPLITS, split_subjects
from neurorvq.data.windowset import WindowDataset, WindowSet, channel_names_in, column_array
from neurorvq.errors import ConfigError
from neurorvq.registry import ModalitySpec, get_modality


def references_before_pick(pipeline: Pipeline) -> bool:
    """Whether a :class:`CommonAverageReference` step runs before the (first) :class:`PickChannels` step."""
    for step in pipeline.steps:
        if isinstance(step, PickChannels):
            return False
        if isinstance(step, CommonAverageReference):
            return True
    return False


class RecordingDataModule(WindowCacheMixin, SplitLoaders, L.LightningDataModule):
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
        split: how to split, as data (:class:`~neurorvq.data.split_rules.SplitRule`): a split-file path (JSON or
            CSV, :mod:`~neurorvq.data.split_files`), a named split of the dataset (:attr:`named_splits`), or a rule
            such as ``{by: session, test: [E]}`` / ``{file: folds.json, fold: "3"}``; ``None`` = the dataset's own
            options (:meth:`default_split`), else subjects by ``val_subjects`` / ``test_subjects`` / fractions.
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
            cache's ``index.json`` and reloaded on reuse. :meth:`load_all` (the pooled windows of ``neurorvq cv``)
            keeps a cache of its own under the same folder, keyed by every recording found instead of a split.
            Builders of one cache take turns on its lock and
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
    window_columns: ClassVar[tuple[str, ...]] = ()
    """Per-window columns :meth:`load_windows` sets (e.g. ``repetition``): a split by one routes windows."""

    def __init__(self, root: str, window_seconds: float = 4.0, stride_seconds: float | None = None,
                 batch_size: int = 32, num_workers: int = 0, seed: int = 0, strict: bool = False,
                 max_amplitude: float | None = None, steps: list[dict] | None = None,
                 val_subjects: list[int | str] | None = None, test_subjects: list[int | str] | None = None,
                 val_fraction: float = 0.1, test_fraction: float = 0.1, dead_channels: str = "skip",
                 verbose: bool = True, modality: str = "eeg", cache_dir: str | None = None,
                 split: str | SplitRule | None = None) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.split_rule_: SplitRule | None = None if split is None else SplitRule.of(split)
        if isinstance(split, str) and not Path(split).expanduser().is_file():
            raise ConfigError(f"split is {split!r}: no such split file (JSON or CSV; see neurorvq.data.split_files); "
                              "give a file path or a rule such as {by: session, test: [E]}")
        if self.split_rule_ is not None:
            if val_subjects is not None or test_subjects is not None:
                raise ConfigError("split and val_subjects/test_subjects are both given; give one kind of split")
            self.hparams["split"] = self.split_rule_.as_hparams()  # a plain dict in checkpoints
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
        self.plan: SplitPlan | None = None
        self.find_skipped: dict[str, str] = {}
        """Entries :meth:`find_recordings` skipped (``{where: reason}``), added to the summary's ``skipped``."""
        self.find_excluded: Counter = Counter()
        """Recordings left out on purpose while listing, by reason (added to the summary as ``excluded``)."""
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

    def default_split(self) -> SplitRule | None:
        """The split of the dataset's own options (e.g. ``test_sessions``) when ``split`` is not given; ``None`` =
        subjects by ``val_subjects`` / ``test_subjects`` / fractions."""
        return None

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

    def channel_names_used(self) -> list[str] | None:
        """Vocabulary names of the channels the loaded windows use (after :meth:`setup`, in memory or cached), in
        vocabulary order; ``None`` before. A model whose vocabulary holds these (not the modality's whole
        vocabulary) takes the data (:mod:`neurorvq.compat`)."""
        if self.datasets:
            return channel_names_in(list(self.datasets.values()), self.spec_.channels)
        if self.caches:
            ids = {i for index in self.caches.values() for c in index.channel_sets for i in c["channel_ids"]}
            return [self.spec_.channels[i] for i in sorted(ids)]
        return None

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
        channels of large files never reach memory) and reported, unless a :class:`CommonAverageReference` comes
        before the :class:`PickChannels` step (it must average over the channels selected then, not the vocabulary's); a channel that is all NaN or flat over the
        whole recording skips the recording (:class:`DataError`) or is dropped (``dead_channels='drop'``).
        """
        pre_dropped: dict[str, str] = {}
        pick = next((s for s in pipeline.steps if isinstance(s, PickChannels)), None)
        if pick is not None and not references_before_pick(pipeline):
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

    def note(self, kind: str, name: str, value: Any) -> None:
        """Record ``value`` (JSON-ready) under ``summary["notes"][kind][name]`` for the recording being loaded (e.g.
        MIT-BIH's annotation counts per record); kept with a window cache and across loading processes."""
        self._scratch.setdefault("notes", {}).setdefault(kind, {})[name] = value

    def note_rejected(self, reason: str, count: int = 1) -> None:
        """Count ``count`` windows/epochs of the recording being loaded as rejected for ``reason`` (summary)."""
        if count:
            self._scratch.setdefault("report", RejectionReport()).rejected[reason] += int(count)

    def cut(self, recording: Recording, info: RecordingInfo, starts: np.ndarray | None = None,
            labels: Sequence[int] | np.ndarray | None = None, offset: int = 0,
            columns: dict[str, Any] | None = None) -> WindowSet:
        """Cut ``recording`` into :attr:`window_seconds` windows and reject bad ones (touching samples the file
        marks as invalid, NaN, flat, over ``max_amplitude`` on the final windows; counted by reason in the summary;
        see :func:`~neurorvq.data.preprocess.cut_windows`).

        ``starts`` (samples at the spec rate, e.g. event onsets) replaces the sliding grid of
        ``stride_seconds``; ``labels`` and each of ``columns`` (``{name: one value per start, or one value for
        all}``, e.g. ``{"trial": [...], "repetition": [...]}``) are kept aligned with the windows that survive. ``offset`` [samples] is added to the stored starts when ``recording`` begins
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
        per_start = {name: column_array(value, starts.shape[0], name, str(info.path))
                     for name, value in (columns or {}).items()}
        windows, kept, report = cut_windows(recording, self.window_seconds, self.stride_seconds,
                                            max_amplitude=self.max_amplitude, starts=starts)
        self._scratch.setdefault("report", RejectionReport()).merge(report)
        keep, j = [], 0  # kept starts are a subsequence of starts, in order
        for i, s in enumerate(starts):
            if j < len(kept) and s == kept[j]:
                keep.append(i)
                j += 1
        keep = np.asarray(keep, dtype=np.int64)
        if label_array is not None:
            label_array = label_array[keep]
        per_start = {name: values[keep] for name, values in per_start.items()}
        ids = [self.spec_.channel_index(ch) for ch in recording.channels]
        return WindowSet(windows, np.asarray(ids, dtype=np.int64), labels=label_array, recording=str(info.path),
                         starts=kept + int(offset), channels=list(recording.channels), columns=per_start)

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

    def split_rule(self) -> SplitRule | None:
        """The rule in force: ``split`` (a file path or a rule), else :meth:`default_split` (called once the
        recordings are found: :attr:`subject_names` is set)."""
        return self.split_rule_ if self.split_rule_ is not None else self.default_split()

    def resolve_plan(self) -> SplitPlan:
        """Find the recordings and resolve the split without loading anything: the :class:`SplitPlan` (also set
        as :attr:`plan`, with :attr:`splits`)."""
        self._find_and_split()
        return self.plan

    def recording_table(self, infos: Sequence[RecordingInfo]) -> list[dict[str, Any]]:
        """One row per recording: ``recording`` (path), ``subject`` (name), ``subject_id`` and its columns."""
        return [{"recording": str(i.path), "subject": i.subject, "subject_id": self.subject_ids[i.subject],
                 **i.columns} for i in infos]

    def _find(self) -> list[RecordingInfo]:
        """Every recording (sorted by path); sets :attr:`subject_names` and :attr:`subject_ids`."""
        self.find_skipped, self.find_excluded = {}, Counter()
        infos = sorted(self.find_recordings(), key=lambda i: str(i.path))
        if not infos:
            raise DataError(f"no {self.dataset_name} recordings found under '{self.root}': set data.init_args.root "
                            f"to the folder holding {self.root_layout}" + self._find_notes())
        names = sorted({i.subject for i in infos})
        if all(i.subject_id is not None for i in infos):
            ids = {i.subject: int(i.subject_id) for i in infos}
        else:
            ids = {name: k for k, name in enumerate(names)}
        self.subject_names, self.subject_ids = names, ids
        return infos

    def _find_and_split(self) -> list[RecordingInfo]:
        """The recordings that feed a split (sorted by path); sets :attr:`subject_names`, :attr:`subject_ids`,
        :attr:`plan` (which recordings and windows feed which split) and :attr:`splits` (subjects per split)."""
        infos = self._find()
        names, ids = self.subject_names, self.subject_ids
        rule = self.split_rule()
        table = self.recording_table(infos)
        if rule is None:
            self.plan = SplitPlan.from_parts("subject", split_subjects(
                names, self.seed, self.val_fraction, self.test_fraction,
                self._resolve_subjects(self.val_subjects, ids, "val_subjects"),
                self._resolve_subjects(self.test_subjects, ids, "test_subjects")), table)
        else:
            self.plan = resolve_split(rule, table, window_columns=self.window_columns, seed=self.seed,
                                      val_fraction=self.val_fraction, test_fraction=self.test_fraction,
                                      subject_ids=ids)
        self.find_excluded.update(f"{self.plan.by} {row[self.plan.by]} in no split" for row in table
                                  if not self.plan.parts_of[row["recording"]])
        self.splits = {part: sorted({i.subject for i in infos if part in self.plan.parts_of[str(i.path)]})
                       for part in SPLITS}
        return [i for i in infos if self.plan.parts_of[str(i.path)]]

    def _find_notes(self) -> str:
        """What listing the recordings left out (rows skipped or excluded by :meth:`find_recordings`)."""
        if not (self.find_skipped or self.find_excluded):
            return ""
        return (f"; every entry was skipped or left out (skipped: {sorted(set(self.find_skipped.values()))[:5]}, "
                f"left out: {dict(self.find_excluded)})")

    def _select(self, part: str, window_sets: Sequence[WindowSet]) -> list[WindowSet]:
        """The windows of ``window_sets`` (one recording) that belong to ``part`` of :attr:`plan`."""
        if self.plan.level == "recording":
            return list(window_sets)
        out = []
        for ws in window_sets:
            mask = self.plan.window_mask(part, ws.columns[self.plan.by])
            if mask.any():
                out.append(ws if mask.all() else ws.select(mask))
        return out

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
            for kind, entries in scratch.get("notes", {}).items():
                tally.setdefault("notes", {}).setdefault(kind, {}).update(entries)
            for ws in window_sets:
                ws.subjects = np.full(len(ws), self.subject_ids[info.subject], dtype=np.int64)
                for name, value in info.columns.items():  # the recording's columns, unless the loader set its own
                    if name not in ws.columns:
                        ws.columns[name] = column_array(value, len(ws), name, str(info.path))
            if n % progress_every == 0 or n == len(infos):  # about 20 progress lines, whatever the corpus size
                count = sum(len(ws) for ws in window_sets)
                self._say(f"[{n}/{len(infos)}] {info.path.name}: {count} windows ({'/'.join(self.plan.parts_of[str(info.path)]) or 'no split'})")
            yield info, window_sets

    def load_one(self, info: RecordingInfo, pipeline: Pipeline) -> tuple[list[WindowSet], dict[str, Any], str | None]:
        """``(window sets, scratch counts, reason it is unusable or None)`` of one recording. Data problems (a
        :class:`DataError`: unreadable or truncated file, missing annotation, dead channel, no usable window; or an
        ``OSError`` reading it) give a reason; anything else is a bug in the loader and raises, with a note naming
        the file (``strict=False`` does not hide it)."""
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
        except (DataError, OSError) as exc:
            reason = str(exc) if isinstance(exc, DataError) else f"{type(exc).__name__}: {exc}"
            return [], self._scratch, reason.removeprefix(f"{info.path}: ").strip() or type(exc).__name__
        except Exception as exc:
            exc.add_note(f"while loading {info.path}: an error in {type(self).__name__}.load_windows, not a data "
                         "problem (strict=False does not skip it)")
            raise
        finally:
            self._scratch = {}

    def recording_loader(self, pipeline: Pipeline) -> RecordingLoader:
        """The picklable loader that rebuilds this DataModule in a loading process (:class:`RecordingLoader`):
        its init arguments are the hyper-parameters its class accepts (as jsonargparse resolves them)."""
        from neurorvq.recipe_check import _resolved_params

        accepted = _resolved_params(type(self)) or list(self.hparams)
        args = {k: v for k, v in dict(self.hparams).items() if k in accepted}
        args["verbose"] = False
        args.pop("cache_dir", None)  # a worker only loads recordings
        return RecordingLoader(type(self), tuple(sorted(args.items())), pipeline)

    def _load_all(self, infos: Sequence[RecordingInfo], pipeline: Pipeline):
        """``(info, window sets, scratch, reason)`` per recording, in order; with ``num_workers > 0`` the
        recordings are read and preprocessed in that many processes (results still arrive in order)."""
        if self.num_workers <= 0 or len(infos) < 2:
            for info in infos:
                yield (info, *self.load_one(info, pipeline))
            return
        from concurrent.futures import ProcessPoolExecutor

        loader = self.recording_loader(pipeline)
        with ProcessPoolExecutor(min(self.num_workers, len(infos))) as pool:
            for info, result in zip(infos, pool.map(loader, infos)):
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
        if self.plan is not None and self.plan.by != "subject":
            self._summary["split"] = self.plan.summary()
        if self.find_skipped:  # entries skipped while listing the recordings (e.g. a bad row of a table)
            self._summary["skipped"] = {**self.find_skipped, **self._summary["skipped"]}
            self._summary["recordings_found"] += len(self.find_skipped)
            self._summary["recordings_skipped"] += len(self.find_skipped)
        if self.find_excluded:
            self._summary["excluded"] = dict(self.find_excluded)
        if tally.get("notes"):
            self._summary["notes"] = tally["notes"]
        w = self._summary["windows"]
        self._say(f"{self.dataset_name}: {loaded}/{found} recordings loaded, {len(skipped)} skipped; windows "
                  f"train/val/test = {w['train']}/{w['val']}/{w['test']} from "
                  f"{len(self.splits['train'])}/{len(self.splits['val'])}/{len(self.splits['test'])} subjects; "
                  f"{report.summary()}"
                  + (f"; channels dropped: {sorted(dropped)}" if dropped else ""))
        for split in ("val", "test"):
            if not w[split]:
                self._say(f"{self.dataset_name}: the {split} split is empty")

    def load_all(self) -> list[WindowSet]:
        """Load every recording found, ignoring the split, and return their window sets (with subject ids and
        columns): the pool that ``neurorvq cv`` folds itself. Does not touch :attr:`datasets`.

        With ``cache_dir`` the pool goes through a window cache of its own (the pseudo-split ``all``: every
        recording found, no split membership; see :mod:`~neurorvq.data.datamodule_cache`): the first call loads
        the recordings and writes it, later calls (another model of a benchmark row, a resumed ``neurorvq cv``)
        read it back without opening a recording. Either way the same window sets come back, in the same order
        (fold indices depend on it), with the same summary."""
        infos = self._find()
        self.splits = {"train": list(self.subject_names), "val": [], "test": []}
        self.plan = SplitPlan("subject", "recording", dict(self.splits), {str(i.path): ("train",) for i in infos})
        sets: list[WindowSet] = []
        tally: dict[str, Any] = {}
        if self.cache_dir is not None:
            sets, tally = self._pooled_from_cache(infos)
        else:
            for _, window_sets in self.iter_recordings(infos, self.make_pipeline(), tally):
                sets.extend(window_sets)
        self._finish_summary(len(infos), tally, {"train": sum(len(ws) for ws in sets), "val": 0, "test": 0},
                             len({ws.key for ws in sets}))
        return sets

    load_pooled = load_all
    """The name ``neurorvq cv`` and older code use for :meth:`load_all`."""

    def load(self) -> None:
        """Find, split and load every recording into memory (once); called by :meth:`setup` without
        ``cache_dir``."""
        if self.datasets:
            return
        infos = self._find_and_split()
        sets: dict[str, list[WindowSet]] = {split: [] for split in SPLITS}
        tally: dict[str, Any] = {}
        for info, window_sets in self.iter_recordings(infos, self.make_pipeline(), tally):
            for part in self.plan.parts_of[str(info.path)]:
                sets[part].extend(self._select(part, window_sets))
        datasets = {split: WindowDataset(sets[split]) for split in SPLITS}
        self._finish_summary(len(infos), tally, {split: len(datasets[split]) for split in SPLITS},
                             len({key for split in SPLITS for key in datasets[split].channel_sets}))
        self.datasets = datasets

    def window_table(self, split: str) -> dict[str, Any]:
        """Every column of the windows of ``split`` (after :meth:`setup`, in memory), aligned with
        ``datasets[split]``: :meth:`~neurorvq.data.windowset.WindowDataset.table`."""
        self.load()
        return self.datasets[split].table()

    # ----------------------------------------------------------------------------------------- cache
    def _check_cacheable(self) -> None:
        if type(self).load is not RecordingDataModule.load:
            raise ConfigError(f"{type(self).__name__} post-processes its windows in load(), which the window cache "
                              "does not replay; leave data.init_args.cache_dir unset for this dataset")

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
    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        if self.cache_dir is not None:
            return self._cached_loader(split, shuffle)
        self.load()
        dataset = self.datasets[split]
        if split == "train" and not len(dataset):
            raise DataError(f"the train split of {self.dataset_name} under '{self.root}' has no windows (subjects: "
                            f"{self.splits.get('train')}); check the subjects and the skipped files in the summary")
        return window_loader(dataset, self.batch_size, shuffle, self.seed, self.num_workers)


__all__ = ["RecordingDataModule"]
