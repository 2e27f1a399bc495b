"""Recording windows held in memory.

* :class:`WindowSet`: the windows cut from one recording (one channel set), ``float32 [W, C, T]`` in the
  modality's unit at its sampling rate, with per-window start samples and optional labels and subject ids.
* :class:`WindowDataset`: a map-style dataset over a list of window sets. Item ``i`` is ``{"signal": float32
  [C, T], "channel_ids": int64 [C]}`` plus ``"label"`` / ``"subject"`` (int64 scalars) when the set has them.
  Batch it by channel set with :class:`~neurorvq.data.sampling.ChannelBucketSampler`.

Per-window metadata (session, run, trial, repetition, any dataset field) travels as *columns*: ``WindowSet.columns``
holds one ``[W]`` array per name, :meth:`WindowDataset.column` / :meth:`WindowDataset.table` give them for every
window together with the built-in columns ``subject``, ``recording``, ``start`` and ``label``.
"""

from __future__ import annotations

import keyword
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from neurorvq.data.preprocess import DataError


BUILTIN_COLUMNS = ("subject", "recording", "start", "label")
"""Columns every :class:`WindowDataset` derives from its sets' own fields (not stored in ``WindowSet.columns``)."""
_RESERVED = set(BUILTIN_COLUMNS) | {"signal", "signals", "channel_ids", "channels", "labels", "subjects", "starts",
                                    "key", "columns", "subject_id", "subject_name"}


def column_array(value: Any, windows: int, name: str, where: str = "") -> np.ndarray:
    """``value`` (a scalar or ``windows`` values) as a ``[windows]`` int64, float64 or str array."""
    where = f"{where}: " if where else ""
    if not (isinstance(name, str) and name.isidentifier() and not keyword.iskeyword(name)) or name in _RESERVED:
        raise DataError(f"{where}column name {name!r} is not allowed; use an identifier other than "
                        f"{sorted(_RESERVED)}")
    array = np.asarray(value)
    if array.ndim == 0:
        array = np.full(windows, array.item())
    array = array.reshape(-1)
    if array.shape[0] != windows:
        raise DataError(f"{where}column {name!r} has {array.shape[0]} entries for {windows} windows")
    if array.dtype.kind in "biu":
        return array.astype(np.int64)
    if array.dtype.kind == "f":
        return array.astype(np.float64)
    if array.dtype.kind in "US":
        return array.astype(str)
    raise DataError(f"{where}column {name!r} holds {array.dtype} values; use integers, floats or strings")


