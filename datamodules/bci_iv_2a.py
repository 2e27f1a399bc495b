"""BCI Competition IV data set 2a (Graz, 4-class motor imagery) as a LightningDataModule
(``neurorvq.datamodules.bci_iv_2a``).

9 subjects, two sessions each on different days: ``A0<k>T.gdf`` (training, cues labelled) and ``A0<k>E.gdf``
(evaluation, cues unlabelled). 22 EEG and 3 EOG channels at 250 Hz; 6 runs of 48 trials (12 per class), 288
trials per session. A trial starts at t = 0 (event 768, fixation cross), the cue (769-772, or 783 in the
evaluation sessions) appears at t = 2 s and the subject imagines the movement until t = 6 s.

Events (GDF event codes, MNE annotation descriptions):

=========  ===================================================================================================
``276``    idling EEG, eyes open (EOG calibration run; ignored)
``277``    idling EEG, eyes closed (ignored)
``768``    start of a trial (ignored: the cue marks the trial)
``769``    cue left hand -> label 0
``770``    cue right hand -> label 1
``771``    cue feet (both feet) -> label 2
``772``    cue tongue -> label 3
``783``    cue unknown (evaluation sessions): label from the true-labels file ``A0<k>E.mat``, variable
           ``classlabel`` (1..4 -> 0..3), one entry per cue in the order of the cues
``1023``   rejected trial (artefact marked by an expert; dropped by default, ``drop_rejected``): it marks the
           trial at its start (same onset as the trial's 768), so it rejects the first cue between 0.5 s
           before and 3 s after it
``1072``   eye movements (EOG calibration run; ignored)
``32766``  start of a new run (ignored)
=========  ===================================================================================================

Any other description is an error (the file is skipped, naming it). The parsing is :func:`parse_trials`, which
takes an ``mne.io.BaseRaw``, so it is the same for ``mne.io.read_raw_gdf`` files and for a Raw built in memory.

Epochs: one window of ``window_seconds`` (default 4 s) from ``cue_offset_seconds`` (default 0) after each cue,
i.e. by default **2-6 s after the trial start**, the imagery period of the protocol. Windows are cut after
preprocessing (the EEG default pipeline: notch, band-pass 0.5-44.5 Hz, clip +-500 uV, resample 250 -> 200 Hz),
so a 4-s epoch is 800 samples (4 EEG patches).

Channels, an explicit per-dataset choice: the GDF files name the EEG channels ``'EEG-Fz'``, ``'EEG-0'``,
``'EEG-1'``, ... ``'EEG-16'`` with only ``EEG-Fz``, ``EEG-C3``, ``EEG-Cz``, ``EEG-C4`` and ``EEG-Pz`` spelled as
positions. :data:`CHANNEL_MAP` maps them onto the 10-20 positions of the dataset description's montage figure,
in file order Fz, FC3, FC1, FCz, FC2, FC4, C5, C3, C1, Cz, C2, C4, C6, CP3, CP1, CPz, CP2, CP4, P1, Pz, P2,
POz (the mapping MOABB and braindecode use). It is applied to the pipeline's ``PickChannels`` (also to one given
in ``steps``, merged under its own ``explicit`` entries). The EOG channels (``EOG-left``, ``EOG-central``,
``EOG-right``; the description says they must not be used for classification) are not mapped and so are
dropped (listed in the summary's ``dropped_channels``).

Not verified on the real files here (they are not in ../shared): braindecode's GDF loader for this data set
treats samples at a channel's minimum value as missing (and replaces them by the channel mean); this loader
does not, so such samples reach the filters. Set ``max_amplitude`` to reject epochs they disturb.

Subjects: ``A0<k>`` is subject ``k`` (name ``'A0<k>'``), the unit of the default subject-wise split.
``test_sessions=["E"]`` instead gives the competition's within-subject protocol: every subject's ``E``
windows are the test split, its ``T`` windows train (val empty).

Download (registration on the competition site): the GDF files from https://www.bbci.de/competition/iv/
(``BCICIV_2a_gdf.zip``, https://www.bbci.de/competition/download/competition_iv/BCICIV_2a_gdf.zip) and the
true labels from https://www.bbci.de/competition/iv/results/ds2a/true_labels.zip (``A01T.mat`` ...
``A09E.mat``). Unzip both into ``root`` (or the labels into ``labels_root``). The ``E`` sessions cannot be
labelled without them (missing -> the file is skipped, naming the labels file). The BNCI Horizon ``.mat``
version of the data set (``001-2014``) is a different format, not read here. Citation: Brunner C, Leeb R,
Mueller-Putz GR, Schloegl A, Pfurtscheller G. BCI Competition 2008 - Graz data set A. 2008.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from neurorvq.data.preprocess import DataError, PickChannels, Pipeline
from neurorvq.data.split_rules import SplitRule
from neurorvq.data.windows import RecordingDataModule, RecordingInfo, WindowSet
from neurorvq.errors import ConfigError

SAMPLING_RATE = 250.0
"""Hz, as recorded (resampled to the EEG spec's rate by the pipeline)."""
GDF_EEG_CHANNELS: tuple[str, ...] = (
    "EEG-Fz", "EEG-0", "EEG-1", "EEG-2", "EEG-3", "EEG-4", "EEG-5", "EEG-C3", "EEG-6", "EEG-Cz", "EEG-7", "EEG-C4",
    "EEG-8", "EEG-9", "EEG-10", "EEG-11", "EEG-12", "EEG-13", "EEG-14", "EEG-Pz", "EEG-15", "EEG-16")
"""The 22 EEG channel names of the GDF files, in file order."""
EOG_CHANNELS: tuple[str, ...] = ("EOG-left", "EOG-central", "EOG-right")
"""The 3 EOG channels (dropped)."""
POSITIONS: tuple[str, ...] = ("Fz", "FC3", "FC1", "FCz", "FC2", "FC4", "C5", "C3", "C1", "Cz", "C2", "C4", "C6", "CP3",
                              "CP1", "CPz", "CP2", "CP4", "P1", "Pz", "P2", "POz")
"""10-20 positions of the 22 EEG channels (dataset description), in file order."""
CHANNEL_MAP: dict[str, str] = dict(zip(GDF_EEG_CHANNELS, POSITIONS))
"""GDF channel name -> 10-20 position: the explicit choice of this loader (see the module docstring)."""
CUE_CLASSES: dict[str, int] = {"769": 0, "770": 1, "771": 2, "772": 3}
"""Cue event code -> label."""
CLASS_NAMES: tuple[str, ...] = ("left hand", "right hand", "feet", "tongue")
UNKNOWN_CUE = "783"
REJECTED = "1023"
EVENT_CODES: dict[str, str] = {
    "276": "idling EEG (eyes open)", "277": "idling EEG (eyes closed)", "768": "start of a trial",
    "769": "cue onset left (class 1)", "770": "cue onset right (class 2)", "771": "cue onset foot (class 3)",
    "772": "cue onset tongue (class 4)", "783": "cue unknown", "1023": "rejected trial", "1072": "eye movements",
    "32766": "start of a new run"}
"""Every event code of the data set (dataset description, table 2)."""
SESSIONS = ("T", "E")
_FILE = re.compile(r"^A0?(\d)([TE])\.gdf$", re.IGNORECASE)
_REJECT_WINDOW = (-0.5, 3.0)  # s around a 1023 event in which the rejected trial's cue lies


# ------------------------------------------------------------------------------------------------ parsing
@dataclass
class Trials:
    """The cued trials of one session, in time order.

    Attributes:
        onsets: ``float64 [n]`` cue onsets [s] from the recording's first sample.
        labels: ``int64 [n]`` class 0..3 (left hand, right hand, feet, tongue).
        rejected: ``bool [n]`` marked rejected (event 1023).
        codes: the cue event code of each trial (``'769'`` ... ``'772'`` or ``'783'``).
    """

    onsets: np.ndarray
    labels: np.ndarray
    rejected: np.ndarray
    codes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.onsets.shape[0])


