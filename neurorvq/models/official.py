"""The official NeuroRVQ checkpoint layout <-> this package's layout, in one table.

Each :class:`Rule` pairs an official key template with ours; ``{b1}``/``{s1}`` are the official 1-based
branch/stage numbers and ``{b}``/``{s}`` our 0-based ones; ``{i}`` a block index, ``{j}`` an RVQ level,
``{p}`` ``weight``/``bias``, ``{rest}`` the block-internal name (identical on both sides). A rule with a
``slot`` writes into one entry ``[b, j]`` of a stacked buffer (our codebooks are ``[branch, level, K, d]``).
``DEAD`` keys are dropped on load and zero-filled on export (method.md quirk Q12).
See docs/official-weights.md for the table in prose and how the parameter counts relate.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import torch

from neurorvq.errors import CheckpointError
from neurorvq.models.pretrained import check_state_dict, read_state_dict, without_ddp_prefix
from neurorvq.families.neurorvq import TemporalBranch
from neurorvq.families.neurorvq_spec import NeuroRVQSpec, as_neurorvq_spec
from neurorvq.registry import ModalitySpec, get_modality, list_modalities


def _squeeze_1x1(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(t.shape[0], t.shape[1])


def _unsqueeze_1x1(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(t.shape[0], t.shape[1], 1, 1)


@dataclass(frozen=True)
class Rule:
    official: str
    ours: str
    to_ours: Callable[[torch.Tensor], torch.Tensor] | None = None
    to_official: Callable[[torch.Tensor], torch.Tensor] | None = None
    slot: bool = False  # ours names a stacked buffer indexed [b, j]


_FIELD_PATTERNS = {"b1": r"\d+", "s1": r"\d+", "b": r"\d+", "s": r"\d+", "i": r"\d+", "j": r"\d+", "p": r"weight|bias", "rest": r".+",
                   "head": r"amplitude|angle_sin|angle_cos", "n": r"0|2"}

TOKENIZER_RULES: tuple[Rule, ...] = (
    Rule("encoder.cls_token", "encoder.cls_token"),
    Rule("encoder.pos_embed", "encoder.pos_embed"),
    Rule("encoder.time_embed", "encoder.time_embed"),
    Rule("encoder.patch_embed.conv{s1}_{b1}.{p}", "temporal.branches.{b}.convs.{s}.{p}"),
    Rule("encoder.patch_embed.norm{s1}_{b1}.{p}", "temporal.branches.{b}.norms.{s}.{p}"),
    Rule("encoder.blocks.{i}.{rest}", "encoder.blocks.{i}.{rest}"),
    Rule("encoder.fc_norm_{b1}.{p}", "encoder_norms.{b}.{p}"),
    Rule("encode_task_layer_{b1}.{n}.{p}", "encode_heads.{b}.{n}.{p}"),
    Rule("decoder.cls_token", "decoder.cls_token"),
    Rule("decoder.pos_embed", "decoder.pos_embed"),
    Rule("decoder.time_embed", "decoder.time_embed"),
    Rule("decoder.patch_embed_{b1}.proj.weight", "decoder_in.{b}.weight", _squeeze_1x1, _unsqueeze_1x1),
    Rule("decoder.patch_embed_{b1}.proj.bias", "decoder_in.{b}.bias"),
    Rule("decoder.blocks.{i}.{rest}", "decoder.blocks.{i}.{rest}"),
    Rule("decoder.fc_norm_{b1}.{p}", "decoder_norms.{b}.{p}"),
    Rule("decode_task_layer_amplitude.{n}.{p}", "amplitude_head.{n}.{p}"),
    Rule("decode_task_layer_angle_sin.{n}.{p}", "sin_head.{n}.{p}"),
    Rule("decode_task_layer_angle_cos.{n}.{p}", "cos_head.{n}.{p}"),
    Rule("quantize_{b1}.layers.{j}.embedding.weight", "quantizer.codebooks", slot=True),
    Rule("quantize_{b1}.layers.{j}.embedding.initted", "quantizer.initted", lambda t: t.reshape(()).bool(),
         lambda t: t.float().reshape(1), slot=True),
    Rule("quantize_{b1}.layers.{j}.cluster_size", "quantizer.usage", slot=True),
)
# Dead in the official code (never read after construction): dropped on load, zeros on export.
TOKENIZER_DEAD: tuple[str, ...] = ("quantize_{b1}.layers.{j}.embedding.embed_avg",
                                   "quantize_{b1}.layers.{j}.embedding.cluster_size")

# Ours only (no official counterpart): kept at the model's initial value on load, not exported.
TOKENIZER_OURS_ONLY: tuple[str, ...] = ("quantizer.unused_steps",)


def _regex(template: str) -> re.Pattern[str]:
    out, pos = "", 0
    for m in re.finditer(r"\{(\w+)\}", template):
        out += re.escape(template[pos:m.start()]) + f"(?P<{m.group(1)}>{_FIELD_PATTERNS[m.group(1)]})"
        pos = m.end()
    return re.compile(out + re.escape(template[pos:]) + r"\Z")


def _fields_to_ours(fields: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = dict(fields)
    for one_based in ("b1", "s1"):
        if one_based in out:
            out[one_based[0]] = int(out.pop(one_based)) - 1
    return out


def _fields_to_official(fields: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(fields)
    for zero_based in ("b", "s"):
        if zero_based in out:
            out[zero_based + "1"] = int(out.pop(zero_based)) + 1
    return out


def map_official_to_ours(official: Mapping[str, torch.Tensor], template: Mapping[str, torch.Tensor],
                         rules: tuple[Rule, ...], dead: tuple[str, ...], source: str) -> dict[str, torch.Tensor]:
    """Translate an official state dict onto our key layout, using ``template`` (our state dict) for the
    stacked buffers. Unknown official keys and ours left unfilled are errors listing them."""
    compiled = [(_regex(r.official), r) for r in rules]
    dead_patterns = [_regex(d) for d in dead]
    out: dict[str, torch.Tensor] = {}
    slots: dict[str, torch.Tensor] = {}
    filled: dict[str, set[tuple[int, int]]] = {}
    unknown: list[str] = []
    for key, tensor in official.items():
        for pattern, rule in compiled:
            m = pattern.match(key)
            if m is None:
                continue
            fields = _fields_to_ours(m.groupdict())
            value = rule.to_ours(tensor) if rule.to_ours else tensor
            if rule.slot:
                if rule.ours not in template:
                    raise CheckpointError(f"{source}: rule target '{rule.ours}' is not in the model")
                buf = slots.setdefault(rule.ours, template[rule.ours].clone())
                b, j = fields["b"], int(fields["j"])
                if b >= buf.shape[0] or j >= buf.shape[1]:
                    raise CheckpointError(f"{source}: '{key}' addresses branch {b + 1}, level {j}, beyond this "
                                          f"model's {buf.shape[0]} branches x {buf.shape[1]} levels")
                if tuple(value.shape) != tuple(buf[b, j].shape):
                    raise CheckpointError(f"{source}: '{key}' has shape {tuple(tensor.shape)} but this model "
                                          f"expects {tuple(buf[b, j].shape)} for {rule.ours}[{b}, {j}]")
                buf[b, j] = value.to(buf.dtype)
                filled.setdefault(rule.ours, set()).add((b, j))
            else:
                out[rule.ours.format(**fields)] = value
            break
        else:
            if not any(p.match(key) for p in dead_patterns):
                unknown.append(key)
    if unknown:
        raise CheckpointError(f"{source}: keys not in the official layout's mapping: {unknown[:20]}"
                              f"{' ...' if len(unknown) > 20 else ''}")
    for name, buf in slots.items():
        expected = buf.shape[0] * buf.shape[1]
        if len(filled[name]) != expected:
            raise CheckpointError(f"{source}: only {len(filled[name])} of {expected} quantizer entries for "
                                  f"'{name}' are present")
        out[name] = buf
    return out


def map_ours_to_official(ours: Mapping[str, torch.Tensor], rules: tuple[Rule, ...], dead: tuple[str, ...]
                         ) -> dict[str, torch.Tensor]:
    """Inverse of :func:`map_official_to_ours`; dead tensors are written as zeros of the official shapes."""
    out: dict[str, torch.Tensor] = {}
    compiled = [(_regex(r.ours), r) for r in rules if not r.slot]
    for key, tensor in ours.items():
        for pattern, rule in compiled:
            m = pattern.match(key)
            if m is None:
                continue
            fields = _fields_to_official(m.groupdict())
            out[rule.official.format(**fields)] = rule.to_official(tensor) if rule.to_official else tensor
            break
    for rule in rules:
        if not rule.slot:
            continue
        buf = ours[rule.ours]
        for b in range(buf.shape[0]):
            for j in range(buf.shape[1]):
                value = buf[b, j]
                out[rule.official.format(b1=b + 1, j=j)] = rule.to_official(value) if rule.to_official else value.clone()
    codebooks = ours["quantizer.codebooks"]
    for b in range(codebooks.shape[0]):
        for j in range(codebooks.shape[1]):
            out[dead[0].format(b1=b + 1, j=j)] = torch.zeros_like(codebooks[b, j])
            out[dead[1].format(b1=b + 1, j=j)] = torch.zeros(codebooks.shape[2])
    return out


# ------------------------------------------------------------------------------------ config inference
def _count(state: Mapping[str, Any], pattern: str) -> int:
    regex = re.compile(pattern)
    return len({m.group(1) for k in state if (m := regex.match(k))})


def infer_tokenizer_spec(state: Mapping[str, torch.Tensor], modality: str | ModalitySpec | None,
                         source: str) -> NeuroRVQSpec:
    """The :class:`NeuroRVQSpec` an official tokenizer state dict was built with, read from its shapes.

    Pools and the vocabulary cannot be read from shapes: they come from ``modality`` (or the registered
    modality whose vocabulary fits ``pos_embed``).
    """
    required = ("encoder.cls_token", "encoder.pos_embed", "encoder.time_embed", "encoder.patch_embed.conv1_1.weight",
                "quantize_1.layers.0.embedding.weight", "decode_task_layer_amplitude.2.weight",
                "encoder.blocks.0.attn.q_norm.weight", "encoder.blocks.0.mlp.fc1.weight")
    missing = [k for k in required if k not in state]
    if missing:
        raise CheckpointError(f"{source}: not an official NeuroRVQ tokenizer state dict (missing {missing})")
    rows = state["encoder.pos_embed"].shape[0]
    base = _pick_modality(modality, rows, source)
    branches = infer_branches(state, "encoder.patch_embed.", base, source)
    dim = int(state["encoder.cls_token"].shape[-1])
    codebook = state["quantize_1.layers.0.embedding.weight"]
    return base.replace(
        branches=branches,
        conv_channels=int(state["encoder.patch_embed.conv1_1.weight"].shape[0]),
        embed_dim=dim,
        num_heads=dim // int(state["encoder.blocks.0.attn.q_norm.weight"].shape[0]),
        mlp_ratio=state["encoder.blocks.0.mlp.fc1.weight"].shape[0] / dim,
        encoder_depth=_count(state, r"encoder\.blocks\.(\d+)\."),
        decoder_depth=_count(state, r"decoder\.blocks\.(\d+)\."),
        max_patches=int(state["encoder.time_embed"].shape[0]),
        n_quantizers=_count(state, r"quantize_1\.layers\.(\d+)\.embedding\.weight\Z"),
        codebook_size=int(codebook.shape[0]),
        code_dim=int(codebook.shape[1]),
        patch_length=int(state["decode_task_layer_amplitude.2.weight"].shape[0]),
    )


def infer_branches(state: Mapping[str, torch.Tensor], prefix: str, base: NeuroRVQSpec,
                   source: str) -> tuple[TemporalBranch, ...]:
    """Temporal branches of an official multi-scale conv (``{prefix}conv{stage}_{branch}.weight``): kernel sizes
    from the shapes, pools from ``base`` (they leave no trace in the weights)."""
    count = len({k for k in state if re.match(re.escape(prefix) + r"conv1_\d+\.weight\Z", k)})
    stages = len({k for k in state if re.match(re.escape(prefix) + r"conv\d+_1\.weight\Z", k)})
    branches = []
    for b in range(1, count + 1):
        kernels = tuple(int(state[f"{prefix}conv{s}_{b}.weight"].shape[-1]) for s in range(1, stages + 1))
        base_branch = base.branches[min(b, len(base.branches)) - 1]
        if len(base_branch.pools) != stages:
            raise CheckpointError(f"{source}: {stages} conv stages per branch but modality '{base.name}' pools "
                                  f"{base_branch.pools}; pass a modality whose branches have {stages} stages")
        branches.append(TemporalBranch(kernel_sizes=kernels, pools=base_branch.pools))
    return tuple(branches)


def _pick_modality(modality: str | ModalitySpec | None, rows: int, source: str) -> NeuroRVQSpec:
    """The NeuroRVQ record (signal + default architecture) of ``modality``, or of the one registered modality whose
    vocabulary (+1 CLS row) has ``rows`` rows."""
    if modality is not None:
        spec = as_neurorvq_spec(modality)
        if spec.spatial_rows != rows:
            raise CheckpointError(f"{source}: pos_embed has {rows} rows but modality '{spec.name}' has "
                                  f"{len(spec.channels)} channels (+1 CLS row = {spec.spatial_rows}); pass the "
                                  "modality the checkpoint was trained on")
        return spec
    fits = [get_modality(n) for n in list_modalities()]
    fits = [s for s in fits if len(s.channels) + 1 == rows and "neurorvq" in s.families]
    if len(fits) != 1:
        raise CheckpointError(f"{source}: cannot tell the modality from pos_embed's {rows} rows (fits: "
                              f"{[s.name for s in fits]}); pass modality='...'")
    return as_neurorvq_spec(fits[0])


def _as_state_dict(path_or_state_dict: str | Path | Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], str]:
    if isinstance(path_or_state_dict, Mapping):
        state, source = dict(path_or_state_dict), "state dict"
    else:
        state, source = read_state_dict(path_or_state_dict), str(path_or_state_dict)
    return without_ddp_prefix(state), source  # saved from a DDP wrapper: no "module." prefix


def _refuse_other_family(state: Mapping[str, torch.Tensor], source: str) -> None:
    """A state dict in another family's official layout (LaBraM's VQ-NSP, ...) is an error naming both families."""
    from neurorvq.loading import OFFICIAL_FORMATS

    keys = set(state)
    for family, fmt in OFFICIAL_FORMATS.items():
        kind = fmt.detect(keys) if family != "neurorvq" else None
        if kind is not None:
            raise CheckpointError(f"{source} is a '{family}' {kind.replace('_', ' ')} in its official layout, not a "
                                  f"'neurorvq' one: load it with neurorvq.load('{source}') (it picks the family), or "
                                  "with that family's from_official")


def load_official_tokenizer(cls, path_or_state_dict, modality=None, **overrides):
    """Build ``cls`` with the configuration read from the checkpoint (``overrides`` win) and load it."""
    state, source = _as_state_dict(path_or_state_dict)
    _refuse_other_family(state, source)
    spec = infer_tokenizer_spec(state, modality, source)
    model = cls(spec, **overrides)
    template = model.state_dict()
    mapped = map_official_to_ours(state, template, TOKENIZER_RULES, TOKENIZER_DEAD, source)
    mapped.update({key: template[key] for key in TOKENIZER_OURS_ONLY})
    check_state_dict(model, mapped, source)
    model.load_state_dict(mapped)
    return model


def export_official_tokenizer(model) -> dict[str, torch.Tensor]:
    return map_ours_to_official(model.state_dict(), TOKENIZER_RULES, TOKENIZER_DEAD)
