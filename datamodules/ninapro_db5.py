"""NinaPro DB5 (two Myo armbands, 200 Hz) as a LightningDataModule (``neurorvq.datamodules.ninapro_db5``).

10 intact subjects, each with three exercises recorded as MATLAB files ``s<k>/S<k>_E<j>_A1.mat``
(``S1_E1_A1.mat`` ... ``S10_E3_A1.mat``; files directly under ``root`` are found too). Variables read:

==================  ==================  ===========================================================
variable            shape               meaning
==================  ==================  ===========================================================
``emg``             ``[samples, 16]``   two 8-electrode Myo armbands, 200 Hz, device units (``au``)
``restimulus``      ``[samples, 1]``    relabelled gesture id, exercise-local (0 = rest)
``rerepetition``    ``[samples, 1]``    relabelled repetition id 1..6 (0 during rest)
``subject``         ``[1, 1]``          optional; checked against the file name when present
``exercise``        ``[1, 1]``          optional; checked against the file name when present
``frequency``       ``[1, 1]``          optional; must be 200 (Hz) when present
==================  ==================  ===========================================================

Gestures (Pizzolato et al. 2017): exercise 1 has 12 basic finger movements, exercise 2 17 hand postures and
wrist movements, exercise 3 23 grasps and functional movements. Their ids restart at 1 in each exercise; the
**global gesture id** adds the exercise offset (:data:`EXERCISE_OFFSETS`: 0, 12, 29), so E1 1..12 -> 1..12,
E2 1..17 -> 13..29, E3 1..23 -> 30..52. **Labels** index the classes of the loaded exercises in global order:
with all three exercises and ``include_rest=False`` label = global id - 1 (0..51); with ``include_rest=True``
rest is label 0 and gesture g is label g (0..52). A ``restimulus`` value outside the exercise's ids makes the
file unusable (skipped, naming the values).

Windows (``window_seconds``, default 1.0 s = 4 patches of 50 samples; every ``stride_seconds``, default 0.5 s)
are cut **within each gesture repetition**, i.e. within each run of constant (``restimulus``, ``rerepetition``),
never across a gesture's boundary; a run shorter than one window gives none (counted in the summary). The
whole recording is filtered first (the ``semg200`` default pipeline: notch 50/60 Hz, band-pass 20-95 Hz, FIR
on the continuous minutes-long recording), so windows do not see filter edges. Rest runs (with
``include_rest``) take the repetition of the gesture repetition they follow (the rest before the first
movement takes the first one's), so that repetition-based splits keep every rest period with its repetition.

Splits: by default subject-wise as in the base class (``S<k>`` is subject ``k``, the unit of the
train/val/test split). ``test_repetitions`` (e.g. ``[2, 5]``, a common DB5 protocol) and optionally
``val_repetitions`` instead split **by repetition within every subject**: all subjects are in every split,
windows of those repetitions go to test/val and the rest to train. Per-window repetition, exercise and global
gesture id: :meth:`NinaProDB5DataModule.window_metadata`.

Subject-independent protocol (the NeuroRVQ EMG benchmark's DB5 row, whose fold scheme is not published;
benchmarks.md §5.3 [I]): **leave-one-subject-out** over the 10 subjects, shipped as the split file
``neurorvq/splits/ninapro_db5_loso.json`` (:data:`LOSO_SPLIT`, :func:`loso_split_file`; fold ``k`` holds out
subject ``k + 1``). ``neurorvq cv --folds_file <that file>`` runs all ten folds in that order (``neurorvq cv
--folds 10`` is LOSO too, with the subjects dealt to folds in a seeded order); one fold under ``neurorvq fit``:
``split: {file: <that file>, fold: "3"}`` (validation subjects drawn from the other nine by ``val_fraction``) or
simply ``test_subjects: [4]``. Leave the repetition options unset for it.

Channels ``c1..c16`` (``emg`` column k-1 is ``c<k>``; c1..c8 the armband near the elbow, c9..c16 the second,
rotated by 22.5 degrees), the ``semg200`` vocabulary; unit ``au`` (Myo values are unitless and passed
through unscaled).

Download: the files are distributed by the NinaPro project after registration (https://ninapro.hevs.ch/,
"DB5"; one zip per subject, ``s1.zip`` ... ``s10.zip``); unzip them so that ``root/s1/S1_E1_A1.mat`` exists.
Citation: Pizzolato S, Tagliapietra L, Cognolato M, Reggiani M, Mueller H, Atzori M. Comparison of six
electromyography acquisition setups on hand movement classification tasks. PLoS ONE 12(10):e0186132, 2017.
"""

