"""The official LaBraM VQ-NSP checkpoint layout (``modeling_vqnsp.VQNSP``) <-> :class:`LaBraMTokenizer`'s, in one
table.

``{i}`` is a block index, ``{s1}`` the official 1-based conv stage (``{s}`` ours, 0-based), ``{n}`` the index inside
a Linear-Tanh-Linear head (0 or 2), ``{p}`` ``weight``/``bias``, ``{rest}`` a block-internal name (the same on both
sides: ``norm1``, ``attn.q_bias``, ``attn.v_bias``, ``attn.qkv.weight``, ``attn.proj``, ``norm2``, ``mlp.fc1``,
``mlp.fc2``). ``F`` = ``decoders.frequency``.

| official | ours | shape change |
|---|---|---|
| ``encoder.cls_token`` | ``encoder.transformer.cls_token`` | — |
| ``encoder.pos_embed`` | ``encoder.transformer.pos_embed`` | ``[1, R, D]`` -> ``[R, D]`` |
| ``encoder.time_embed`` | ``encoder.transformer.time_embed`` | ``[1, 16, D]`` -> ``[16, D]`` |
| ``encoder.patch_embed.conv{s1}.{p}`` | ``encoder.conv.convs.{s}.{p}`` | — |
| ``encoder.patch_embed.norm{s1}.{p}`` | ``encoder.conv.norms.{s}.{p}`` | — |
| ``encoder.blocks.{i}.{rest}`` | ``encoder.transformer.blocks.{i}.{rest}`` | — |
| ``encoder.fc_norm.{p}`` | ``encoder.fc_norm.{p}`` | — |
| ``encode_task_layer.{n}.{p}`` | ``encoder.projection.{n}.{p}`` | — |
| ``decoder.cls_token`` / ``pos_embed`` / ``time_embed`` | ``F.transformer.*`` | as the encoder's |
| ``decoder.patch_embed.proj.weight`` | ``F.embed.weight`` | 1x1 conv ``[D, d, 1, 1]`` -> Linear ``[D, d]`` |
| ``decoder.patch_embed.proj.bias`` | ``F.embed.bias`` | — |
| ``decoder.blocks.{i}.{rest}`` | ``F.transformer.blocks.{i}.{rest}`` | — |
| ``decoder.fc_norm.{p}`` | ``F.fc_norm.{p}`` | — |
| ``decode_task_layer.{n}.{p}`` | ``F.heads.amplitude.{n}.{p}`` | — |
| ``decode_task_layer_angle.{n}.{p}`` | ``F.heads.angle.{n}.{p}`` | — |
| ``quantize.embedding.weight`` | ``quantizer.codebooks`` | ``[K, d]`` -> ``[1, 1, K, d]`` |
| ``quantize.embedding.initted`` | ``quantizer.initted`` | float ``[1]`` -> bool ``[1, 1]`` |
| ``quantize.cluster_size`` (buffer) | ``quantizer.usage`` | ``[K]`` -> ``[1, 1, K]`` |
| ``quantize.embedding.embed_avg``, ``quantize.embedding.cluster_size`` | — (dead: never read after construction) | dropped on load, zeros on export |
| — | ``quantizer.unused_steps`` (ours only) | kept at its initial value |

Architecture from the shapes: D (``cls_token``), conv channels (``conv1``), depths (block indices), MLP ratio
(``fc1``), K and d (``quantize.embedding.weight``), the tables' rows, the patch length (heads' output). The number of
heads leaves no trace (there is no QK-norm): LaBraM's heads are 20 wide, so ``num_heads = D // 20`` unless given.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping

import torch

from neurorvq.errors import CheckpointError
from neurorvq.models.key_table import KeyTable, batched_table, count_indices, flat_table
from neurorvq.models.pretrained import check_state_dict, read_state_dict, without_ddp_prefix

HEAD_DIM = 20
"""LaBraM's attention head width (10 heads at D = 200): the default when ``num_heads`` is not given."""

_FIELDS = {"i": r"\d+", "s1": r"[1-9]", "s": r"\d+", "n": r"0|2", "p": r"weight|bias", "rest": r".+"}


