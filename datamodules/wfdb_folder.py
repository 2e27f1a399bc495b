"""WFDB records (PhysioNet's format) for the recording-based DataModules, and a folder of them for unlabelled
pretraining (``neurorvq.datamodules.wfdb_folder``).

Reading (shared by :mod:`~neurorvq.datamodules.mitbih` and :mod:`~neurorvq.datamodules.ptbxl`):

* a record is named by its header ``NAME.hea``; its signal files (``.dat``, ``.xyz``, wfdb2mat ``.mat`` with the
  ``16+24`` byte offset, ...) are read with ``wfdb.rdrecord`` in physical units. Header comment lines (also before
  the record line, as in the wfdb-python copy of MIT-BIH ``100.hea``) are allowed.
* before reading, every signal file is checked against the header: a file shorter than the header's length says
  (a truncated download) is a :class:`~neurorvq.data.preprocess.DataError` naming the file, so the record is
  skipped with a warning (or raises in strict mode) instead of failing deep inside wfdb or being read short.
* voltage channels (units ``V``, ``mV``, ``uV``/``µV``, ``nV``; case-insensitive) are converted to volts for MNE
  (the pipeline scales SI -> the modality's unit once, e.g. mV for ECG). Channels in other units (``NU`` for
  PLETH/RESP, ``mmHg`` for ABP, ...) are passed through unscaled: the channel mapping drops and reports them
  because they are not vocabulary names; one that does map onto the vocabulary (an ``II`` in ``NU``) is dropped
  with the unit as the reason.
* missing samples (WFDB's invalid value, NaN after ``rdrecord``) are linearly interpolated for the filters and
  set back to NaN after preprocessing (at the new rate, with one sample of margin), so the windows touching a
  gap are rejected (``nan`` in the summary) instead of the whole channel turning NaN in the FIR filters. A
  channel that is missing over the whole record is reported as dead (see ``dead_channels``).

:class:`WFDBFolderDataModule`: every record under ``root`` (``*.hea``, recursive), sliding unlabelled windows;
ECG by default (channels mapped onto the ECG vocabulary: ``MLII`` -> ``ii``, ``V`` of challenge-2015 is dropped,
being no single precordial lead). Segment headers of multi-segment records are read through their master
header only. Subject of a record: its parent folder (``subject_from='parent'``: PTB Diagnostic's
``patient001/``), the first folder under ``root`` (``'top'``) or the record name (``'stem'``). Channels not named
by lead (``ECG 000``, ``ch1``, ...) are renamed with ``channel_map``, a mapping or a CSV/TSV/JSON file of
``old,new`` pairs (:mod:`neurorvq.data.channel_map`): every name it lists must be a channel of every record (an
error naming the record otherwise) unless ``channel_map_partial=True``.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from neurorvq.data.channel_map import check_recording_channels, load_channel_map, with_channel_map
from neurorvq.data.channels import describe_dropped, map_channels
from neurorvq.data.preprocess import DataError, PickChannels, Pipeline, Recording
from neurorvq.data.windows import RecordingDataModule, RecordingInfo, WindowSet
from neurorvq.errors import ConfigError

VOLT_FACTORS: dict[str, float] = {"v": 1.0, "volt": 1.0, "volts": 1.0, "mv": 1e-3, "millivolt": 1e-3,
                                  "millivolts": 1e-3, "uv": 1e-6, "µv": 1e-6, "μv": 1e-6, "microvolt": 1e-6,
                                  "microvolts": 1e-6, "nv": 1e-9}
"""WFDB unit string (lower case) -> factor to volts."""

BYTES_PER_SAMPLE: dict[str, float] = {"8": 1, "16": 2, "24": 3, "32": 4, "61": 2, "80": 1, "160": 2, "212": 1.5,
                                      "310": 4 / 3, "311": 4 / 3}
"""Uncompressed WFDB storage formats -> bytes per sample (FLAC formats 508/516/524 are not size-checked)."""

SUBJECT_FROM = ("parent", "top", "stem")


@contextlib.contextmanager
def quiet_wfdb():
    """Silence the pandas deprecation warnings wfdb 4.3 triggers on every read with pandas >= 3 (``The inplace
    keyword in DataFrame.set_index is deprecated``); other warnings pass."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"The inplace keyword", category=DeprecationWarning)
        yield


