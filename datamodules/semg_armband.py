"""Wearable-sensor long-term sEMG dataset (Kanoga et al. 2020) as a LightningDataModule
(``neurorvq.datamodules.semg_armband``).

An 8-channel forearm armband, 200 Hz, 5 subjects x 30 days x 22 hand/wrist motions x 4 trials. Every CSV
file is one 1.5-s segment: 300 rows (samples) x 8 columns (channels), comma-separated, no header, in device
units (not volts). The layout of the source repository's ``data/`` folder is expected::

    root/sub1/day1/D1M1T1.csv ... D1M22T4.csv
    root/sub1/day2/D2M1T1.csv ...
    ...
    root/sub5/day30/...

* **Labels** come from the file names ``D<day>M<motion>T<trial>.csv``: motion 1..22 is label 0..21 (M1 = rest,
  M2 = wrist flexion, ...; the repository's ``hand motions/`` videos show the motions). The day and trial are
  kept as per-window metadata (:meth:`SEMGArmbandDataModule.window_metadata`).
* **Subjects**: ``sub<k>`` is subject ``k`` (name ``'sub<k>'``), the unit of the train/val/test split; for
  leave-one-subject-out use ``val_fraction=0, test_fraction=0`` (everything in ``train``) and
  :func:`neurorvq.data.splits.subject_kfold` on ``datasets["train"].subjects`` / ``.labels`` with
  ``n_folds=5``, or ``test_subjects=[k]`` for one fold.
* **Days**: the armband was put on anew each day and its **placement differs by day** (the repository's
  ``code/set_config.m``: day 1 = ``N`` (normal), day 2 = ``I``, ...); windows of different days of one subject are
  therefore not exchangeable. ``days=[1]`` loads only the given days (cross-day experiments: load the days
  separately, or split on :meth:`~SEMGArmbandDataModule.window_metadata`'s ``day``).
* **Channels** ``c1..c8`` (column k is ``c<k>``), the ``semg200`` vocabulary; **unit** ``au``: the values
  (roughly within +-1.5, std ~0.15-0.3) are passed through unscaled (``UNIT_FACTORS['au'] == 1``): the CSV
  columns become an ``mne.io.RawArray`` of type ``emg`` whose data MNE stores as given, so no SI conversion
  turns them into 1e6 x their value.
* **One file = one recording** of the base class: a damaged file (wrong row/column count, a non-numeric or
  truncated row, an unparsable name, a motion outside 1..22) is skipped with a
  :class:`~neurorvq.data.windows.RecordingSkippedWarning` naming it (``strict=True`` raises instead). A file
  must hold exactly 300 rows (1.5 s at 200 Hz).

Filtering (default pipeline): the ``semg200`` defaults (notch 50/60 Hz, band-pass 20-95 Hz, no resampling;
no ``PickChannels`` since the loader names the columns ``c1..c8`` itself), but as **zero-phase IIR filters**
sized for 1.5-s segments, because each segment is an independent
recording of 300 samples and MNE's default FIR notch (1-Hz transition band) is ~661 taps (3.3 s), more than
twice the segment (MNE then warns "filter_length is longer than the signal, distortion is likely", hidden by
the shared ``Notch`` step's ``verbose='error'``; measured on white noise it leaves a 5 % RMS error even in
the middle of the segment). The choice here (:class:`IIRNotch`, :class:`IIRBandPass`):

* notch: a second-order IIR notch (``scipy.signal.iirnotch``) at each frequency, -3 dB width 2 Hz
  (Q = 25 at 50 Hz), ringing ~142 samples;
* band-pass 20-95 Hz: 4th-order Butterworth (second-order sections), ringing ~100 samples;
* both applied forward and backward (``scipy.signal.sosfiltfilt``, zero phase, squared magnitude response)
  with even (mirror) padding of ``min(ringing samples, n - 1)`` samples (``mne.filter.estimate_ringing_samples``).

Measured against the same filters run on a long signal, the segment-wise result differs by ~6 % RMS overall,
concentrated in the first and last ~25 samples (0.125 s); mid-segment errors are < 0.5 %. Note that the
published CSVs are already filtered by the recording pipeline (no power below ~13 Hz; most sessions show a
50-Hz notch), so these filters mostly restate that. ``steps`` may use ``{"step": "IIRNotch", ...}`` and
``{"step": "IIRBandPass", ...}`` besides the shared steps of :mod:`neurorvq.data.preprocess`.

Download: :func:`download` fetches the GitHub repository
``Suguru55/Wearable_Sensor_Long-term_sEMG_Dataset`` (Apache-2.0) and returns its ``data/`` folder (needs
internet; or clone the repository by hand and pass ``<clone>/data`` as ``root``). Citation: Kanoga S,
Kanemura A, Asoh H. Are armband sEMG devices dense enough for long-term use? Sensor placement shifts cause
significant reduction in recognition accuracy. Biomed. Signal Process. Control 60:101981, 2020.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from neurorvq.data.preprocess import DataError, Pipeline, Step, steps_from_config
from neurorvq.data.windows import RecordingDataModule, RecordingInfo, WindowSet
from neurorvq.errors import ConfigError

SAMPLING_RATE = 200.0
"""Hz (``code/set_config.m``: ``fs = 200``; not stored in the files)."""
SEGMENT_SAMPLES = 300
"""Rows of every CSV: one 1.5-s segment at 200 Hz."""
N_CHANNELS = 8
N_MOTIONS = 22
CHANNELS: tuple[str, ...] = tuple(f"c{k}" for k in range(1, N_CHANNELS + 1))
"""Vocabulary name of CSV column k-1."""
MOTION_NAMES: tuple[str, ...] = ("M1 (rest)", "M2 (wrist flexion)") + tuple(f"M{m}" for m in range(3, N_MOTIONS + 1))
"""Class names in label order (label = motion - 1)."""
DAY_PLACEMENT: dict[int, str] = {1: "N", 2: "I"}
"""Armband placement code of the days documented here (``set_config.m``); placement differs by day."""
REPOSITORY = "Suguru55/Wearable_Sensor_Long-term_sEMG_Dataset"

_FILE = re.compile(r"^D(\d+)M(\d+)T(\d+)\.csv$", re.IGNORECASE)
_SUBJECT_DIR = re.compile(r"^sub(\d+)$", re.IGNORECASE)
_DAY_DIR = re.compile(r"^day(\d+)$", re.IGNORECASE)


# ------------------------------------------------------------------------------------------------ filters
@lru_cache(maxsize=64)
def _notch_design(freqs: tuple[float, ...], width: float, sfreq: float) -> tuple[np.ndarray, np.ndarray, int]:
    """Cascade of second-order notches: ``(sos, zi, ringing samples)``."""
    from scipy import signal

    sos = np.concatenate([signal.tf2sos(*signal.iirnotch(f, f / width, fs=sfreq)) for f in freqs])
    return _with_zi(sos)


@lru_cache(maxsize=64)
def _bandpass_design(low: float | None, high: float | None, order: int,
                     sfreq: float) -> tuple[np.ndarray, np.ndarray, int]:
    """Butterworth band-, high- or low-pass: ``(sos, zi, ringing samples)``."""
    from scipy import signal

    if low is not None and high is not None:
        sos = signal.butter(order, [low, high], btype="bandpass", fs=sfreq, output="sos")
    elif low is not None:
        sos = signal.butter(order, low, btype="highpass", fs=sfreq, output="sos")
    else:
        sos = signal.butter(order, high, btype="lowpass", fs=sfreq, output="sos")
    return _with_zi(sos)


def _with_zi(sos: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    from mne.filter import estimate_ringing_samples
    from scipy import signal

    return sos, signal.sosfilt_zi(sos), int(estimate_ringing_samples(sos))


def _filtfilt(data: np.ndarray, sos: np.ndarray, zi: np.ndarray, ringing: int) -> np.ndarray:
    """Zero-phase ``sos`` along the last axis of ``data [..., n]`` with even (mirror) padding of
    ``min(ringing, n - 1)`` samples: ``scipy.signal.sosfiltfilt(sos, data, padtype='even', padlen=...)`` with
    the initial conditions ``zi`` computed once per design (this runs once per 1.5-s file)."""
    from scipy import signal

    n = data.shape[-1]
    if n < 2:
        raise DataError(f"{n} sample(s) cannot be filtered")
    edge = min(int(ringing), n - 1)
    if edge:
        data = np.concatenate([data[..., edge:0:-1], data, data[..., -2:-edge - 2:-1]], axis=-1)
    zi = zi.reshape(zi.shape[0], *([1] * (data.ndim - 1)), 2)
    y, _ = signal.sosfilt(sos, data, axis=-1, zi=zi * data[..., :1])
    y = y[..., ::-1]
    y, _ = signal.sosfilt(sos, y, axis=-1, zi=zi * y[..., :1])
    y = y[..., ::-1]
    return np.ascontiguousarray(y[..., edge:n + edge])


@dataclass
class IIRNotch(Step):
    """Second-order IIR notch at each of ``freqs`` [Hz] below Nyquist (-3 dB width ``width`` Hz, zero phase,
    even padding): for segments too short for MNE's FIR notch (see the module docstring)."""

    freqs: tuple[float, ...] = (50.0, 60.0)
    width: float = 2.0

    def __post_init__(self) -> None:
        self.freqs = tuple(float(f) for f in self.freqs)
        if not self.width > 0 or any(not f > 0 for f in self.freqs):
            raise ConfigError(f"IIRNotch: freqs {self.freqs} and width {self.width} must be positive (Hz)")

    def apply(self, raw, spec, report):
        sfreq = float(raw.info["sfreq"])
        freqs = tuple(f for f in self.freqs if f + self.width / 2 < sfreq / 2)
        if freqs:
            raw._data = _filtfilt(raw.get_data(), *_notch_design(freqs, float(self.width), sfreq))
        return raw


