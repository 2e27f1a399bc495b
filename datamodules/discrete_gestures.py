"""Meta's discrete gestures (Kaifosh et al., *Nature* 2025, "A generic non-invasive neuromotor interface for
human-computer interaction"; data and code CC BY-NC 4.0) as a LightningDataModule
(``neurorvq.datamodules.discrete_gestures``).

100 users of the sEMG-RD wristband, one recording per user (80 train / 10 val / 10 test users as released).
Layout of ``root`` (as :func:`download` and Meta's own download script leave it)::

    discrete_gestures_corpus.csv                       one row per partition: dataset, start, end, split
    discrete_gestures_user_000_dataset_000.hdf5        one file per recording (searched recursively)
    ...

One HDF5 file (structure from Meta's reader and README, ``facebookresearch/generic-neuromotor-interface``
``data.py``, ``explore_data/load.py``, ``explore_data/plot.py``; no code of it is used here):

==============  =====================================================================================
``data``        an h5py compound (structured-array) dataset, one row per sample at **2 kHz**: field
                ``time`` (float, seconds; absolute timestamps, e.g. 1645824198.82) and field ``emg``
                (16 values, **volts**; high-pass filtered at 40 Hz as released); attribute ``task``
                (``"discrete_gestures"``)
``prompts``     a pandas HDF (PyTables) table: one row per prompted gesture, columns ``name`` and
                ``time`` [s, the same clock as ``data``]
``stages``      a pandas HDF table of experiment stages (``name``, ``start``, ``end``); not read here
==============  =====================================================================================

``data`` is read with h5py; ``prompts`` with ``pandas.read_hdf``, which needs PyTables (``tables``): how pandas
lays out a table depends on its format (``fixed`` stores string columns as pickled objects), so it is not
re-parsed here. A recording without its ``prompts`` table is a :class:`DataError` naming the file.

The corpus CSV (``discrete_gestures_corpus.csv``; columns read: ``dataset``, ``start``, ``end``, ``split``) lists
the partitions (stages, ``start``-``end`` on the ``time`` clock) of every recording and gives each recording its
split: ``train`` / ``val`` / ``test``, assigned by user (Meta's released split; subject-independent by
construction). That split is the default (:meth:`DiscreteGesturesDataModule.default_split`; every window carries
its recording's ``corpus_split`` column); ``corpus_split=False`` falls back to the subject split of the base class
(``val_subjects`` / ``test_subjects`` / fractions), ``split`` to any other rule. Files the CSV does not list and
CSV rows whose file is absent (e.g. after the 3-user ``small_subset`` download) are left out and counted in
``summary['excluded']``.

Windows (a NeuroRVQ choice; Meta itself decodes 8-s windows continuously and reports CLER, and how the NeuroRVQ
authors turned events into fixed windows is not published, benchmarks.md §5.1 [I]): **one window per prompt**
of the nine gestures, starting ``offset_seconds`` (default 0) after the prompt's ``time`` and lasting
``window_seconds`` (default 0.4 s = 400 samples = two 0.2-s EMG patches). With ``within_partitions`` (default)
only prompts whose whole window lies inside one of the recording's CSV partitions are used (Meta trains and tests
inside them). Prompts of other names, outside the partitions or running past the recording's end are counted in
``summary['rejected']``.

Labels, Meta's ``GestureType`` order (``constants.py``): 0 index_press, 1 index_release, 2 middle_press,
3 middle_release, 4 thumb_click, 5 thumb_down, 6 thumb_in, 7 thumb_out, 8 thumb_up (:data:`GESTURES`).

Sampling rate: the EMG tokenizer (``emg`` modality, EMG v1) runs at 1 kHz with 0.2-s patches, so the 2-kHz data
are **resampled 2 kHz -> 1 kHz** (a decimation; no content below 500 Hz is lost). Default pipeline: the ``emg``
modality's steps with the resampling first, where it halves the filtering work: pick ``c1..c16``, resample to
1 kHz, notch 50/60 Hz (and harmonics), band-pass 20-450 Hz. Units: volts in the file, **µV** in the windows
(the ``emg`` spec's unit). Channels: ``emg`` column k-1 is ``c<k>`` (the EMG v1 vocabulary ``c1..c16``).

Subjects: ``discrete_gestures_user_<u>_dataset_<d>`` is user ``u`` (name ``user_<u>``, id ``u``).
"""

