"""NeuroRVQ foundation model (method.md §4): the tokenizer's front end (multi-scale temporal conv + a shared
transformer with layer scale) on raw patches, with

- pretraining: masked patches replaced by a learned mask token, ``norm_pre``, and one **batched** head that
  predicts all S x N token ids of the tokenizer (weight ``[S, N, V, D]``; head ``h`` of the official code is
  ``[h // N, h % N]``), for the masked view and the symmetric (complementary-mask) view;
- fine-tuning: branch features concatenated ``[B, L, S*D]``, pooled (``mean`` over tokens as the official head,
  or another option of :mod:`neurorvq.models.pooling`), ``LayerNorm``, ``Linear``;
- features: :meth:`embed` returns per-token and pooled features.

A new model is initialised as the official code initialises its FM (method.md §3.8, :meth:`init_weights`); the
fine-tuning head keeps PyTorch's default initialisation (method.md §4.3). Loading weights replaces all of it.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from neurorvq.errors import ConfigError
from neurorvq.families.neurorvq import NeuroRVQFMOptions, option_defaults
from neurorvq.models.inputs import ChannelsLike, PreparedInput, channel_id_tensor, check_token_mask, prepare_input
from neurorvq.models.options import resolve_overrides
from neurorvq.models.pooling import Pooling, build_pooling
from neurorvq.models.neurorvq_model import NeuroRVQModelMixin
from neurorvq.models.pretrained import PretrainedMixin
from neurorvq.nn.temporal import MultiScaleTemporalConv
from neurorvq.nn.transformer import TokenTransformer
from neurorvq.registry import ModalitySpec
from neurorvq.tokenizers import TokenLayout

FM_OPTIONS: dict[str, Any] = {
    **option_defaults(NeuroRVQFMOptions),  # depth, init_values (layer scale, method.md §4.1), check_inputs, crop
    "vocab_size": None,      # classes of each token head; None = the spec's codebook_size
    "pretraining": True,     # build mask token, norm_pre and the token heads
    "num_classes": 0,        # fine-tuning classes (0 = no classification head)
    "pooling": "mean",       # how the classifier pools tokens (neurorvq.models.pooling); "mean" = official head
    "pool_channels": None,   # channels of the fixed montage, for channel-aware poolings (e.g. channel_concat)
    "provenance": None,      # "official" once loaded from official weights (kept by save_pretrained)
}


class PretrainOutput(NamedTuple):
    """Masked-token pretraining forward. ``logits [S*N, M, V]`` for the M masked tokens (rows in (batch, token)
    order; head index = branch * N + level), ``logits_symmetric [S*N, U, V]`` for the U unmasked ones;
    ``features`` / ``features_symmetric [S, B, L, D]`` after ``norm_pre``."""

    logits: torch.Tensor
    logits_symmetric: torch.Tensor
    features: torch.Tensor
    features_symmetric: torch.Tensor


class NeuroRVQFoundationModel(NeuroRVQModelMixin, PretrainedMixin, nn.Module):
    """NeuroRVQ-FM for one modality (``spec``), generic in branches S and token depth N.

    Args:
        spec: a :class:`ModalitySpec` or registered name.
        **overrides: spec fields, or FM options (``FM_OPTIONS``: depth, init_values, vocab_size, pretraining,
            num_classes, pooling, pool_channels, check_inputs, crop).
    """

    model_kind = "foundation_model"

    def __init__(self, spec: ModalitySpec | str = "eeg", **overrides: Any) -> None:
        super().__init__()
        self.spec, self.options = resolve_overrides(spec, overrides, FM_OPTIONS, "foundation-model")
        if self.options["vocab_size"] is None:
            self.options["vocab_size"] = self.spec.codebook_size
        spec, dim = self.spec, self.spec.embed_dim
        self.temporal = MultiScaleTemporalConv(spec.branches, spec.conv_channels, spec.groupnorm_groups)
        self.backbone = TokenTransformer(dim, int(self.options["depth"]), spec.num_heads, spec.spatial_rows,
                                         spec.max_patches, spec.mlp_ratio, float(self.options["init_values"]))
        s, n, v = spec.num_branches, spec.n_quantizers, int(self.options["vocab_size"])
        if self.options["pretraining"]:
            self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
            self.norm_pre = nn.LayerNorm(dim)
            self.head_weight = nn.Parameter(torch.zeros(s, n, v, dim))
            self.head_bias = nn.Parameter(torch.zeros(s, n, v))
        self.init_weights()
        self.num_classes = int(self.options["num_classes"])
        if self.num_classes:
            self.reset_classifier(self.num_classes)

    @torch.no_grad()
    def init_weights(self, std: float = 0.02) -> None:
        """The official from-scratch initialisation (method.md §3.8): trunc-normal ``std`` (cut at ±2) for every
        Linear and Conv weight, ``pos_embed``, ``time_embed``, ``cls_token`` and ``mask_token``; zero biases;
        LayerNorm/GroupNorm (1, 0); ``attn.proj`` and ``mlp.fc2`` of block i (1-based) divided by sqrt(2i); the
        pretraining token heads trunc-normal ``std`` with zero bias. The fine-tuning head is not touched."""
        self.backbone.init_weights(std)
        for module in self.temporal.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.trunc_normal_(module.weight, std=std, a=-2.0, b=2.0)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.GroupNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        if self.options["pretraining"]:
            nn.init.trunc_normal_(self.mask_token, std=std, a=-2.0, b=2.0)
            nn.init.ones_(self.norm_pre.weight)
            nn.init.zeros_(self.norm_pre.bias)
            nn.init.trunc_normal_(self.head_weight, std=std, a=-2.0, b=2.0)
            nn.init.zeros_(self.head_bias)

    def reset_classifier(self, num_classes: int, pooling: str | None = None, num_channels: int | None = None) -> None:
        """A new pooling, ``fc_norm`` (LayerNorm of the pooled width) and ``head`` (Linear; 1 output for two
        classes, as the official BCE head) with PyTorch's default initialisation (method.md §4.3).

        ``pooling`` (default: the ``pooling`` option, ``"mean"`` = official) and ``num_channels`` (channel-aware
        poolings: the montage's channel count; default the ``pool_channels`` option) are recorded in the options,
        so ``save_pretrained`` / ``from_pretrained`` rebuild the same head."""
        if pooling is not None:
            self.options["pooling"] = pooling
        if num_channels is not None:
            self.options["pool_channels"] = int(num_channels)
        self.pool: Pooling = build_pooling(self.options["pooling"], self.feature_dim, self.options["pool_channels"])
        self.num_classes = int(num_classes)
        self.options["num_classes"] = self.num_classes
        self.fc_norm = nn.LayerNorm(self.pool.out_features)
        self.head = nn.Linear(self.pool.out_features, 1 if num_classes == 2 else num_classes)

    def drop_pretraining_parts(self) -> None:
        """Remove ``mask_token``, ``norm_pre`` and the token heads (what the official fine-tuning construction
        lacks, method.md §4.3); the model then serves ``embed``/``forward`` only."""
        for name in ("mask_token", "norm_pre", "head_weight", "head_bias"):
            if hasattr(self, name):
                delattr(self, name)
        self.options["pretraining"] = False

    # ------------------------------------------------------------------------------------ protocol
    @property
    def feature_dim(self) -> int:
        """Width F of the per-token features of :meth:`embed`: ``S * D`` (branches concatenated)."""
        return self.spec.num_branches * self.spec.embed_dim

    @property
    def target_layout(self) -> TokenLayout | None:
        """The token layout the pretraining heads predict: head ``(s, n)`` reads branch ``s`` and predicts level
        ``n`` of group ``b{s}`` over ``vocab_size`` codes; ``None`` without pretraining heads."""
        if not self.options["pretraining"]:
            return None
        spec = self.spec
        return TokenLayout.uniform([f"b{i}" for i in range(spec.num_branches)], spec.n_quantizers,
                                   int(self.options["vocab_size"]))

    def check_targets(self, layout: TokenLayout) -> None:
        """Raise :class:`ConfigError` unless the heads predict ``layout``'s ids (its groups, depths and codebook
        sizes; side information is the tokenizer's business)."""
        mine = self.target_layout
        if mine is None:
            raise ConfigError("this model was built without pretraining heads (pretraining=False)")
        theirs = TokenLayout(layout.groups, layout.depths, layout.codebook_sizes)
        if theirs != mine:
            raise ConfigError(f"the tokenizer's ids have {len(layout.groups)} code groups {list(layout.groups)} of "
                              f"depths {list(layout.depths)} (codebooks up to {layout.max_codebook_size}) but the FM's "
                              f"heads predict {len(mine.groups)} branches x {mine.depths[0]} levels x "
                              f"{mine.max_codebook_size} codes: branches, depth and codebook size must match")

    # ------------------------------------------------------------------------------------ pieces
    def prepare(self, x: torch.Tensor, channels: ChannelsLike) -> PreparedInput:
        return prepare_input(self.spec, x, channels, check=bool(self.options["check_inputs"]),
                             crop=bool(self.options["crop"]))

    def _run(self, tokens: torch.Tensor, inp: PreparedInput) -> torch.Tensor:
        """``tokens [S, B, L, D]`` -> block outputs ``[S, B, L, D]`` (CLS dropped, no final norm)."""
        return self.backbone.forward_branches(tokens, inp.spatial_ids, inp.temporal_ids)

    def token_logits(self, features: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """Logits of every (branch, level) head at ``positions [B, L]`` (bool): ``[S*N, M, V]``, one batched
        product for all heads; rows in (batch, token) order."""
        s, b, l, d = features.shape
        rows = features[:, positions]  # [S, M, D]
        logits = torch.einsum("smd,snvd->snmv", rows, self.head_weight) + self.head_bias.unsqueeze(2)
        return logits.reshape(s * self.spec.n_quantizers, rows.shape[1], -1)

    # ------------------------------------------------------------------------------------ public API
    def forward_pretrain(self, x: torch.Tensor, channels: ChannelsLike, mask: torch.Tensor) -> PretrainOutput:
        """Masked-token pretraining pass. ``mask [B, L]`` bool, True = masked (L = channels x patches,
        channel-major). The symmetric view masks the complement (method.md §4.2)."""
        if not self.options["pretraining"]:
            raise ConfigError("this model was built without pretraining heads (pretraining=False)")
        inp = self.prepare(x, channels)
        b, c, a, _ = inp.patches.shape
        check_token_mask(mask, b, c * a)
        patch_embed = self.temporal(inp.patches)
        w = mask.unsqueeze(-1).to(patch_embed.dtype)
        views = torch.cat((patch_embed * (1 - w) + self.mask_token * w,      # masked view
                           patch_embed * w + self.mask_token * (1 - w)))     # symmetric view
        s = patch_embed.shape[0]
        features = self.norm_pre(self._run(views, inp))
        masked, symmetric = features[:s], features[s:]
        return PretrainOutput(self.token_logits(masked, mask), self.token_logits(symmetric, ~mask), masked, symmetric)

    def embed(self, x: torch.Tensor, channels: ChannelsLike) -> tuple[torch.Tensor, torch.Tensor]:
        """Features for downstream use: ``(per_token [B, L, S*D], pooled [B, S*D])`` — block outputs of every
        branch concatenated (no final norm, as the official fine-tuning path) and their mean over tokens."""
        inp = self.prepare(x, channels)
        features = self._run(self.temporal(inp.patches), inp)
        s, b, l, d = features.shape
        per_token = features.permute(1, 2, 0, 3).reshape(b, l, s * d)
        return per_token, per_token.mean(dim=1)

    def classifier_features(self, x: torch.Tensor, channels: ChannelsLike) -> torch.Tensor:
        """What enters the classifier (``fc_norm`` then ``head``): the head's pooling of the per-token features,
        ``[B, F]`` (``F = S*D`` for ``mean``)."""
        if not self.num_classes:
            raise ConfigError("no classification head: call reset_classifier(num_classes) or pass num_classes=")
        per_token, _ = self.embed(x, channels)
        ids = channel_id_tensor(self.spec, channels, x.device, check=False)
        return self.pool(per_token, ids)

    def forward(self, x: torch.Tensor, channels: ChannelsLike) -> torch.Tensor:
        """Classification logits ``[B, n]`` (``n = 1`` for two classes): pooled features -> fc_norm -> head."""
        return self.head(self.fc_norm(self.classifier_features(x, channels)))

    @classmethod
    def from_official(cls, path_or_state_dict, modality: str | ModalitySpec | None = None, **overrides: Any):
        """Load an official-layout FM checkpoint (pretraining variant, optionally with a fine-tuning head)."""
        from neurorvq.models.official_fm import load_official_fm

        return load_official_fm(cls, path_or_state_dict, modality, **overrides)


def masked_token_loss(out: PretrainOutput, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """LaBraM-style loss (method.md §4.2): mean over the H heads of CE on the masked tokens plus CE of the
    symmetric view on the unmasked ones. ``targets [B, H, L]`` (the tokenizer's ids, streams group-major; the
    grouped ``[B, S, N, L]`` is accepted too), ``mask [B, L]`` bool."""
    if targets.ndim == 4:
        targets = targets.flatten(1, 2)
    flat = targets.transpose(0, 1)  # [H, B, L]
    loss = F.cross_entropy(out.logits.flatten(0, 1), flat[:, mask].flatten())
    return loss + F.cross_entropy(out.logits_symmetric.flatten(0, 1), flat[:, ~mask].flatten())
