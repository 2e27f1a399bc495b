"""Modality specifications and their registry.

A :class:`ModalitySpec` is everything a model needs to know about a kind of biosignal: sampling rate,
patch length, the multi-scale temporal branches, the transformer and quantizer sizes, and the channel
vocabulary whose order is part of the checkpoint format. Modalities are data, not code paths: EEG, ECG
and EMG ship registered (``neurorvq.modalities``) and third-party packages add theirs through the
``neurorvq.modalities`` entry-point group (an entry point names a ``ModalitySpec`` or a callable
returning one).
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import threading
from dataclasses import dataclass, field
from importlib import import_module, metadata
from typing import Any, Iterable, Mapping, Sequence

from neurorvq.errors import ConfigError

ENTRY_POINT_GROUP = "neurorvq.modalities"
_BUILTIN_MODULES = ("neurorvq.modalities.eeg", "neurorvq.modalities.ecg", "neurorvq.modalities.emg",
                    "neurorvq.modalities.semg200")


@dataclass(frozen=True)
class TemporalBranch:
    """One branch of the multi-scale temporal encoder: a stack of ``Conv -> GroupNorm -> GELU -> AvgPool``.

    Each stage ``i`` convolves along time with kernel ``kernel_sizes[i]`` (zero padding ``paddings[i]``,
    stride ``strides[i]``), then average-pools by ``pools[i]`` (kernel = stride = pool, remainder dropped).
    ``paddings`` defaults to ``k // 2`` per stage ("same" length for odd kernels), ``strides`` to 1.
    """

    kernel_sizes: tuple[int, ...]
    pools: tuple[int, ...]
    paddings: tuple[int, ...] | None = None
    strides: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "kernel_sizes", tuple(int(k) for k in self.kernel_sizes))
        object.__setattr__(self, "pools", tuple(int(p) for p in self.pools))
        n = len(self.kernel_sizes)
        pads = tuple(k // 2 for k in self.kernel_sizes) if self.paddings is None else tuple(map(int, self.paddings))
        strides = (1,) * n if self.strides is None else tuple(map(int, self.strides))
        object.__setattr__(self, "paddings", pads)
        object.__setattr__(self, "strides", strides)
        if n == 0:
            raise ConfigError("TemporalBranch.kernel_sizes is empty: give at least one conv stage, e.g. (21, 9)")
        for name, values in (("pools", self.pools), ("paddings", pads), ("strides", strides)):
            if len(values) != n:
                raise ConfigError(
                    f"TemporalBranch.{name} has {len(values)} entries but kernel_sizes has {n}: "
                    f"give one {name[:-1]} per conv stage"
                )
        for name, values, low in (("kernel_sizes", self.kernel_sizes, 1), ("pools", self.pools, 1),
                                  ("strides", strides, 1), ("paddings", pads, 0)):
            if any(v < low for v in values):
                raise ConfigError(f"TemporalBranch.{name}={values}: every entry must be >= {low}")

    def output_length(self, patch_length: int) -> int:
        """Time steps left of a ``patch_length``-sample patch after every stage (0 if it vanishes)."""
        length = patch_length
        for k, p, s, pool in zip(self.kernel_sizes, self.paddings, self.strides, self.pools):
            length = (length + 2 * p - k) // s + 1
            length = length // pool if length > 0 else 0
        return max(length, 0)


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
        object.__setattr__(self, "channels", tuple(str(c).lower() for c in self.channels))
        object.__setattr__(
            self, "branches",
            tuple(b if isinstance(b, TemporalBranch) else TemporalBranch(**dict(b)) for b in self.branches),
        )
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
        for name in ("patch_length", "embed_dim", "num_heads", "n_quantizers", "codebook_size", "code_dim",
                     "max_patches", "conv_channels", "groupnorm_groups", "encoder_depth"):
            if int(getattr(self, name)) < 1:
                self._fail(name, f"is {getattr(self, name)}", "it must be a positive integer")
        if self.decoder_depth < 0:
            self._fail("decoder_depth", f"is {self.decoder_depth}", "it must be >= 0")
        if not self.channels:
            self._fail("channels", "is empty", "list the channel names of the modality's vocabulary")
        dupes = sorted({c for c in self.channels if self.channels.count(c) > 1})
        if dupes:
            self._fail("channels", f"repeats {dupes} (names match case-insensitively)", "list each channel once")
        if not self.branches:
            self._fail("branches", "is empty", "give at least one TemporalBranch")
        pool_product = None
        for i, branch in enumerate(self.branches):
            product = 1
            for pool in branch.pools:
                product *= pool
            if self.patch_length % product:
                self._fail(
                    f"branches[{i}].pools", f"{branch.pools} (product {product}) do not divide "
                    f"patch_length={self.patch_length}", "choose a patch_length that is a multiple of the pooling "
                    "product, or smaller pools")
            pool_product = product if pool_product is None else pool_product
        lengths = [b.output_length(self.patch_length) for b in self.branches]
        if len(set(lengths)) != 1 or lengths[0] < 1:
            self._fail("branches", f"give output lengths {lengths} for a {self.patch_length}-sample patch",
                       "every branch must leave the same number (>= 1) of time steps: adjust kernel sizes, "
                       "paddings or pools")
        expected_dim = self.conv_channels * lengths[0]
        if self.embed_dim != expected_dim:
            self._fail("embed_dim", f"is {self.embed_dim} but the temporal encoder yields conv_channels x steps = "
                       f"{self.conv_channels} x {lengths[0]} = {expected_dim}",
                       f"set embed_dim={expected_dim} or change conv_channels/pools")
        if self.conv_channels % self.groupnorm_groups:
            self._fail("groupnorm_groups", f"({self.groupnorm_groups}) does not divide conv_channels="
                       f"{self.conv_channels}", "choose a divisor of conv_channels")
        if self.embed_dim % self.num_heads:
            divisors = [h for h in range(1, self.embed_dim + 1) if self.embed_dim % h == 0]
            self._fail("num_heads", f"({self.num_heads}) does not divide embed_dim={self.embed_dim}",
                       f"choose one of {divisors}")
        if self.mlp_ratio <= 0:
            self._fail("mlp_ratio", f"is {self.mlp_ratio}", "it must be > 0")
        if self.spatial_offset not in (0, 1):
            self._fail("spatial_offset", f"is {self.spatial_offset}", "use 0 (official layout) or 1 (own CLS row)")
        nyquist = self.sampling_rate / 2
        for band_name, low, high in self.bands:
            if not 0 <= low < high <= nyquist:
                self._fail("bands", f"has {band_name}=({low}, {high}) Hz", f"need 0 <= low < high <= {nyquist} Hz")

    # ------------------------------------------------------------------------------------ derived
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
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ConfigError(f"unknown ModalitySpec field(s) {unknown}; valid fields: {sorted(known)}")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (round-trips through :meth:`from_dict`)."""
        d = dataclasses.asdict(self)
        d["channels"] = list(self.channels)
        d["bands"] = [list(b) for b in self.bands]
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ModalitySpec":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown ModalitySpec field(s) {unknown}; valid fields: {sorted(known)}")
        values = dict(data)
        values["branches"] = tuple(
            b if isinstance(b, TemporalBranch) else TemporalBranch(**{k: tuple(v) if v is not None else None
                                                                     for k, v in b.items()})
            for b in values.get("branches", ())
        )
        for key in ("channels",):
            if key in values:
                values[key] = tuple(values[key])
        if "bands" in values:
            values["bands"] = tuple(tuple(b) for b in values["bands"])
        return cls(**values)

    def config_hash(self) -> str:
        """Short hash of everything but ``doc``: equal hashes mean interchangeable tokens."""
        d = self.to_dict()
        d.pop("doc", None)
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


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