@dataclass
class IIRBandPass(Step):
    """Butterworth band-pass ``low``-``high`` Hz of ``order`` (second-order sections, zero phase, even padding);
    ``high`` is capped just below Nyquist, ``None`` leaves that side open."""

    low: float | None = 20.0
    high: float | None = 95.0
    order: int = 4

    def __post_init__(self) -> None:
        if int(self.order) < 1:
            raise ConfigError(f"IIRBandPass: order is {self.order}; give at least 1")
        if self.low is None and self.high is None:
            raise ConfigError("IIRBandPass: give low and/or high (Hz)")

    def apply(self, raw, spec, report):
        sfreq = float(raw.info["sfreq"])
        high = None if self.high is None else min(float(self.high), sfreq / 2 - 0.5)
        low = None if self.low is None else float(self.low)
        raw._data = _filtfilt(raw.get_data(), *_bandpass_design(low, high, int(self.order), sfreq))
        return raw


LOCAL_STEPS = {"IIRNotch": IIRNotch, "IIRBandPass": IIRBandPass}
"""Steps this module adds to the shared ones (names usable in ``steps``)."""


def steps_with_iir(items: Sequence[Mapping[str, Any]]) -> list[Step]:
    """:func:`~neurorvq.data.preprocess.steps_from_config` that also knows :data:`LOCAL_STEPS`."""
    steps: list[Step] = []
    for item in items:
        item = dict(item)
        name = item.get("step")
        if name in LOCAL_STEPS:
            item.pop("step")
            try:
                steps.append(LOCAL_STEPS[name](**item))
            except TypeError as exc:
                raise ConfigError(f"preprocessing step {name}: {exc}") from exc
        else:
            steps.extend(steps_from_config([item]))
    return steps