# ------------------------------------------------------------------------------------------------ WindowSet
@dataclass
class WindowSet:
    """Windows cut from one recording, all with the same channels and length.

    Attributes:
        signals: ``float32 [W, C, T]`` in the modality's unit (``spec.unit``) at ``spec.sampling_rate``.
        channel_ids: ``int64 [C]`` vocabulary ids (``spec.channel_index``) of the signal rows.
        labels: ``int64 [W]`` class of each window, or ``None`` for unlabelled data.
        subjects: ``int64 [W]`` subject id of each window, or ``None``. Subject ids are integers so that they
            batch; :class:`RecordingDataModule` fills them from the recording's
            :attr:`RecordingInfo.subject_id` (e.g. 1 for EEGMMIDB's ``S001``) or, when the dataset has no
            numeric ids, from the subject's position in :attr:`RecordingDataModule.subject_names`.
        recording: the source file.
        starts: ``int64 [W]`` first sample of each window at the spec rate, counted from the start of the
            source recording (``None`` -> ``-1``, unknown).
        channels: vocabulary names of the rows (length C), for reports.
        columns: per-window metadata, ``{name: [W] array}`` (int64, float64 or str values; e.g. ``session``,
            ``run``, ``trial``, ``repetition``): a recording-wide value may be given as a scalar and is repeated.
            Names are identifiers other than the built-in columns (:data:`BUILTIN_COLUMNS`).
    """

    signals: np.ndarray
    channel_ids: np.ndarray
    labels: np.ndarray | None = None
    subjects: np.ndarray | None = None
    recording: str = ""
    starts: np.ndarray | None = None
    channels: list[str] = field(default_factory=list)
    columns: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.signals = np.ascontiguousarray(self.signals, dtype=np.float32)
        self.channel_ids = np.asarray(self.channel_ids, dtype=np.int64).reshape(-1)
        self.recording = str(self.recording)
        if self.signals.ndim != 3:
            raise DataError(f"{self.recording}: WindowSet.signals must be [W, C, T], got shape "
                            f"{tuple(self.signals.shape)}")
        w, c, _ = self.signals.shape
        if self.channel_ids.shape[0] != c:
            raise DataError(f"{self.recording}: {self.channel_ids.shape[0]} channel ids for {c} signal rows")
        if self.starts is None:
            self.starts = np.full(w, -1, dtype=np.int64)
        for name in ("labels", "subjects", "starts"):
            value = getattr(self, name)
            if value is None:
                continue
            value = np.asarray(value, dtype=np.int64).reshape(-1)
            if value.shape[0] != w:
                raise DataError(f"{self.recording}: WindowSet.{name} has {value.shape[0]} entries for {w} windows")
            setattr(self, name, value)
        self.channels = [str(ch) for ch in self.channels]
        if self.channels and len(self.channels) != c:
            raise DataError(f"{self.recording}: {len(self.channels)} channel names for {c} signal rows")
        self.columns = {name: column_array(value, w, name, self.recording)
                        for name, value in dict(self.columns or {}).items()}

    def __len__(self) -> int:
        return int(self.signals.shape[0])

    @property
    def num_channels(self) -> int:
        return int(self.signals.shape[1])

    @property
    def num_samples(self) -> int:
        return int(self.signals.shape[2])

    def select(self, index: np.ndarray) -> "WindowSet":
        """The windows at ``index`` (integer positions or a boolean mask ``[W]``), every per-window field kept."""
        pick = (lambda a: None if a is None else a[index])
        return type(self)(self.signals[index], self.channel_ids, labels=pick(self.labels), subjects=pick(self.subjects),
                         recording=self.recording, starts=pick(self.starts), channels=list(self.channels),
                         columns={name: values[index] for name, values in self.columns.items()})

    @property
    def key(self) -> tuple:
        """What windows must share to be batched: channel ids, length, and which optional fields exist."""
        return (tuple(self.channel_ids.tolist()), self.num_samples, self.labels is not None,
                self.subjects is not None)


