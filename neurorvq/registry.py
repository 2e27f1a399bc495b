"""The modality registry.

A :class:`~neurorvq.modality.ModalitySpec` describes a kind of biosignal (sampling rate, patch length, channel
vocabulary, unit, default preprocessing) and the default architecture of each tokenizer family for it.
Modalities are data, not code paths: EEG, ECG, EMG and low-rate sEMG ship registered (``neurorvq.modalities``),
third-party packages add theirs through the
``neurorvq.modalities`` entry-point group (an entry point names a ``ModalitySpec`` or a callable
returning one), and a spec saved to a file (:meth:`ModalitySpec.save`, JSON or YAML) is registered by naming
the file wherever a modality name is expected (``get_modality("ppg.json")``, a recipe's ``modality:``).
"""

from __future__ import annotations

import os
import threading
from importlib import import_module, metadata
from typing import Any, Iterable, Mapping, Sequence

from neurorvq.errors import ConfigError, InputError
from neurorvq.families.neurorvq import NeuroRVQConfig, TemporalBranch  # re-exported: their old home
from neurorvq.modality import SPEC_FILE_SUFFIXES, ModalitySpec  # noqa: F401 (re-exported)
from neurorvq.vocabulary import decode_channel_name, decode_channel_names

ENTRY_POINT_GROUP = "neurorvq.modalities"
_BUILTIN_MODULES = ("neurorvq.modalities.eeg", "neurorvq.modalities.ecg", "neurorvq.modalities.emg",
                    "neurorvq.modalities.semg200")
_SUFFIX_TEXT = ".json, .yaml or .yml"
# ------------------------------------------------------------------------------------------ registry
_REGISTRY: dict[str, ModalitySpec] = {}
_LOCK = threading.RLock()
_discovered = False


def register_modality(spec: ModalitySpec, *, overwrite: bool = False) -> ModalitySpec:
    """Add ``spec`` to the registry under ``spec.name``.

    Raises :class:`ConfigError` if the name is taken (pass ``overwrite=True`` to replace it on purpose).
    Returns ``spec`` so it can be used as ``EEG = register_modality(ModalitySpec(...))``.
    """
    if not isinstance(spec, ModalitySpec):
        raise ConfigError(f"register_modality expects a ModalitySpec, got {type(spec).__name__}")
    with _LOCK:
        existing = _REGISTRY.get(spec.name)
        if existing is not None and not overwrite:
            raise ConfigError(
                f"modality '{spec.name}' is already registered; choose another name, look it up with "
                f"get_modality('{spec.name}'), or pass overwrite=True to replace it"
            )
        _REGISTRY[spec.name] = spec
    return spec


def unregister_modality(name: str) -> None:
    """Remove ``name`` from the registry (mainly for tests and notebooks)."""
    with _LOCK:
        _REGISTRY.pop(name.lower(), None)


def _discover() -> None:
    """Import the built-in modalities and load every installed entry point (once). A broken plug-in does not
    hide the others: its failure is kept and reported by :func:`refresh_entry_points`/:func:`get_modality`."""
    global _discovered
    with _LOCK:
        if not _discovered:
            _discovered = True
            _import_builtins()
            _load_pending_entry_points()


def _import_builtins() -> None:
    for module in _BUILTIN_MODULES:
        import_module(module)


def _entry_points() -> Iterable[metadata.EntryPoint]:
    return metadata.entry_points(group=ENTRY_POINT_GROUP)


_LOADED_ENTRY_POINTS: set[tuple[str, str]] = set()
_FAILED_ENTRY_POINTS: dict[tuple[str, str], str] = {}


def _load_pending_entry_points() -> list[str]:
    """Load the entry points not loaded yet (failed ones are retried); returns the messages of those that fail."""
    failures = []
    _FAILED_ENTRY_POINTS.clear()
    for ep in _entry_points():
        key = (ep.name, ep.value)
        if key in _LOADED_ENTRY_POINTS:
            continue
        try:
            _load_entry_point(ep)
        except ConfigError as exc:
            _FAILED_ENTRY_POINTS[key] = str(exc)
            failures.append(str(exc))
            continue
        _LOADED_ENTRY_POINTS.add(key)
    return failures


