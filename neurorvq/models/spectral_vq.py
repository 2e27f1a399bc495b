"""The spectral VQ tokenizer: BrainRVQ's DD-RVQ, and LaBraM's VQ-NSP as its one-domain, one-level case.

Pipeline (families.md §A.3, §B.3), shapes with B batch, C channels, A patches per channel, T samples per patch,
L = C*A tokens (channel-major), D width, d code dimension, S domains, N levels:

1. ``x [B, C, A*T]`` in the signal's unit, times ``input_scale`` (µV -> µV/100), cut into ``[B, C, A, T]``;
2. :class:`SpectralEncoder`: TemporalConv (one branch, stride 8) -> ``[B, L, D]``; CLS + spatial row (channel id
   + 1) + temporal row (patch index, left-aligned); blocks; CLS dropped; ``fc_norm``; Linear-Tanh-Linear in fp32
   -> ``z [B, L, d]``;
3. one residual VQ per domain (:class:`~neurorvq.nn.rvq.ResidualVQ` with S branches of N levels, no auxiliary
   term), every domain fed the same ``z``; the quantizer loss is the sum over levels and domains;
4. one decoder per domain (:data:`DOMAIN_DECODERS`), each a 1x1 conv d -> D with its own tables and blocks,
   ``fc_norm`` and Linear-Tanh-Linear heads of T outputs. ``frequency`` (:class:`FrequencyDecoder`): the per-sample
   z-scored |FFT| and angle of every patch (all T bins), loss MSE(amplitude) + MSE(angle). ``time``
   (:class:`TimeDecoder`, BrainRVQ): each patch's waveform z-scored over its own samples, loss MSE.

Families: :class:`LaBraMTokenizer` (VQ-NSP: ``frequency``, one level) and :class:`BrainRVQTokenizer` (DD-RVQ:
``time`` and ``frequency``, three levels each; ids ``[B, 6, L]``, the time group first).

**The signal** (``forward``'s reconstruction, ``detokenize``; the official code of neither family has one) comes
from one decoder, :attr:`SpectralVQTokenizer.reconstruction_domain`, whose side fields :meth:`tokenize` returns:

- ``frequency`` (VQ-NSP; BrainRVQ's default, option ``reconstruction``): the inverse of §B.6, an inference:
  un-standardise the predicted amplitude and angle with the input's per-sample statistics (4 numbers per window),
  clamp the amplitude at >= 0, ``X = A exp(i phi)``, real inverse FFT per patch;
- ``time`` (BrainRVQ, ``reconstruction="time"``): the predicted z-scored waveform times the input patch's
  ``std + 1e-6`` plus its mean (§A.3.5); side fields ``waveform_mean``/``waveform_std`` ``[B, C*A]``.

Both divided by ``input_scale`` (back to µV). BrainRVQ reconstructs from ``frequency`` by default so that a
comparison (``neurorvq compare-tokenizers``, which counts the ids' bits but not the side information) gives it what it
gives VQ-NSP and NeuroRVQ: a few numbers per window besides the codes. The ``time`` route hands the decoder each
patch's exact mean and scale (2 unquantised numbers per token): a staircase of patch means already carries much of the
delta band, so its scores are not comparable with the others'; it is there to look at the waveform head itself.

**Official behaviour (``parity=True``) vs the default** (families.md §B.8, §A.9; LaBraM's table is in
``docs/tokenizer-families.md``). Both modes: more than ``max_patches`` patches per channel (16 VQ-NSP, 30 BrainRVQ)
is one error naming the longest window; unknown channel names are listed with their closest vocabulary names; names
match case-insensitively (the official list look-up is case-sensitive: it raises on ``fp1``).

| # | official (``parity=True``) | default |
|---|---|---|
| LQ3 / BQ3 | |FFT| and angle z-scores without epsilon: a flat sample gives NaN targets and losses | variance floored at 1e-8 |
| BQ3 (time) | waveform z-score ``/(std + 1e-6)``: finite for a flat patch | the same |
| LQ4 / BQ4 | the decoders take C for A when A = 1 and crash: one-patch windows are refused by ``forward``/``detokenize`` (``tokenize`` works, the encoder handles them) | one-patch windows decode (ids passed explicitly) |
| LQ5 / BQ11 | usage EMA updated and k-means run in eval mode; distances in the autocast dtype (fp16 on GPU) | eval leaves the quantizer untouched; distances in float32 |
| BQ1 | the tokenizer's CLS uses spatial row 0 (the first-channel row is the pretraining student's quirk) | the same |
| BQ5 | angle target = z-scored wrapped angle regressed with MSE | the same (it defines the method) |
| BQ6 | both RVQs quantize the same ``z``; level losses summed, no auxiliary term | the same |
| BQ9 | ``get_tokens`` unpacks 3 of 6 values and fails; ``get_codebook_indices`` works | :meth:`tokenize` and :meth:`BrainRVQTokenizer.get_codebook_indices` (the official pair ``[3, B, L]`` x 2) |
| — | ``DDRVQ`` hard-codes 2 domains x 3 levels (and 8192 x 64, silently regrouping other code dims) | any depth/domains/size; ``parity=True`` refuses depth != 3 or domains != (time, frequency) |
| — | k-means opt-in (``--quantize_kmeans_init`` off by default) | ``kmeans_iters=10`` (0 = the script default) |

Ids, intermediates and losses equal the official ones in both modes on non-degenerate input
(``tests/models/test_vqnsp_equivalence.py``, ``tests/models/test_ddrvq_equivalence.py``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar, Mapping, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from neurorvq.compat import canonical_unit
from neurorvq.errors import ConfigError, InputError
from neurorvq.families import get_family
from neurorvq.families import brainrvq
from neurorvq.families.labram import ARCHITECTURE_FIELDS, FAMILY, LABRAM_CONV, LaBraMConfig, OPTIONS
from neurorvq.models.inputs import check_finite
from neurorvq.models.pretrained import PretrainedMixin
from neurorvq.nn.code_search import BlockSearch
from neurorvq.nn.rvq import ResidualVQ
from neurorvq.nn.spectral import (VAR_FLOOR, SpectrumStats, signal_from_spectrum_targets,
                                  signal_from_waveform_targets, spectrum_targets, waveform_targets)
from neurorvq.nn.temporal import TemporalConvBranch
from neurorvq.nn.transformer import TokenTransformer
from neurorvq.registry import ModalitySpec, get_modality
from neurorvq.suggest import close_matches, did_you_mean
from neurorvq.tokenizers import Encoded, SideField, SignalContract, TokenLayout

__all__ = ["BrainRVQTokenizer", "DOMAIN_DECODERS", "FrequencyDecoder", "LaBraMTokenizer", "SpectralEncoder",
           "SpectralVQOutput", "SpectralVQTokenizer", "TimeDecoder", "autocast_search"]


def autocast_search(dtype: torch.dtype) -> BlockSearch:
    """A nearest-code block kernel whose ``z.e`` product runs in ``dtype`` (the official distances under fp16
    autocast: ``|z|^2 + |e|^2 - 2 z.e`` with the product in half precision; the norms stay float32)."""
    def block(z: torch.Tensor, codebook: torch.Tensor, code_sq_norms: torch.Tensor):
        products = torch.bmm(z.to(dtype), codebook.to(dtype).transpose(1, 2)).float()
        scores = code_sq_norms - 2.0 * products
        ids = scores.argmin(dim=-1)
        return ids, scores.gather(-1, ids.unsqueeze(-1)).squeeze(-1)

    return block


def _head(dim: int, out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(dim, dim), nn.Tanh(), nn.Linear(dim, out))


def _transformer(config: LaBraMConfig, depth: int) -> TokenTransformer:
    """The tokenizer transformers of LaBraM/BrainRVQ: q/v bias, no QK-norm, no layer scale, LN eps 1e-6."""
    return TokenTransformer(config.embed_dim, depth, config.num_heads, config.spatial_rows, config.max_patches,
                            config.mlp_ratio, qkv_bias=True, norm_eps=config.norm_eps, qk_norm=False)


class SpectralEncoder(nn.Module):
    """TemporalConv -> transformer -> ``fc_norm`` -> projection to code space (families.md §A.3.1-§A.3.3)."""

    def __init__(self, config: LaBraMConfig) -> None:
        super().__init__()
        self.conv = TemporalConvBranch(LABRAM_CONV, config.conv_channels, config.groupnorm_groups)
        self.transformer = _transformer(config, config.encoder_depth)
        self.fc_norm = nn.LayerNorm(config.embed_dim, eps=config.norm_eps)
        self.projection = _head(config.embed_dim, config.code_dim)

    def forward(self, patches: torch.Tensor, spatial_ids: torch.Tensor, temporal_ids: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``patches [B, C, A, T]`` -> ``(patch_embed [B, L, D], features [B, L, D], projected [B, L, d])``; the
        projection runs in float32 (autocast off, as the official code)."""
        b, c, a, t = patches.shape
        patch_embed = self.conv(patches.reshape(b, 1, c * a, t))
        features = self.fc_norm(self.transformer(patch_embed, spatial_ids, temporal_ids))
        with torch.autocast(device_type=features.device.type, enabled=False):
            projected = self.projection(features.float())
        return patch_embed, features, projected


