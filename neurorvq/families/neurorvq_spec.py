"""The flat NeuroRVQ record: a modality's signal and NeuroRVQ's architecture in one frozen dataclass.

Checkpoints, ``save_pretrained`` folders, token and feature files written by every neurorvq release store this
form (:meth:`NeuroRVQSpec.to_dict`), and ``tokenizer.spec`` / ``fm.spec`` return it, so the models, the reports and
the hashes read it unchanged. New code composes it from its parts: ``NeuroRVQSpec.from_parts(get_modality("eeg"),
config)``; a :class:`~neurorvq.registry.ModalitySpec` holds only the signal and the families' defaults.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from neurorvq.errors import ConfigError, InputError
from neurorvq.families.neurorvq import ARCHITECTURE_FIELDS, NeuroRVQConfig, TemporalBranch, branch_from_value
from neurorvq.suggest import close_matches
from neurorvq.vocabulary import ChannelLookups, decode_channel_names


@dataclass(frozen=True)
class NeuroRVQSpec(ChannelLookups):
    """A NeuroRVQ model's signal and architecture in one flat record: the form checkpoints, ``save_pretrained``
    configs and token files store (``spec`` in ``config.json``, ``modality_spec`` in Lightning checkpoints), and
    what ``tokenizer.spec`` / ``fm.spec`` give. ``NeuroRVQSpec.from_parts(signal, config)`` joins a
    :class:`~neurorvq.registry.ModalitySpec` (the signal) and a :class:`NeuroRVQConfig` (the architecture);
    :attr:`signal` and :attr:`config` split it again. Its :meth:`config_hash` is the one token and feature files
    record, unchanged since the first release.

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


    # ------------------------------------------------------------------------------------ parts
    @classmethod
    def from_parts(cls, signal: Any, config: NeuroRVQConfig) -> "NeuroRVQSpec":
        """The flat record of ``signal`` (a :class:`~neurorvq.registry.ModalitySpec`) and ``config``."""
        return cls(name=signal.name, sampling_rate=signal.sampling_rate, patch_length=signal.patch_length,
                   channels=config.channels if config.channels is not None else signal.channels, unit=signal.unit,
                   bands=signal.bands, doc=signal.doc,
                   **{name: getattr(config, name) for name in ARCHITECTURE_FIELDS if name != "channels"})

    @property
    def config(self) -> NeuroRVQConfig:
        """The architecture part (every :class:`NeuroRVQConfig` field; ``channels`` is None: in this record the
        model's vocabulary is the signal's, :attr:`signal` carries it)."""
        return NeuroRVQConfig(**{name: getattr(self, name) for name in ARCHITECTURE_FIELDS if name != "channels"})

    @property
    def signal(self) -> Any:
        """The signal part: the registered modality of this name when its signal fields are equal (its
        preprocessing and aliases come with it), else a :class:`~neurorvq.registry.ModalitySpec` built from these
        fields with the default preprocessing (pick the vocabulary's channels, resample)."""
        from neurorvq.modality import signal_of_flat

        return signal_of_flat(self)

    # ----------------------------------------------------------------------------------------- checks
    def _fail(self, field_name: str, problem: str, fix: str) -> None:
        raise ConfigError(f"modality '{self.name}': {field_name} {problem}; {fix}")

    def _validate(self) -> None:
        self._validate_signal()
        self.neurorvq_config.validate(self.patch_length, f"modality '{self.name}'")
        self._validate_bands()

    # ------------------------------------------------------------------------------------ derived
    @property
    def neurorvq_config(self) -> NeuroRVQConfig:
        """:attr:`config` (the name a ModalitySpec's NeuroRVQ default has)."""
        return self.config

    @property
    def num_branches(self) -> int:
        """S, the number of temporal branches (one RVQ each)."""
        return len(self.branches)

    @property
    def spatial_rows(self) -> int:
        """Rows of the spatial (channel) embedding table: vocabulary + 1 (the CLS row)."""
        return len(self.channels) + 1

    def replace(self, **changes: Any) -> "NeuroRVQSpec":
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
    def from_dict(cls, data: Mapping[str, Any]) -> "NeuroRVQSpec":
        """The spec of ``data`` (the form :meth:`to_dict` writes), validated.

        Raises :class:`ConfigError` for unknown or missing fields and values of the wrong kind.
        """
        _check_fields(data)
        fields = dataclasses.fields(cls)
        required = [f.name for f in fields if f.default is dataclasses.MISSING
                    and f.default_factory is dataclasses.MISSING]
        missing = [name for name in required if name not in data]
        if missing:
            raise ConfigError(f"missing NeuroRVQSpec field(s) {missing}; required: {required}")
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
                              "NeuroRVQSpec.to_dict() of a built-in spec for the expected form") from exc

    def config_hash(self) -> str:
        """Short hash of everything but ``doc``: equal hashes mean interchangeable tokens."""
        d = self.to_dict()
        d.pop("doc", None)
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


def _check_fields(names: Iterable[str]) -> None:
    """Refuse names that are not :class:`ModalitySpec` fields, with the closest valid ones."""
    known = sorted(f.name for f in dataclasses.fields(NeuroRVQSpec))
    unknown = sorted(set(names) - set(known))
    if unknown:
        close = [match for u in unknown for match in close_matches(u, known, 1)]
        hint = f" (did you mean {', '.join(map(repr, close))}?)" if close else ""
        raise ConfigError(f"unknown NeuroRVQSpec field(s) {unknown}{hint}; valid fields: {known}")



def as_neurorvq_spec(spec: Any) -> NeuroRVQSpec:
    """``spec`` as the flat NeuroRVQ record: a :class:`NeuroRVQSpec` as it is; a modality (a registered name, a spec
    file or a :class:`~neurorvq.registry.ModalitySpec`) joined with its NeuroRVQ default architecture."""
    if isinstance(spec, NeuroRVQSpec):
        return spec
    from neurorvq.registry import get_modality

    signal = get_modality(spec)
    return NeuroRVQSpec.from_parts(signal, signal.config("neurorvq"))


__all__ = ["NeuroRVQSpec", "as_neurorvq_spec"]
