"""Token masks for masked-token pretraining (method.md §4.2, families.md §B.7).

Three count rules, one per family's official code: ``round`` (NeuroRVQ's FM: ``round(ratio * L)`` masked, the
smallest draws), ``keep_floor`` (LaBraM's ``random_masking``: ``floor((1 - ratio) * L)`` tokens kept, those with
the smallest draws, so ``L - floor((1 - ratio) * L)`` masked, e.g. 8 of 15 at ratio 0.5) and ``floor`` (BrainRVQ's
mask generators before punching and the run limit: the ``floor(ratio * L)`` largest draws masked, 7 of 15).
"""

from __future__ import annotations

import math

import torch

MASK_RULES = ("round", "keep_floor", "floor")


def _check_ratio(ratio: float) -> None:
    if not 0.0 < ratio < 1.0:
        raise ValueError(f"mask ratio {ratio} must be in (0, 1)")


def random_token_mask(batch: int, length: int, ratio: float, generator: torch.Generator | None = None,
                      device: torch.device | str = "cpu") -> torch.Tensor:
    """``[batch, length]`` bool, True = masked: exactly ``round(ratio * length)`` tokens per sample, chosen
    uniformly at random (LaBraM's scheme; with the symmetric view every token is predicted once per step).

    Deterministic for a given ``generator`` state (a CPU generator, so masks do not depend on the device).
    """
    _check_ratio(ratio)
    count = int(round(ratio * length))
    count = min(max(count, 1), length - 1)
    scores = torch.rand(batch, length, generator=generator)
    ranks = scores.argsort(dim=1).argsort(dim=1)
    return (ranks < count).to(device)


def keep_floor_mask(noise: torch.Tensor, ratio: float) -> torch.Tensor:
    """LaBraM's mask from uniform draws ``noise [batch, length]``: per sample the ``floor((1 - ratio) * length)``
    tokens with the smallest draws are kept, the others masked (True). ``[batch, length]`` bool on ``noise``'s
    device."""
    _check_ratio(ratio)
    length = noise.shape[1]
    keep = int(length * (1.0 - ratio))
    if not 0 < keep < length:  # one view would predict nothing
        raise ValueError(f"mask ratio {ratio} keeps {keep} of {length} tokens; each view needs at least one token "
                         "masked and one kept: use longer windows or a ratio nearer 0.5")
    ranks = noise.argsort(dim=1).argsort(dim=1)
    return ranks >= keep


def floor_mask(noise: torch.Tensor, ratio: float) -> torch.Tensor:
    """BrainRVQ's count rule on uniform draws ``noise [batch, length]``: per sample the ``floor(ratio * length)``
    tokens with the largest draws are masked (True). ``[batch, length]`` bool on ``noise``'s device."""
    _check_ratio(ratio)
    length = noise.shape[1]
    count = math.floor(length * ratio)
    if not 0 < count < length:  # one view would predict nothing
        raise ValueError(f"mask ratio {ratio} masks {count} of {length} tokens; each view needs at least one token "
                         "masked and one kept: use longer windows or a ratio nearer 0.5")
    ranks = noise.argsort(dim=1, descending=True).argsort(dim=1)
    return ranks < count


def token_mask(batch: int, length: int, ratio: float, rule: str = "round", generator: torch.Generator | None = None,
               device: torch.device | str = "cpu") -> torch.Tensor:
    """A ``[batch, length]`` bool mask under ``rule`` (one of :data:`MASK_RULES`), drawn from ``generator`` (CPU)."""
    if rule == "round":
        return random_token_mask(batch, length, ratio, generator, device)
    if rule == "floor":
        return floor_mask(torch.rand(batch, length, generator=generator), ratio).to(device)
    if rule != "keep_floor":
        raise ValueError(f"mask rule {rule!r}; valid: {', '.join(MASK_RULES)}")
    return keep_floor_mask(torch.rand(batch, length, generator=generator), ratio).to(device)


def masked_count(length: int, ratio: float, rule: str = "round") -> int:
    """Tokens per sample that :func:`token_mask` masks."""
    if rule == "keep_floor":
        return length - math.floor(length * (1.0 - ratio))
    if rule == "floor":
        return math.floor(length * ratio)
    return min(max(int(round(ratio * length)), 1), length - 1)


__all__ = ["MASK_RULES", "floor_mask", "keep_floor_mask", "masked_count", "random_token_mask", "token_mask"]
