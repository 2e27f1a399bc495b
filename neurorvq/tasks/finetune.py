"""Fine-tuning the NeuroRVQ foundation model on a labelled task (method.md §4.3).

Head: pooled features -> LayerNorm(S*D) -> Linear (1 logit + BCE for two classes, CE otherwise, as the official
code). Layer-wise learning-rate decay in two forms:

- ``official`` (quirk Q9, for parity with the published numbers): per parameter *tensor*: every parameter but
  ``fc_norm``/``head`` gets ``lr * decay ** (P - i)`` with P the number of named parameters and i its index;
- ``block``: true per-block decay: embeddings and the temporal conv ``decay ** (depth + 1)``, block k
  ``decay ** (depth - k)``, ``fc_norm``/``head`` the base lr.

Metrics (torchmetrics): balanced accuracy, Cohen's kappa, weighted F1; AUROC and AUC-PR for binary tasks.
Class weights ``balanced`` = 1/count normalised to sum to the number of classes (the official weighting).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
import torchmetrics

from neurorvq.errors import CheckpointError, ConfigError
from neurorvq.models.fm import NeuroRVQFoundationModel
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


def balanced_class_weights(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``1 / count`` per class, normalised to sum to ``num_classes`` (classes absent from ``labels`` get 0)."""
    counts = torch.bincount(labels.long().flatten(), minlength=num_classes).float()
    weights = torch.where(counts > 0, 1.0 / counts.clamp_min(1), torch.zeros_like(counts))
    return weights * num_classes / weights.sum()


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


class FinetuneTask(L.LightningModule):
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
        super().__init__()
        self.save_hyperparameters()
        if num_classes < 2:
            raise ConfigError(f"num_classes is {num_classes}; a classification task needs at least 2")
        if fm:
            model = load_fm(fm)
        else:
            model = NeuroRVQFoundationModel(modality, pretraining=False, **dict(fm_overrides or {}))
        if model.spec.name != modality:
            raise ConfigError(f"foundation model '{fm}' is a '{model.spec.name}' model but modality is '{modality}'")
        model.reset_classifier(num_classes)
        model.options["check_inputs"] = False
        self.fm = model
        self.num_classes = num_classes
        self.register_buffer("class_weight", torch.ones(num_classes))
        metrics = {"balanced_accuracy": torchmetrics.classification.MulticlassAccuracy(num_classes, average="macro"),
                   "cohen_kappa": torchmetrics.classification.MulticlassCohenKappa(num_classes),
                   "f1_weighted": torchmetrics.classification.MulticlassF1Score(num_classes, average="weighted")}
        if num_classes == 2:
            metrics["auroc"] = torchmetrics.classification.BinaryAUROC()
            metrics["auc_pr"] = torchmetrics.classification.BinaryAveragePrecision()
        self.val_metrics = torchmetrics.MetricCollection(metrics, prefix="val/")
        self.test_metrics = self.val_metrics.clone(prefix="test/")

    # ------------------------------------------------------------------------------------ setup checks
    def setup(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        spec = getattr(datamodule, "spec", None)
        if spec is not None and (spec.name != self.fm.spec.name or spec.channels != self.fm.spec.channels):
            raise ConfigError(f"the data's modality '{spec.name}' ({len(spec.channels)} channels) differs from the "
                              f"foundation model's '{self.fm.spec.name}' ({len(self.fm.spec.channels)} channels); "
                              "fine-tune a model of the data's modality and vocabulary")
        labels = getattr(getattr(datamodule, "datasets", {}).get("train"), "labels", None)
        if labels is not None:
            labels = torch.as_tensor(labels)
            if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= self.num_classes):
                raise ConfigError(f"training labels span {int(labels.min())}..{int(labels.max())}, outside the "
                                  f"declared classes 0..{self.num_classes - 1}; set model.init_args.num_classes")
        weights = self.hparams.class_weights
        if weights == "balanced" and labels is not None and labels.numel():
            self.class_weight.copy_(balanced_class_weights(labels, self.num_classes))
        elif isinstance(weights, (list, tuple)):
            if len(weights) != self.num_classes:
                raise ConfigError(f"class_weights has {len(weights)} entries for {self.num_classes} classes")
            self.class_weight.copy_(torch.tensor(weights, dtype=torch.float32))

    # ------------------------------------------------------------------------------------ steps
    def _probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        if self.num_classes == 2:
            p = torch.sigmoid(logits.squeeze(-1))
            return torch.stack((1 - p, p), dim=-1)
        return logits.softmax(-1)

    def _loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if self.num_classes == 2:
            per_sample = F.binary_cross_entropy_with_logits(logits.squeeze(-1), labels.float(), reduction="none")
            return (per_sample * self.class_weight[labels]).mean()
        return F.cross_entropy(logits, labels, weight=self.class_weight)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        logits = self.fm(batch["signal"], batch["channel_ids"])
        loss = self._loss(logits, batch["label"])
        self.log("train/loss", loss, prog_bar=True, batch_size=logits.shape[0])
        return loss

    def _evaluate(self, batch: dict[str, torch.Tensor], metrics: torchmetrics.MetricCollection, stage: str) -> None:
        logits = self.fm(batch["signal"], batch["channel_ids"])
        labels = batch["label"]
        self.log(f"{stage}/loss", self._loss(logits, labels), batch_size=logits.shape[0], sync_dist=True)
        probs = self._probabilities(logits)
        for name, metric in metrics.items():
            metric.update(probs[:, 1] if name.endswith(("auroc", "auc_pr")) else probs, labels)
        self.log_dict(metrics, batch_size=logits.shape[0])

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._evaluate(batch, self.val_metrics, "val")

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._evaluate(batch, self.test_metrics, "test")

    def configure_optimizers(self):
        groups = layer_decay_groups(self.fm, self.hparams.lr, self.hparams.layer_decay, self.hparams.weight_decay,
                                    self.hparams.layer_decay_mode, self.hparams.head_only)
        optimizer = torch.optim.AdamW(groups, lr=self.hparams.lr)
        total = max(1, int(self.trainer.estimated_stepping_batches))
        scheduler = warmup_cosine_scheduler(optimizer, total, self.hparams.warmup_fraction, self.hparams.min_lr_ratio)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


__all__ = ["FinetuneTask", "balanced_class_weights", "layer_decay_groups", "load_fm"]
