"""Preprocessing as a list of named, configurable steps, with MNE doing the signal work.

A :class:`Pipeline` turns an ``mne.io.BaseRaw`` (physical SI units, as MNE reads files) into a
:class:`Recording`: the picked channels renamed to the modality's vocabulary, filtered, resampled to the
spec's rate and scaled once to the spec's unit. :func:`cut_windows` then cuts fixed windows and rejects bad
ones, counting each reason. The pipeline's :meth:`Pipeline.config` is recorded with the data it produced.

Default order (the official EEG example, method.md §2.3): pick -> notch -> band-pass -> clip -> (common average
reference) -> resample -> scale.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from neurorvq.data.channels import map_channels, no_channel_message
from neurorvq.errors import ConfigError, NeuroRVQError
from neurorvq.registry import ModalitySpec

# Factor from SI (what MNE returns) to each supported unit.
UNIT_FACTORS = {"V": 1.0, "mV": 1e3, "uV": 1e6, "µV": 1e6, "nV": 1e9,
                "au": 1.0}  # arbitrary device units (e.g. EMG armbands): passed through unscaled


class DataError(NeuroRVQError, ValueError):
    """A recording that cannot be used (names the file and the reason)."""


def unit_factor(unit: str) -> float:
    if unit not in UNIT_FACTORS:
        raise ConfigError(f"unit '{unit}' is not one of {sorted(UNIT_FACTORS)}")
    return UNIT_FACTORS[unit]


@dataclass
class Recording:
    """A preprocessed recording: ``data [channels, samples]`` float32 in ``unit`` at ``sfreq`` Hz."""

    data: np.ndarray
    channels: list[str]
    sfreq: float
    unit: str
    source: str
    dropped_channels: dict[str, str] = field(default_factory=dict)
    annotations: list[tuple[float, float, str]] = field(default_factory=list)  # (onset s, duration s, label)


# ------------------------------------------------------------------------------------------------ steps
@dataclass
class Step:
    """Base of a preprocessing step: ``apply(raw, spec, report) -> raw``; ``report`` collects facts."""

    def apply(self, raw, spec: ModalitySpec, report: dict[str, Any]):  # pragma: no cover - interface
        raise NotImplementedError

    def config(self) -> dict[str, Any]:
        return {"step": type(self).__name__, **asdict(self)}


@dataclass
class PickChannels(Step):
    """Keep channels that map onto the vocabulary (see :mod:`neurorvq.data.channels`), renamed to it.

    ``explicit``: per-dataset choices for names such as bipolar derivations (``{"EEG Fpz-Cz": "fpz"}``), or a
    user's renaming (the loaders' ``channel_map`` option, :mod:`neurorvq.data.channel_map`). A recording none of
    whose channels maps is a :class:`DataError` listing a few of them and the ``channel_map`` option.
    """

    explicit: dict[str, str] = field(default_factory=dict)
    aliases: dict[str, str] | None = None

    def apply(self, raw, spec, report):
        mapping = map_channels(raw.ch_names, spec, explicit=self.explicit, aliases=self.aliases)
        report.setdefault("dropped_channels", {}).update(mapping.dropped)
        if not mapping.picks:
            raise DataError(no_channel_message(spec, mapping.dropped, self.explicit))
        raw = raw.pick([raw.ch_names[i] for i in mapping.picks])
        raw.rename_channels(dict(zip(raw.ch_names, mapping.names)))
        return raw


@dataclass
class Notch(Step):
    """Notch filters at ``freqs`` (Hz) and their harmonics below Nyquist (zero-phase FIR, MNE)."""

    freqs: tuple[float, ...] = (50.0,)
    harmonics: bool = True

    def apply(self, raw, spec, report):
        nyquist = raw.info["sfreq"] / 2
        freqs = []
        for f in self.freqs:
            k = 1
            while k * f < nyquist - 1.0 and (k == 1 or self.harmonics):
                freqs.append(k * f)
                k += 1
        if freqs:
            raw.notch_filter(sorted(set(freqs)), picks="all", verbose="error")
        return raw


@dataclass
class BandPass(Step):
    """Band-pass ``low``-``high`` Hz (zero-phase FIR, MNE); ``high`` is capped just below Nyquist."""

    low: float | None = 0.5
    high: float | None = 45.0

    def apply(self, raw, spec, report):
        nyquist = raw.info["sfreq"] / 2
        high = None if self.high is None else min(self.high, nyquist - 0.5)
        raw.filter(self.low, high, picks="all", verbose="error")
        return raw


@dataclass
class Clip(Step):
    """Clip to ``±limit`` in the spec's unit (the official EEG recipe clips at ±500 µV)."""

    limit: float = 500.0

    def apply(self, raw, spec, report):
        limit_si = self.limit / unit_factor(spec.unit)
        data = raw.get_data()
        report["clipped_fraction"] = float(np.mean(np.abs(data) > limit_si))
        raw._data = np.clip(data, -limit_si, limit_si)
        return raw


