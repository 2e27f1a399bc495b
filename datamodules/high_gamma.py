"""High-Gamma Dataset (Schirrmeister et al. 2017; executed movements, 4 classes) as a LightningDataModule
(``neurorvq.datamodules.high_gamma``): the trials of the EEG benchmark's "Motor" row (benchmarks.md §3.1).

14 healthy subjects, 13 runs of 80 cued trials each: a gray arrow shown for 4 s asks for sequential finger
tapping of the left or right hand, repetitive toe clenching (both feet) or rest, with 3-4 s of random
inter-trial interval. Each subject has two EDF files at 500 Hz: ``train/<k>.edf`` (runs 1-11, about 880 trials)
and ``test/<k>.edf`` (the last 2 runs, about 160 trials). 133 channels: 128 EEG electrodes of the 10-05 system
(labels ``'EEG Fp1'``, ...), 2 EOG (``'EOG EOGh'``, ``'EOG EOGv'``) and 3 EMG (``'EMG EMG_RH'``, ``'EMG EMG_LH'``,
``'EMG EMG_RF'``). The files are read as MOABB 1.7.2 reads them: ``mne.io.read_raw_edf(..., infer_types=True)``,
which sets the channel types from the label prefixes and strips them (``'Fp1'``, ``'EOGh'``, ``'EMG_RH'``).
Not verified on the real files here (they are not in ../shared): the prefixed labels are those other public
loaders list for these files; files labelled without prefixes read the same (the names are then unchanged).

Events: one EDF+ annotation at every cue onset, named by its class (MOABB's ``event_id``, which MOABB passes to
``mne.events_from_annotations``):

================  =========  ======================================  ================================
annotation        MOABB id   meaning                                 label (benchmark, :data:`LABELS`)
================  =========  ======================================  ================================
``rest``          3          rest (no movement; same kind of cue)    0
``left_hand``     2          left-hand finger tapping                1
``right_hand``    1          right-hand finger tapping               2
``feet``          4          toe clenching (both feet)               3
================  =========  ======================================  ================================

MNE's own annotations (``BAD_*``, ``EDGE*``) and empty descriptions are ignored; any other description is a
:class:`~neurorvq.data.preprocess.DataError` naming the file and the description (the file is skipped, or loading
stops with ``strict``). MOABB silently ignores descriptions outside its ``event_id``; this loader does not,
so that a file annotated differently is not read as having fewer trials [choice]. The labels are the
benchmark's (``no_action`` 0, ``left_fist`` 1, ``right_fist`` 2, ``both_feet`` 3 in its ``data.py``), not MOABB's
ids: :data:`CLASS_NAMES` ``('rest', 'left hand', 'right hand', 'feet')``.

Trials: one window of ``window_seconds`` (default 4 s, MOABB's ``interval`` [0, 4]) from each cue onset, cut
from the preprocessed continuous recording (the benchmark resamples and filters before cutting): 800 samples
at 200 Hz, 4 EEG patches. A cue whose window runs past the end of the recording is counted as rejected
(``summary["rejected"]``, reason :data:`PAST_THE_END`); a file where no trial fits is a DataError.

Preprocessing, the benchmark's (§2.1, §3.1; :func:`benchmark_steps`, the default unless ``steps`` is given):
``Resample`` (MNE, FFT) 500 -> 200 Hz, ``BandPass`` 0.5-45 Hz (MNE zero-phase FIR; the benchmark's filter type
is not stated), ``DropChannels`` of the 5 non-EEG channels (:data:`NON_EEG_CHANNELS`) and of the 50 electrodes the
benchmark drops ("not in standard 10-20", :data:`BENCHMARK_DROPPED`), ``CommonAverageReference`` over the 78
EEG channels left, then ``PickChannels``: 66 of the 78 are in the NeuroRVQ vocabulary; M1, M2, PO5, PO6, FT9,
FT10, TPP9h, TPP10h, FTT9h, FTT10h, TTP7h and TPP8h are not and are dropped after the reference (listed in the
summary's ``dropped_channels``). The benchmark applies CAR at load time to the cut trials; CAR acts on each
sample alone, so applying it to the continuous recording gives the same trials. No amplitude rejection
(``max_amplitude`` None; the benchmark rejects nothing). Because the reference must see all 78 channels, every
channel of a file is loaded: a ~2-h ``train`` file takes a few GB in float64 while it is preprocessed (mind
``num_workers``). Windows: float32 uV, channels in file order under their vocabulary names.

Subjects: subject ``k`` (MOABB's subject number, 1..14; the benchmark's ``highgamma_s<kk>``) is named
``'S<kk>'`` (``'S01'`` ... ``'S14'``) with subject id ``k``, so the shipped fold lists
(``neurorvq.splits.path("hgd")``, ids 1..14) select it. Every window carries a ``run`` column (``'train'`` or
``'test'``, the file it comes from). Both files belong to the benchmark [I]; ``runs=['train']`` loads one;
``split: {by: run, val: [], test: [test]}`` gives the original paper's within-subject split.

Layouts (``root`` may be any of these folders; a subject's file is taken from the first that holds it):

* the GIN repository (a clone of ``robintibor/high-gamma-dataset``): ``<root>/data/train/<k>.edf``,
  ``<root>/data/test/<k>.edf``, or ``root`` = its ``data`` folder;
* a MOABB 1.7.2 download (``Schirrmeister2017().data_path(k, path=P)``, MOABB's ``data_dl`` mirroring the URL's
  path): ``P/MNE-schirrmeister2017-data/robintibor/high-gamma-dataset/raw/master/data/<train|test>/<k>.edf``,
  or MOABB's legacy place ``P/MNE-schirrmeister2017-data/<train|test>/<k>.edf`` (which MOABB reads first when
  present); ``root`` = ``P`` or its ``MNE-schirrmeister2017-data`` folder.

A root holding none of them is a DataError giving example paths. A subject listed in ``subjects`` whose file is
missing is reported as a skipped recording (``file not found``).

Download (about 15 GB, ~1 GB per subject; needs internet and MOABB, ``pip install "neurorvq[benchmarks]"``):
:func:`download` calls MOABB's ``Schirrmeister2017().data_path`` for each subject and returns the folder to
pass as ``root``. Source: https://web.gin.g-node.org/robintibor/high-gamma-dataset (``data/train/<k>.edf``,
``data/test/<k>.edf``). Licence: CC-BY-4.0 (attribution required). Citation: Schirrmeister RT, Springenberg JT,
Fiederer LDJ, Glasstetter M, Eggensperger K, Tangermann M, Hutter F, Burgard W, Ball T. Deep learning with
convolutional neural networks for EEG decoding and visualization. Human Brain Mapping 38(11):5391-5420, 2017.
https://doi.org/10.1002/hbm.23730
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from neurorvq.data.datamodule import RecordingDataModule
from neurorvq.data.preprocess import DataError, Pipeline, steps_from_config
from neurorvq.data.recording import RecordingInfo
from neurorvq.data.windowset import WindowSet
from neurorvq.errors import ConfigError

SAMPLING_RATE = 500.0
"""Hz, as recorded (resampled to the EEG spec's rate by the pipeline)."""
SUBJECTS: tuple[int, ...] = tuple(range(1, 15))
"""MOABB's subject numbers."""
RUNS: tuple[str, ...] = ("train", "test")
"""The two files of a subject (the ``run`` column)."""
LABELS: dict[str, int] = {"rest": 0, "left_hand": 1, "right_hand": 2, "feet": 3}
"""Annotation description -> the benchmark's label."""
CLASS_NAMES: tuple[str, ...] = ("rest", "left hand", "right hand", "feet")
MOABB_EVENT_ID: dict[str, int] = {"right_hand": 1, "left_hand": 2, "rest": 3, "feet": 4}
"""MOABB 1.7.2's ``event_id`` of ``Schirrmeister2017`` (for reference; the labels are :data:`LABELS`)."""
NON_EEG_CHANNELS: tuple[str, ...] = ("EOGh", "EOGv", "EMG_RH", "EMG_LH", "EMG_RF")
"""The 2 EOG and 3 EMG channels (names as ``read_raw_edf(infer_types=True)`` gives them), dropped."""
BENCHMARK_DROPPED: tuple[str, ...] = (
    "AFF1", "AFF2", "FFC5h", "FFC3h", "FFC4h", "FFC6h", "FCC5h", "FCC3h", "FCC4h", "FCC6h", "CCP5h", "CCP3h", "CCP4h",
    "CCP6h", "CPP5h", "CPP3h", "CPP4h", "CPP6h", "PPO1", "PPO2", "I1", "I2", "AFp3h", "AFp4h", "AFF5h", "AFF6h",
    "FFT7h", "FFC1h", "FFC2h", "FFT8h", "FTT7h", "FCC1h", "FCC2h", "FTT8h", "CCP1h", "CCP2h", "TTP8h", "TPP7h",
    "CPP1h", "CPP2h", "PPO9h", "PPO5h", "PPO6h", "PPO10h", "POO9h", "POO3h", "POO4h", "POO10h", "OI1h", "OI2h")
"""The 50 EEG electrodes the benchmark drops before its CAR (benchmarks.md §3.1, "not in standard 10-20")."""
PAST_THE_END = "trial runs past the end of the recording (shorter than the window)"
"""Rejection reason of a cue whose window does not fit in the recording."""
MOABB_FOLDER = "MNE-schirrmeister2017-data"
"""The folder MOABB keeps the data set in, under its ``path``."""
GIN_PATH = Path("robintibor") / "high-gamma-dataset" / "raw" / "master" / "data"
"""Where MOABB 1.7.2 mirrors the GIN URL's path under :data:`MOABB_FOLDER`."""
DATA_FOLDERS: tuple[Path, ...] = (
    Path("data"), Path("."), Path(MOABB_FOLDER), Path(MOABB_FOLDER) / GIN_PATH, GIN_PATH)
"""Folders under ``root`` that may hold ``train/`` and ``test/``, in the order they are searched: a GIN clone,
``root`` itself (GIN's ``data`` folder or MOABB's legacy folder), a MOABB path (legacy first, as MOABB reads
it), then MOABB's URL mirror under ``root`` = ``MNE-schirrmeister2017-data``."""
_FILE = re.compile(r"^0*(\d+)\.edf$", re.IGNORECASE)
_IGNORED = ("BAD", "EDGE")  # MNE's own annotations


def benchmark_steps() -> list[dict[str, Any]]:
    """The benchmark's preprocessing as recipe steps (the DataModule's default; the recipe writes it out):
    Resample, BandPass 0.5-45 Hz, DropChannels (non-EEG + the 50), CommonAverageReference, PickChannels."""
    return [{"step": "Resample"}, {"step": "BandPass", "low": 0.5, "high": 45.0},
            {"step": "DropChannels", "names": [*NON_EEG_CHANNELS, *BENCHMARK_DROPPED]},
            {"step": "CommonAverageReference"}, {"step": "PickChannels"}]


def download(root: str | Path, subjects: Sequence[int] | None = None) -> Path:
    """Download both EDF files of ``subjects`` (default all 14; ~1 GB each) with MOABB's
    ``Schirrmeister2017().data_path(subject, path=root)`` (needs internet; files already there are kept) and
    return ``root``, the folder to pass as the DataModule's ``root``. Needs MOABB: without it a
    :class:`ConfigError` names the extra to install. (MOABB records ``MNE_DATA`` in MNE's config when neither it
    nor ``MNE_DATASETS_SCHIRRMEISTER2017_PATH`` is set.)"""
    numbers = list(SUBJECTS) if subjects is None else [int(s) for s in subjects]
    bad = [s for s in numbers if s not in SUBJECTS]
    if bad or not numbers:
        raise ConfigError(f"subjects {bad or numbers} are not High-Gamma subjects; give numbers 1..14")
    try:
        from moabb.datasets import Schirrmeister2017
    except ImportError as exc:
        raise ConfigError('downloading the High-Gamma Dataset needs MOABB: pip install "neurorvq[benchmarks]" '
                          f"({type(exc).__name__}: {exc})") from exc
    root = Path(root).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    dataset = Schirrmeister2017()
    for number in numbers:
        dataset.data_path(number, path=str(root))
    return root


def parse_cues(annotations: Iterable[tuple[float, float, str]], source: str) -> tuple[np.ndarray, np.ndarray]:
    """``(onsets [s] float64 [n], labels int64 [n])`` of the cues in ``annotations`` (``(onset [s], duration [s],
    description)``, e.g. :attr:`~neurorvq.data.preprocess.Recording.annotations`), in time order, labelled by
    :data:`LABELS`. MNE's ``BAD_``/``EDGE`` annotations and empty descriptions are ignored; any other
    description, or no cue at all, is a :class:`DataError` naming ``source``."""
    cues = []
    for onset, _, description in annotations:
        text = str(description).strip()
        if not text or text.upper().startswith(_IGNORED):
            continue
        if text not in LABELS:
            raise DataError(f"{source}: annotation {text!r} at {float(onset):.3f} s is not a High-Gamma cue (labels "
                            f"outside the declared classes; expected one of {sorted(LABELS)})")
        cues.append((float(onset), LABELS[text]))
    if not cues:
        raise DataError(f"{source}: no cue annotations ({', '.join(sorted(LABELS))}) in the file")
    cues.sort(key=lambda c: c[0])
    return (np.asarray([t for t, _ in cues], dtype=np.float64), np.asarray([y for _, y in cues], dtype=np.int64))


class HighGammaDataModule(RecordingDataModule):
    """The High-Gamma Dataset's cued trials (see the module docstring for events, channels, labels, layouts).

    Args:
        root: a GIN clone (``data/train/1.edf`` ...), its ``data`` folder, a MOABB ``path`` (holding
            ``MNE-schirrmeister2017-data``) or that folder itself.
        subjects: subject numbers 1..14 to load; ``None`` = every subject with a file of ``runs``. A listed
            subject's missing files are reported as skipped.
        runs: ``['train']``, ``['test']`` or both (default, as the benchmark).
        window_seconds: trial length [s] from the cue, whole EEG patches (default 4: 800 samples at 200 Hz).
        other arguments: see :class:`~neurorvq.data.datamodule.RecordingDataModule` (``steps`` default:
            :func:`benchmark_steps`).

    Batches: ``{"signal": float32 [B, 66, 800] uV at 200 Hz, "channel_ids": int64 [B, 66], "label": int64 [B]
    (0 rest, 1 left hand, 2 right hand, 3 feet), "subject": int64 [B] (1..14)}``.
    """

    dataset_name = "High-Gamma"
    root_layout = ("the High-Gamma EDF files: a GIN clone with data/train/<k>.edf and data/test/<k>.edf (k = 1..14), "
                   f"or a MOABB download path with {MOABB_FOLDER}/{GIN_PATH.as_posix()}/<train|test>/<k>.edf "
                   f"(or the legacy {MOABB_FOLDER}/<train|test>/<k>.edf)")
    label_names = CLASS_NAMES

    def __init__(self, root: str, subjects: list[int] | None = None, runs: list[str] | None = None,
                 window_seconds: float = 4.0, **common: Any) -> None:
        runs = list(RUNS) if runs is None else [str(r).lower() for r in runs]
        if not runs or any(r not in RUNS for r in runs):
            raise ConfigError(f"runs is {runs}; give a non-empty subset of ['train', 'test']")
        if subjects is not None and (not subjects or any(int(s) not in SUBJECTS for s in subjects)):
            raise ConfigError(f"subjects is {subjects}; give subject numbers 1..14, or null for all")
        super().__init__(root, window_seconds=window_seconds, stride_seconds=None, **common)
        self.subjects = None if subjects is None else sorted({int(s) for s in subjects})
        self.runs = tuple(r for r in RUNS if r in runs)

    def default_pipeline(self) -> Pipeline:
        """The benchmark's steps (:func:`benchmark_steps`)."""
        return Pipeline(self.spec_, steps_from_config(benchmark_steps()))

    # ----------------------------------------------------------------------------------------- files
    def data_folders(self) -> list[Path]:
        """The folders of :data:`DATA_FOLDERS` under :attr:`root` that hold ``train/`` or ``test/``; none is a
        :class:`DataError` saying what was expected, with example paths."""
        folders = []
        for relative in DATA_FOLDERS:
            folder = self.root / relative
            if any((folder / run).is_dir() for run in RUNS):
                folders.append(folder)
        if not folders:
            seen = sorted(p.name + ("/" if p.is_dir() else "") for p in self.root.iterdir())
            raise DataError(f"{self.dataset_name} root '{self.root}' is not in a known layout: expected "
                            f"{self.root_layout}; e.g. '{self.root / 'data' / 'train' / '1.edf'}' or "
                            f"'{self.root / MOABB_FOLDER / GIN_PATH / 'train' / '1.edf'}' (found: "
                            f"{seen[:10] or 'an empty folder'}); set data.init_args.root, or fetch the files with "
                            "neurorvq.datamodules.high_gamma.download")
        return folders

    def find_recordings(self) -> list[RecordingInfo]:
        folders = self.data_folders()
        found: dict[tuple[int, str], Path] = {}
        for folder in folders:
            for run in self.runs:
                if not (folder / run).is_dir():
                    continue
                for path in sorted((folder / run).iterdir()):
                    m = _FILE.match(path.name)
                    if not (m and path.is_file()):
                        continue
                    if int(m.group(1)) not in SUBJECTS:
                        self.find_excluded[f"{run}/{path.name}: not a subject 1..14"] += 1
                        continue
                    found.setdefault((int(m.group(1)), run), path)
        numbers = self.subjects if self.subjects is not None else sorted({k for k, _ in found})
        return [RecordingInfo(found.get((k, run), folders[0] / run / f"{k}.edf"), f"S{k:02d}", k, {"run": run},
                              columns={"run": run})
                for k in numbers for run in self.runs]

    # ----------------------------------------------------------------------------------------- windows
    def load_windows(self, info: RecordingInfo, pipeline: Pipeline) -> list[WindowSet]:
        import mne

        raw = self.read_raw(info.path, mne.io.read_raw_edf, infer_types=True)
        offset = raw.first_samp / raw.info["sfreq"] if raw.annotations.orig_time is not None else 0.0
        onsets, labels = parse_cues(((float(a["onset"]) - offset, float(a["duration"]), str(a["description"]))
                                     for a in raw.annotations), str(info.path))
        recording = self.preprocess(raw, info, pipeline)
        starts = np.round(onsets * recording.sfreq).astype(np.int64)
        fits = starts + self.window_samples <= recording.data.shape[1]
        if not fits.any():
            raise DataError(f"{info.path}: no trial fits: all {len(starts)} cues are less than "
                            f"{self.window_seconds:g} s before the end of the recording "
                            f"({recording.data.shape[1] / recording.sfreq:g} s)")
        self.note_rejected(PAST_THE_END, int((~fits).sum()))
        return [self.cut(recording, info, starts=starts[fits], labels=labels[fits])]


__all__ = ["BENCHMARK_DROPPED", "CLASS_NAMES", "DATA_FOLDERS", "GIN_PATH", "HighGammaDataModule", "LABELS",
           "MOABB_EVENT_ID", "MOABB_FOLDER", "NON_EEG_CHANNELS", "PAST_THE_END", "RUNS", "SAMPLING_RATE", "SUBJECTS",
           "benchmark_steps", "download", "parse_cues"]
