"""Modality specifications and their registry.

A :class:`ModalitySpec` is everything a model needs to know about a kind of biosignal: sampling rate,
patch length, the multi-scale temporal branches, the transformer and quantizer sizes, and the channel
vocabulary whose order is part of the checkpoint format. Modalities are data, not code paths: EEG, ECG
and EMG ship registered (``neurorvq.modalities``), third-party packages add theirs through the
``neurorvq.modalities`` entry-point group (an entry point names a ``ModalitySpec`` or a callable
returning one), and a spec saved to a file (:meth:`ModalitySpec.save`, JSON or YAML) is registered by naming
the file wherever a modality name is expected (``get_modality("ppg.json")``, a recipe's ``modality:``).
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import os
import threading
from dataclasses import dataclass, field
from importlib import import_module, metadata
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from neurorvq.errors import ConfigError, InputError
from neurorvq.families.neurorvq import ARCHITECTURE_FIELDS, NeuroRVQConfig, TemporalBranch, branch_from_value
from neurorvq.suggest import close_matches
from neurorvq.vocabulary import decode_channel_name, decode_channel_names

ENTRY_POINT_GROUP = "neurorvq.modalities"
_BUILTIN_MODULES = ("neurorvq.modalities.eeg", "neurorvq.modalities.ecg", "neurorvq.modalities.emg",
                    "neurorvq.modalities.semg200")
SPEC_FILE_SUFFIXES = (".json", ".yaml", ".yml")
"""Suffixes of a spec file; a modality argument ending in one of them is a path, never a name."""
_SUFFIX_TEXT = ".json, .yaml or .yml"


@dataclass(frozen=True)
class ModalitySpec:
    """A biosignal modality: signal conventions plus the tokenizer's architecture numbers.

    Fields (units in brackets):
        name: registry key, lower-case.
        sampling_rate: [Hz] rate every recording is resampled to.
        patch_length: [samples] length of one patch (one token per channel and patch); the Fourier
            heads predict ``patch_length`` FFT bins.
        channels: the channel vocabulary, lower-case, in checkpoint order; a channel's spatial id is its
            position (plus ``spatial_offset``). Matching is case-insensitive.
        branches: the multi-scale temporal branches (S = ``len(branches)``).
        embed_dim: transformer width D; must equal ``conv_channels x`` the branches' output length.
        conv_channels / groupnorm_groups: feature maps of each temporal conv and GroupNorm groups.
        num_heads, encoder_depth, decoder_depth, mlp_ratio: tokenizer transformer sizes.
        n_quantizers: RVQ depth N per branch; codebook_size K; code_dim d.
        max_patches: patches per channel the temporal embedding can index (its rows).
        unit: unit the signal is scaled to before the model, e.g. ``"uV"``.
        bands: named frequency bands [Hz] for per-band reconstruction reports.
        spatial_offset: 0 reproduces the official tables (CLS shares row 0 with channel 0, method.md Q3);
            1 gives the CLS token a row of its own (for new vocabularies).
        doc: provenance of the numbers; says which ones are proposals rather than published values.
    """

    name: str
    sampling_rate: float
    patch_length: int
    channels: tuple[str, ...]
    branches: tuple[TemporalBranch, ...]
    embed_dim: int
    num_heads: int
    n_quantizers: int = 8
    codebook_size: int = 8192
    code_dim: int = 128
    max_patches: int = 256
    conv_channels: int = 8
    groupnorm_groups: int = 4
    encoder_depth: int = 12
    decoder_depth: int = 3
    mlp_ratio: float = 4.0
    unit: str = "uV"
    bands: tuple[tuple[str, float, float], ...] = ()
    spatial_offset: int = 0
    doc: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        for name in ("sampling_rate", "mlp_ratio"):
            object.__setattr__(self, name, float(getattr(self, name)))
        for name in ("patch_length", "embed_dim", "num_heads", "n_quantizers", "codebook_size", "code_dim",
                     "max_patches", "conv_channels", "groupnorm_groups", "encoder_depth", "decoder_depth",
                     "spatial_offset"):
            object.__setattr__(self, name, int(getattr(self, name)))
        try:  # names from .mat/HDF5 files arrive as bytes: decode, never str(b"a1") -> "b'a1'"
            names = decode_channel_names(self.channels, "channels")
        except InputError as exc:
            raise ConfigError(f"modality '{self.name}': {exc}") from None
        object.__setattr__(self, "channels", tuple(str(c).lower() for c in names))
        object.__setattr__(self, "branches", tuple(branch_from_value(i, b) for i, b in enumerate(self.branches)))
        object.__setattr__(self, "bands", tuple((str(n), float(lo), float(hi)) for n, lo, hi in self.bands))
        self._validate()

    # ----------------------------------------------------------------------------------------- checks
    def _fail(self, field_name: str, problem: str, fix: str) -> None:
        raise ConfigError(f"modality '{self.name}': {field_name} {problem}; {fix}")

    def _validate(self) -> None:
        if not self.name or self.name != self.name.lower() or not self.name.replace("_", "").replace("-", "").isalnum():
            self._fail("name", f"is {self.name!r}", "use a lower-case word such as 'ppg'")
        if self.sampling_rate <= 0:
            self._fail("sampling_rate", f"is {self.sampling_rate}", "give the rate in Hz, > 0")
        if self.patch_length < 1:
            self._fail("patch_length", f"is {self.patch_length}", "it must be a positive integer")
        if not self.channels:
            self._fail("channels", "is empty", "list the channel names of the modality's vocabulary")
        dupes = sorted({c for c in self.channels if self.channels.count(c) > 1})
        if dupes:
            self._fail("channels", f"repeats {dupes} (names match case-insensitively)", "list each channel once")
        self.neurorvq_config.validate(self.patch_length, f"modality '{self.name}'")
        nyquist = self.sampling_rate / 2
        for band_name, low, high in self.bands:
            if not 0 <= low < high <= nyquist:
                self._fail("bands", f"has {band_name}=({low}, {high}) Hz", f"need 0 <= low < high <= {nyquist} Hz")

    # ------------------------------------------------------------------------------------ derived
    @property
    def neurorvq_config(self) -> NeuroRVQConfig:
        """The architecture part of this spec (every field of :class:`NeuroRVQConfig`)."""
        return NeuroRVQConfig(**{name: getattr(self, name) for name in ARCHITECTURE_FIELDS})

    @property
    def num_branches(self) -> int:
        """S, the number of temporal branches (one RVQ each)."""
        return len(self.branches)

    @property
    def spatial_rows(self) -> int:
        """Rows of the spatial (channel) embedding table: vocabulary + 1 (the CLS row)."""
        return len(self.channels) + 1

    @property
    def patch_seconds(self) -> float:
        return self.patch_length / self.sampling_rate

    def channel_index(self, name: str) -> int | None:
        """Vocabulary position of ``name`` (case-insensitive), or ``None``."""
        try:
            return self.channels.index(name.strip().lower())
        except ValueError:
            return None

    def closest_channels(self, name: str, n: int = 3) -> list[str]:
        """Vocabulary names closest to ``name``, for error messages."""
        return difflib.get_close_matches(name.strip().lower(), self.channels, n=n, cutoff=0.5)

    def replace(self, **changes: Any) -> "ModalitySpec":
        """A copy with ``changes`` applied and validated; unknown fields raise a :class:`ConfigError`."""
        _check_fields(changes)
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (round-trips through :meth:`from_dict`)."""
        d = dataclasses.asdict(self)
        d["channels"] = list(self.channels)
        d["bands"] = [list(b) for b in self.bands]
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ModalitySpec":
        """The spec of ``data`` (the form :meth:`to_dict` writes), validated.

        Raises :class:`ConfigError` for unknown or missing fields and values of the wrong kind.
        """
        _check_fields(data)
        fields = dataclasses.fields(cls)
        required = [f.name for f in fields if f.default is dataclasses.MISSING
                    and f.default_factory is dataclasses.MISSING]
        missing = [name for name in required if name not in data]
        if missing:
            raise ConfigError(f"missing ModalitySpec field(s) {missing}; required: {required}")
        values = dict(data)
        for key in ("channels", "branches", "bands"):
            if isinstance(values.get(key), (str, Mapping)):
                raise ConfigError(f"modality '{data.get('name')}': {key} is {values[key]!r}; give a list")
        try:
            values["branches"] = tuple(branch_from_value(i, b) for i, b in enumerate(values["branches"]))
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
            text = _json_text(data)
        else:
            import yaml

            text = yaml.safe_dump(data, sort_keys=False, default_flow_style=None, allow_unicode=True)
        path.write_text(text, encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "ModalitySpec":
        """The spec saved in ``path`` by :meth:`save` (JSON or YAML), validated but not registered.

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
        import yaml

        is_json = path.suffix.lower() == ".json"
        try:
            text = path.read_text(encoding="utf-8")
            data = json.loads(text) if is_json else yaml.safe_load(text)
        except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError) as exc:  # JSONDecodeError is a ValueError
            raise ConfigError(f"{where} cannot be read as {'JSON' if is_json else 'YAML'}: {exc}") from exc
        if not isinstance(data, Mapping):
            raise ConfigError(f"{where} holds a {type(data).__name__}, not a mapping of ModalitySpec fields; write "
                              "it with ModalitySpec.save(path)")
        try:
            return cls.from_dict(data)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from exc

    def config_hash(self) -> str:
        """Short hash of everything but ``doc``: equal hashes mean interchangeable tokens."""
        d = self.to_dict()
        d.pop("doc", None)
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


def _json_text(data: Mapping[str, Any]) -> str:
    """``data`` as JSON with one field per line (one branch per line): short enough to read, and diffable."""
    def value_text(key: str, value: Any) -> str:
        if key == "branches":
            return "[\n" + ",\n".join(f"    {json.dumps(b)}" for b in value) + "\n  ]"
        return json.dumps(value, ensure_ascii=False)

    return "{\n" + ",\n".join(f"  {json.dumps(k)}: {value_text(k, v)}" for k, v in data.items()) + "\n}\n"


def _check_fields(names: Iterable[str]) -> None:
    """Refuse names that are not :class:`ModalitySpec` fields, with the closest valid ones."""
    known = sorted(f.name for f in dataclasses.fields(ModalitySpec))
    unknown = sorted(set(names) - set(known))
    if unknown:
        close = [match for u in unknown for match in close_matches(u, known, 1)]
        hint = f" (did you mean {', '.join(map(repr, close))}?)" if close else ""
        raise ConfigError(f"unknown ModalitySpec field(s) {unknown}{hint}; valid fields: {known}")


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


SPEC_CHECKPOINT_KEY = "modality_spec"
"""Key under which TokenizerTask and PretrainTask checkpoints store their spec (:meth:`ModalitySpec.to_dict`), so
they reload without the registry or the spec file their recipe named."""


def checkpoint_modality(ckpt: Mapping[str, Any]) -> "ModalitySpec | str | None":
    """The modality a Lightning checkpoint was trained on: its stored spec (:data:`SPEC_CHECKPOINT_KEY`), else the
    ``modality`` hyper-parameter (a registered name or a spec file, as checkpoints written before the spec was
    stored), else None."""
    stored = ckpt.get(SPEC_CHECKPOINT_KEY)
    if stored:
        return ModalitySpec.from_dict(stored)
    return (ckpt.get("hyper_parameters") or {}).get("modality")


def is_spec_file(value: Any) -> bool:
    """Whether a modality argument names a spec file (a path object, or a string ending in ``.json``, ``.yaml`` or
    ``.yml``) rather than a registered name."""
    if isinstance(value, os.PathLike):
        return True
    return isinstance(value, str) and value.strip().lower().endswith(SPEC_FILE_SUFFIXES)


def _differences(a: ModalitySpec, b: ModalitySpec) -> list[str]:
    """``field: a_value vs b_value`` for the fields (``doc`` aside) where ``a`` and ``b`` differ."""
    da, db = a.to_dict(), b.to_dict()
    return [f"{k}: {da[k]!r} vs {db[k]!r}" for k in da if k != "doc" and da[k] != db[k]]


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

