"""LaBraM's VQ-NSP tokenizer as a family (families.md Part B): its architecture, vocabulary, options and record.

VQ-NSP (vector-quantized neural spectrum prediction) is the one-domain, one-level case of the spectral VQ tokenizer
of :mod:`neurorvq.models.spectral_vq` (families.md §B.11): ``domains=("frequency",)``, ``depth=1``, a 16-row
temporal table. What a checkpoint fixes besides the signal is :class:`LaBraMConfig`: the widths and depths, the
codebook, the tables (129 spatial rows over LaBraM's ``standard_1020`` list with a +1 offset, 16 left-aligned
temporal rows) and the in-model input scaling (µV / 100). A modality may declare a default under
``families={"labram_vqnsp": LaBraMConfig(...)}``; otherwise the class defaults (the official full size, code dim
64) apply. The family's foundation model is LaBraM-Base's masked-code student (families.md §B.7,
:mod:`neurorvq.models.labram_fm`, options :class:`LaBraMFMOptions`): it shares the front end, width, tables,
vocabulary and scaling (:data:`FM_ARCHITECTURE_FIELDS`) and predicts the tokenizer's one code per token.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar, Mapping, Optional

from neurorvq.errors import ConfigError
from neurorvq.families import Family, register_family
from neurorvq.families.neurorvq import TemporalBranch
from neurorvq.families.options import FMOptions, TokenizerOptions, refuse_unknown_fields

FAMILY = "labram_vqnsp"

LABRAM_STANDARD_1020: tuple[str, ...] = (
    "FP1", "FPZ", "FP2", "AF9", "AF7", "AF5", "AF3", "AF1", "AFZ", "AF2",
    "AF4", "AF6", "AF8", "AF10", "F9", "F7", "F5", "F3", "F1", "FZ",
    "F2", "F4", "F6", "F8", "F10", "FT9", "FT7", "FC5", "FC3", "FC1",
    "FCZ", "FC2", "FC4", "FC6", "FT8", "FT10", "T9", "T7", "C5", "C3",
    "C1", "CZ", "C2", "C4", "C6", "T8", "T10", "TP9", "TP7", "CP5",
    "CP3", "CP1", "CPZ", "CP2", "CP4", "CP6", "TP8", "TP10", "P9", "P7",
    "P5", "P3", "P1", "PZ", "P2", "P4", "P6", "P8", "P10", "PO9",
    "PO7", "PO5", "PO3", "PO1", "POZ", "PO2", "PO4", "PO6", "PO8", "PO10",
    "O1", "OZ", "O2", "O9", "CB1", "CB2", "IZ", "O10", "T3", "T5",
    "T4", "T6", "M1", "M2", "A1", "A2", "CFC1", "CFC2", "CFC3", "CFC4",
    "CFC5", "CFC6", "CFC7", "CFC8", "CCP1", "CCP2", "CCP3", "CCP4", "CCP5", "CCP6",
    "CCP7", "CCP8", "T1", "T2", "FTT9h", "TTP7h", "TPP9h", "FTT10h", "TPP8h", "TPP10h",
    "FP1-F7", "F7-T7", "T7-P7", "P7-O1", "FP2-F8", "F8-T8", "T8-P8", "P8-O2", "FP1-F3", "F3-C3",
    "C3-P3", "P3-O1", "FP2-F4", "F4-C4", "C4-P4", "P4-O2",
)
"""LaBraM's channel list in its order (families.md §A.2): channel ``i`` uses spatial row ``i + 1`` (row 0 is the CLS
token's). Only the first ``spatial_rows - 1`` names (128 of 136) have a row; the last 8 bipolar names overflow the
official 129-row table, which is why LaBraM's loaders name a bipolar pair by its first electrode (LQ6)."""

LABRAM_CONV = TemporalBranch(kernel_sizes=(15, 3, 3), pools=(1, 1, 1), paddings=(7, 1, 1), strides=(8, 1, 1))
"""LaBraM's TemporalConv (families.md §A.3.1) as one temporal branch: 200 samples -> 25 steps."""

DOMAINS = ("time", "frequency")
"""The decoder domains of the spectral VQ tokenizer: BrainRVQ's waveform (``time``) and spectrum (``frequency``)."""

