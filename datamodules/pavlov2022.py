"""Pavlov et al. 2022, digit span with serial recall (OpenNeuro ds003838), the EEG benchmark's "Memory" row, as a
LightningDataModule (``neurorvq.datamodules.pavlov2022``).

86 participants heard sequences of 5, 9 or 13 digits (female voice, one digit every 2 s) and either memorised
them for serial recall (*memory*) or just listened (*control*). The released EEG covers **65 subjects**
(``sub-032`` ... ``sub-098`` without ``sub-037`` and ``sub-066``), one digit-span recording each: 63 EEG channels
(Brain Products actiCHamp, reference FCz, ground Fpz) at 1000 Hz. ECG/PPG and pupillometry are separate
recordings (``ecg/``, ``pupil/``) and are not read.

Layout (BIDS 1.1.1; what :func:`download` fetches)::

    root/dataset_description.json, participants.tsv, README, CHANGES
    root/sub-032/eeg/sub-032_task-memory_eeg.set      EEGLAB, samples inside the .set (no .fdt)
    root/sub-032/eeg/sub-032_task-memory_eeg.json     sidecar (SamplingFrequency 1000, EEGChannelCount 63)
    root/sub-032/eeg/sub-032_task-memory_events.tsv   one row per digit (below)
    root/sub-032/eeg/sub-032_task-rest_*              eyes-closed rest (not read)

There is no ``channels.tsv`` in the published EEG folders: the channel names come from the ``.set`` file (all
typed EEG by mne-bids).

Events (``events.tsv`` columns ``onset duration sample trial_type response_time stim_file value``; mne-bids turns
``trial_type`` into the annotation descriptions). Besides a first row ``STATUS`` (value ``boundary``, ignored),
every row is the onset of one digit, duration 1 s:

===========================================================================================  ===========  =====
``trial_type``                                                                               ``value``    label
===========================================================================================  ===========  =====
``control 01/13: listen to digit 1 (first) in 13 digit sequence``                            ``500113``   0
``control PP/LL: listen to digit P ... in LL digit sequence``                                ``5PPPLL``   0
``memory 01/13 correct: memorize digit 1 (first) in 13 digit sequence; correctly recalled``  ``6001131``  1
``memory PP/LL error: memorize digit P ... in LL digit sequence; forgotten``                 ``6PPPLL0``  1
===========================================================================================  ===========  =====

(``PP``/``PPP`` the digit's position, ``LL`` the sequence length 05, 09 or 13; a memory code ends in 1 when that
digit was recalled in place, 0 when not.) :func:`parse_trials` reads the condition, position and length from the
description; where a copy of the data has only the ``value`` column, mne-bids uses the codes and they are read
too. A digit event of another condition (``rehearse 01/13 ...``, or a code starting with another digit) is a
:class:`DataError` naming the events file and the value ("outside the declared classes"); another sequence length
too. Other descriptions are ignored (counted in the summary's notes when not ``STATUS``/``boundary``).

Labels and windows, as the benchmark builds them (benchmarks.md §3.3; ``dykestra/EEG-Benchmarking``
``README.md`` and ``data.py:load_pavlov22``): only **13-digit** sequences; *memory* -> 1, *control* -> 0 (whatever
the recall); one window **14-18 s after the trial's cue** ("the peak in pupil size reported in the dataset
publication"), 4 s = 800 samples at 200 Hz. A trial whose window runs past the end of the recording is rejected
(summary reason :data:`PAST_END`).

[I] Which marker is "the cue" is not stated anywhere. The events hold no trial-start, fixation or condition-cue
marker, only the digit onsets, so the cue is taken to be **the onset of the sequence's first digit** (position
``01``); the window then spans the 8th and 9th digits (onsets at about 14 and 16 s; the measured SOA is 2.0-2.1 s,
so the exact digits drift slightly). If the authors timed from an unlogged cue before the first digit, the
window would start earlier in the sequence; nothing in the released files can tell.

Preprocessing (default = the benchmark's, benchmarks.md §2.1): resample 1000 -> 200 Hz, band-pass 0.5-45 Hz,
common average reference over **all EEG channels of the file**, then the vocabulary (``PickChannels``: names are
mapped case-insensitively, the rest dropped after the CAR). Channels mne-bids does not type EEG (an ECG or misc
channel typed so in a ``channels.tsv``) are dropped first, by ``raw.pick("eeg")`` on the recording as read, so they
never enter the average (listed in the summary's ``dropped_channels``). The published ``.set`` files hold only
the 63 EEG channels, so nothing is dropped there. [I] The channel names themselves could not be checked here
(only the sidecars are readable in the public mirror): the eeg.json says 63 actiCHamp channels referenced to
FCz, i.e. the standard 10-10 actiCAP montage without the reference; ``FT9``/``FT10``, if present, are not
vocabulary names and leave after the CAR.

Subjects: the BIDS label is the subject name (``'032'``) and its number the id batches carry (32), so the
shipped benchmark folds (``neurorvq.splits.path("pavlov")``, the benchmark's ``pavlov_sub-032`` ...) match the
names directly. Windows carry a ``trial`` column: the sequence's order among all sequences of the recording
(1-based, all lengths counted).

Memory: a recording is about 2 h x 63 channels at 1000 Hz; it is loaded whole (float64, about 3.7 GB) while it
is preprocessed, and ``num_workers`` loads that many at once.

Version: the benchmark links snapshot 1.0.2; the dataset's CHANGES list only a behavioural file (1.0.1) and new
references (1.0.3-1.0.6) after 1.0.0, so the EEG and events are the same in every snapshot and :func:`download`
takes the latest unless ``tag`` is given.

Sources (read for this module): the OpenNeuro git mirror ``OpenNeuroDatasets/ds003838`` (``README``, ``CHANGES``,
``dataset_description.json``, ``sub-032/eeg/sub-032_task-memory_{events.tsv,eeg.json}``, the ``value`` levels of
``sub-040/ecg/sub-040_task-memory_events.json``), and the benchmark repository's ``README.md`` and ``data.py``.

Licence CC0. Citation: Pavlov YG, Kasanov D, Kosachenko AI, Kotyusov AI, Busch NA. Pupillometry and
electroencephalography in the digit span task. *Scientific Data* (2022); data: OpenNeuro ds003838,
doi:10.18112/openneuro.ds003838.v1.0.6.
Reading needs ``mne-bids`` and downloading ``openneuro-py``: ``pip install "neurorvq[benchmarks]"``.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from neurorvq.data.preprocess import (BandPass, CommonAverageReference, DataError, PickChannels, Pipeline,
                                      Resample)
from neurorvq.data.windows import RecordingDataModule, RecordingInfo, WindowSet
from neurorvq.errors import ConfigError

DATASET = "ds003838"
"""OpenNeuro accession number."""
TASK = "memory"
"""BIDS task label of the digit-span recordings (``task-rest`` is the eyes-closed rest)."""
SAMPLING_RATE = 1000.0
"""Hz, as recorded (resampled to the EEG spec's rate by the pipeline)."""
EEG_SUBJECTS: tuple[str, ...] = tuple(f"{n:03d}" for n in range(32, 99) if n not in (37, 66))
"""The 65 BIDS subject labels with EEG (``sub-013`` ... ``sub-031``, ``sub-037`` and ``sub-066`` have none)."""
CLASS_NAMES: tuple[str, ...] = ("control", "memory")
"""Label order: control (just listen) 0, memory (memorise for serial recall) 1."""
CONDITIONS: dict[str, int] = {name: k for k, name in enumerate(CLASS_NAMES)}
SEQUENCE_LENGTHS = (5, 9, 13)
BENCHMARK_LENGTH = 13
"""Only sequences of this length are windowed (the benchmark's ``type == '13_digits'``)."""
CUE_OFFSET_SECONDS = 14.0
"""Window start after the cue (the first digit's onset) [s]; the window lasts ``window_seconds`` (4 s)."""
PAST_END = "trial window runs past the end of the recording"
"""Rejection reason of a trial whose 14-18 s window the recording does not hold."""
IGNORED = ("STATUS", "boundary")
"""Descriptions that are no digit events and are ignored silently."""
EXTENSIONS = (".set", ".vhdr", ".edf", ".bdf")
"""EEG file formats looked for (the published one is EEGLAB ``.set``; a converted copy may be another)."""
PIP_HINT = 'pip install "neurorvq[benchmarks]"'

_TEXT = re.compile(r"^\s*(?P<condition>[A-Za-z_]+)\s+(?P<position>\d+)\s*/\s*(?P<length>\d+)\b")
_CODE = re.compile(r"^\s*(?P<code>\d{6,7})\s*$")
_CONTROL_CODE = re.compile(r"^5(?P<position>\d{3})(?P<length>\d{2})$")
_MEMORY_CODE = re.compile(r"^6(?P<position>\d{3})(?P<length>\d{2})[01]$")


def _import(module: str, what: str):
    """``module`` imported, or a :class:`ConfigError` saying how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ConfigError(f"{what} needs the '{module}' package, which is not installed ({exc}); install the "
                          f"benchmark extras: {PIP_HINT}") from None


def subject_label(subject: int | str) -> str:
    """The BIDS label of ``subject``: ``39``, ``'39'``, ``'039'`` and ``'sub-039'`` are all ``'039'``."""
    text = str(subject).strip()
    text = text[4:] if text.lower().startswith("sub-") else text
    if isinstance(subject, bool) or not text.isdigit():
        raise ConfigError(f"subject {subject!r} is not a BIDS subject label of ds003838; give labels such as "
                          "'039' or numbers such as 39")
    return f"{int(text):03d}"


# ------------------------------------------------------------------------------------------------ events
@dataclass
class Trials:
    """The digit sequences of one recording, in time order.

    Attributes:
        onsets: ``float64 [n]`` the first digit's onset [s] from the recording's first sample (the cue).
        labels: ``int64 [n]`` 0 control, 1 memory.
        lengths: ``int64 [n]`` sequence length (5, 9 or 13).
        numbers: ``int64 [n]`` the sequence's order in the recording (1-based).
        ignored: ``{description: count}`` of events that are no digit events (``STATUS``/``boundary`` left out).
    """

    onsets: np.ndarray
    labels: np.ndarray
    lengths: np.ndarray
    numbers: np.ndarray
    ignored: dict[str, int]

    def __len__(self) -> int:
        return int(self.onsets.shape[0])


def parse_digit(description: str, source: str) -> tuple[int, int, int] | None:
    """``(label, position, length)`` of one digit event (its ``trial_type`` text or its ``value`` code), ``None``
    for an event that is not a digit. A digit event of an unknown condition or sequence length is a
    :class:`DataError` naming ``source`` (the events file) and the value."""
    text = str(description)
    m = _TEXT.match(text)
    if m:
        condition = m.group("condition").lower()
        if condition not in CONDITIONS:
            raise DataError(f"{source}: trial_type {text!r} has condition {m.group('condition')!r}, outside the "
                            f"declared classes {list(CLASS_NAMES)} (labels outside the declared classes)")
        label, position, length = CONDITIONS[condition], int(m.group("position")), int(m.group("length"))
    elif _CODE.match(text):
        code = text.strip()
        c, k = _CONTROL_CODE.match(code), _MEMORY_CODE.match(code)
        if not (c or k):
            raise DataError(f"{source}: value {code!r} is not a control (5PPPLL) or memory (6PPPLLR) digit code, "
                            f"outside the declared classes {list(CLASS_NAMES)} (labels outside the declared classes)")
        m = c or k
        label, position, length = (0 if c else 1), int(m.group("position")), int(m.group("length"))
    else:
        return None
    if length not in SEQUENCE_LENGTHS or not 1 <= position <= length:
        raise DataError(f"{source}: digit event {text!r} is digit {position} of a {length}-digit sequence; the "
                        f"data set's sequences have {', '.join(map(str, SEQUENCE_LENGTHS))} digits")
    return label, position, length


def parse_trials(events: Sequence[tuple[float, str]], source: str) -> Trials:
    """The sequences in ``events`` (``(onset [s], description)`` in time order, e.g. :func:`annotation_events`):
    one per first-digit event (position ``01``). Raises :class:`DataError` (naming ``source``) for an unknown
    condition or length (:func:`parse_digit`) or when no digit event is found."""
    onsets, labels, lengths, ignored = [], [], [], {}
    for onset, description in events:
        digit = parse_digit(description, source)
        if digit is None:
            if str(description).strip() not in IGNORED:
                ignored[str(description)] = ignored.get(str(description), 0) + 1
            continue
        label, position, length = digit
        if position == 1:
            onsets.append(float(onset))
            labels.append(label)
            lengths.append(length)
    if not onsets:
        raise DataError(f"{source}: no digit events (trial_type 'memory 01/13 ...' / 'control 01/13 ...'); is it the "
                        f"events file of the digit-span recording (task-{TASK})?")
    n = len(onsets)
    return Trials(np.asarray(onsets, dtype=np.float64), np.asarray(labels, dtype=np.int64),
                  np.asarray(lengths, dtype=np.int64), np.arange(1, n + 1, dtype=np.int64), ignored)


def annotation_events(raw) -> list[tuple[float, str]]:
    """``(onset [s] from the first sample, description)`` of every annotation of ``raw`` (``mne.io.BaseRaw``), in
    time order; MNE's own ``BAD_``/``EDGE`` annotations are left out."""
    offset = raw.first_samp / raw.info["sfreq"] if raw.annotations.orig_time is not None else 0.0
    events = [(float(a["onset"]) - offset, str(a["description"])) for a in raw.annotations
              if not str(a["description"]).upper().startswith(("BAD", "EDGE"))]
    return sorted(events, key=lambda e: e[0])


# ------------------------------------------------------------------------------------------------ download
def download_patterns(subjects: Sequence[int | str] | None = None) -> list[str]:
    """The ``include`` patterns of :func:`download`: each subject's digit-span EEG files only (``.set``,
    ``_eeg.json``, ``_events.tsv``), not its rest, ECG, pupil or behavioural files."""
    labels = list(EEG_SUBJECTS) if subjects is None else [subject_label(s) for s in subjects]
    missing = sorted(set(labels) - set(EEG_SUBJECTS))
    if missing or not labels:
        raise ConfigError(f"subjects {missing or labels} have no EEG in {DATASET}; its EEG subjects are "
                          f"{EEG_SUBJECTS[0]} ... {EEG_SUBJECTS[-1]} without 037 and 066 (or null for all 65)")
    return [f"sub-{label}/eeg/sub-{label}_task-{TASK}_*" for label in dict.fromkeys(labels)]


def download(root: str | Path, subjects: Sequence[int | str] | None = None, tag: str | None = None) -> Path:
    """Download the digit-span EEG of ``subjects`` (BIDS labels or numbers; ``None`` = all 65) from OpenNeuro into
    ``root`` with ``openneuro-py`` (needs internet; the whole data set is 100 GB, the 65 recordings are most of
    it) and return ``root`` (the folder to pass as ``data.init_args.root``). The top-level BIDS files
    (``dataset_description.json``, ``participants.tsv``, ``README``, ``CHANGES``) come with every download.
    ``tag``: an OpenNeuro snapshot such as ``'1.0.2'`` (the benchmark's); ``None`` = the latest (same EEG)."""
    openneuro = _import("openneuro", f"downloading {DATASET}")
    include = download_patterns(subjects)
    root = Path(root).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    openneuro.download(dataset=DATASET, tag=tag, target_dir=root, include=include)
    return root


# ------------------------------------------------------------------------------------------------ DataModule
class Pavlov2022DataModule(RecordingDataModule):
    """Benchmark windows of Pavlov 2022 (ds003838), memory vs control (see the module docstring for events, the cue
    and channels).

    Args:
        root: the BIDS dataset folder (holding ``dataset_description.json`` and ``sub-032/eeg/...``), e.g. the
            folder :func:`download` filled.
        subjects: BIDS labels (``"039"``) or numbers (``39``) to load; ``None`` = every subject with a digit-span
            EEG file. A listed subject without one is reported as skipped.
        window_seconds: window length [s] from 14 s after the cue (default 4: the 14-18 s window).
        other arguments: see :class:`~neurorvq.data.windows.RecordingDataModule` (``stride_seconds`` does not
            apply: one window per trial).

    Batches: ``{"signal": float32 [B, C, 800] uV at 200 Hz (C = the file's EEG channels in the vocabulary),
    "channel_ids": int64 [B, C], "label": int64 [B] (0 control, 1 memory), "subject": int64 [B] (32 ... 98)}``.
    """

    dataset_name = "Pavlov 2022 (ds003838)"
    root_layout = (f"the BIDS dataset {DATASET}: dataset_description.json and sub-<label>/eeg/sub-<label>_task-{TASK}"
                   f"_eeg.set with its _events.tsv (e.g. sub-032/eeg/sub-032_task-{TASK}_eeg.set)")
    label_names = CLASS_NAMES
    window_columns = ("trial",)

    def __init__(self, root: str, subjects: list[int | str] | None = None, window_seconds: float = 4.0,
                 **common: Any) -> None:
        if subjects is not None and not subjects:
            raise ConfigError("subjects is []; give BIDS labels such as '039' (or numbers such as 39), or null for all")
        labels = None if subjects is None else sorted({subject_label(s) for s in subjects})
        _import("mne_bids", f"reading {DATASET} (BIDS)")
        if common.pop("stride_seconds", None) is not None:
            raise ConfigError("stride_seconds does not apply to Pavlov 2022: one window per trial (leave it unset)")
        common.setdefault("modality", "eeg")
        super().__init__(root, window_seconds=window_seconds, stride_seconds=None, **common)
        self.subjects = labels

    def default_pipeline(self) -> Pipeline:
        """The benchmark's steps: resample to 200 Hz, band-pass 0.5-45 Hz, CAR over all EEG channels, vocabulary."""
        return Pipeline(self.spec, [Resample(), BandPass(0.5, 45.0), CommonAverageReference(), PickChannels()])

    # ----------------------------------------------------------------------------------------- files
    def _not_bids(self, what: str) -> DataError:
        return DataError(f"'{self.root}' is not the {DATASET} BIDS dataset in its published layout: {what}; expected "
                         f"{self.root_layout}, e.g. {self.root / 'sub-032' / 'eeg' / f'sub-032_task-{TASK}_eeg.set'} "
                         f"(neurorvq.datamodules.pavlov2022.download(root) fetches them); set data.init_args.root to "
                         "the dataset folder")

    def find_recordings(self) -> list[RecordingInfo]:
        mne_bids = _import("mne_bids", f"reading {DATASET} (BIDS)")
        if not (self.root / "dataset_description.json").is_file():
            raise self._not_bids("no dataset_description.json in it")
        paths = mne_bids.find_matching_paths(self.root, tasks=TASK, datatypes="eeg", suffixes="eeg",
                                             extensions=list(EXTENSIONS))
        found: dict[str, Path] = {}
        for bids_path in sorted(paths, key=lambda p: EXTENSIONS.index(p.extension)):  # .set before the others
            found.setdefault(bids_path.subject, Path(bids_path.fpath))
        if not found:
            raise self._not_bids(f"no sub-*/eeg/sub-*_task-{TASK}_eeg{{{','.join(EXTENSIONS)}}} file")
        infos = []
        for label in self.subjects if self.subjects is not None else sorted(found):
            path = found.get(label, self.root / f"sub-{label}" / "eeg" / f"sub-{label}_task-{TASK}_eeg.set")
            infos.append(RecordingInfo(path, label, int(label) if label.isdigit() else None, {"label": label}))
        return infos

    def read_recording(self, info: RecordingInfo):
        """The recording as ``mne_bids.read_raw_bids`` gives it (annotations from ``events.tsv``, channel types
        from a ``channels.tsv`` where there is one); unreadable files raise :class:`DataError`."""
        mne_bids = _import("mne_bids", f"reading {DATASET} (BIDS)")
        path = Path(info.path)
        bids_path = mne_bids.BIDSPath(subject=info.metadata["label"], task=TASK, datatype="eeg", suffix="eeg",
                                      extension=path.suffix, root=self.root)
        return self.read_raw(path, lambda fname, verbose=None: mne_bids.read_raw_bids(bids_path, verbose=verbose))

    def load_windows(self, info: RecordingInfo, pipeline: Pipeline) -> list[WindowSet]:
        path = Path(info.path)
        events_file = path.with_name(path.name.rsplit("_", 1)[0] + "_events.tsv")
        if not events_file.is_file():
            raise DataError(f"{events_file} not found: the trials (digit onsets) of {path.name} are in it")
        raw = self.read_recording(info)
        trials = parse_trials(annotation_events(raw), str(events_file))
        if trials.ignored:
            self.note("ignored events", path.name, trials.ignored)
        self.note("sequences", path.name, {f"{CLASS_NAMES[c]} {n}": int(((trials.labels == c) &
                                                                        (trials.lengths == n)).sum())
                                           for c in range(len(CLASS_NAMES)) for n in SEQUENCE_LENGTHS})
        keep = trials.lengths == BENCHMARK_LENGTH
        if not keep.any():
            raise DataError(f"no {BENCHMARK_LENGTH}-digit sequence in {events_file.name}")
        types = dict(zip(raw.ch_names, raw.get_channel_types()))
        non_eeg = {name: f"not an EEG channel (type {kind})" for name, kind in types.items() if kind != "eeg"}
        if len(non_eeg) == len(types):
            raise DataError(f"no channel typed EEG (types: {sorted(set(types.values()))})")
        if non_eeg:  # before the CAR: only EEG channels enter the average
            raw = raw.pick("eeg", exclude=())
        recording = self.preprocess(raw, info, pipeline)
        self._scratch.setdefault("dropped", {}).update(non_eeg)
        starts = np.round((trials.onsets[keep] + CUE_OFFSET_SECONDS) * recording.sfreq).astype(np.int64)
        inside = starts + self.window_samples <= recording.data.shape[1]
        self.note_rejected(PAST_END, int((~inside).sum()))
        if not inside.any():
            raise DataError(f"every {BENCHMARK_LENGTH}-digit trial's window runs past the end of the recording "
                            f"({recording.data.shape[1] / recording.sfreq:g} s)")
        return [self.cut(recording, info, starts=starts[inside], labels=trials.labels[keep][inside],
                         columns={"trial": trials.numbers[keep][inside]})]


__all__ = ["BENCHMARK_LENGTH", "CLASS_NAMES", "CONDITIONS", "CUE_OFFSET_SECONDS", "DATASET", "EEG_SUBJECTS",
           "PAST_END", "Pavlov2022DataModule", "SAMPLING_RATE", "TASK", "Trials", "annotation_events", "download",
           "download_patterns", "parse_digit", "parse_trials", "subject_label"]
