"""Training callbacks."""

from __future__ import annotations

import lightning as L
import torch

from neurorvq.nn.spectral import per_sample_standardize


class ReconstructionReport(L.Callback):
    """Prints the validation reconstruction error (MSE of per-sample standardised signals) before and after
    ``fit``, over up to ``max_batches`` validation batches, and their ratio."""

    def __init__(self, max_batches: int = 8) -> None:
        self.max_batches = max_batches
        self.before: float | None = None
        self.after: float | None = None

    @torch.no_grad()
    def _measure(self, trainer: L.Trainer, pl_module: L.LightningModule) -> float | None:
        datamodule = trainer.datamodule
        if datamodule is None:
            return None
        was_training = pl_module.training
        pl_module.eval()
        total, count = 0.0, 0
        try:
            for i, batch in enumerate(datamodule.val_dataloader()):
                if i >= self.max_batches:
                    break
                x = batch["signal"].to(pl_module.device)
                ids = batch["channel_ids"].to(pl_module.device)
                rec, _ = pl_module.tokenizer(x, pl_module.model_ids(ids) if hasattr(pl_module, "model_ids") else ids)
                err = (per_sample_standardize(rec.float())[0] - per_sample_standardize(x.float())[0]).square()
                total += float(err.sum())
                count += err.numel()
        finally:
            pl_module.train(was_training)
        return total / max(count, 1)

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.is_global_zero:
            self.before = self._measure(trainer, pl_module)
            if self.before is not None:
                print(f"reconstruction MSE before training (standardised, val): {self.before:.4f}", flush=True)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.is_global_zero:
            self.after = self._measure(trainer, pl_module)
            if self.after is not None and self.before:
                print(f"reconstruction MSE after training (standardised, val): {self.after:.4f} "
                      f"({self.after / self.before:.2f} x before)", flush=True)
