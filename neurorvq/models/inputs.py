"""Input checking and patching shared by every model's public entry points."""

from __future__ import annotations

import functools
from typing import NamedTuple, Sequence, Union

import torch

from neurorvq.errors import InputError
from neurorvq.registry import ModalitySpec, resolve_channel_ids
from neurorvq.vocabulary import decode_channel_names

ChannelsLike = Union[Sequence[Union[str, bytes, int]], torch.Tensor]
"""Channel names or vocabulary ids: a list/tuple/1-D numpy array (bytes and numpy scalars are decoded, see
:func:`~neurorvq.vocabulary.decode_channel_names`), or an int tensor of ids ``[C]`` or ``[B, C]``."""


class PreparedInput(NamedTuple):
    """A validated batch cut into patches.

    patches: ``[B, C, A, T]`` float32; spatial_ids: ``[L]`` or ``[B, L]`` rows of the spatial table (channel id
    + spec.spatial_offset, repeated per patch); temporal_ids: ``[L]`` right-aligned rows of the temporal table
    (last patch -> ``max_patches - 1``); L = C*A, channel-major.
    """

    patches: torch.Tensor
    spatial_ids: torch.Tensor
    temporal_ids: torch.Tensor


def channel_id_tensor(spec: ModalitySpec, channels: ChannelsLike, device: torch.device, check: bool) -> torch.Tensor:
    """Channel vocabulary ids as int64 ``[C]`` or ``[B, C]`` on ``device``."""
    if torch.is_tensor(channels):
        ids = channels.to(device=device, dtype=torch.long)
        if check and ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= len(spec.channels)):
            bad = sorted({int(i) for i in ids.flatten().tolist() if not 0 <= int(i) < len(spec.channels)})
            raise InputError(f"channel ids {bad} are outside the '{spec.name}' vocabulary (valid: 0.."
                             f"{len(spec.channels) - 1})")
        return ids
    if isinstance(channels, (str, bytes)):
        raise InputError("channels must be a list of names or ids, one per row of x, not a single string")
    return torch.tensor(resolve_channel_ids(spec, channels), dtype=torch.long, device=device)


def check_finite(x: torch.Tensor, channels: ChannelsLike | None = None) -> None:
    """Raise :class:`InputError` naming the first sample and channel holding NaN or Inf."""
    bad = ~torch.isfinite(x)
    if bool(bad.any()):
        b, c = (int(v) for v in bad.any(dim=-1).nonzero()[0])
        name = ""
        if channels is not None and not torch.is_tensor(channels):
            name = f" ('{decode_channel_names(channels)[c]}')"
        n_bad = int(bad[b, c].sum())
        raise InputError(f"x holds NaN/Inf at sample {b}, channel {c}{name} ({n_bad} values); clean or reject "
                         "that window before the model (the data pipeline rejects such windows)")


def check_token_mask(mask: torch.Tensor, batch: int, tokens: int) -> None:
    """A pretraining mask must be bool ``[batch, tokens]`` (tokens = channels x patches, channel-major)."""
    if mask.shape != (batch, tokens) or mask.dtype != torch.bool:
        raise InputError(f"mask must be bool [batch, channels*patches] = [{batch}, {tokens}]; got {mask.dtype} "
                         f"{tuple(mask.shape)}")


def prepare_input(spec: ModalitySpec, x: torch.Tensor, channels: ChannelsLike, *, check: bool = True,
                  crop: bool = False) -> PreparedInput:
    """Check ``x [batch, channels, time]`` against ``spec`` and cut it into patches.

    With ``check=False`` only the work needed to run is done (no device synchronisation), for training
    paths whose data pipeline has already validated the batch.
    """
    if check:
        if not torch.is_tensor(x) or x.ndim != 3:
            shape = tuple(x.shape) if torch.is_tensor(x) else type(x).__name__
            raise InputError(f"x must be a tensor [batch, channels, time]; got {shape}")
        if not x.is_floating_point():
            raise InputError(f"x must be floating point (signal in {spec.unit}); got {x.dtype}")
    b, c, n = x.shape
    ids = channel_id_tensor(spec, channels, x.device, check) if check else None
    t = spec.patch_length
    if check:
        if ids.shape[-1] != c or (ids.ndim == 2 and ids.shape[0] != b):
            raise InputError(f"x has {c} channels (shape {tuple(x.shape)}) but {ids.shape[-1]} channel names/ids "
                             f"were given ({tuple(ids.shape)}); give one per row of x")
        if c == 0 or b == 0:
            raise InputError(f"x has shape {tuple(x.shape)}: need at least one sample and one channel")
        if n < t:
            raise InputError(f"signal is {n} samples long, shorter than one {t}-sample patch "
                             f"({spec.patch_seconds:g} s at {spec.sampling_rate:g} Hz)")
        if n % t and not crop:
            raise InputError(
                f"signal length {n} samples is not a whole number of {t}-sample patches ({spec.patch_seconds:g} s "
                f"at {spec.sampling_rate:g} Hz): cut windows of a multiple of {t} samples (e.g. {n - n % t} or "
                f"{n - n % t + t}), or pass crop=True to drop the last {n % t} samples. Never zero-pad inside a "
                "sample: the encoder's GroupNorm spans all its tokens")
    a = n // t
    if check and a > spec.max_patches:
        raise InputError(f"{a} patches per channel exceed the temporal embedding's max_patches="
                         f"{spec.max_patches} (at most {spec.max_patches * t} samples, "
                         f"{spec.max_patches * spec.patch_seconds:g} s); cut shorter windows")
    if check:
        check_finite(x, channels)
    patches = x[..., : a * t].reshape(b, c, a, t).float()
    spatial, temporal = embedding_ids(spec, channels, a, x.device)
    return PreparedInput(patches, spatial, temporal)


def embedding_ids(spec: ModalitySpec, channels: ChannelsLike, a: int,
                  device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Spatial ids ``[C*A]`` (or ``[B, C*A]`` for an id tensor ``[B, C]``) and right-aligned temporal ids
    ``[C*A]`` of ``channels`` with ``a`` patches each, channel-major. Name lists are resolved without checks."""
    if torch.is_tensor(channels):
        ids = channels.to(device=device, dtype=torch.long)
        spatial = (ids + spec.spatial_offset).repeat_interleave(a, dim=-1)
        return spatial, (spec.max_patches - a + torch.arange(a, device=device)).repeat(ids.shape[-1])
    if isinstance(channels, (str, bytes)):
        raise InputError("channels must be a list of names or ids, one per channel, not a single string")
    # the common case, cached: a training step copies nothing to the device
    key = tuple(channels)
    try:
        return _embedding_ids(spec, key, a, device)
    except TypeError:  # an unhashable entry (a list, an array): name it, else let the TypeError through
        decode_channel_names(key)
        raise


@functools.lru_cache(maxsize=256)
def _embedding_ids(spec: ModalitySpec, channels: tuple, a: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Spatial ``[C*A]`` and temporal ``[C*A]`` ids of a channel list (read-only tensors, never modified).

    Plain names and ids are the key as given (a hit costs one lookup); any other form (bytes, numpy scalars) is
    decoded on its first miss and shares the tensors of its plain form.
    """
    plain = tuple(decode_channel_names(channels))
    if plain != channels:
        return _embedding_ids(spec, plain, a, device)
    ids = torch.tensor(resolve_channel_ids(spec, channels), dtype=torch.long)
    spatial = (ids + spec.spatial_offset).repeat_interleave(a)
    temporal = (spec.max_patches - a + torch.arange(a)).repeat(len(channels))
    return spatial.to(device), temporal.to(device)