from __future__ import annotations

import csv
import importlib.util
import re
import tarfile
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from neurorvq.data.preprocess import DataError, Pipeline, steps_from_config
from neurorvq.data.split_rules import SplitRule
from neurorvq.data.windows import RecordingDataModule, RecordingInfo, WindowSet
from neurorvq.errors import ConfigError

GESTURES: tuple[str, ...] = ("index_press", "index_release", "middle_press", "middle_release", "thumb_click",
                             "thumb_down", "thumb_in", "thumb_out", "thumb_up")
"""Label order (Meta's ``GestureType`` values 0..8)."""
SAMPLING_RATE = 2000.0
"""Hz (sEMG-RD wristband)."""
N_CHANNELS = 16
CHANNELS: tuple[str, ...] = tuple(f"c{k}" for k in range(1, N_CHANNELS + 1))
"""Vocabulary name of ``emg`` column k-1."""
TASK = "discrete_gestures"
CORPUS_CSV = f"{TASK}_corpus.csv"
CORPUS_COLUMNS = ("dataset", "start", "end", "split")
"""Columns of the corpus CSV this module reads."""
CORPUS_SPLITS = ("train", "val", "test")
BASE_URL = "https://fb-ctrl-oss.s3.amazonaws.com/neuromotor-data/data/discrete_gestures"
VARIANTS = ("full_data", "small_subset")
"""Downloads: all 100 users, or 3 users (one per split)."""
DEFAULT_STEPS = ({"step": "PickChannels"}, {"step": "Resample"}, {"step": "Notch", "freqs": [50.0, 60.0]},
                 {"step": "BandPass", "low": 20.0, "high": 450.0})
RATE_TOLERANCE = 0.01
"""Relative deviation of the timestamps' median rate from 2 kHz beyond which a file is refused."""
_USER = re.compile(r"_user_(\d+)(?:_|$)")


# ------------------------------------------------------------------------------------------------ corpus
@dataclass
class CorpusEntry:
    """One recording of the corpus CSV: its ``split`` and its ``partitions`` (``(start, end)`` [s] each)."""

    split: str
    partitions: list[tuple[float, float]] = field(default_factory=list)