def get_modality(name: str | ModalitySpec) -> ModalitySpec:
    """The registered spec called ``name`` (case-insensitive); a spec passes through unchanged."""
    if isinstance(name, ModalitySpec):
        return name
    _discover()
    key = str(name).strip().lower()
    with _LOCK:
        if key not in _REGISTRY:
            _load_pending_entry_points()
        if key not in _REGISTRY:
            broken = "".join(f"; plug-in failure: {msg}" for msg in _FAILED_ENTRY_POINTS.values())
            raise ConfigError(f"unknown modality '{name}'; registered: {sorted(_REGISTRY)}. Register it with "
                              "neurorvq.register_modality(ModalitySpec(...)) or an entry point in group "
                              f"'{ENTRY_POINT_GROUP}'{broken}")
        return _REGISTRY[key]


def list_modalities() -> list[str]:
    """Names of all registered modalities, sorted."""
    _discover()
    with _LOCK:
        return sorted(_REGISTRY)


def resolve_channel_ids(spec: ModalitySpec, channels: Sequence[str | int]) -> list[int]:
    """Vocabulary ids for ``channels`` (names, case-insensitive, or integer ids).

    Raises :class:`~neurorvq.errors.InputError` listing every unknown name with its closest vocabulary
    names, and every id outside ``[0, len(vocabulary))``.
    """
    from neurorvq.errors import InputError

    ids: list[int] = []
    unknown: list[str] = []
    for ch in channels:
        if isinstance(ch, str):
            idx = spec.channel_index(ch)
            if idx is None:
                close = spec.closest_channels(ch)
                unknown.append(f"'{ch}'" + (f" (closest: {', '.join(close)})" if close else ""))
                continue
            ids.append(idx)
        else:
            idx = int(ch)
            if not 0 <= idx < len(spec.channels):
                unknown.append(f"id {idx} (valid ids: 0..{len(spec.channels) - 1})")
                continue
            ids.append(idx)
    if unknown:
        raise InputError(
            f"channel(s) not in the '{spec.name}' vocabulary: {'; '.join(unknown)}. Rename them to vocabulary "
            "names (file decorations such as 'EEG Fp1-REF' are the data pipeline's job) or drop them"
        )
    return ids