_POSITIVE = ("embed_dim", "conv_channels", "groupnorm_groups", "num_heads", "encoder_depth", "decoder_depth",
             "codebook_size", "code_dim", "depth", "max_patches")


@dataclass(frozen=True)
class LaBraMConfig:
    """The VQ-NSP architecture (families.md §B.3) and what a checkpoint fixes besides the signal.

    Fields:
        embed_dim: transformer width D (= conv_channels x the 25 steps TemporalConv leaves of a 200-sample patch).
        conv_channels, groupnorm_groups: TemporalConv feature maps (8) and GroupNorm groups (4).
        num_heads, encoder_depth, decoder_depth, mlp_ratio: transformer sizes (10 heads of 20, 12 / 3 blocks, 4).
        codebook_size, code_dim: K codes of dimension d (8192 x 64; the official code's default d is 32, LQ1).
        depth: quantizer levels per domain (1: VQ-NSP's single codebook).
        domains: the decoders, in token-group order (``("frequency",)``: amplitude and angle heads).
        max_patches: rows of the temporal tables (16: at most 16 patches per channel, left-aligned ids 0..A-1).
        spatial_rows: rows of the spatial tables (129: the CLS row plus 128 channel rows).
        channels: the channel vocabulary, in table order (channel ``i`` uses row ``i + 1``); names beyond
            ``spatial_rows - 1`` are known but have no row.
        input_scale: factor applied to the signal inside the model (0.01: µV -> the µV/100 LaBraM trains on).
        norm_eps: eps of every LayerNorm (1e-6).
    """

    embed_dim: int = 200
    conv_channels: int = 8
    groupnorm_groups: int = 4
    num_heads: int = 10
    encoder_depth: int = 12
    decoder_depth: int = 3
    mlp_ratio: float = 4.0
    codebook_size: int = 8192
    code_dim: int = 64
    depth: int = 1
    domains: tuple[str, ...] = ("frequency",)
    max_patches: int = 16
    spatial_rows: int = 129
    channels: tuple[str, ...] = LABRAM_STANDARD_1020
    input_scale: float = 0.01
    norm_eps: float = 1e-6

    def __post_init__(self) -> None:
        for name in _POSITIVE + ("spatial_rows",):
            object.__setattr__(self, name, int(getattr(self, name)))
        for name in ("mlp_ratio", "input_scale", "norm_eps"):
            object.__setattr__(self, name, float(getattr(self, name)))
        if isinstance(self.domains, str) or isinstance(self.channels, str):
            raise ConfigError(f"{type(self).__name__}: domains and channels are lists of names, not a single string")
        object.__setattr__(self, "domains", tuple(str(d) for d in self.domains))
        object.__setattr__(self, "channels", tuple(str(c).strip() for c in self.channels))

    @property
    def usable_channels(self) -> tuple[str, ...]:
        """The names that have a spatial row (``channels[:spatial_rows - 1]``): the model's vocabulary."""
        return self.channels[: self.spatial_rows - 1]

    def validate(self, patch_length: int, where: str) -> None:
        """Raise :class:`ConfigError` (``"<where>: <field> <problem>; <fix>"``) unless this is a valid architecture
        for ``patch_length``-sample patches."""
        def fail(name: str, problem: str, fix: str) -> None:
            raise ConfigError(f"{where}: {name} {problem}; {fix}")

        for name in _POSITIVE:
            if getattr(self, name) < 1:
                fail(name, f"is {getattr(self, name)}", "it must be a positive integer")
        steps = LABRAM_CONV.output_length(patch_length)
        if steps < 1:
            fail("patch_length", f"{patch_length} is too short for LaBraM's TemporalConv", "use 200-sample patches")
        if self.embed_dim != self.conv_channels * steps:
            fail("embed_dim", f"is {self.embed_dim} but TemporalConv yields conv_channels x steps = "
                 f"{self.conv_channels} x {steps} = {self.conv_channels * steps} for {patch_length}-sample patches",
                 f"set embed_dim={self.conv_channels * steps} or change conv_channels")
        if self.conv_channels % self.groupnorm_groups:
            fail("groupnorm_groups", f"({self.groupnorm_groups}) does not divide conv_channels={self.conv_channels}",
                 "choose a divisor of conv_channels")
        if self.embed_dim % self.num_heads:
            divisors = [h for h in range(1, self.embed_dim + 1) if self.embed_dim % h == 0]
            fail("num_heads", f"({self.num_heads}) does not divide embed_dim={self.embed_dim}",
                 f"choose one of {divisors}")
        if self.mlp_ratio <= 0:
            fail("mlp_ratio", f"is {self.mlp_ratio}", "it must be > 0")
        unknown = [d for d in self.domains if d not in DOMAINS]
        if not self.domains or unknown or len(set(self.domains)) != len(self.domains):
            fail("domains", f"is {list(self.domains)}", f"give distinct names out of {list(DOMAINS)}")
        if self.spatial_rows < 2:
            fail("spatial_rows", f"is {self.spatial_rows}", "it must be >= 2 (the CLS row and one channel row)")
        if not self.channels:
            fail("channels", "is empty", "list the model's channel names in table order")
        keys = [c.lower() for c in self.channels]
        dupes = sorted({c for c, k in zip(self.channels, keys) if keys.count(k) > 1})
        if dupes:
            fail("channels", f"repeats {dupes} (names match case-insensitively)", "list each channel once")
        if self.input_scale <= 0:
            fail("input_scale", f"is {self.input_scale}", "give the factor from the signal's unit to the model's, > 0")
        if self.norm_eps <= 0:
            fail("norm_eps", f"is {self.norm_eps}", "it must be > 0")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (round-trips through :meth:`from_dict`)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "LaBraMConfig":
        """The config of ``data`` (the form :meth:`to_dict` writes); :class:`ConfigError` for unknown fields."""
        refuse_unknown_fields(cls, data)
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


