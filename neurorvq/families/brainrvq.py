"""BrainRVQ's DD-RVQ tokenizer as a family (families.md Part A): its architecture, options and record.

DD-RVQ (dual-domain residual VQ) is the spectral VQ tokenizer of :mod:`neurorvq.models.spectral_vq` with two
domains and three levels: one LaBraM front end and encoder, one projection whose output ``z`` enters **two** residual
VQs (``time`` and ``frequency``, 3 levels of 8192 x 64 each, level losses summed), and one 3-block decoder per domain
(the per-patch z-scored waveform; the per-sample z-scored |FFT| and angle). It shares every field of LaBraM's
VQ-NSP config: :class:`BrainRVQConfig` is :class:`~neurorvq.families.labram.LaBraMConfig` with BrainRVQ's defaults
(``depth=3``, ``domains=("time", "frequency")``, a 30-row temporal table), the same 129-row ``standard_1020``
vocabulary with its +1 offset and the same in-model scaling (µV / 100). A modality may declare a default under
``families={"brainrvq": BrainRVQConfig(...)}``; otherwise the class defaults (the official full size) apply.

The family's foundation model (hierarchical autoregressive pretraining, §A.4) is not connected yet
(``foundation_model=None``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

from neurorvq.families import Family, register_family
from neurorvq.families.labram import OPTIONS as LABRAM_OPTIONS
from neurorvq.families.labram import LaBraMConfig, LaBraMOptions

FAMILY = "brainrvq"

RECONSTRUCTIONS = ("frequency", "time")
"""How a BrainRVQ tokenizer turns codes into a signal (option ``reconstruction``; module docstring of
:mod:`neurorvq.models.spectral_vq`): the frequency decoder's |FFT| and angle inverted with the input's per-sample
statistics (the default: side information of 4 numbers per window, as VQ-NSP), or the time decoder's z-scored
waveform un-standardised with the input's per-patch mean and std (2 numbers per token)."""


@dataclass(frozen=True)
class BrainRVQConfig(LaBraMConfig):
    """The DD-RVQ architecture (families.md §A.3): :class:`~neurorvq.families.labram.LaBraMConfig`'s fields with
    BrainRVQ's defaults.

    Fields that differ from VQ-NSP's defaults:
        depth: residual levels per domain (3).
        domains: the decoders in token-group order (``("time", "frequency")``: the waveform head, then the |FFT|
            and angle heads); both quantizers read the same ``z``.
        max_patches: rows of the temporal tables (30: at most 30 patches = 6000 samples per channel, left-aligned).
    The rest (width 200, TemporalConv 8 x 25, 10 heads, 12 encoder / 3 decoder blocks, MLP 4, K = 8192, d = 64,
    129 spatial rows over ``standard_1020`` with +1, input scale 0.01, LayerNorm eps 1e-6) is LaBraM's.
    """

    depth: int = 3
    domains: tuple[str, ...] = ("time", "frequency")
    max_patches: int = 30


ARCHITECTURE_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(BrainRVQConfig))


@dataclass(frozen=True)
class BrainRVQOptions(LaBraMOptions):
    """BrainRVQ DD-RVQ tokenizer options (``tokenizer: {class_path: neurorvq.families.brainrvq.BrainRVQOptions,
    init_args: {...}}``): the architecture (``None``: the modality's ``brainrvq`` default, else the official size)
    and the model-level options (families.md §A.3.7).

    Args:
        embed_dim: transformer width D (conv_channels x 25).
        conv_channels: TemporalConv feature maps.
        groupnorm_groups: TemporalConv GroupNorm groups.
        num_heads: attention heads.
        encoder_depth: encoder blocks.
        decoder_depth: blocks of each decoder.
        mlp_ratio: MLP width relative to embed_dim.
        codebook_size: codes K per level.
        code_dim: code dimension d.
        depth: residual levels per domain (3).
        domains: decoder domains in token-group order (["time", "frequency"]).
        max_patches: patches per channel the temporal tables index (30).
        spatial_rows: rows of the spatial tables (129).
        channels: the channel vocabulary in table order (LaBraM's standard_1020 list).
        input_scale: factor applied to the signal inside the model (0.01: µV/100).
        norm_eps: LayerNorm eps.
        parity: reproduce the official code where it is broken (module docstring of neurorvq.models.spectral_vq:
            no epsilon in the spectrum standardisation, A = 1 refused by the decoders, eval-mode usage updates,
            reduced-precision distances under autocast); it also refuses what the official class cannot build
            (depth other than 3, domains other than ["time", "frequency"]).
        beta: commitment weight of the quantizer loss.
        decay: EMA decay of the codebooks and their usage statistics.
        kmeans_iters: k-means iterations of the first-batch codebook initialisation (0: random unit codes, the
            official default without --quantize_kmeans_init).
        check_inputs: validate inputs at the public entry points.
        crop: crop signals to whole patches instead of refusing them.
        reconstruction: the decoder that gives the signal: "frequency" (|FFT| and angle inverted with the input's
            per-sample statistics; default) or "time" (the z-scored waveform times the input's per-patch std plus
            its mean: 2 unquantised numbers per token of side information).
    """

    reconstruction: str = "frequency"

    family: ClassVar[str] = FAMILY


OPTIONS: dict[str, Any] = {**LABRAM_OPTIONS, "reconstruction": "frequency"}
"""The model options that are not architecture, with their defaults (saved in configs beside the architecture)."""

BRAINRVQ = register_family(Family(
    FAMILY, BrainRVQConfig, tokenizer="neurorvq.models.spectral_vq:BrainRVQTokenizer",
    foundation_model="neurorvq.models.brainrvq_fm:BrainRVQFoundationModel",
    doc="BrainRVQ's DD-RVQ: TemporalConv, transformer, one projection into two 3-level EMA residual VQs, a waveform "
        "decoder and an |FFT|/angle decoder (families.md Part A)"))

__all__ = ["ARCHITECTURE_FIELDS", "BRAINRVQ", "BrainRVQConfig", "BrainRVQOptions", "FAMILY", "OPTIONS",
           "RECONSTRUCTIONS"]
