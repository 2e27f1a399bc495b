"""The signal of a modality: what data of one kind look like, apart from any model's architecture.

A :class:`ModalitySpec` declares the sampling rate recordings are resampled to, the patch length (samples per
token), the channel vocabulary and its aliases, the unit, the frequency bands of reports, the default
preprocessing, and the default architecture of each tokenizer family for this signal (``families``: NeuroRVQ's
:class:`~neurorvq.families.neurorvq.NeuroRVQConfig` today). Data, tokenizers and FMs are compared by these fields
(:mod:`neurorvq.compat`), never by the name. A spec is saved to and loaded from JSON or YAML
(:meth:`ModalitySpec.save`, :meth:`ModalitySpec.load`); files in the flat form of neurorvq 0.1 (signal and NeuroRVQ
architecture side by side) still load, with a warning saying how to rewrite them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from neurorvq.errors import ConfigError, InputError
from neurorvq.families.neurorvq import ARCHITECTURE_FIELDS, NeuroRVQConfig
from neurorvq.file_io import json_ready, read_yaml
from neurorvq.suggest import close_matches
from neurorvq.vocabulary import ChannelLookups, decode_channel_names

SPEC_FILE_SUFFIXES = (".json", ".yaml", ".yml")
"""Suffixes of a spec file; a modality argument ending in one of them is a path, never a name."""
_SUFFIX_TEXT = ".json, .yaml or .yml"
LEGACY_PREPROCESSING = ({"step": "PickChannels"}, {"step": "Resample"})
"""What a flat (neurorvq 0.1) spec of an unregistered name was preprocessed with: pick the vocabulary, resample."""
_EXAMPLE_STEPS = '[{"step": "PickChannels"}, {"step": "BandPass", "low": 0.5, "high": 30.0}, {"step": "Resample"}]'


@dataclass(frozen=True)
class ModalitySpec(ChannelLookups):
    """A biosignal modality's signal (module docstring).

    Fields (units in brackets):
        name: registry key, lower-case (messages and registry only; never compared).
        sampling_rate: [Hz] rate every recording is resampled to.
        patch_length: [samples] samples per token; windows are whole numbers of patches.
        channels: the channel vocabulary, lower-case; data carry channel ids as positions in it. Names match
            case-insensitively. Append-only once data or models use it.
        preprocessing: the default steps from a raw recording to windows, as a recipe's ``steps:`` list
            (``[{"step": "PickChannels"}, {"step": "BandPass", "low": 0.5, "high": 30.0}, {"step": "Resample"}]``;
            :func:`~neurorvq.data.preprocess.steps_from_config`). Required: there is no silent default.
        unit: unit the data pipeline scales signals to, e.g. ``"uV"``; ``"au"`` for device units passed through.
        bands: named frequency bands [Hz] for per-band reconstruction reports.
        aliases: recording channel names -> vocabulary names, used by the data pipeline when the vocabulary lacks a
            name (ECG: ``{"mlii": "ii"}``).
        families: the default architecture of each tokenizer family for this signal, ``{"neurorvq":
            NeuroRVQConfig(...)}`` (validated against ``patch_length``); :meth:`config` returns one.
        doc: provenance of the numbers; says which ones are proposals rather than published values.
    """

    name: str
    sampling_rate: float
    patch_length: int
    channels: tuple[str, ...]
    preprocessing: tuple[Mapping[str, Any], ...] | None = field(default=None, hash=False)
    unit: str = "uV"
    bands: tuple[tuple[str, float, float], ...] = ()
    aliases: Mapping[str, str] = field(default_factory=dict, hash=False)
    families: Mapping[str, Any] = field(default_factory=dict, hash=False)
    doc: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sampling_rate", float(self.sampling_rate))
        object.__setattr__(self, "patch_length", int(self.patch_length))
        try:  # names from .mat/HDF5 files arrive as bytes: decode, never str(b"a1") -> "b'a1'"
            names = decode_channel_names(self.channels, "channels")
        except InputError as exc:
            raise ConfigError(f"modality '{self.name}': {exc}") from None
        object.__setattr__(self, "channels", tuple(str(c).lower() for c in names))
        object.__setattr__(self, "bands", tuple((str(n), float(lo), float(hi)) for n, lo, hi in self.bands))
        if self.preprocessing is not None:
            if isinstance(self.preprocessing, (str, Mapping)):
                self._fail("preprocessing", f"is {self.preprocessing!r}", f"give a list of steps, e.g. {_EXAMPLE_STEPS}")
            object.__setattr__(self, "preprocessing", tuple(dict(step) for step in self.preprocessing))
        object.__setattr__(self, "aliases", {str(k).strip().lower(): str(v).strip().lower()
                                             for k, v in dict(self.aliases).items()})
        object.__setattr__(self, "families", {str(k): _family_config(self.name, str(k), v)
                                              for k, v in dict(self.families).items()})
        self._validate()

    # ----------------------------------------------------------------------------------------- checks
    def _fail(self, field_name: str, problem: str, fix: str) -> None:
        raise ConfigError(f"modality '{self.name}': {field_name} {problem}; {fix}")

    def _validate(self) -> None:
        self._validate_signal()
        if self.preprocessing is None:
            self._fail("preprocessing", "is missing", "list the default steps from a raw recording to windows, e.g. "
                       f"preprocessing={_EXAMPLE_STEPS} (data/preprocess.py has every step)")
        from neurorvq.data.preprocess import steps_from_config  # preprocess imports the registry: not at the top

        try:
            steps_from_config(self.preprocessing)
        except ConfigError as exc:
            raise ConfigError(f"modality '{self.name}': preprocessing: {exc}") from None
        unknown_targets = sorted({v for v in self.aliases.values() if v not in self.channels})
        if unknown_targets:
            self._fail("aliases", f"point to {unknown_targets}, which are not in the vocabulary",
                       "map recording names to vocabulary names")
        for family, config in self.families.items():
            config.validate(self.patch_length, f"modality '{self.name}', family '{family}'")
        self._validate_bands()

    # ------------------------------------------------------------------------------------ derived
    def config(self, family: str = "neurorvq", **overrides: Any) -> Any:
        """The default architecture of ``family`` for this signal, with ``overrides`` applied (and validated)."""
        if family not in self.families:
            declared = sorted(self.families) or "none"
            raise ConfigError(f"modality '{self.name}' declares no default '{family}' architecture (declared: "
                              f"{declared}); add families={{'{family}': ...}} to its spec or give every field")
        config = self.families[family]
        if overrides:
            config = _replace_config(config, overrides, f"modality '{self.name}', family '{family}'")
            config.validate(self.patch_length, f"modality '{self.name}', family '{family}'")
        return config

    @property
    def neurorvq_config(self) -> NeuroRVQConfig:
        """NeuroRVQ's default architecture for this signal (:meth:`config`)."""
        return self.config("neurorvq")

    def replace(self, **changes: Any) -> "ModalitySpec":
        """A copy with ``changes`` applied and validated; unknown fields raise a :class:`ConfigError` (an
        architecture field names the family config to change instead)."""
        _check_fields(changes)
        return dataclasses.replace(self, **changes)

    def with_config(self, family: str = "neurorvq", **changes: Any) -> "ModalitySpec":
        """A copy whose default ``family`` architecture has ``changes`` applied (validated):
        ``spec.with_config("neurorvq", num_heads=8)``."""
        return self.replace(families={**self.families, family: self.config(family, **changes)})

    # ------------------------------------------------------------------------------------ files
    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (round-trips through :meth:`from_dict`)."""
        return {"name": self.name, "sampling_rate": self.sampling_rate, "patch_length": self.patch_length,
                "channels": list(self.channels), "unit": self.unit, "bands": [list(b) for b in self.bands],
                "preprocessing": [json_ready(step) for step in self.preprocessing or ()],
                "aliases": dict(self.aliases),
                "families": {name: config.to_dict() for name, config in self.families.items()}, "doc": self.doc}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ModalitySpec":
        """The spec of ``data`` (the form :meth:`to_dict` writes), validated. A flat neurorvq 0.1 dict (NeuroRVQ's
        architecture fields beside the signal's, no ``families``) becomes the signal plus ``families={"neurorvq":
        ...}``; its preprocessing is the registered modality's of that name, else :data:`LEGACY_PREPROCESSING`.

        Raises :class:`ConfigError` for unknown or missing fields and values of the wrong kind.
        """
        if is_flat(data):
            return _from_flat(data)
        _check_fields(data)
        required = [f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING
                    and f.default_factory is dataclasses.MISSING]
        missing = [name for name in required if name not in data]
        if missing:
            raise ConfigError(f"missing ModalitySpec field(s) {missing}; required: {required}")
        values = dict(data)
        for key in ("channels", "bands", "preprocessing"):
            if isinstance(values.get(key), (str, Mapping)):
                raise ConfigError(f"modality '{data.get('name')}': {key} is {values[key]!r}; give a list")
        for key in ("aliases", "families"):
            if key in values and not isinstance(values[key], Mapping):
                raise ConfigError(f"modality '{data.get('name')}': {key} is {values[key]!r}; give a mapping")
        try:
            values["channels"] = tuple(values["channels"])
            if "bands" in values:
                values["bands"] = tuple(tuple(band) for band in values["bands"])
            return cls(**values)
        except ConfigError:
            raise
        except (TypeError, ValueError) as exc:  # e.g. a string where a number belongs, a band of two values
            raise ConfigError(f"modality '{data.get('name')}': a value has the wrong form ({exc}); see "
                              "ModalitySpec.to_dict() of a built-in spec for the expected form") from exc

    def save(self, path: str | os.PathLike) -> Path:
        """Write the spec to ``path`` (``.json``, or ``.yaml``/``.yml``) and return it.

        The file holds :meth:`to_dict`; naming it as a modality (``get_modality("ppg.json")``, a recipe's
        ``modality: ppg.json``) registers it in any process, so it is how a spec reaches ``neurorvq fit``.
        """
        path = Path(path).expanduser()
        suffix = path.suffix.lower()
        if suffix not in SPEC_FILE_SUFFIXES:
            raise ConfigError(f"modality file '{path}': use a name ending in {_SUFFIX_TEXT}")
        data = json.loads(json.dumps(self.to_dict()))  # tuples -> lists: plain JSON/YAML values
        if suffix == ".json":
            text = _json_text(data) + "\n"
        else:
            import yaml

            text = yaml.safe_dump(data, sort_keys=False, default_flow_style=None, allow_unicode=True)
        path.write_text(text, encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "ModalitySpec":
        """The spec saved in ``path`` by :meth:`save` (JSON or YAML), validated but not registered. A flat neurorvq
        0.1 file loads with a :class:`DeprecationWarning` naming it (``ModalitySpec.load(p).save(p)`` rewrites it).

        Raises :class:`ConfigError` naming the file when it is missing, unreadable, not JSON/YAML, not a mapping
        of spec fields, or fails the spec's validation.
        """
        path = Path(path).expanduser()
        where = f"modality file '{path}'"
        if not path.is_file():
            what = "is a folder" if path.is_dir() else "does not exist"
            if not path.is_absolute():
                what += f" (relative paths start at the current folder, {Path.cwd()})"
            raise ConfigError(f"{where} {what}; write it with ModalitySpec.save(path) or give the name of a "
                              "registered modality")
        if path.suffix.lower() not in SPEC_FILE_SUFFIXES:
            raise ConfigError(f"{where}: use a name ending in {_SUFFIX_TEXT}")
        is_json = path.suffix.lower() == ".json"
        if is_json:
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, ValueError) as exc:  # JSONDecodeError is a ValueError
                raise ConfigError(f"{where} cannot be read as JSON: {exc}") from exc
        else:
            data = read_yaml(path, what="modality file")
        if not isinstance(data, Mapping):
            raise ConfigError(f"{where} holds a {type(data).__name__}, not a mapping of ModalitySpec fields; write "
                              "it with ModalitySpec.save(path)")
        try:
            spec = cls.from_dict(data)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from exc
        if is_flat(data):
            warnings.warn(f"{where} has the flat form of neurorvq 0.1 (NeuroRVQ's architecture beside the signal); "
                          f"it was read as the signal with families={{'neurorvq': ...}} and preprocessing "
                          f"{[s['step'] for s in spec.preprocessing]}. Rewrite it in the current form with "
                          f"ModalitySpec.load('{path}').save('{path}')", DeprecationWarning, stacklevel=2)
        return spec

    def config_hash(self) -> str:
        """Short hash of the signal fields (name, rate, patch length, vocabulary, unit, bands, preprocessing,
        aliases): equal hashes mean interchangeable data. A model's hash is its own (``model.config_hash()``)."""
        d = self.to_dict()
        d.pop("doc", None)
        d.pop("families", None)
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