def volt_factor(unit: str | None) -> float | None:
    """Factor from ``unit`` to volts (``'mV'`` -> 1e-3); ``None`` for a unit that is not a voltage.
    WFDB's default unit (none written in the header) is mV."""
    if unit is None or not str(unit).strip():
        return 1e-3
    return VOLT_FACTORS.get(str(unit).strip().lower())


def record_base(path: str | Path) -> Path:
    """The record name wfdb expects (``folder/100``) for a header path (``folder/100.hea``) or a record name."""
    path = Path(path)
    return path.with_suffix("") if path.suffix.lower() == ".hea" else path


def header_record_line(path: str | Path) -> list[str]:
    """Fields of the record line of header ``path`` (the first line that is neither blank nor a comment)."""
    with open(path, encoding="latin-1") as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#"):
                return line.split()
    return []


def segment_names(path: str | Path) -> list[str]:
    """Names of the segments of a multi-segment header (record line ``name/nseg ...``), else ``[]``."""
    fields = header_record_line(path)
    if not fields or "/" not in fields[0]:
        return []
    try:
        n = int(fields[0].split("/")[1])
    except ValueError:
        return []
    names = []
    with open(path, encoding="latin-1") as f:
        lines = [ln.strip() for ln in f if ln.strip() and not ln.strip().startswith("#")]
    for line in lines[1:1 + n]:
        names.append(line.split()[0])
    return names


def signal_file_problems(header: Any, directory: str | Path) -> list[str]:
    """Signal files of a single-segment ``wfdb.Record`` header that are missing or shorter than the header says.

    The expected size of a file is its byte offset plus ``sig_len x (samples per frame of its signals) x bytes per
    sample`` (rounded down); files in compressed or unknown formats, and headers without a length, are not checked.
    """
    n = getattr(header, "sig_len", None)
    files = getattr(header, "file_name", None) or []
    if not files:
        return []
    fmts = header.fmt or [None] * len(files)
    spf = header.samps_per_frame or [1] * len(files)
    offsets = header.byte_offset or [None] * len(files)
    per_file: dict[str, dict[str, Any]] = {}
    for name, fmt, frames, offset in zip(files, fmts, spf, offsets):
        entry = per_file.setdefault(name, {"samples": 0, "fmt": set(), "offset": int(offset or 0)})
        entry["samples"] += int(frames or 1)
        entry["fmt"].add(str(fmt))
    problems = []
    for name, entry in per_file.items():
        if name == "~":  # a null signal (multi-segment layouts)
            continue
        path = Path(directory) / name
        if not path.is_file():
            problems.append(f"signal file {name} not found")
            continue
        if not n or len(entry["fmt"]) != 1 or next(iter(entry["fmt"])) not in BYTES_PER_SAMPLE:
            continue
        need = entry["offset"] + math.floor(int(n) * entry["samples"] * BYTES_PER_SAMPLE[next(iter(entry["fmt"]))])
        size = path.stat().st_size
        if size < need:
            problems.append(f"truncated signal file {name}: {size} bytes, but the header's {int(n)} samples x "
                            f"{entry['samples']} signal(s) in format {next(iter(entry['fmt']))} need {need}")
    return problems


@dataclass
class WFDBSignals:
    """A WFDB record read in physical units.

    data: ``float64 [C, N]``; voltage channels in volts, others in their own ``units``; missing samples linearly
    interpolated (a channel missing everywhere stays NaN). gaps: per channel, ``(start, stop)`` sample ranges
    (at ``fs``, stop exclusive) that were missing. fs: sampling rate [Hz] of the record (frame rate).
    """

    data: np.ndarray
    names: list[str]
    units: list[str]
    fs: float
    volts: list[bool]
    gaps: list[list[tuple[int, int]]] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)
    path: str = ""