class CodeDecoder(nn.Module):
    """Codes -> features -> named Linear-Tanh-Linear heads of ``patch_length`` outputs: the part every domain's
    decoder shares. The official decoder is a 1x1 conv over the code map ``[B, d, C, A]``; on channel-major tokens
    that is this Linear(d, D). Its tables and blocks are its own."""

    def __init__(self, config: LaBraMConfig, patch_length: int, heads: tuple[str, ...]) -> None:
        super().__init__()
        self.embed = nn.Linear(config.code_dim, config.embed_dim)
        self.transformer = _transformer(config, config.decoder_depth)
        self.fc_norm = nn.LayerNorm(config.embed_dim, eps=config.norm_eps)
        self.heads = nn.ModuleDict({name: _head(config.embed_dim, patch_length) for name in heads})

    def forward(self, quantized: torch.Tensor, spatial_ids: torch.Tensor, temporal_ids: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """``quantized [B, L, d]`` -> ``(embedded [B, L, D], features [B, L, D], {head: [B, L, T]})`` (head outputs in
        float32)."""
        embedded = self.embed(quantized)
        features = self.fc_norm(self.transformer(embedded, spatial_ids, temporal_ids))
        return embedded, features, {name: head(features).float() for name, head in self.heads.items()}


class FrequencyDecoder(CodeDecoder):
    """Domain ``frequency``: codes -> per-sample z-scored |FFT| and angle of every patch (families.md §B.3-§B.4),
    heads ``amplitude`` and ``angle``."""

    side_fields: ClassVar[tuple[SideField, ...]] = (
        SideField("amplitude_mean", doc="per-sample mean of |FFT| (model input unit)"),
        SideField("amplitude_std", doc="per-sample std of |FFT| (model input unit)"),
        SideField("angle_mean", doc="per-sample mean of the FFT angle (rad)"),
        SideField("angle_std", doc="per-sample std of the FFT angle (rad)"),
    )
    loss_names: ClassVar[tuple[str, ...]] = ("amp", "angle")

    def __init__(self, config: LaBraMConfig, patch_length: int) -> None:
        super().__init__(config, patch_length, ("amplitude", "angle"))

    @staticmethod
    def targets(patches: torch.Tensor, parity: bool) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """``patches [B, C, A, T]`` (model unit) -> ``({"amplitude", "angle"} [B, C, A, T], side {name: [B]})``."""
        t = spectrum_targets(patches, var_floor=None if parity else VAR_FLOOR)
        return {"amplitude": t.amplitude, "angle": t.angle}, dict(zip(SpectrumStats._fields, t.stats))

    @staticmethod
    def losses(predictions: Mapping[str, torch.Tensor], targets: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """MSE of each head against its target (reshaped to ``[B, L, T]``), named by :attr:`loss_names`."""
        amp = F.mse_loss(predictions["amplitude"], targets["amplitude"].reshape(predictions["amplitude"].shape))
        angle = F.mse_loss(predictions["angle"], targets["angle"].reshape(predictions["angle"].shape))
        return {"amp": amp, "angle": angle}

    @staticmethod
    def reconstruct(predictions: Mapping[str, torch.Tensor], side: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Patches ``[B, L, T]`` (model unit) from the heads' outputs and the input's statistics (§B.6)."""
        stats = SpectrumStats(*(side[name] for name in SpectrumStats._fields))
        return signal_from_spectrum_targets(predictions["amplitude"], predictions["angle"], stats)


class TimeDecoder(CodeDecoder):
    """Domain ``time`` (BrainRVQ, families.md §A.3.5): codes -> each patch's waveform z-scored over its own samples,
    ``(x - mean) / (std + 1e-6)`` (unbiased std), by one head ``waveform``; loss MSE.

    Decoding to a signal needs the input's per-patch mean and std (side fields ``[B, C*A]``, channel-major, model
    input unit): 2 unquantised numbers per token."""

    side_fields: ClassVar[tuple[SideField, ...]] = (
        SideField("waveform_mean", doc="per-patch mean of the input, [B, C*A] channel-major (model input unit)"),
        SideField("waveform_std", doc="per-patch unbiased std of the input, [B, C*A] channel-major (model input "
                                      "unit)"),
    )
    loss_names: ClassVar[tuple[str, ...]] = ("time",)

    def __init__(self, config: LaBraMConfig, patch_length: int) -> None:
        super().__init__(config, patch_length, ("waveform",))

    @staticmethod
    def targets(patches: torch.Tensor, parity: bool) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """``patches [B, C, A, T]`` (model unit) -> ``({"waveform": [B, C, A, T]}, side {name: [B, C*A]})``; the
        official formula in both modes (its epsilon already keeps a flat patch finite)."""
        waveform, stats = waveform_targets(patches)
        b = patches.shape[0]
        return {"waveform": waveform}, {"waveform_mean": stats.mean.reshape(b, -1),
                                        "waveform_std": stats.std.reshape(b, -1)}

    @staticmethod
    def losses(predictions: Mapping[str, torch.Tensor], targets: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """MSE of the waveform head against its target (reshaped to ``[B, L, T]``): ``{"time": ...}``."""
        pred = predictions["waveform"]
        return {"time": F.mse_loss(pred, targets["waveform"].reshape(pred.shape))}

    @staticmethod
    def reconstruct(predictions: Mapping[str, torch.Tensor], side: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Patches ``[B, L, T]`` (model unit): the predicted z-scored waveform times the input patch's ``std + 1e-6``
        plus its mean (families.md §A.3.5)."""
        return signal_from_waveform_targets(predictions["waveform"], side["waveform_mean"], side["waveform_std"])


DOMAIN_DECODERS: dict[str, type[nn.Module]] = {"time": TimeDecoder, "frequency": FrequencyDecoder}
"""Domain name -> decoder class (``__init__(config, patch_length)``, ``forward``, ``targets``, ``losses``,
``reconstruct``, ``side_fields``, ``loss_names``): the extension point for new decoder domains."""


class Prepared(NamedTuple):
    """A checked batch: ``patches [B, C, A, T]`` (model unit), ``spatial_ids [L]`` or ``[B, L]`` (channel id + 1),
    ``temporal_ids [L]`` (patch index, left-aligned)."""

    patches: torch.Tensor
    spatial_ids: torch.Tensor
    temporal_ids: torch.Tensor


@dataclass
class SpectralVQOutput:
    """Everything one pass computes (shapes in the module docstring; per-domain entries keyed by domain name)."""

    patches: torch.Tensor            # [B, C, A, T] model unit (x * input_scale)
    patch_embed: torch.Tensor        # [B, L, D] TemporalConv output
    encoder_features: torch.Tensor   # [B, L, D] after fc_norm
    projected: torch.Tensor          # [B, L, d] quantizer input
    normalised: torch.Tensor         # [B, L, d] l2-normalised quantizer input
    quantized: torch.Tensor          # [S, B, L, d]
    tokens: torch.Tensor             # [B, S, N, L] int64
    decoder_embed: dict[str, torch.Tensor]     # domain -> [B, L, D] (1x1 conv output)
    decoder_features: dict[str, torch.Tensor]  # domain -> [B, L, D]
    predictions: dict[str, dict[str, torch.Tensor]]  # domain -> head -> [B, L, T]
    targets: dict[str, dict[str, torch.Tensor]]      # domain -> head -> [B, C, A, T]
    side: dict[str, torch.Tensor]    # side field -> [B]
    reconstruction: torch.Tensor     # [B, C, A*T] signal unit
    losses: dict[str, torch.Tensor]
    quant_per_level: torch.Tensor | None = None  # [S, N] each level's commitment loss (``quant`` is their sum)


class SpectralVQTokenizer(PretrainedMixin, nn.Module):
    """A spectral VQ tokenizer for ``modality`` (a registered name, a spec file or a :class:`ModalitySpec`).

    ``overrides``: :class:`~neurorvq.families.labram.LaBraMConfig` fields (the modality's default for the family,
    else the class defaults, is the base) and model options (:data:`~neurorvq.families.labram.OPTIONS`: ``parity``,
    ``beta``, ``decay``, ``kmeans_iters``, ``check_inputs``, ``crop``). Signals ``x`` are ``[B, C, A*T]`` float in
    the modality's unit with ``T = patch_length``; ``channels`` are vocabulary names (case-insensitive) or ids into
    ``contract.channels``, a list ``[C]`` or an int tensor ``[C]`` / ``[B, C]``. ``config`` is the
    :class:`~neurorvq.families.labram.LaBraMConfig` (so it writes its own ``save_pretrained``; ``from_pretrained``
    comes from :class:`PretrainedMixin`).
    """

    family: ClassVar[str] = FAMILY
    model_kind: ClassVar[str] = "tokenizer"
    display_name: ClassVar[str] = "LaBraM"  # the family in messages
    option_defaults: ClassVar[Mapping[str, Any]] = OPTIONS
    one_patch_quirk: ClassVar[str] = "LQ4"

    def __init__(self, modality: str | ModalitySpec = "eeg", **overrides: Any) -> None:
        super().__init__()
        self.signal = get_modality(modality)
        config_class = get_family(self.family).config
        fields = set(ARCHITECTURE_FIELDS)
        options = self.option_defaults
        unknown = sorted(set(overrides) - fields - set(options))
        if unknown:
            hints = "".join(f" {u!r}{did_you_mean(u, fields | set(options), 1)}" for u in unknown)
            raise ConfigError(f"unknown {self.family} override(s):{hints}; valid: architecture {sorted(fields)}, "
                              f"options {sorted(options)}")
        base = self.signal.families.get(self.family, config_class())
        config = replace(base, **{k: v for k, v in overrides.items() if k in fields})
        where = f"modality '{self.signal.name}', family '{self.family}'"
        config.validate(self.signal.patch_length, where)
        missing = [d for d in config.domains if d not in DOMAIN_DECODERS]
        if missing:
            raise ConfigError(f"{where}: domains {missing} have no decoder yet (implemented: "
                              f"{sorted(DOMAIN_DECODERS)}); BrainRVQ's 'time' decoder is added to DOMAIN_DECODERS")
        if config.input_scale == 0.01 and canonical_unit(self.signal.unit) != "uV":
            raise ConfigError(f"{where}: input_scale 0.01 turns µV into {self.display_name}'s µV/100, but the "
                              f"modality's unit is "
                              f"{self.signal.unit}; set input_scale to the factor from {self.signal.unit} to 100 µV")
        self.config = config
        self.options = {**options, **{k: v for k, v in overrides.items() if k in options}}
        self.check_options(where)
        self._vocabulary = {name.lower(): i for i, name in enumerate(config.channels)}
        self.encoder = SpectralEncoder(config)
        self.quantizer = ResidualVQ(len(config.domains), config.depth, config.codebook_size, config.code_dim,
                                    decay=self.options["decay"], beta=self.options["beta"], aux_weight=0.0,
                                    kmeans_iters=self.options["kmeans_iters"],
                                    official_eval_updates=bool(self.options["parity"]))
        self.decoders = nn.ModuleDict({d: DOMAIN_DECODERS[d](config, self.signal.patch_length)
                                       for d in config.domains})
        self.init_weights()

    def check_options(self, where: str) -> None:
        """Raise :class:`ConfigError` for options this family's model cannot honour (none for VQ-NSP)."""

    # ------------------------------------------------------------------------------------ protocol
    @property
    def reconstruction_domain(self) -> str:
        """The domain whose decoder gives the signal (option ``reconstruction``, else the first domain)."""
        return str(self.options.get("reconstruction") or self.config.domains[0])

    @property
    def loss_names(self) -> tuple[str, ...]:
        """The scalar losses of :meth:`forward`: the total, the quantizer's, then each decoder's."""
        return ("loss", "quant") + tuple(n for d in self.decoders.values() for n in d.loss_names)

    @property
    def layout(self) -> TokenLayout:
        """One group per domain of ``depth`` levels of ``codebook_size`` codes; decoding needs the input's
        statistics that the reconstructing decoder names (its side fields)."""
        c = self.config
        side = self.decoders[self.reconstruction_domain].side_fields
        return TokenLayout.uniform(list(c.domains), c.depth, c.codebook_size, side=side)

    @property
    def contract(self) -> SignalContract:
        s, c = self.signal, self.config
        return SignalContract(s.name, s.sampling_rate, s.unit, s.patch_length, c.max_patches, c.usable_channels,
                              case_sensitive=False, channel_offset=1, input_scale=c.input_scale)

    @property
    def check_inputs(self) -> bool:
        return bool(self.options["check_inputs"])

    # ------------------------------------------------------------------------------------ inputs
    def channel_ids(self, channels: Any) -> torch.Tensor:
        """Vocabulary ids ``[C]`` of channel names (case-insensitive) or ids; one :class:`InputError` lists every
        unknown name with its closest vocabulary names."""
        from neurorvq.vocabulary import decode_channel_names

        if isinstance(channels, (str, bytes)):
            raise InputError("channels must be a list of names or ids, one per row of x, not a single string")
        usable = self.config.usable_channels
        ids, problems = [], []
        for ch in decode_channel_names(list(channels)):
            if isinstance(ch, int):
                ids.append(ch)
                if not 0 <= ch < len(usable):
                    problems.append(f"id {ch} (valid ids: 0..{len(usable) - 1})")
                continue
            index = self._vocabulary.get(str(ch).strip().lower())
            if index is not None and index < len(usable):
                ids.append(index)
                continue
            if index is not None:
                first = str(ch).split("-")[0]
                name = self.display_name
                problems.append(f"'{ch}' ({name} id {index + 1} has no row in the {self.config.spatial_rows}-row "
                                f"table; {name} names a bipolar pair by its first electrode: '{first}')")
            else:
                close = close_matches(str(ch).upper(), usable)
                problems.append(f"'{ch}'" + (f" (closest: {', '.join(close)})" if close else ""))
        if problems:
            raise InputError(f"channel(s) not in {self.display_name}'s vocabulary: {'; '.join(problems)}")
        return torch.tensor(ids, dtype=torch.long)

    def prepare(self, x: torch.Tensor, channels: Any, check_inputs: bool | None = None) -> Prepared:
        """Check ``x [B, C, time]`` (when ``check_inputs``; ``None``: the model's option), scale it to the model's
        unit and cut it into patches with their embedding ids."""
        check = self.check_inputs if check_inputs is None else bool(check_inputs)
        t, c = self.signal.patch_length, self.config
        if check and (not torch.is_tensor(x) or x.ndim != 3 or not x.is_floating_point()):
            raise InputError(f"x must be a float tensor [batch, channels, time]; got "
                             f"{getattr(x, 'dtype', type(x).__name__)} {tuple(getattr(x, 'shape', ()))}")
        if torch.is_tensor(channels):
            ids = channels.to(device=x.device, dtype=torch.long)
            if check and ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= len(c.usable_channels)):
                raise InputError(f"channel ids span {int(ids.min())}..{int(ids.max())}; valid: 0.."
                                 f"{len(c.usable_channels) - 1} ({self.display_name}'s vocabulary)")
        else:
            ids = self.channel_ids(channels).to(x.device)
        n = x.shape[-1]
        if check:
            if ids.shape[-1] != x.shape[1] or (ids.ndim == 2 and ids.shape[0] != x.shape[0]):
                raise InputError(f"x has {x.shape[1]} channels but {ids.shape[-1]} channel names/ids were given")
            if n < t or (n % t and not self.options["crop"]):
                raise InputError(f"signal length {n} samples is not a whole number (>= 1) of {t}-sample patches: "
                                 f"cut windows of a multiple of {t} samples, or pass crop=True")
        a = n // t
        if a > c.max_patches:  # a host-side int: refused even unchecked (the table has no such rows)
            seconds = c.max_patches * self.signal.patch_seconds
            raise InputError(f"{a} patches per channel exceed {self.display_name}'s {c.max_patches}-row temporal "
                             f"table: at most "
                             f"{c.max_patches} patches ({seconds:g} s, {c.max_patches * t} samples at "
                             f"{self.signal.sampling_rate:g} Hz) per window; cut shorter windows")
        if check:
            check_finite(x, None if torch.is_tensor(channels) else channels)
        b, n_ch = x.shape[0], x.shape[1]
        # divided by 1/scale (exactly 100 for 0.01): the official x / 100, bit for bit
        patches = (x[..., : a * t].float() / (1.0 / c.input_scale)).reshape(b, n_ch, a, t)
        spatial = (ids + 1).repeat_interleave(a, dim=-1)
        temporal = torch.arange(a, device=x.device).repeat(n_ch)
        return Prepared(patches, spatial, temporal)

    def _check_decodable(self, n_patches: int) -> None:
        if self.options["parity"] and n_patches == 1:
            raise InputError("parity=True reproduces the official decoder, which cannot decode one-patch windows "
                             f"(with A = 1 it takes the channel axis for the patch axis and crashes; "
                             f"{self.one_patch_quirk}): use "
                             "parity=False, or windows of 2 or more patches")

    # ------------------------------------------------------------------------------------ pieces
    def quantize(self, projected: torch.Tensor):
        """``projected [B, L, d]`` -> :class:`~neurorvq.nn.rvq.RVQOutput` of every domain (the same ``z`` each).

        In parity mode under autocast the distances use the autocast dtype (the official fp16 search)."""
        b, l, d = projected.shape
        device = projected.device.type
        parity_half = self.options["parity"] and torch.is_autocast_enabled(device)
        self.quantizer.search_impl = autocast_search(torch.get_autocast_dtype(device)) if parity_half else "float32"
        z = projected.reshape(1, b * l, d).expand(len(self.config.domains), b * l, d)
        return self.quantizer(z)

    def decode_codes(self, quantized: torch.Tensor, spatial_ids: torch.Tensor, temporal_ids: torch.Tensor,
                     side: Mapping[str, torch.Tensor], n_channels: int):
        """``quantized [S, B, L, d]`` -> ``(embedded, features, predictions, reconstruction [B, C, A*T])`` with the
        per-domain dicts of :class:`SpectralVQOutput`; the signal comes from :attr:`reconstruction_domain`'s
        decoder."""
        embedded, features, predictions = {}, {}, {}
        for s, (name, decoder) in enumerate(self.decoders.items()):
            embedded[name], features[name], predictions[name] = decoder(quantized[s], spatial_ids, temporal_ids)
        first = self.reconstruction_domain
        with torch.autocast(device_type=quantized.device.type, enabled=False):
            patches = self.decoders[first].reconstruct(predictions[first], side)  # [B, L, T]
        b, l, t = patches.shape
        signal = patches.reshape(b, n_channels, (l // n_channels) * t) * (1.0 / self.config.input_scale)
        return embedded, features, predictions, signal

    # ------------------------------------------------------------------------------------ public API
    def forward_details(self, x: torch.Tensor, channels: Any, *, check_inputs: bool | None = None
                        ) -> SpectralVQOutput:
        """One training pass with every intermediate (:class:`SpectralVQOutput`) and the losses."""
        inp = self.prepare(x, channels, check_inputs)
        b, c, a, t = inp.patches.shape
        self._check_decodable(a)
        patch_embed, features, projected = self.encoder(inp.patches, inp.spatial_ids, inp.temporal_ids)
        rvq = self.quantize(projected)
        s, n = len(self.config.domains), self.config.depth
        quantized = rvq.quantized.reshape(s, b, c * a, -1)
        tokens = rvq.indices.reshape(s, n, b, c * a).permute(2, 0, 1, 3)
        targets, side = {}, {}
        for name, decoder in self.decoders.items():
            targets[name], domain_side = decoder.targets(inp.patches, bool(self.options["parity"]))
            side.update(domain_side)
        embedded, dec_features, predictions, signal = self.decode_codes(quantized, inp.spatial_ids,
                                                                        inp.temporal_ids, side, c)
        losses = self._losses(rvq, predictions, targets)
        return SpectralVQOutput(inp.patches, patch_embed, features, projected, F.normalize(projected, dim=-1),
                                quantized, tokens, embedded, dec_features, predictions, targets, side, signal, losses,
                                rvq.loss_per_level)

    def forward(self, x: torch.Tensor, channels: Any, *, check_inputs: bool | None = None
                ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The training pass: ``(reconstruction [B, C, A*T] in the signal's unit, outputs)``; ``outputs`` holds the
        scalar losses of :attr:`loss_names`, the ids ``[B, S*N, L]`` (``ids``), and this batch's codebook ``usage``
        and ``perplexity`` ``[S, N]``."""
        out = self.forward_details(x, channels, check_inputs=check_inputs)
        b, s, n, l = out.tokens.shape
        return out.reconstruction, {**out.losses, "ids": out.tokens.reshape(b, s * n, l)}

    def _losses(self, rvq, predictions, targets) -> dict[str, torch.Tensor]:
        quant = rvq.loss_per_level.sum()  # LaBraM/BrainRVQ sum over levels and domains (NeuroRVQ averages)
        losses: dict[str, torch.Tensor] = {}
        with torch.autocast(device_type=rvq.quantized.device.type, enabled=False):
            for name, decoder in self.decoders.items():
                losses.update(decoder.losses(predictions[name], targets[name]))
        probs = rvq.counts / rvq.counts.sum(-1, keepdim=True).clamp_min(1.0)
        return {"loss": quant + sum(losses.values()), "quant": quant, **losses,
                "usage": (rvq.counts > 0).float().mean(-1),
                "perplexity": torch.exp(-(probs * probs.clamp_min(1e-12).log()).sum(-1))}

    @torch.no_grad()
    def tokenize(self, x: torch.Tensor, channels: Any, *, check_inputs: bool | None = None) -> Encoded:
        """``x [B, C, A*T]`` -> :class:`Encoded`: ids ``[B, S*N, C*A]`` and the input statistics decoding needs
        (``side``: the reconstructing decoder's fields)."""
        inp = self.prepare(x, channels, check_inputs)
        b, c, a, t = inp.patches.shape
        _, _, projected = self.encoder(inp.patches, inp.spatial_ids, inp.temporal_ids)
        ids = self.quantize(projected).indices.reshape(-1, b, c * a).permute(1, 0, 2)
        side = self.decoders[self.reconstruction_domain].targets(inp.patches, bool(self.options["parity"]))[1]
        return Encoded(ids.contiguous(), side, self.layout, c, a)

    def get_codebook_indices(self, x: torch.Tensor, channels: Any) -> torch.Tensor:
        """The official API's tokens: ``[B, L]`` int64 (channel-major) of the first domain's first level."""
        return self.tokenize(x, channels).ids[:, 0]

    @torch.no_grad()
    def detokenize(self, encoded: Encoded, channels: Any) -> torch.Tensor:
        """Signal ``[B, C, A*T]`` (the signal's unit) from :meth:`tokenize`'s output (§B.6's inverse)."""
        if encoded.layout != self.layout:
            raise InputError(f"these ids have layout {encoded.layout.to_dict()}; this tokenizer's is "
                             f"{self.layout.to_dict()}")
        if self.check_inputs:
            self.layout.check_ids(encoded.ids)
        b, c, a = len(encoded), encoded.n_channels, encoded.n_patches
        self._check_decodable(a)
        ids = channels.to(encoded.ids.device, torch.long) if torch.is_tensor(channels) else \
            self.channel_ids(channels).to(encoded.ids.device)
        if ids.shape[-1] != c:
            raise InputError(f"{ids.shape[-1]} channels given for ids of {c} channels")
        if a > self.config.max_patches:
            raise InputError(f"{a} patches per channel exceed the {self.config.max_patches}-row temporal table")
        s, n = len(self.config.domains), self.config.depth
        quantized = self.quantizer.lookup(encoded.ids.reshape(b, s, n, c * a).permute(1, 2, 0, 3))
        spatial = (ids + 1).repeat_interleave(a, dim=-1)
        temporal = torch.arange(a, device=encoded.ids.device).repeat(c)
        return self.decode_codes(quantized, spatial, temporal, encoded.side, c)[-1]

    # ------------------------------------------------------------------------------------ weights
    @torch.no_grad()
    def init_weights(self, std: float = 0.02) -> None:
        """Training-from-scratch init of the official tokenizer: tables, Linear layers trunc-normal(0.02) with zero
        biases, depth-scaled block outputs; convs and the decoders' code embedding keep PyTorch's default (the
        official 1x1 conv's default init is the Linear's)."""
        transformers = [self.encoder.transformer] + [d.transformer for d in self.decoders.values()]
        for transformer in transformers:
            transformer.init_weights(std)
        heads = [self.encoder.projection] + [h for d in self.decoders.values() for h in d.heads.values()]
        for module in nn.ModuleList(heads).modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=std, a=-2.0, b=2.0)
                nn.init.zeros_(module.bias)

    def num_parameters(self, trainable_only: bool = True) -> int:
        """Parameters (codebooks are buffers here; see :func:`official_parameter_count`)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    def official_parameter_count(self) -> int:
        """What the official ``parameters()`` counts: the trainable ones plus, per codebook, ``embedding.weight``
        and the dead ``embed_avg`` (``K x d`` each) and ``cluster_size`` (``K``), which it holds as frozen
        parameters."""
        k, d = self.config.codebook_size, self.config.code_dim
        codebooks = len(self.config.domains) * self.config.depth
        return self.num_parameters() + codebooks * (2 * k * d + k)

    # ------------------------------------------------------------------------------------ persistence
    def config_hash(self) -> str:
        """Hash of the family, the signal and the architecture: equal hashes mean interchangeable tokens."""
        signal = {k: v for k, v in self.signal.to_dict().items() if k not in ("doc", "families")}
        text = json.dumps({"family": self.family, "signal": signal, "config": self.config.to_dict()}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def to_config(self) -> dict[str, Any]:
        """Everything :meth:`from_config` needs: family, signal, architecture, options (JSON)."""
        return {"family": self.family, **self._config_dict()}

    def _config_dict(self) -> dict[str, Any]:
        return {"signal": self.signal.to_dict(), "config": self.config.to_dict(), "options": dict(self.options)}

    @classmethod
    def from_config(cls, config: Mapping[str, Any], **overrides: Any) -> "SpectralVQTokenizer":
        """A new (untrained) model from :meth:`to_config`'s output or a ``save_pretrained`` config."""
        signal = ModalitySpec.from_dict(config["signal"])
        return cls(signal, **{**config["config"], **config.get("options", {}), **overrides})

    def save_pretrained(self, directory: str | Path) -> Path:
        """``config.json`` (kind, family, version, signal, config, options) and ``model.safetensors``."""
        from neurorvq import __version__
        from neurorvq.file_io import write_atomic, write_safetensors
        from neurorvq.models.pretrained import CONFIG_NAME, WEIGHTS_NAME

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        write_safetensors(directory / WEIGHTS_NAME, state, {"kind": self.model_kind})
        config = {"kind": self.model_kind, "family": self.family, "neurorvq_version": __version__,
                  **self._config_dict()}
        write_atomic(directory / CONFIG_NAME, json.dumps(config, indent=2))
        return directory


class LaBraMTokenizer(SpectralVQTokenizer):
    """LaBraM's VQ-NSP tokenizer (family ``labram_vqnsp``): the spectral VQ tokenizer with one ``frequency`` domain of
    one level (the :class:`~neurorvq.families.labram.LaBraMConfig` defaults)."""

    family: ClassVar[str] = FAMILY

    @classmethod
    def from_official(cls, path_or_state_dict: str | Path | Mapping[str, torch.Tensor],
                      modality: str | ModalitySpec | None = None, **overrides: Any) -> "LaBraMTokenizer":
        """A tokenizer from an official VQ-NSP state dict (``vqnsp.pth`` or a ``.safetensors`` with the official key
        names), its architecture read from the shapes; see :mod:`neurorvq.models.official_labram`. Another family's
        official state dict is one error naming both families."""
        from neurorvq.loading import refuse_other_family
        from neurorvq.models.official_labram import load_official_vqnsp

        label = "'the state dict'" if isinstance(path_or_state_dict, Mapping) else f"'{path_or_state_dict}'"
        refuse_other_family(path_or_state_dict, label, cls.family)
        return load_official_vqnsp(cls, path_or_state_dict, modality, **overrides)

    def to_official(self) -> dict[str, torch.Tensor]:
        """The state dict in the official key layout (dead tensors zero-filled)."""
        from neurorvq.models.official_labram import export_official_vqnsp

        return export_official_vqnsp(self)


class BrainRVQTokenizer(SpectralVQTokenizer):
    """BrainRVQ's DD-RVQ tokenizer (family ``brainrvq``, families.md §A.3): the spectral VQ tokenizer with the
    ``time`` and ``frequency`` domains of three levels each, both quantizers fed the same ``z`` (the
    :class:`~neurorvq.families.brainrvq.BrainRVQConfig` defaults). Ids ``[B, 2*3, L]``: the time group's levels
    1..3, then the frequency group's. Option ``reconstruction`` picks the decoder that gives the signal
    (``"frequency"`` by default; :data:`~neurorvq.families.brainrvq.RECONSTRUCTIONS`)."""

    family: ClassVar[str] = brainrvq.FAMILY
    display_name: ClassVar[str] = "BrainRVQ"
    option_defaults: ClassVar[Mapping[str, Any]] = brainrvq.OPTIONS
    one_patch_quirk: ClassVar[str] = "BQ4"

    def check_options(self, where: str) -> None:
        """``reconstruction`` names one of the model's domains; ``parity`` only with what the official ``DDRVQ``
        builds (both domains, three levels: it hard-codes them)."""
        c, choice = self.config, self.options["reconstruction"]
        if choice not in brainrvq.RECONSTRUCTIONS or choice not in c.domains:
            raise ConfigError(f"{where}: reconstruction is {choice!r}; give one of the model's domains "
                              f"{[d for d in brainrvq.RECONSTRUCTIONS if d in c.domains]}")
        if self.options["parity"] and (c.depth != 3 or c.domains != ("time", "frequency")):
            raise ConfigError(f"{where}: parity=True reproduces the official DDRVQ, which hard-codes two residual VQs "
                              f"(time, frequency) of 3 levels; got domains {list(c.domains)} and depth {c.depth}: "
                              "use those values or parity=False")

    def get_codebook_indices(self, x: torch.Tensor, channels: Any) -> tuple[torch.Tensor, ...]:
        """The official API's tokens: one int64 tensor ``[N, B, L]`` per domain (level-major, then batch, then
        channel-major token), in domain order (``(time, frequency)``: the official ``(tokens_t, tokens_f)``)."""
        ids = self.tokenize(x, channels).ids  # [B, S*N, L]
        b, _, l = ids.shape
        per_domain = ids.reshape(b, len(self.config.domains), self.config.depth, l).permute(1, 2, 0, 3)
        return tuple(t.contiguous() for t in per_domain)

    @classmethod
    def from_official(cls, path_or_state_dict: str | Path | Mapping[str, torch.Tensor],
                      modality: str | ModalitySpec | None = None, **overrides: Any) -> "BrainRVQTokenizer":
        """A tokenizer from an official ``DDRVQ`` state dict (a ``.pth`` or a ``.safetensors`` with the official key
        names), its architecture read from the shapes; see :mod:`neurorvq.models.official_brainrvq`."""
        from neurorvq.models.official_brainrvq import load_official_ddrvq

        return load_official_ddrvq(cls, path_or_state_dict, modality, **overrides)

    def to_official(self) -> dict[str, torch.Tensor]:
        """The state dict in the official ``DDRVQ`` key layout (dead tensors zero-filled)."""
        from neurorvq.models.official_brainrvq import export_official_ddrvq

        return export_official_ddrvq(self)