def _json_text(value: Any, indent: str = "") -> str:
    """``value`` as JSON with one field per line and one list item per line where items are mappings (steps,
    branches); lists of plain values stay on one line: short enough to read, and diffable."""
    inner = indent + "  "
    if isinstance(value, Mapping) and value:
        return "{\n" + ",\n".join(f"{inner}{json.dumps(k)}: {_json_text(v, inner)}" for k, v in value.items()) + \
            f"\n{indent}}}"
    if isinstance(value, list) and any(isinstance(v, Mapping) for v in value):
        return "[\n" + ",\n".join(f"{inner}{json.dumps(v, ensure_ascii=False)}" for v in value) + f"\n{indent}]"
    return json.dumps(value, ensure_ascii=False)


def _family_config(modality: str, family: str, value: Any) -> Any:
    """``value`` (a family config, or a mapping of its fields) as the config object of ``family``."""
    from neurorvq.families import get_family, list_families

    try:
        cls = get_family(family).config
    except ConfigError:
        raise ConfigError(f"modality '{modality}': families names '{family}', which is not a tokenizer family; "
                          f"known: {list_families()}") from None
    if isinstance(value, cls):
        return value
    if isinstance(value, Mapping):
        try:
            return cls.from_dict(value)
        except ConfigError as exc:
            raise ConfigError(f"modality '{modality}', family '{family}': {exc}") from None
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"modality '{modality}', family '{family}': a value has the wrong form ({exc})") from exc
    raise ConfigError(f"modality '{modality}': families['{family}'] is a {type(value).__name__}; give a "
                      f"{cls.__name__} or a mapping of its fields")


