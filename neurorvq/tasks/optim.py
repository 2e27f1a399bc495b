"""Optimizer parameter groups and learning-rate schedules shared by the training tasks."""

from __future__ import annotations

import math
import torch
from torch import nn

NO_DECAY_NAMES = ("cls_token", "pos_embed", "time_embed", "mask_token")


def weight_decay_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two AdamW groups: matrices/conv kernels decay; biases, norms and embedding tables do not (quirk Q11 fix)."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        if param.ndim < 2 or name.endswith("bias") or any(part in name for part in NO_DECAY_NAMES):
            no_decay.append(param)
        else:
            decay.append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def warmup_cosine(step: int, total_steps: int, warmup_steps: int, min_ratio: float) -> float:
    """Learning-rate multiplier: linear warm-up from 0 to 1 over ``warmup_steps``, then cosine to ``min_ratio``."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def warmup_cosine_scheduler(optimizer: torch.optim.Optimizer, total_steps: int, warmup_fraction: float,
                            min_ratio: float) -> torch.optim.lr_scheduler.LambdaLR:
    """A per-step :class:`LambdaLR` of :func:`warmup_cosine` (``warmup_fraction`` of ``total_steps``)."""
    warmup = int(round(warmup_fraction * total_steps))
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: warmup_cosine(step, total_steps, warmup, min_ratio))