from __future__ import annotations

import re

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from neurorvq.data.preprocess import DataError, Pipeline
from neurorvq.data.split_rules import SplitRule
from neurorvq.data.windows import RecordingDataModule, RecordingInfo, WindowSet
from neurorvq.errors import ConfigError

SAMPLING_RATE = 200.0
"""Hz (Myo armbands)."""
N_CHANNELS = 16
CHANNELS: tuple[str, ...] = tuple(f"c{k}" for k in range(1, N_CHANNELS + 1))
"""Vocabulary name of ``emg`` column k-1."""
EXERCISE_GESTURES: dict[int, int] = {1: 12, 2: 17, 3: 23}
"""Number of gestures of each exercise (ids 1..n in its file)."""
EXERCISE_OFFSETS: dict[int, int] = {1: 0, 2: 12, 3: 29}
"""Added to an exercise's local gesture id to give the global id 1..52."""
REQUIRED_VARIABLES = ("emg", "restimulus", "rerepetition")
LOSO_SPLIT = "ninapro_db5_loso"
"""Name of the shipped leave-one-subject-out split file (``neurorvq/splits/ninapro_db5_loso.json``)."""
_FILE = re.compile(r"^S(\d+)_E(\d)_A1\.mat$", re.IGNORECASE)
_SUBJECT_DIR = re.compile(r"^s(\d+)$", re.IGNORECASE)


# ------------------------------------------------------------------------------------------------ window sets
class RepetitionWindowSet(WindowSet):
    """A :class:`~neurorvq.data.windowset.WindowSet` of DB5 whose columns hold ``repetition``, ``exercise`` and
    ``gesture`` (global id, 0 = rest), each ``int64 [W]``; :attr:`repetitions`, :attr:`exercises` and
    :attr:`gestures` read them."""

    @property
    def repetitions(self) -> np.ndarray:
        return self.columns["repetition"]

    @property
    def exercises(self) -> np.ndarray:
        return self.columns["exercise"]

    @property
    def gestures(self) -> np.ndarray:
        return self.columns["gesture"]

    def subset(self, mask: np.ndarray) -> "RepetitionWindowSet":
        """The windows where ``mask`` (bool ``[W]``) is true."""
        return self.select(mask)


def loso_split_file() -> Path:
    """The leave-one-subject-out split file of DB5 (10 folds, fold ``k`` = subject ``k + 1``; format
    ``neurorvq-split``), for ``split: {file: ..., fold: ...}`` or ``neurorvq cv --folds_file``."""
    from neurorvq import splits

    return splits.path(LOSO_SPLIT)


# ------------------------------------------------------------------------------------------------ parsing
def read_mat(path: str | Path,
             variables: Sequence[str] = REQUIRED_VARIABLES + ("subject", "exercise", "frequency")) -> dict:
    """The ``variables`` present in a DB5 ``.mat`` file (MATLAB v5; v7.3 files are a :class:`DataError`).
    Raises :class:`DataError` naming the file and the variable when a :data:`REQUIRED_VARIABLES` one is missing."""
    from scipy.io import loadmat

    try:
        content = loadmat(str(path), variable_names=list(variables))
    except NotImplementedError as exc:  # v7.3 (HDF5) files
        raise DataError(f"{path}: MATLAB v7.3 (HDF5) file; save it as a v5 .mat ({exc})") from exc
    except Exception as exc:  # truncated / not a .mat file
        raise DataError(f"{path}: unreadable .mat file ({type(exc).__name__}: {exc})") from exc
    missing = [v for v in REQUIRED_VARIABLES if v in variables and v not in content]
    if missing:
        raise DataError(f"{path}: missing variable(s) {missing} (a NinaPro DB5 file holds emg, restimulus, "
                        "rerepetition, ...)")
    return {k: v for k, v in content.items() if not k.startswith("__")}