# ------------------------------------------------------------------------------------------------ dataset
class WindowDataset(Dataset):
    """Map-style dataset over the windows of ``sets`` (empty sets are dropped), in order.

    Item ``i``: ``{"signal": float32 [C, T], "channel_ids": int64 [C]}`` plus ``"label"`` and ``"subject"``
    (int64 scalars) when its set has them. Windows of different sets may differ in C (and T): batch them
    with :class:`ChannelBucketSampler`.
    """

    def __init__(self, sets: Sequence[WindowSet]) -> None:
        super().__init__()
        self.sets: list[WindowSet] = [s for s in sets if len(s)]
        self.offsets = np.cumsum([0] + [len(s) for s in self.sets]).astype(np.int64)
        keys: dict[tuple, int] = {}
        for s in self.sets:
            keys.setdefault(s.key, len(keys))
        self.bucket_of_key = keys
        self.bucket_ids = np.concatenate(
            [np.full(len(s), keys[s.key], dtype=np.int64) for s in self.sets]) if self.sets else np.zeros(0, np.int64)

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def locate(self, index: int) -> tuple[int, int]:
        """``(set position, window position in that set)`` of window ``index``."""
        n = len(self)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(f"window {index} out of range for a WindowDataset of {n} windows")
        s = int(np.searchsorted(self.offsets, index, side="right") - 1)
        return s, int(index - self.offsets[s])

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        s, i = self.locate(int(index))
        ws = self.sets[s]
        item = {"signal": torch.from_numpy(ws.signals[i]), "channel_ids": torch.from_numpy(ws.channel_ids)}
        if ws.labels is not None:
            item["label"] = torch.tensor(int(ws.labels[i]), dtype=torch.long)
        if ws.subjects is not None:
            item["subject"] = torch.tensor(int(ws.subjects[i]), dtype=torch.long)
        return item

    @property
    def channel_sets(self) -> list[tuple[int, ...]]:
        """Distinct channel-id tuples, in order of first appearance."""
        return list(dict.fromkeys(key[0] for key in self.bucket_of_key))

    def _concat(self, name: str) -> np.ndarray | None:
        parts = [getattr(s, name) for s in self.sets]
        if not parts or any(p is None for p in parts):
            return None
        return np.concatenate(parts)

    @property
    def labels(self) -> np.ndarray | None:
        """``int64 [N]`` labels of every window, or ``None`` unless every set is labelled."""
        return self._concat("labels")

    @property
    def subjects(self) -> np.ndarray | None:
        """``int64 [N]`` subject ids of every window, or ``None`` unless every set has them."""
        return self._concat("subjects")

    @property
    def recordings(self) -> list[str]:
        """Source file of every window (length N)."""
        return [s.recording for s in self.sets for _ in range(len(s))]

    @property
    def column_names(self) -> list[str]:
        """Names :meth:`column` accepts: ``subject`` (when every set has subject ids), ``recording``, ``start``,
        ``label`` (when every set is labelled), then the metadata columns every set holds, in order of first
        appearance."""
        names = [n for n in BUILTIN_COLUMNS if n not in ("subject", "label") or self._concat(n + "s") is not None]
        own = dict.fromkeys(name for s in self.sets for name in s.columns)
        return names + [n for n in own if all(n in s.columns for s in self.sets)]

    def column(self, name: str) -> np.ndarray:
        """``[N]`` values of column ``name`` for every window (see :attr:`column_names`); a name the windows do not
        all have raises a :class:`DataError` listing the columns."""
        if name in ("subject", "label") and self._concat(name + "s") is not None:
            return self._concat(name + "s")
        if name == "recording":
            return np.asarray(self.recordings, dtype=str)
        if name == "start":
            return self._concat("starts") if self.sets else np.zeros(0, np.int64)
        if self.sets and all(name in s.columns for s in self.sets):
            return np.concatenate([s.columns[name] for s in self.sets])
        import difflib

        names = self.column_names
        close = difflib.get_close_matches(name, names, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        partial = [n for n in dict.fromkeys(c for s in self.sets for c in s.columns) if n not in names]
        some = f"; {partial} are set for some recordings only" if partial else ""
        raise DataError(f"the windows have no column {name!r}{hint}; columns: {', '.join(names)}{some}")

    def table(self) -> dict[str, np.ndarray]:
        """Every column of :attr:`column_names` as ``{name: [N] array}`` (``pandas.DataFrame(table)`` for a frame)."""
        return {name: self.column(name) for name in self.column_names}

    def subset(self, indices: Sequence[int] | np.ndarray) -> "WindowDataset":
        """A new dataset of the windows at ``indices`` (window order kept within each set; signals are copied
        only for the selected windows)."""
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        if indices.size and (indices.min() < 0 or indices.max() >= len(self)):
            raise IndexError(f"subset indices span {indices.min()}..{indices.max()} for {len(self)} windows")
        which = np.searchsorted(self.offsets, indices, side="right") - 1
        sets = []
        for s in np.unique(which):
            sets.append(self.sets[s].select(np.sort(indices[which == s] - self.offsets[s])))
        return WindowDataset(sets)


def channel_names_in(datasets: Sequence[WindowDataset], vocabulary: Sequence[str]) -> list[str]:
    """Vocabulary names of every channel the windows of ``datasets`` use, in vocabulary order (what a model must
    know to take the data: :meth:`RecordingDataModule.channel_names_used`)."""
    ids = {i for data in datasets for channel_set in data.channel_sets for i in channel_set}
    return [vocabulary[i] for i in sorted(ids)]


__all__ = ["BUILTIN_COLUMNS", "WindowDataset", "WindowSet", "channel_names_in", "column_array"]
