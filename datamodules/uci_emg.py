"""UCI "EMG data for gestures" (UCI ML repository id 481; Lobov et al. 2018; Myo armband, 8 channels) as a
LightningDataModule (``neurorvq.datamodules.uci_emg``).

36 subjects, folders ``01`` ... ``36``, each with two text files, one per series of gestures::

    root/01/1_raw_data_13-12_22.03.16.txt   (series 1; the rest of the name is the recording's time and date)
    root/01/2_raw_data_14-19_22.03.16.txt   (series 2)
    ...

(the zip's top folder ``EMG_data_for_gestures-master/`` above them is found too). Every file is tab-separated
text: a header line ``time channel1 ... channel8 class``, then one line of 10 numbers per row: time [ms], the
eight channels, the class. Checked against public readers and a printed head of the data: the rows are logged
about every millisecond (times 1, 4, 5, 6, 7, ...) while the Myo delivers its EMG at 200 Hz, so a value is held
over several rows; the channel values have 5 decimals (-0.00004, 0.00002, ...): the Myo's int8 device units
x 1e-5 [I] (rest noise of a few units, as in EMG-EPN-612's int8 values).

* **Time base** [I]: the rows are put on a uniform ``grid_rate`` grid (default 200 Hz: every 5 ms from the first
  row's time) by holding, at each grid time, the last row logged at or before it (the logger's own zero-order
  hold): at 200 Hz the Myo's own stream, no interpolation and no content above its rate. ``grid_rate=1000``
  keeps the rows as logged (one per ms, each Myo value held ~5 times), the reading of readers that take the rows
  as 1-kHz samples; it still carries nothing above 100 Hz. Times must not decrease (a :class:`DataError` naming
  the file and line); the longest gap between rows is kept in ``summary["notes"]["max_gap_ms"]``.
* **Classes** (UCI description): 0 unmarked (always dropped), 1 hand at rest, 2 fist, 3 wrist flexion, 4 wrist
  extension, 5 radial deviation, 6 ulnar deviation, 7 extended palm (not performed by all subjects). ``classes=7``
  (default; TinyMyo's script keeps classes 1-7) gives labels 0..6 = classes 1..7; ``classes=6`` drops class 7
  (labels 0..5 = classes 1..6), as the "6 classes" of TinyMyo's paper and other benchmarks read it. Which one
  NeuroRVQ used is unknown.
* **Windows** [I]: cut every ``stride_seconds`` inside each run of constant class on the grid, never across a
  class change (runs shorter than a window give none, counted in the summary); defaults 1.0-s windows (200
  samples, 4 ``semg200`` patches) every 0.5 s: about the real time of TinyMyo's windows (its script takes the
  length and stride as arguments; its placeholder shape is 1000 rows, ~1 s of logged rows). The whole
  file is filtered first, so windows never see filter edges. Per-window column ``gesture`` (the UCI class 1..7).
* **Subjects** ``01`` ... ``36`` (ids 1..36); recording column ``series`` (1 or 2, the file name's first digit).
* **Split** (benchmarks.md §5.4, TinyMyo's subject-independent split): subjects 1-24 train, 25-30 val, 31-36 test,
  the default without ``split`` / ``val_subjects`` / ``test_subjects`` (subjects not loaded are simply absent);
  the same lists ship as ``neurorvq/splits/uci_emg.json``.
* **Channels** ``c1..c8`` (``channel<k>`` is ``c<k>``), the ``semg200`` vocabulary; **unit** ``au``: the stored
  values x ``scale`` (default 1e5: Myo device units).
* **Bad lines**: a line without 10 numbers (or with a non-finite one, or a class outside 0..7) is a
  :class:`DataError` naming the file and the line number (the file is skipped with a warning; ``strict=True``
  raises); ``malformed_lines='skip'`` drops such lines instead, listing them in ``summary["notes"]``.

Sampling rate (the EMG tokenizer decision, benchmarks.md §5): default modality ``semg200`` on the 200-Hz grid (no
resampling; the ``semg200`` default filters: notch 50/60 Hz, band-pass 20-95 Hz). The official EMG foundation
model's ``emg`` modality (1000 Hz, µV) needs, on the 200-Hz grid, a 5x upsampling the steps must ask for
(``{step: Resample, allow_upsample: true}``); without it the DataModule refuses at construction with the Resample
step's message naming both rates and that option. ``grid_rate=1000`` feeds it the logged rows instead, without
resampling. In a µV modality the numbers (values x ``scale``) are taken as µV [I].

Download: :func:`download` fetches the UCI zip. Citation: Lobov S., Krilova N., Kastalskiy I., Kazantsev V.,
Makarov V.A. Latent factors limiting the performance of sEMG-interfaces. Sensors 18(4):1122, 2018. Licence
CC BY 4.0 (UCI repository).
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from neurorvq.data.preprocess import DataError, Pipeline, Resample
from neurorvq.data.split_rules import SplitRule
from neurorvq.data.windows import RecordingDataModule, RecordingInfo, WindowSet
from neurorvq.datamodules.epn612 import check_myo_rate, raw_scale
from neurorvq.datamodules.semg_armband import steps_with_iir
from neurorvq.errors import ConfigError

SAMPLING_RATE = 200.0
"""Hz: the Myo's EMG rate, the default grid the rows are held on."""
GRID_RATES = (200.0, 1000.0)
"""Grids offered: the Myo's rate, or the logger's (one row per ms)."""
N_CHANNELS = 8
N_COLUMNS = 10
"""time, channel1..channel8, class."""
CHANNELS: tuple[str, ...] = tuple(f"c{k}" for k in range(1, N_CHANNELS + 1))
"""Vocabulary name of ``channel<k>``."""
CLASS_NAMES: dict[int, str] = {1: "hand at rest", 2: "fist", 3: "wrist flexion", 4: "wrist extension",
                               5: "radial deviation", 6: "ulnar deviation", 7: "extended palm"}