def _fill_gaps(row: np.ndarray) -> list[tuple[int, int]]:
    """Interpolate the NaN runs of ``row`` in place (edges: nearest value) and return them as ``(start, stop)``."""
    bad = np.isnan(row)
    if not bad.any() or bad.all():
        return [(0, row.shape[0])] if bad.all() else []
    edges = np.flatnonzero(np.diff(np.concatenate([[0], bad.astype(np.int8), [0]])))
    runs = [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2])]
    good = np.flatnonzero(~bad)
    row[bad] = np.interp(np.flatnonzero(bad), good, row[good])
    return runs


def read_wfdb(path: str | Path) -> WFDBSignals:
    """Read the WFDB record of header ``path`` (``.../100.hea``, or the record name ``.../100``).

    Raises :class:`DataError` (naming the file) for a missing or truncated signal file or an unreadable record.
    Returns :class:`WFDBSignals` (voltages in V, missing samples interpolated and listed in ``gaps``).
    """
    import wfdb

    base = record_base(path)
    header_path = base.with_name(base.name + ".hea")
    if not header_path.is_file():
        raise DataError(f"{header_path}: header not found")
    try:
        with quiet_wfdb():
            header = wfdb.rdheader(str(base))
    except Exception as exc:
        raise DataError(f"{header_path}: unreadable WFDB header ({type(exc).__name__}: {exc})") from exc
    if isinstance(header, wfdb.Record):
        problems = signal_file_problems(header, base.parent)
        if problems:
            raise DataError(f"{header_path}: {'; '.join(problems)}")
        if not header.n_sig:
            raise DataError(f"{header_path}: the header lists no signals")
    try:
        with quiet_wfdb():
            record = wfdb.rdrecord(str(base), physical=True)
    except Exception as exc:
        raise DataError(f"{header_path}: unreadable WFDB record ({type(exc).__name__}: {exc})") from exc
    signal = record.p_signal
    if signal is None or signal.size == 0:
        raise DataError(f"{header_path}: the record holds no samples")
    names = [str(n) for n in record.sig_name]
    units = [str(u) for u in (record.units or ["mV"] * len(names))]
    data = np.array(signal, dtype=np.float64).T  # [C, N], a writable copy
    volts = []
    for i, unit in enumerate(units):
        factor = volt_factor(unit)
        volts.append(factor is not None)
        if factor is not None and factor != 1.0:
            data[i] *= factor
    gaps = [_fill_gaps(data[i]) for i in range(data.shape[0])]
    return WFDBSignals(data, names, units, float(record.fs), volts, gaps, [str(c) for c in (record.comments or [])],
                       str(header_path))


def unique_names(names: Sequence[str]) -> list[str]:
    """``names`` made unique for MNE: a repeated name gets `` (2)``, `` (3)``, ... (and is then dropped by the
    channel mapping as a name outside the vocabulary)."""
    seen: dict[str, int] = {}
    out = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name} ({seen[name]})")
    return out


def wfdb_raw(signals: WFDBSignals, picks: Sequence[int] | None = None):
    """An ``mne.io.RawArray`` of ``signals`` (rows ``picks``, default all): voltage channels typed ``ecg`` (in V),
    the others ``misc``."""
    import mne

    picks = list(range(len(signals.names))) if picks is None else list(picks)
    names = unique_names([signals.names[i] for i in picks])
    types = ["ecg" if signals.volts[i] else "misc" for i in picks]
    info = mne.create_info(names, signals.fs, types, verbose="error")
    return mne.io.RawArray(signals.data[picks], info, verbose="error")


