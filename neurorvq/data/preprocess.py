"""Preprocessing as a list of named, configurable steps, with MNE doing the signal work.

A :class:`Pipeline` turns an ``mne.io.BaseRaw`` (physical SI units, as MNE reads files) into a
:class:`Recording`: the picked channels renamed to the modality's vocabulary, filtered, resampled to the
spec's rate and scaled once to the spec's unit. :func:`cut_windows` then cuts fixed windows and rejects bad
ones, counting each reason. The pipeline's :meth:`Pipeline.config` is recorded with the data it produced.

Default order (the official EEG example, method.md §2.3): pick -> notch -> band-pass -> clip -> (common average
reference) -> resample -> scale. A :class:`Clip` limit holds on the output: steps after the clip (resampling,
filtering, re-referencing) can push samples past it again (FFT resampling rings up to ~2x the limit), so the
scaled output is clipped once more at the last clip's limit.

Samples the file itself marks as invalid (:class:`RangeCheck`, run on the data as read, before any filter):
for EDF/BDF/GDF files read by MNE, samples outside the header's physical range (stored digital values outside
``[digital_min, digital_max]``) and stretches saturated at a rail (the physical minimum or maximum held for at
least ``saturation_seconds``) become :class:`SignalFault` spans of :attr:`Recording.faults`; :func:`cut_windows`
rejects the windows they touch (reasons ``FAULT_OUT_OF_RANGE`` and ``FAULT_SATURATED``, counted like the other
rejection reasons) or, with ``RangeCheck(on_fault="keep")`` in the steps, keeps them with a
:class:`SignalFaultWarning`. The check runs on every pipeline (with its defaults when the steps do not list it);
readers that declare no range (``RawArray``, WFDB, CSV) give no faults.
"""

from __future__ import annotations

import math
import warnings
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from neurorvq.data.channels import map_channels, no_channel_message
from neurorvq.errors import ConfigError, NeuroRVQError
from neurorvq.registry import ModalitySpec

# Factor from SI (what MNE returns) to each supported unit.
UNIT_FACTORS = {"V": 1.0, "mV": 1e3, "uV": 1e6, "µV": 1e6, "nV": 1e9,
                "au": 1.0}  # arbitrary device units (e.g. EMG armbands): passed through unscaled


class DataError(NeuroRVQError, ValueError):
    """A recording that cannot be used (names the file and the reason)."""


class SignalFaultWarning(UserWarning):
    """Windows with samples outside the file's declared range or saturated at a rail were kept on purpose
    (``RangeCheck(on_fault="keep")``); the message names the file, the reasons and the counts."""


FAULT_OUT_OF_RANGE = "outside declared range"
"""Rejection reason: the window holds samples outside the header's physical (digital) range."""
FAULT_SATURATED = "saturated at rail"
"""Rejection reason: the window holds a stretch saturated at the header's physical minimum or maximum."""


def unit_factor(unit: str) -> float:
    if unit not in UNIT_FACTORS:
        raise ConfigError(f"unit '{unit}' is not one of {sorted(UNIT_FACTORS)}")
    return UNIT_FACTORS[unit]


@dataclass
class SignalFault:
    """A stretch of one channel that the file marks as invalid, found on the data as read (before filtering).

    ``onset`` and ``duration`` [s] are relative to the first sample of :attr:`Recording.data` (widened by
    ``RangeCheck.margin_seconds``); ``reason`` is :data:`FAULT_OUT_OF_RANGE` or :data:`FAULT_SATURATED`;
    ``samples`` counts the faulty samples in it at the file's own rate (runs less than 50 ms apart are merged).
    """

    channel: str
    onset: float
    duration: float
    reason: str
    samples: int


