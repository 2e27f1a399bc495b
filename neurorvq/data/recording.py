"""One recording file before it becomes windows: what a DataModule lists (:class:`RecordingInfo`), reading it with
MNE's truncation warnings turned into errors (:func:`read_raw_checked`), the warning a skipped recording gives
(:class:`RecordingSkippedWarning`), and the window length in samples (``_window_samples``)."""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from neurorvq.data.preprocess import DataError
from neurorvq.errors import ConfigError
from neurorvq.registry import ModalitySpec


class RecordingSkippedWarning(UserWarning):
    """A recording was left out (the message names the file and the reason)."""


# ------------------------------------------------------------------------------------------------ reading
TRUNCATION_HINTS = ("does not match the file size", "file size", "truncated", "end of file")


def read_raw_checked(path: str | Path, reader: Callable[..., Any], **kwargs: Any):
    """``reader(path, **kwargs)`` (an ``mne.io.read_raw_*``) with MNE's warnings caught: a warning that the
    file is shorter than its header says (MNE reads what is there and warns) becomes a :class:`DataError`
    naming the file; other warnings are dropped. An error the reader raises on the file (a damaged header, ...)
    is a :class:`DataError` too (``OSError`` stays one), so loading skips the file instead of stopping."""
    mne_logger = logging.getLogger("mne")
    mute = logging.Filter("mne.muted")  # passes no record of the 'mne' logger: the warnings are handled here
    mne_logger.addFilter(mute)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            raw = reader(str(path), verbose="warning", **kwargs)
    except (DataError, OSError):
        raise
    except Exception as exc:  # the reader is third-party code: whatever it raises on a file is a data problem
        kind = Path(path).suffix.lstrip(".").upper() or "recording"
        raise DataError(f"{path}: unreadable {kind} file ({type(exc).__name__}: {exc})") from exc
    finally:
        mne_logger.removeFilter(mute)
    for w in caught:
        message = str(w.message)
        if any(hint in message.lower() for hint in TRUNCATION_HINTS):
            raise DataError(f"{path}: truncated or corrupt file ({message.strip()})")
    return raw


# ------------------------------------------------------------------------------------------------ recordings
@dataclass
class RecordingInfo:
    """One recording a :class:`RecordingDataModule` will load.

    path: the file; subject: the dataset's subject name (e.g. ``'S001'``), the unit of the train/val/test
    split; subject_id: its number where the dataset has one (EEGMMIDB ``S001`` -> 1), else ``None``;
    metadata: anything the subclass needs in :meth:`RecordingDataModule.load_windows` (run, label file, ...);
    columns: the recording's metadata columns (``{"session": "T", "run": 4}``: int, float or str), known before
    loading: a split can be drawn by them (``split: {by: session, ...}``) and every window of the recording
    carries them (:attr:`~neurorvq.data.windowset.WindowSet.columns`).
    """

    path: Path
    subject: str
    subject_id: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    columns: dict[str, Any] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------------ workers
_WORKER_MODULES: dict[tuple, Any] = {}  # one DataModule per (class, init args) in each loading process


@dataclass(frozen=True)
class RecordingLoader:
    """Loads one recording in a loading process: ``loader(info) -> (window sets, scratch, reason)``.

    Picklable: the DataModule's class, the init arguments it was built from (what its cache key hashes) and the
    preprocessing pipeline. Each process builds the DataModule once from them, so a worker sees exactly the
    settings a cache key covers, never a copy of a live module (its trainer, loaded data or state set later).
    """

    cls: type
    init_args: tuple[tuple[str, Any], ...]
    pipeline: Any

    def module(self) -> Any:
        key = (self.cls, repr(self.init_args))
        if key not in _WORKER_MODULES:
            _WORKER_MODULES.clear()  # one dataset per process at a time: drop the last one's module
            _WORKER_MODULES[key] = self.cls(**dict(self.init_args))
        return _WORKER_MODULES[key]

    def __call__(self, info: RecordingInfo) -> tuple[list, dict[str, Any], str | None]:
        return self.module().load_one(info, self.pipeline)


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


__all__ = ["RecordingInfo", "RecordingLoader", "RecordingSkippedWarning", "TRUNCATION_HINTS", "read_raw_checked"]
