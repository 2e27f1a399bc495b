"""The official NeuroRVQ-FM checkpoint layout -> :class:`~neurorvq.models.fm.NeuroRVQFoundationModel`.

Same table style as :mod:`neurorvq.models.official` (the tokenizer's). The official FM has no prefix
(``blocks.0...``); its 32 (S x N) heads ``head_pre_{h}`` (h = 1..S*N, branch-major) become the batched
``head_weight [S, N, V, D]`` / ``head_bias [S, N, V]``. ``fc_norm_{b}`` (unused on the official fine-tuning
path, method.md §4.3) are dropped.
"""

from __future__ import annotations

import re
from typing import Any

import torch

from neurorvq.errors import CheckpointError
from neurorvq.models.official import Rule, _as_state_dict, _count, _pick_modality, infer_branches, map_official_to_ours
from neurorvq.models.pretrained import check_state_dict

FM_RULES: tuple[Rule, ...] = (
    Rule("cls_token", "backbone.cls_token"),
    Rule("pos_embed", "backbone.pos_embed"),
    Rule("time_embed", "backbone.time_embed"),
    Rule("mask_token", "mask_token"),
    Rule("patch_embed.conv{s1}_{b1}.{p}", "temporal.branches.{b}.convs.{s}.{p}"),
    Rule("patch_embed.norm{s1}_{b1}.{p}", "temporal.branches.{b}.norms.{s}.{p}"),
    Rule("blocks.{i}.{rest}", "backbone.blocks.{i}.{rest}"),
    Rule("norm_pre.{p}", "norm_pre.{p}"),
    Rule("head_pre.{b1}.{j}.weight", "head_weight", slot=True),   # renamed from head_pre_{h} first
    Rule("head_pre.{b1}.{j}.bias", "head_bias", slot=True),
    Rule("fc_norm.{p}", "fc_norm.{p}"),
    Rule("head.{p}", "head.{p}"),
)
FM_DEAD: tuple[str, ...] = ("fc_norm_{b1}.{p}",)


def _split_heads(state: dict[str, torch.Tensor], depth: int) -> dict[str, torch.Tensor]:
    """``head_pre_{h}.*`` -> ``head_pre.{branch+1}.{level}.*`` (h = branch * depth + level + 1)."""
    out = {}
    for key, value in state.items():
        m = re.match(r"head_pre_(\d+)\.(weight|bias)\Z", key)
        if m:
            branch, level = divmod(int(m.group(1)) - 1, depth)
            key = f"head_pre.{branch + 1}.{level}.{m.group(2)}"
        out[key] = value
    return out


def load_official_fm(cls, path_or_state_dict, modality=None, **overrides: Any):
    """Build ``cls`` with the configuration read from the checkpoint's shapes (``overrides`` win) and load it."""
    state, source = _as_state_dict(path_or_state_dict)
    for key in ("cls_token", "pos_embed", "time_embed", "patch_embed.conv1_1.weight", "blocks.0.attn.q_norm.weight"):
        if key not in state:
            raise CheckpointError(f"{source}: not an official NeuroRVQ-FM state dict (missing '{key}')")
    base = _pick_modality(modality, state["pos_embed"].shape[0], source)
    branches = infer_branches(state, "patch_embed.", base, source)
    num_branches = len(branches)
    dim = int(state["cls_token"].shape[-1])
    heads = _count(state, r"head_pre_(\d+)\.weight\Z")
    spec_fields = dict(branches=branches, conv_channels=int(state["patch_embed.conv1_1.weight"].shape[0]),
                       embed_dim=dim, num_heads=dim // int(state["blocks.0.attn.q_norm.weight"].shape[0]),
                       mlp_ratio=state["blocks.0.mlp.fc1.weight"].shape[0] / dim,
                       max_patches=int(state["time_embed"].shape[0]))
    options: dict[str, Any] = {"depth": _count(state, r"blocks\.(\d+)\."), "pretraining": heads > 0,
                               "init_values": 1e-5 if "blocks.0.gamma_1" in state else 0.0}
    if heads:
        if heads % num_branches:
            raise CheckpointError(f"{source}: {heads} pretraining heads do not split over {num_branches} branches")
        spec_fields["n_quantizers"] = heads // num_branches
        options["vocab_size"] = int(state["head_pre_1.weight"].shape[0])
    if "head.weight" in state:
        out = int(state["head.weight"].shape[0])
        options["num_classes"] = 2 if out == 1 else out
    spec = base.replace(**{**spec_fields, **{k: v for k, v in overrides.items() if k in spec_fields}})
    model = cls(spec, **{**options, **{k: v for k, v in overrides.items() if k not in spec_fields}})
    if heads:
        state = _split_heads(state, spec.n_quantizers)
    mapped = map_official_to_ours(state, model.state_dict(), FM_RULES, FM_DEAD, source)
    check_state_dict(model, mapped, source)
    model.load_state_dict(mapped)
    model.options["provenance"] = "official"  # fine-tuning follows it (official decay and schedule)
    return model
