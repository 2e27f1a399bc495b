"""Token masks for masked-token pretraining (method.md §4.2)."""

from __future__ import annotations

import torch


def random_token_mask(batch: int, length: int, ratio: float, generator: torch.Generator | None = None,
                      device: torch.device | str = "cpu") -> torch.Tensor:
    """``[batch, length]`` bool, True = masked: exactly ``round(ratio * length)`` tokens per sample, chosen
    uniformly at random (LaBraM's scheme; with the symmetric view every token is predicted once per step).

    Deterministic for a given ``generator`` state (a CPU generator, so masks do not depend on the device).
    """
    if not 0.0 < ratio < 1.0:
        raise ValueError(f"mask ratio {ratio} must be in (0, 1)")
    count = int(round(ratio * length))
    count = min(max(count, 1), length - 1)
    scores = torch.rand(batch, length, generator=generator)
    ranks = scores.argsort(dim=1).argsort(dim=1)
    return (ranks < count).to(device)
