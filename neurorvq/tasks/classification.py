"""What every window classifier shares: loss, class weights, label checks and metrics.

Loss as the official fine-tuning code (method.md §4.3): two classes -> 1 logit + BCE-with-logits, more ->
cross-entropy; both weighted per class. Class weights ``balanced`` = 1/count normalised to sum to the number of
classes (the official weighting), taken from the training labels when the DataModule exposes them
(``datamodule.datasets["train"].labels``), or from its ``class_weight_labels`` when it sets them: ``neurorvq cv
--protocol parity`` gives the training and held-out labels together there, as the official code does (which
leaks the test fold's label distribution into the loss; :mod:`neurorvq.crossval.protocol`).

Labels outside ``0..num_classes-1``: refused at ``setup`` when the DataModule exposes its labels; otherwise
counted on the device in every step (no host synchronisation) and reported at the next logging step, at the end
of every validation/test epoch and at the end of training, with a :class:`~neurorvq.errors.ConfigError` naming
the stage, the count and the largest label seen. Until then the loss uses clamped labels, so nothing crashes
with an unreadable device-side assertion first.

Metrics (torchmetrics): balanced accuracy (macro recall; the paper's metric), plain accuracy (micro; the
benchmark's ``valid_accuracy``), Cohen's kappa, weighted F1; AUROC and AUC-PR for binary tasks. They are logged
as ``val/<name>`` and ``test/<name>``.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
import torchmetrics

from neurorvq.errors import ConfigError

METRIC_NAMES = ("balanced_accuracy", "accuracy", "cohen_kappa", "f1_weighted", "auroc", "auc_pr")
"""Every metric a classifier may log (the last two only for binary tasks), in table order."""


def balanced_class_weights(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``1 / count`` per class, normalised to sum to ``num_classes`` (classes absent from ``labels`` get 0)."""
    counts = torch.bincount(labels.long().flatten(), minlength=num_classes).float()
    weights = torch.where(counts > 0, 1.0 / counts.clamp_min(1), torch.zeros_like(counts))
    return weights * num_classes / weights.sum()


def classification_metrics(num_classes: int, prefix: str) -> torchmetrics.MetricCollection:
    """The metrics of :data:`METRIC_NAMES` that apply to ``num_classes`` classes."""
    metrics = {"balanced_accuracy": torchmetrics.classification.MulticlassAccuracy(num_classes, average="macro"),
               "accuracy": torchmetrics.classification.MulticlassAccuracy(num_classes, average="micro"),
               "cohen_kappa": torchmetrics.classification.MulticlassCohenKappa(num_classes),
               "f1_weighted": torchmetrics.classification.MulticlassF1Score(num_classes, average="weighted")}
    if num_classes == 2:
        metrics["auroc"] = torchmetrics.classification.BinaryAUROC()
        metrics["auc_pr"] = torchmetrics.classification.BinaryAveragePrecision()
    return torchmetrics.MetricCollection(metrics, prefix=prefix)


def training_labels(datamodule: Any) -> torch.Tensor | None:
    """``int64 [N]`` labels of the DataModule's training windows when it exposes them, else ``None``."""
    datasets = getattr(datamodule, "datasets", None)
    train = datasets.get("train") if isinstance(datasets, dict) else None
    labels = getattr(train, "labels", None)
    return None if labels is None else torch.as_tensor(labels).long()


def class_weight_labels(datamodule: Any) -> torch.Tensor | None:
    """``int64 [M]`` labels the ``balanced`` class weights are computed from: the DataModule's
    ``class_weight_labels`` when it sets them (not ``None``), else its training labels (:func:`training_labels`).
    ``neurorvq cv --protocol parity`` sets them to the training + held-out labels (the official code's
    ``y_train + y_val``; the test label distribution then leaks into the loss)."""
    labels = getattr(datamodule, "class_weight_labels", None)
    return training_labels(datamodule) if labels is None else torch.as_tensor(labels).long()