def read_true_labels(path: str | Path) -> np.ndarray:
    """``classlabel`` of a true-labels file (``A01E.mat``) as ``int64 [n]`` in 1..4; a missing file or variable,
    or a value outside 1..4, is a :class:`DataError` naming the file."""
    from scipy.io import loadmat

    try:
        content = loadmat(str(path), variable_names=["classlabel"])
    except FileNotFoundError as exc:
        raise DataError(f"true-labels file {path} not found") from exc
    except Exception as exc:
        raise DataError(f"{path}: unreadable .mat file ({type(exc).__name__}: {exc})") from exc
    if "classlabel" not in content:
        raise DataError(f"{path}: missing variable 'classlabel' (the true labels 1..4 of the session's trials)")
    labels = np.asarray(content["classlabel"]).reshape(-1)
    if labels.size == 0 or not np.all(np.isfinite(labels.astype(np.float64))):
        raise DataError(f"{path}: 'classlabel' is empty or not numeric")
    outside = sorted(set(labels.tolist()) - {1, 2, 3, 4})
    if outside:
        raise DataError(f"{path}: 'classlabel' values {outside[:10]} are outside the classes 1..4 (left hand, right "
                        "hand, feet, tongue)")
    return labels.astype(np.int64)


def annotation_events(raw) -> list[tuple[float, str]]:
    """``(time [s] from the first sample, description)`` of every annotation of ``raw`` (``mne.io.BaseRaw``),
    in time order; MNE's own ``BAD_``/``EDGE`` annotations are left out."""
    import mne

    descriptions = sorted({str(d).strip() for d in raw.annotations.description
                           if not str(d).upper().startswith(("BAD", "EDGE"))})
    if not descriptions:
        return []
    events, ids = mne.events_from_annotations(raw, event_id={d: k + 1 for k, d in enumerate(descriptions)},
                                              verbose="error")
    name_of = {v: k for k, v in ids.items()}
    times = (events[:, 0] - raw.first_samp) / raw.info["sfreq"]
    order = np.argsort(times, kind="stable")
    return [(float(times[i]), name_of[int(events[i, 2])]) for i in order]


