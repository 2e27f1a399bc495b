"""Optimizer parameter groups and learning-rate schedules shared by the training tasks."""

from __future__ import annotations

import math

import torch
from torch import nn

from neurorvq.errors import ConfigError

NO_DECAY_NAMES = ("cls_token", "pos_embed", "time_embed", "mask_token")


def weight_decay_groups(model: nn.Module, weight_decay: float,
                        no_decay_names: tuple[str, ...] = NO_DECAY_NAMES) -> list[dict]:
    """Two AdamW groups: matrices/conv kernels decay; biases, norms and the tensors whose name contains one of
    ``no_decay_names`` (the embedding tables and the mask token: quirk Q11 fix) do not."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        if param.ndim < 2 or name.endswith("bias") or any(part in name for part in no_decay_names):
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


def official_linear(step: int, total_steps: int, warmup_steps: int, start_ratio: float = 0.1,
                    end_ratio: float = 0.1) -> float:
    """The official fine-tuning schedule (method.md §4.3) as a multiplier of the base lr: linear warm-up from
    ``start_ratio`` to 1 over ``warmup_steps``, then linear decay to ``end_ratio`` at ``total_steps``. When the run
    is no longer than the warm-up, a single linear warm-up over the whole run is used (as the official code)."""
    if warmup_steps >= total_steps:
        return start_ratio + (1.0 - start_ratio) * min(1.0, step / max(1, total_steps))
    if step < warmup_steps:
        return start_ratio + (1.0 - start_ratio) * step / warmup_steps
    progress = min(1.0, (step - warmup_steps) / (total_steps - warmup_steps))
    return 1.0 - (1.0 - end_ratio) * progress


SCHEDULES = ("cosine", "official_linear")


def lr_scheduler(optimizer: torch.optim.Optimizer, kind: str, total_steps: int, warmup_fraction: float,
                 min_ratio: float) -> torch.optim.lr_scheduler.LambdaLR:
    """A per-step schedule: ``cosine`` (:func:`warmup_cosine`, warm-up from 0) or ``official_linear``
    (:func:`official_linear`, from and to ``min_ratio``); ``warmup_fraction`` of ``total_steps`` warm up."""
    if kind == "cosine":
        return warmup_cosine_scheduler(optimizer, total_steps, warmup_fraction, min_ratio)
    if kind != "official_linear":
        raise ConfigError(f"unknown schedule {kind!r}; valid: {', '.join(SCHEDULES)}")
    warmup = int(round(warmup_fraction * total_steps))
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: official_linear(step, total_steps, warmup, min_ratio, min_ratio))
