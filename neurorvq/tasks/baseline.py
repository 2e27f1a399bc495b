"""Supervised baselines (EEGNet, ShallowConvNet) as window classifiers beside the fine-tuned FM.

:class:`BaselineTask` trains one of :func:`neurorvq.baselines.build_baseline`'s networks from scratch with the
loss, class weights, label checks and metrics of every classifier (:mod:`neurorvq.tasks.classification`), so
that ``neurorvq cv`` compares it with the FM on identical folds and identical metrics.

A baseline reads channel rows by position (unlike the FM, which embeds each channel's identity), so all its
windows must share one channel set in one order; ``setup`` checks that on the DataModule's splits and builds
the network for that channel count and window length (or for ``n_channels`` / ``n_times`` when given).
"""

from __future__ import annotations

from typing import Any

import torch

from neurorvq.errors import ConfigError
from neurorvq.registry import get_modality
from neurorvq.tasks.classification import ClassificationTask
from neurorvq.tasks.optim import warmup_cosine_scheduler


class BaselineTask(ClassificationTask):
    """Train a supervised baseline on windows ``[B, C, T]``.

    Args:
        architecture: ``"eegnet"`` or ``"shallow_convnet"`` (:func:`neurorvq.baselines.build_baseline`).
        modality: registered modality; its sampling rate scales the networks' kernels and pools.
        num_classes: the task's classes (two classes -> 1 logit + BCE, as the FM's head).
        n_channels, n_times: input size; ``None`` = taken from the DataModule's training windows at ``setup``.
        implementation: ``"auto"`` (braindecode's classes when installed, else ours), ``"neurorvq"``,
            ``"braindecode"``.
        options: extra keyword arguments of the network (e.g. ``{dropout: 0.25}``).
        lr, weight_decay, warmup_fraction, min_lr_ratio: AdamW with warm-up then cosine, stepped per batch.
        class_weights: ``"balanced"`` (from the training labels), a list, or ``None``.
    """

    def __init__(self, architecture: str = "eegnet", modality: str = "eeg", num_classes: int = 2,
                 n_channels: int | None = None, n_times: int | None = None, implementation: str = "auto",
                 options: dict[str, Any] | None = None, lr: float = 1e-3, weight_decay: float = 0.0,
                 warmup_fraction: float = 0.0, min_lr_ratio: float = 0.1,
                 class_weights: str | list[float] | None = "balanced") -> None:
        super().__init__(num_classes, class_weights)
        from neurorvq.baselines import baseline_implementation

        self.spec = get_modality(modality)
        self.implementation = baseline_implementation(implementation)
        self.save_hyperparameters()
        self.hparams.implementation = self.implementation  # the checkpoint records what actually ran
        self.network: torch.nn.Module | None = None
        if n_channels is not None and n_times is not None:
            self._build(int(n_channels), int(n_times))

    def _build(self, n_channels: int, n_times: int) -> None:
        from neurorvq.baselines import build_baseline

        self.network = build_baseline(self.hparams.architecture, n_channels=n_channels, n_times=n_times,
                                      n_classes=self.num_classes, sampling_rate=self.spec.sampling_rate,
                                      n_outputs=1 if self.num_classes == 2 else self.num_classes,
                                      implementation=self.implementation, **dict(self.hparams.options or {}))
        self.hparams.n_channels, self.hparams.n_times = n_channels, n_times

    def setup(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        spec = getattr(datamodule, "spec", None)
        if spec is not None and spec.name != self.spec.name:
            raise ConfigError(f"the data's modality is '{spec.name}' but the baseline's is '{self.spec.name}' "
                              f"(model.init_args.modality); its kernels are sized for {self.spec.sampling_rate} Hz")
        datasets = getattr(datamodule, "datasets", None) or {}
        sets = {tuple(ids) for split in datasets.values() for ids in getattr(split, "channel_sets", [])}
        if len(sets) > 1:
            raise ConfigError(f"{self.hparams.architecture} reads channels by position but the data has "
                              f"{len(sets)} channel sets ({sorted(len(s) for s in sets)} channels); pick one "
                              "channel set (the DataModule's channel options) or use the foundation model")
        if self.network is None:
            train = datasets.get("train")
            if train is None or not len(train):
                raise ConfigError(f"{self.hparams.architecture}: set model.init_args.n_channels and n_times (the "
                                  "DataModule exposes no training windows to take them from)")
            signal = train[0]["signal"]
            self._build(int(signal.shape[0]), int(signal.shape[1]))
        super().setup(stage)

    def logits(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        signal = batch["signal"]
        expected = (self.hparams.n_channels, self.hparams.n_times)
        if tuple(signal.shape[1:]) != expected:
            raise ConfigError(f"{self.hparams.architecture} was built for {expected[0]} channels x {expected[1]} "
                              f"samples but a batch has {tuple(signal.shape[1:])}")
        return self.network(signal)

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        constrain = getattr(self.network, "apply_constraints", None)
        if callable(constrain):  # max-norm constraints of the published architectures, after each update
            constrain()
        super().on_train_batch_end(outputs, batch, batch_idx)

    def configure_optimizers(self):
        optimizer = torch.optim.AdamW(self.network.parameters(), lr=self.hparams.lr,
                                      weight_decay=self.hparams.weight_decay)
        total = max(1, int(self.trainer.estimated_stepping_batches))
        scheduler = warmup_cosine_scheduler(optimizer, total, self.hparams.warmup_fraction, self.hparams.min_lr_ratio)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


__all__ = ["BaselineTask"]
