"""The NeuroRVQ tokenizer: multi-scale temporal conv -> transformer -> one RVQ per branch -> decoder ->
Fourier heads -> inverse FFT (method.md §3). Generic in branches S and quantizer depth N; built from a
:class:`~neurorvq.registry.ModalitySpec`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from neurorvq.errors import InputError
from neurorvq.families.neurorvq import NeuroRVQOptions, option_defaults
from neurorvq.models.inputs import ChannelsLike, PreparedInput, embedding_ids, prepare_input
from neurorvq.models.options import resolve_overrides
from neurorvq.models.neurorvq_model import NeuroRVQModelMixin
from neurorvq.models.pretrained import PretrainedMixin
from neurorvq.nn.rvq import ResidualVQ
from neurorvq.nn.spectral import (
    AmplitudeStats,
    amplitude_from_log_std,
    fourier_targets,
    log_amplitude_stats,
    per_sample_standardize,
    phase_loss,
    spectrum_to_signal,
)
from neurorvq.nn.temporal import MultiScaleTemporalConv
from neurorvq.nn.transformer import TokenTransformer
from neurorvq.registry import ModalitySpec
from neurorvq.tokenizers import Encoded, SideField, TokenLayout

__all__ = ["NeuroRVQTokenizer", "TokenizerOutput", "AmplitudeStats", "TOKENIZER_OPTIONS"]

TOKENIZER_OPTIONS: dict[str, Any] = option_defaults(NeuroRVQOptions)
"""Model options that are not part of the spec (saved in the pretrained config too): loss weights (``circle_weight``
0.1 in the official code, 0.4 in the paper, Q5; ``aux_weight``, Q6; ``beta``), quantizer EMA ``decay``, k-means
iterations, official eval-mode updates (Q13), dead-code re-seeding (0 = off, official, Q14), ``check_inputs`` and
``crop``; defined once, by :class:`~neurorvq.families.neurorvq.NeuroRVQOptions`."""


@dataclass
class TokenizerOutput:
    """Everything one tokenizer pass computes. Shapes: S branches, N levels, B batch, C channels,
    A patches per channel, L = C*A tokens (channel-major), D width, d code dim, T patch length."""

    patch_embed: torch.Tensor        # [S, B, L, D] temporal-conv output
    encoder_features: torch.Tensor   # [S, B, L, D] after the transformer and fc_norm
    projected: torch.Tensor          # [S, B, L, d] encode heads, quantizer input
    quantized: torch.Tensor          # [S, B, L, d]
    tokens: torch.Tensor             # [B, S, N, L] int64
    decoder_features: torch.Tensor   # [B, L, S*D]
    log_amplitude_std: torch.Tensor  # [B, L, T] predicted standardised log-amplitude
    sin_phase: torch.Tensor          # [B, L, T]
    cos_phase: torch.Tensor          # [B, L, T]
    amplitude: torch.Tensor          # [B, L, T] predicted linear amplitude (signal unit)
    patch_reconstruction: torch.Tensor  # [B, L, T] signal unit
    reconstruction: torch.Tensor     # [B, C, A*T] signal unit
    targets: Any                     # FourierTargets, each [B, C, A, T]
    losses: dict[str, torch.Tensor]


AMPLITUDE_SIDE = (SideField("amplitude_mean", doc="per-sample mean of the log-amplitude spectrum"),
                  SideField("amplitude_std", doc="per-sample std of the log-amplitude spectrum"))
"""NeuroRVQ's side information: tokens do not carry the absolute amplitude (method.md quirk Q8)."""