def read_corpus(path: str | Path) -> dict[str, CorpusEntry]:
    """``{dataset name: CorpusEntry}`` from ``discrete_gestures_corpus.csv``. Raises :class:`DataError` naming the
    file (and line) for a missing file or column, an unparsable time, an unknown split, or a recording listed in
    two splits."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path} not found: the corpus CSV lists the recordings, their partitions and their split "
                        "(discrete_gestures.download() fetches it with the data)")
    corpus: dict[str, CorpusEntry] = {}
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in CORPUS_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise DataError(f"{path}: missing column(s) {missing} (columns: {reader.fieldnames})")
        for line, row in enumerate(reader, 2):
            name, split = (row["dataset"] or "").strip().removesuffix(".hdf5"), (row["split"] or "").strip()
            if not name:
                raise DataError(f"{path} line {line}: empty dataset")
            if split not in CORPUS_SPLITS:
                raise DataError(f"{path} line {line}: split {split!r} is not one of {list(CORPUS_SPLITS)}")
            try:
                start, end = float(row["start"]), float(row["end"])
            except (TypeError, ValueError):
                raise DataError(f"{path} line {line}: start/end {row['start']!r}, {row['end']!r} are not times in "
                                "seconds") from None
            entry = corpus.setdefault(name, CorpusEntry(split))
            if entry.split != split:
                raise DataError(f"{path} line {line}: {name} is in both the {entry.split} and the {split} split")
            entry.partitions.append((start, end))
    return corpus


def user_of(dataset: str) -> int | None:
    """The user number of a dataset name (``discrete_gestures_user_007_dataset_000`` -> 7), or ``None``."""
    m = _USER.search(dataset)
    return int(m.group(1)) if m else None


# ------------------------------------------------------------------------------------------------ one file
@dataclass
class GestureRecording:
    """The content of one HDF5 file: ``time`` float64 ``[N]`` [s], ``emg`` float32 ``[N, 16]`` [V], prompt
    ``names`` (str ``[P]``) and prompt ``times`` (float64 ``[P]``, [s] on the ``time`` clock)."""

    time: np.ndarray
    emg: np.ndarray
    names: np.ndarray
    times: np.ndarray


def read_prompts(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """``(names, times)`` of the ``prompts`` table of ``path`` (``pandas.read_hdf``; needs PyTables).
    Raises :class:`DataError` naming the file when the table or its ``name`` / ``time`` column is missing."""
    import h5py
    import pandas as pd

    with h5py.File(path, "r") as f:
        if "prompts" not in f:
            raise DataError(f"{path}: no 'prompts' table (the gesture names and times of a discrete_gestures "
                            f"recording; tables in the file: {sorted(f.keys())}); re-download the recording")
    if importlib.util.find_spec("tables") is None:  # pandas.read_hdf's engine
        raise ConfigError("reading the prompts table of Meta's HDF5 files needs PyTables (tables): "
                          'pip install "neurorvq[benchmarks]"')
    try:
        prompts = pd.read_hdf(path, "prompts")
    except Exception as exc:  # a damaged or foreign table: pandas/PyTables raise many kinds
        raise DataError(f"{path}: unreadable 'prompts' table ({type(exc).__name__}: {exc})") from exc
    missing = [c for c in ("name", "time") if c not in getattr(prompts, "columns", [])]
    if missing:
        raise DataError(f"{path}: the 'prompts' table has no column(s) {missing} (columns: "
                        f"{list(getattr(prompts, 'columns', []))})")
    times = pd.to_numeric(prompts["time"], errors="coerce").to_numpy(dtype=np.float64)
    if not np.isfinite(times).all():
        raise DataError(f"{path}: the 'prompts' table holds non-numeric or missing times")
    return prompts["name"].astype(str).to_numpy(), times


def read_recording(path: str | Path) -> GestureRecording:
    """Read one discrete-gestures HDF5 file (module docstring). Raises :class:`DataError` naming the file for an
    unreadable file, a missing ``data`` table or field, a ``task`` other than discrete_gestures, a number of
    channels other than 16, timestamps that go backwards, or a missing ``prompts`` table."""
    import h5py

    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise DataError(f"{path}: unreadable HDF5 file ({exc})") from exc
    with f:
        if "data" not in f or not isinstance(f["data"], h5py.Dataset):
            raise DataError(f"{path}: no 'data' table (tables in the file: {sorted(f.keys())})")
        data = f["data"]
        fields = data.dtype.names or ()
        missing = [name for name in ("time", "emg") if name not in fields]
        if missing:
            raise DataError(f"{path}: the 'data' table has no field(s) {missing} (fields: {list(fields)})")
        task = data.attrs.get("task")
        task = task.decode() if isinstance(task, bytes) else task
        if task is not None and str(task) != TASK:
            raise DataError(f"{path}: a '{task}' recording, not {TASK}")
        shape = data.dtype["emg"].shape
        if shape != (N_CHANNELS,):
            raise DataError(f"{path}: 'emg' has {shape} values per sample; expected ({N_CHANNELS},) (the "
                            "16-channel wristband)")
        time = np.asarray(data["time"], dtype=np.float64).reshape(-1)
        emg = np.asarray(data["emg"], dtype=np.float32)
    if time.size < 2 or (np.diff(time) < 0).any() or not np.isfinite(time).all():
        raise DataError(f"{path}: the 'time' field is not a non-decreasing series of finite seconds")
    names, times = read_prompts(path)
    return GestureRecording(time, emg, names, times)


def measured_rate(time: np.ndarray, lag: int = 1000) -> float:
    """Sampling rate [Hz] from the median step of the timestamps ``time`` [s], measured over ``lag`` samples:
    absolute (unix) seconds in float64 resolve about 0.2 µs, too coarse for one 0.5-ms step."""
    lag = max(1, min(lag, time.size - 1))
    step = float(np.median(time[lag:] - time[:-lag])) / lag
    return 1.0 / step if step > 0 else float("inf")


# ------------------------------------------------------------------------------------------------ download
def download(root: str | Path, variant: str = "full_data", base_url: str = BASE_URL) -> Path:
    """Download Meta's ``<variant>.tar`` (``full_data``: 100 users; ``small_subset``: 3) and the corpus CSV from
    ``base_url`` into ``root``, extract the tar there (the HDF5 files land beside the CSV) and delete it; return
    ``root``. Needs internet (``full_data`` is tens of GB). The data are CC BY-NC 4.0."""
    if variant not in VARIANTS:
        raise ConfigError(f"variant is {variant!r}; use one of {list(VARIANTS)}")
    root = Path(root).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    archive = root / f"{TASK}_{variant}.tar"
    urllib.request.urlretrieve(f"{base_url}/{variant}.tar", archive)
    with tarfile.open(archive) as tar:
        tar.extractall(root, filter="data")  # refuses absolute paths and links leaving root
    archive.unlink()
    urllib.request.urlretrieve(f"{base_url}/{CORPUS_CSV}", root / CORPUS_CSV)
    return root


# ------------------------------------------------------------------------------------------------ DataModule
class DiscreteGesturesDataModule(RecordingDataModule):
    """One window per prompted gesture of Meta's discrete-gestures recordings (module docstring: files, windows,
    labels, split, rate).

    Args:
        root: folder holding ``discrete_gestures_corpus.csv`` and the ``*.hdf5`` recordings.
        users: user numbers to load (``[0, 1]``); ``None`` = every user of the corpus CSV whose file is there.
        window_seconds: window length [s], whole 0.2-s EMG patches (default 0.4 = 400 samples at 1 kHz).
        offset_seconds: window start relative to the prompt's time [s] (default 0: the window starts at the event).
        within_partitions: keep only prompts whose window lies inside one of the recording's CSV partitions.
        corpus_split: split by the corpus CSV's ``split`` column (Meta's user split, default); ``False``: subjects by
            ``val_subjects`` / ``test_subjects`` / fractions as in the base class.
        other arguments: see :class:`~neurorvq.data.windows.RecordingDataModule`.

    Batches: ``{"signal": float32 [B, 16, T] µV at 1000 Hz (T = 400 by default), "channel_ids": int64 [B, 16],
    "label": int64 [B] (0..8, :data:`GESTURES`), "subject": int64 [B] (user number)}``.
    """

    dataset_name = "Meta discrete gestures"
    root_layout = f"{CORPUS_CSV} and the discrete_gestures_user_<u>_dataset_<d>.hdf5 recordings"
    label_names = GESTURES

    def __init__(self, root: str, users: list[int] | None = None, window_seconds: float = 0.4,
                 offset_seconds: float = 0.0, within_partitions: bool = True, corpus_split: bool = True,
                 val_subjects: list[int | str] | None = None, test_subjects: list[int | str] | None = None,
                 modality: str = "emg", **common: Any) -> None:
        if users is not None and (not users or any(int(u) < 0 for u in users)):
            raise ConfigError(f"users is {users}; give user numbers >= 0 (e.g. [0, 1]), or null for all")
        if corpus_split and (val_subjects is not None or test_subjects is not None):
            raise ConfigError("val_subjects/test_subjects are given but corpus_split is true (the corpus CSV's user "
                              "split); set data.init_args.corpus_split=false to choose the subjects")
        super().__init__(root, window_seconds=window_seconds, stride_seconds=None, val_subjects=val_subjects,
                         test_subjects=test_subjects, modality=modality, **common)
        if self.spec.sampling_rate > SAMPLING_RATE:
            raise ConfigError(f"modality '{modality}' runs at {self.spec.sampling_rate:g} Hz, above the recordings' "
                              f"{SAMPLING_RATE:g} Hz: use modality 'emg' (1 kHz)")
        if self.spec.unit == "au":
            raise ConfigError(f"modality '{modality}' takes device units (au); the recordings are in volts: use "
                              "modality 'emg' (µV)")
        self.users = None if users is None else sorted({int(u) for u in users})
        self.offset_seconds = float(offset_seconds)
        self.within_partitions = bool(within_partitions)
        self.corpus_split = bool(corpus_split)
        self.corpus: dict[str, CorpusEntry] = {}

    def default_pipeline(self) -> Pipeline:
        """Pick ``c1..c16``, resample 2 kHz -> the spec's rate, notch 50/60 Hz (+ harmonics), band-pass 20-450 Hz."""
        return Pipeline(self.spec, steps_from_config(DEFAULT_STEPS))

    # ----------------------------------------------------------------------------------------- files
    def find_recordings(self) -> list[RecordingInfo]:
        self.corpus = read_corpus(self.root / CORPUS_CSV)
        files = {p.stem: p for p in sorted(self.root.rglob("*.hdf5")) if p.is_file()}
        unlisted = sum(1 for name in files if name not in self.corpus)
        if unlisted:
            self.find_excluded["HDF5 file not in the corpus CSV"] += unlisted
        infos = []
        for name, entry in sorted(self.corpus.items()):
            user = user_of(name)
            if self.users is not None and user not in self.users:
                continue
            if name not in files:
                self.find_excluded["in the corpus CSV, no file under root"] += 1
                continue
            subject = f"user_{user:03d}" if user is not None else name
            infos.append(RecordingInfo(files[name], subject, user, {"dataset": name, "partitions": entry.partitions},
                                       columns={"corpus_split": entry.split}))
        return infos

    def load_windows(self, info: RecordingInfo, pipeline: Pipeline) -> list[WindowSet]:
        import mne

        content = read_recording(info.path)
        time, names, times = content.time, content.names, content.times
        rate = measured_rate(time)
        if abs(rate - SAMPLING_RATE) > RATE_TOLERANCE * SAMPLING_RATE:
            raise DataError(f"the timestamps give {rate:g} Hz, not the wristband's {SAMPLING_RATE:g} Hz")
        gesture = np.isin(names, GESTURES)
        self.note_rejected("prompt not one of the 9 gestures", int((~gesture).sum()))
        begins = times[gesture] + self.offset_seconds
        labels = np.asarray([GESTURES.index(n) for n in names[gesture]], dtype=np.int64)
        if self.within_partitions:
            partitions = np.asarray(info.metadata["partitions"], dtype=np.float64)  # [n, 2] start, end [s]
            inside = ((begins[:, None] >= partitions[:, 0]) &
                      (begins[:, None] + self.window_seconds <= partitions[:, 1])).any(axis=1)
            self.note_rejected("prompt window outside the corpus CSV's partitions", int((~inside).sum()))
            begins, labels = begins[inside], labels[inside]
        if not begins.size:
            raise DataError("no prompt of the 9 gestures" + (" inside the corpus CSV's partitions"
                                                             if self.within_partitions else ""))
        raw = mne.io.RawArray(content.emg.T.astype(np.float64), mne.create_info(list(CHANNELS), SAMPLING_RATE, "emg"),
                              verbose="error")  # volts, as MNE expects; the pipeline scales to µV
        del content  # the float32 copy of the samples
        recording = self.preprocess(raw, info, pipeline)
        # the sample at or after each window start on the file's clock, at the output rate
        first = np.searchsorted(time, begins)
        starts = np.round(first * recording.sfreq / SAMPLING_RATE).astype(np.int64)
        return [self.cut(recording, info, starts=starts, labels=labels, columns={"event_time": begins})]

    # ----------------------------------------------------------------------------------------- splits
    def default_split(self) -> SplitRule | None:
        """The corpus CSV's user split (``corpus_split`` column: train / val / test); a user never spans two parts.
        ``None`` with ``corpus_split=False``."""
        if not self.corpus_split:
            return None
        return SplitRule(by="corpus_split", train=["train"], val=["val"], test=["test"], unknown="ignore",
                         disjoint="subject")


__all__ = ["BASE_URL", "CHANNELS", "CORPUS_COLUMNS", "CORPUS_CSV", "CorpusEntry", "DiscreteGesturesDataModule",
           "GESTURES", "GestureRecording", "SAMPLING_RATE", "VARIANTS", "download", "measured_rate", "read_corpus",
           "read_prompts", "read_recording", "user_of"]