def _column(values: np.ndarray, name: str, n: int) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim > 2 or (array.ndim == 2 and 1 not in array.shape) or array.size != n:
        raise DataError(f"'{name}' has shape {array.shape}; expected [{n}, 1] (one value per emg sample)")
    array = array.reshape(-1)
    if not np.all(np.isfinite(array)) or not np.all(array == np.round(array)):
        raise DataError(f"'{name}' holds non-integer values")
    return array.astype(np.int64)


def repetition_segments(restimulus: np.ndarray, rerepetition: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Runs of constant (gesture, repetition): ``(start, stop, gesture, repetition)`` with ``stop`` exclusive,
    in sample order. Rest runs (gesture 0) get the repetition of the preceding movement run (the first
    movement's when none precedes; 0 when the file has no movement)."""
    stimulus = np.asarray(restimulus, dtype=np.int64).reshape(-1)
    repetition = np.asarray(rerepetition, dtype=np.int64).reshape(-1)
    if stimulus.size == 0:
        return []
    change = np.flatnonzero((np.diff(stimulus) != 0) | (np.diff(repetition) != 0)) + 1
    bounds = np.concatenate([[0], change, [stimulus.size]])
    runs = [(int(a), int(b), int(stimulus[a]), int(repetition[a])) for a, b in zip(bounds[:-1], bounds[1:])]
    first = next((r for _, _, g, r in runs if g != 0), 0)
    out, last = [], first
    for a, b, g, r in runs:
        if g != 0:
            last = r
            out.append((a, b, g, r))
        else:
            out.append((a, b, 0, last))
    return out


# ------------------------------------------------------------------------------------------------ DataModule
class NinaProDB5DataModule(RecordingDataModule):
    """Windows of NinaPro DB5 gesture repetitions (see the module docstring for files, labels and splits).

    Args:
        root: folder holding ``s1/S1_E1_A1.mat`` ... (or the ``.mat`` files themselves).
        subjects: subject numbers to load (``[1, 2]``); ``None`` = every subject found. A listed subject's
            missing files are reported as skipped.
        exercises: exercises to load (subset of ``[1, 2, 3]``; ``None`` = all); the label classes are their
            gestures.
        include_rest: also cut windows from rest (``restimulus == 0``), label 0.
        window_seconds: window length [s], whole 0.25-s patches (default 1.0 = 200 samples).
        stride_seconds: step between windows inside a repetition [s], a whole number of samples (default 0.5).
        test_repetitions / val_repetitions: repetition ids (1..6) of the test / val split, for a split by
            repetition within every subject (e.g. ``[2, 5]`` / ``None``); ``None`` = the subject-wise split of the
            base class. Cannot be combined with ``val_subjects`` / ``test_subjects``.
        other arguments: see :class:`~neurorvq.data.windows.RecordingDataModule`.

    Batches: ``{"signal": float32 [B, 16, T] device units (au) at 200 Hz (T = 200 by default), "channel_ids":
    int64 [B, 16], "label": int64 [B], "subject": int64 [B]}``.
    """

    dataset_name = "NinaPro DB5"
    root_layout = "the subject folders s1/ ... s10/ with S1_E1_A1.mat ... S1_E3_A1.mat"

    window_columns = ("repetition", "gesture")

    def __init__(self, root: str, subjects: list[int] | None = None, exercises: list[int] | None = None,
                 include_rest: bool = False, window_seconds: float = 1.0, stride_seconds: float | None = 0.5,
                 test_repetitions: list[int] | None = None, val_repetitions: list[int] | None = None,
                 val_subjects: list[int | str] | None = None, test_subjects: list[int | str] | None = None,
                 modality: str = "semg200", **common: Any) -> None:
        exercises = sorted(EXERCISE_GESTURES) if exercises is None else sorted({int(e) for e in exercises})
        if not exercises or any(e not in EXERCISE_GESTURES for e in exercises):
            raise ConfigError(f"exercises is {exercises}; give a non-empty subset of [1, 2, 3]")
        if stride_seconds is not None:
            stride = float(stride_seconds) * SAMPLING_RATE
            if not stride > 0 or abs(stride - round(stride)) > 1e-6:
                raise ConfigError(f"stride_seconds is {stride_seconds}; give a positive multiple of one sample "
                                  f"(1/{SAMPLING_RATE:g} s), e.g. 0.5")
        reps = {}
        for name, values in (("test_repetitions", test_repetitions), ("val_repetitions", val_repetitions)):
            if values is not None:
                if not values or any(int(v) < 1 for v in values):
                    raise ConfigError(f"{name} is {values}; give repetition ids >= 1 (DB5: 1..6), e.g. [2, 5]")
                reps[name] = sorted({int(v) for v in values})
        if reps and common.get("split") is not None:
            raise ConfigError("test_repetitions/val_repetitions and split are both given; give one kind of split")
        if reps and (val_subjects is not None or test_subjects is not None):
            raise ConfigError("test_repetitions/val_repetitions split every subject by repetition; they cannot be "
                              "combined with val_subjects/test_subjects (give one kind of split)")
        if len(reps) == 2 and set(reps["test_repetitions"]) & set(reps["val_repetitions"]):
            raise ConfigError(f"repetitions {sorted(set(reps['test_repetitions']) & set(reps['val_repetitions']))} "
                              "are in both test_repetitions and val_repetitions")
        super().__init__(root, window_seconds=window_seconds, stride_seconds=stride_seconds, val_subjects=val_subjects,
                         test_subjects=test_subjects, modality=modality, **common)
        if self.spec.sampling_rate != SAMPLING_RATE:
            raise ConfigError(f"modality '{modality}' runs at {self.spec.sampling_rate:g} Hz; DB5 is recorded at "
                              f"{SAMPLING_RATE:g} Hz: use modality 'semg200'")
        self.subjects = None if subjects is None else sorted({int(s) for s in subjects})
        self.exercises = tuple(exercises)
        self.include_rest = bool(include_rest)
        self.test_repetitions = reps.get("test_repetitions")
        self.val_repetitions = reps.get("val_repetitions")
        globals_ = [EXERCISE_OFFSETS[e] + g for e in self.exercises for g in range(1, EXERCISE_GESTURES[e] + 1)]
        self.class_gestures: tuple[int, ...] = ((0,) if self.include_rest else ()) + tuple(globals_)
        """Global gesture id of each label (0 = rest)."""
        self.label_names = tuple("rest" if g == 0 else f"gesture {g} (E{e} #{g - EXERCISE_OFFSETS[e]})"
                                 for g in self.class_gestures for e in [self._exercise_of(g)])

    @staticmethod
    def _exercise_of(gesture: int) -> int:
        return next((e for e in (3, 2, 1) if gesture > EXERCISE_OFFSETS[e]), 0)

    # ----------------------------------------------------------------------------------------- files
    def find_recordings(self) -> list[RecordingInfo]:
        found: dict[tuple[int, int], Path] = {}
        candidates = list(self.root.iterdir()) + [f for d in self.root.iterdir()
                                                  if d.is_dir() and _SUBJECT_DIR.match(d.name) for f in d.iterdir()]
        for path in sorted(candidates):
            m = _FILE.match(path.name)
            if m and path.is_file():
                found.setdefault((int(m.group(1)), int(m.group(2))), path)
        numbers = self.subjects if self.subjects is not None else sorted({s for s, _ in found})
        infos = []
        for number in numbers:
            for exercise in self.exercises:
                path = found.get((number, exercise), self.root / f"s{number}" / f"S{number}_E{exercise}_A1.mat")
                infos.append(RecordingInfo(path, f"S{number}", number, {"exercise": exercise},
                                           columns={"exercise": exercise}))
        return infos

    def load_windows(self, info: RecordingInfo, pipeline: Pipeline) -> list[WindowSet]:
        import mne

        exercise = int(info.metadata["exercise"])
        content = read_mat(info.path)
        emg = np.asarray(content["emg"], dtype=np.float64)
        if emg.ndim != 2 or emg.shape[1] != N_CHANNELS:
            raise DataError(f"'emg' has shape {emg.shape}; expected [samples, {N_CHANNELS}] (two Myo armbands)")
        n = emg.shape[0]
        stimulus = _column(content["restimulus"], "restimulus", n)
        repetition = _column(content["rerepetition"], "rerepetition", n)
        frequency = np.asarray(content.get("frequency", []))
        if frequency.size == 1 and float(frequency.item()) != SAMPLING_RATE:
            raise DataError(f"variable 'frequency' is {float(frequency.item()):g} Hz; DB5 EMG is {SAMPLING_RATE:g} Hz")
        for name, expected in (("subject", info.subject_id), ("exercise", exercise)):
            value = np.asarray(content.get(name, []))
            if value.size == 1 and int(value.item()) != expected:
                raise DataError(f"variable '{name}' is {int(value.item())} but the file name says {expected}")
        outside = sorted(set(np.unique(stimulus).tolist()) - set(range(0, EXERCISE_GESTURES[exercise] + 1)))
        if outside:
            raise DataError(f"restimulus values {outside[:10]} are outside exercise {exercise}'s gestures "
                            f"0..{EXERCISE_GESTURES[exercise]} (0 = rest)")
        if (repetition < 0).any():
            raise DataError("rerepetition holds negative values")
        raw = mne.io.RawArray(emg.T, mne.create_info(list(CHANNELS), SAMPLING_RATE, "emg"), verbose="error")
        recording = self.preprocess(raw, info, pipeline)
        label_of = {g: k for k, g in enumerate(self.class_gestures)}
        window = self.window_samples
        stride = window if self.stride_seconds is None else int(round(self.stride_seconds * SAMPLING_RATE))
        starts, labels, reps, gestures = [], [], [], []
        short = 0
        for a, b, local, rep in repetition_segments(stimulus, repetition):
            gesture = 0 if local == 0 else EXERCISE_OFFSETS[exercise] + local
            if gesture not in label_of:
                continue  # rest without include_rest
            grid = np.arange(a, b - window + 1, stride, dtype=np.int64)
            if not grid.size:
                short += 1
                continue
            starts.append(grid)
            labels += [label_of[gesture]] * grid.size
            reps += [rep] * grid.size
            gestures += [gesture] * grid.size
        self.note_rejected(f"repetition shorter than one {self.window_seconds:g}-s window", short)
        if not starts:
            raise DataError(f"no gesture repetition of at least {self.window_seconds:g} s")
        ws = self.cut(recording, info, starts=np.concatenate(starts), labels=labels,
                      columns={"repetition": reps, "exercise": exercise, "gesture": gestures})
        return [RepetitionWindowSet(ws.signals, ws.channel_ids, ws.labels, ws.subjects, ws.recording, ws.starts,
                                    ws.channels, ws.columns)]

    # ----------------------------------------------------------------------------------------- splits
    def default_split(self) -> SplitRule | None:
        """With ``test_repetitions`` / ``val_repetitions``: every subject's windows split by their ``repetition``
        column (train = the other repetitions)."""
        if self.test_repetitions is None and self.val_repetitions is None:
            return None
        return SplitRule(by="repetition", val=list(self.val_repetitions or []), test=list(self.test_repetitions or []))

    def window_metadata(self, split: str) -> dict[str, np.ndarray]:
        """Per-window metadata of ``split`` (after :meth:`setup`), aligned with ``datasets[split]``:
        ``{"repetition": int64 [N], "exercise": int64 [N], "gesture": int64 [N] (global id, 0 = rest)}``."""
        table = self.window_table(split)
        return {name: table.get(name, np.zeros(0, np.int64)) for name in ("repetition", "exercise", "gesture")}


__all__ = ["CHANNELS", "EXERCISE_GESTURES", "EXERCISE_OFFSETS", "LOSO_SPLIT", "NinaProDB5DataModule",
           "REQUIRED_VARIABLES", "RepetitionWindowSet", "SAMPLING_RATE", "loso_split_file", "read_mat",
           "repetition_segments"]
