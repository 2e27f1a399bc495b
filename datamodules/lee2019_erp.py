"""KU ERP speller (OpenBMI, Lee et al. 2019), the "ERP" row of the NeuroRVQ EEG benchmark, as a LightningDataModule
(``neurorvq.datamodules.lee2019_erp``).

54 healthy subjects, two sessions on different days. A row-column speller with face stimuli (36 symbols, 12
flashes per sequence, 5 sequences per character, 80 ms stimulus, 135 ms inter-stimulus interval); per session an
offline ``train`` run (1,980 flashes, "NEURAL NETWORKS AND DEEP LEARNING") and an online ``test`` run (2,160
flashes, "PATTERN RECOGNITION MACHINE LEARNING"), target : non-target = 1 : 5. 62 Ag/AgCl EEG channels
(BrainAmp, nasion reference, AFz ground) and 4 EMG channels at 1000 Hz.

Files (MATLAB v5, one per subject and session): ``session<s>/s<k>/sess<ss>_subj<kk>_EEG_ERP.mat`` (GigaDB
100542; e.g. ``session2/s7/sess02_subj07_EEG_ERP.mat``). Each holds two structs, ``EEG_ERP_train`` and
``EEG_ERP_test``, whose fields read here are:

============  ========================================================================================
``x``         EEG, time x 62 channels, in uV (MOABB multiplies by 1e-6 for volts; so does this reader)
``chan``      the 62 EEG channel names (cell array), the columns of ``x``
``fs``        sampling rate [Hz] (1000)
``t``         flash onsets, sample indices into ``x``
``y_dec``     class of each flash: 1 target, 2 non-target (``class`` holds ``{1, 'target'; 2, 'nontarget'}``)
``EMG``       the 4 EMG channels (time x 4, names in ``EMG_index``): not read
============  ========================================================================================

Other fields (``y_logic``, ``y_class``, rest recordings, ...) are ignored. ``x`` holds only the EEG, so the
:class:`mne.io.RawArray` built from it (:meth:`ERPRun.to_raw`, volts as MNE readers give) has the 62 EEG channels
and nothing else.

Labels: non-target -> 0, target -> 1 (:data:`CLASS_NAMES`). A ``y_dec`` value other than 1 or 2 is a
:class:`DataError` naming the file, the struct and the values. Where present, ``class`` must agree (1 target, 2
non-target).

Windows: -0.2 to 0.8 s around every flash (the benchmark's epoch, MOABB's ``P300(tmin=-0.2, tmax=0.8)`` on its
[0, 1] s interval) = 1 s = 200 samples at 200 Hz, one EEG patch per channel. Each run is preprocessed whole, then
the window of a flash at sample ``t`` starts at ``rint(t * 200 / fs) - 40``. ``t`` is used as a 0-based index, as
MOABB places its stim events (``t`` comes from MATLAB and may be 1-based: 1 ms, at most one 200-Hz sample after
rounding). A flash whose window reaches past either end of its run is left out and counted in the summary's
``rejected`` as :data:`OUTSIDE_REASON`. Per file and run, ``summary["notes"]["flashes"]`` holds the target and
non-target counts read.

Preprocessing, the benchmark's (benchmarks.md §2.1, :data:`BENCHMARK_STEPS`): resample 1000 -> 200 Hz, band-pass
0.5-45 Hz, common average reference over the 62 EEG channels, then ``PickChannels`` keeps the 54 vocabulary names
(:data:`OUTSIDE_VOCABULARY`, the 8 others, are listed in the summary's ``dropped_channels``). Whether the
benchmark's array held the 4 EMG channels (they would enter its CAR) is unknown; here they do not [inference].

Sessions and runs: which ones the benchmark used is not stated; by default both sessions and both runs are read
(every labelled flash) [inference]. Every window carries the columns ``session`` (1 or 2) and ``run`` (``'train'``
or ``'test'``), so a split can be drawn by either (``split: {by: run, test: [test]}``).

Subjects: ``S01`` ... ``S54`` with ids 1..54, the MOABB subject numbers, i.e. the ids of the benchmark's 10-fold
lists (``neurorvq.splits.path("kuerp")``; the benchmark spells them as the strings ``"1"`` ... ``"54"``).

Root: the GigaDB folder holding ``session1/`` and ``session2/``, or the folder given to MOABB as ``path`` (which
puts the files under ``MNE-lee2019-erp-data/gigadb-datasets/live/pub/10.5524/100001_101000/100542/``; see
:data:`MOABB_FOLDER`), or that ``MNE-lee2019-erp-data`` folder itself. :func:`download` fetches subjects through
MOABB (``pip install "neurorvq[benchmarks]"``; about 54 x 2 files of several hundred MB each [estimate]).

Licence: unresolved. MOABB's metadata says GPL-3.0, the article is CC BY 4.0 and GigaDB's usual data licence is
CC0; check the GigaDB page (https://gigadb.org/dataset/100542) before redistributing. Citation: Lee M-H, Kwon
O-Y, Kim Y-J, Kim H-K, Lee Y-E, Williamson J, Fazli S, Lee S-W. EEG dataset and OpenBMI toolbox for three BCI
paradigms: an investigation into BCI illiteracy. GigaScience 8(5), giz002 (2019), doi:10.1093/gigascience/giz002;
data: doi:10.5524/100542.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from neurorvq.data.preprocess import DataError, PickChannels, Pipeline, steps_from_config
from neurorvq.data.windows import RecordingDataModule, RecordingInfo, WindowSet
from neurorvq.errors import ConfigError

SAMPLING_RATE = 1000.0
"""Hz, as recorded (``fs``; resampled to the EEG spec's 200 Hz by the pipeline)."""
EEG_CHANNELS: tuple[str, ...] = (
    "Fp1", "Fp2", "F7", "F3", "Fz", "F4", "F8", "FC5", "FC1", "FC2", "FC6", "T7", "C3", "Cz", "C4", "T8", "TP9", "CP5",
    "CP1", "CP2", "CP6", "TP10", "P7", "P3", "Pz", "P4", "P8", "PO9", "O1", "Oz", "O2", "PO10", "FC3", "FC4", "C5",
    "C1", "C2", "C6", "CP3", "CPz", "CP4", "P1", "P2", "POz", "FT9", "FTT9h", "TTP7h", "TP7", "TPP9h", "FT10",
    "FTT10h", "TPP8h", "TP8", "TPP10h", "F9", "F10", "AF7", "AF3", "AF4", "AF8", "PO3", "PO4")
"""The 62 EEG channels of ``chan`` (benchmarks.md §3.2), in file order."""
EMG_CHANNELS: tuple[str, ...] = ("EMG1", "EMG2", "EMG3", "EMG4")
"""The 4 EMG channels (field ``EMG``; not read)."""
OUTSIDE_VOCABULARY: tuple[str, ...] = ("FT9", "FTT9h", "TTP7h", "TPP9h", "FT10", "FTT10h", "TPP8h", "TPP10h")
"""The 8 EEG channels that are not vocabulary names: dropped by ``PickChannels`` after the CAR (54 remain)."""
CLASS_NAMES: tuple[str, ...] = ("non-target", "target")
"""Label 0 and 1."""
Y_DEC_LABELS: dict[int, int] = {1: 1, 2: 0}
"""``y_dec`` value -> label: 1 (target) -> 1, 2 (non-target) -> 0."""
SESSIONS: tuple[int, ...] = (1, 2)
RUNS: tuple[str, ...] = ("train", "test")
STRUCTS: dict[str, str] = {"train": "EEG_ERP_train", "test": "EEG_ERP_test"}
"""Run -> the MATLAB struct holding it."""
SUBJECTS: tuple[int, ...] = tuple(range(1, 55))
WINDOW_SECONDS = 1.0
FLASH_OFFSET_SECONDS = -0.2
"""Window start relative to the flash [s]: the benchmark's -0.2 to 0.8 s."""
OUTSIDE_REASON = "flash window outside its run (flash too close to the run's start or end)"
"""Rejection reason (summary ``rejected``) of a flash whose window reaches past either end of its run."""
BENCHMARK_STEPS: list[dict[str, Any]] = [
    {"step": "Resample"},
    {"step": "BandPass", "low": 0.5, "high": 45.0},
    {"step": "CommonAverageReference"},
    {"step": "PickChannels"},
]
"""The benchmark's preprocessing (benchmarks.md §2.1) as ``steps``: the default pipeline."""
MOABB_CODE = "Lee2019-ERP"
MOABB_FOLDER = (Path("MNE-lee2019-erp-data") / "gigadb-datasets" / "live" / "pub" / "10.5524" / "100001_101000"
                / "100542")
"""Where MOABB 1.7.2 puts the GigaDB layout under the ``path`` given to ``Lee2019_ERP().data_path``."""
_FILE = re.compile(r"^sess(\d{2})_subj(\d{2})_EEG_ERP\.mat$", re.IGNORECASE)
_INSTALL_HINT = 'pip install "neurorvq[benchmarks]"'


def file_path(session: int, subject: int) -> Path:
    """``session<s>/s<k>/sess<ss>_subj<kk>_EEG_ERP.mat``, relative to the dataset folder."""
    return Path(f"session{session}") / f"s{subject}" / f"sess{session:02d}_subj{subject:02d}_EEG_ERP.mat"


def subject_name(subject: int) -> str:
    """``'S07'`` for subject 7 (its id stays 7)."""
    return f"S{int(subject):02d}"


def download(root: str | Path, subjects: Sequence[int] | None = None,
             sessions: Sequence[int] | None = None) -> Path:
    """Download ``subjects`` (default all 54; both sessions unless ``sessions``) from GigaDB with MOABB's
    ``Lee2019_ERP().data_path(subject, path=root)`` (needs internet and ``pip install "neurorvq[benchmarks]"``;
    files already there are kept) and return the dataset folder (``root / MOABB_FOLDER``; ``root`` itself works as
    the DataModule's ``root`` too)."""
    subjects = list(SUBJECTS) if subjects is None else [int(s) for s in subjects]
    sessions = list(SESSIONS) if sessions is None else [int(s) for s in sessions]
    if not subjects or any(s not in SUBJECTS for s in subjects):
        raise ConfigError(f"subjects is {subjects}; give subject numbers 1..54")
    if not sessions or any(s not in SESSIONS for s in sessions):
        raise ConfigError(f"sessions is {sessions}; give a non-empty subset of [1, 2]")
    try:
        from moabb.datasets import Lee2019_ERP
    except ImportError as exc:
        raise ConfigError(f"downloading the KU ERP data (Lee2019) needs MOABB: {_INSTALL_HINT}") from exc
    root = Path(root).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    dataset = Lee2019_ERP(sessions=tuple(sessions))
    for subject in subjects:
        dataset.data_path(subject, path=str(root))
    return root / MOABB_FOLDER


# ------------------------------------------------------------------------------------------------ reading
@dataclass
class ERPRun:
    """One run (struct) of a session file.

    Attributes:
        signals: ``float64 [62, n]`` EEG in volts (``x`` transposed, times 1e-6).
        channels: the channel names of ``chan``.
        sfreq: ``fs`` [Hz].
        onsets: ``int64 [m]`` flash onsets, samples at ``sfreq`` from the run's first sample (``t``).
        labels: ``int64 [m]`` 0 non-target, 1 target (from ``y_dec``).
    """

    signals: np.ndarray
    channels: list[str]
    sfreq: float
    onsets: np.ndarray
    labels: np.ndarray

    def to_raw(self):
        """The run as an ``mne.io.RawArray`` of EEG channels (volts)."""
        import mne

        info = mne.create_info(list(self.channels), self.sfreq, "eeg")
        return mne.io.RawArray(self.signals, info, verbose="error")

    def counts(self) -> dict[str, int]:
        """``{"target": n, "non-target": m}``."""
        return {"target": int((self.labels == 1).sum()), "non-target": int((self.labels == 0).sum())}


def _field(record: np.void, name: str, path: Path, struct: str) -> np.ndarray:
    if name not in (record.dtype.names or ()):
        raise DataError(f"{path}: {struct} has no field '{name}' (fields: {', '.join(record.dtype.names or ())}); "
                        "expected the published struct with x, t, y_dec, fs and chan")
    return np.asarray(record[name])


def _text(cell: Any) -> str:
    """A MATLAB string as loadmat gives it inside a cell (``array(['Fp1'], dtype='<U3')``)."""
    value = np.asarray(cell).reshape(-1)
    return str(value[0]).strip() if value.size else ""


def _check_classes(record: np.void, path: Path, struct: str) -> None:
    """``class`` (when present) must say 1 target, 2 non-target."""
    if "class" not in (record.dtype.names or ()):
        return
    table = np.asarray(record["class"], dtype=object)
    if table.ndim != 2 or table.shape[1] != 2:
        return  # another shape than {value, name; ...}: nothing to compare
    declared = {}
    for value, name in table:
        number = np.asarray(value, dtype=np.float64).reshape(-1)
        if number.size == 1:
            declared[int(number[0])] = re.sub(r"[^a-z]", "", _text(name).lower())
    if declared and declared != {1: "target", 2: "nontarget"}:
        raise DataError(f"{path}: {struct}.class declares {declared}, not 1 = target and 2 = nontarget; the labels "
                        "of y_dec cannot be read as the speller's classes")


def _read_struct(record: np.void, path: Path, struct: str) -> ERPRun:
    x = _field(record, "x", path, struct)
    t = _field(record, "t", path, struct).reshape(-1)
    y = _field(record, "y_dec", path, struct).reshape(-1)
    fs = _field(record, "fs", path, struct).reshape(-1)
    channels = [_text(c) for c in _field(record, "chan", path, struct).reshape(-1)]
    if fs.size != 1 or not np.isfinite(fs.astype(np.float64)[0]) or not fs.astype(np.float64)[0] > 0:
        raise DataError(f"{path}: {struct}.fs is {fs.tolist()[:3]}, not one positive sampling rate [Hz]")
    if x.ndim != 2 or x.shape[1] != len(channels) or not np.issubdtype(x.dtype, np.number):
        raise DataError(f"{path}: {struct}.x has shape {x.shape} ({x.dtype}); expected numbers, time x "
                        f"{len(channels)} channels (the length of chan)")
    if t.size != y.size:
        raise DataError(f"{path}: {struct} has {t.size} flash onsets (t) but {y.size} labels (y_dec)")
    if t.size == 0:
        raise DataError(f"{path}: {struct} holds no flash (t and y_dec are empty)")
    outside = sorted(set(y.tolist()) - set(Y_DEC_LABELS))
    if outside:
        first = int(np.flatnonzero(~np.isin(y, list(Y_DEC_LABELS)))[0])
        raise DataError(f"{path}: {struct}.y_dec holds {outside[:10]} (first at flash {first + 1} of {y.size}): labels "
                        "outside the declared classes 1 (target) and 2 (non-target)")
    _check_classes(record, path, struct)
    onsets = t.astype(np.float64)
    if not np.all(np.isfinite(onsets)):
        raise DataError(f"{path}: {struct}.t holds non-finite flash onsets")
    labels = np.asarray([Y_DEC_LABELS[int(v)] for v in y], dtype=np.int64)
    signals = np.ascontiguousarray(x.T, dtype=np.float64)  # one copy of a large array, scaled in place
    signals *= 1e-6  # uV -> V
    return ERPRun(signals, channels, float(fs.astype(np.float64)[0]), np.rint(onsets).astype(np.int64), labels)


def read_runs(path: str | Path, runs: Sequence[str] = RUNS) -> dict[str, ERPRun]:
    """The runs ``runs`` (``'train'``, ``'test'``) of one session file, read with ``scipy.io.loadmat``; an
    unreadable file, a missing struct or field, or bad content is a :class:`DataError` naming the file."""
    from scipy.io import loadmat

    path = Path(path)
    wanted = [STRUCTS[r] for r in runs]
    try:
        content = loadmat(str(path), variable_names=wanted)
    except FileNotFoundError:
        raise
    except Exception as exc:  # scipy's own errors on a damaged or non-MATLAB file
        raise DataError(f"{path}: unreadable .mat file ({type(exc).__name__}: {exc})") from exc
    out = {}
    for run, struct in zip(runs, wanted):
        if struct not in content:
            raise DataError(f"{path}: no struct '{struct}' (the {run} run); expected a KU ERP session file with "
                            f"{' and '.join(STRUCTS.values())}, or set data.init_args.runs to the runs it has")
        value = np.asarray(content[struct])
        if value.dtype.names is None or value.size != 1:
            raise DataError(f"{path}: '{struct}' is not a MATLAB struct (shape {value.shape}, {value.dtype})")
        out[run] = _read_struct(value.reshape(-1)[0], path, struct)
    return out


def dataset_folder(root: Path) -> Path:
    """The folder holding ``session1/`` / ``session2/`` under ``root`` (``root`` itself, MOABB's download folder
    below it, or below its ``MNE-lee2019-erp-data``); a root in another layout is a :class:`DataError` saying what
    was expected."""
    candidates = [root, root / MOABB_FOLDER, root / Path(*MOABB_FOLDER.parts[1:])]
    for folder in candidates:
        if any((folder / f"session{s}").is_dir() for s in SESSIONS):
            return folder
    seen = sorted(p.name + ("/" if p.is_dir() else "") for p in root.iterdir())[:8]
    found = (f"; found {', '.join(seen)}" if seen else "; the folder is empty") + (
        " (the .mat files must sit in their session<s>/s<k>/ folders)" if any(_FILE.match(s) for s in seen) else "")
    raise DataError(f"KU ERP (Lee2019) root '{root}' is not in the published layout: expected session1/ and "
                    f"session2/ folders as on GigaDB, e.g. '{root / file_path(1, 1)}', or the folder MOABB downloads "
                    f"to, e.g. '{root / MOABB_FOLDER / file_path(1, 1)}'" + found
                    + "; set data.init_args.root, or fetch the files with datamodules.lee2019_erp.download")


# ------------------------------------------------------------------------------------------------ DataModule
class Lee2019ERPDataModule(RecordingDataModule):
    """Flash-locked ERP windows of the KU / OpenBMI speller (see the module docstring for files, labels, channels).

    Args:
        root: the dataset folder (``session1/s1/sess01_subj01_EEG_ERP.mat`` ...) or MOABB's download ``path``.
        subjects: subject numbers 1..54 to load; ``None`` = every subject found. A listed subject's missing
            files are reported as skipped.
        sessions: ``[1]``, ``[2]`` or both (default).
        runs: ``["train"]``, ``["test"]`` or both (default; the benchmark's choice is unknown).
        window_seconds: window length [s], whole EEG patches (default 1).
        flash_offset_seconds: window start relative to the flash [s] (default -0.2: -0.2 to 0.8 s).
        other arguments: see :class:`~neurorvq.data.windows.RecordingDataModule` (``steps`` default:
            :data:`BENCHMARK_STEPS`; they must contain a ``PickChannels`` step).

    Batches: ``{"signal": float32 [B, 54, 200] uV at 200 Hz, "channel_ids": int64 [B, 54], "label": int64 [B]
    (0 non-target, 1 target), "subject": int64 [B] (1..54)}``; every window also has the columns ``session``
    (1, 2) and ``run`` (``'train'``, ``'test'``) (:meth:`~RecordingDataModule.window_table`).
    """

    dataset_name = "KU ERP (Lee2019)"
    root_layout = ("the GigaDB folders session1/ and session2/ with session1/s1/sess01_subj01_EEG_ERP.mat ... "
                   "(or MOABB's download folder)")
    label_names = CLASS_NAMES
    window_columns = ("run",)

    def __init__(self, root: str, subjects: list[int] | None = None, sessions: list[int] | None = None,
                 runs: list[str] | None = None, window_seconds: float = WINDOW_SECONDS,
                 flash_offset_seconds: float = FLASH_OFFSET_SECONDS, **common: Any) -> None:
        if subjects is not None and (not subjects or any(int(s) not in SUBJECTS for s in subjects)):
            raise ConfigError(f"subjects is {subjects}; give subject numbers 1..54, or null for all")
        sessions = list(SESSIONS) if sessions is None else list(sessions)
        if not sessions or any(s not in SESSIONS for s in sessions):
            raise ConfigError(f"sessions is {sessions}; give a non-empty subset of [1, 2]")
        runs = list(RUNS) if runs is None else [str(r).lower() for r in runs]
        if not runs or any(r not in RUNS for r in runs):
            raise ConfigError(f"runs is {runs}; give a non-empty subset of ['train', 'test']")
        if common.get("stride_seconds") is not None:
            raise ConfigError("stride_seconds does not apply: KU ERP windows are cut around the flashes")
        common.pop("stride_seconds", None)
        common.setdefault("modality", "eeg")
        super().__init__(root, window_seconds=window_seconds, stride_seconds=None, **common)
        self.subjects = None if subjects is None else sorted({int(s) for s in subjects})
        self.sessions = tuple(s for s in SESSIONS if s in sessions)
        self.runs = tuple(r for r in RUNS if r in runs)
        self.flash_offset_seconds = float(flash_offset_seconds)
        self.root = dataset_folder(self.root)

    # ----------------------------------------------------------------------------------------- pipeline
    def default_pipeline(self) -> Pipeline:
        """The benchmark's steps (:data:`BENCHMARK_STEPS`)."""
        return Pipeline(self.spec_, steps_from_config(BENCHMARK_STEPS))

    def make_pipeline(self) -> Pipeline:
        pipeline = super().make_pipeline()
        if not any(isinstance(s, PickChannels) for s in pipeline.steps):
            raise ConfigError("the KU ERP steps need a PickChannels step (it keeps the 54 vocabulary channels after "
                              "the common average reference)")
        return pipeline

    # ----------------------------------------------------------------------------------------- files
    def find_recordings(self) -> list[RecordingInfo]:
        found: dict[tuple[int, int], Path] = {}
        for session in self.sessions:
            folder = self.root / f"session{session}"
            for subject_dir in (sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []):
                for path in sorted(subject_dir.iterdir()):
                    m = _FILE.match(path.name)
                    if not (m and path.is_file() and int(m.group(1)) == session):
                        continue
                    subject = int(m.group(2))
                    if subject not in SUBJECTS:
                        self.find_skipped[str(path)] = f"subject {subject} is not one of the 54 subjects"
                        continue
                    found.setdefault((subject, session), path)
        numbers = self.subjects if self.subjects is not None else sorted({k for k, _ in found})
        return [RecordingInfo(found.get((k, s), self.root / file_path(s, k)), subject_name(k), k, {"session": s},
                              columns={"session": s})
                for k in numbers for s in self.sessions]

    def load_windows(self, info: RecordingInfo, pipeline: Pipeline) -> list[WindowSet]:
        sets = []
        for run, erp in read_runs(info.path, self.runs).items():
            self.note("flashes", f"{info.path.name} {run}", erp.counts())
            recording = self.preprocess(erp.to_raw(), info, pipeline)
            starts = (np.rint(erp.onsets * (recording.sfreq / erp.sfreq)).astype(np.int64)
                      + int(round(self.flash_offset_seconds * recording.sfreq)))
            inside = (starts >= 0) & (starts + self.window_samples <= recording.data.shape[1])
            self.note_rejected(OUTSIDE_REASON, int((~inside).sum()))
            if inside.any():
                sets.append(self.cut(recording, info, starts=starts[inside], labels=erp.labels[inside],
                                     columns={"run": run}))
        return sets


__all__ = ["BENCHMARK_STEPS", "CLASS_NAMES", "EEG_CHANNELS", "EMG_CHANNELS", "ERPRun", "FLASH_OFFSET_SECONDS",
           "Lee2019ERPDataModule", "MOABB_CODE", "MOABB_FOLDER", "OUTSIDE_REASON", "OUTSIDE_VOCABULARY", "RUNS",
           "SAMPLING_RATE", "SESSIONS", "STRUCTS", "SUBJECTS", "WINDOW_SECONDS", "Y_DEC_LABELS", "dataset_folder",
           "download", "file_path", "read_runs", "subject_name"]