def parse_trials(raw, true_labels: Sequence[int] | np.ndarray | None = None) -> Trials:
    """The cued trials of a BCI IV 2a session from the annotations of ``raw`` (an ``mne.io.BaseRaw``: a
    ``read_raw_gdf`` file, or a Raw built in memory with the same annotation descriptions).

    ``true_labels`` (``classlabel`` 1..4, one per cue in cue order, e.g. :func:`read_true_labels` of
    ``A01E.mat``) label the ``783`` cues and must agree with the ``769``-``772`` cues. Raises
    :class:`DataError` for an unknown event code, no cue at all, a ``783`` cue without true labels, a count
    or value mismatch with ``true_labels``, or a label outside 1..4.
    """
    events = annotation_events(raw)
    unknown = sorted({d for _, d in events} - set(EVENT_CODES))
    if unknown:
        raise DataError(f"unknown event code(s) {unknown[:10]} in the annotations (expected the data set's codes "
                        f"{sorted(EVENT_CODES, key=int)})")
    cues = [(t, d) for t, d in events if d in CUE_CLASSES or d == UNKNOWN_CUE]
    if not cues:
        raise DataError("no cue events (769-772 or 783) in the annotations")
    truth = None
    if true_labels is not None:
        truth = np.asarray(true_labels).reshape(-1)
        outside = sorted(set(truth.tolist()) - {1, 2, 3, 4})
        if outside:
            raise DataError(f"true labels {outside[:10]} are outside the classes 1..4")
        truth = truth.astype(np.int64)
        if truth.size != len(cues):
            raise DataError(f"the true-labels file has {truth.size} labels for {len(cues)} cues in the recording")
    labels = []
    for k, (t, code) in enumerate(cues):
        if code == UNKNOWN_CUE:
            if truth is None:
                raise DataError("cue 783 (class unknown: an evaluation session) needs the true labels "
                                "(A0<k>E.mat, variable classlabel)")
            labels.append(int(truth[k]) - 1)
        else:
            if truth is not None and int(truth[k]) - 1 != CUE_CLASSES[code]:
                raise DataError(f"cue {k + 1} at {t:.3f} s is {code} ({CLASS_NAMES[CUE_CLASSES[code]]}) but the true "
                                f"labels say {int(truth[k])}")
            labels.append(CUE_CLASSES[code])
    onsets = np.asarray([t for t, _ in cues], dtype=np.float64)
    rejected = np.zeros(len(cues), dtype=bool)
    for t, code in events:
        if code == REJECTED:
            near = np.flatnonzero((onsets >= t + _REJECT_WINDOW[0]) & (onsets <= t + _REJECT_WINDOW[1]))
            if near.size:
                rejected[near[0]] = True
    return Trials(onsets, np.asarray(labels, dtype=np.int64), rejected, [d for _, d in cues])


