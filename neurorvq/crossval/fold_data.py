"""The windows of one cross-validation fold as a LightningDataModule.

``neurorvq cv`` loads a dataset's labelled windows once (every subject pooled), then gives each fold a
:class:`FoldDataModule` holding that fold's train / val / test windows, so recordings are read and
preprocessed once for all folds.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import numpy as np
from torch.utils.data import DataLoader

from neurorvq.data.splits import Fold
from neurorvq.data.windows import SplitLoaders, WindowDataset, window_loader
from neurorvq.data.windowset import channel_names_in
from neurorvq.registry import ModalitySpec


class FoldDataModule(SplitLoaders, L.LightningDataModule):
    """Train / val / test windows of ``fold`` taken from ``pool`` (indices into the pool's windows).

    Batches as every window DataModule: ``{"signal": [B, C, T], "channel_ids": [B, C], "label": [B],
    "subject": [B]}``, one channel set per batch (:class:`~neurorvq.data.windows.ChannelBucketSampler`),
    training batches shuffled by ``seed`` and the epoch. :attr:`datasets` exposes the splits, so classifiers
    check the labels and derive class weights from ``datasets["train"].labels``; ``class_weight_labels``
    (``int64 [M]``), when given, are used for the class weights instead
    (:func:`~neurorvq.tasks.classification.class_weight_labels`): ``neurorvq cv --protocol parity`` passes the
    training and held-out labels together, as the official code does, which leaks the test fold's label
    distribution into the loss (:mod:`neurorvq.crossval.protocol`).
    """

    def __init__(self, pool: WindowDataset, fold: Fold, spec: ModalitySpec, batch_size: int = 32,
                 num_workers: int = 0, seed: int = 0, label_names: tuple[str, ...] | None = None,
                 class_weight_labels: np.ndarray | None = None) -> None:
        super().__init__()
        self.spec = spec
        self.fold = fold
        self.batch_size = int(batch_size)
        self.num_workers = int(num_workers)
        self.seed = int(seed)
        self.label_names = label_names
        self.class_weight_labels = None if class_weight_labels is None else \
            np.asarray(class_weight_labels, dtype=np.int64).reshape(-1)
        self.datasets: dict[str, WindowDataset] = {
            "train": pool.subset(fold.train), "val": pool.subset(fold.val), "test": pool.subset(fold.test)}

    def summary(self) -> dict[str, Any]:
        """Window counts per split and the fold's subjects."""
        return {"windows": {split: len(d) for split, d in self.datasets.items()},
                "subjects": {"train": list(self.fold.train_subjects), "val": list(self.fold.val_subjects),
                             "test": list(self.fold.test_subjects)}}

    def channel_names_used(self) -> list[str]:
        """Vocabulary names of the channels the fold's windows use (a model with a smaller vocabulary than the
        modality's, such as LaBraM's, is checked against these)."""
        return channel_names_in(list(self.datasets.values()), self.spec.channels)

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        return window_loader(self.datasets[split], self.batch_size, shuffle, self.seed, self.num_workers)


__all__ = ["FoldDataModule"]
