"""The official BrainRVQ DD-RVQ checkpoint layout (``DDRVQ/modeling_ddrvq.DDRVQ``) <-> :class:`BrainRVQTokenizer`'s.

No BrainRVQ weights are published (families.md §A.8); this layout is what the official class's ``state_dict`` holds
(``fixtures/brainrvq``) and what :meth:`~neurorvq.models.spectral_vq.BrainRVQTokenizer.to_official` writes.

``{x}`` is ``t`` or ``f`` (the official domain letter) and ``X`` our domain (``time``, ``frequency``); ``{j}`` a level;
the other fields as in :mod:`neurorvq.models.official_labram` (``{i}`` block, ``{s1}`` 1-based conv stage, ``{n}``
0 or 2 inside a head, ``{p}`` weight/bias, ``{rest}`` a block-internal name).

| official | ours | shape change |
|---|---|---|
| ``encoder.*``, ``encode_task_layer.{n}.{p}`` | as LaBraM's (``encoder.transformer.*``, ``encoder.conv.*``, ``encoder.projection.*``) | tables ``[1, R, D]`` -> ``[R, D]`` |
| ``decoder_{x}.cls_token`` / ``pos_embed`` / ``time_embed`` | ``decoders.X.transformer.*`` | as the encoder's |
| ``decoder_{x}.patch_embed.proj.weight`` / ``.bias`` | ``decoders.X.embed.weight`` / ``.bias`` | 1x1 conv ``[D, d, 1, 1]`` -> Linear ``[D, d]`` |
| ``decoder_{x}.blocks.{i}.{rest}``, ``decoder_{x}.fc_norm.{p}`` | ``decoders.X.transformer.blocks.{i}.{rest}``, ``decoders.X.fc_norm.{p}`` | — |
| ``decode_task_layer_time.{n}.{p}`` | ``decoders.time.heads.waveform.{n}.{p}`` | — |
| ``decode_task_layer_amp.{n}.{p}`` / ``decode_task_layer_angle.{n}.{p}`` | ``decoders.frequency.heads.amplitude`` / ``.angle`` | — |
| ``quantize_{x}.layers.{j}.embedding.weight`` | ``quantizer.codebooks[s, j]`` (s = the domain's group) | ``[K, d]`` each |
| ``quantize_{x}.layers.{j}.embedding.initted`` | ``quantizer.initted[s, j]`` | float ``[1]`` -> bool |
| ``quantize_{x}.layers.{j}.cluster_size`` (buffer) | ``quantizer.usage[s, j]`` | ``[K]`` each |
| ``quantize_{x}.layers.{j}.embedding.embed_avg`` / ``.embedding.cluster_size`` | — (dead) | dropped on load, zeros on export |
| — | ``quantizer.unused_steps`` (ours only) | kept at its initial value |

The quantizer's stacked buffers are split into one pseudo-key per (domain, level) (``quantizer.codebooks.time.0``)
so that one :class:`~neurorvq.models.key_table.KeyTable` maps every key; the slices are stacked back after mapping.
Architecture from the shapes as for VQ-NSP (:func:`neurorvq.models.official_labram.infer_config`); the levels from
the quantizers' layer indices; heads ``D // 20``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable, Mapping

import torch

from neurorvq.errors import CheckpointError
from neurorvq.models.key_table import KeyTable, count_indices
from neurorvq.models.official_labram import ENCODER_RULES, decoder_rules, encoder_shapes
from neurorvq.models.pretrained import check_state_dict, read_state_dict, without_ddp_prefix

DOMAIN_LETTERS = {"time": "t", "frequency": "f"}
"""Our domain name -> the official suffix (``decoder_t``, ``quantize_f``)."""
QUANTIZER_BUFFERS = ("codebooks", "initted", "usage")
"""Our stacked quantizer buffers ``[S, N, ...]`` that the official layout holds one slice per level of."""

_FIELDS = {"i": r"\d+", "j": r"\d+", "s1": r"[1-9]", "s": r"\d+", "n": r"0|2", "p": r"weight|bias", "rest": r".+"}
_DEAD = re.compile(r"quantize_[tf]\.layers\.\d+\.embedding\.(embed_avg|cluster_size)\Z")
_Rule = tuple[str, str, Callable | None, Callable | None]


def _domain_rules(domain: str) -> tuple[_Rule, ...]:
    x, ours = DOMAIN_LETTERS[domain], f"decoders.{domain}"
    q = f"quantize_{x}.layers.{{j}}"
    return (
        *decoder_rules(f"decoder_{x}", ours),
        (f"{q}.embedding.weight", f"quantizer.codebooks.{domain}.{{j}}", None, None),
        (f"{q}.embedding.initted", f"quantizer.initted.{domain}.{{j}}", lambda t: t.reshape(()).bool(),
         lambda t: t.float().reshape(1)),
        (f"{q}.cluster_size", f"quantizer.usage.{domain}.{{j}}", None, None),
    )


RULES: tuple[_Rule, ...] = (
    *ENCODER_RULES,
    ("decode_task_layer_time.{n}.{p}", "decoders.time.heads.waveform.{n}.{p}", None, None),
    ("decode_task_layer_amp.{n}.{p}", "decoders.frequency.heads.amplitude.{n}.{p}", None, None),
    ("decode_task_layer_angle.{n}.{p}", "decoders.frequency.heads.angle.{n}.{p}", None, None),
    *_domain_rules("time"),
    *_domain_rules("frequency"),
)
OURS_ONLY = ("quantizer.unused_steps",)
"""Our tensors without an official counterpart: kept at the model's initial value on load, not exported."""
MARKERS = ("encoder.patch_embed.conv1.weight", "quantize_t.", "quantize_f.", "decode_task_layer_time.")
"""Keys every official DDRVQ state dict holds (a name ending in "." stands for any key under it; ``neurorvq.load``
recognises the family by them)."""

