"""Sleep-EDF Database Expanded (PhysioNet) as a LightningDataModule (``neurorvq.datamodules.sleep_edf``).

Each night is a pair of EDF files: the polysomnogram ``SC4ssNE0-PSG.edf`` (sleep-cassette; ``ST7ssN...`` in
sleep-telemetry) and its hypnogram ``SC4ssNEC-Hypnogram.edf`` (EDF+ annotations only). They are paired on the
first 6 characters of the name (``SC4001``): same folder first, else anywhere under ``root``. ``ss`` is the
subject and ``N`` the night, so both nights of a subject fall in the same split: the subject name is the first
5 characters (``SC400``); its id is ``ss`` (sleep-cassette) or ``100 + ss`` (sleep-telemetry).

Labels: each hypnogram annotation (``'Sleep stage W'``, ``'1'``, ``'2'``, ``'3'``, ``'4'``, ``'R'``) covers a whole
number of 30-s epochs. ``classes=5`` (default, AASM-style) gives W=0, N1=1, N2=2, N3=3 (R&K stages 3 and 4
merged), REM=4; ``classes=6`` keeps the R&K stages W=0, S1=1, S2=2, S3=3, S4=4, REM=5. Epochs marked
``'Sleep stage ?'`` or ``'Movement time'`` are dropped (counted in the summary). Long wake periods are trimmed
to ``trim_wake_minutes`` (default 30) before the first and after the last sleep epoch, as is usual for this
dataset; ``None`` keeps every epoch. Any other annotation makes the night unparsable (skipped).

Channels, a documented choice: the EEG of Sleep-EDF are two *bipolar* derivations, ``EEG Fpz-Cz`` and
``EEG Pz-Oz``, not single electrodes. By default they are fed to the tokenizer as the vocabulary's ``fpz`` and
``pz`` (``channel_map={"EEG Fpz-Cz": "fpz", "EEG Pz-Oz": "pz"}``), i.e. each takes the spatial embedding of
its first (active) electrode. Change ``channel_map`` to decide otherwise (e.g. add ``{"EOG horizontal":
"eog"}``); channels left out of it (EOG, EMG, respiration, temperature, event marker) are dropped.

Studies: ``study='SC'`` keeps the sleep-cassette nights (78 subjects aged 25-101, files ``SC4ssN...``; the EEG
benchmark's "Sleep" task, benchmarks.md §3.4), ``'ST'`` the sleep-telemetry ones (``ST7ssN...``); ``None`` (default)
both. :func:`download` fetches sleep-cassette nights from PhysioNet with MNE (``mne.datasets.sleep_physionet.age``).
Licence: Open Data Commons Attribution 1.0 (PhysioNet); cite Kemp et al., IEEE Trans. Biomed. Eng. 47(9), 2000 and
Goldberger et al., Circulation 101(23), 2000.

Sampling: the EEG is recorded at 100 Hz and resampled to the EEG spec's 200 Hz. This is 2x upsampling, beyond
:class:`~neurorvq.data.preprocess.Resample`'s default limit of 1.5x, so the default pipeline sets
``Resample(allow_upsample=True)`` on purpose: the signal has no content above 50 Hz (the band-pass stops at
44.5 Hz anyway). Windows: one per 30-s epoch by default; a ``window_seconds`` dividing 30 cuts each epoch into
that many windows, all with the epoch's label.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from neurorvq.data.channel_map import load_channel_map
from neurorvq.data.preprocess import DataError, PickChannels, Pipeline, Resample
from neurorvq.data.windows import RecordingDataModule, RecordingInfo, WindowSet
from neurorvq.errors import ConfigError

EPOCH_SECONDS = 30.0
STAGES = {"Sleep stage W": "W", "Sleep stage 1": "1", "Sleep stage 2": "2", "Sleep stage 3": "3",
          "Sleep stage 4": "4", "Sleep stage R": "R"}
"""Hypnogram annotation -> R&K stage."""
UNSCORED = {"Sleep stage ?": "unscored epoch (?)", "Movement time": "movement time"}
"""Annotations whose epochs are dropped, with the summary's reason."""
CLASS_NAMES: dict[int, tuple[str, ...]] = {5: ("W", "N1", "N2", "N3", "REM"), 6: ("W", "S1", "S2", "S3", "S4", "REM")}
STAGE_LABELS: dict[int, dict[str, int]] = {5: {"W": 0, "1": 1, "2": 2, "3": 3, "4": 3, "R": 4},
                                           6: {"W": 0, "1": 1, "2": 2, "3": 3, "4": 4, "R": 5}}