"""UCI class -> gesture (0 = unmarked, never a label)."""
SPLIT: dict[str, list[int]] = {"train": list(range(1, 25)), "val": list(range(25, 31)), "test": list(range(31, 37))}
"""The default subject split (benchmarks.md §5.4)."""
URL = "https://archive.ics.uci.edu/static/public/481/emg+data+for+gestures.zip"
MALFORMED = ("error", "skip")

_SUBJECT_DIR = re.compile(r"^(\d{2})$")
_FILE = re.compile(r"^(\d)_raw_data_.*\.txt$", re.IGNORECASE)


# ------------------------------------------------------------------------------------------------ files
def parse_line(text: str) -> np.ndarray | str:
    """The 10 numbers of a data line, or the reason it is malformed."""
    fields = text.split()
    if len(fields) != N_COLUMNS:
        return f"{len(fields)} fields; expected {N_COLUMNS} (time, channel1..channel8, class)"
    try:
        values = np.asarray([float(f) for f in fields])
    except ValueError:
        bad = next(f for f in fields if not _is_number(f))
        return f"{bad!r} is not a number"
    if not np.all(np.isfinite(values)):
        return "a value is not finite"
    if values[-1] != round(values[-1]) or not 0 <= values[-1] <= 7:
        return f"class {fields[-1]} is not one of 0..7"
    return values


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def read_file(path: str | Path, malformed: str = "error") -> tuple[np.ndarray, list[int]]:
    """``(rows float64 [N, 10], numbers of the lines dropped)`` of one text file (header skipped).

    A line without 10 numbers, a non-finite value or a class outside 0..7 is a :class:`DataError` naming the file
    and its line number (``malformed='skip'``: the line is dropped and its number returned); blank lines are
    ignored. A missing header line (the first line holds numbers) or decreasing times are errors too.
    """
    with open(path, encoding="utf-8", errors="replace") as f:
        header = f.readline()
    fields = header.split()
    if not fields:
        raise DataError(f"{path}: line 1 is empty; expected the header 'time channel1 ... channel8 class'")
    if _is_number(fields[0]):
        raise DataError(f"{path}: line 1 holds numbers, not the header 'time channel1 ... channel8 class'")
    rows, dropped = _fast_rows(path), []
    if rows is None:  # some line is malformed: find it (and its number)
        rows, dropped = _scan_rows(path, malformed)
    if not rows.size:
        raise DataError(f"{path}: no data line after the header")
    steps = np.diff(rows[:, 0])
    if (steps < 0).any():
        first = int(np.flatnonzero(steps < 0)[0]) + 1
        line = _line_of_row(path, first)
        raise DataError(f"{path}: line {line}: time {rows[first, 0]:g} ms is earlier than the line before "
                        f"({rows[first - 1, 0]:g} ms); times must not decrease")
    return rows, dropped


