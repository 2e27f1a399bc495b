"""Classifier basics shared by the FM and the baselines: label checks (with and without a DataModule that exposes
its labels) and the baseline task's fit on windows of one channel set."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader

from neurorvq.data.windows import WindowDataset, WindowSet
from neurorvq.errors import ConfigError
from neurorvq.registry import get_modality
from neurorvq.tasks.baseline import BaselineTask
from neurorvq.tasks.finetune import FinetuneTask


def windows(n: int = 16, labels=None, channels=(36, 9, 10), samples: int = 400) -> list[dict]:
    """Windows whose label says which of the first two channels carries a 10 Hz rhythm (learnable by power)."""
    g = torch.Generator().manual_seed(0)
    t = torch.arange(samples) / 200
    labels = torch.arange(n) % 2 if labels is None else torch.as_tensor(labels)
    signal = torch.randn(n, len(channels), samples, generator=g) * 5
    signal[torch.arange(n), labels.clamp(0, 1)] += 30 * torch.sin(2 * torch.pi * 10 * t)
    ids = torch.tensor(channels)
    return [{"signal": signal[i], "channel_ids": ids, "label": labels[i]} for i in range(n)]


class Loaders(L.LightningDataModule):
    """Items in DataLoaders, without a ``datasets`` attribute (labels unknown until the batches arrive)."""

    def __init__(self, items: list[dict]) -> None:
        super().__init__()
        self.items = items
        self.spec = get_modality("eeg")

    def train_dataloader(self):
        return DataLoader(self.items, batch_size=8)

    def val_dataloader(self):
        return DataLoader(self.items, batch_size=8)


class Exposed(Loaders):
    """The same, exposing its windows as ``datasets`` the way window DataModules do."""

    def __init__(self, sets: list[WindowSet]) -> None:
        self.datasets = {"train": WindowDataset(sets), "val": WindowDataset(sets)}
        super().__init__([self.datasets["train"][i] for i in range(len(self.datasets["train"]))])


def trainer(**kwargs) -> L.Trainer:
    options = dict(accelerator="cpu", devices=1, max_epochs=1, logger=False, enable_checkpointing=False,
                   enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)
    options.update(kwargs)
    return L.Trainer(**options)


def test_labels_outside_the_classes_stop_training_with_a_clear_error():
    task = FinetuneTask(fm=None, num_classes=2, fm_overrides={"depth": 1})
    with pytest.raises(ConfigError, match=r"train windows have labels outside the declared classes 0\.\.1 "
                                          r"\(largest label 5\)"):
        trainer().fit(task, Loaders(windows(labels=[0, 1, 5, 1] * 4)))


def test_labels_outside_the_classes_are_refused_at_setup_when_the_data_exposes_them():
    items = windows(8, labels=[0, 1, 2, 1, 0, 1, 0, 1])
    sets = [WindowSet(torch.stack([w["signal"] for w in items]).numpy(), [36, 9, 10],
                      labels=[int(w["label"]) for w in items])]
    task = FinetuneTask(fm=None, num_classes=2, fm_overrides={"depth": 1})
    with pytest.raises(ConfigError, match=r"training labels span 0\.\.2, outside the declared classes 0\.\.1"):
        trainer().fit(task, Exposed(sets))


def test_baseline_task_builds_from_the_data_and_learns():
    items = windows(32)
    sets = [WindowSet(torch.stack([w["signal"] for w in items]).numpy(), [36, 9, 10],
                      labels=[int(w["label"]) for w in items])]
    task = BaselineTask("shallow_convnet", num_classes=2, lr=3e-3, implementation="neurorvq")
    run = trainer(max_epochs=6)
    run.fit(task, Exposed(sets))
    assert task.hparams.n_channels == 3 and task.hparams.n_times == 400
    assert task.network(torch.zeros(2, 3, 400)).shape == (2, 1)  # two classes: one logit (BCE)
    assert float(run.callback_metrics["val/balanced_accuracy"]) > 0.8


def test_baseline_task_errors():
    with pytest.raises(ConfigError, match="set model.init_args.n_channels and n_times"):
        trainer().fit(BaselineTask("eegnet", implementation="neurorvq"), Loaders(windows(8)))
    two_sets = [WindowSet(torch.zeros(4, 3, 400).numpy(), [36, 9, 10], labels=[0, 1, 0, 1]),
                WindowSet(torch.zeros(4, 2, 400).numpy(), [36, 9], labels=[0, 1, 0, 1])]
    with pytest.raises(ConfigError, match="reads channels by position but the data has 2 channel sets"):
        trainer().fit(BaselineTask("eegnet", implementation="neurorvq"), Exposed(two_sets))
    with pytest.raises(ConfigError, match="data's modality is 'eeg' but the baseline's is 'ecg'"):
        trainer().fit(BaselineTask("eegnet", modality="ecg", implementation="neurorvq"), Exposed(two_sets[:1]))


def test_label_smoothing_applies_to_multi_class_cross_entropy_only():
    """LaBraM and BrainRVQ fine-tune multi-class tasks with label-smoothed CE (0.1); binary tasks keep BCE."""
    import torch.nn.functional as F

    from neurorvq.tasks.classification import ClassificationTask

    torch.manual_seed(0)
    logits, labels = torch.randn(6, 4), torch.tensor([0, 1, 2, 3, 1, 2])
    task = ClassificationTask(4, class_weights=None, label_smoothing=0.1)
    assert torch.allclose(task.loss(logits, labels), F.cross_entropy(logits, labels, label_smoothing=0.1))
    assert not torch.allclose(task.loss(logits, labels), F.cross_entropy(logits, labels))
    binary = ClassificationTask(2, class_weights=None, label_smoothing=0.1)
    one = torch.randn(6, 1)
    targets = torch.tensor([0, 1, 1, 0, 1, 0])
    assert torch.allclose(binary.loss(one, targets), F.binary_cross_entropy_with_logits(one.squeeze(-1),
                                                                                        targets.float()))
    with pytest.raises(ConfigError, match=r"label_smoothing is 1.0; give a value in \[0, 1\)"):
        ClassificationTask(4, label_smoothing=1.0)
