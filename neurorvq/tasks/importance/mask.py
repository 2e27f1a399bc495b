"""BrainRVQ's importance-guided curriculum masking, one call per batch (families.md §A.5).

``importance_mask(x_patches, epoch, max_epochs, generator, settings)`` scores every patch, mixes the score with
uniform noise by the curriculum weight ``w = 0.2 + 0.5 * epoch / max_epochs`` (0-based epoch, fixed for the
epoch), draws ``floor(0.5 L)`` tokens by a softmax at temperature 0.8 without replacement, un-masks each with
probability 0.1, and cuts runs longer than 5 along the flattened channel-major token axis. About 44.5 % of the
tokens end up masked; the complement is the symmetric view.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch

from neurorvq.errors import ConfigError, InputError
from neurorvq.tasks.importance.features import check_patches, importance_score
from neurorvq.tasks.importance.sampling import (RUN_LIMIT_AXES, GuidedMaskStages, RandomMaskStages, guided_mask,
                                                mask_count, random_mask)


@dataclass(frozen=True)
class ImportanceMaskSettings:
    """Options of the importance-guided mask; the defaults are the official pretraining defaults.

    Attributes:
        mask_ratio: ``floor(mask_ratio * L)`` tokens drawn per sample, before punching and the run limit.
        temperature: softmax temperature over the standardised mixed score (lower = more score-driven).
        punch_ratio: chance that a drawn token is un-masked again.
        max_run: longest run of consecutive masked tokens kept (None: no limit).
        run_limit_axis: ``"flat"``: runs follow the flattened channel-major axis and cross channel boundaries
            (official; the ~0.445 effective ratio assumes it); ``"channel"``: runs restart at each channel.
        weight_start: curriculum weight of the score at epoch 0.
        weight_growth: the weight grows by ``weight_growth * epoch / max_epochs``.
        random_mask: the ablation: drawn tokens chosen uniformly (the score is not computed).
        sampling_rate: Hz of the patches, placing the feature bands on the FFT bins (official: 200).
        parity: flat (constant) patches scored by the official arithmetic instead of 0 (see ``importance_score``).
    """

    mask_ratio: float = 0.5
    temperature: float = 0.8
    punch_ratio: float = 0.1
    max_run: int | None = 5
    run_limit_axis: str = "flat"
    weight_start: float = 0.2
    weight_growth: float = 0.5
    random_mask: bool = False
    sampling_rate: float = 200.0
    parity: bool = False

    def __post_init__(self) -> None:
        if not 0.0 < self.mask_ratio < 1.0:
            raise ConfigError(f"mask_ratio {self.mask_ratio} must be in (0, 1); the official value is 0.5")
        if not self.temperature > 0.0:
            raise ConfigError(f"temperature {self.temperature} must be > 0; the official value is 0.8")
        if not 0.0 <= self.punch_ratio < 1.0:
            raise ConfigError(f"punch_ratio {self.punch_ratio} must be in [0, 1); the official value is 0.1")
        if self.max_run is not None and (isinstance(self.max_run, bool) or not isinstance(self.max_run, int)
                                         or self.max_run < 1):
            raise ConfigError(f"max_run {self.max_run!r} must be an int >= 1 or None (no limit); official: 5")
        if self.run_limit_axis not in RUN_LIMIT_AXES:
            raise ConfigError(f"run_limit_axis {self.run_limit_axis!r}; valid: {', '.join(RUN_LIMIT_AXES)}")
        if not (0.0 <= self.weight_start <= 1.0 and 0.0 <= self.weight_start + self.weight_growth <= 1.0):
            raise ConfigError(f"weight_start {self.weight_start} and weight_start + weight_growth "
                              f"{self.weight_start + self.weight_growth} must lie in [0, 1]; official: 0.2 and 0.5")
        if not self.sampling_rate > 0.0:
            raise ConfigError(f"sampling_rate {self.sampling_rate} must be > 0 Hz; the official value is 200")


class ImportanceMaskDraw(NamedTuple):
    """One batch's mask with its inputs: the curriculum ``weight`` (None for the ablation), the ``score``
    ``[batch, L]`` (None for the ablation) and every sampling stage; ``stages.final`` is the mask."""

    weight: float | None
    score: torch.Tensor | None
    stages: GuidedMaskStages | RandomMaskStages


def curriculum_weight(epoch: int, max_epochs: int, start: float = 0.2, growth: float = 0.5) -> float:
    """Weight of the importance score in the mixed score: ``start + growth * epoch / max_epochs`` (0-based epoch;
    0.20 at epoch 0, 0.69 at epoch 49 of 50)."""
    if max_epochs < 1:
        raise ConfigError(f"max_epochs {max_epochs} must be >= 1: the curriculum needs a finite number of epochs "
                          "(set trainer.max_epochs)")
    if not 0 <= epoch < max_epochs:
        raise ConfigError(f"epoch {epoch} outside [0, {max_epochs}): pass the 0-based current epoch and max_epochs")
    return start + growth * epoch / max_epochs


def importance_mask_draw(x_patches: torch.Tensor, epoch: int, max_epochs: int,
                         generator: torch.Generator | None = None,
                         settings: ImportanceMaskSettings = ImportanceMaskSettings()) -> ImportanceMaskDraw:
    """:func:`importance_mask` with its intermediate values (for tests, logging and figures)."""
    check_patches(x_patches, finite=not settings.random_mask)
    b, n, a, _ = x_patches.shape
    length = n * a
    count = mask_count(length, settings.mask_ratio)
    if not 0 < count < length:
        raise InputError(f"mask_ratio {settings.mask_ratio} draws {count} of {length} tokens; each view needs at "
                         "least one: use more channels or patches, or a ratio nearer 0.5")
    channels = n if settings.run_limit_axis == "channel" else None
    if settings.random_mask:
        stages = random_mask(b, length, settings.mask_ratio, settings.punch_ratio, settings.max_run, channels,
                             generator)
        return ImportanceMaskDraw(None, None, stages)
    weight = curriculum_weight(epoch, max_epochs, settings.weight_start, settings.weight_growth)
    with torch.no_grad():
        score = importance_score(x_patches, settings.sampling_rate, settings.parity)
        stages = guided_mask(score, weight, settings.mask_ratio, settings.temperature, settings.punch_ratio,
                             settings.max_run, channels, generator)
    return ImportanceMaskDraw(weight, score, stages)


def importance_mask(x_patches: torch.Tensor, epoch: int, max_epochs: int, generator: torch.Generator | None = None,
                    settings: ImportanceMaskSettings = ImportanceMaskSettings()) -> torch.Tensor:
    """BrainRVQ's pretraining mask of one batch.

    Args:
        x_patches: ``[batch, channels, patches, samples]`` signal, the window ``[B, C, T]`` reshaped to
            ``[B, C, T // P, P]`` (tokens are channel-major: token k = channel * patches + patch). Any unit (the
            official code passes µV/100); NaN/inf is an error naming the sample, channel and patch.
        epoch: 0-based current epoch (the curriculum weight is fixed within an epoch).
        max_epochs: epochs of the run (the official ``--epochs``).
        generator: source of every random draw, on the device where sampling runs (CPU: masks identical on every
            device; a CPU generator seeded like the official ``torch.manual_seed`` replays its CPU masks exactly).
            None: torch's default CPU generator.
        settings: see :class:`ImportanceMaskSettings`.

    Returns:
        ``[batch, channels * patches]`` bool on ``x_patches``'s device, True = masked (about 44.5 % of tokens).
    """
    return importance_mask_draw(x_patches, epoch, max_epochs, generator, settings).stages.final.to(x_patches.device)


__all__ = ["ImportanceMaskDraw", "ImportanceMaskSettings", "curriculum_weight", "importance_mask",
           "importance_mask_draw"]