# ------------------------------------------------------------------------------------------------ DataModule
class BCIIV2aDataModule(RecordingDataModule):
    """Motor-imagery epochs of BCI Competition IV 2a (see the module docstring for events, channels, labels).

    Args:
        root: folder holding ``A01T.gdf`` ... ``A09E.gdf`` (searched one folder deep too).
        subjects: subject numbers 1..9 to load; ``None`` = every subject found. A listed subject's missing
            files are reported as skipped.
        sessions: ``["T"]``, ``["E"]`` or both (default).
        labels_root: folder holding the true-labels files ``A0<k>E.mat`` (and ``A0<k>T.mat``, used to check the
            ``T`` cues when present); searched also in its ``true_labels/`` folder. ``None`` = ``root``.
        cue_offset_seconds: epoch start relative to the cue [s] (default 0: 2-6 s after the trial start).
        window_seconds: epoch length [s], whole EEG patches (default 4).
        drop_rejected: leave out trials marked 1023 (counted in the summary).
        test_sessions: e.g. ``["E"]``: split by session within every subject instead of by subject (val empty);
            cannot be combined with ``val_subjects`` / ``test_subjects``.
        other arguments: see :class:`~neurorvq.data.windows.RecordingDataModule`.

    Batches: ``{"signal": float32 [B, 22, 800] uV at 200 Hz, "channel_ids": int64 [B, 22], "label": int64 [B]
    (0 left hand, 1 right hand, 2 feet, 3 tongue), "subject": int64 [B] (1..9)}``.
    """

    dataset_name = "BCI Competition IV 2a"
    root_layout = "the GDF files A01T.gdf ... A09E.gdf (and the true-labels files A01E.mat ...)"
    label_names = CLASS_NAMES

    def __init__(self, root: str, subjects: list[int] | None = None, sessions: list[str] | None = None,
                 labels_root: str | None = None, cue_offset_seconds: float = 0.0, window_seconds: float = 4.0,
                 drop_rejected: bool = True, test_sessions: list[str] | None = None,
                 val_subjects: list[int | str] | None = None, test_subjects: list[int | str] | None = None,
                 **common: Any) -> None:
        sessions = list(SESSIONS) if sessions is None else [str(s).upper() for s in sessions]
        if not sessions or any(s not in SESSIONS for s in sessions):
            raise ConfigError(f"sessions is {sessions}; give a non-empty subset of ['T', 'E']")
        if test_sessions is not None:
            test_sessions = [str(s).upper() for s in test_sessions]
            if not test_sessions or any(s not in sessions for s in test_sessions):
                raise ConfigError(f"test_sessions is {test_sessions}; give a subset of the loaded sessions {sessions}")
            if val_subjects is not None or test_subjects is not None:
                raise ConfigError("test_sessions splits every subject by session; it cannot be combined with "
                                  "val_subjects/test_subjects (give one kind of split)")
        if subjects is not None and (not subjects or any(not 1 <= int(s) <= 9 for s in subjects)):
            raise ConfigError(f"subjects is {subjects}; give subject numbers 1..9, or null for all")
        if test_sessions is not None and common.get("split") is not None:
            raise ConfigError("test_sessions and split are both given; give one kind of split")
        super().__init__(root, window_seconds=window_seconds, stride_seconds=None, val_subjects=val_subjects,
                         test_subjects=test_subjects, **common)
        self.subjects = None if subjects is None else sorted({int(s) for s in subjects})
        self.sessions = tuple(s for s in SESSIONS if s in sessions)
        self.labels_root = self.root if labels_root is None else Path(labels_root).expanduser()
        if labels_root is not None and not self.labels_root.is_dir():
            raise DataError(f"labels_root '{self.labels_root}' is not a folder: set data.init_args.labels_root to the "
                            "folder holding the true labels A01E.mat ... (true_labels.zip), or null for root")
        self.cue_offset_seconds = float(cue_offset_seconds)
        self.drop_rejected = bool(drop_rejected)
        self.test_sessions = None if test_sessions is None else tuple(test_sessions)

    # ----------------------------------------------------------------------------------------- pipeline
    def make_pipeline(self) -> Pipeline:
        """The pipeline with :data:`CHANNEL_MAP` merged into its ``PickChannels`` (under the step's own choices)."""
        pipeline = super().make_pipeline()
        pipeline.steps = [replace(s, explicit={**CHANNEL_MAP, **s.explicit}) if isinstance(s, PickChannels) else s
                          for s in pipeline.steps]
        if not any(isinstance(s, PickChannels) for s in pipeline.steps):
            raise ConfigError("the BCI IV 2a steps need a PickChannels step (it maps 'EEG-0' ... onto 10-20 names and "
                              "drops the EOG channels)")
        return pipeline

    def read_recording(self, path: Path):
        """The session's ``mne.io.BaseRaw`` (``mne.io.read_raw_gdf``; truncated files raise :class:`DataError`)."""
        import mne

        return self.read_raw(path, mne.io.read_raw_gdf)  # a damaged header: "unreadable GDF file (...)"

    # ----------------------------------------------------------------------------------------- files
    def _labels_file(self, subject: int, session: str) -> Path | None:
        name = f"A{subject:02d}{session}.mat"
        for folder in (self.labels_root, self.labels_root / "true_labels"):
            if folder.is_dir():
                for path in folder.iterdir():
                    if path.name.lower() == name.lower() and path.is_file():
                        return path
        return None

    def find_recordings(self) -> list[RecordingInfo]:
        found: dict[tuple[int, str], Path] = {}
        folders = [self.root] + sorted(p for p in self.root.iterdir() if p.is_dir())
        for folder in folders:
            for path in sorted(folder.iterdir()):
                m = _FILE.match(path.name)
                if m and path.is_file():
                    found.setdefault((int(m.group(1)), m.group(2).upper()), path)
        numbers = self.subjects if self.subjects is not None else sorted({s for s, _ in found})
        infos = []
        for number in numbers:
            for session in self.sessions:
                path = found.get((number, session), self.root / f"A{number:02d}{session}.gdf")
                infos.append(RecordingInfo(path, f"A{number:02d}", number,
                                           {"session": session, "labels": self._labels_file(number, session)},
                                           columns={"session": session}))
        return infos

    def load_windows(self, info: RecordingInfo, pipeline: Pipeline) -> list[WindowSet]:
        session, labels_file = info.metadata["session"], info.metadata["labels"]
        if session == "E" and labels_file is None:
            raise DataError(f"no true-labels file A{info.subject_id:02d}E.mat under '{self.labels_root}' (or its "
                            "true_labels/ folder): the evaluation cues (783) carry no class; download "
                            "true_labels.zip (see the module docstring) and set data.init_args.labels_root")
        truth = read_true_labels(labels_file) if labels_file is not None else None
        raw = self.read_recording(info.path)
        trials = parse_trials(raw, truth)
        keep = ~trials.rejected if self.drop_rejected else np.ones(len(trials), dtype=bool)
        self.note_rejected("trial marked rejected (1023)", int((~keep).sum()))
        if not keep.any():
            raise DataError(f"all {len(trials)} trials are marked rejected (1023)")
        recording = self.preprocess(raw, info, pipeline)
        starts = np.round((trials.onsets[keep] + self.cue_offset_seconds) * recording.sfreq).astype(np.int64)
        return [self.cut(recording, info, starts=starts, labels=trials.labels[keep])]

    # ----------------------------------------------------------------------------------------- splits
    def default_split(self) -> SplitRule | None:
        """With ``test_sessions``: those sessions of every subject are ``test``, the others ``train`` (val empty)."""
        if self.test_sessions is None:
            return None
        return SplitRule(by="session", val=[], test=list(self.test_sessions))

    def window_sessions(self, split: str) -> list[str]:
        """Session (``'T'`` / ``'E'``) of every window of ``split`` (after :meth:`setup`): its ``session`` column."""
        return self.window_table(split)["session"].tolist()


__all__ = ["BCIIV2aDataModule", "CHANNEL_MAP", "CLASS_NAMES", "CUE_CLASSES", "EOG_CHANNELS", "EVENT_CODES",
           "GDF_EEG_CHANNELS", "POSITIONS", "SAMPLING_RATE", "Trials", "annotation_events", "parse_trials",
           "read_true_labels"]