TABLE = KeyTable(RULES, _FIELDS, "official BrainRVQ DD-RVQ")


def _split_quantizer(ours: Mapping[str, torch.Tensor], domains: tuple[str, ...]) -> dict[str, torch.Tensor]:
    """``quantizer.{buffer} [S, N, ...]`` -> one ``quantizer.{buffer}.{domain}.{level}`` entry per slice."""
    out = {k: v for k, v in ours.items() if k not in {f"quantizer.{b}" for b in QUANTIZER_BUFFERS}}
    for buffer in QUANTIZER_BUFFERS:
        stacked = ours[f"quantizer.{buffer}"]
        for s, domain in enumerate(domains):
            for level in range(stacked.shape[1]):
                out[f"quantizer.{buffer}.{domain}.{level}"] = stacked[s, level]
    return out


def _stack_quantizer(mapped: dict[str, torch.Tensor], domains: tuple[str, ...], depth: int,
                     source: str) -> dict[str, torch.Tensor]:
    """Inverse of :func:`_split_quantizer` (every slice must be present: a missing level is named)."""
    out = {k: v for k, v in mapped.items() if not k.startswith(tuple(f"quantizer.{b}." for b in QUANTIZER_BUFFERS))}
    for buffer in QUANTIZER_BUFFERS:
        rows = []
        for domain in domains:
            keys = [f"quantizer.{buffer}.{domain}.{level}" for level in range(depth)]
            missing = [k for k in keys if k not in mapped]
            if missing:
                raise CheckpointError(f"{source}: quantize_{DOMAIN_LETTERS[domain]} lacks level(s) "
                                      f"{[int(k.rsplit('.', 1)[1]) for k in missing]} of {depth}")
            rows.append(torch.stack([mapped[k] for k in keys]))
        out[f"quantizer.{buffer}"] = torch.stack(rows)
    return out


def map_official_to_ours(official: Mapping[str, torch.Tensor], source: str,
                         domains: tuple[str, ...] = ("time", "frequency"), depth: int = 3) -> dict[str, torch.Tensor]:
    """``official`` under our key names (shapes converted, quantizer slices stacked); keys outside the table are an
    error listing them."""
    dead = [k for k in official if _DEAD.match(k)]
    return _stack_quantizer(TABLE.to_ours(official, source, skip=dead), domains, depth, source)


def map_ours_to_official(ours: Mapping[str, torch.Tensor], domains: tuple[str, ...]) -> dict[str, torch.Tensor]:
    """Inverse of :func:`map_official_to_ours`; the dead tensors are zeros of the official shapes."""
    out = TABLE.to_official(_split_quantizer(ours, domains), skip=OURS_ONLY,
                            unmapped="the model is not a BrainRVQ DD-RVQ of the time and frequency domains")
    for key in [k for k in out if k.endswith(".embedding.weight")]:
        codebook, prefix = out[key], key[: -len("weight")]
        out[prefix + "embed_avg"] = torch.zeros_like(codebook)
        out[prefix + "cluster_size"] = torch.zeros(codebook.shape[0], dtype=codebook.dtype)
    return out