@dataclass
class CommonAverageReference(Step):
    """Subtract the mean over channels at every sample (the benchmark loaders' CAR, method.md §4.4)."""

    def apply(self, raw, spec, report):
        data = raw.get_data()
        raw._data = data - data.mean(axis=0, keepdims=True)
        return raw


@dataclass
class Resample(Step):
    """Resample to the spec's rate (MNE, FFT-based). Upsampling by more than ``max_upsample`` is an error
    naming both rates unless ``allow_upsample`` (a recording far below the rate carries no content there)."""

    max_upsample: float = 1.5
    allow_upsample: bool = False

    def apply(self, raw, spec, report):
        sfreq = raw.info["sfreq"]
        if sfreq == spec.sampling_rate:
            return raw
        if spec.sampling_rate / sfreq > self.max_upsample and not self.allow_upsample:
            raise DataError(f"recorded at {sfreq:g} Hz, far below the '{spec.name}' rate of {spec.sampling_rate:g} Hz: "
                            "upsampling would invent content; use a modality registered for this rate, or set "
                            "Resample(allow_upsample=True) in the recipe to upsample on purpose")
        raw.resample(spec.sampling_rate, verbose="error")
        return raw


DEFAULT_STEPS: dict[str, list[Step]] = {
    # official example (method.md §2.3): notch 50/60 Hz, band-pass 0.5-44.5 Hz, clip ±500 µV, resample
    "eeg": [PickChannels(), Notch((50.0, 60.0), harmonics=False), BandPass(0.5, 44.5), Clip(500.0), Resample()],
    "ecg": [PickChannels(), Notch((50.0, 60.0), harmonics=False), BandPass(0.5, 95.0), Resample()],
    "emg": [PickChannels(), Notch((50.0, 60.0)), BandPass(20.0, 450.0), Resample()],
    "semg200": [PickChannels(), Notch((50.0, 60.0), harmonics=False), BandPass(20.0, 95.0), Resample()],
}


@dataclass
class Pipeline:
    """An ordered list of steps for ``spec``; ``run(raw, source)`` -> :class:`Recording`."""

    spec: ModalitySpec
    steps: Sequence[Step]

    @classmethod
    def default(cls, spec: ModalitySpec) -> "Pipeline":
        steps = DEFAULT_STEPS.get(spec.name, [PickChannels(), Resample()])
        return cls(spec, [type(s)(**asdict(s)) for s in steps])

    def config(self) -> dict[str, Any]:
        return {"modality": self.spec.name, "sampling_rate": self.spec.sampling_rate, "unit": self.spec.unit,
                "steps": [s.config() for s in self.steps]}

    def run(self, raw, source: str) -> Recording:
        """Apply every step to a copy of ``raw`` (loaded into memory) and scale once to the spec's unit."""
        report: dict[str, Any] = {}
        steps = list(self.steps)
        raw = raw.copy()
        try:
            if steps and isinstance(steps[0], PickChannels):  # pick before loading: unused channels are never read
                raw = steps.pop(0).apply(raw, self.spec, report)
            raw.load_data(verbose="error")
            for step in steps:
                raw = step.apply(raw, self.spec, report)
        except DataError as exc:
            raise DataError(f"{source}: {exc}") from exc
        if raw.info["sfreq"] != self.spec.sampling_rate:
            raise DataError(f"{source}: at {raw.info['sfreq']:g} Hz after preprocessing, not the spec's "
                            f"{self.spec.sampling_rate:g} Hz; add a Resample step")
        data = (raw.get_data() * unit_factor(self.spec.unit)).astype(np.float32)
        # onsets relative to the first sample of the data (MNE's are relative to meas_date when it is set)
        offset = raw.first_samp / raw.info["sfreq"] if raw.annotations.orig_time is not None else 0.0
        annotations = [(float(a["onset"]) - offset, float(a["duration"]), str(a["description"]))
                       for a in raw.annotations]
        return Recording(data, list(raw.ch_names), float(raw.info["sfreq"]), self.spec.unit, source,
                         report.get("dropped_channels", {}), annotations)


