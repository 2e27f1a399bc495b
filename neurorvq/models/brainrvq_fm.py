"""BrainRVQ's hierarchical autoregressive foundation model (families.md §A.4, §A.6): family ``brainrvq``.

Shapes: B batch, C channels, A patches per channel, T samples per patch, L = C*A tokens (channel-major), D width,
G code groups (the tokenizer's domains: ``time``, ``frequency``), N RVQ levels, V codes per level, H = G*N streams
(group-major, the token layout's order), M masked tokens of a batch.

- Student: LaBraM's (:class:`~neurorvq.models.labram_fm.LaBraMFoundationModel`: TemporalConv on µV/100, the mask
  token at the conv output, CLS + spatial/temporal rows, blocks with QK-norm and layer scale, final LayerNorm) with a
  30-row temporal table.
- Heads, per domain (:class:`LevelConditionedHeads`): level k's logits are
  ``head_k(norm_k(h + sum_{j<k} E_j(y_j)))`` with ``norm_0`` the identity. ``y_j`` are the **true** codes of level j
  under teacher forcing (training), the argmax of level j's logits otherwise (evaluation). The two domains share the
  student's output and nothing else.
- Views: the masked tokens of the pass with mask M and the other tokens of a second pass with ``~M``.
- Loss (:meth:`BrainRVQFoundationModel.pretrain_loss`): ``sum_{domain, view, level} w_level CE`` (means over each
  view's tokens), w = 1, 0.5, 0.25; 12 terms summed, about 4 x 1.75 x ln V at initialisation.
- Fine-tuning: LaBraM's head (mean over patch tokens, ``fc_norm``, ``Linear`` initialised x 0.001); label smoothing
  and the layer-decay map are the fine-tuning task's (``label_smoothing``, ``layer_id``).

**Official behaviour (``parity=True``) vs the default:**

| | parity (the official code) | default |
|---|---|---|
| CLS spatial row in pretraining (BQ1) | the first channel's row | row 0 |
| dead ``student.lm_head`` and the last level's code embeddings (BQ10) | kept (loaded, exported, counted: 27,181,080 at full size) | dropped on load, not built (22,257,688) |
| frozen tokenizer during pretraining on a GPU | fp16 autocast | float32 |
| weight decay on ``mask_token`` and the code embeddings | decayed | not decayed |
| fine-tuning layer decay (BQ2) | ``time_embed`` in the top group (full lr) | ``time_embed`` with the embeddings |

Everything else is the same in both modes and equals the official outputs
(``tests/models/test_brainrvq_fm_equivalence.py``).
"""

from __future__ import annotations

from typing import Any, ClassVar, NamedTuple, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from neurorvq.errors import ConfigError, InputError
from neurorvq.families.brainrvq_fm import FAMILY, MASKINGS, BrainRVQFMOptions, fm_architecture
from neurorvq.families.labram import LaBraMConfig
from neurorvq.models.labram_fm import FM_OPTIONS as LABRAM_FM_OPTIONS
from neurorvq.models.labram_fm import OFFICIAL_NO_DECAY, LaBraMFoundationModel
from neurorvq.registry import ModalitySpec
from neurorvq.tokenizers import TokenLayout

FM_OPTIONS: dict[str, Any] = {
    **LABRAM_FM_OPTIONS,
    **{name: getattr(BrainRVQFMOptions, name) for name in ("depth", "init_values", "drop_path", "parity", "masking",
                                                             "level_weights", "check_inputs", "crop")},
    "vocab_size": 8192,                    # codes per level (the tokenizer's codebook size)
    "levels": 3,                           # RVQ levels per domain
    "domains": ("time", "frequency"),      # the tokenizer's code groups, in its order
}
"""The model options (not architecture) and their defaults."""


class BrainRVQPretrainOutput(NamedTuple):
    """Hierarchical pretraining forward. ``logits [H, M, V]`` for the M masked tokens (rows in (batch, token) order;
    stream h = domain g, level n at ``h = g * N + n``), ``logits_symmetric [H, U, V]`` for the U = B*L - M others from
    the complement view; ``features`` / ``features_symmetric [B, 1 + L, D]`` after the final norm, CLS first;
    ``patch_embed [B, L, D]`` the TemporalConv output."""

    logits: torch.Tensor
    logits_symmetric: torch.Tensor
    features: torch.Tensor
    features_symmetric: torch.Tensor
    patch_embed: torch.Tensor


