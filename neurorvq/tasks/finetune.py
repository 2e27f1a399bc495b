"""Fine-tuning the NeuroRVQ foundation model on a labelled task (method.md §4.3).

Head: pooled features -> LayerNorm(S*D) -> Linear (1 logit + BCE for two classes, CE otherwise, as the official
code). Layer-wise learning-rate decay in two forms:

- ``official`` (quirk Q9, for parity with the published numbers): per parameter *tensor*: every parameter but
  ``fc_norm``/``head`` gets ``lr * decay ** (P - i)`` with P the number of named parameters of the official
  fine-tuning model and i the tensor's index in the official enumeration order (:func:`official_tensor_order`:
  embeddings, then the temporal convs layer by layer, the blocks, the unused ``fc_norm_1..S`` (which occupy
  2 x S indices, 275 tensors in all at the official size), ``fc_norm``, ``head``);
- ``block``: true per-block decay: embeddings and the temporal conv ``decay ** (depth + 1)``, block k
  ``decay ** (depth - k)``, ``fc_norm``/``head`` the base lr.

Loss, class weights, label checks and metrics (balanced accuracy, Cohen's kappa, weighted F1, AUROC/AUC-PR) are
those of every classifier: :mod:`neurorvq.tasks.classification`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from neurorvq.errors import CheckpointError, ConfigError
from neurorvq.models.fm import NeuroRVQFoundationModel
from neurorvq.tasks.classification import ClassificationTask, balanced_class_weights
from neurorvq.tasks.optim import warmup_cosine_scheduler

HEAD_NAMES = ("fc_norm.", "head.")


BLOCK_TENSORS = ("gamma_1", "gamma_2", "norm1.weight", "norm1.bias", "attn.q_bias", "attn.v_bias", "attn.qkv.weight",
                 "attn.q_norm.weight", "attn.q_norm.bias", "attn.k_norm.weight", "attn.k_norm.bias", "attn.proj.weight",
                 "attn.proj.bias", "norm2.weight", "norm2.bias", "mlp.fc1.weight", "mlp.fc1.bias", "mlp.fc2.weight",
                 "mlp.fc2.bias")
"""A block's tensors in the official enumeration order."""


def official_tensor_order(model: NeuroRVQFoundationModel) -> list[str | None]:
    """Our parameter names in the order the official fine-tuning model enumerates its tensors (``None`` for the
    official ``fc_norm_{b}.weight``/``.bias``, which exist there but are unused, method.md §4.3): ``cls_token``,
    ``pos_embed``, ``time_embed``; ``conv{k}_{b}``/``norm{k}_{b}`` for layer k, then branch b; the blocks;
    ``fc_norm_1..S``; ``fc_norm``; ``head``. At the official size: 275 entries, as method.md states."""
    branches = model.spec.num_branches
    layers = len(model.spec.branches[0].kernel_sizes)
    order: list[str | None] = ["backbone.cls_token", "backbone.pos_embed", "backbone.time_embed"]
    for k in range(layers):
        for b in range(branches):
            order += [f"temporal.branches.{b}.{kind}.{k}.{p}" for kind in ("convs", "norms") for p in ("weight", "bias")]
    for i in range(len(model.backbone.blocks)):
        order += [f"backbone.blocks.{i}.{t}" for t in BLOCK_TENSORS]
    order += [None] * (2 * branches)
    order += ["fc_norm.weight", "fc_norm.bias", "head.weight", "head.bias"]
    return order


def layer_decay_groups(model: NeuroRVQFoundationModel, lr: float, decay: float, weight_decay: float,
                       mode: str = "official", head_only: bool = False) -> list[dict[str, Any]]:
    """AdamW parameter groups with layer-wise lr decay (see the module docstring); one group per tensor."""
    if mode not in ("official", "block"):
        raise ConfigError(f"layer_decay_mode is {mode!r}; use 'official' (per tensor, quirk Q9) or 'block'")
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    depth = len(model.backbone.blocks)
    official = official_tensor_order(model)
    position = {name: i for i, name in enumerate(official) if name is not None}
    if mode == "official":
        unknown = [n for n, _ in named if n not in position]
        if unknown:
            raise ConfigError(f"layer_decay_mode 'official' needs the fine-tuning model (no pretraining parts); "
                              f"tensors {unknown[:4]} have no official position. Call drop_pretraining_parts() first")
    groups = []
    for name, param in named:
        is_head = name.startswith(HEAD_NAMES)
        if head_only and not is_head:
            param.requires_grad_(False)
            continue
        if is_head:
            scale = 1.0
        elif mode == "official":
            scale = decay ** (len(official) - position[name])
        else:
            parts = name.split(".")
            block = int(parts[2]) if name.startswith("backbone.blocks.") else -1
            scale = decay ** (depth - block) if block >= 0 else decay ** (depth + 1)
        groups.append({"params": [param], "lr": lr * scale, "lr_scale": scale, "weight_decay": weight_decay,
                       "name": name})
    return groups


