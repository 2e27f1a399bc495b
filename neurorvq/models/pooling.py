"""How a classifier pools per-token features into one vector per window: a registry of pooling options.

Every option maps per-token features ``[B, L, W]`` (L = C*A tokens, channel-major, as the FM emits them) and the
window's channel ids ``[C]`` or ``[B, C]`` (vocabulary ids) to pooled features ``[B, F]``:

- ``mean`` — the official head's pooling (method.md §4.3): the mean over every token, ``F = W``. With a conv
  shared by all channels, it leaves channel identity to the spatial embedding alone, and the mean removes even
  that until training mixes it in; use it for official weights and for parity with the published numbers.
- ``channel_concat`` — for fixed montages: the mean over each channel's patches, the channel vectors
  concatenated in vocabulary order (sorted by channel id, so the order of rows in the batch does not matter,
  but which signal sits under which name does), ``F = num_channels * W``. It needs ``num_channels``.

Other families register their own with :func:`register_pooling`.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from neurorvq.errors import ConfigError


class Pooling(nn.Module):
    """Base class: ``forward(per_token [B, L, W], channel_ids [C] | [B, C]) -> [B, out_features]``."""

    needs_channels = False

    def __init__(self, width: int, num_channels: int | None = None) -> None:
        super().__init__()
        self.width = int(width)
        self.num_channels = None if num_channels is None else int(num_channels)

    @property
    def out_features(self) -> int:
        return self.width

    def forward(self, per_token: torch.Tensor, channel_ids: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError


POOLINGS: dict[str, type[Pooling]] = {}


def register_pooling(name: str) -> Callable[[type[Pooling]], type[Pooling]]:
    """Class decorator adding a :class:`Pooling` subclass to :data:`POOLINGS` under ``name``."""
    def add(cls: type[Pooling]) -> type[Pooling]:
        if name in POOLINGS:
            raise ConfigError(f"pooling '{name}' is already registered ({POOLINGS[name].__name__})")
        POOLINGS[name] = cls
        return cls
    return add


def build_pooling(name: str, width: int, num_channels: int | None = None) -> Pooling:
    """The registered pooling ``name`` for features of ``width``; errors list the valid names."""
    if name not in POOLINGS:
        raise ConfigError(f"unknown pooling {name!r}; valid: {', '.join(sorted(POOLINGS))}")
    cls = POOLINGS[name]
    if cls.needs_channels and not num_channels:
        raise ConfigError(f"pooling '{name}' needs the number of channels of the (fixed) montage: set "
                          "pool_channels (the fine-tuning task takes it from the training windows)")
    return cls(width, num_channels)


@register_pooling("mean")
class MeanPooling(Pooling):
    """Mean over all tokens (the official fine-tuning head): ``[B, L, W] -> [B, W]``."""

    def forward(self, per_token: torch.Tensor, channel_ids: torch.Tensor) -> torch.Tensor:
        return per_token.mean(dim=1)


@register_pooling("channel_concat")
class ChannelConcatPooling(Pooling):
    """Mean over each channel's patches, concatenated in vocabulary order: ``[B, C*A, W] -> [B, C*W]``."""

    needs_channels = True

    @property
    def out_features(self) -> int:
        return self.num_channels * self.width

    def forward(self, per_token: torch.Tensor, channel_ids: torch.Tensor) -> torch.Tensor:
        b, l, w = per_token.shape
        c = channel_ids.shape[-1]
        if c != self.num_channels:
            raise ConfigError(f"channel_concat pooling was built for {self.num_channels} channels but a batch has "
                              f"{c}; it serves fixed montages (use pooling 'mean' for varying channel sets)")
        per_channel = per_token.reshape(b, c, l // c, w).mean(dim=2)  # [B, C, W]
        order = channel_ids.argsort(dim=-1).expand(b, c)  # vocabulary order
        ordered = per_channel.gather(1, order.unsqueeze(-1).expand(b, c, w))
        return ordered.reshape(b, c * w)


__all__ = ["POOLINGS", "ChannelConcatPooling", "MeanPooling", "Pooling", "build_pooling", "register_pooling"]