@dataclass
class Recording:
    """A preprocessed recording: ``data [channels, samples]`` float32 in ``unit`` at ``sfreq`` Hz.

    ``faults``: stretches the file marks as invalid (:class:`RangeCheck`); ``fault_action``: what
    :func:`cut_windows` does with windows touching them, ``'reject'`` or ``'keep'`` (with a warning)."""

    data: np.ndarray
    channels: list[str]
    sfreq: float
    unit: str
    source: str
    dropped_channels: dict[str, str] = field(default_factory=dict)
    annotations: list[tuple[float, float, str]] = field(default_factory=list)  # (onset s, duration s, label)
    faults: list[SignalFault] = field(default_factory=list)
    fault_action: str = "reject"

    def fault_counts(self) -> dict[str, int]:
        """``{"samples outside declared range": n, "saturated stretches": k}`` over :attr:`faults` (zeros omitted)."""
        out = {"samples outside declared range": sum(f.samples for f in self.faults if f.reason == FAULT_OUT_OF_RANGE),
               "saturated stretches": sum(1 for f in self.faults if f.reason == FAULT_SATURATED)}
        return {k: v for k, v in out.items() if v}


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
    """Clip to ``±limit`` in the spec's unit (the official EEG recipe clips at ±500 µV). The limit also holds on
    the pipeline's output: :meth:`Pipeline.run` clips the scaled result again at the last clip's limit, since
    later steps (resampling above all) can overshoot it."""

    limit: float = 500.0

    def apply(self, raw, spec, report):
        limit_si = self.limit / unit_factor(spec.unit)
        data = raw.get_data()
        report["clipped_fraction"] = float(np.mean(np.abs(data) > limit_si))
        raw._data = np.clip(data, -limit_si, limit_si)
        return raw


@dataclass
class DropChannels(Step):
    """Drop the channels named in ``names`` (matched case-insensitively on the recording's own names, e.g. the
    High-Gamma benchmark's 50 half-position electrodes and its EOG/EMG channels), so that a later
    :class:`CommonAverageReference` averages only over the channels kept. Names the recording lacks are ignored
    (several datasets share one list); dropping every channel is a :class:`DataError`."""

    names: tuple[str, ...] = ()
    reason: str = "dropped by the DropChannels step"

    def apply(self, raw, spec, report):
        wanted = {str(n).strip().lower() for n in self.names}
        drop = [ch for ch in raw.ch_names if ch.strip().lower() in wanted]
        if len(drop) == len(raw.ch_names):
            raise DataError(f"DropChannels drops every channel of the recording ({', '.join(drop[:5])}, ...); "
                            "list fewer names")
        report.setdefault("dropped_channels", {}).update({ch: self.reason for ch in drop})
        if drop:
            raw = raw.drop_channels(drop)
        return raw


@dataclass
class CommonAverageReference(Step):
    """Subtract the mean over channels at every sample (the benchmark loaders' CAR, method.md §4.4), over the
    channels present at this step: put it after :class:`DropChannels` and before :class:`PickChannels` to average
    over a selection wider than the vocabulary (the EEG benchmark's order, benchmarks.md §2.1)."""

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


def declared_range(raw) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """``(low, high, step)`` per channel of ``raw`` (``float64 [C]`` each, SI units as MNE returns data, e.g. V):
    the header's physical minimum and maximum and one digital step, for an EDF/BDF/GDF file read by
    ``mne.io.read_raw_edf/bdf/gdf``; NaN for a channel whose range is undefined (equal bounds) or that is a
    stim channel. ``None`` for any other reader (``RawArray``, FIF, ...), which declares no range.

    MNE has no public API for the header ranges, so this reads the reader's ``raw._raw_extras`` (per-channel
    ``physical_min/max``, ``digital_min/max`` and ``units``, indexed like the file's channels) and
    ``raw._read_picks`` (the file channel of each current row, kept through ``pick`` and ``rename``). Anything
    unexpected there gives ``None`` (no check) rather than an error.
    """
    extras, picks = getattr(raw, "_raw_extras", None), getattr(raw, "_read_picks", None)
    if not extras or len(extras) != 1 or not isinstance(extras[0], dict) or picks is None or len(picks) != 1:
        return None
    ex = extras[0]
    if any(k not in ex for k in ("physical_min", "physical_max", "digital_min", "digital_max", "units")):
        return None
    idx = np.asarray(picks[0], dtype=np.int64)
    try:
        pmin, pmax, dmin, dmax, units = (np.asarray(ex[k], dtype=np.float64)[idx] for k in
                                         ("physical_min", "physical_max", "digital_min", "digital_max", "units"))
    except (IndexError, TypeError, ValueError):
        return None
    if pmin.shape != (len(raw.ch_names),):
        return None
    with np.errstate(divide="ignore", invalid="ignore"):
        step = np.abs((pmax - pmin) / (dmax - dmin) * units)
    low, high = np.minimum(pmin, pmax) * np.abs(units), np.maximum(pmin, pmax) * np.abs(units)
    unknown = ~np.isfinite(step) | (step == 0) | ~np.isfinite(low) | ~np.isfinite(high)
    unknown |= np.isin(idx, np.asarray(ex.get("stim_channel_idxs", []), dtype=np.int64))
    low[unknown] = high[unknown] = step[unknown] = np.nan
    return low, high, step


