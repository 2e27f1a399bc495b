"""LaBraM-Base's masked-code student (families.md §B.7): the foundation model of the ``labram_vqnsp`` family.

Shapes: B batch, C channels, A patches per channel, T samples per patch, L = C*A tokens (channel-major), D width,
V the tokenizer's codebook size.

- Front end: LaBraM's TemporalConv (one branch, stride 8) on ``x * input_scale`` (µV -> µV/100), read exactly as
  the VQ-NSP tokenizer reads it (same vocabulary, ids + 1, left-aligned temporal rows; the input path is the
  tokenizer's own :meth:`~neurorvq.models.spectral_vq.SpectralVQTokenizer.prepare`).
- Blocks: no q/v bias, QK-norm LayerNorm(head_dim, eps 1e-6), layer scale 0.1, LayerNorm eps 1e-6, optional
  drop-path.
- Pretraining (:meth:`LaBraMFoundationModel.forward_pretrain`): the conv outputs at masked tokens become the mask
  token (``x (1 - w) + m w``); CLS + embeddings; blocks; final LayerNorm ``norm`` over all tokens; one
  ``Linear(D, V)`` head (``lm_head``, the official outer head) on the masked tokens; a second view with the
  complement mask predicts the other tokens. Loss (:func:`~neurorvq.models.fm.masked_token_loss` with one stream):
  CE(masked) + CE(complement).
- Fine-tuning (:meth:`LaBraMFoundationModel.forward`): block outputs of the patch tokens (CLS row 0, no final
  norm), pooled (``mean`` as LaBraM), ``fc_norm`` LayerNorm(D, eps 1e-6), ``head`` Linear(D, n) (1 output for two
  classes), the head initialised trunc-normal(0.02) x 0.001 as LaBraM's ``init_scale``.

**Official behaviour (``parity=True``) vs the default:**

| | parity (the official code) | default |
|---|---|---|
| CLS spatial row in pretraining | the first channel's row (quirk, as BQ1) | row 0, as in fine-tuning and the tokenizer |
| dead ``student.lm_head`` (D x V) and ``projection_head`` (D x D) | kept (loaded, exported, counted: 9,153,520 at full size) | dropped on load, not exported |
| frozen tokenizer during pretraining on a GPU | fp16 autocast (the official engine) | float32 (exact codes) |
| ``mask_token`` weight decay | decayed (official skip list: cls/pos/time tables, 1-D, biases) | not decayed (as every learned table here) |
| fine-tuning layer decay (FinetuneTask ``auto``) | ``time_embed`` in the top group (full lr, LQ7) | ``time_embed`` with the embeddings (layer 0) |

Everything else is the same in both modes and equals the official outputs
(``tests/models/test_labram_fm_equivalence.py``).
"""

from __future__ import annotations

import hashlib
import json
import math
from contextlib import nullcontext
from dataclasses import replace
from typing import Any, ClassVar, ContextManager, Mapping, NamedTuple

import torch
from torch import nn

from neurorvq.compat import canonical_unit
from neurorvq.errors import ConfigError
from neurorvq.families.labram import FAMILY, FM_ARCHITECTURE_FIELDS, LABRAM_CONV, LaBraMConfig, LaBraMFMOptions
from neurorvq.models.inputs import check_token_mask
from neurorvq.models.pooling import Pooling, build_pooling
from neurorvq.models.pretrained import PretrainedMixin
from neurorvq.models.spectral_vq import Prepared, SpectralVQTokenizer
from neurorvq.nn.temporal import TemporalConvBranch
from neurorvq.nn.transformer import TokenTransformer
from neurorvq.registry import ModalitySpec, get_modality
from neurorvq.suggest import did_you_mean
from neurorvq.tokenizers import TokenLayout

FM_OPTIONS: dict[str, Any] = {
    **{name: getattr(LaBraMFMOptions, name) for name in ("depth", "init_values", "drop_path", "parity",
                                                           "check_inputs", "crop")},
    "vocab_size": None,      # classes of the token head; None = the architecture's codebook_size (8192)
    "pretraining": True,     # build mask token, final norm and the token head
    "num_classes": 0,        # fine-tuning classes (0 = no classification head)
    "pooling": "mean",       # how the classifier pools tokens (neurorvq.models.pooling); "mean" = LaBraM's head
    "pool_channels": None,   # channels of the fixed montage, for channel-aware poolings
    "provenance": None,      # "official" once loaded from official weights
}
"""The model options (not architecture) and their defaults."""

