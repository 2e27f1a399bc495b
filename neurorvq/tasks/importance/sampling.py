"""BrainRVQ's mask sampler (families.md §A.5.2): score-plus-noise softmax with a temperature, multinomial draws
without replacement, random un-masking ("punching") and a limit on runs of consecutive masked tokens; and the
random-mask ablation (uniform top-k, then the same punching and run limit).

Every random number comes from ``generator`` in a fixed order, so a seeded CPU generator replays the official
draws exactly: guided mask = ``rand(B, L)`` noise, the multinomial's draws, ``rand(B, L)`` punch values; ablation =
``rand(B, L)`` noise, ``rand(B, L)`` punch values. Sampling runs on the generator's device (CPU by default, so a
mask does not depend on where the model runs).
"""

from __future__ import annotations

from typing import NamedTuple

import torch

RUN_LIMIT_AXES = ("flat", "channel")


class GuidedMaskStages(NamedTuple):
    """Every stage of the importance-guided mask, ``[batch, L]`` unless stated (``ids_mask`` ``[batch, count]``,
    in draw order)."""

    random_scores: torch.Tensor
    combined_scores: torch.Tensor
    norm_scores: torch.Tensor
    probs: torch.Tensor
    ids_mask: torch.Tensor
    sampled: torch.Tensor
    punch_rand: torch.Tensor
    after_punch: torch.Tensor
    final: torch.Tensor


class RandomMaskStages(NamedTuple):
    """Every stage of the random-mask ablation, ``[batch, L]`` unless stated (``top_indices`` ``[batch, count]``,
    largest noise first)."""

    noise: torch.Tensor
    top_indices: torch.Tensor
    sampled: torch.Tensor
    punch_rand: torch.Tensor
    after_punch: torch.Tensor
    final: torch.Tensor


def mask_count(length: int, ratio: float) -> int:
    """Tokens drawn per sample before punching and the run limit: ``floor(ratio * length)``."""
    return int(length * ratio)


def limit_runs(mask: torch.Tensor, max_run: int | None, channels: int | None = None) -> torch.Tensor:
    """Un-mask positions ``max_run + 1``, ``2 (max_run + 1)``, ... (1-based) of every run of consecutive True, so
    no run is longer than ``max_run``; e.g. with 5, 14 masked in a row become 11111 0 11111 0 11.

    Args:
        mask: ``[batch, L]`` bool, channel-major tokens.
        max_run: longest run kept; None leaves the mask as is.
        channels: None: runs follow the flattened axis and cross channel boundaries (the official behaviour);
            an int N (dividing L): runs restart at each channel's first patch.

    Returns:
        a new ``[batch, L]`` bool mask.
    """
    if max_run is None:
        return mask.clone()
    b, length = mask.shape
    rows = mask if channels is None else mask.reshape(b * channels, length // channels)
    index = torch.arange(rows.shape[1], device=mask.device).expand_as(rows)
    last_gap = torch.where(rows, torch.full_like(index, -1), index).cummax(dim=1).values
    position = index - last_gap  # 1-based place of a masked token within its run
    return (rows & (position % (max_run + 1) != 0)).reshape(b, length)


def punch(sampled: torch.Tensor, ratio: float, generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Un-mask each masked token independently with probability ``ratio``. Returns ``(punch_rand, after_punch)``,
    the ``[batch, L]`` float32 uniform draws and the new mask."""
    punch_rand = torch.rand(sampled.shape, generator=generator, device=sampled.device)
    return punch_rand, sampled & ~(punch_rand < ratio)


def guided_mask(score: torch.Tensor, info_weight: float, ratio: float, temperature: float, punch_ratio: float,
                max_run: int | None, channels: int | None = None,
                generator: torch.Generator | None = None) -> GuidedMaskStages:
    """Importance-guided mask of one batch.

    Args:
        score: ``[batch, L]`` importance in [0, 1] (see :func:`~neurorvq.tasks.importance.features.importance_score`);
            moved to the generator's device.
        info_weight: w in ``w * score + (1 - w) * U(0, 1)`` (the curriculum's weight).
        ratio: ``floor(ratio * L)`` tokens drawn, more likely where the mixed score is high.
        temperature: softmax temperature over the standardised mixed score.
        punch_ratio: chance that a drawn token is un-masked again.
        max_run: run limit (:func:`limit_runs`); ``channels`` selects its per-channel form.
        generator: source of every draw (None: torch's default CPU generator).
    """
    device = generator.device if generator is not None else torch.device("cpu")
    score = score.float().to(device)
    b, length = score.shape
    random_scores = torch.rand(b, length, generator=generator, device=device)
    combined = info_weight * score + (1 - info_weight) * random_scores
    norm = (combined - combined.mean(dim=1, keepdim=True)) / (combined.std(dim=1, keepdim=True) + 1e-6)
    probs = torch.softmax(norm / temperature, dim=1)
    ids = torch.multinomial(probs, mask_count(length, ratio), replacement=False, generator=generator)
    sampled = torch.zeros(b, length, dtype=torch.bool, device=device).scatter_(1, ids, True)
    punch_rand, after_punch = punch(sampled, punch_ratio, generator)
    final = limit_runs(after_punch, max_run, channels)
    return GuidedMaskStages(random_scores, combined, norm, probs, ids, sampled, punch_rand, after_punch, final)


def random_mask(batch: int, length: int, ratio: float, punch_ratio: float, max_run: int | None,
                channels: int | None = None, generator: torch.Generator | None = None) -> RandomMaskStages:
    """The random-mask ablation: the ``floor(ratio * L)`` tokens with the largest uniform draws, then the same
    punching and run limit as :func:`guided_mask`."""
    device = generator.device if generator is not None else torch.device("cpu")
    noise = torch.rand(batch, length, generator=generator, device=device)
    top = noise.topk(mask_count(length, ratio), dim=1).indices
    sampled = torch.zeros(batch, length, dtype=torch.bool, device=device).scatter_(1, top, True)
    punch_rand, after_punch = punch(sampled, punch_ratio, generator)
    return RandomMaskStages(noise, top, sampled, punch_rand, after_punch, limit_runs(after_punch, max_run, channels))


__all__ = ["GuidedMaskStages", "RUN_LIMIT_AXES", "RandomMaskStages", "guided_mask", "limit_runs", "mask_count",
           "punch", "random_mask"]