def _runs(mask: np.ndarray, merge_gap: int) -> tuple[np.ndarray, np.ndarray]:
    """``(starts, stops)`` of the runs of True in a 1-d ``mask``, runs at most ``merge_gap`` samples apart merged."""
    edges = np.diff(mask.astype(np.int8), prepend=0, append=0)
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    if len(starts) > 1:
        keep = np.concatenate([[True], starts[1:] - stops[:-1] > merge_gap])
        starts, stops = starts[keep], np.concatenate([stops[:-1][keep[1:]], stops[-1:]])
    return starts, stops


def find_faults(data: np.ndarray, sfreq: float, channels: Sequence[str], low: np.ndarray, high: np.ndarray,
                step: np.ndarray, saturation_seconds: float = 0.025, margin_seconds: float = 0.0) -> list[SignalFault]:
    """Stretches of ``data`` (``[C, N]``, the file's samples in the units of ``low``/``high``/``step``, ``[C]``
    each, from :func:`declared_range`) outside ``[low, high]`` or saturated at ``low`` or ``high``.

    Values are quantised to digital steps, so a sample counts as outside the range when it is more than half a
    step beyond a bound, and as at a rail when it is within half a step of it. A saturated stretch is a run of
    at least ``max(2, round(saturation_seconds x sfreq))`` consecutive samples at the same rail (at 160 Hz and
    the default 25 ms: 4 samples); single samples at a rail are left alone. Channels with a NaN range are not
    checked. Runs of one reason less than 50 ms apart are merged; each span is widened by ``margin_seconds``
    on both sides (for filter ringing around it).
    """
    faults: list[SignalFault] = []
    n = data.shape[1]
    min_run = max(2, int(round(saturation_seconds * sfreq)))
    gap = max(1, int(round(0.05 * sfreq)))
    for c, name in enumerate(channels):
        if not np.isfinite(step[c]):
            continue
        row, half = data[c], step[c] / 2
        found = {FAULT_OUT_OF_RANGE: (row < low[c] - half) | (row > high[c] + half)}
        for rail in (np.abs(row - low[c]) <= half, np.abs(row - high[c]) <= half):
            for a, b in zip(*_runs(rail, 0)):
                if b - a >= min_run:
                    found.setdefault(FAULT_SATURATED, np.zeros(n, dtype=bool))[a:b] = True
        for reason, mask in found.items():
            if not mask.any():
                continue
            counts = np.concatenate([[0], np.cumsum(mask)])
            for a, b in zip(*_runs(mask, gap)):
                onset = max(0.0, a / sfreq - margin_seconds)
                end = min(n / sfreq, b / sfreq + margin_seconds)
                faults.append(SignalFault(str(name), onset, end - onset, reason, int(counts[b] - counts[a])))
    return faults


@dataclass
class RangeCheck(Step):
    """Find samples the file marks as invalid: outside the header's physical range, or saturated at a rail
    (:func:`declared_range`, :func:`find_faults`). :meth:`Pipeline.run` always runs it on the data as read,
    before the other steps, wherever it is listed (and with these defaults when it is not listed): list it only
    to change a setting.

    on_fault: ``'reject'`` the windows touching a fault (counted by reason in the summary) or ``'keep'`` them
        with a :class:`SignalFaultWarning` naming the file and the counts.
    saturation_seconds: shortest run at a rail counted as saturation [s] (at least 2 samples).
    margin_seconds: widen each fault by this much on both sides [s] (filters spread a fault's energy).
    """

    on_fault: str = "reject"
    saturation_seconds: float = 0.025
    margin_seconds: float = 0.0

    def __post_init__(self) -> None:
        if self.on_fault not in ("reject", "keep"):
            raise ConfigError(f"RangeCheck on_fault is {self.on_fault!r}; use 'reject' or 'keep'")
        if not self.saturation_seconds > 0 or not self.margin_seconds >= 0:
            raise ConfigError(f"RangeCheck saturation_seconds ({self.saturation_seconds}) must be > 0 and "
                              f"margin_seconds ({self.margin_seconds}) >= 0")

    def apply(self, raw, spec, report):
        ranges = declared_range(raw)
        if ranges is not None:
            report["faults"] = find_faults(raw.get_data(), float(raw.info["sfreq"]), raw.ch_names, *ranges,
                                           saturation_seconds=self.saturation_seconds,
                                           margin_seconds=self.margin_seconds)
        return raw