def _replace_config(config: Any, changes: Mapping[str, Any], where: str) -> Any:
    known = [f.name for f in dataclasses.fields(config)]
    unknown = sorted(set(changes) - set(known))
    if unknown:
        close = [m for u in unknown for m in close_matches(u, known, 1)]
        hint = f" (did you mean {', '.join(map(repr, close))}?)" if close else ""
        raise ConfigError(f"{where}: unknown {type(config).__name__} field(s) {unknown}{hint}; valid fields: {known}")
    return dataclasses.replace(config, **changes)


def _check_fields(names: Iterable[str]) -> None:
    """Refuse names that are not :class:`ModalitySpec` fields, with the closest valid ones; an architecture field
    says where it lives now."""
    known = sorted(f.name for f in dataclasses.fields(ModalitySpec))
    unknown = sorted(set(names) - set(known))
    moved = sorted(set(unknown) & set(ARCHITECTURE_FIELDS))
    if moved:
        raise ConfigError(f"{moved} are NeuroRVQ architecture fields, not signal fields: they live in the spec's "
                          "families={'neurorvq': NeuroRVQConfig(...)} (spec.config('neurorvq', ...)), or are model "
                          "overrides (NeuroRVQTokenizer('eeg', encoder_depth=2))")
    if unknown:
        close = [match for u in unknown for match in close_matches(u, known, 1)]
        hint = f" (did you mean {', '.join(map(repr, close))}?)" if close else ""
        raise ConfigError(f"unknown ModalitySpec field(s) {unknown}{hint}; valid fields: {known}")