def single_montage(datamodule: Any, reason: str, alternative: str, needed: str | None = None) -> tuple[int, int] | None:
    """Check that the DataModule's splits share one channel set, and return ``(channels, samples)`` of its first
    training window (``None`` when it exposes none). For models that read channels by position or pool them in
    a fixed order. ``reason`` and ``alternative`` word the error for several channel sets ("EEGNet reads channels
    by position", "use the foundation model"); with ``needed`` (the fields to set instead, e.g.
    "n_channels and n_times") a DataModule without training windows is an error naming them."""
    datasets = getattr(datamodule, "datasets", None) or {}
    sets = {tuple(ids) for split in datasets.values() for ids in getattr(split, "channel_sets", [])}
    if len(sets) > 1:
        raise ConfigError(f"{reason} but the data has {len(sets)} channel sets ({sorted(len(s) for s in sets)} "
                          f"channels); pick one channel set (the DataModule's channel options) or {alternative}")
    train = datasets.get("train")
    if train is None or not len(train):
        if needed:
            raise ConfigError(f"set model.init_args.{needed} (the DataModule exposes no training windows to take "
                              "them from)")
        return None
    signal = train[0]["signal"]
    return int(signal.shape[0]), int(signal.shape[1])


class ClassificationTask(L.LightningModule):
    """Base of the window classifiers (:class:`~neurorvq.tasks.finetune.FinetuneTask`,
    :class:`~neurorvq.tasks.baseline.BaselineTask`): subclasses implement :meth:`logits` and
    ``configure_optimizers``; batches are ``{"signal": [B, C, T], "channel_ids": [B, C], "label": [B]}``.

    Args:
        num_classes: the task's classes; labels must lie in ``0..num_classes-1``.
        class_weights: ``"balanced"`` (from the training labels, or the DataModule's ``class_weight_labels``:
            :func:`class_weight_labels`), a list of ``num_classes`` weights, or ``None``.
    """

    def __init__(self, num_classes: int, class_weights: str | list[float] | None = "balanced",
                 label_smoothing: float = 0.0) -> None:
        super().__init__()
        if num_classes < 2:
            raise ConfigError(f"num_classes is {num_classes}; a classification task needs at least 2")
        if not 0.0 <= float(label_smoothing) < 1.0:
            raise ConfigError(f"label_smoothing is {label_smoothing}; give a value in [0, 1) (LaBraM: 0.1)")
        self.label_smoothing = float(label_smoothing)
        if isinstance(class_weights, str) and class_weights != "balanced":
            raise ConfigError(f"class_weights is {class_weights!r}; use 'balanced', a list of weights, or null")
        self.num_classes = int(num_classes)
        self.class_weights_option = class_weights
        self.register_buffer("class_weight", torch.ones(num_classes))
        # [count of out-of-range labels, largest label seen], per stage; checked on the host only at log points
        self.register_buffer("label_errors", torch.zeros(3, 2, dtype=torch.long), persistent=False)
        self.val_metrics = classification_metrics(num_classes, "val/")
        self.test_metrics = classification_metrics(num_classes, "test/")

    # ------------------------------------------------------------------------------------ to implement
    def logits(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:  # pragma: no cover - interface
        """``[B, 1]`` (two classes) or ``[B, num_classes]`` logits of a batch."""
        raise NotImplementedError

    # ------------------------------------------------------------------------------------ setup
    def setup(self, stage: str) -> None:
        labels = training_labels(getattr(self.trainer, "datamodule", None))
        if labels is not None and labels.numel():
            low, high = int(labels.min()), int(labels.max())
            if low < 0 or high >= self.num_classes:
                raise ConfigError(f"training labels span {low}..{high}, outside the declared classes "
                                  f"0..{self.num_classes - 1}; set model.init_args.num_classes to the data's "
                                  "number of classes")
        weights = self.class_weights_option
        if weights == "balanced":
            counted = class_weight_labels(getattr(self.trainer, "datamodule", None))
            if counted is not None and counted.numel():
                if int(counted.min()) < 0 or int(counted.max()) >= self.num_classes:
                    raise ConfigError(f"the labels the class weights are computed from span {int(counted.min())}.."
                                      f"{int(counted.max())}, outside the declared classes 0..{self.num_classes - 1}; "
                                      "set model.init_args.num_classes to the data's number of classes")
                self.class_weight.copy_(balanced_class_weights(counted, self.num_classes))
        elif isinstance(weights, (list, tuple)):
            if len(weights) != self.num_classes:
                raise ConfigError(f"class_weights has {len(weights)} entries for {self.num_classes} classes")
            self.class_weight.copy_(torch.tensor(weights, dtype=torch.float32))

    # ------------------------------------------------------------------------------------ labels
    _STAGES = ("train", "val", "test")

    def _checked(self, labels: torch.Tensor, stage: str) -> torch.Tensor:
        """``labels`` clamped into range; out-of-range ones counted on the device for :meth:`_raise_bad_labels`."""
        row = self.label_errors[self._STAGES.index(stage)]
        bad = (labels < 0) | (labels >= self.num_classes)
        row[0] += bad.sum()
        row[1] = torch.maximum(row[1], labels.max())
        return labels.clamp(0, self.num_classes - 1)

    def _raise_bad_labels(self, stage: str) -> None:
        count, largest = self.label_errors[self._STAGES.index(stage)].tolist()
        if count:
            raise ConfigError(f"{count} {stage} windows have labels outside the declared classes "
                              f"0..{self.num_classes - 1} (largest label {largest}); set model.init_args.num_classes "
                              "to the data's number of classes or fix the labels")

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        every = max(1, int(getattr(self.trainer, "log_every_n_steps", 50) or 50))
        if self.global_step <= 1 or self.global_step % every == 0:
            self._raise_bad_labels("train")

    def on_train_end(self) -> None:
        self._raise_bad_labels("train")

    def on_validation_epoch_end(self) -> None:
        self._raise_bad_labels("val")

    def on_test_epoch_end(self) -> None:
        self._raise_bad_labels("test")

    # ------------------------------------------------------------------------------------ steps
    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """``[B, num_classes]`` class probabilities of ``logits``."""
        if self.num_classes == 2:
            p = torch.sigmoid(logits.float().squeeze(-1))
            return torch.stack((1 - p, p), dim=-1)
        return logits.float().softmax(-1)

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Weighted BCE (1 logit, two classes) or weighted cross-entropy, label-smoothed by ``label_smoothing``
        when there are more than two classes (as LaBraM and BrainRVQ fine-tune; their binary loss is plain BCE)."""
        if self.num_classes == 2:
            per_sample = F.binary_cross_entropy_with_logits(logits.float().squeeze(-1), labels.float(),
                                                            reduction="none")
            return (per_sample * self.class_weight[labels]).mean()
        return F.cross_entropy(logits.float(), labels, weight=self.class_weight, label_smoothing=self.label_smoothing)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        logits = self.logits(batch)
        loss = self.loss(logits, self._checked(batch["label"], "train"))
        self.log("train/loss", loss, prog_bar=True, batch_size=logits.shape[0])
        return loss

    def _evaluate(self, batch: dict[str, torch.Tensor], metrics: torchmetrics.MetricCollection, stage: str) -> None:
        logits = self.logits(batch)
        labels = self._checked(batch["label"], stage)
        self.log(f"{stage}/loss", self.loss(logits, labels), batch_size=logits.shape[0], sync_dist=True)
        probs = self.probabilities(logits)
        for name, metric in metrics.items():
            metric.update(probs[:, 1] if name.endswith(("auroc", "auc_pr")) else probs, labels)
        self.log_dict(metrics, batch_size=logits.shape[0])

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._evaluate(batch, self.val_metrics, "val")

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._evaluate(batch, self.test_metrics, "test")

    def predict_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> dict[str, torch.Tensor]:
        """``{"probabilities": [B, num_classes]}`` plus the batch's ``label``/``subject`` when present."""
        out = {"probabilities": self.probabilities(self.logits(batch))}
        for key in ("label", "subject"):
            if key in batch:
                out[key] = batch[key]
        return out


__all__ = ["METRIC_NAMES", "ClassificationTask", "balanced_class_weights", "class_weight_labels",
           "classification_metrics", "single_montage", "training_labels"]