DEFAULT_CHANNEL_MAP: dict[str, str] = {"EEG Fpz-Cz": "fpz", "EEG Pz-Oz": "pz"}
_NAME = re.compile(r"^(S[CT])(\d)(\d{2})(\d)", re.IGNORECASE)
STUDIES = ("SC", "ST")
"""Sleep-cassette and sleep-telemetry file prefixes."""


def download(root: str | Path, subjects: Sequence[int], recordings: Sequence[int] = (1, 2)) -> Path:
    """Download the sleep-cassette nights ``recordings`` (1, 2) of ``subjects`` (0-82; 39, 68, 69, 78, 79 do not
    exist, 13, 36 and 52 have one night) from PhysioNet with ``mne.datasets.sleep_physionet.age.fetch_data`` (needs
    internet; a night MNE reports missing is skipped with its warning) and return the folder to pass as ``root``."""
    from mne.datasets.sleep_physionet import age

    folder = Path(root).expanduser()
    folder.mkdir(parents=True, exist_ok=True)
    age.fetch_data([int(s) for s in subjects], recording=[int(r) for r in recordings], path=str(folder),
                   on_missing="warn")
    return folder


def hypnogram_epochs(annotations: Iterable[tuple[float, float, str]], classes: int = 5,
                     epoch_seconds: float = EPOCH_SECONDS) -> tuple[np.ndarray, np.ndarray, Counter]:
    """30-s epochs of a hypnogram: ``(onsets [s] float64 [E], labels int64 [E], dropped)``.

    ``annotations``: ``(onset s, duration s, description)`` (e.g. ``zip(a.onset, a.duration, a.description)``
    of ``mne.read_annotations``). ``dropped`` counts the epochs of ``'Sleep stage ?'`` / ``'Movement time'`` by
    reason. Raises :class:`DataError` on an unknown description or a duration that is not a whole number of
    epochs.
    """
    if classes not in STAGE_LABELS:
        raise ConfigError(f"classes is {classes}; use 5 (W, N1, N2, N3, REM) or 6 (R&K: W, S1-S4, REM)")
    table = STAGE_LABELS[classes]
    onsets: list[float] = []
    labels: list[int] = []
    dropped: Counter = Counter()
    for onset, duration, description in annotations:
        description = str(description).strip()
        n = float(duration) / epoch_seconds
        if abs(n - round(n)) > 1e-3:
            raise DataError(f"hypnogram annotation {description!r} at {onset:g} s lasts {duration:g} s, not a whole "
                            f"number of {epoch_seconds:g}-s epochs")
        n = int(round(n))
        if description in UNSCORED:
            dropped[UNSCORED[description]] += n
            continue
        if description not in STAGES:
            raise DataError(f"unparsable hypnogram annotation {description!r} at {onset:g} s (expected one of "
                            f"{sorted(STAGES) + sorted(UNSCORED)})")
        onsets.extend(float(onset) + k * epoch_seconds for k in range(n))
        labels.extend([table[STAGES[description]]] * n)
    return np.asarray(onsets, dtype=np.float64), np.asarray(labels, dtype=np.int64), dropped


def trim_wake(onsets: np.ndarray, labels: np.ndarray, minutes: float | None,
              epoch_seconds: float = EPOCH_SECONDS) -> np.ndarray:
    """Boolean mask of the epochs within ``minutes`` before the first and after the last non-wake epoch (label
    0 is wake); everything is kept when ``minutes`` is ``None`` or the night has no sleep."""
    keep = np.ones(len(onsets), dtype=bool)
    sleep = labels != 0
    if minutes is None or not sleep.any():
        return keep
    first = onsets[sleep].min() - 60.0 * minutes
    last_end = onsets[sleep].max() + epoch_seconds + 60.0 * minutes
    return (onsets >= first - 1e-6) & (onsets + epoch_seconds <= last_end + 1e-6)


def night_of(name: str) -> tuple[str, int, int] | None:
    """``(subject name, subject id, night)`` from a Sleep-EDF file name (``'SC4001E0-PSG.edf'`` -> ``('SC400', 0,
    1)``; telemetry ``ST7...`` ids are ``100 + ss``), or ``None`` for another name."""
    m = _NAME.match(name)
    if not m:
        return None
    study, subject, night = m.group(1).upper(), int(m.group(3)), int(m.group(4))
    return name[:5].upper(), (subject if study == "SC" else 100 + subject), night