def _load_entry_point(ep: metadata.EntryPoint) -> None:
    try:
        obj: Any = ep.load()
        spec = obj() if callable(obj) and not isinstance(obj, ModalitySpec) else obj
    except Exception as exc:  # a broken plug-in must say which one
        raise ConfigError(f"entry point '{ep.name} = {ep.value}' in group '{ENTRY_POINT_GROUP}' failed to load: "
                          f"{exc}") from exc
    if not isinstance(spec, ModalitySpec):
        raise ConfigError(f"entry point '{ep.name} = {ep.value}' gave {type(spec).__name__}, not a ModalitySpec")
    if _REGISTRY.get(spec.name) is spec:  # the module registered itself on import
        return
    register_modality(spec)


def refresh_entry_points() -> list[str]:
    """Load entry points installed since the last look-up; returns the modality names they added.

    Every loadable plug-in is loaded; then, if any failed, a :class:`ConfigError` lists them.
    """
    global _discovered
    with _LOCK:
        _import_builtins()
        before = set(_REGISTRY)
        _discovered = True
        _load_pending_entry_points()
        if _FAILED_ENTRY_POINTS:
            raise ConfigError("; ".join(_FAILED_ENTRY_POINTS.values()))
        return sorted(set(_REGISTRY) - before)


MODELS_CHECKPOINT_KEY = "neurorvq"
"""Key under which tasks store how to rebuild the models they hold: ``{"format": 2, "models": {role: {"kind",
"prefix" (of the role's state-dict keys), **model.to_config()}}}`` (``to_config`` includes the family)."""

SPEC_CHECKPOINT_KEY = "modality_spec"
"""Key under which TokenizerTask and PretrainTask checkpoints store their spec (:meth:`ModalitySpec.to_dict`), so
they reload without the registry or the spec file their recipe named."""


def checkpoint_modality(ckpt: Mapping[str, Any]) -> Any:
    """The modality a Lightning checkpoint was trained on: its stored spec (:data:`SPEC_CHECKPOINT_KEY`, the flat
    :class:`~neurorvq.families.neurorvq_spec.NeuroRVQSpec` with the exact architecture), else the ``modality``
    hyper-parameter (a registered name or a spec file, as checkpoints written before the spec was stored), else
    None."""
    stored = ckpt.get(SPEC_CHECKPOINT_KEY)
    if stored:
        from neurorvq.families.neurorvq_spec import NeuroRVQSpec

        return NeuroRVQSpec.from_dict(stored)
    return (ckpt.get("hyper_parameters") or {}).get("modality")


def registered_modality(name: str) -> ModalitySpec | None:
    """The registered spec of ``name`` (built-ins and plug-ins loaded), or None; never raises for an unknown
    name."""
    _discover()
    with _LOCK:
        return _REGISTRY.get(str(name).strip().lower())


def is_spec_file(value: Any) -> bool:
    """Whether a modality argument names a spec file (a path object, or a string ending in ``.json``, ``.yaml`` or
    ``.yml``) rather than a registered name."""
    if isinstance(value, os.PathLike):
        return True
    return isinstance(value, str) and value.strip().lower().endswith(SPEC_FILE_SUFFIXES)


def _differences(a: ModalitySpec, b: ModalitySpec) -> list[str]:
    """``field: a_value vs b_value`` for the fields (``doc`` aside) where ``a`` and ``b`` differ; inside ``families``
    per config field (``families.neurorvq.num_heads: 8 vs 4``)."""
    def flat(spec: ModalitySpec) -> dict[str, Any]:
        d = spec.to_dict()
        d.pop("doc", None)
        for family, config in d.pop("families").items():
            d.update({f"families.{family}.{k}": v for k, v in config.items()})
        return d

    da, db = flat(a), flat(b)
    return [f"{k}: {da.get(k)!r} vs {db.get(k)!r}" for k in {**da, **db} if da.get(k) != db.get(k)]