def _fast_rows(path: str | Path) -> np.ndarray | None:
    """All rows at once (``np.loadtxt``), or ``None`` when a line is malformed."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # an empty body: reported by the caller
            rows = np.loadtxt(path, skiprows=1, dtype=np.float64, ndmin=2)
    except ValueError:
        return None
    if rows.size and (rows.shape[1] != N_COLUMNS or not np.all(np.isfinite(rows))
                      or np.any((rows[:, -1] != np.round(rows[:, -1])) | (rows[:, -1] < 0) | (rows[:, -1] > 7))):
        return None
    return rows.reshape(-1, N_COLUMNS) if rows.size else np.zeros((0, N_COLUMNS))


def _scan_rows(path: str | Path, malformed: str) -> tuple[np.ndarray, list[int]]:
    rows, dropped = [], []
    with open(path, encoding="utf-8", errors="replace") as f:
        for number, text in enumerate(f, 1):
            if number == 1 or not text.strip():
                continue
            values = parse_line(text)
            if isinstance(values, str):
                if malformed == "error":
                    raise DataError(f"{path}: line {number}: {values} ({text.strip()[:60]!r}); fix or remove the "
                                    "line, or set data.init_args.malformed_lines=skip")
                dropped.append(number)
                continue
            rows.append(values)
    return (np.stack(rows) if rows else np.zeros((0, N_COLUMNS))), dropped


def _line_of_row(path: str | Path, row: int) -> int:
    """Line number (1-based, header = 1) of data row ``row`` (0-based; blank and malformed lines skipped)."""
    seen = -1
    with open(path, encoding="utf-8", errors="replace") as f:
        for number, text in enumerate(f, 1):
            if number > 1 and text.strip() and not isinstance(parse_line(text), str):
                seen += 1
                if seen == row:
                    return number
    return -1


def hold_on_grid(time_ms: np.ndarray, rate: float = SAMPLING_RATE) -> np.ndarray:
    """Row index held at each time of a uniform ``rate`` grid from the first row's time to the last: the last row
    logged at or before it (``int64 [n]``)."""
    step = 1000.0 / rate
    grid = time_ms[0] + np.arange(int(np.floor((time_ms[-1] - time_ms[0]) / step)) + 1) * step
    return np.searchsorted(time_ms, grid + 1e-9, side="right") - 1


def class_runs(classes: np.ndarray) -> list[tuple[int, int, int]]:
    """Runs of constant class: ``(start, stop, class)`` with ``stop`` exclusive."""
    if not classes.size:
        return []
    change = np.flatnonzero(np.diff(classes) != 0) + 1
    bounds = np.concatenate([[0], change, [classes.size]])
    return [(int(a), int(b), int(classes[a])) for a, b in zip(bounds[:-1], bounds[1:])]


def download(root: str | Path) -> Path:
    """Download the UCI zip (needs internet, ~40 MB), unpack it under ``root`` and return the folder holding
    ``01/`` ... ``36/``, the ``root`` of :class:`UCIEMGDataModule`."""
    import urllib.request
    import zipfile

    root = Path(root).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    archive = root / "emg+data+for+gestures.zip"
    if not archive.exists():
        urllib.request.urlretrieve(URL, archive)  # noqa: S310 - a fixed https URL
    with zipfile.ZipFile(archive) as zf:
        zf.extractall(root)
    for inner in sorted(root.rglob("*.zip")):  # a zip inside the zip (UCI packs some datasets twice)
        if inner != archive:
            with zipfile.ZipFile(inner) as zf:
                zf.extractall(inner.parent)
    found = sorted(p.parent for p in root.rglob("01") if p.is_dir() and any(p.glob("*_raw_data_*.txt")))
    if not found:
        raise DataError(f"no 01/*_raw_data_*.txt in {archive} unpacked under {root}")
    return found[0]


# ------------------------------------------------------------------------------------------------ DataModule
class UCIEMGDataModule(RecordingDataModule):
    """Windows of the UCI "EMG data for gestures" files (see the module docstring for layout, time base, classes,
    windows and split).

    Args:
        root: the folder holding ``01/`` ... ``36/`` (or the folder the zip unpacked into).
        subjects: subject numbers to load (``[1, 25, 31]``); ``None`` = every folder.
        classes: 7 (classes 1..7 -> labels 0..6) or 6 (class 7, extended palm, dropped).
        grid_rate: the uniform grid [Hz] the rows are held on: 200 (default, the Myo's rate) or 1000 (the rows as
            logged).
        window_seconds / stride_seconds: window length and step [s] inside each run of constant class (defaults
            1.0 / 0.5); the window a whole number of the modality's patches.
        scale: multiplier of the stored values (default 1e5: Myo device units).
        malformed_lines: ``'error'`` (a bad line makes the file unusable, naming it and the line) or ``'skip'``.
        modality: ``semg200`` (default, 200 Hz); another rate needs a Resample step in ``steps`` that allows it.
        steps: preprocessing steps (shared ones and ``IIRNotch`` / ``IIRBandPass``); ``None`` = the modality's
            default (``semg200``: notch 50/60 Hz, band-pass 20-95 Hz).
        other arguments: see :class:`~neurorvq.data.windows.RecordingDataModule`.

    Batches: ``{"signal": float32 [B, 8, T] (au at the modality's rate, T = 200 by default), "channel_ids":
    int64 [B, 8], "label": int64 [B] (class - 1), "subject": int64 [B] (1..36)}``.
    """

    dataset_name = "UCI EMG data for gestures"
    root_layout = "the subject folders 01/ ... 36/ with 1_raw_data_*.txt and 2_raw_data_*.txt"
    window_columns = ("gesture",)

    def __init__(self, root: str, subjects: list[int] | None = None, classes: int = 7, grid_rate: float = 200.0,
                 window_seconds: float = 1.0, stride_seconds: float | None = 0.5, scale: float = 1e5,
                 malformed_lines: str = "error", steps: list[dict] | None = None, modality: str = "semg200",
                 **common: Any) -> None:
        if float(grid_rate) not in GRID_RATES:
            raise ConfigError(f"grid_rate is {grid_rate}; use 200 (the Myo's rate) or 1000 (the rows as logged, "
                              "one per ms)")
        if int(classes) not in (6, 7):
            raise ConfigError(f"classes is {classes}; use 7 (classes 1-7) or 6 (class 7, extended palm, dropped: not "
                              "performed by every subject)")
        if subjects is not None and (not subjects or any(not 1 <= int(s) <= 99 for s in subjects)):
            raise ConfigError(f"subjects is {subjects}; give subject numbers (1..36) or null for all")
        if malformed_lines not in MALFORMED:
            raise ConfigError(f"malformed_lines is {malformed_lines!r}; use 'error' or 'skip'")
        if not float(scale) > 0:
            raise ConfigError(f"scale is {scale}; give a positive multiplier of the stored values (1e5 = device "
                              "units)")
        if stride_seconds is not None:
            stride = float(stride_seconds) * SAMPLING_RATE
            if not stride > 0 or abs(stride - round(stride)) > 1e-6:
                raise ConfigError(f"stride_seconds is {stride_seconds}; give a positive multiple of one sample "
                                  f"(1/{SAMPLING_RATE:g} s), e.g. 0.5")
        if steps is not None:
            steps_with_iir(steps)  # bad steps fail at configuration time
        super().__init__(root, window_seconds=window_seconds, stride_seconds=stride_seconds, steps=None,
                         modality=modality, **common)
        self.steps = steps
        self.subjects = None if subjects is None else sorted({int(s) for s in subjects})
        self.classes = int(classes)
        self.grid_rate = float(grid_rate)
        self.scale = float(scale)
        self.malformed_lines = malformed_lines
        self.label_names = tuple(CLASS_NAMES[c] for c in range(1, self.classes + 1))
        if not any(_SUBJECT_DIR.match(p.name) for p in self.root.iterdir() if p.is_dir()):
            inner = sorted(p.parent for p in self.root.glob("*/01") if p.is_dir())
            if inner:
                self.root = inner[0]  # the folder the zip unpacked into was given
        check_myo_rate(self.make_pipeline(), self.dataset_name, rate=self.grid_rate)

    # ----------------------------------------------------------------------------------------- pipeline
    def default_pipeline(self) -> Pipeline:
        """The modality's default steps (``semg200``: notch, band-pass 20-95 Hz, FIR on the ~1-min file, then its
        Resample: none on the 200-Hz grid, down from the 1000-Hz one); a modality above the grid's rate gets a
        ``Resample`` first that refuses to upsample (give the steps yourself)."""
        pipeline = Pipeline.default(self.spec)
        if self.spec.sampling_rate > self.grid_rate:
            steps = [s for s in pipeline.steps if not isinstance(s, Resample)]
            return Pipeline(self.spec, [Resample()] + steps)  # the modality's filters need its rate
        return pipeline

    def make_pipeline(self) -> Pipeline:
        if self.steps is not None:
            return Pipeline(self.spec, steps_with_iir(self.steps))
        return self.default_pipeline()

    # ----------------------------------------------------------------------------------------- files
    def find_recordings(self) -> list[RecordingInfo]:
        folders = {int(m.group(1)): p for p in self.root.iterdir() if p.is_dir() and (m := _SUBJECT_DIR.match(p.name))}
        missing = sorted(set(self.subjects or []) - set(folders))
        if missing:
            raise DataError(f"no folder for subject(s) {missing} under '{self.root}' (found: {sorted(folders)}); check "
                            "`subjects` and data.init_args.root")
        infos = []
        for number in self.subjects if self.subjects is not None else sorted(folders):
            for path in sorted(folders[number].iterdir()):
                if not (path.is_file() and path.suffix.lower() == ".txt"):
                    continue
                m = _FILE.match(path.name)
                if m is None:
                    self.find_skipped[str(path)] = "name is not <series>_raw_data_<...>.txt"
                    continue
                infos.append(RecordingInfo(path, folders[number].name, number, {},
                                           columns={"series": int(m.group(1))}))
        return infos

    def load_windows(self, info: RecordingInfo, pipeline: Pipeline) -> list[WindowSet]:
        import mne

        rows, dropped = read_file(info.path, self.malformed_lines)
        if dropped:
            self.note("malformed_lines", info.path.name, dropped)
        time_ms = rows[:, 0]
        if time_ms.size > 1:
            self.note("max_gap_ms", info.path.name, float(np.diff(time_ms).max()))
        held = hold_on_grid(time_ms, self.grid_rate)
        emg = rows[held, 1:1 + N_CHANNELS].T
        classes = rows[held, -1].astype(np.int64)
        raw = mne.io.RawArray(emg * raw_scale(self.spec, self.scale),
                              mne.create_info(list(CHANNELS), self.grid_rate, "emg"), verbose="error")
        recording = self.preprocess(raw, info, pipeline)
        ratio = self.spec.sampling_rate / self.grid_rate
        n = recording.data.shape[1]
        window = self.window_samples
        stride = window if self.stride_seconds is None else int(round(self.stride_seconds * self.spec.sampling_rate))
        starts, labels, gestures, short = [], [], [], 0
        for a, b, cls in class_runs(classes):
            if not 1 <= cls <= self.classes:
                continue  # 0 unmarked; 7 with classes=6
            a, b = int(round(a * ratio)), min(int(round(b * ratio)), n)
            grid = np.arange(a, b - window + 1, stride, dtype=np.int64)
            if not grid.size:
                short += 1
                continue
            starts.append(grid)
            labels += [cls - 1] * grid.size
            gestures += [cls] * grid.size
        self.note_rejected(f"class run shorter than one {self.window_seconds:g}-s window", short)
        if not starts:
            raise DataError(f"no run of a class 1..{self.classes} lasting {self.window_seconds:g} s")
        return [self.cut(recording, info, starts=np.concatenate(starts), labels=labels,
                         columns={"gesture": gestures})]

    # ----------------------------------------------------------------------------------------- splits
    def default_split(self) -> SplitRule | None:
        """Subjects 1-24 train, 25-30 val, 31-36 test (absent subjects ignored); ``None`` (the base's subject
        split) when ``val_subjects`` / ``test_subjects`` are given."""
        if self.val_subjects is not None or self.test_subjects is not None:
            return None
        return SplitRule(by="subject", unknown="ignore", **{part: list(v) for part, v in SPLIT.items()})

    def window_metadata(self, split: str) -> dict[str, np.ndarray]:
        """Per-window columns of ``split`` (after :meth:`setup`), aligned with ``datasets[split]``:
        ``series`` and ``gesture`` (UCI class 1..7), int64 [N]."""
        table = self.window_table(split)
        return {key: table[key] for key in ("series", "gesture") if key in table}


__all__ = ["CHANNELS", "CLASS_NAMES", "GRID_RATES", "SAMPLING_RATE", "SPLIT", "UCIEMGDataModule", "URL", "class_runs",
           "download", "hold_on_grid", "parse_line", "read_file"]
