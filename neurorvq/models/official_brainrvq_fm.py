"""The official BrainRVQ pretraining and fine-tuning layouts <-> :class:`~neurorvq.models.brainrvq_fm.
BrainRVQFoundationModel`'s, in one :class:`~neurorvq.models.key_table.KeyTable`.

Pretraining layout (``NeuralTransformerForMEM_Autoregressive``): the student under ``student.`` (LaBraM's keys, with
a dead ``student.lm_head``) and, per domain ``t`` (``time``) / ``f`` (``frequency``), ``token_embed_{d}.{j}``,
``lm_heads_{d}.{j}``, ``fusion_norm_{d}.{j}`` (level 0 has no norm). Fine-tuning layout (``NeuralTransformer``): the
backbone without prefix, ``fc_norm``, ``head`` (LaBraM's fine-tuning keys; only ``time_embed``'s 30 rows differ).

| official | ours | shape change |
|---|---|---|
| the student's backbone keys (``{P}cls_token`` ... ``{P}blocks.{i}.{rest}``) | as LaBraM's (:mod:`~neurorvq.models.official_labram_fm`) | tables ``[1, R, D]`` -> ``[R, D]`` |
| ``student.mask_token``, ``student.norm.{p}`` | ``mask_token``, ``norm.{p}`` | — |
| ``student.lm_head.{p}`` (dead) | ``dead_lm_head.{p}`` in parity mode; dropped otherwise | — |
| ``token_embed_{d}.{j}.weight`` | ``ar.<domain>.embed.{j}.weight`` (the last level's, dead: parity mode only) | — |
| ``lm_heads_{d}.{j}.{p}``, ``fusion_norm_{d}.{j}.{p}`` | ``ar.<domain>.heads.{j}.{p}``, ``ar.<domain>.norms.{j}.{p}`` | — |
| ``fc_norm.{p}``, ``head.{p}`` | ``fc_norm.{p}``, ``head.{p}`` | — |

Loading a pretraining layout into a model built with ``pretraining=False`` drops the pretraining-only keys, as the
official fine-tuning script's non-strict load of the ``student.`` keys does. Architecture from the shapes: LaBraM's
student fields, the vocabulary and levels (``lm_heads_t``), the domains (which of ``_t``/``_f`` are present).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable, Mapping

import torch

from neurorvq.errors import CheckpointError
from neurorvq.models.key_table import KeyTable, count_indices
from neurorvq.models.official_labram_fm import RULES as LABRAM_RULES
from neurorvq.models.official_labram_fm import infer_options as labram_student_options
from neurorvq.models.pretrained import check_state_dict, read_state_dict, without_ddp_prefix

_FIELDS = {"P": r"(?:student\.)?", "i": r"\d+", "j": r"\d+", "s1": r"[1-9]", "s": r"\d+", "p": r"weight|bias",
           "rest": r".+"}
DOMAIN_SUFFIXES = {"time": "t", "frequency": "f"}
"""Our domain names -> the official key suffixes."""

_BACKBONE = {"{P}cls_token", "{P}pos_embed", "{P}time_embed", "{P}patch_embed.conv{s1}.{p}",
             "{P}patch_embed.norm{s1}.{p}", "{P}blocks.{i}.{rest}", "student.mask_token", "student.norm.{p}",
             "student.lm_head.{p}", "fc_norm.{p}", "head.{p}"}
RULES: tuple[tuple[str, str, Callable | None, Callable | None], ...] = (
    *(rule for rule in LABRAM_RULES if rule[0] in _BACKBONE),
    *((f"token_embed_{s}.{{j}}.weight", f"ar.{d}.embed.{{j}}.weight", None, None) for d, s in DOMAIN_SUFFIXES.items()),
    *((f"lm_heads_{s}.{{j}}.{{p}}", f"ar.{d}.heads.{{j}}.{{p}}", None, None) for d, s in DOMAIN_SUFFIXES.items()),
    *((f"fusion_norm_{s}.{{j}}.{{p}}", f"ar.{d}.norms.{{j}}.{{p}}", None, None) for d, s in DOMAIN_SUFFIXES.items()),
)
PRETRAINING_ONLY = ("mask_token", "norm.", "ar.", "dead_lm_head.")
"""Our keys that only a model with the pretraining heads holds (dropped when loading into a fine-tuning model)."""
MARKERS_PRETRAINING = ("student.patch_embed.conv1.weight", "token_embed_t.0.weight", "lm_heads_t.0.weight")
"""Keys every official BrainRVQ pretraining state dict holds (its fine-tuning layout is LaBraM's)."""

TABLE = KeyTable(RULES, _FIELDS, "official BrainRVQ foundation model")


def infer_options(state: Mapping[str, torch.Tensor], source: str) -> dict[str, Any]:
    """The architecture fields and options an official BrainRVQ state dict fixes, read from its shapes."""
    options = labram_student_options(state, source)
    options.pop("vocab_size", None)
    domains = tuple(d for d, s in DOMAIN_SUFFIXES.items() if f"lm_heads_{s}.0.weight" in state)
    options["pretraining"] = bool(domains)
    if domains:
        first = DOMAIN_SUFFIXES[domains[0]]
        levels = count_indices(state, rf"lm_heads_{first}\.(\d+)\.")
        options.update(domains=domains, levels=levels, vocab_size=int(state[f"lm_heads_{first}.0.weight"].shape[0]),
                       parity="student.lm_head.weight" in state or f"token_embed_{first}.{levels - 1}.weight" in state)
    return options


def load_official_brainrvq_fm(cls: type, path_or_state_dict: str | Path | Mapping[str, torch.Tensor],
                              modality: Any = None, **overrides: Any) -> Any:
    """Build ``cls`` with the architecture read from the checkpoint (``overrides`` win; the modality defaults to
    ``eeg``; ``parity`` defaults to whether the dead tensors are present) and load the weights, checked key by key.
    Keys the built model lacks are dropped only where the official code drops them: the pretraining parts for a
    fine-tuning model, the dead tensors outside parity mode."""
    if isinstance(path_or_state_dict, Mapping):
        state, source = dict(path_or_state_dict), "'the state dict'"
    else:
        state, source = read_state_dict(path_or_state_dict), f"'{path_or_state_dict}'"
    state = without_ddp_prefix(state)
    model = cls("eeg" if modality is None else modality, **{**infer_options(state, source), **overrides})
    mapped = TABLE.to_ours(state, source)
    own = model.state_dict()
    if model.options["pretraining"]:
        last = int(model.options["levels"]) - 1
        dead = re.compile(rf"dead_lm_head\.|ar\.\w+\.embed\.{last}\.weight\Z")
        mapped = {k: v for k, v in mapped.items() if k in own or not dead.match(k)}
    else:
        mapped = {k: v for k, v in mapped.items() if k in own or not k.startswith(PRETRAINING_ONLY)}
    check_state_dict(model, mapped, source)
    model.load_state_dict(mapped)
    model.options["provenance"] = "official"
    return model


def export_official_brainrvq_fm(model: Any) -> dict[str, torch.Tensor]:
    """``model``'s weights under the official key names and shapes: the pretraining layout (``student.`` prefix;
    the dead tensors only in parity mode) for a model with the heads, else the fine-tuning layout."""
    prefix = "student." if model.options["pretraining"] else ""
    return TABLE.to_official(model.state_dict(), prefix, unmapped="pooling with parameters?")


__all__ = ["DOMAIN_SUFFIXES", "MARKERS_PRETRAINING", "PRETRAINING_ONLY", "RULES", "TABLE",
           "export_official_brainrvq_fm", "infer_options", "load_official_brainrvq_fm"]
