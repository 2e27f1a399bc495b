"""Multi-scale temporal encoder: one conv stack per frequency scale (method.md §3.1)."""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from neurorvq.families.neurorvq import TemporalBranch


class TemporalConvBranch(nn.Module):
    """``[Conv(1 x k) -> GroupNorm -> GELU -> AvgPool(1 x p)]`` per stage, along time only.

    Works on a one-channel image per sample, ``[batch, 1, tokens, samples]``; GroupNorm statistics span
    every token of the sample (method.md quirk Q1), which is why tokens are never split into separate
    images and a sample is never zero-padded.
    """

    def __init__(self, branch: TemporalBranch, conv_channels: int, groups: int) -> None:
        super().__init__()
        self.branch = branch
        in_ch = 1
        convs, norms = [], []
        for k, p, s in zip(branch.kernel_sizes, branch.paddings, branch.strides):
            convs.append(nn.Conv2d(in_ch, conv_channels, kernel_size=(1, k), stride=(1, s), padding=(0, p)))
            norms.append(nn.GroupNorm(groups, conv_channels))
            in_ch = conv_channels
        self.convs = nn.ModuleList(convs)
        self.norms = nn.ModuleList(norms)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """``[batch, 1, tokens, samples]`` -> ``[batch, tokens, steps * conv_channels]`` (time-major)."""
        h = image
        for conv, norm, pool in zip(self.convs, self.norms, self.branch.pools):
            h = F.gelu(norm(conv(h)))
            h = F.avg_pool2d(h, kernel_size=(1, pool), stride=(1, pool))
        # [B, ch, L, t] -> [B, L, t, ch] -> [B, L, t*ch]: feature index t*ch + c, as the checkpoints expect (Q2).
        return h.permute(0, 2, 3, 1).flatten(2)


class MultiScaleTemporalConv(nn.Module):
    """S parallel :class:`TemporalConvBranch` es over the same patches; branches do not share weights."""

    def __init__(self, branches: Sequence[TemporalBranch], conv_channels: int = 8, groups: int = 4) -> None:
        super().__init__()
        self.branches = nn.ModuleList(TemporalConvBranch(b, conv_channels, groups) for b in branches)

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        """``patches [batch, channels, n_patches, patch_length]`` -> ``[branch, batch, channels*n_patches, D]``.

        Tokens are channel-major (token = channel * n_patches + patch).
        """
        b, c, a, t = patches.shape
        image = patches.reshape(b, 1, c * a, t)
        return torch.stack([branch(image) for branch in self.branches])