ARCHITECTURE_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(LaBraMConfig))


@dataclass(frozen=True)
class LaBraMOptions(TokenizerOptions):
    """LaBraM VQ-NSP tokenizer options (``tokenizer: {class_path: neurorvq.families.labram.LaBraMOptions,
    init_args: {...}}``): the architecture (``None``: the modality's ``labram`` default, else the official size)
    and the model-level training options (families.md §B.5).

    Args:
        embed_dim: transformer width D (conv_channels x 25).
        conv_channels: TemporalConv feature maps.
        groupnorm_groups: TemporalConv GroupNorm groups.
        num_heads: attention heads.
        encoder_depth: encoder blocks.
        decoder_depth: decoder blocks.
        mlp_ratio: MLP width relative to embed_dim.
        codebook_size: codes K.
        code_dim: code dimension d (64, the README's; 32 is the official code's default).
        depth: quantizer levels per domain (1 for VQ-NSP).
        domains: decoder domains (``["frequency"]`` for VQ-NSP).
        max_patches: patches per channel the temporal tables index (16).
        spatial_rows: rows of the spatial tables (129).
        channels: the channel vocabulary in table order (LaBraM's standard_1020 list).
        input_scale: factor applied to the signal inside the model (0.01: µV/100).
        norm_eps: LayerNorm eps.
        parity: reproduce the official code's behaviour where it is broken (module docstring of
            neurorvq.models.spectral_vq: no epsilon in the target standardisation, A = 1 refused by the decoder,
            eval-mode usage updates, reduced-precision distances under autocast).
        beta: commitment weight of the quantizer loss.
        decay: EMA decay of the codebook and its usage statistics.
        kmeans_iters: k-means iterations of the first-batch codebook initialisation (0: random unit codes, the
            official default without --quantize_kmeans_init).
        check_inputs: validate inputs at the public entry points.
        crop: crop signals to whole patches instead of refusing them.
    """

    embed_dim: Optional[int] = None
    conv_channels: Optional[int] = None
    groupnorm_groups: Optional[int] = None
    num_heads: Optional[int] = None
    encoder_depth: Optional[int] = None
    decoder_depth: Optional[int] = None
    mlp_ratio: Optional[float] = None
    codebook_size: Optional[int] = None
    code_dim: Optional[int] = None
    depth: Optional[int] = None
    domains: Optional[tuple[str, ...]] = None
    max_patches: Optional[int] = None
    spatial_rows: Optional[int] = None
    channels: Optional[tuple[str, ...]] = None
    input_scale: Optional[float] = None
    norm_eps: Optional[float] = None
    parity: bool = False
    beta: float = 1.0
    decay: float = 0.99
    kmeans_iters: int = 10
    check_inputs: bool = True
    crop: bool = False

    family: ClassVar[str] = FAMILY