# ------------------------------------------------------------------------------------------ the flat form
def is_flat(data: Mapping[str, Any]) -> bool:
    """Whether ``data`` is a flat neurorvq 0.1 spec dict (architecture fields beside the signal's)."""
    return "families" not in data and ("branches" in data or "embed_dim" in data)


def _from_flat(data: Mapping[str, Any]) -> ModalitySpec:
    from neurorvq.families.neurorvq_spec import NeuroRVQSpec

    return signal_of_flat(NeuroRVQSpec.from_dict(data))


def signal_of_flat(flat: Any) -> ModalitySpec:
    """The signal of a flat :class:`~neurorvq.families.neurorvq_spec.NeuroRVQSpec`, with its architecture as the
    NeuroRVQ default: the registered modality of that name lends its preprocessing and aliases when its signal fields
    are equal, else :data:`LEGACY_PREPROCESSING` (what such a spec was preprocessed with before)."""
    from neurorvq.registry import registered_modality

    registered = registered_modality(flat.name)
    same = registered is not None and (registered.sampling_rate, registered.patch_length, registered.channels,
                                       registered.unit) == (flat.sampling_rate, flat.patch_length, flat.channels,
                                                            flat.unit)
    return ModalitySpec(name=flat.name, sampling_rate=flat.sampling_rate, patch_length=flat.patch_length,
                        channels=flat.channels, unit=flat.unit, bands=flat.bands,
                        preprocessing=registered.preprocessing if same else LEGACY_PREPROCESSING,
                        aliases=registered.aliases if same else {}, families={"neurorvq": flat.config},
                        doc=flat.doc)


__all__ = ["LEGACY_PREPROCESSING", "ModalitySpec", "SPEC_FILE_SUFFIXES", "is_flat",
           "signal_of_flat"]