HEAD_INIT_SCALE = 1e-3
"""LaBraM's ``init_scale``: the fine-tuning head's trunc-normal weight and bias are multiplied by it."""
OFFICIAL_NO_DECAY = ("cls_token", "pos_embed", "time_embed")
"""The tables LaBraM's ``no_weight_decay`` lists (1-D tensors and biases are excluded by rule)."""
DEAD_MODULES = ("dead_lm_head", "dead_projection")
"""The official dead parameters, kept only in parity mode: ``student.lm_head`` and ``projection_head.0``."""


class LaBraMPretrainOutput(NamedTuple):
    """Masked-code pretraining forward. ``logits [1, M, V]`` for the M masked tokens (rows in (batch, token) order;
    one stream, the shape :func:`~neurorvq.models.fm.masked_token_loss` takes), ``logits_symmetric [1, U, V]`` for
    the U = B*L - M others from the complement view; ``features`` / ``features_symmetric [B, 1 + L, D]`` after the
    final norm, CLS first; ``patch_embed [B, L, D]`` the TemporalConv output."""

    logits: torch.Tensor
    logits_symmetric: torch.Tensor
    features: torch.Tensor
    features_symmetric: torch.Tensor
    patch_embed: torch.Tensor


class LaBraMFoundationModel(PretrainedMixin, nn.Module):
    """LaBraM's student for ``modality`` (a registered name, a spec file or a :class:`ModalitySpec`).

    ``overrides``: the architecture fields it shares with the tokenizer
    (:data:`~neurorvq.families.labram.FM_ARCHITECTURE_FIELDS`; base: the modality's ``labram_vqnsp`` default, else
    the official size) and the options of :data:`FM_OPTIONS` (``depth``, ``init_values``, ``drop_path``,
    ``parity``, ``vocab_size``, ``pretraining``, ``num_classes``, ``pooling``, ``pool_channels``, ``check_inputs``,
    ``crop``). Signals ``x [B, C, A*T]`` are in the modality's unit; ``channels`` are vocabulary names
    (case-insensitive) or ids into ``contract.channels``, a list ``[C]`` or an int tensor ``[C]`` / ``[B, C]``.
    """

    family: ClassVar[str] = FAMILY
    model_kind: ClassVar[str] = "foundation_model"
    display_name: ClassVar[str] = "LaBraM"
    mask_rule: ClassVar[str] = "keep_floor"
    """How many tokens :mod:`neurorvq.tasks.masking` masks: ``L - floor((1 - ratio) L)`` (LaBraM's)."""
    option_defaults: ClassVar[dict[str, Any]] = FM_OPTIONS
    """The model options and their defaults (a subclass for another family brings its own)."""
    pretraining_parts: ClassVar[tuple[str, ...]] = ("mask_token", "norm", "lm_head") + DEAD_MODULES
    """The modules :meth:`drop_pretraining_parts` removes."""
    size_options: ClassVar[tuple[str, ...]] = ("depth", "vocab_size", "pretraining", "num_classes")
    """The options that fix tensor sizes (part of :meth:`config_hash`)."""

    # the tokenizer's input path: vocabulary look-up, checks, µV/100 scaling, patches and ids (one implementation)
    channel_ids = SpectralVQTokenizer.channel_ids
    prepare = SpectralVQTokenizer.prepare
    contract = SpectralVQTokenizer.contract
    check_inputs = SpectralVQTokenizer.check_inputs
    save_pretrained = SpectralVQTokenizer.save_pretrained

    def __init__(self, modality: str | ModalitySpec = "eeg", **overrides: Any) -> None:
        super().__init__()
        self.signal = get_modality(modality)
        fields, defaults = set(FM_ARCHITECTURE_FIELDS), self.option_defaults
        unknown = sorted(set(overrides) - fields - set(defaults))
        if unknown:
            hints = "".join(f" {u!r}{did_you_mean(u, fields | set(defaults), 1)}" for u in unknown)
            raise ConfigError(f"unknown {self.family} foundation-model override(s):{hints}; valid: architecture "
                              f"{sorted(fields)}, options {sorted(defaults)}")
        config = replace(self.base_config(self.signal), **{k: v for k, v in overrides.items() if k in fields})
        where = f"modality '{self.signal.name}', family '{self.family}' foundation model"
        config.validate(self.signal.patch_length, where)
        if config.input_scale == 0.01 and canonical_unit(self.signal.unit) != "uV":
            raise ConfigError(f"{where}: input_scale 0.01 turns µV into LaBraM's µV/100, but the modality's unit is "
                              f"{self.signal.unit}; set input_scale to the factor from {self.signal.unit} to 100 µV")
        self.config = config
        self.options = {**defaults, **{k: v for k, v in overrides.items() if k in defaults}}
        if self.options["vocab_size"] is None:
            self.options["vocab_size"] = config.codebook_size
        for name in ("depth", "vocab_size"):
            if int(self.options[name]) < 1:
                raise ConfigError(f"{where}: {name} is {self.options[name]}; it must be a positive integer")
        self._vocabulary = {name.lower(): i for i, name in enumerate(config.channels)}
        dim, eps = config.embed_dim, config.norm_eps
        self.conv = TemporalConvBranch(LABRAM_CONV, config.conv_channels, config.groupnorm_groups)
        self.backbone = TokenTransformer(dim, int(self.options["depth"]), config.num_heads, config.spatial_rows,
                                         config.max_patches, config.mlp_ratio, float(self.options["init_values"]),
                                         qkv_bias=False, norm_eps=eps, qk_norm=True,
                                         drop_path=float(self.options["drop_path"]))
        if self.options["pretraining"]:
            self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
            self.norm = nn.LayerNorm(dim, eps=eps)
            self.build_token_heads(where)
        self.init_weights()
        self.num_classes = int(self.options["num_classes"])
        if self.num_classes:
            self.reset_classifier(self.num_classes)

    @classmethod
    def base_config(cls, signal: ModalitySpec) -> LaBraMConfig:
        """The architecture before overrides: the modality's default for the family, else the official size."""
        return signal.families.get(FAMILY, LaBraMConfig())

    def build_token_heads(self, where: str) -> None:
        """The pretraining heads after the final norm: LaBraM's one ``Linear(D, V)`` (``lm_head``) and, in parity
        mode, the official dead tensors. ``where`` prefixes configuration errors."""
        dim, vocab = self.config.embed_dim, int(self.options["vocab_size"])
        self.lm_head = nn.Linear(dim, vocab)
        if self.options["parity"]:  # never used by the official forward; kept for loading and exporting
            self.dead_lm_head = nn.Linear(dim, vocab)
            self.dead_projection = nn.Linear(dim, dim)

    # ------------------------------------------------------------------------------------ weights
    @torch.no_grad()
    def init_weights(self, std: float = 0.02) -> None:
        """LaBraM's from-scratch initialisation of the student: trunc-normal ``std`` cut at ±``std`` (the BEiT
        convention, BQ13) for every Linear and Conv weight, the tables and the mask token; zero biases; norms (1, 0);
        layer scale ``init_values``; ``attn.proj`` and ``mlp.fc2`` of block i (1-based) divided by sqrt(2i). The
        fine-tuning head is :meth:`reset_classifier`'s."""
        def trunc(t: torch.Tensor) -> None:
            nn.init.trunc_normal_(t, std=std, a=-std, b=std)

        backbone = self.backbone
        for p in (backbone.cls_token, backbone.pos_embed, backbone.time_embed):
            trunc(p)
        if hasattr(self, "mask_token"):
            trunc(self.mask_token)
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Conv2d)):
                trunc(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, (nn.LayerNorm, nn.GroupNorm)):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        for layer_id, block in enumerate(backbone.blocks, start=1):
            block.attn.proj.weight.div_(math.sqrt(2.0 * layer_id))
            block.mlp.fc2.weight.div_(math.sqrt(2.0 * layer_id))
            if block.gamma_1 is not None:
                block.gamma_1.fill_(float(self.options["init_values"]))
                block.gamma_2.fill_(float(self.options["init_values"]))

    def reset_classifier(self, num_classes: int, pooling: str | None = None, num_channels: int | None = None) -> None:
        """A new pooling, ``fc_norm`` (LayerNorm, eps 1e-6) and ``head`` (Linear; 1 output for two classes),
        the head trunc-normal(0.02) times :data:`HEAD_INIT_SCALE` with a zero bias (LaBraM's fine-tuning init).
        ``pooling`` / ``num_channels`` as NeuroRVQ's FM (recorded in the options)."""
        if pooling is not None:
            self.options["pooling"] = pooling
        if num_channels is not None:
            self.options["pool_channels"] = int(num_channels)
        self.pool: Pooling = build_pooling(self.options["pooling"], self.feature_dim, self.options["pool_channels"])
        self.num_classes = int(num_classes)
        self.options["num_classes"] = self.num_classes
        self.fc_norm = nn.LayerNorm(self.pool.out_features, eps=self.config.norm_eps)
        self.head = nn.Linear(self.pool.out_features, 1 if num_classes == 2 else num_classes)
        with torch.no_grad():
            nn.init.trunc_normal_(self.head.weight, std=0.02)
            nn.init.zeros_(self.head.bias)
            self.head.weight.mul_(HEAD_INIT_SCALE)

    def drop_pretraining_parts(self) -> None:
        """Remove the mask token, the final norm, the token head and the dead tensors (what LaBraM's fine-tuning
        model lacks); the model then serves ``embed``/``forward`` only."""
        for name in self.pretraining_parts:
            if hasattr(self, name):
                delattr(self, name)
        self.options["pretraining"] = False

    def num_parameters(self) -> int:
        """Every parameter (all trainable), as the official ``parameters()`` counts them."""
        return sum(p.numel() for p in self.parameters())

    # ------------------------------------------------------------------------------------ protocol
    @property
    def feature_dim(self) -> int:
        """Width D of the per-token features of :meth:`embed`."""
        return self.config.embed_dim

    @property
    def target_layout(self) -> TokenLayout | None:
        """One group of one level of ``vocab_size`` codes (VQ-NSP's ids); ``None`` without the token head."""
        if not self.options["pretraining"]:
            return None
        return TokenLayout.uniform(["frequency"], 1, int(self.options["vocab_size"]))

    def check_targets(self, layout: TokenLayout) -> None:
        """Raise :class:`ConfigError` unless ``layout`` is one stream of ``vocab_size`` codes."""
        if not self.options["pretraining"]:
            raise ConfigError("this model was built without the token head (pretraining=False)")
        vocab = int(self.options["vocab_size"])
        if layout.num_streams != 1 or layout.max_codebook_size != vocab:
            streams = " ".join(layout.stream_names)
            raise ConfigError(f"the tokenizer's ids have {layout.num_streams} streams ({streams}) "
                              f"of up to {layout.max_codebook_size} codes but LaBraM's student predicts one stream of "
                              f"{vocab} codes: use a one-level tokenizer (labram_vqnsp) of that codebook size")

    @classmethod
    def target_overrides(cls, tokenizer: Any) -> dict[str, Any]:
        """What pretraining against ``tokenizer`` fixes: the head's vocabulary (its codebook size) and, for a VQ-NSP
        tokenizer, the shared signal fields (vocabulary, tables' rows, in-model scaling) so both read windows
        alike."""
        out: dict[str, Any] = {"vocab_size": tokenizer.layout.max_codebook_size}
        config = getattr(tokenizer, "config", None)
        if isinstance(config, LaBraMConfig):
            out.update({name: getattr(config, name) for name in ("max_patches", "spatial_rows", "channels",
                                                                 "input_scale")})
        return out

    def target_autocast(self, device_type: str) -> ContextManager:
        """The precision the frozen tokenizer runs in during pretraining: fp16 autocast on a GPU in parity mode
        (the official engine), float32 otherwise (autocast off: exact codes under any trainer precision)."""
        if self.options["parity"] and device_type == "cuda":
            return torch.autocast("cuda", dtype=torch.float16)
        if device_type in ("cuda", "cpu"):
            return torch.autocast(device_type, enabled=False)
        return nullcontext()

    def no_weight_decay_names(self) -> tuple[str, ...]:
        """Name parts whose tensors get no weight decay besides 1-D tensors and biases: LaBraM's list in parity
        mode, plus the mask token otherwise."""
        return OFFICIAL_NO_DECAY if self.options["parity"] else OFFICIAL_NO_DECAY + ("mask_token",)

    def layer_id(self, name: str, mode: str) -> int:
        """LaBraM's layer-decay group of parameter ``name`` (0 .. depth + 1; scale ``decay ** (depth + 1 - id)``):
        ``cls_token``, ``pos_embed`` and the TemporalConv 0; block b b + 1; the rest (``fc_norm``, ``head``) depth + 1.
        ``time_embed``: depth + 1 in mode ``official`` (the official rule does not know its name, LQ7), 0 in mode
        ``block`` (the fix)."""
        depth = len(self.backbone.blocks)
        if name.startswith("backbone.blocks."):
            return int(name.split(".")[2]) + 1
        if name in ("backbone.cls_token", "backbone.pos_embed", "mask_token") or name.startswith("conv."):
            return 0
        if name == "backbone.time_embed":
            return depth + 1 if mode == "official" else 0
        return depth + 1

    # ------------------------------------------------------------------------------------ pieces
    def _inputs(self, x: torch.Tensor, channels: Any) -> Prepared:
        return self.prepare(x, channels, bool(self.options["check_inputs"]))

    def patch_embed(self, patches: torch.Tensor) -> torch.Tensor:
        """``patches [B, C, A, T]`` (model unit) -> TemporalConv output ``[B, L, D]``."""
        b, c, a, t = patches.shape
        return self.conv(patches.reshape(b, 1, c * a, t))

    def _blocks(self, tokens: torch.Tensor, inp: Prepared, cls_position: str) -> torch.Tensor:
        """``tokens [B, L, D]`` -> block outputs ``[B, 1 + L, D]`` (CLS first, on spatial row ``cls_position``)."""
        self.backbone.cls_position = cls_position  # read by embed(); set per pass (pretraining vs fine-tuning)
        return self.backbone.run_blocks(self.backbone.embed(tokens, inp.spatial_ids, inp.temporal_ids))

    # ------------------------------------------------------------------------------------ public API
    def forward_pretrain(self, x: torch.Tensor, channels: Any, mask: torch.Tensor) -> LaBraMPretrainOutput:
        """Masked-code pretraining pass: ``mask [B, L]`` bool, True = masked (channel-major tokens); the complement
        view masks ``~mask``. Both views run as one batch."""
        masked, symmetric, patch_embed = self.student_views(x, channels, mask)
        logits = self.lm_head(masked[:, 1:][mask])
        logits_symmetric = self.lm_head(symmetric[:, 1:][~mask])
        return LaBraMPretrainOutput(logits.unsqueeze(0), logits_symmetric.unsqueeze(0), masked, symmetric,
                                    patch_embed)

    def student_views(self, x: torch.Tensor, channels: Any,
                      mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The student on both views as one batch: ``(masked [B, 1 + L, D], symmetric [B, 1 + L, D], patch_embed
        [B, L, D])``, features after the final norm (CLS first; on the first channel's spatial row in parity mode),
        the conv outputs at ``mask`` (resp. ``~mask``) replaced by the mask token."""
        if not self.options["pretraining"]:
            raise ConfigError("this model was built without the token head (pretraining=False)")
        inp = self._inputs(x, channels)
        b, c, a, _ = inp.patches.shape
        check_token_mask(mask, b, c * a)
        patch_embed = self.patch_embed(inp.patches)
        w = torch.cat((mask, ~mask)).unsqueeze(-1).to(patch_embed.dtype)
        views = torch.cat((patch_embed, patch_embed)) * (1 - w) + self.mask_token * w
        spatial = inp.spatial_ids.repeat(2, 1) if inp.spatial_ids.ndim == 2 else inp.spatial_ids
        cls = "first_channel" if self.options["parity"] else "row0"
        features = self.norm(self._blocks(views, inp._replace(spatial_ids=spatial), cls))
        return features[:b], features[b:], patch_embed

    def encode(self, x: torch.Tensor, channels: Any) -> torch.Tensor:
        """Block outputs of the fine-tuning path, ``[B, 1 + L, D]``: CLS (spatial row 0) first, no final norm."""
        inp = self._inputs(x, channels)
        return self._blocks(self.patch_embed(inp.patches), inp, "row0")

    def embed(self, x: torch.Tensor, channels: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """Features for downstream use: ``(per_token [B, L, D], pooled [B, D])``, the patch tokens of :meth:`encode`
        and their mean."""
        per_token = self.encode(x, channels)[:, 1:]
        return per_token, per_token.mean(dim=1)

    def classifier_features(self, x: torch.Tensor, channels: Any) -> torch.Tensor:
        """What enters ``fc_norm`` then ``head``: the pooling of the per-token features, ``[B, F]``."""
        if not self.num_classes:
            raise ConfigError("no classification head: call reset_classifier(num_classes) or pass num_classes=")
        per_token, _ = self.embed(x, channels)
        ids = channels.to(x.device, torch.long) if torch.is_tensor(channels) else self.channel_ids(channels)
        return self.pool(per_token, ids.to(x.device))

    def forward(self, x: torch.Tensor, channels: Any) -> torch.Tensor:
        """Classification logits ``[B, n]`` (``n = 1`` for two classes)."""
        return self.head(self.fc_norm(self.classifier_features(x, channels)))

    # ------------------------------------------------------------------------------------ persistence
    def _config_dict(self) -> dict[str, Any]:
        arch = {k: v for k, v in self.config.to_dict().items() if k in FM_ARCHITECTURE_FIELDS}
        return {"signal": self.signal.to_dict(), "config": arch, "options": dict(self.options)}

    def to_config(self) -> dict[str, Any]:
        """Everything :meth:`from_config` needs: family, signal, the shared architecture, options (JSON)."""
        return {"family": self.family, **self._config_dict()}

    def config_hash(self) -> str:
        """Hash of the family, the signal, the architecture and the sizes the options fix."""
        signal = {k: v for k, v in self.signal.to_dict().items() if k not in ("doc", "families")}
        sizes = {k: self.options[k] for k in self.size_options}
        text = json.dumps({"family": self.family, "kind": self.model_kind, "signal": signal,
                           "config": self._config_dict()["config"], "sizes": sizes}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @classmethod
    def from_config(cls, config: Mapping[str, Any], **overrides: Any) -> "LaBraMFoundationModel":
        """A new (untrained) model from :meth:`to_config`'s output or a ``save_pretrained`` config."""
        signal = ModalitySpec.from_dict(config["signal"])
        return cls(signal, **{**config["config"], **config.get("options", {}), **overrides})

    @classmethod
    def from_official(cls, path_or_state_dict: Any, modality: str | ModalitySpec | None = None,
                      **overrides: Any) -> "LaBraMFoundationModel":
        """A model from an official state dict: the pretraining layout (``student.*``, ``lm_head.*``,
        ``projection_head.*``; ``labram-base.pth``), the fine-tuning layout (no prefix, with ``fc_norm``/``head``)
        or the pretraining layout plus a fine-tuning head; see :mod:`neurorvq.models.official_labram_fm`."""
        from neurorvq.models.official_labram_fm import load_official_labram_fm

        return load_official_labram_fm(cls, path_or_state_dict, modality, **overrides)

    def to_official(self) -> dict[str, torch.Tensor]:
        """The weights in the official layout (pretraining layout with the token head, else the fine-tuning one)."""
        from neurorvq.models.official_labram_fm import export_official_labram_fm

        return export_official_labram_fm(self)


__all__ = ["DEAD_MODULES", "FM_OPTIONS", "HEAD_INIT_SCALE", "LaBraMFoundationModel", "LaBraMPretrainOutput",
           "OFFICIAL_NO_DECAY"]