def _mne_call(call: Callable[[], Any], step: str) -> Any:
    """``call()`` with MNE's errors on a recording's content (``ValueError``, ``RuntimeError``, e.g. a filter
    longer than the data) turned into a :class:`DataError` naming the step: a data problem, skipped like one."""
    try:
        return call()
    except (ValueError, RuntimeError) as exc:
        if isinstance(exc, DataError):
            raise
        raise DataError(f"{step} failed ({type(exc).__name__}: {exc})") from exc


def early_drops(steps: Sequence[Step]) -> list["DropChannels"]:
    """The :class:`DropChannels` steps before the first :class:`CommonAverageReference` (the only step that mixes
    channels): :meth:`Pipeline.run` applies them before loading the samples, so dropped channels are never read,
    resampled or filtered (the result is the same)."""
    early = []
    for step in steps:
        if isinstance(step, CommonAverageReference):
            break
        if isinstance(step, DropChannels):
            early.append(step)
    return early


@dataclass
class Pipeline:
    """An ordered list of steps for ``spec``; ``run(raw, source)`` -> :class:`Recording`."""

    spec: ModalitySpec
    steps: Sequence[Step]

    @classmethod
    def default(cls, spec: ModalitySpec) -> "Pipeline":
        """The modality's declared default steps (``spec.preprocessing``)."""
        return cls(spec, steps_from_config(spec.preprocessing))

    def config(self) -> dict[str, Any]:
        return {"modality": self.spec.name, "sampling_rate": self.spec.sampling_rate, "unit": self.spec.unit,
                "steps": [s.config() for s in self.steps]}

    def run(self, raw, source: str) -> Recording:
        """Apply every step to a copy of ``raw`` (loaded into memory) and scale once to the spec's unit.

        :class:`RangeCheck` (the listed one, else the default) runs first on the loaded data; the output is
        clipped again at the last :class:`Clip` step's limit."""
        report: dict[str, Any] = {}
        check = next((s for s in reversed(self.steps) if isinstance(s, RangeCheck)), None) or RangeCheck()
        steps = [s for s in self.steps if not isinstance(s, RangeCheck)]
        clip = next((s for s in reversed(steps) if isinstance(s, Clip)), None)
        raw = raw.copy()
        try:
            if steps and isinstance(steps[0], PickChannels):  # pick before loading: unused channels are never read
                raw = steps.pop(0).apply(raw, self.spec, report)
            for step in early_drops(steps):  # dropping commutes with the per-channel steps before a reference
                raw = step.apply(raw, self.spec, report)
                steps.remove(step)
            raw = _mne_call(lambda: raw.load_data(verbose="error"), "reading the samples")
            raw = _mne_call(lambda: check.apply(raw, self.spec, report), "RangeCheck")
            for step in steps:
                raw = _mne_call(lambda: step.apply(raw, self.spec, report), type(step).__name__)
        except DataError as exc:
            raise DataError(f"{source}: {exc}") from exc
        if raw.info["sfreq"] != self.spec.sampling_rate:
            raise DataError(f"{source}: at {raw.info['sfreq']:g} Hz after preprocessing, not the spec's "
                            f"{self.spec.sampling_rate:g} Hz; add a Resample step")
        data = (raw.get_data() * unit_factor(self.spec.unit)).astype(np.float32)
        if clip is not None:  # resampling after the clip overshoots it (the official order); the limit holds here
            np.clip(data, -clip.limit, clip.limit, out=data)
        # onsets relative to the first sample of the data (MNE's are relative to meas_date when it is set)
        offset = raw.first_samp / raw.info["sfreq"] if raw.annotations.orig_time is not None else 0.0
        annotations = [(float(a["onset"]) - offset, float(a["duration"]), str(a["description"]))
                       for a in raw.annotations]
        return Recording(data, list(raw.ch_names), float(raw.info["sfreq"]), self.spec.unit, source,
                         report.get("dropped_channels", {}), annotations, faults=report.get("faults", []),
                         fault_action=check.on_fault)


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