def check_data_spec(datamodule: Any, fm_spec: Any, action: str, source: str | None = None,
                    fields: tuple[str, ...] = ()) -> None:
    """Refuse a DataModule whose ``spec`` (when it has one) differs from the FM's in modality, channel vocabulary
    or any of ``fields`` (e.g. ``sampling_rate``); ``action`` ("fine-tune", "extract features with") and
    ``source`` (the checkpoint) word the message."""
    spec = getattr(datamodule, "spec", None)
    if spec is None:
        return
    where = f" in '{source}'" if source else ""
    if spec.name != fm_spec.name or tuple(spec.channels) != tuple(fm_spec.channels):
        raise ConfigError(f"the data's modality '{spec.name}' ({len(spec.channels)} channels) differs from the "
                          f"foundation model's '{fm_spec.name}' ({len(fm_spec.channels)} channels){where}; "
                          f"{action} a model of the data's modality and vocabulary")
    for name in fields:
        if getattr(spec, name) != getattr(fm_spec, name):
            raise ConfigError(f"the data's '{spec.name}' spec has {name}={getattr(spec, name)!r} but the "
                              f"foundation model{f' {source!r}' if source else ''} has {getattr(fm_spec, name)!r}")


def load_fm(path: str, **overrides: Any) -> NeuroRVQFoundationModel:
    """An FM from a ``save_pretrained`` folder, a PretrainTask ``.ckpt`` or an official checkpoint file."""
    p = Path(path)
    if p.is_dir():
        return NeuroRVQFoundationModel.from_pretrained(p, **overrides)
    if not p.is_file():
        raise CheckpointError(f"foundation-model checkpoint '{p}' does not exist")
    if p.suffix == ".ckpt":
        ckpt = torch.load(str(p), map_location="cpu", weights_only=False)
        state = {k[len("fm."):]: v for k, v in ckpt.get("state_dict", {}).items() if k.startswith("fm.")}
        hparams = ckpt.get("hyper_parameters", {})
        if not state:
            raise CheckpointError(f"'{p}' is not a PretrainTask checkpoint (no 'fm.' weights)")
        vocab, depth = state["head_bias"].shape[-1], state["head_bias"].shape[1]
        model = NeuroRVQFoundationModel(hparams.get("modality", "eeg"), pretraining=True, vocab_size=vocab,
                                        n_quantizers=depth, **dict(hparams.get("fm") or {}))
        model.load_state_dict(state)
        return model
    return NeuroRVQFoundationModel.from_official(p, **overrides)


class FinetuneTask(ClassificationTask):
    """Fine-tune (or train from scratch when ``fm`` is None) a classifier on the FM.

    Args:
        fm: pretrained FM (folder, PretrainTask ``.ckpt`` or official file); ``None`` = random init.
        modality, num_classes: the task's modality and classes; labels must lie in ``0..num_classes-1``.
        fm_overrides: FM options/spec fields used when ``fm`` is None (e.g. ``{depth: 2}``).
        lr, layer_decay, layer_decay_mode, weight_decay: optimiser (official: 5e-4, 0.975, per tensor, 1e-2).
        warmup_fraction, min_lr_ratio: warm-up then cosine schedule, stepped per batch.
        head_only: train only ``fc_norm`` and ``head``.
        class_weights: ``"balanced"`` (from the training labels), a list, or ``None``.
    """

    def __init__(self, fm: str | None = None, modality: str = "eeg", num_classes: int = 2,
                 fm_overrides: dict[str, Any] | None = None, lr: float = 5e-4, layer_decay: float = 0.975,
                 layer_decay_mode: str = "official", weight_decay: float = 1e-2, warmup_fraction: float = 0.2,
                 min_lr_ratio: float = 0.1, head_only: bool = False,
                 class_weights: str | list[float] | None = "balanced") -> None:
        super().__init__(num_classes, class_weights)
        self.save_hyperparameters()
        if fm:
            model = load_fm(fm)
        else:
            model = NeuroRVQFoundationModel(modality, pretraining=False, **dict(fm_overrides or {}))
        if model.spec.name != modality:
            raise ConfigError(f"foundation model '{fm}' is a '{model.spec.name}' model but modality is '{modality}'")
        if model.options["pretraining"]:
            model.drop_pretraining_parts()  # as the official loader: mask token, norm_pre and token heads go
        model.reset_classifier(num_classes)
        model.options["check_inputs"] = False
        self.fm = model

    def setup(self, stage: str) -> None:
        check_data_spec(getattr(self.trainer, "datamodule", None), self.fm.spec, "fine-tune")
        super().setup(stage)

    def logits(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.fm(batch["signal"], batch["channel_ids"])

    def configure_optimizers(self):
        groups = layer_decay_groups(self.fm, self.hparams.lr, self.hparams.layer_decay, self.hparams.weight_decay,
                                    self.hparams.layer_decay_mode, self.hparams.head_only)
        optimizer = torch.optim.AdamW(groups, lr=self.hparams.lr)
        total = max(1, int(self.trainer.estimated_stepping_batches))
        scheduler = warmup_cosine_scheduler(optimizer, total, self.hparams.warmup_fraction, self.hparams.min_lr_ratio)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


__all__ = ["FinetuneTask", "balanced_class_weights", "check_data_spec", "layer_decay_groups", "load_fm",
           "official_tensor_order"]