def segment_pipeline_steps() -> list[Step]:
    """The default steps: IIR notch 50/60 Hz (2 Hz wide), IIR band-pass 20-95 Hz (order 4). No ``PickChannels``:
    the loader names the columns ``c1..c8`` itself, vocabulary names already (picking and renaming them would
    only cost time on every 1.5-s file); no resampling: the files are at the spec's 200 Hz."""
    return [IIRNotch((50.0, 60.0), 2.0), IIRBandPass(20.0, 95.0, 4)]


# ------------------------------------------------------------------------------------------------ files
def parse_name(name: str) -> tuple[int, int, int] | None:
    """``(day, motion, trial)`` of ``'D1M2T3.csv'`` (case-insensitive), or ``None`` for another name."""
    m = _FILE.match(name)
    return None if m is None else (int(m.group(1)), int(m.group(2)), int(m.group(3)))


def read_segment(path: str | Path) -> np.ndarray:
    """``float64 [300, 8]`` device units from one CSV (rows = samples at 200 Hz, columns = channels 1-8).

    Raises :class:`DataError` naming the file for an empty file, a non-numeric or truncated row, or another
    shape than 300 x 8.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # numpy warns on an empty file: caught by the size check
            data = np.loadtxt(path, delimiter=",", dtype=np.float64, ndmin=2)
    except ValueError as exc:  # a non-numeric cell, a row with fewer columns (truncated), ...
        raise DataError(f"{path}: unreadable CSV ({str(exc).strip() or type(exc).__name__})") from exc
    if data.size == 0:
        raise DataError(f"{path}: empty file")
    if data.shape != (SEGMENT_SAMPLES, N_CHANNELS):
        raise DataError(f"{path}: {data.shape[0]} rows x {data.shape[1]} columns; expected {SEGMENT_SAMPLES} x "
                        f"{N_CHANNELS} (one 1.5-s segment at 200 Hz of the 8-channel armband), e.g. a truncated file")
    return data


def download(root: str | Path, ref: str = "HEAD") -> Path:
    """Download the GitHub repository ``Suguru55/Wearable_Sensor_Long-term_sEMG_Dataset`` at ``ref`` as a zip
    archive (needs internet; hundreds of MB for all 30 days), unpack it under ``root`` and return its ``data/``
    folder, the ``root`` of :class:`SEMGArmbandDataModule`. (Alternatively ``git clone`` the repository.)"""
    import urllib.request
    import zipfile

    root = Path(root).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    archive = root / "long-term-semg-armband.zip"
    url = f"https://github.com/{REPOSITORY}/archive/{ref}.zip"
    if not archive.exists():
        urllib.request.urlretrieve(url, archive)  # noqa: S310 - a fixed https URL
    with zipfile.ZipFile(archive) as zf:
        zf.extractall(root)
    found = sorted(p for p in root.glob("*/data") if (p / "sub1").is_dir())
    if not found:
        raise DataError(f"no data/sub1 folder in the archive from {url} unpacked under {root}")
    return found[0]


# ------------------------------------------------------------------------------------------------ DataModule
class SEMGArmbandDataModule(RecordingDataModule):
    """Windows of the long-term sEMG armband CSVs (see the module docstring for layout, labels, days, filters).

    Args:
        root: the repository's ``data/`` folder holding ``sub1/ ... sub5/`` with ``day<d>/D<d>M<m>T<t>.csv`` (the
            repository's root, with ``data/`` inside, works too).
        subjects: subject numbers to load (``[1, 3]``); ``None`` = every ``sub<k>`` folder.
        days: day numbers to load (``[1]``); ``None`` = every ``day<d>`` folder. Placement differs by day.
        window_seconds: window length [s], a whole number of 0.25-s patches up to the segment's 1.5 s
            (default 1.5: one window of 6 patches per file); shorter windows are cut every ``stride_seconds``
            (default ``window_seconds``) inside each segment, never across files.
        other arguments: see :class:`~neurorvq.data.windows.RecordingDataModule` (``steps`` may also name
            ``IIRNotch`` / ``IIRBandPass``).

    Batches: ``{"signal": float32 [B, 8, 300] device units (au) at 200 Hz, "channel_ids": int64 [B, 8],
    "label": int64 [B] (motion - 1, 0..21), "subject": int64 [B] (1..5)}``.
    """

    dataset_name = "long-term sEMG armband"
    root_layout = "the subject folders sub1/ ... sub5/ with day1/D1M1T1.csv ... (the repository's data/ folder)"
    label_names = MOTION_NAMES

    def __init__(self, root: str, subjects: list[int] | None = None, days: list[int] | None = None,
                 window_seconds: float = 1.5, steps: list[dict] | None = None, modality: str = "semg200",
                 **common: Any) -> None:
        if window_seconds > SEGMENT_SAMPLES / SAMPLING_RATE + 1e-9:
            raise ConfigError(f"window_seconds is {window_seconds}; every file is one 1.5-s segment, so use at most "
                              "1.5 (the default: one window per file)")
        for name, values in (("subjects", subjects), ("days", days)):
            if values is not None and (not values or any(int(v) < 1 for v in values)):
                raise ConfigError(f"{name} is {values}; give positive numbers (e.g. [1, 2]) or null for all")
        if steps is not None:
            steps_with_iir(steps)  # bad steps fail at configuration time
        # the base validates steps with the shared step names only: hand it none and keep ours
        super().__init__(root, window_seconds=window_seconds, steps=None, modality=modality, **common)
        if self.spec.sampling_rate != SAMPLING_RATE:
            raise ConfigError(f"modality '{modality}' runs at {self.spec.sampling_rate:g} Hz; the armband records at "
                              f"{SAMPLING_RATE:g} Hz: use modality 'semg200' (upsampling would invent content)")
        self.steps = steps
        if not any(_SUBJECT_DIR.match(p.name) for p in self.root.iterdir()) and (self.root / "data" / "sub1").is_dir():
            self.root = self.root / "data"  # the repository's root was given
        self.subjects = None if subjects is None else sorted({int(s) for s in subjects})
        self.days = None if days is None else sorted({int(d) for d in days})
        self._template = None

    # ----------------------------------------------------------------------------------------- pipeline
    def default_pipeline(self) -> Pipeline:
        """:func:`segment_pipeline_steps`: the ``semg200`` defaults as short-segment IIR filters."""
        return Pipeline(self.spec, segment_pipeline_steps())

    def make_pipeline(self) -> Pipeline:
        if self.steps is not None:
            return Pipeline(self.spec, steps_with_iir(self.steps))
        return self.default_pipeline()

    # ----------------------------------------------------------------------------------------- files
    def find_recordings(self) -> list[RecordingInfo]:
        subject_dirs = {int(m.group(1)): p for p in self.root.iterdir()
                        if p.is_dir() and (m := _SUBJECT_DIR.match(p.name))}
        missing = sorted(set(self.subjects or []) - set(subject_dirs))
        if missing:
            raise DataError(f"no folder for subject(s) {missing} under '{self.root}' (found: "
                            f"{sorted(subject_dirs)}); check `subjects` and data.init_args.root")
        infos: list[RecordingInfo] = []
        for number in self.subjects if self.subjects is not None else sorted(subject_dirs):
            day_dirs = {int(m.group(1)): p for p in subject_dirs[number].iterdir()
                        if p.is_dir() and (m := _DAY_DIR.match(p.name))}
            for day in sorted(day_dirs):
                if self.days is not None and day not in self.days:
                    continue
                for path in sorted(day_dirs[day].iterdir()):
                    if not (path.is_file() and path.suffix.lower() == ".csv"):
                        continue
                    parsed = parse_name(path.name)
                    meta: dict[str, Any] = {"day": day}
                    columns = {"day": day}
                    if parsed is not None:
                        meta.update(file_day=parsed[0], motion=parsed[1], trial=parsed[2])
                        columns.update(motion=parsed[1], trial=parsed[2])
                    infos.append(RecordingInfo(path, f"sub{number}", number, meta, columns=columns))
        if self.days is not None and infos:
            found = {i.metadata["day"] for i in infos}
            absent = sorted(set(self.days) - found)
            if absent:
                warnings.warn(f"{self.dataset_name}: no day folder for day(s) {absent} under '{self.root}'",
                              UserWarning, stacklevel=2)
        return infos

    def load_windows(self, info: RecordingInfo, pipeline: Pipeline) -> list[WindowSet]:
        import mne

        meta = info.metadata
        if "motion" not in meta:
            raise DataError(f"file name {info.path.name!r} does not parse as D<day>M<motion>T<trial>.csv (the "
                            "label is in the name)")
        if meta["file_day"] != meta["day"]:
            raise DataError(f"file name says day {meta['file_day']} but it lies in folder day{meta['day']}")
        motion = int(meta["motion"])
        if not 1 <= motion <= N_MOTIONS:
            raise DataError(f"motion {motion} in the file name is outside the dataset's motions 1..{N_MOTIONS}")
        data = read_segment(info.path)
        if self._template is None:  # one RawArray built once (building one per file costs ~2 ms of 4)
            self._template = mne.io.RawArray(np.zeros((N_CHANNELS, SEGMENT_SAMPLES)),
                                             mne.create_info(list(CHANNELS), SAMPLING_RATE, "emg"), verbose="error")
        raw = self._template  # the pipeline works on a copy (Pipeline.run), so the template can carry each file
        raw._data = np.ascontiguousarray(data.T)  # device units as they are: no SI scaling for 'au'
        recording = self.preprocess(raw, info, pipeline)
        window_set = self.cut(recording, info, labels=[motion - 1])
        return [window_set]

    # ----------------------------------------------------------------------------------------- metadata
    def window_metadata(self, split: str) -> dict[str, np.ndarray]:
        """Per-window metadata of ``split`` (after :meth:`setup`), aligned with ``datasets[split]``:
        ``{"day": int64 [N], "motion": int64 [N] (1..22), "trial": int64 [N]}``."""
        table = self.window_table(split)
        return {key: table.get(key, np.zeros(0, np.int64)) for key in ("day", "motion", "trial")}


__all__ = ["CHANNELS", "DAY_PLACEMENT", "IIRBandPass", "IIRNotch", "LOCAL_STEPS", "MOTION_NAMES", "N_MOTIONS",
           "SAMPLING_RATE", "SEGMENT_SAMPLES", "SEMGArmbandDataModule", "download", "parse_name", "read_segment",
           "segment_pipeline_steps", "steps_with_iir"]