def _slot(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(1, 1, *t.shape)


def _unslot(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(t.shape[2:])


# (official template, our template, to ours, to official)
ENCODER_RULES: tuple[tuple[str, str, Callable | None, Callable | None], ...] = (
    ("encoder.cls_token", "encoder.transformer.cls_token", None, None),
    ("encoder.pos_embed", "encoder.transformer.pos_embed", flat_table, batched_table),
    ("encoder.time_embed", "encoder.transformer.time_embed", flat_table, batched_table),
    ("encoder.patch_embed.conv{s1}.{p}", "encoder.conv.convs.{s}.{p}", None, None),
    ("encoder.patch_embed.norm{s1}.{p}", "encoder.conv.norms.{s}.{p}", None, None),
    ("encoder.blocks.{i}.{rest}", "encoder.transformer.blocks.{i}.{rest}", None, None),
    ("encoder.fc_norm.{p}", "encoder.fc_norm.{p}", None, None),
    ("encode_task_layer.{n}.{p}", "encoder.projection.{n}.{p}", None, None),
)
"""The encoder and projection, shared by every tokenizer of LaBraM's lineage (VQ-NSP, BrainRVQ's DD-RVQ)."""


def decoder_rules(official: str, ours: str) -> tuple[tuple[str, str, Callable | None, Callable | None], ...]:
    """The rules of one decoder (``official`` prefix, e.g. ``decoder`` or ``decoder_t``; ``ours``, e.g.
    ``decoders.frequency``): tables, 1x1-conv embedding, blocks, final norm."""
    return (
        (f"{official}.cls_token", f"{ours}.transformer.cls_token", None, None),
        (f"{official}.pos_embed", f"{ours}.transformer.pos_embed", flat_table, batched_table),
        (f"{official}.time_embed", f"{ours}.transformer.time_embed", flat_table, batched_table),
        (f"{official}.patch_embed.proj.weight", f"{ours}.embed.weight",
         lambda t: t.reshape(t.shape[0], t.shape[1]), lambda t: t.reshape(*t.shape, 1, 1)),
        (f"{official}.patch_embed.proj.bias", f"{ours}.embed.bias", None, None),
        (f"{official}.blocks.{{i}}.{{rest}}", f"{ours}.transformer.blocks.{{i}}.{{rest}}", None, None),
        (f"{official}.fc_norm.{{p}}", f"{ours}.fc_norm.{{p}}", None, None),
    )


RULES: tuple[tuple[str, str, Callable | None, Callable | None], ...] = (
    *ENCODER_RULES,
    *decoder_rules("decoder", "decoders.frequency"),
    ("decode_task_layer.{n}.{p}", "decoders.frequency.heads.amplitude.{n}.{p}", None, None),
    ("decode_task_layer_angle.{n}.{p}", "decoders.frequency.heads.angle.{n}.{p}", None, None),
    ("quantize.embedding.weight", "quantizer.codebooks", _slot, _unslot),
    ("quantize.embedding.initted", "quantizer.initted", lambda t: t.reshape(1, 1).bool(),
     lambda t: t.float().reshape(1)),
    ("quantize.cluster_size", "quantizer.usage", _slot, _unslot),
)
DEAD = ("quantize.embedding.embed_avg", "quantize.embedding.cluster_size")
"""Official tensors never read after construction: dropped on load, zero-filled on export."""
OURS_ONLY = ("quantizer.unused_steps",)
"""Our tensors without an official counterpart: kept at the model's initial value on load, not exported."""
MARKERS = ("encoder.patch_embed.conv1.weight", "quantize.embedding.weight", "decode_task_layer_angle.0.weight")
"""Keys every official VQ-NSP state dict holds (``neurorvq.load`` recognises the family by them)."""


TABLE = KeyTable(RULES, _FIELDS, "official VQ-NSP")


def map_official_to_ours(official: Mapping[str, torch.Tensor], source: str) -> dict[str, torch.Tensor]:
    """``official`` under our key names (shapes converted); keys outside the table are an error listing them."""
    return TABLE.to_ours(official, source, skip=DEAD)


def map_ours_to_official(ours: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Inverse of :func:`map_official_to_ours`; the dead tensors are zeros of the official shapes."""
    out = TABLE.to_official(ours, skip=OURS_ONLY, unmapped="the model is not a one-domain, one-level VQ-NSP")
    codebook = out["quantize.embedding.weight"]
    out[DEAD[0]] = torch.zeros_like(codebook)
    out[DEAD[1]] = torch.zeros(codebook.shape[0], dtype=codebook.dtype)
    return out


def encoder_shapes(state: Mapping[str, torch.Tensor], codebook: torch.Tensor) -> dict[str, Any]:
    """The config fields the LaBraM-style encoder of an official tokenizer state dict fixes (VQ-NSP's and DD-RVQ's
    alike): width, conv channels, heads, encoder depth, MLP ratio, temporal and spatial table rows, and the
    ``codebook``'s size and code dimension."""
    dim = int(state["encoder.cls_token"].shape[-1])
    return {
        "embed_dim": dim,
        "conv_channels": int(state["encoder.patch_embed.conv1.weight"].shape[0]),
        "num_heads": max(1, dim // HEAD_DIM),
        "encoder_depth": count_indices(state, r"encoder\.blocks\.(\d+)\."),
        "mlp_ratio": state["encoder.blocks.0.mlp.fc1.weight"].shape[0] / dim,
        "codebook_size": int(codebook.shape[0]),
        "code_dim": int(codebook.shape[1]),
        "max_patches": int(state["encoder.time_embed"].shape[-2]),
        "spatial_rows": int(state["encoder.pos_embed"].shape[-2]),
    }


def infer_config(state: Mapping[str, torch.Tensor], source: str) -> dict[str, Any]:
    """The :class:`~neurorvq.families.labram.LaBraMConfig` fields an official VQ-NSP state dict fixes, and
    ``patch_length`` (from the heads), read from its shapes."""
    missing = [k for k in MARKERS + ("encoder.cls_token", "encoder.pos_embed", "encoder.time_embed",
                                     "encoder.blocks.0.mlp.fc1.weight", "decode_task_layer.2.weight") if k not in state]
    if missing:
        if any(k.startswith("quantize_1.") for k in state):
            raise CheckpointError(f"{source} is an official 'neurorvq' tokenizer, not a 'labram_vqnsp' one: load "
                                  "it with neurorvq.load or NeuroRVQTokenizer.from_official")
        raise CheckpointError(f"{source}: not an official LaBraM VQ-NSP tokenizer state dict (missing {missing})")
    encoder_rows = tuple(state["encoder.time_embed"].shape[-2:])
    if "decoder.time_embed" in state and tuple(state["decoder.time_embed"].shape[-2:]) != encoder_rows:
        raise CheckpointError(f"{source}: encoder and decoder temporal tables differ ({encoder_rows} vs "
                              f"{tuple(state['decoder.time_embed'].shape[-2:])}); not a VQ-NSP layout")
    return {**encoder_shapes(state, state["quantize.embedding.weight"]),
            "decoder_depth": count_indices(state, r"decoder\.blocks\.(\d+)\."),
            "depth": 1,
            "domains": ("frequency",),
            "patch_length": int(state["decode_task_layer.2.weight"].shape[0])}


def load_official_vqnsp(cls: type, path_or_state_dict: str | Path | Mapping[str, torch.Tensor],
                        modality: Any = None, **overrides: Any) -> Any:
    """Build ``cls`` (a :class:`~neurorvq.models.spectral_vq.LaBraMTokenizer`) with the architecture read from the
    checkpoint (``overrides`` win; the modality defaults to ``eeg``) and load the weights, checked key by key."""
    if isinstance(path_or_state_dict, Mapping):
        state, source = dict(path_or_state_dict), "'the state dict'"
    else:
        state, source = read_state_dict(path_or_state_dict), f"'{path_or_state_dict}'"
    state = without_ddp_prefix(state)
    inferred = infer_config(state, source)
    patch_length = inferred.pop("patch_length")
    model = cls("eeg" if modality is None else modality, **{**inferred, **overrides})
    if model.signal.patch_length != patch_length:
        raise CheckpointError(f"{source}: its heads predict {patch_length} FFT bins (patches of {patch_length} "
                              f"samples) but modality '{model.signal.name}' has patch_length="
                              f"{model.signal.patch_length}; pass the modality it was trained on")
    template = model.state_dict()
    mapped = map_official_to_ours(state, source)
    mapped.update({key: template[key] for key in OURS_ONLY})
    check_state_dict(model, mapped, source)
    model.load_state_dict(mapped)
    return model


def export_official_vqnsp(model: Any) -> dict[str, torch.Tensor]:
    """``model``'s weights under the official key names and shapes (:func:`map_ours_to_official`)."""
    return map_ours_to_official(model.state_dict())


__all__ = ["DEAD", "HEAD_DIM", "MARKERS", "OURS_ONLY", "RULES", "encoder_shapes", "export_official_vqnsp",
           "infer_config", "load_official_vqnsp", "map_official_to_ours", "map_ours_to_official"]
