"""Compatibility: the names of ``neurorvq.data.windows`` from before it was split into modules with one job each.
Existing imports (``from neurorvq.data.windows import RecordingDataModule, RecordingInfo, WindowSet``) keep
working; new code imports from the modules themselves:

* :mod:`neurorvq.data.windowset`: :class:`WindowSet`, :class:`WindowDataset` (recording windows in memory).
* :mod:`neurorvq.data.sampling`: :class:`ChannelBucketSampler` (batches of one channel set), ``replicas_of``,
  ``shard_batches``, :func:`window_loader`, :class:`SplitLoaders`.
* :mod:`neurorvq.data.splits`: :func:`split_subjects` (a DataModule's subject split), ``SPLITS``.
* :mod:`neurorvq.data.recording`: :class:`RecordingInfo`, :func:`read_raw_checked`,
  :class:`RecordingSkippedWarning`, :class:`RecordingLoader` (loading in worker processes).
* :mod:`neurorvq.data.split_rules`: :class:`SplitRule`, :class:`SplitPlan` (splits as data).
* :mod:`neurorvq.data.datamodule`: :class:`RecordingDataModule`, the base of recording-based DataModules.
* :mod:`neurorvq.data.datamodule_cache`: its window cache (``cache_dir``), :data:`CACHE_LAYOUT_VERSION`.
"""

from neurorvq.data import datamodule_cache as _cache, recording as _recording
from neurorvq.data import sampling as _sampling, splits as _splits
from neurorvq.data.datamodule import RecordingDataModule
from neurorvq.data.datamodule_cache import CACHE_LAYOUT_VERSION
from neurorvq.data.recording import RecordingInfo, RecordingSkippedWarning, read_raw_checked
from neurorvq.data.sampling import ChannelBucketSampler, SplitLoaders, window_loader
from neurorvq.data.splits import split_subjects
from neurorvq.data.windowset import WindowDataset, WindowSet

# Not in __all__, but reachable here as they were before the split: the constants and helpers that datamodules
# and tests import.
SPLITS = _splits.SPLITS
_CACHE_SUMMARY, _NOT_IN_CACHE_KEY = _cache._CACHE_SUMMARY, _cache._NOT_IN_CACHE_KEY
TRUNCATION_HINTS, _window_samples = _recording.TRUNCATION_HINTS, _recording._window_samples
_EpochRelay, replicas_of, shard_batches = _sampling._EpochRelay, _sampling.replicas_of, _sampling.shard_batches

__all__ = ["CACHE_LAYOUT_VERSION", "ChannelBucketSampler", "RecordingDataModule", "RecordingInfo",
           "RecordingSkippedWarning", "SplitLoaders", "WindowDataset", "window_loader",
           "WindowSet", "read_raw_checked", "split_subjects"]
