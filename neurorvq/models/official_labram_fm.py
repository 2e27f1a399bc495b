"""The official LaBraM student layouts <-> :class:`~neurorvq.models.labram_fm.LaBraMFoundationModel`'s, in one table.

Two official layouts: pretraining (``modeling_pretrain.NeuralTransformerForMEM``, e.g. ``labram-base.pth``): the
student under ``student.``, the outer ``lm_head``, the dead ``projection_head``; fine-tuning
(``modeling_finetune.NeuralTransformer``): the same backbone without prefix, plus ``fc_norm`` and ``head``. ``{P}`` is
``student.`` or nothing; ``{i}`` a block index, ``{s1}`` the official 1-based conv stage (``{s}`` ours, 0-based),
``{p}`` ``weight``/``bias``, ``{rest}`` a block-internal name (the same on both sides: ``gamma_1``, ``gamma_2``,
``norm1``, ``attn.qkv.weight``, ``attn.q_norm``, ``attn.k_norm``, ``attn.proj``, ``norm2``, ``mlp.fc1``, ``mlp.fc2``).

| official | ours | shape change |
|---|---|---|
| ``{P}cls_token`` | ``backbone.cls_token`` | — |
| ``{P}pos_embed`` | ``backbone.pos_embed`` | ``[1, R, D]`` -> ``[R, D]`` |
| ``{P}time_embed`` | ``backbone.time_embed`` | ``[1, 16, D]`` -> ``[16, D]`` |
| ``{P}patch_embed.conv{s1}.{p}`` / ``norm{s1}.{p}`` | ``conv.convs.{s}.{p}`` / ``conv.norms.{s}.{p}`` | — |
| ``{P}blocks.{i}.{rest}`` | ``backbone.blocks.{i}.{rest}`` | — |
| ``student.mask_token`` | ``mask_token`` | — |
| ``student.norm.{p}`` | ``norm.{p}`` (the final LayerNorm) | — |
| ``lm_head.{p}`` (the outer head, the one used) | ``lm_head.{p}`` | — |
| ``student.lm_head.{p}`` (dead) | ``dead_lm_head.{p}`` in parity mode; dropped otherwise | — |
| ``projection_head.0.{p}`` (dead) | ``dead_projection.{p}`` in parity mode; dropped otherwise | — |
| ``fc_norm.{p}``, ``head.{p}`` | ``fc_norm.{p}``, ``head.{p}`` | — |

Loading a pretraining layout into a model built with ``pretraining=False`` drops the pretraining-only keys
(``mask_token``, ``norm``, the heads), as the official fine-tuning script's non-strict load does. Architecture from
the shapes: D (``cls_token``), conv channels (``conv1``), depth (block indices), heads (D / the QK-norm width), MLP
ratio (``fc1``), the tables' rows, the vocabulary (``lm_head``), the classes (``head``; 1 output = two classes).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable, Mapping

import torch

from neurorvq.errors import CheckpointError
from neurorvq.models.key_table import KeyTable, batched_table, count_indices, flat_table
from neurorvq.models.pretrained import check_state_dict, read_state_dict, without_ddp_prefix

_FIELDS = {"P": r"(?:student\.)?", "i": r"\d+", "s1": r"[1-9]", "s": r"\d+", "p": r"weight|bias", "rest": r".+"}


# (official template, our template, to ours, to official); {P} is written back as "student." or "" on export
RULES: tuple[tuple[str, str, Callable | None, Callable | None], ...] = (
    ("{P}cls_token", "backbone.cls_token", None, None),
    ("{P}pos_embed", "backbone.pos_embed", flat_table, batched_table),
    ("{P}time_embed", "backbone.time_embed", flat_table, batched_table),
    ("{P}patch_embed.conv{s1}.{p}", "conv.convs.{s}.{p}", None, None),
    ("{P}patch_embed.norm{s1}.{p}", "conv.norms.{s}.{p}", None, None),
    ("{P}blocks.{i}.{rest}", "backbone.blocks.{i}.{rest}", None, None),
    ("student.mask_token", "mask_token", None, None),
    ("student.norm.{p}", "norm.{p}", None, None),
    ("student.lm_head.{p}", "dead_lm_head.{p}", None, None),
    ("projection_head.0.{p}", "dead_projection.{p}", None, None),
    ("lm_head.{p}", "lm_head.{p}", None, None),
    ("fc_norm.{p}", "fc_norm.{p}", None, None),
    ("head.{p}", "head.{p}", None, None),
)
PRETRAINING_ONLY = ("mask_token", "norm.", "lm_head.", "dead_lm_head.", "dead_projection.")
"""Our keys that only a model with the token head holds (dropped when loading into a fine-tuning model)."""
DEAD = ("dead_lm_head.", "dead_projection.")
"""Our names of the official dead tensors (kept in parity mode only)."""
MARKERS_PRETRAINING = ("student.patch_embed.conv1.weight", "student.blocks.0.attn.q_norm.weight")
MARKERS_FINETUNING = ("patch_embed.conv1.weight", "blocks.0.attn.q_norm.weight")
"""Keys every official student state dict of each layout holds (``neurorvq.load`` recognises the family by them)."""


TABLE = KeyTable(RULES, _FIELDS, "official LaBraM student")


def map_official_to_ours(official: Mapping[str, torch.Tensor], source: str) -> dict[str, torch.Tensor]:
    """``official`` under our key names (shapes converted); keys outside the table are an error listing them."""
    return TABLE.to_ours(official, source)


def map_ours_to_official(ours: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """Inverse of :func:`map_official_to_ours`, the backbone under ``prefix`` (``"student."`` or ``""``)."""
    return TABLE.to_official(ours, prefix, unmapped="pooling with parameters?")


def infer_options(state: Mapping[str, torch.Tensor], source: str) -> dict[str, Any]:
    """The architecture fields and options an official student state dict fixes, read from its shapes."""
    prefix = "student." if any(k.startswith("student.") for k in state) else ""
    markers = MARKERS_PRETRAINING if prefix else MARKERS_FINETUNING
    needed = markers + tuple(prefix + k for k in ("cls_token", "pos_embed", "time_embed", "blocks.0.mlp.fc1.weight"))
    missing = [k for k in needed if k not in state]
    if missing:
        hint = (" (it has no QK-norm: a LaBraM VQ-NSP tokenizer or another model? load tokenizers with "
                "neurorvq.load)" if any(k.endswith("attn.q_bias") for k in state) else "")
        raise CheckpointError(f"{source}: not an official LaBraM student state dict (missing {missing}){hint}")
    dim = int(state[prefix + "cls_token"].shape[-1])
    options: dict[str, Any] = {
        "embed_dim": dim,
        "conv_channels": int(state[prefix + "patch_embed.conv1.weight"].shape[0]),
        "num_heads": dim // int(state[prefix + "blocks.0.attn.q_norm.weight"].shape[0]),
        "mlp_ratio": state[prefix + "blocks.0.mlp.fc1.weight"].shape[0] / dim,
        "max_patches": int(state[prefix + "time_embed"].shape[-2]),
        "spatial_rows": int(state[prefix + "pos_embed"].shape[-2]),
        "depth": count_indices(state, re.escape(prefix) + r"blocks\.(\d+)\."),
        "init_values": 0.1 if prefix + "blocks.0.gamma_1" in state else 0.0,
        "pretraining": "lm_head.weight" in state,
        "parity": "student.lm_head.weight" in state or "projection_head.0.weight" in state,
    }
    if options["pretraining"]:
        options["vocab_size"] = int(state["lm_head.weight"].shape[0])
    if "head.weight" in state:
        out = int(state["head.weight"].shape[0])
        options["num_classes"] = 2 if out == 1 else out
    return options


def load_official_labram_fm(cls: type, path_or_state_dict: str | Path | Mapping[str, torch.Tensor],
                            modality: Any = None, **overrides: Any) -> Any:
    """Build ``cls`` with the architecture read from the checkpoint (``overrides`` win; the modality defaults to
    ``eeg``; ``parity`` defaults to whether the dead tensors are present) and load the weights, checked key by key.
    Keys the built model does not have are dropped only where the official code drops them: the pretraining parts
    for a fine-tuning model, the dead tensors outside parity mode."""
    if isinstance(path_or_state_dict, Mapping):
        state, source = dict(path_or_state_dict), "'the state dict'"
    else:
        state, source = read_state_dict(path_or_state_dict), f"'{path_or_state_dict}'"
    state = without_ddp_prefix(state)
    inferred = infer_options(state, source)
    model = cls("eeg" if modality is None else modality, **{**inferred, **overrides})
    mapped = map_official_to_ours(state, source)
    droppable = DEAD if model.options["pretraining"] else PRETRAINING_ONLY
    own = model.state_dict()
    mapped = {k: v for k, v in mapped.items() if k in own or not k.startswith(droppable)}
    check_state_dict(model, mapped, source)
    model.load_state_dict(mapped)
    model.options["provenance"] = "official"
    return model


def export_official_labram_fm(model: Any) -> dict[str, torch.Tensor]:
    """``model``'s weights under the official key names and shapes: the pretraining layout (``student.`` prefix;
    the dead tensors only in parity mode) for a model with the token head, else the fine-tuning layout."""
    prefix = "student." if model.options["pretraining"] else ""
    return map_ours_to_official(model.state_dict(), prefix)


__all__ = ["DEAD", "MARKERS_FINETUNING", "MARKERS_PRETRAINING", "PRETRAINING_ONLY", "RULES",
           "export_official_labram_fm", "infer_options", "load_official_labram_fm", "map_official_to_ours",
           "map_ours_to_official"]
