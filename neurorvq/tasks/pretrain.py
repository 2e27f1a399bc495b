"""Masked-token pretraining of the NeuroRVQ foundation model (method.md §4.2).

A frozen tokenizer (in eval mode, its quantizer state frozen, identical on every rank since every rank loads
the same file) turns each batch into target ids ``[B, S, N, L]`` inside the same step; the FM sees the raw
patches with a random half of the tokens replaced by its mask token (and the complementary view), and one
batched head predicts all S x N ids. Optimiser defaults are method.md §5's proposals (LaBraM-base-like): AdamW
(0.9, 0.98), lr 5e-4, weight decay 0.05, warm-up then cosine; mask ratio 0.5.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch

from neurorvq.errors import ConfigError
from neurorvq.models.fm import NeuroRVQFoundationModel, masked_token_loss
from neurorvq.tasks.masking import random_token_mask
from neurorvq.tasks.optim import warmup_cosine_scheduler, weight_decay_groups
from neurorvq.tasks.tokenizer import load_tokenizer


class PretrainTask(L.LightningModule):
    """Masked-token pretraining.

    Args:
        tokenizer: the frozen tokenizer (TokenizerTask ``.ckpt``, ``save_pretrained`` folder or official file).
        modality: must be the tokenizer's.
        fm: FM overrides (spec fields and options such as ``depth``); ``vocab_size`` and the token depth come
            from the tokenizer.
        mask_ratio: fraction of tokens masked per sample (0.5 as LaBraM; the complement is predicted too).
        mask_seed: masks are drawn from a generator seeded with ``(mask_seed, global_step)``: reproducible and
            the same after resuming.
    """

    def __init__(self, tokenizer: str, modality: str = "eeg", fm: dict[str, Any] | None = None,
                 mask_ratio: float = 0.5, mask_seed: int = 0, lr: float = 5e-4, weight_decay: float = 0.05,
                 betas: tuple[float, float] = (0.9, 0.98), warmup_fraction: float = 0.1,
                 min_lr_ratio: float = 0.01) -> None:
        super().__init__()
        self.save_hyperparameters()
        frozen = load_tokenizer(tokenizer).eval()
        if frozen.spec.name != modality:
            raise ConfigError(f"tokenizer '{tokenizer}' is a '{frozen.spec.name}' tokenizer but modality is "
                              f"'{modality}'")
        overrides = dict(fm or {})
        for key in ("vocab_size", "n_quantizers"):
            if key in overrides:
                raise ConfigError(f"fm.{key} comes from the tokenizer; remove it from the recipe")
        self.fm = NeuroRVQFoundationModel(modality, pretraining=True, vocab_size=frozen.spec.codebook_size,
                                          n_quantizers=frozen.spec.n_quantizers, **overrides)
        if self.fm.spec.branches != frozen.spec.branches or self.fm.spec.patch_length != frozen.spec.patch_length:
            raise ConfigError(f"tokenizer '{tokenizer}' has branches/patch length that differ from the FM's "
                              f"({frozen.spec.branches} vs {self.fm.spec.branches}); the token targets must come from "
                              "the same patches")
        for p in frozen.parameters():
            p.requires_grad_(False)
        self.tokenizer = frozen
        self.fm.options["check_inputs"] = False  # the data pipeline validated the batch: no device syncs

    def train(self, mode: bool = True):
        super().train(mode)
        self.tokenizer.eval()  # always frozen, quantizer statistics included
        return self

    def _mask(self, batch: int, length: int, device) -> torch.Tensor:
        generator = torch.Generator().manual_seed(int(self.hparams.mask_seed) * 1_000_003 + int(self.global_step))
        return random_token_mask(batch, length, self.hparams.mask_ratio, generator, device)

    def _step(self, batch: dict[str, torch.Tensor], stage: str) -> torch.Tensor:
        x, channels = batch["signal"], batch["channel_ids"]
        self.tokenizer.check_inputs = False
        with torch.no_grad():
            targets = self.tokenizer.encode(x, channels)  # [B, S, N, L]
        b, s, n, l = targets.shape
        mask = self._mask(b, l, x.device)
        out = self.fm.forward_pretrain(x, channels, mask)
        loss = masked_token_loss(out, targets, mask)
        flat = targets.permute(1, 2, 0, 3).reshape(s * n, b, l)
        correct = (out.logits.argmax(-1) == flat[:, mask]).float().mean(-1).reshape(s, n)
        on_step = stage == "train"
        self.log(f"{stage}/loss", loss, prog_bar=True, on_step=on_step, on_epoch=not on_step, batch_size=b,
                 sync_dist=not on_step)
        self.log(f"{stage}/masked_accuracy", correct.mean(), on_step=on_step, on_epoch=not on_step, batch_size=b,
                 sync_dist=not on_step)
        for i in range(s):
            for j in range(n):
                self.log(f"{stage}_accuracy/b{i}_d{j}", correct[i, j], on_step=on_step, on_epoch=not on_step,
                         batch_size=b)
        return loss

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._step(batch, "val")

    def configure_optimizers(self):
        groups = weight_decay_groups(self.fm, self.hparams.weight_decay)
        optimizer = torch.optim.AdamW(groups, lr=self.hparams.lr, betas=tuple(self.hparams.betas))
        total = max(1, int(self.trainer.estimated_stepping_batches))
        scheduler = warmup_cosine_scheduler(optimizer, total, self.hparams.warmup_fraction, self.hparams.min_lr_ratio)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