class LevelConditionedHeads(nn.Module):
    """One domain's level-conditioned heads: ``heads[k]`` Linear(D, V), ``norms[k]`` LayerNorm(D) for k >= 1
    (identity at level 0), ``embed[j]`` Embedding(V, D) of the codes of level j that condition the levels above.

    ``embed`` has N - 1 tables, or N with ``dead_last_embedding`` (the official model holds a last-level table whose
    output nothing reads)."""

    def __init__(self, dim: int, levels: int, vocab: int, eps: float, dead_last_embedding: bool = False) -> None:
        super().__init__()
        self.embed = nn.ModuleList(nn.Embedding(vocab, dim) for _ in range(levels - 1 + int(dead_last_embedding)))
        self.heads = nn.ModuleList(nn.Linear(dim, vocab) for _ in range(levels))
        self.norms = nn.ModuleList([nn.Identity()] + [nn.LayerNorm(dim, eps=eps) for _ in range(levels - 1)])

    def forward(self, h: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """``h [M, D]`` student features; ``labels [N, M]`` the true codes to condition on (teacher forcing) or
        ``None`` (each level conditioned on the argmax of the levels below). Returns logits ``[N, M, V]``."""
        context, out = h, []
        for k, (head, norm) in enumerate(zip(self.heads, self.norms)):
            if k:
                fed = labels[k - 1] if labels is not None else out[-1].argmax(-1)
                context = context + self.embed[k - 1](fed)
            out.append(head(norm(context)))
        return torch.stack(out)


class BrainRVQFoundationModel(LaBraMFoundationModel):
    """BrainRVQ's student with level-conditioned heads for ``modality`` (a registered name, a spec file or a
    :class:`ModalitySpec`).

    ``overrides``: the architecture fields shared with the tokenizer (base: the modality's ``brainrvq`` default,
    else the official size, :data:`~neurorvq.families.brainrvq_fm.BRAINRVQ_FM_ARCHITECTURE`) and the options of
    :data:`FM_OPTIONS` (LaBraM's plus ``levels``, ``domains``, ``level_weights``, ``masking``). Inputs as
    :class:`~neurorvq.models.labram_fm.LaBraMFoundationModel`.
    """

    family: ClassVar[str] = FAMILY
    display_name: ClassVar[str] = "BrainRVQ"
    mask_rule: ClassVar[str] = "floor"
    """The count rule of the random mask (:mod:`neurorvq.tasks.masking`): ``floor(ratio L)`` (BrainRVQ's)."""
    conditions_on_targets: ClassVar[bool] = True
    """:meth:`forward_pretrain` takes the target ids (teacher forcing): PretrainTask passes ``targets=``."""
    option_defaults: ClassVar[dict[str, Any]] = FM_OPTIONS
    pretraining_parts: ClassVar[tuple[str, ...]] = ("mask_token", "norm", "ar", "dead_lm_head")
    size_options: ClassVar[tuple[str, ...]] = ("depth", "vocab_size", "levels", "domains", "pretraining",
                                               "num_classes")

    @classmethod
    def base_config(cls, signal: ModalitySpec) -> LaBraMConfig:
        """The modality's ``brainrvq`` default (its student fields), else the official size."""
        return fm_architecture(signal.families.get(FAMILY))

    def build_token_heads(self, where: str) -> None:
        """Per domain a :class:`LevelConditionedHeads` under ``ar.<domain>``; in parity mode the dead
        ``student.lm_head`` (``dead_lm_head``) and the last level's code embeddings too."""
        o = self.options
        o["domains"] = tuple(str(d) for d in o["domains"])
        levels, vocab, domains = int(o["levels"]), int(o["vocab_size"]), o["domains"]
        if levels < 1 or not domains or len(set(domains)) != len(domains):
            raise ConfigError(f"{where}: levels {levels} and domains {list(domains)}; give levels >= 1 and distinct "
                              "domain names (the tokenizer's code groups)")
        if o["masking"] not in MASKINGS:
            raise ConfigError(f"{where}: masking is {o['masking']!r}; valid: {', '.join(MASKINGS)}")
        weights = o["level_weights"]
        if weights is not None and (len(weights) != levels or min(float(w) for w in weights) < 0):
            raise ConfigError(f"{where}: level_weights {list(weights)} must give one weight >= 0 per level "
                              f"({levels}); omit it for the official 1, 0.5, 0.25, ...")
        dim, parity = self.config.embed_dim, bool(o["parity"])
        self.ar = nn.ModuleDict({d: LevelConditionedHeads(dim, levels, vocab, self.config.norm_eps, parity)
                                 for d in domains})
        if parity:  # never used by the official forward; kept for loading, exporting and counting
            self.dead_lm_head = nn.Linear(dim, vocab)

    @torch.no_grad()
    def init_weights(self, std: float = 0.02) -> None:
        """LaBraM's initialisation (:meth:`LaBraMFoundationModel.init_weights`, trunc-normal cut at ±``std``) with
        the code embeddings drawn like the heads (BQ13)."""
        super().init_weights(std)
        for module in self.modules():
            if isinstance(module, nn.Embedding):
                nn.init.trunc_normal_(module.weight, std=std, a=-std, b=std)

    # ------------------------------------------------------------------------------------ protocol
    @property
    def level_weights(self) -> tuple[float, ...]:
        """The loss weight of each level: the ``level_weights`` option, else ``0.5 ** level`` (1, 0.5, 0.25)."""
        weights = self.options["level_weights"]
        return tuple(float(w) for w in weights) if weights is not None else tuple(
            0.5 ** k for k in range(int(self.options["levels"])))

    @property
    def target_layout(self) -> TokenLayout | None:
        """``domains`` x ``levels`` streams of ``vocab_size`` codes; ``None`` without the heads."""
        if not self.options["pretraining"]:
            return None
        o = self.options
        return TokenLayout.uniform(list(o["domains"]), int(o["levels"]), int(o["vocab_size"]))

    def check_targets(self, layout: TokenLayout) -> None:
        """Raise :class:`ConfigError` unless the heads predict ``layout``'s ids (groups, depths, codebook sizes)."""
        mine = self.target_layout
        if mine is None:
            raise ConfigError("this model was built without the pretraining heads (pretraining=False)")
        if TokenLayout(layout.groups, layout.depths, layout.codebook_sizes) != mine:
            raise ConfigError(f"the tokenizer's ids have groups {list(layout.groups)} of depths {list(layout.depths)} "
                              f"(codebooks up to {layout.max_codebook_size}) but the heads predict {list(mine.groups)} "
                              f"x {mine.depths[0]} levels x {mine.max_codebook_size} codes: build the FM from the "
                              "tokenizer (PretrainTask does) or pass levels/domains/vocab_size to match")

    @classmethod
    def target_overrides(cls, tokenizer: Any) -> dict[str, Any]:
        """What pretraining against ``tokenizer`` fixes: the heads (its groups, depth and codebook size) and, when its
        config has them, the shared signal fields (tables' rows, vocabulary, in-model scaling)."""
        layout = tokenizer.layout
        out: dict[str, Any] = {"vocab_size": layout.max_codebook_size, "levels": layout.depths[0],
                               "domains": tuple(layout.groups)}
        config = getattr(tokenizer, "config", None)
        shared = ("max_patches", "spatial_rows", "channels", "input_scale")
        if config is not None and all(hasattr(config, name) for name in shared):
            out.update({name: getattr(config, name) for name in shared})
        return out

    def no_weight_decay_names(self) -> tuple[str, ...]:
        """The official list (cls/pos/time tables; 1-D tensors and biases by rule) in parity mode; the mask token
        and the code embeddings too otherwise."""
        return OFFICIAL_NO_DECAY if self.options["parity"] else OFFICIAL_NO_DECAY + ("mask_token", ".embed.")

    def pretrain_mask(self, x: torch.Tensor, channels: Any, *, ratio: float, generator: torch.Generator | None,
                      epoch: int = 0, epochs: int | None = None) -> torch.Tensor:
        """The pretraining mask ``[B, L]`` bool (True = masked) of windows ``x [B, C, A*T]``: BrainRVQ's
        importance-guided curriculum (:func:`neurorvq.tasks.importance.importance_mask`, official settings at mask
        ratio ``ratio``) at 0-based ``epoch`` of ``epochs`` on the patches in the model's unit (option
        ``masking="importance"``), or its random ablation (``"random"``: ``floor(ratio L)`` uniform tokens, then the
        same punching and run limit). ``generator``: where the draws come from (a CPU one: the same masks on every
        device)."""
        from neurorvq.tasks.importance import ImportanceMaskSettings, importance_mask

        ablation = self.options["masking"] == "random"
        if epochs is None and not ablation:
            raise ConfigError("the importance-guided mask's curriculum needs the run's epochs: set trainer.max_epochs "
                              "(or fm masking: random)")
        settings = ImportanceMaskSettings(mask_ratio=ratio, random_mask=ablation, parity=bool(self.options["parity"]),
                                          sampling_rate=float(self.signal.sampling_rate))
        patches = self._inputs(x, channels).patches
        return importance_mask(patches, epoch, 1 if epochs is None else epochs, generator, settings).to(x.device)

    # ------------------------------------------------------------------------------------ pretraining
    def forward_pretrain(self, x: torch.Tensor, channels: Any, mask: torch.Tensor, targets: torch.Tensor | None = None,
                         teacher_forcing: bool | None = None) -> BrainRVQPretrainOutput:
        """Hierarchical pretraining pass: ``mask [B, L]`` bool, True = masked; the complement view masks ``~mask``.
        ``targets [B, H, L]``: the tokenizer's ids, needed under teacher forcing. ``teacher_forcing``: feed the true
        codes of the lower levels (``None``: in training mode, as the official model) or their argmax."""
        forcing = self.training if teacher_forcing is None else bool(teacher_forcing)
        levels, domains = int(self.options["levels"]), self.options["domains"]
        if forcing and targets is None:
            raise InputError("teacher forcing needs targets=[batch, streams, tokens] (the tokenizer's ids); pass them "
                             "or call with teacher_forcing=False (argmax feedback)")
        masked, symmetric, patch_embed = self.student_views(x, channels, mask)
        if forcing:
            shape = (mask.shape[0], levels * len(domains), mask.shape[1])
            if tuple(targets.shape) != shape:
                raise InputError(f"targets have shape {tuple(targets.shape)}; expected [batch, {shape[1]} streams "
                                 f"({len(domains)} domains x {levels} levels), {shape[2]} tokens]")
            streams = targets.transpose(0, 1)  # [H, B, L]
        views = []
        for features, where in ((masked, mask), (symmetric, ~mask)):
            h = features[:, 1:][where]  # [M, D], rows in (batch, token) order
            labels = streams[:, where] if forcing else None  # [H, M]
            views.append(torch.cat([self.ar[d](h, None if labels is None else labels[g * levels:(g + 1) * levels])
                                    for g, d in enumerate(domains)]))
        return BrainRVQPretrainOutput(views[0], views[1], masked, symmetric, patch_embed)

    def loss_terms(self, out: BrainRVQPretrainOutput, targets: torch.Tensor,
                   mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """The engine's terms: ``ce_<domain>_<view> [N]`` (CE per level, mean over the view's tokens; view
        ``masked`` or ``symmetric``) and ``loss_<domain>_<view>`` = sum over levels of ``w_level * CE``."""
        levels, weights = int(self.options["levels"]), torch.tensor(self.level_weights)
        streams = targets.flatten(1, 2) if targets.ndim == 4 else targets
        streams = streams.transpose(0, 1)  # [H, B, L]
        terms: dict[str, torch.Tensor] = {}
        for view, logits, where in (("masked", out.logits, mask), ("symmetric", out.logits_symmetric, ~mask)):
            labels = streams[:, where]  # [H, M]
            for g, domain in enumerate(self.options["domains"]):
                ce = torch.stack([F.cross_entropy(logits[h], labels[h]) for h in range(g * levels, (g + 1) * levels)])
                terms[f"ce_{domain}_{view}"] = ce
                terms[f"loss_{domain}_{view}"] = (weights.to(ce) * ce).sum()
        return terms

    def pretrain_loss(self, out: BrainRVQPretrainOutput, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The pretraining loss: the sum of the level-weighted CEs over both views and every domain (12 terms for
        2 domains x 3 levels). ``targets [B, H, L]``, ``mask [B, L]``."""
        terms = self.loss_terms(out, targets, mask)
        return torch.stack([v for k, v in terms.items() if k.startswith("loss_")]).sum()

    # ------------------------------------------------------------------------------------ persistence
    @classmethod
    def from_official(cls, path_or_state_dict: Any, modality: str | ModalitySpec | None = None,
                      **overrides: Any) -> "BrainRVQFoundationModel":
        """A model from an official state dict: the pretraining layout (``student.*``, ``token_embed_{t,f}``,
        ``lm_heads_{t,f}``, ``fusion_norm_{t,f}``) or the fine-tuning layout (no prefix, ``fc_norm``, ``head``); see
        :mod:`neurorvq.models.official_brainrvq_fm`."""
        from neurorvq.models.official_brainrvq_fm import load_official_brainrvq_fm

        return load_official_brainrvq_fm(cls, path_or_state_dict, modality, **overrides)

    def to_official(self) -> dict[str, torch.Tensor]:
        """The weights in the official layout (pretraining layout with the heads, else the fine-tuning one)."""
        from neurorvq.models.official_brainrvq_fm import export_official_brainrvq_fm

        return export_official_brainrvq_fm(self)


def stream_index(domains: Sequence[str], levels: int, domain: str, level: int) -> int:
    """The stream ``h`` of (``domain``, ``level``) in the group-major order of the logits and the token layout."""
    return list(domains).index(domain) * levels + level


__all__ = ["BrainRVQFoundationModel", "BrainRVQPretrainOutput", "FM_OPTIONS", "LevelConditionedHeads",
           "stream_index"]
