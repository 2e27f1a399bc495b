"""Supervised baselines (EEGNet, ShallowConvNet) as window classifiers beside the fine-tuned FM.

:class:`BaselineTask` trains one of :func:`neurorvq.baselines.build_baseline`'s networks from scratch with the
loss, class weights, label checks and metrics of every classifier (:mod:`neurorvq.tasks.classification`), so
that ``neurorvq cv`` compares it with the FM on identical folds and identical metrics.

A baseline reads channel rows by position (unlike the FM, which embeds each channel's identity), so all its
windows must share one channel set in one order; ``setup`` checks that on the DataModule's splits and builds
the network for that channel count and window length (or for ``n_channels`` / ``n_times`` when given).

:meth:`BaselineTask.description` says what was built and ran (architecture, implementation, resolved sizes) for a
run's results; :meth:`BaselineTask.features` returns the input of the final classification layer of a batch.
"""

from __future__ import annotations

from typing import Any

import torch

from neurorvq.compat import check_compatible
from neurorvq.errors import ConfigError
from neurorvq.registry import get_modality
from neurorvq.tasks.classification import ClassificationTask, single_montage
from neurorvq.tasks.optim import warmup_cosine_scheduler


class BaselineTask(ClassificationTask):
    """Train a supervised baseline on windows ``[B, C, T]``.

    Args:
        architecture: ``"eegnet"`` or ``"shallow_convnet"`` (:func:`neurorvq.baselines.build_baseline`).
        modality: registered modality; its sampling rate scales the networks' kernels and pools.
        num_classes: the task's classes (two classes -> 1 logit + BCE, as the FM's head).
        n_channels, n_times: input size; ``None`` = taken from the DataModule's training windows at ``setup``.
        implementation: ``"neurorvq"`` (default, this package's networks) or ``"braindecode"`` (braindecode's
            classes, an explicit choice: its own sizes, BatchNorm and initialisation; docs/baselines.md).
        options: extra keyword arguments of the network (e.g. ``{dropout: 0.25}``).
        lr, weight_decay, warmup_fraction, min_lr_ratio: AdamW with warm-up then cosine, stepped per batch.
        class_weights: ``"balanced"`` (from the training labels), a list, or ``None``.
    """

    def __init__(self, architecture: str = "eegnet", modality: str = "eeg", num_classes: int = 2,
                 n_channels: int | None = None, n_times: int | None = None, implementation: str = "neurorvq",
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
        if spec is not None:  # kernels are sized by the rate; ECG (mV) and EEG (uV) differ by unit
            check_compatible(spec, self.spec, fields=("sampling_rate", "unit"),
                             headline=f"the data's modality is '{spec.name}' but the baseline's is '{self.spec.name}' "
                                      f"(model.init_args.modality); its kernels are sized for "
                                      f"{self.spec.sampling_rate:g} Hz (data vs baseline)")
        shape = single_montage(datamodule, f"{self.hparams.architecture} reads channels by position",
                               "use the foundation model", None if self.network is not None else "n_channels and n_times")
        if self.network is None:
            self._build(*shape)
        super().setup(stage)

    def _signal(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.network is None:
            raise ConfigError(f"{self.hparams.architecture}: the network is built at setup (or give n_channels and "
                              "n_times); none yet")
        signal = batch["signal"]
        expected = (self.hparams.n_channels, self.hparams.n_times)
        if tuple(signal.shape[1:]) != expected:
            raise ConfigError(f"{self.hparams.architecture} was built for {expected[0]} channels x {expected[1]} "
                              f"samples but a batch has {tuple(signal.shape[1:])}")
        return signal

    def logits(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.network(self._signal(batch))

    def features(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """``[B, F]``: the flattened input of the network's final classification layer for ``batch["signal"]``
        (:func:`neurorvq.baselines.baseline_features`; ours through their ``features``, braindecode's through a
        forward hook on the last layer), such that the logits are that layer applied to it. Dropout before that
        layer is active in train mode: call ``eval()`` first for diagnostics."""
        from neurorvq.baselines import baseline_features

        return baseline_features(self.network, self._signal(batch))

    def description(self) -> dict[str, Any]:
        """What this baseline is, JSON-serialisable, for each result: ``architecture`` (canonical name),
        ``implementation`` ("neurorvq" or "braindecode"), ``braindecode_version`` (braindecode only), ``modality``,
        ``sampling_rate``, ``n_channels``, ``n_times``, ``n_outputs``, ``options`` (as given), and ``network``
        (:func:`neurorvq.baselines.describe_baseline`: ``class``, ``n_parameters``, ``settings`` with the
        resolved kernel/pool sizes, ``final_layer``, ...; ``None`` until the network is built at setup)."""
        from neurorvq.baselines import _jsonable, baseline_name, braindecode_version, describe_baseline

        out: dict[str, Any] = {
            "architecture": baseline_name(self.hparams.architecture),
            "implementation": self.implementation,
            "modality": self.spec.name,
            "sampling_rate": float(self.spec.sampling_rate),
            "n_channels": self.hparams.n_channels, "n_times": self.hparams.n_times,
            "n_outputs": 1 if self.num_classes == 2 else self.num_classes,
            "options": _jsonable(dict(self.hparams.options or {})),
            "network": None if self.network is None else describe_baseline(self.network),
            "optimiser": {"name": "AdamW", "lr": self.hparams.lr, "weight_decay": self.hparams.weight_decay,
                          "schedule": "cosine", "warmup_fraction": self.hparams.warmup_fraction,
                          "min_lr_ratio": self.hparams.min_lr_ratio},
        }
        if self.implementation == "braindecode":
            out["braindecode_version"] = braindecode_version()
        return out

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
