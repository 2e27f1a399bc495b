"""BrainRVQ's physiological importance score of each patch (families.md §A.5.1).

Five features per patch, each min-max normalised per sample over its L patches, then weighted and summed into a
score in [0, 1]. Patches are 1-D signals; the spectrum uses the patch's own one-sided FFT, so with 200-sample
patches at 200 Hz the bins are 0..100 Hz in 1 Hz steps (the official setting; ``sampling_rate`` moves the band edges
for other rates). Every feature is scale-free up to its small epsilons, so µV and µV/100 give the same score to
float32 precision (the official code receives µV/100).
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import torch

from neurorvq.errors import InputError

# Weights of the normalised features, in FEATURE_NAMES order (they sum to 1).
FEATURE_WEIGHTS = (0.30, 0.25, 0.20, 0.15, 0.10)
FEATURE_NAMES = ("neural_ratio", "clean_score", "complexity", "irregularity", "mobility")
NEURAL_BAND_HZ = (4.0, 30.0)  # theta + alpha + beta, [low, high)
ARTEFACT_BELOW_HZ = 2.0  # drift
ARTEFACT_FROM_HZ = 45.0  # line noise, muscle
EPS = 1e-8


class PatchFeatures(NamedTuple):
    """Raw per-patch features, each ``[batch, L]`` float32 (L = channels x patches, channel-major).

    ``var`` and ``var_dx`` include their +1e-8; ``var_ddx`` has none (as in the official code); ``activity`` =
    log(var) is computed by the official code and unused by the score."""

    neural_ratio: torch.Tensor
    clean_score: torch.Tensor
    complexity: torch.Tensor
    irregularity: torch.Tensor
    mobility: torch.Tensor
    activity: torch.Tensor
    var: torch.Tensor
    var_dx: torch.Tensor
    var_ddx: torch.Tensor


def check_patches(x_patches: torch.Tensor, finite: bool = True) -> None:
    """Raise :class:`InputError` unless ``x_patches`` is ``[batch, channels, patches, samples]`` with at least two
    tokens per sample (the score is standardised over them) and, with ``finite``, no NaN/inf value."""
    if x_patches.dim() != 4:
        raise InputError(f"x_patches has shape {list(x_patches.shape)}; expected [batch, channels, patches, samples]"
                         ": reshape a [B, C, T] window with x.reshape(B, C, T // P, P)")
    b, n, a, p = x_patches.shape
    if n * a < 2 or p < 3:
        raise InputError(f"x_patches has {n} channel(s) x {a} patch(es) of {p} samples; the importance mask needs "
                         "at least 2 tokens per sample and 3 samples per patch")
    bad = ~torch.isfinite(x_patches) if finite else None
    if bad is not None and bad.any():
        sample, channel, patch, _ = (int(i) for i in bad.nonzero()[0])
        raise InputError(f"x_patches has NaN/inf values (first: sample {sample}, channel {channel}, patch {patch}); "
                         "the importance score cannot rank them (the official code fails inside torch.multinomial): "
                         "drop or zero non-finite windows before masking")


def patch_features(x_patches: torch.Tensor, sampling_rate: float = 200.0) -> PatchFeatures:
    """The raw features of every patch.

    Args:
        x_patches: ``[batch, channels, patches, samples]`` signal (any unit; float32 arithmetic).
        sampling_rate: Hz; places the band edges on the FFT bins.

    Returns:
        :class:`PatchFeatures`, each ``[batch, channels * patches]`` (token k = channel * patches + patch).
    """
    b, n, a, p = x_patches.shape
    x = x_patches.float().reshape(b, n * a, p)
    power = torch.fft.rfft(x, dim=-1).abs() ** 2  # [B, L, P//2 + 1]
    freqs = torch.fft.rfftfreq(p, d=1.0 / sampling_rate).to(x.device)
    total = power.sum(-1) + EPS
    neural_bins = (freqs >= NEURAL_BAND_HZ[0]) & (freqs < NEURAL_BAND_HZ[1])
    artefact_bins = (freqs < ARTEFACT_BELOW_HZ) | (freqs >= ARTEFACT_FROM_HZ)
    neural_ratio = power[..., neural_bins].sum(-1) / total
    clean_score = 1.0 - power[..., artefact_bins].sum(-1) / total

    dx = x.diff(dim=-1)
    ddx = dx.diff(dim=-1)
    var = x.var(dim=-1) + EPS
    var_dx = dx.var(dim=-1) + EPS
    var_ddx = ddx.var(dim=-1)
    mobility = (var_dx / var).sqrt()
    complexity = (var_ddx / var_dx).sqrt() / (mobility + EPS)
    abs_dx = dx.abs()
    irregularity = abs_dx.diff(dim=-1).abs().mean(-1) / (abs_dx.mean(-1) + EPS)
    return PatchFeatures(neural_ratio, clean_score, complexity, irregularity, mobility, var.log(), var, var_dx,
                         var_ddx)


def flat_patches(x_patches: torch.Tensor) -> torch.Tensor:
    """``[batch, channels * patches]`` bool: True where a patch is exactly constant (a dead or zero-padded
    channel)."""
    b, n, a, _ = x_patches.shape
    flat = x_patches.amax(-1) == x_patches.amin(-1)
    return flat.reshape(b, n * a)


def minmax_per_sample(values: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """``(v - min) / (max - min + 1e-8)`` over each row of ``values [batch, L]``; with ``valid`` (bool, same shape)
    the min and max are taken over the valid entries only and the others become 0."""
    if valid is None:
        low = values.amin(dim=1, keepdim=True)
        high = values.amax(dim=1, keepdim=True)
        return (values - low) / (high - low + EPS)
    low = values.masked_fill(~valid, float("inf")).amin(dim=1, keepdim=True)
    high = values.masked_fill(~valid, float("-inf")).amax(dim=1, keepdim=True)
    normalised = (values - low) / (high - low + EPS)
    return normalised.masked_fill(~valid, 0.0)  # also clears the NaN of a row with no valid entry


def importance_score(x_patches: torch.Tensor, sampling_rate: float = 200.0, parity: bool = False,
                     features: PatchFeatures | None = None) -> torch.Tensor:
    """Physiological importance of each patch, ``[batch, channels * patches]`` float32 in [0, 1].

    Score = 0.30 n(neural ratio) + 0.25 n(clean score) + 0.20 n(complexity) + 0.15 n(irregularity)
    + 0.10 n(mobility), n = min-max over the sample's patches.

    Flat (exactly constant) patches: the official code (``parity=True``) scores them from its epsilons as any
    patch (a zero patch has neural ratio 0, clean score 1, complexity 0, irregularity 0, mobility 1: a middling
    score, so a dead channel is masked about as often as real signal, and it stretches the others' min-max). The
    default leaves them out of the min-max and scores them 0, so they are the least likely to be masked; a
    warning names their channels. NaN/inf input is an :class:`InputError` in both modes.

    Args:
        x_patches: ``[batch, channels, patches, samples]``.
        sampling_rate: Hz (200 in the official code).
        parity: reproduce the official handling of flat patches.
        features: precomputed :func:`patch_features` of ``x_patches`` (saves recomputing them).
    """
    check_patches(x_patches)
    feats = patch_features(x_patches, sampling_rate) if features is None else features
    valid = None
    flat = flat_patches(x_patches)
    if flat.any():
        channels = sorted({int(k) // x_patches.shape[2] for k in flat.nonzero()[:, 1]})
        effect = "scored as the official code does" if parity else "scored 0 and left out of the normalisation"
        warnings.warn(f"importance score: channel(s) {channels} have flat (constant) patches; they are {effect}",
                      stacklevel=2)
        valid = None if parity else ~flat
    score = torch.zeros_like(feats.neural_ratio)
    for weight, name in zip(FEATURE_WEIGHTS, FEATURE_NAMES):
        score = score + weight * minmax_per_sample(getattr(feats, name), valid)
    return score


__all__ = ["FEATURE_NAMES", "FEATURE_WEIGHTS", "PatchFeatures", "check_patches", "flat_patches", "importance_score",
           "minmax_per_sample", "patch_features"]