# ------------------------------------------------------------------------------------------------ windows
@dataclass
class RejectionReport:
    """Counts of windows kept and rejected, by reason."""

    kept: int = 0
    rejected: Counter = field(default_factory=Counter)

    def merge(self, other: "RejectionReport") -> None:
        self.kept += other.kept
        self.rejected.update(other.rejected)

    def summary(self) -> str:
        reasons = ", ".join(f"{k}: {v}" for k, v in sorted(self.rejected.items())) or "none"
        return f"{self.kept} windows kept; rejected: {reasons}"


def window_starts(n_samples: int, window: int, stride: int) -> np.ndarray:
    """Start samples of every full window of ``window`` samples every ``stride`` samples."""
    if window <= 0 or stride <= 0:
        raise ConfigError(f"window ({window}) and stride ({stride}) must be positive sample counts")
    if n_samples < window:
        return np.zeros(0, dtype=np.int64)
    return np.arange(0, n_samples - window + 1, stride, dtype=np.int64)


def reject_reason(window: np.ndarray, max_amplitude: float | None, flat_std: float) -> str | None:
    """Why a ``[channels, samples]`` window is unusable (``None`` if it is fine)."""
    if not np.isfinite(window).all():
        return "nan"
    if (window.std(axis=-1) <= flat_std).any():
        return "flat"
    if max_amplitude is not None and np.abs(window).max() > max_amplitude:
        return "amplitude"
    return None


def cut_windows(recording: Recording, window_seconds: float, stride_seconds: float | None = None,
                max_amplitude: float | None = None, flat_std: float = 1e-6,
                starts: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, RejectionReport]:
    """Cut ``recording`` into windows ``[W, C, T]`` (and their start samples), rejecting NaN, flat
    (per-channel std <= ``flat_std`` in the spec unit) and over-amplitude (> ``max_amplitude``) windows.

    ``starts`` (sample indices) overrides the regular grid, e.g. for event-locked epochs.
    """
    window = int(round(window_seconds * recording.sfreq))
    stride = window if stride_seconds is None else int(round(stride_seconds * recording.sfreq))
    if starts is None:
        starts = window_starts(recording.data.shape[1], window, stride)
    report = RejectionReport()
    kept_windows, kept_starts = [], []
    for start in starts:
        if start < 0 or start + window > recording.data.shape[1]:
            report.rejected["outside recording"] += 1
            continue
        w = recording.data[:, start:start + window]
        reason = reject_reason(w, max_amplitude, flat_std)
        if reason:
            report.rejected[reason] += 1
            continue
        kept_windows.append(w)
        kept_starts.append(start)
    report.kept = len(kept_windows)
    shape = (0, recording.data.shape[0], window)
    windows = np.stack(kept_windows) if kept_windows else np.zeros(shape, dtype=np.float32)
    return windows, np.asarray(kept_starts, dtype=np.int64), report


def steps_from_config(items: Sequence[Mapping[str, Any]]) -> list[Step]:
    """Steps from ``[{"step": "BandPass", "low": 1.0, "high": 40.0}, ...]`` (a recipe's ``steps`` list)."""
    known = {cls.__name__: cls for cls in (PickChannels, Notch, BandPass, Clip, CommonAverageReference, Resample)}
    steps = []
    for item in items:
        item = dict(item)
        name = item.pop("step", None)
        if name not in known:
            raise ConfigError(f"unknown preprocessing step {name!r}; valid: {sorted(known)}")
        try:
            steps.append(known[name](**item))
        except TypeError as exc:
            raise ConfigError(f"preprocessing step {name}: {exc}") from exc
    return steps