class WFDBRecordingDataModule(RecordingDataModule):
    """Base of DataModules over WFDB records: :meth:`read_recording` reads one (see the module docstring) and
    runs the pipeline. Subclasses implement ``find_recordings`` / ``load_windows`` as for any
    :class:`~neurorvq.data.windows.RecordingDataModule`; :attr:`RecordingInfo.path` is the record's ``.hea``."""

    def _note_dropped(self, dropped: dict[str, str]) -> None:
        # The base class collects dropped channels of the recording being loaded in _scratch['dropped'] (merged
        # into summary['dropped_channels'] when the recording loads); channels dropped here, before the pipeline,
        # are added the same way.
        if dropped:
            self._scratch.setdefault("dropped", {}).update(dropped)

    def check_channels(self, names: Sequence[str], info: RecordingInfo) -> None:
        """Called by :meth:`read_recording` with a record's channel names before they are mapped; a subclass may
        refuse the record (raise) or note dropped names. The default does nothing."""

    def read_recording(self, info: RecordingInfo, pipeline: Pipeline,
                       leads: Sequence[str] | None = None) -> tuple[Recording, float]:
        """Read the record of ``info`` and preprocess it.

        ``leads``: vocabulary names to keep (e.g. ``['ii']``); other channels that map onto the vocabulary are
        dropped and reported (``None`` keeps all). Returns ``(recording, fs)``: the
        :class:`~neurorvq.data.preprocess.Recording` (``[C, N']`` in the spec unit at the spec rate, NaN where
        the record had missing samples) and the record's own sampling rate [Hz].
        """
        signals = read_wfdb(info.path)
        self.check_channels(signals.names, info)
        pick = next((s for s in pipeline.steps if isinstance(s, PickChannels)), None)
        mapping = map_channels(signals.names, self.spec, explicit=pick.explicit if pick else None,
                               aliases=pick.aliases if pick else None)
        target = dict(zip(mapping.picks, mapping.names))
        wanted = None if leads is None else {str(x).lower() for x in leads}
        dropped: dict[str, str] = {}
        keep = []
        for i, name in enumerate(signals.names):
            if i in target and not signals.volts[i]:
                dropped[name] = f"unit '{signals.units[i]}' is not a voltage (the channel maps onto '{target[i]}')"
            elif i in target and wanted is not None and target[i] not in wanted:
                dropped[name] = f"'{target[i]}' is not among the selected leads {sorted(wanted)}"
            else:
                keep.append(i)
        if not keep:
            raise DataError(f"no channel left to read: {describe_dropped(dropped)}")
        self._note_dropped(dropped)
        raw = wfdb_raw(signals, keep)
        recording = self.preprocess(raw, info, pipeline)
        ratio = recording.sfreq / signals.fs
        n = recording.data.shape[1]
        for i in keep:
            if i not in target or target[i] not in recording.channels or not signals.gaps[i]:
                continue
            row = recording.channels.index(target[i])
            for start, stop in signals.gaps[i]:
                a = max(0, int(math.floor(start * ratio)) - 1)
                b = min(n, int(math.ceil(stop * ratio)) + 1)
                recording.data[row, a:b] = np.nan
        return recording, signals.fs


def download(database: str, root: str | Path, records: str | list[str] = "all") -> Path:
    """Download a PhysioNet WFDB database (e.g. ``'ptbdb'``, ``'challenge-2015/training'``) into ``root`` with
    ``wfdb.dl_database`` (needs internet) and return ``root``."""
    import wfdb

    root = Path(root).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    wfdb.dl_database(database, str(root), records=records, keep_subdirs=True)
    return root