def infer_config(state: Mapping[str, torch.Tensor], source: str) -> dict[str, Any]:
    """The :class:`~neurorvq.families.brainrvq.BrainRVQConfig` fields an official DDRVQ state dict fixes, and
    ``patch_length`` (from the waveform head), read from its shapes."""
    needed = ("encoder.patch_embed.conv1.weight", "encoder.cls_token", "encoder.pos_embed", "encoder.time_embed",
              "encoder.blocks.0.mlp.fc1.weight", "quantize_t.layers.0.embedding.weight",
              "quantize_f.layers.0.embedding.weight", "decode_task_layer_time.2.weight", "decoder_t.time_embed",
              "decoder_f.time_embed")
    missing = [k for k in needed if k not in state]
    if missing:
        raise CheckpointError(f"{source}: not an official BrainRVQ DD-RVQ tokenizer state dict (missing {missing})")
    rows = {name: tuple(state[name].shape[-2:]) for name in ("encoder.time_embed", "decoder_t.time_embed",
                                                             "decoder_f.time_embed")}
    if len(set(rows.values())) != 1:
        raise CheckpointError(f"{source}: the encoder and decoder temporal tables differ ({rows}); not a DD-RVQ layout")
    depths = {x: count_indices(state, rf"quantize_{x}\.layers\.(\d+)\.") for x in "tf"}
    decoder_depths = {x: count_indices(state, rf"decoder_{x}\.blocks\.(\d+)\.") for x in "tf"}
    if depths["t"] != depths["f"] or decoder_depths["t"] != decoder_depths["f"]:
        raise CheckpointError(f"{source}: the time and frequency sides differ (levels {depths}, decoder blocks "
                              f"{decoder_depths}); this package builds both alike")
    return {**encoder_shapes(state, state["quantize_t.layers.0.embedding.weight"]),
            "decoder_depth": decoder_depths["t"],
            "depth": depths["t"],
            "domains": ("time", "frequency"),
            "patch_length": int(state["decode_task_layer_time.2.weight"].shape[0])}


def load_official_ddrvq(cls: type, path_or_state_dict: str | Path | Mapping[str, torch.Tensor],
                        modality: Any = None, **overrides: Any) -> Any:
    """Build ``cls`` (a :class:`~neurorvq.models.spectral_vq.BrainRVQTokenizer`) with the architecture read from
    the checkpoint (``overrides`` win; the modality defaults to ``eeg``) and load the weights, checked key by key.
    A state dict of another family's official layout is one error naming both families."""
    from neurorvq.loading import refuse_other_family

    if isinstance(path_or_state_dict, Mapping):
        state, source = dict(path_or_state_dict), "'the state dict'"
    else:
        state, source = read_state_dict(path_or_state_dict), f"'{path_or_state_dict}'"
    state = without_ddp_prefix(state)
    refuse_other_family(state, source, "brainrvq")
    inferred = infer_config(state, source)
    patch_length = inferred.pop("patch_length")
    model = cls("eeg" if modality is None else modality, **{**inferred, **overrides})
    if model.signal.patch_length != patch_length:
        raise CheckpointError(f"{source}: its waveform head predicts {patch_length} samples per patch but modality "
                              f"'{model.signal.name}' has patch_length={model.signal.patch_length}; pass the modality "
                              "it was trained on")
    template = model.state_dict()
    mapped = map_official_to_ours(state, source, model.config.domains, model.config.depth)
    mapped.update({key: template[key] for key in OURS_ONLY})
    check_state_dict(model, mapped, source)
    model.load_state_dict(mapped)
    return model


def export_official_ddrvq(model: Any) -> dict[str, torch.Tensor]:
    """``model``'s weights under the official key names and shapes (:func:`map_ours_to_official`)."""
    return map_ours_to_official(model.state_dict(), model.config.domains)


__all__ = ["DOMAIN_LETTERS", "MARKERS", "OURS_ONLY", "QUANTIZER_BUFFERS", "RULES", "TABLE", "export_official_ddrvq",
           "infer_config", "load_official_ddrvq", "map_official_to_ours", "map_ours_to_official"]
