"""Whether data, a tokenizer and a foundation model fit together, decided by the fields of their signals.

Names are for messages only: two signals are compatible when their sampling rates and units agree, the patch
lengths are equal, every channel the data can carry is in the model's vocabulary, and a window is a whole number
of patches within the model's temporal table. Every mismatching field is reported at once, with both values.

Channel ids: data batches carry ids into the *data's* vocabulary (``spec.channels``). When that vocabulary is a
prefix of the model's (the same list, or the model's with names appended) the ids are the model's rows as they
are; otherwise :func:`channel_rows` gives the translation table (``rows[data_id] -> model_id``) that the tasks
apply to every batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from neurorvq.errors import ConfigError

FIELDS = ("sampling_rate", "unit", "patch_length", "channels", "window")
"""Every field :func:`mismatches` can compare."""
SIGNAL_FIELDS = ("sampling_rate", "unit", "patch_length")
"""The fields that make two models read the same signal (a tokenizer and an FM, a checkpoint and a modality)."""

_UNIT_SPELLINGS = {"µv": "uV", "μv": "uV", "uv": "uV", "microvolt": "uV", "microvolts": "uV", "mv": "mV",
                   "millivolt": "mV", "millivolts": "mV", "v": "V", "volt": "V", "volts": "V", "nv": "nV", "au": "au",
                   "a.u.": "au"}


def canonical_unit(unit: str) -> str:
    """``unit`` in one spelling (``"µV"``, ``"μV"``, ``"uv"`` -> ``"uV"``); unknown units are returned stripped."""
    text = str(unit).strip()
    return _UNIT_SPELLINGS.get(text.lower(), text)


class IncompatibleSignal(ConfigError):
    """Data, tokenizer or FM whose signals differ; the message names every differing field with both values."""


@dataclass(frozen=True)
class Signal:
    """The signal fields of one side of a comparison.

    name: messages only. sampling_rate [Hz]; unit; patch_length [samples]; channels: the vocabulary (names the
    side's channel ids index); case_sensitive: how names match; max_patches: patches per channel a model can
    index (``None`` for data); used: the channels the data actually carries, when known (else every name of
    ``channels`` counts); window_samples: the data's window length, when fixed.
    """

    name: str
    sampling_rate: float
    unit: str
    patch_length: int
    channels: tuple[str, ...]
    case_sensitive: bool = False
    max_patches: int | None = None
    used: frozenset[str] | None = None
    window_samples: int | None = None

    @classmethod
    def of(cls, obj: Any) -> "Signal | None":
        """The signal of a model (its ``contract``), a :class:`~neurorvq.tokenizers.SignalContract`, a
        ``ModalitySpec``, or a DataModule (its ``spec``, plus ``window_samples`` or ``window_seconds`` and
        ``channel_names_used()`` when it has them); ``None`` for an object without a spec."""
        if isinstance(obj, Signal):
            return obj
        contract = getattr(obj, "contract", None)
        if contract is not None and not callable(contract):
            obj = contract
        if hasattr(obj, "max_patches") and hasattr(obj, "channel_offset"):  # a SignalContract
            return cls(obj.name, float(obj.sampling_rate), obj.unit, int(obj.patch_length), tuple(obj.channels),
                       bool(obj.case_sensitive), int(obj.max_patches))
        spec = obj if hasattr(obj, "sampling_rate") and hasattr(obj, "channels") and not hasattr(obj, "spec") \
            else getattr(obj, "spec", None)
        if spec is None:
            return None
        window = getattr(obj, "window_samples", None)
        if window is None and getattr(obj, "window_seconds", None) is not None:
            window = round(float(obj.window_seconds) * float(spec.sampling_rate))
        used = obj.channel_names_used() if callable(getattr(obj, "channel_names_used", None)) else None
        return cls(spec.name, float(spec.sampling_rate), spec.unit, int(spec.patch_length), tuple(spec.channels),
                   False, None, frozenset(used) if used is not None else None,
                   int(window) if isinstance(window, (int, float)) else None)

    def key(self, name: str) -> str:
        return name if self.case_sensitive else name.lower()


@dataclass(frozen=True)
class Mismatch:
    """One differing field: its name, the data's and the model's values, and a sentence saying both."""

    field: str
    data: Any
    model: Any
    text: str


def mismatches(data: Any, model: Any, fields: Sequence[str] = FIELDS) -> list[Mismatch]:
    """The fields of ``fields`` in which ``data`` (a DataModule, spec or signal) does not fit ``model`` (a model,
    contract or spec), in the order of :data:`FIELDS`."""
    d, m = Signal.of(data), Signal.of(model)
    if d is None or m is None:
        raise ConfigError(f"{type(data if d is None else model).__name__} has no signal spec to compare")
    unknown = sorted(set(fields) - set(FIELDS))
    if unknown:
        raise ValueError(f"unknown compatibility field(s) {unknown}; valid: {FIELDS}")
    found: list[Mismatch] = []
    if "sampling_rate" in fields and not math.isclose(d.sampling_rate, m.sampling_rate, rel_tol=1e-9, abs_tol=1e-6):
        found.append(Mismatch("sampling_rate", d.sampling_rate, m.sampling_rate,
                              f"sampling_rate {d.sampling_rate:g} Hz vs {m.sampling_rate:g} Hz"))
    if "unit" in fields and canonical_unit(d.unit) != canonical_unit(m.unit):
        found.append(Mismatch("unit", d.unit, m.unit, f"unit {d.unit} vs {m.unit}"))
    if "patch_length" in fields and d.patch_length != m.patch_length:
        found.append(Mismatch("patch_length", d.patch_length, m.patch_length,
                              f"patch_length={d.patch_length} vs patch_length={m.patch_length} samples"))
    if "channels" in fields:
        missing = missing_channels(d, m)
        if missing:
            shown = ", ".join(missing[:8]) + (f" and {len(missing) - 8} more" if len(missing) > 8 else "")
            found.append(Mismatch("channels", missing, m.channels,
                                  f"channel(s) {shown} of the data are not in the model's {len(m.channels)}-name "
                                  "vocabulary"))
    if "window" in fields and d.window_samples is not None and m.max_patches is not None and d.patch_length:
        patches, rest = divmod(d.window_samples, d.patch_length)
        if rest:
            found.append(Mismatch("window", d.window_samples, d.patch_length,
                                  f"windows of {d.window_samples} samples are not a whole number of "
                                  f"{d.patch_length}-sample patches"))
        elif patches > m.max_patches:
            found.append(Mismatch("window", patches, m.max_patches,
                                  f"windows of {patches} patches per channel exceed the model's max_patches="
                                  f"{m.max_patches} ({m.max_patches * m.patch_length / m.sampling_rate:g} s): "
                                  "use shorter windows"))
    return found


def check_compatible(data: Any, model: Any, *, headline: str, fields: Sequence[str] = FIELDS) -> None:
    """Raise :class:`IncompatibleSignal` (``"<headline>: <field> a vs b; ..."``) when :func:`mismatches` finds any."""
    found = mismatches(data, model, fields)
    if found:
        raise IncompatibleSignal(f"{headline}: " + "; ".join(m.text for m in found))


def missing_channels(data: Any, model: Any) -> list[str]:
    """The data's channels (those it uses, when known) that the model's vocabulary lacks, in the data's order."""
    d, m = Signal.of(data), Signal.of(model)
    names: Iterable[str] = d.channels if d.used is None else [c for c in d.channels if c in d.used] + \
        sorted(set(d.used) - set(d.channels))
    vocabulary = {m.key(c) for c in m.channels}
    return [c for c in names if m.key(c) not in vocabulary]


def channel_rows(data: Any, model: Any) -> list[int] | None:
    """``rows[data_id] = model_id`` for every name of the data's vocabulary that the model knows (``-1`` for one it
    does not), or ``None`` when the data's vocabulary is a prefix of the model's (ids pass through unchanged)."""
    d, m = Signal.of(data), Signal.of(model)
    model_keys = [m.key(c) for c in m.channels]
    data_keys = [m.key(c) for c in d.channels]
    if model_keys[:len(data_keys)] == data_keys:
        return None
    index = {k: i for i, k in enumerate(model_keys)}
    return [index.get(k, -1) for k in data_keys]