def _fault_sums(recording: Recording) -> dict[str, np.ndarray]:
    """Per fault reason, the cumulative count ``int64 [N + 1]`` of samples (at ``recording.sfreq``) covered by a
    fault, so a window ``[s, e)`` touches one iff ``sums[e] - sums[s] > 0``."""
    n, out = recording.data.shape[1], {}
    for reason in (FAULT_OUT_OF_RANGE, FAULT_SATURATED):
        spans = [f for f in recording.faults if f.reason == reason]
        if not spans:
            continue
        covered = np.zeros(n, dtype=np.int64)
        for f in spans:  # [floor(onset), ceil(end)) at the output rate: a fault covers every sample it touches
            a = max(0, math.floor(f.onset * recording.sfreq + 1e-9))
            b = min(n, math.ceil((f.onset + f.duration) * recording.sfreq - 1e-9))
            covered[a:b] = 1
        out[reason] = np.concatenate([[0], np.cumsum(covered)])
    return out


def cut_windows(recording: Recording, window_seconds: float, stride_seconds: float | None = None,
                max_amplitude: float | None = None, flat_std: float = 1e-6,
                starts: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, RejectionReport]:
    """Cut ``recording`` into windows ``[W, C, T]`` (and their start samples), rejecting windows that touch a
    fault of :attr:`Recording.faults` (reasons :data:`FAULT_OUT_OF_RANGE`, then :data:`FAULT_SATURATED`; kept
    with a :class:`SignalFaultWarning` when ``recording.fault_action == 'keep'``), then NaN, flat (per-channel
    std <= ``flat_std`` in the spec unit) and over-amplitude (> ``max_amplitude``, checked on these final
    windows, after resampling) windows.

    ``starts`` (sample indices) overrides the regular grid, e.g. for event-locked epochs.
    """
    window = int(round(window_seconds * recording.sfreq))
    stride = window if stride_seconds is None else int(round(stride_seconds * recording.sfreq))
    if starts is None:
        starts = window_starts(recording.data.shape[1], window, stride)
    report = RejectionReport()
    fault_sums = _fault_sums(recording) if recording.faults else {}
    kept_with_faults: Counter = Counter()
    kept_windows, kept_starts = [], []
    for start in starts:
        if start < 0 or start + window > recording.data.shape[1]:
            report.rejected["outside recording"] += 1
            continue
        fault = next((r for r, cs in fault_sums.items() if cs[start + window] - cs[start] > 0), None)
        if fault is not None and recording.fault_action != "keep":
            report.rejected[fault] += 1
            continue
        w = recording.data[:, start:start + window]
        reason = reject_reason(w, max_amplitude, flat_std)
        if reason:
            report.rejected[reason] += 1
            continue
        if fault is not None:
            kept_with_faults[fault] += 1
        kept_windows.append(w)
        kept_starts.append(start)
    report.kept = len(kept_windows)
    if kept_with_faults:
        windows_by = ", ".join(f"{k}: {v}" for k, v in sorted(kept_with_faults.items()))
        samples_by = ", ".join(f"{k}: {v}" for k, v in recording.fault_counts().items())
        warnings.warn(f"{recording.source}: kept {sum(kept_with_faults.values())} windows holding samples the file "
                      f"marks as invalid ({windows_by}; in the recording: {samples_by}) because of "
                      "RangeCheck(on_fault='keep'); use on_fault='reject' to leave them out", SignalFaultWarning,
                      stacklevel=2)
    shape = (0, recording.data.shape[0], window)
    windows = np.stack(kept_windows) if kept_windows else np.zeros(shape, dtype=np.float32)
    return windows, np.asarray(kept_starts, dtype=np.int64), report


def steps_from_config(items: Sequence[Mapping[str, Any]]) -> list[Step]:
    """Steps from ``[{"step": "BandPass", "low": 1.0, "high": 40.0}, ...]`` (a recipe's ``steps`` list)."""
    known = {cls.__name__: cls for cls in (PickChannels, DropChannels, Notch, BandPass, Clip, CommonAverageReference,
                                           Resample, RangeCheck)}
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
