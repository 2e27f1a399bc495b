"""Fine-tuning the NeuroRVQ foundation model on a labelled task (method.md §4.3).

Head: pooled features -> LayerNorm(S*D) -> Linear (1 logit + BCE for two classes, CE otherwise, as the official
code). Layer-wise learning-rate decay in two forms:

- ``official`` (quirk Q9, for parity with the published numbers): per parameter *tensor*: every parameter but
  ``fc_norm``/``head`` gets ``lr * decay ** (P - i)`` with P the number of named parameters and i its index;
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


def layer_decay_groups(model: NeuroRVQFoundationModel, lr: float, decay: float, weight_decay: float,
                       mode: str = "official", head_only: bool = False) -> list[dict[str, Any]]:
    """AdamW parameter groups with layer-wise lr decay (see the module docstring); one group per tensor."""
    if mode not in ("official", "block"):
        raise ConfigError(f"layer_decay_mode is {mode!r}; use 'official' (per tensor, quirk Q9) or 'block'")
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    depth = len(model.backbone.blocks)
    groups = []
    for index, (name, param) in enumerate(named):
        is_head = name.startswith(HEAD_NAMES)
        if head_only and not is_head:
            param.requires_grad_(False)
            continue
        if is_head:
            scale = 1.0
        elif mode == "official":
            scale = decay ** (len(named) - index)
        else:
            parts = name.split(".")
            block = int(parts[2]) if name.startswith("backbone.blocks.") else -1
            scale = decay ** (depth - block) if block >= 0 else decay ** (depth + 1)
        groups.append({"params": [param], "lr": lr * scale, "lr_scale": scale, "weight_decay": weight_decay,
                       "name": name})
    return groups


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
        model.reset_classifier(num_classes)
        model.options["check_inputs"] = False
        self.fm = model

    def setup(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        spec = getattr(datamodule, "spec", None)
        if spec is not None and (spec.name != self.fm.spec.name or spec.channels != self.fm.spec.channels):
            raise ConfigError(f"the data's modality '{spec.name}' ({len(spec.channels)} channels) differs from the "
                              f"foundation model's '{self.fm.spec.name}' ({len(self.fm.spec.channels)} channels); "
                              "fine-tune a model of the data's modality and vocabulary")
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


__all__ = ["FinetuneTask", "balanced_class_weights", "layer_decay_groups", "load_fm"]