class SleepEDFDataModule(RecordingDataModule):
    """Sleep-staging windows from Sleep-EDF Expanded PSG/hypnogram pairs (see the module docstring).

    Args:
        root: folder holding ``*-PSG.edf`` and ``*-Hypnogram.edf`` files (searched recursively, e.g.
            ``sleep-cassette/``).
        classes: 5 (W, N1, N2, N3, REM; stages 3 and 4 merged) or 6 (R&K W, S1, S2, S3, S4, REM).
        trim_wake_minutes: wake kept before the first / after the last sleep epoch [min]; ``None`` keeps all.
        channel_map: recording channel -> vocabulary name, the explicit choice for the bipolar EEG
            derivations (default ``{"EEG Fpz-Cz": "fpz", "EEG Pz-Oz": "pz"}``), as a mapping or the path of a
            CSV/TSV/JSON file of ``old,new`` pairs (:func:`~neurorvq.data.channel_map.load_channel_map`: a target
            outside the vocabulary or two channels on one electrode is a ``ConfigError`` at construction);
            applied to the pipeline's ``PickChannels`` step (also to one given in ``steps`` without its own
            ``explicit``).
        window_seconds: 30 (one window per epoch) or a divisor of 30.
        study: ``'SC'`` (sleep-cassette), ``'ST'`` (sleep-telemetry) or ``None`` (both; files named outside the
            scheme are kept only with ``None``).
        other arguments: see :class:`~neurorvq.data.windows.RecordingDataModule`.

    Batches: ``{"signal": float32 [B, C, T] uV at 200 Hz (C = 2 by default: fpz, pz), "channel_ids": int64
    [B, C], "label": int64 [B], "subject": int64 [B]}``.
    """

    dataset_name = "Sleep-EDF"
    root_layout = "Sleep-EDF PSG/hypnogram pairs such as SC4001E0-PSG.edf and SC4001EC-Hypnogram.edf"

    def __init__(self, root: str, classes: int = 5, trim_wake_minutes: float | None = 30.0,
                 channel_map: dict[str, str] | str | None = None, window_seconds: float = 30.0,
                 study: str | None = None, **common: Any) -> None:
        if study is not None and str(study).upper() not in STUDIES:
            raise ConfigError(f"study is {study!r}; use 'SC' (sleep-cassette), 'ST' (sleep-telemetry) or null (both)")
        if classes not in CLASS_NAMES:
            raise ConfigError(f"classes is {classes}; use 5 (W, N1, N2, N3, REM) or 6 (R&K: W, S1-S4, REM)")
        per_epoch = EPOCH_SECONDS / float(window_seconds) if window_seconds and window_seconds > 0 else 0
        if per_epoch < 1 or abs(per_epoch - round(per_epoch)) > 1e-6:
            raise ConfigError(f"window_seconds is {window_seconds}; use 30 (one window per sleep epoch) or a divisor "
                              "of 30 such as 10 or 5")
        if trim_wake_minutes is not None and trim_wake_minutes < 0:
            raise ConfigError(f"trim_wake_minutes is {trim_wake_minutes}; give minutes >= 0, or null to keep all wake")
        super().__init__(root, window_seconds=window_seconds, stride_seconds=None, modality="eeg", **common)
        self.classes = int(classes)
        self.study = None if study is None else str(study).upper()
        self.trim_wake_minutes = trim_wake_minutes
        self.channel_map = load_channel_map(DEFAULT_CHANNEL_MAP if channel_map is None else channel_map, self.spec)
        self.windows_per_epoch = int(round(per_epoch))
        self.label_names = CLASS_NAMES[self.classes]

    def default_pipeline(self) -> Pipeline:
        """The EEG default pipeline with upsampling 100 -> 200 Hz allowed (see the module docstring)."""
        pipeline = Pipeline.default(self.spec)
        pipeline.steps = [replace(s, allow_upsample=True) if isinstance(s, Resample) else s for s in pipeline.steps]
        return pipeline

    def make_pipeline(self) -> Pipeline:
        pipeline = super().make_pipeline()
        pipeline.steps = [replace(s, explicit=dict(self.channel_map)) if isinstance(s, PickChannels) and not s.explicit
                          else s for s in pipeline.steps]
        return pipeline

    def find_recordings(self) -> list[RecordingInfo]:
        hypnograms: dict[str, list[Path]] = {}
        for path in sorted(self.root.rglob("*")):
            if path.name.lower().endswith("-hypnogram.edf") and path.is_file():
                hypnograms.setdefault(path.name[:6].upper(), []).append(path)
        infos = []
        for psg in sorted(self.root.rglob("*")):
            if not (psg.name.lower().endswith("-psg.edf") and psg.is_file()):
                continue
            night = night_of(psg.name)
            if self.study is not None and not psg.name.upper().startswith(self.study):
                continue
            subject, subject_id = (night[0], night[1]) if night else (psg.name.split("-")[0], None)
            candidates = hypnograms.get(psg.name[:6].upper(), [])
            same_folder = [h for h in candidates if h.parent == psg.parent]
            chosen = same_folder or candidates
            infos.append(RecordingInfo(psg, subject, subject_id,
                                       {"hypnogram": chosen[0] if len(chosen) == 1 else None,
                                        "candidates": chosen}, columns={"night": night[2]} if night else {}))
        if any(i.subject_id is None for i in infos):  # names outside the SC/ST scheme: number by name instead
            infos = [replace(i, subject_id=None) for i in infos]
        return infos

    def load_windows(self, info: RecordingInfo, pipeline: Pipeline) -> list[WindowSet]:
        import mne

        hypnogram = info.metadata.get("hypnogram")
        if hypnogram is None:
            found = info.metadata.get("candidates") or []
            if found:
                raise DataError(f"several hypnograms match {info.path.name[:6]}: {[str(p) for p in found]}")
            raise DataError(f"missing hypnogram: no {info.path.name[:6]}*-Hypnogram.edf under {self.root}")
        try:
            annotations = mne.read_annotations(str(hypnogram))
        except Exception as exc:
            raise DataError(f"hypnogram {hypnogram} is unreadable ({type(exc).__name__}: {exc})") from exc
        raw = self.read_raw(info.path, mne.io.read_raw_edf)
        shift = 0.0
        meas_date = raw.info.get("meas_date")
        if annotations.orig_time is not None and meas_date is not None:
            shift = (annotations.orig_time - meas_date).total_seconds()
        onsets, labels, dropped = hypnogram_epochs(
            zip(annotations.onset, annotations.duration, annotations.description), self.classes)
        for reason, count in dropped.items():
            self.note_rejected(reason, count * self.windows_per_epoch)
        onsets = onsets + shift
        duration = raw.n_times / raw.info["sfreq"]
        inside = (onsets >= 0) & (onsets + EPOCH_SECONDS <= duration + 1e-6)
        self.note_rejected("epoch outside the recording", int((~inside).sum()) * self.windows_per_epoch)
        onsets, labels = onsets[inside], labels[inside]
        keep = trim_wake(onsets, labels, self.trim_wake_minutes)
        self.note_rejected("wake trimmed", int((~keep).sum()) * self.windows_per_epoch)
        onsets, labels = onsets[keep], labels[keep]
        if not len(onsets):
            raise DataError(f"no scored sleep epoch of {hypnogram.name} lies inside the recording")
        # Preprocess only the span that is used (plus one epoch of margin for the filters' edges).
        tmin = max(0.0, float(onsets.min()) - EPOCH_SECONDS)
        tmax = min(duration, float(onsets.max()) + 2 * EPOCH_SECONDS)
        raw = raw.copy().crop(tmin, tmax, include_tmax=False)
        recording = self.preprocess(raw, info, pipeline)
        sfreq = recording.sfreq
        sub = np.arange(self.windows_per_epoch) * self.window_samples
        starts = (np.round((onsets - tmin) * sfreq).astype(np.int64)[:, None] + sub[None, :]).reshape(-1)
        window_labels = np.repeat(labels, self.windows_per_epoch)
        return [self.cut(recording, info, starts=starts, labels=window_labels, offset=int(round(tmin * sfreq)))]


__all__ = ["CLASS_NAMES", "DEFAULT_CHANNEL_MAP", "STUDIES", "SleepEDFDataModule", "STAGE_LABELS", "download",
           "hypnogram_epochs", "night_of", "trim_wake"]
