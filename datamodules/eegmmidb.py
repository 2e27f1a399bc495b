"""PhysioNet EEG Motor Movement/Imagery Dataset (EEGMMIDB, BCI2000) as a LightningDataModule
(``neurorvq.datamodules.eegmmidb``).

109 subjects, 14 runs each, 64 EEG channels at 160 Hz in EDF+ (``S001/S001R01.edf`` ... ``S109/S109R14.edf``).
Runs: R01 eyes open and R02 eyes closed (1-min baselines); R03-R14 two-minute task runs whose EDF+ annotations
mark rest (T0) and two cues (T1, T2), whose meaning depends on the run:

=================  =====================  ===========================  ==============
task               runs                   label 0                      label 1
=================  =====================  ===========================  ==============
``eyes``           R01, R02               eyes open (R01)              eyes closed (R02)
``execution_lr``   R03, R07, R11          T1: real left fist           T2: real right fist
``imagery_lr``     R04, R08, R12          T1: imagined left fist       T2: imagined right fist
``execution_ff``   R05, R09, R13          T1: real both fists          T2: real both feet
``imagery_ff``     R06, R10, R14          T1: imagined both fists      T2: imagined both feet
``pretrain``       R01-R14                (unlabelled)
=================  =====================  ===========================  ==============

(``execution_ff`` / ``imagery_ff`` are spelled ``execution_fists_feet`` / ``imagery_fists_feet``.)
``eyes`` and ``pretrain`` cut sliding windows (``window_seconds`` every ``stride_seconds``) over whole runs;
the cue tasks cut one epoch of ``window_seconds`` (default 4 s) from each T1/T2 onset; T0 is not used. Labels
come from the EDF+ annotations (the ``.edf.event`` WFDB files hold the same events and are not read).

Channels: the BCI2000 names (``Fc5.``, ``Cz..``, ``Fp1.``) are cleaned by the pipeline's channel mapping
(:mod:`neurorvq.data.channels`); all 64 are vocabulary names, none are dropped. Signals are resampled
160 -> 200 Hz (within :class:`~neurorvq.data.preprocess.Resample`'s default ``max_upsample`` of 1.5) and scaled
to uV. Subjects (the split unit) come from the folder names: ``S001`` is subject id 1.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from neurorvq.data.preprocess import DataError, Pipeline
from neurorvq.data.windows import RecordingDataModule, RecordingInfo, WindowSet
from neurorvq.errors import ConfigError

TASK_RUNS: dict[str, tuple[int, ...]] = {
    "eyes": (1, 2),
    "execution_lr": (3, 7, 11),
    "imagery_lr": (4, 8, 12),
    "execution_fists_feet": (5, 9, 13),
    "imagery_fists_feet": (6, 10, 14),
    "pretrain": tuple(range(1, 15)),
}
"""Runs of each task."""

TASK_LABELS: dict[str, tuple[str, ...] | None] = {
    "eyes": ("eyes open", "eyes closed"),
    "execution_lr": ("left fist", "right fist"),
    "imagery_lr": ("imagined left fist", "imagined right fist"),
    "execution_fists_feet": ("both fists", "both feet"),
    "imagery_fists_feet": ("imagined both fists", "imagined both feet"),
    "pretrain": None,
}
"""Class names of each task, in label order."""

CUE_LABELS = {"T1": 0, "T2": 1}
_FILE = re.compile(r"^S(\d{3})R(\d{2})\.edf$", re.IGNORECASE)
_SUBJECT_DIR = re.compile(r"^S(\d{3})$", re.IGNORECASE)
MNE_LAYOUT = Path("MNE-eegbci-data") / "files" / "eegmmidb" / "1.0.0"


def download(root: str | Path, subjects: Sequence[int], runs: Sequence[int] | None = None) -> Path:
    """Download runs (default all 14) of ``subjects`` from PhysioNet with ``mne.datasets.eegbci.load_data``
    (needs internet) and return the folder to pass as ``root`` (``root/MNE-eegbci-data/files/eegmmidb/1.0.0``)."""
    from mne.datasets import eegbci

    runs = list(range(1, 15)) if runs is None else [int(r) for r in runs]
    eegbci.load_data([int(s) for s in subjects], runs, path=str(Path(root).expanduser()), update_path=False)
    return Path(root).expanduser() / MNE_LAYOUT


class EEGMMIDBDataModule(RecordingDataModule):
    """EEGMMIDB windows for one task (see the module docstring for tasks, runs and labels).

    Args:
        root: folder holding ``S001/S001R01.edf`` ... (or a folder where :func:`download` put them, i.e. with
            ``MNE-eegbci-data/files/eegmmidb/1.0.0`` inside).
        task: ``'eyes'``, ``'imagery_lr'``, ``'imagery_fists_feet'``, ``'execution_lr'``,
            ``'execution_fists_feet'`` or ``'pretrain'``.
        subjects: subject numbers to load (``[1, 3]``); ``None`` = every ``Snnn`` folder with a run of the task.
            A listed subject's missing runs are reported as skipped files.
        runs: a subset of the task's runs (e.g. ``[4]``); ``None`` = all of them.
        window_seconds: window / epoch length [s] (whole seconds for EEG's 1-s patches); default 4.
        other arguments: see :class:`~neurorvq.data.windows.RecordingDataModule`.

    Batches: ``{"signal": float32 [B, 64, T] uV at 200 Hz, "channel_ids": int64 [B, 64], "subject": int64 [B]}``
    plus ``"label": int64 [B]`` except for ``'pretrain'``.
    """

    dataset_name = "EEGMMIDB"
    root_layout = "the subject folders S001/, S002/, ... with S001/S001R01.edf ... S001R14.edf"

    def __init__(self, root: str, task: str = "pretrain", subjects: list[int] | None = None,
                 runs: list[int] | None = None, **common: Any) -> None:
        if task not in TASK_RUNS:
            raise ConfigError(f"task is {task!r}; use one of {sorted(TASK_RUNS)}")
        if runs is not None:
            bad = sorted(set(int(r) for r in runs) - set(TASK_RUNS[task]))
            if bad or not runs:
                raise ConfigError(f"runs {bad or runs} are not runs of task '{task}' (its runs: {list(TASK_RUNS[task])})")
        super().__init__(root, modality="eeg", **common)
        self.task = task
        self.subjects = None if subjects is None else sorted({int(s) for s in subjects})
        self.runs = tuple(sorted({int(r) for r in runs})) if runs is not None else TASK_RUNS[task]
        self.label_names = TASK_LABELS[task]
        if (self.root / MNE_LAYOUT).is_dir():
            self.root = self.root / MNE_LAYOUT

    def find_recordings(self) -> list[RecordingInfo]:
        folders = {int(m.group(1)): p for p in self.root.iterdir()
                   if p.is_dir() and (m := _SUBJECT_DIR.match(p.name))}
        infos = []
        for number in (self.subjects if self.subjects is not None else sorted(folders)):
            folder = folders.get(number, self.root / f"S{number:03d}")
            present = {}
            if folder.is_dir():
                for f in folder.iterdir():
                    m = _FILE.match(f.name)
                    if m and int(m.group(1)) == number:
                        present[int(m.group(2))] = f
            if self.subjects is None and not any(r in present for r in self.runs):
                continue  # a downloaded subject without this task's runs
            for run in self.runs:
                path = present.get(run, folder / f"S{number:03d}R{run:02d}.edf")
                infos.append(RecordingInfo(path, f"S{number:03d}", number, {"run": run}, columns={"run": run}))
        return infos

    def load_windows(self, info: RecordingInfo, pipeline: Pipeline) -> list[WindowSet]:
        import mne

        raw = self.read_raw(info.path, mne.io.read_raw_edf)
        recording = self.preprocess(raw, info, pipeline)
        run = info.metadata["run"]
        if self.task == "pretrain":
            return [self.cut(recording, info)]
        if self.task == "eyes":
            return [self.cut(recording, info, labels=[TASK_RUNS["eyes"].index(run)])]
        starts, labels = [], []
        for onset, _, description in recording.annotations:
            description = description.strip()
            if description in CUE_LABELS:
                starts.append(int(round(onset * recording.sfreq)))
                labels.append(CUE_LABELS[description])
            elif description != "T0":
                raise DataError(f"unparsable annotation {description!r} (expected T0, T1 or T2)")
        if not starts:
            raise DataError("no T1/T2 annotations (the cue labels) in the file")
        return [self.cut(recording, info, starts=np.asarray(starts), labels=labels)]


__all__ = ["CUE_LABELS", "EEGMMIDBDataModule", "TASK_LABELS", "TASK_RUNS", "download"]