class NeuroRVQTokenizer(NeuroRVQModelMixin, PretrainedMixin, nn.Module):
    """NeuroRVQ tokenizer for one modality.

    Args:
        spec: a :class:`ModalitySpec` or a registered name (``"eeg"``, ``"ecg"``, ``"emg"``, ...).
        **overrides: spec fields to change (e.g. ``encoder_depth=2, codebook_size=1024``) and model options
            (see ``TOKENIZER_OPTIONS``: loss weights, EMA decay, ``check_inputs``, ``crop``, ...).

    Signals ``x`` are ``[batch, channels, time]`` float in ``spec.unit``; ``time`` is a whole number of
    ``spec.patch_length``-sample patches (or ``crop=True``). ``channels`` are vocabulary names
    (case-insensitive) or ids, one per row of ``x``: a list ``[C]`` shared by the batch, or an int tensor
    ``[B, C]``.
    """

    model_kind = "tokenizer"
    loss_names = ("loss", "code", "amp", "phase", "sig")
    """The scalar losses of :meth:`forward`'s outputs, the total first."""

    def __init__(self, spec: ModalitySpec | str = "eeg", **overrides: Any) -> None:
        super().__init__()
        spec, self.options = resolve_overrides(spec, overrides, TOKENIZER_OPTIONS, "tokenizer")
        self.spec = spec
        s, dim, code_dim = spec.num_branches, spec.embed_dim, spec.code_dim
        self.temporal = MultiScaleTemporalConv(spec.branches, spec.conv_channels, spec.groupnorm_groups)
        self.encoder = TokenTransformer(dim, spec.encoder_depth, spec.num_heads, spec.spatial_rows,
                                        spec.max_patches, spec.mlp_ratio)
        self.encoder_norms = nn.ModuleList(nn.LayerNorm(dim) for _ in range(s))
        self.encode_heads = nn.ModuleList(
            nn.Sequential(nn.Linear(dim, dim), nn.Tanh(), nn.Linear(dim, code_dim)) for _ in range(s))
        self.quantizer = ResidualVQ(s, spec.n_quantizers, spec.codebook_size, code_dim,
                                    decay=self.options["decay"], beta=self.options["beta"],
                                    aux_weight=self.options["aux_weight"], kmeans_iters=self.options["kmeans_iters"],
                                    official_eval_updates=self.options["official_eval_updates"],
                                    dead_code_after=self.options["dead_code_after"])
        self.decoder_in = nn.ModuleList(nn.Linear(code_dim, dim) for _ in range(s))
        self.decoder = TokenTransformer(dim, spec.decoder_depth, spec.num_heads, spec.spatial_rows,
                                        spec.max_patches, spec.mlp_ratio)
        self.decoder_norms = nn.ModuleList(nn.LayerNorm(dim) for _ in range(s))
        t = spec.patch_length
        self.amplitude_head = nn.Sequential(nn.Linear(s * dim, dim), nn.GELU(), nn.Linear(dim, t))
        self.sin_head = nn.Sequential(nn.Linear(s * dim, dim), nn.Tanh(), nn.Linear(dim, t), nn.Tanh())
        self.cos_head = nn.Sequential(nn.Linear(s * dim, dim), nn.Tanh(), nn.Linear(dim, t), nn.Tanh())
        self.init_weights()

    # ------------------------------------------------------------------------------------ options
    @property
    def check_inputs(self) -> bool:
        return bool(self.options["check_inputs"])

    @check_inputs.setter
    def check_inputs(self, value: bool) -> None:
        self.options["check_inputs"] = bool(value)

    # ------------------------------------------------------------------------------------ protocol
    @property
    def layout(self) -> TokenLayout:
        """One group per temporal branch (``b0 .. b{S-1}``), ``n_quantizers`` levels of ``codebook_size`` codes;
        decoding needs the per-sample amplitude statistics (method.md quirk Q8)."""
        spec = self.spec
        return TokenLayout.uniform([f"b{i}" for i in range(spec.num_branches)], spec.n_quantizers,
                                   spec.codebook_size, side=AMPLITUDE_SIDE)

    @torch.no_grad()
    def tokenize(self, x: torch.Tensor, channels: ChannelsLike, *, check_inputs: bool | None = None) -> Encoded:
        """``x [B, C, A*T]`` (``spec.unit``) -> :class:`Encoded`: ids ``[B, S*N, C*A]`` (stream ``s*N + n`` is
        branch ``s``, level ``n``) with ``side = {"amplitude_mean": [B], "amplitude_std": [B]}``
        (``check_inputs``: as :meth:`forward_details`)."""
        tokens, stats = self.encode(x, channels, return_amplitude_stats=True, check_inputs=check_inputs)
        b, s, n, l = tokens.shape
        num_channels = len(channels) if not torch.is_tensor(channels) else channels.shape[-1]
        return Encoded(tokens.reshape(b, s * n, l), {"amplitude_mean": stats.mean, "amplitude_std": stats.std},
                       self.layout, num_channels, l // max(num_channels, 1))

    @torch.no_grad()
    def detokenize(self, encoded: Encoded, channels: ChannelsLike) -> torch.Tensor:
        """Signal ``[B, C, A*T]`` (``spec.unit``) from :meth:`tokenize`'s output."""
        if encoded.layout != self.layout:
            raise InputError(f"these ids have layout {encoded.layout.groups} x {encoded.layout.depths} "
                             f"(codebooks up to {encoded.layout.max_codebook_size}); this tokenizer's is "
                             f"{self.layout.groups} x {self.layout.depths} (codebooks of {self.spec.codebook_size})")
        stats = AmplitudeStats(encoded.side["amplitude_mean"], encoded.side["amplitude_std"])
        return self.decode(encoded.grouped(), channels, stats)

    @torch.no_grad()
    def init_weights(self) -> None:
        """Training-from-scratch initialisation (method.md §3.8)."""
        std = 0.02
        self.encoder.init_weights(std)
        self.decoder.init_weights(std)
        heads = [*self.encode_heads, *self.decoder_in, self.amplitude_head, self.sin_head, self.cos_head]
        for module in nn.ModuleList(heads).modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=std, a=-2.0, b=2.0)
                nn.init.zeros_(module.bias)
        for module in self.temporal.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.trunc_normal_(module.weight, std=std, a=-2.0, b=2.0)
                nn.init.zeros_(module.bias)

    # ------------------------------------------------------------------------------------ pieces
    def prepare(self, x: torch.Tensor, channels: ChannelsLike, check_inputs: bool | None = None) -> PreparedInput:
        """Validate (if ``check_inputs``; ``None``: the model's option) and cut ``x [B, C, time]`` into patches with
        their embedding ids."""
        check = self.check_inputs if check_inputs is None else bool(check_inputs)
        return prepare_input(self.spec, x, channels, check=check, crop=bool(self.options["crop"]))

    def _per_branch(self, modules: nn.ModuleList, h: torch.Tensor) -> torch.Tensor:
        return torch.stack([module(h[i]) for i, module in enumerate(modules)])

    def encode_features(self, inp: PreparedInput) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Patches -> ``(patch_embed, encoder_features, projected)``, shapes ``[S, B, L, D|D|d]``."""
        patch_embed = self.temporal(inp.patches)
        features = self.encoder.forward_branches(patch_embed, inp.spatial_ids, inp.temporal_ids)
        features = self._per_branch(self.encoder_norms, features)
        with torch.autocast(device_type=features.device.type, enabled=False):  # encode heads stay in fp32
            projected = self._per_branch(self.encode_heads, features.float())
        return patch_embed, features, projected

    def decode_features(self, quantized: torch.Tensor, spatial_ids: torch.Tensor,
                        temporal_ids: torch.Tensor) -> torch.Tensor:
        """``quantized [S, B, L, d]`` -> decoder features ``[B, L, S*D]`` (branches concatenated in order)."""
        h = self._per_branch(self.decoder_in, quantized)
        h = self._per_branch(self.decoder_norms, self.decoder.forward_branches(h, spatial_ids, temporal_ids))
        s, b, l, d = h.shape
        return h.permute(1, 2, 0, 3).reshape(b, l, s * d)

    def fourier_heads(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``[B, L, S*D]`` -> standardised log-amplitude, sin, cos, each ``[B, L, T]`` (float32)."""
        return (self.amplitude_head(features).float(), self.sin_head(features).float(),
                self.cos_head(features).float())

    def _reconstruct(self, features: torch.Tensor, stats: AmplitudeStats, num_channels: int):
        log_amp, sin, cos = self.fourier_heads(features)
        with torch.autocast(device_type=features.device.type, enabled=False):
            amplitude = amplitude_from_log_std(log_amp, stats)
            patch_rec = spectrum_to_signal(amplitude, sin, cos)
        b, l, t = patch_rec.shape
        return log_amp, sin, cos, amplitude, patch_rec, patch_rec.reshape(b, num_channels, (l // num_channels) * t)

    # ------------------------------------------------------------------------------------ public API
    def forward_details(self, x: torch.Tensor, channels: ChannelsLike, *, check_inputs: bool | None = None
                        ) -> TokenizerOutput:
        """One full pass returning every intermediate (see :class:`TokenizerOutput`) and the losses.
        ``check_inputs``: validate the inputs (``None``: the model's option; the training tasks pass ``False``)."""
        inp = self.prepare(x, channels, check_inputs)
        patches = inp.patches
        b, c, a, t = patches.shape
        targets = fourier_targets(patches)
        patch_embed, features, projected = self.encode_features(inp)
        s, _, l, code_dim = projected.shape
        rvq = self.quantizer(projected.reshape(s, b * l, code_dim))
        quantized = rvq.quantized.reshape(s, b, l, code_dim)
        tokens = rvq.indices.reshape(s, -1, b, l).permute(2, 0, 1, 3)
        dec = self.decode_features(quantized, inp.spatial_ids, inp.temporal_ids)
        log_amp, sin, cos, amplitude, patch_rec, rec = self._reconstruct(dec, targets.stats, c)
        losses = self._losses(patches, targets, log_amp, sin, cos, patch_rec, rvq)
        return TokenizerOutput(patch_embed, features, projected, quantized, tokens, dec, log_amp, sin, cos,
                               amplitude, patch_rec, rec, targets, losses)

    def forward(self, x: torch.Tensor, channels: ChannelsLike, *, check_inputs: bool | None = None
                ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Reconstruct ``x``; returns ``(reconstruction, outputs)``, the training forward (``check_inputs``: as
        :meth:`forward_details`).

        ``reconstruction``: ``[B, C, time]`` in the input unit. ``outputs``: a dict of tensors (no host
        synchronisation): the scalar losses ``loss`` (the total, to minimise), ``code``, ``amp``, ``phase`` and
        ``sig``; the codebook loss per branch ``code_per_branch [S]`` and per level ``code_per_level [S, N]``;
        ``usage [S, N]`` (fraction of codes used in this batch) and ``perplexity [S, N]``; ``std_x`` and
        ``std_rec [B, L, T]`` (the per-sample standardised patches and their reconstruction that ``sig``
        compares; ``T = patch_length``); and the token ids ``tokens [B, S, N, L]`` (``L = C x patches``,
        channel-major) and, flat as the tokenizer protocol gives them, ``ids [B, S*N, L]``.
        """
        out = self.forward_details(x, channels, check_inputs=check_inputs)
        b, s, n, l = out.tokens.shape
        return out.reconstruction, {**out.losses, "tokens": out.tokens, "ids": out.tokens.reshape(b, s * n, l)}

    def _losses(self, patches, targets, log_amp, sin, cos, patch_rec, rvq) -> dict[str, torch.Tensor]:
        b, c, a, t = patches.shape
        with torch.autocast(device_type=patches.device.type, enabled=False):
            amp = F.mse_loss(log_amp, targets.log_amplitude_std.reshape(b, c * a, t))
            phase = phase_loss(sin, cos, targets.sin_phase.reshape(b, c * a, t),
                               targets.cos_phase.reshape(b, c * a, t), self.options["circle_weight"])
            std_x = per_sample_standardize(patches.reshape(b, c * a, t).float())[0]
            std_rec = per_sample_standardize(patch_rec)[0]
            sig = F.mse_loss(std_rec, std_x)
            per_branch = rvq.loss_per_level.mean(dim=1)
            code = per_branch.sum()
            probs = rvq.counts / rvq.counts.sum(-1, keepdim=True).clamp_min(1.0)
            perplexity = torch.exp(-(probs * torch.log(probs.clamp_min(1e-12))).sum(-1))
            usage = (rvq.counts > 0).float().mean(-1)
        return {"loss": code + amp + phase + sig, "code": code, "amp": amp, "phase": phase, "sig": sig,
                "code_per_branch": per_branch, "code_per_level": rvq.loss_per_level, "usage": usage,
                "perplexity": perplexity, "std_x": std_x, "std_rec": std_rec}

    @torch.no_grad()
    def encode(self, x: torch.Tensor, channels: ChannelsLike, return_amplitude_stats: bool = False, *,
               check_inputs: bool | None = None) -> torch.Tensor | tuple[torch.Tensor, AmplitudeStats]:
        """Token ids ``[batch, branch, depth, channels*patches]`` int64 (channel-major), optionally with the
        per-sample :class:`AmplitudeStats` that :meth:`decode` needs to restore the absolute scale
        (``check_inputs``: as :meth:`forward_details`)."""
        inp = self.prepare(x, channels, check_inputs)
        _, _, projected = self.encode_features(inp)
        s, b, l, code_dim = projected.shape
        rvq = self.quantizer(projected.reshape(s, b * l, code_dim))
        tokens = rvq.indices.reshape(s, -1, b, l).permute(2, 0, 1, 3)
        if return_amplitude_stats:
            return tokens, log_amplitude_stats(inp.patches)
        return tokens

    def amplitude_stats(self, x: torch.Tensor, channels: ChannelsLike) -> AmplitudeStats:
        """Per-sample log-amplitude statistics of ``x`` (what :meth:`decode` needs besides the tokens)."""
        return log_amplitude_stats(self.prepare(x, channels).patches)

    @torch.no_grad()
    def decode(self, tokens: torch.Tensor, channels: ChannelsLike, amplitude_stats: AmplitudeStats | Sequence
               ) -> torch.Tensor:
        """Signal ``[batch, channels, time]`` (input unit) from ``tokens [batch, branch, depth, channels*patches]``.

        ``amplitude_stats``: the :class:`AmplitudeStats` returned by ``encode(..., return_amplitude_stats=True)``
        (tokens alone do not carry the absolute amplitude, method.md quirk Q8).
        """
        stats = self._check_tokens(tokens, channels, amplitude_stats)
        num_channels = len(channels) if not torch.is_tensor(channels) else channels.shape[-1]
        spatial, temporal = embedding_ids(self.spec, channels, tokens.shape[-1] // num_channels, tokens.device)
        quantized = self.quantizer.lookup(tokens.permute(1, 2, 0, 3))  # [S, B, L, d]
        dec = self.decode_features(quantized, spatial, temporal)
        return self._reconstruct(dec, stats, num_channels)[-1]

    def _check_tokens(self, tokens: torch.Tensor, channels: ChannelsLike, stats: Any) -> AmplitudeStats:
        spec = self.spec
        if stats is None:
            raise InputError("decode needs amplitude_stats: tokens do not carry the absolute amplitude (quirk Q8); "
                             "get them from encode(x, channels, return_amplitude_stats=True)")
        stats = AmplitudeStats(*stats)
        if not self.check_inputs:
            return stats
        if not torch.is_tensor(tokens) or tokens.dtype not in (torch.int64, torch.int32, torch.int16):
            raise InputError("tokens must be an integer tensor [batch, branch, depth, channels*patches]")
        if tokens.ndim != 4 or tokens.shape[1] != spec.num_branches or tokens.shape[2] != spec.n_quantizers:
            raise InputError(f"tokens have shape {tuple(tokens.shape)}; expected [batch, {spec.num_branches}, "
                             f"{spec.n_quantizers}, channels*patches] for this tokenizer")
        num_channels = len(channels) if not torch.is_tensor(channels) else channels.shape[-1]
        if num_channels == 0 or tokens.shape[3] % num_channels:
            raise InputError(f"tokens hold {tokens.shape[3]} tokens per sample, not a multiple of the "
                             f"{num_channels} channels given")
        if tokens.shape[3] // num_channels > spec.max_patches:
            raise InputError(f"{tokens.shape[3] // num_channels} patches per channel exceed max_patches="
                             f"{spec.max_patches}")
        low, high = int(tokens.min()), int(tokens.max())
        if low < 0 or high >= spec.codebook_size:
            bad = ((tokens < 0) | (tokens >= spec.codebook_size)).nonzero()[0].tolist()
            raise InputError(f"token id out of range at [batch, branch, depth, token]={bad} (ids span {low}..{high}); "
                             f"valid ids are 0..{spec.codebook_size - 1}")
        for name, t in (("mean", stats.mean), ("std", stats.std)):
            if t.shape != (tokens.shape[0],):
                raise InputError(f"amplitude_stats.{name} has shape {tuple(t.shape)}; expected [{tokens.shape[0]}]")
        return stats

    # ------------------------------------------------------------------------------------ counts
    def num_parameters(self, trainable_only: bool = True) -> int:
        """Trainable parameters (codebooks are buffers here, see docs/official-weights.md)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    def codebook_numel(self) -> int:
        return self.quantizer.codebooks.numel()

    @classmethod
    def from_official(cls, path_or_state_dict: str | Mapping[str, torch.Tensor], modality: str | ModalitySpec | None = None,
                      **overrides: Any) -> "NeuroRVQTokenizer":
        """Load an official-layout checkpoint (``.pt``/``.safetensors`` path or state dict); see
        :mod:`neurorvq.models.official`."""
        from neurorvq.models.official import load_official_tokenizer

        return load_official_tokenizer(cls, path_or_state_dict, modality, **overrides)

    def to_official(self) -> dict[str, torch.Tensor]:
        """State dict in the official layout (all keys, dead tensors zero-filled), for parity checks."""
        from neurorvq.models.official import export_official_tokenizer

        return export_official_tokenizer(self)
