"""NeuroRVQ's architecture: the multi-scale temporal branches and the transformer and quantizer sizes.

:class:`NeuroRVQConfig` holds what a NeuroRVQ checkpoint fixes besides the signal (method.md §2-§3): the
temporal branches, the transformer width, heads and depths, the RVQ depth, codebook size and code size, the rows
of the temporal table and the spatial table's CLS convention. It is validated against a patch length
(:meth:`NeuroRVQConfig.validate`), since the branches must reduce every patch to the same number of steps.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar, Mapping, Optional

from neurorvq.errors import ConfigError, InputError
from neurorvq.families import Family, register_family
from neurorvq.families.options import FMOptions, TokenizerOptions, refuse_unknown_fields


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


_POSITIVE = ("embed_dim", "num_heads", "n_quantizers", "codebook_size", "code_dim", "max_patches", "conv_channels",
             "groupnorm_groups", "encoder_depth")


@dataclass(frozen=True)
class NeuroRVQConfig:
    """NeuroRVQ's architecture for one signal (method.md §2-§3), and what a checkpoint fixes besides it: its
    channel vocabulary (the rows of the spatial table: ``channels``, ``spatial_offset``) and its temporal table
    (``max_patches``). The rate, unit and patch length are the signal's (the data are cut into its patches; NeuroRVQ
    scales nothing inside the model).

    Fields:
        branches: the multi-scale temporal branches (S = ``len(branches)``, one RVQ each).
        embed_dim: transformer width D; must equal ``conv_channels x`` the branches' output length.
        num_heads, encoder_depth, decoder_depth, mlp_ratio: tokenizer transformer sizes.
        n_quantizers: RVQ depth N per branch; codebook_size K; code_dim d.
        max_patches: patches per channel the temporal embedding can index (its rows).
        conv_channels / groupnorm_groups: feature maps of each temporal conv and GroupNorm groups.
        spatial_offset: 0 reproduces the official tables (CLS shares row 0 with channel 0, method.md Q3);
            1 gives the CLS token a row of its own (for new vocabularies).
        channels: the model's channel vocabulary, in spatial-table order; ``None`` (the usual case, and every
            official checkpoint's) is the modality's. Data of the modality are translated to these rows
            (:class:`~neurorvq.tasks.channels.ChannelRows`); names the model lacks are refused.
    """

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
    spatial_offset: int = 0
    channels: Optional[tuple[str, ...]] = None

    def __post_init__(self) -> None:
        for name in _POSITIVE + ("decoder_depth", "spatial_offset"):
            object.__setattr__(self, name, int(getattr(self, name)))
        if self.channels is not None:
            from neurorvq.vocabulary import decode_channel_names

            try:
                names = decode_channel_names(self.channels, "channels")
            except InputError as exc:
                raise ConfigError(f"NeuroRVQConfig: {exc}") from None
            object.__setattr__(self, "channels", tuple(str(c).strip().lower() for c in names))
        object.__setattr__(self, "mlp_ratio", float(self.mlp_ratio))
        object.__setattr__(self, "branches", tuple(branch_from_value(i, b) for i, b in enumerate(self.branches)))

    @property
    def num_branches(self) -> int:
        """S, the number of temporal branches (one RVQ each)."""
        return len(self.branches)

    def validate(self, patch_length: int, where: str) -> None:
        """Raise :class:`ConfigError` (``"<where>: <field> <problem>; <fix>"``) unless the config is a valid
        architecture for ``patch_length``-sample patches; ``where`` names the owner, e.g. ``"modality 'ppg'"``."""
        def fail(field_name: str, problem: str, fix: str) -> None:
            raise ConfigError(f"{where}: {field_name} {problem}; {fix}")

        for name in _POSITIVE:
            if getattr(self, name) < 1:
                fail(name, f"is {getattr(self, name)}", "it must be a positive integer")
        if self.decoder_depth < 0:
            fail("decoder_depth", f"is {self.decoder_depth}", "it must be >= 0")
        if not self.branches:
            fail("branches", "is empty", "give at least one TemporalBranch")
        for i, branch in enumerate(self.branches):
            product = 1
            for pool in branch.pools:
                product *= pool
            if patch_length % product:
                fail(f"branches[{i}].pools", f"{branch.pools} (product {product}) do not divide "
                     f"patch_length={patch_length}", "choose a patch_length that is a multiple of the pooling "
                     "product, or smaller pools")
        lengths = [b.output_length(patch_length) for b in self.branches]
        if len(set(lengths)) != 1 or lengths[0] < 1:
            fail("branches", f"give output lengths {lengths} for a {patch_length}-sample patch",
                 "every branch must leave the same number (>= 1) of time steps: adjust kernel sizes, "
                 "paddings or pools")
        expected_dim = self.conv_channels * lengths[0]
        if self.embed_dim != expected_dim:
            fail("embed_dim", f"is {self.embed_dim} but the temporal encoder yields conv_channels x steps = "
                 f"{self.conv_channels} x {lengths[0]} = {expected_dim}",
                 f"set embed_dim={expected_dim} or change conv_channels/pools")
        if self.conv_channels % self.groupnorm_groups:
            fail("groupnorm_groups", f"({self.groupnorm_groups}) does not divide conv_channels="
                 f"{self.conv_channels}", "choose a divisor of conv_channels")
        if self.embed_dim % self.num_heads:
            divisors = [h for h in range(1, self.embed_dim + 1) if self.embed_dim % h == 0]
            fail("num_heads", f"({self.num_heads}) does not divide embed_dim={self.embed_dim}",
                 f"choose one of {divisors}")
        if self.mlp_ratio <= 0:
            fail("mlp_ratio", f"is {self.mlp_ratio}", "it must be > 0")
        if self.spatial_offset not in (0, 1):
            fail("spatial_offset", f"is {self.spatial_offset}", "use 0 (official layout) or 1 (own CLS row)")
        if self.channels is not None:
            if not self.channels:
                fail("channels", "is empty", "list the model's channel names, or leave it out for the modality's")
            dupes = sorted({c for c in self.channels if self.channels.count(c) > 1})
            if dupes:
                fail("channels", f"repeats {dupes} (names match case-insensitively)", "list each channel once")

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form, field by field in declaration order (round-trips through :meth:`from_dict`)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "NeuroRVQConfig":
        """The config of ``data`` (the form :meth:`to_dict` writes); :class:`ConfigError` for unknown fields."""
        refuse_unknown_fields(cls, data)
        required = [f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING]
        missing = [name for name in required if name not in data]
        if missing:
            raise ConfigError(f"missing NeuroRVQConfig field(s) {missing}; required: {required}")
        if isinstance(data.get("branches"), (str, Mapping)):
            raise ConfigError(f"branches is {data['branches']!r}; give a list")
        return cls(**data)


ARCHITECTURE_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(NeuroRVQConfig))
"""The fields of :class:`NeuroRVQConfig`, in declaration order."""


def branch_from_value(index: int, value: Any) -> TemporalBranch:
    """``branches[index]`` given as a :class:`TemporalBranch` (passed through) or a mapping of its fields."""
    if isinstance(value, TemporalBranch):
        return value
    known = [f.name for f in dataclasses.fields(TemporalBranch)]
    if not isinstance(value, Mapping):
        raise ConfigError(f"branches[{index}] is {value!r}; give a mapping of TemporalBranch fields {known}")
    unknown = sorted(set(value) - set(known))
    if unknown:
        raise ConfigError(f"unknown TemporalBranch field(s) {unknown} in branches[{index}]; valid fields: {known}")
    return TemporalBranch(**{k: tuple(v) if v is not None else None for k, v in value.items()})


@dataclass(frozen=True)
class NeuroRVQOptions(TokenizerOptions):
    """NeuroRVQ tokenizer options: the architecture (``None``: the modality's NeuroRVQ default) and training options.

    Args:
        branches: multi-scale temporal branches (kernel sizes and pools per stage).
        embed_dim: transformer width D (= conv_channels x steps left by the branches).
        num_heads: attention heads.
        n_quantizers: RVQ levels per branch.
        codebook_size: codes per level.
        code_dim: code vector size.
        max_patches: patches per channel the temporal embedding indexes.
        conv_channels: feature maps of each temporal conv.
        groupnorm_groups: GroupNorm groups of the temporal convs.
        encoder_depth: encoder transformer blocks.
        decoder_depth: decoder transformer blocks.
        mlp_ratio: MLP width relative to embed_dim.
        spatial_offset: 0 = official spatial table (CLS shares row 0), 1 = CLS row of its own.
        channels: the model's channel vocabulary (None: the modality's); data ids are translated to it.
        circle_weight: weight of the phase loss's circle term (0.1 official code, 0.4 paper; quirk Q5).
        beta: commitment weight.
        aux_weight: the official auxiliary RVQ term's weight (0 drops it; quirk Q6).
        decay: EMA decay of codebooks and usage.
        kmeans_iters: spherical k-means iterations of the first-batch codebook initialisation.
        official_eval_updates: reproduce the official eval-mode quantizer side effects (quirk Q13).
        dead_code_after: re-seed codes unused for this many training steps (0 = off, official; quirk Q14).
        check_inputs: validate inputs at the public entry points.
        crop: crop signals to whole patches instead of refusing them.
    """

    branches: Optional[tuple[TemporalBranch, ...]] = None
    embed_dim: Optional[int] = None
    num_heads: Optional[int] = None
    n_quantizers: Optional[int] = None
    codebook_size: Optional[int] = None
    code_dim: Optional[int] = None
    max_patches: Optional[int] = None
    conv_channels: Optional[int] = None
    groupnorm_groups: Optional[int] = None
    encoder_depth: Optional[int] = None
    decoder_depth: Optional[int] = None
    mlp_ratio: Optional[float] = None
    spatial_offset: Optional[int] = None
    channels: Optional[tuple[str, ...]] = None
    circle_weight: float = 0.1
    beta: float = 1.0
    aux_weight: float = 0.4
    decay: float = 0.99
    kmeans_iters: int = 10
    official_eval_updates: bool = False
    dead_code_after: int = 0
    check_inputs: bool = True
    crop: bool = False

    family: ClassVar[str] = "neurorvq"


FM_ARCHITECTURE_FIELDS = ("branches", "embed_dim", "num_heads", "max_patches", "conv_channels", "groupnorm_groups",
                          "mlp_ratio", "spatial_offset")
"""The architecture fields an FM option may change (token depth and codebook size come from the tokenizer)."""


@dataclass(frozen=True)
class NeuroRVQFMOptions(FMOptions):
    """NeuroRVQ foundation-model options: the backbone (architecture ``None``: the modality's NeuroRVQ default);
    the token heads' depth and vocabulary come from the tokenizer.

    Args:
        depth: transformer blocks.
        init_values: layer-scale initial value (method.md §4.1; 0 = no layer scale).
        branches: multi-scale temporal branches.
        embed_dim: transformer width D.
        num_heads: attention heads.
        max_patches: patches per channel the temporal embedding indexes.
        conv_channels: feature maps of each temporal conv.
        groupnorm_groups: GroupNorm groups of the temporal convs.
        mlp_ratio: MLP width relative to embed_dim.
        spatial_offset: 0 = official spatial table, 1 = CLS row of its own.
        check_inputs: validate inputs at the public entry points.
        crop: crop signals to whole patches instead of refusing them.
    """

    depth: int = 12
    init_values: float = 1e-5
    branches: Optional[tuple[TemporalBranch, ...]] = None
    embed_dim: Optional[int] = None
    num_heads: Optional[int] = None
    max_patches: Optional[int] = None
    conv_channels: Optional[int] = None
    groupnorm_groups: Optional[int] = None
    mlp_ratio: Optional[float] = None
    spatial_offset: Optional[int] = None
    check_inputs: bool = True
    crop: bool = False

    family: ClassVar[str] = "neurorvq"


def option_defaults(cls: type) -> dict[str, Any]:
    """``{field: default}`` of an options class's non-architecture fields (the models' option tables)."""
    return {f.name: f.default for f in dataclasses.fields(cls) if f.name not in ARCHITECTURE_FIELDS}


NEURORVQ = register_family(Family(
    "neurorvq", NeuroRVQConfig, tokenizer="neurorvq.models.tokenizer:NeuroRVQTokenizer",
    foundation_model="neurorvq.models.fm:NeuroRVQFoundationModel",
    doc="multi-scale temporal convolutions, transformer, one RVQ per branch, Fourier decoder (method.md)"))