class WFDBFolderDataModule(WFDBRecordingDataModule):
    """Unlabelled sliding windows from every WFDB record under ``root`` (see the module docstring).

    Args:
        root: the folder to search for ``*.hea`` (recursively unless ``recursive=False``).
        subject_from: ``'parent'`` (parent folder name, default), ``'top'`` (first folder below ``root``) or
            ``'stem'`` (record name: one subject per record).
        recursive: search sub-folders.
        channel_map: record channel -> vocabulary name of ``modality``, as a mapping (``{"ECG 000": "ii", ...}``)
            or the path of a CSV/TSV/JSON file of ``old,new`` pairs
            (:func:`~neurorvq.data.channel_map.load_channel_map`; checked at construction). Applied before the
            automatic mapping; channels neither in it nor in the vocabulary are dropped and listed in the summary.
        channel_map_partial: allow records that lack some names of ``channel_map`` (a folder mixing montages; the
            missing names are listed in the summary's dropped channels). By default a missing name is a
            :class:`~neurorvq.errors.ConfigError` naming the record.
        window_seconds / stride_seconds: window length (default 10 s = 50 ECG patches of 0.2 s) and step [s].
        modality: registered modality of the signals (default ``'ecg'``: 200 Hz, mV).
        other arguments: see :class:`~neurorvq.data.windows.RecordingDataModule`.

    Batches: ``{"signal": float32 [B, C, T] in the modality's unit (mV for ECG) at its rate (200 Hz),
    "channel_ids": int64 [B, C], "subject": int64 [B]}`` with ``T = window_seconds x 200``; C is that of the
    batch's channel set. Subject ids are positions in :attr:`subject_names` (sorted).
    """

    dataset_name = "WFDB folder"
    root_layout = "WFDB records (NAME.hea with its signal files), in sub-folders or not"

    def __init__(self, root: str, subject_from: str = "parent", recursive: bool = True,
                 channel_map: dict[str, str] | str | None = None, channel_map_partial: bool = False,
                 window_seconds: float = 10.0, modality: str = "ecg", **common: Any) -> None:
        if subject_from not in SUBJECT_FROM:
            raise ConfigError(f"subject_from is {subject_from!r}; use one of {list(SUBJECT_FROM)}")
        super().__init__(root, window_seconds=window_seconds, modality=modality, **common)
        self.subject_from = subject_from
        self.recursive = bool(recursive)
        self.channel_map = load_channel_map(channel_map, self.spec)
        self.channel_map_partial = bool(channel_map_partial)
        self.make_pipeline()  # a channel_map the steps cannot apply fails here, not at setup

    def make_pipeline(self) -> Pipeline:
        """The pipeline (``steps`` or the default) with :attr:`channel_map` in its ``PickChannels`` step."""
        return with_channel_map(super().make_pipeline(), self.channel_map)

    def check_channels(self, names: Sequence[str], info: RecordingInfo) -> None:
        """Refuse a record lacking names of :attr:`channel_map` (or note them with ``channel_map_partial``)."""
        self._note_dropped(check_recording_channels(self.channel_map, names, str(info.path), self.channel_map_partial))

    def subject_of(self, path: Path) -> str:
        """The subject name of header ``path`` under :attr:`subject_from`."""
        if self.subject_from == "stem":
            return record_base(path).name
        if self.subject_from == "top":
            parts = path.relative_to(self.root).parts
            return parts[0] if len(parts) > 1 else self.root.name
        return path.parent.name

    def find_recordings(self) -> list[RecordingInfo]:
        headers = sorted(p for p in (self.root.rglob("*") if self.recursive else self.root.glob("*"))
                         if p.suffix.lower() == ".hea" and p.is_file())
        segments: set[Path] = set()
        for path in headers:
            try:
                segments.update(path.parent / f"{name}.hea" for name in segment_names(path) if name != "~")
            except OSError:
                continue
        return [RecordingInfo(path, self.subject_of(path), None, {}) for path in headers if path not in segments]

    def load_windows(self, info: RecordingInfo, pipeline: Pipeline) -> list[WindowSet]:
        recording, _ = self.read_recording(info, pipeline)
        return [self.cut(recording, info)]


__all__ = ["BYTES_PER_SAMPLE", "VOLT_FACTORS", "WFDBFolderDataModule", "WFDBRecordingDataModule", "WFDBSignals",
           "download", "header_record_line", "quiet_wfdb", "read_wfdb", "record_base", "segment_names",
           "signal_file_problems", "unique_names", "volt_factor", "wfdb_raw"]