def register_spec_file(path: str | os.PathLike) -> ModalitySpec:
    """Load the spec saved in ``path`` (:meth:`ModalitySpec.load`) and register it under its name.

    Idempotent: when an equal spec (``doc`` aside) is registered under that name, that one is returned. A different
    spec registered under the name raises :class:`ConfigError` listing the differences.
    """
    spec = ModalitySpec.load(path)
    _discover()  # the built-ins first: a file must not take their names
    with _LOCK:
        existing = _REGISTRY.get(spec.name)
        if existing is None:
            return register_modality(spec)
        if existing == spec:
            return existing
        diffs = _differences(spec, existing)
        shown = "; ".join(diffs[:5]) + (f"; and {len(diffs) - 5} more" if len(diffs) > 5 else "")
        raise ConfigError(
            f"modality file '{path}' defines '{spec.name}', but a different '{spec.name}' is already registered "
            f"(file vs registered: {shown}). Give the file's spec a new name (\"name\": \"{spec.name}_v2\"), or use "
            f"the registered one by its name '{spec.name}'")


def get_modality(name: str | os.PathLike | ModalitySpec) -> ModalitySpec:
    """The spec for ``name``: a registered name (case-insensitive), a spec file (see :func:`register_spec_file`;
    relative paths start at the current folder), or a spec (returned unchanged)."""
    if isinstance(name, ModalitySpec):
        return name
    if is_spec_file(name):
        return register_spec_file(name.strip() if isinstance(name, str) else name)
    _discover()
    key = str(name).strip().lower()
    with _LOCK:
        if key not in _REGISTRY:
            _load_pending_entry_points()
        if key not in _REGISTRY:
            broken = "".join(f"; plug-in failure: {msg}" for msg in _FAILED_ENTRY_POINTS.values())
            if any(c in key for c in "./\\"):  # a path with another suffix: not a name either
                raise ConfigError(f"unknown modality '{name}': a spec file's name must end in "
                                  f"{_SUFFIX_TEXT}; registered: {sorted(_REGISTRY)}{broken}")
            raise ConfigError(f"unknown modality '{name}'; registered: {sorted(_REGISTRY)}. Register it with "
                              "neurorvq.register_modality(ModalitySpec(...)), an entry point in group "
                              f"'{ENTRY_POINT_GROUP}', or name a file written by ModalitySpec.save "
                              f"(e.g. '{key}.json'){broken}")
        return _REGISTRY[key]


def list_modalities() -> list[str]:
    """Names of all registered modalities, sorted."""
    _discover()
    with _LOCK:
        return sorted(_REGISTRY)


def resolve_channel_ids(spec: ModalitySpec, channels: Sequence[str | bytes | int]) -> list[int]:
    """Vocabulary ids for ``channels``: names (case-insensitive) or integer ids, as a list, tuple or 1-D numpy
    array; bytes and numpy scalars are decoded (:func:`~neurorvq.vocabulary.decode_channel_names`).

    Raises :class:`~neurorvq.errors.InputError` listing every unknown name with its closest vocabulary
    names, and every id outside ``[0, len(vocabulary))``; and for entries that are neither names nor ids.
    """
    if not isinstance(channels, (list, tuple)):
        channels = decode_channel_names(channels)
    ids: list[int] = []
    unknown: list[str] = []
    for ch in channels:
        if not isinstance(ch, str):  # plain names skip all of this: the training path adds no work
            if type(ch) is not int:  # bytes, numpy scalars (every earlier entry went to ids or unknown)
                ch = decode_channel_name(ch, f"channels[{len(ids) + len(unknown)}]")
            if type(ch) is int:
                if not 0 <= ch < len(spec.channels):
                    unknown.append(f"id {ch} (valid ids: 0..{len(spec.channels) - 1})")
                else:
                    ids.append(ch)
                continue
        idx = spec.channel_index(ch)
        if idx is None:
            close = spec.closest_channels(ch)
            unknown.append(f"'{ch}'" + (f" (closest: {', '.join(close)})" if close else ""))
            continue
        ids.append(idx)
    if unknown:
        raise InputError(
            f"channel(s) not in the '{spec.name}' vocabulary: {'; '.join(unknown)}. Rename them to vocabulary "
            "names (file decorations such as 'EEG Fp1-REF' are the data pipeline's job) or drop them"
        )
    return ids