OPTIONS: dict[str, Any] = {f.name: f.default for f in dataclasses.fields(LaBraMOptions)
                           if f.name not in ARCHITECTURE_FIELDS}
"""The model options that are not architecture, with their defaults (saved in configs beside the architecture)."""

FM_ARCHITECTURE_FIELDS: tuple[str, ...] = ("embed_dim", "conv_channels", "groupnorm_groups", "num_heads", "mlp_ratio",
                                           "max_patches", "spatial_rows", "channels", "input_scale", "norm_eps")
"""The :class:`LaBraMConfig` fields the masked-code student shares with the tokenizer's encoder (front end, width,
tables, vocabulary, scaling); its depth and head size are FM options, its vocabulary comes from the tokenizer."""


@dataclass(frozen=True)
class LaBraMFMOptions(FMOptions):
    """LaBraM-Base's masked-code student (families.md §B.7): ``fm: {class_path:
    neurorvq.families.labram.LaBraMFMOptions, init_args: {...}}`` in a pretraining recipe, ``fm_overrides`` in a
    fine-tuning one. Architecture fields left ``None`` take the modality's ``labram_vqnsp`` default (else the official
    size); the token head's size comes from the tokenizer.

    Args:
        depth: transformer blocks (12).
        init_values: layer-scale initial value (0.1).
        drop_path: stochastic depth of the last block, linearly spaced from 0 (0 in LaBraM's pretraining; its
            fine-tuning uses 0.1, which FinetuneTask's ``drop_path`` sets).
        parity: reproduce the official code where it differs (neurorvq.models.labram_fm: the CLS token on the first
            channel's spatial row in pretraining, the dead ``student.lm_head`` and ``projection_head`` kept, the
            tokenizer run under fp16 autocast on GPUs, ``time_embed`` in the top layer-decay group).
        embed_dim: transformer width D (conv_channels x 25).
        conv_channels: TemporalConv feature maps.
        groupnorm_groups: TemporalConv GroupNorm groups.
        num_heads: attention heads (QK-norm per head).
        mlp_ratio: MLP width relative to embed_dim.
        max_patches: rows of the temporal table (16).
        spatial_rows: rows of the spatial table (129).
        channels: the channel vocabulary in table order (LaBraM's standard_1020 list).
        input_scale: factor applied to the signal inside the model (0.01: µV/100).
        norm_eps: LayerNorm eps (1e-6).
        check_inputs: validate inputs at the public entry points.
        crop: crop signals to whole patches instead of refusing them.
    """

    depth: int = 12
    init_values: float = 0.1
    drop_path: float = 0.0
    parity: bool = False
    embed_dim: Optional[int] = None
    conv_channels: Optional[int] = None
    groupnorm_groups: Optional[int] = None
    num_heads: Optional[int] = None
    mlp_ratio: Optional[float] = None
    max_patches: Optional[int] = None
    spatial_rows: Optional[int] = None
    channels: Optional[tuple[str, ...]] = None
    input_scale: Optional[float] = None
    norm_eps: Optional[float] = None
    check_inputs: bool = True
    crop: bool = False

    family: ClassVar[str] = FAMILY


LABRAM = register_family(Family(
    FAMILY, LaBraMConfig, tokenizer="neurorvq.models.spectral_vq:LaBraMTokenizer",
    foundation_model="neurorvq.models.labram_fm:LaBraMFoundationModel",
    doc="LaBraM's VQ-NSP: TemporalConv, transformer, one EMA codebook, Fourier amplitude/angle decoder; LaBraM-Base's "
        "masked-code student (families.md Part B)"))

__all__ = ["ARCHITECTURE_FIELDS", "DOMAINS", "FAMILY", "FM_ARCHITECTURE_FIELDS", "LABRAM", "LABRAM_CONV",
           "LABRAM_STANDARD_1020", "LaBraMConfig", "LaBraMFMOptions", "LaBraMOptions", "OPTIONS"]
