"""Fourier targets, spectrum-to-signal reconstruction and the tokenizer's spectral losses (method.md §3.6-3.7).

Conventions: a full complex FFT of ``patch_length`` bins per patch (not an rfft, quirk Q17); log-amplitude
``log(1 + |X|)`` standardised per sample over all channels, patches and bins with the unbiased variance
clamped at 1e-8. LaBraM's VQ-NSP (and BrainRVQ's frequency domain) regress the raw |FFT| and the wrapped angle
instead, each z-scored per sample (:func:`spectrum_targets`, families.md §A.3.5) and inverted to a signal by
:func:`signal_from_spectrum_targets` (§B.6). BrainRVQ's time domain regresses each patch's z-scored waveform
(:func:`waveform_targets`, inverted by :func:`signal_from_waveform_targets`).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F

VAR_FLOOR = 1e-8


class AmplitudeStats(NamedTuple):
    """Per-sample statistics of the input's log-amplitude spectrum, needed to decode tokens (quirk Q8).

    ``mean`` and ``std`` are ``[batch]`` float32, in units of ``log(1 + |FFT|)`` of the signal's unit.
    """

    mean: torch.Tensor
    std: torch.Tensor


class FourierTargets(NamedTuple):
    """Targets of the three Fourier heads, each ``[batch, channels, n_patches, patch_length]``."""

    log_amplitude_std: torch.Tensor
    sin_phase: torch.Tensor
    cos_phase: torch.Tensor
    stats: AmplitudeStats


def _sample_moments(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(mean, std)`` of each sample (axis 0) over all its other axes, keeping dims (unbiased variance, floored)."""
    dims = tuple(range(1, x.ndim))
    mean = x.mean(dim=dims, keepdim=True)
    std = x.var(dim=dims, keepdim=True, correction=1).clamp_min(VAR_FLOOR).sqrt()
    return mean, std


def per_sample_standardize(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Standardise each sample (axis 0) over all its other axes; returns ``(z, mean, std)`` keeping dims."""
    mean, std = _sample_moments(x)
    return (x - mean) / std, mean, std


def _log_amplitude(patches: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    spectrum = torch.fft.fft(patches.float(), dim=-1)
    return torch.log1p(spectrum.abs()), spectrum


def log_amplitude_stats(patches: torch.Tensor) -> AmplitudeStats:
    """The :class:`AmplitudeStats` of ``patches [batch, channels, n_patches, patch_length]`` alone (what decoding
    needs; the same values :func:`fourier_targets` gives, without computing the phase targets)."""
    mean, std = _sample_moments(_log_amplitude(patches)[0])
    return AmplitudeStats(mean.flatten(), std.flatten())


def fourier_targets(patches: torch.Tensor) -> FourierTargets:
    """``patches [batch, channels, n_patches, patch_length]`` (float32) -> standardised log-amplitude, sin/cos phase."""
    log_amp, spectrum = _log_amplitude(patches)
    log_amp_std, mean, std = per_sample_standardize(log_amp)
    phase = torch.angle(spectrum)
    return FourierTargets(log_amp_std, torch.sin(phase), torch.cos(phase),
                          AmplitudeStats(mean.flatten(), std.flatten()))


def amplitude_from_log_std(log_amp_std: torch.Tensor, stats: AmplitudeStats) -> torch.Tensor:
    """Undo the standardisation and the log: ``expm1(pred * std + mean)``; ``log_amp_std [batch, ...]``."""
    shape = (-1,) + (1,) * (log_amp_std.ndim - 1)
    return torch.expm1(log_amp_std * stats.std.reshape(shape) + stats.mean.reshape(shape))


def spectrum_to_signal(amplitude: torch.Tensor, sin_phase: torch.Tensor, cos_phase: torch.Tensor) -> torch.Tensor:
    """Real part of the inverse FFT of ``amplitude * (cos + i sin)`` along the last axis (sin/cos used as
    predicted, not renormalised: quirk Q16)."""
    spectrum = torch.complex(amplitude * cos_phase, amplitude * sin_phase)
    return torch.fft.ifft(spectrum, dim=-1).real


def phase_loss(pred_sin: torch.Tensor, pred_cos: torch.Tensor, target_sin: torch.Tensor, target_cos: torch.Tensor,
               circle_weight: float = 0.1) -> torch.Tensor:
    """Unit-circle phase loss: ``1 - mean cos_sim((cos, sin)_pred, (cos, sin)_target)`` plus
    ``circle_weight * mean((sin^2 + cos^2 - 1)^2)`` over the predictions (λ_circle, quirk Q5)."""
    pred = torch.stack((pred_cos, pred_sin), dim=-1)
    target = torch.stack((target_cos, target_sin), dim=-1)
    similarity = F.cosine_similarity(pred, target, dim=-1, eps=1e-8)
    circle = (pred_sin.square() + pred_cos.square() - 1.0).square().mean()
    return 1.0 - similarity.mean() + circle_weight * circle


# ------------------------------------------------------------------------------------ raw amplitude / angle
# LaBraM's VQ-NSP and BrainRVQ's frequency domain (families.md §A.3.5, §B.4): |FFT| (no log) and the wrapped angle,
# each z-scored per sample; decoding needs the four statistics back (§B.6).


class SpectrumStats(NamedTuple):
    """Per-sample statistics of the |FFT| and angle targets, each ``[batch]`` float32 (|FFT| in the model's input
    unit; angle in radians)."""

    amplitude_mean: torch.Tensor
    amplitude_std: torch.Tensor
    angle_mean: torch.Tensor
    angle_std: torch.Tensor


class SpectrumTargets(NamedTuple):
    """Standardised |FFT| and angle, each ``[batch, channels, n_patches, patch_length]``, and their statistics."""

    amplitude: torch.Tensor
    angle: torch.Tensor
    stats: SpectrumStats


def real_fft_angle(spectrum: torch.Tensor) -> torch.Tensor:
    """``angle(spectrum)`` of the FFT of a real patch, with the DC and Nyquist bins set to exactly 0 or +pi by the
    sign of their real part: their imaginary part is 0 in exact arithmetic, and an FFT that leaves -0.0 or a tiny
    negative value there would give -pi (a 2 pi jump; the official CPU run gives +0.0, hence 0 or +pi)."""
    angle = torch.angle(spectrum)
    n = spectrum.shape[-1]
    bins = [0] + ([n // 2] if n % 2 == 0 else [])
    real = spectrum.real[..., bins]
    angle[..., bins] = torch.where(real < 0, torch.full_like(real, math.pi), torch.zeros_like(real))
    return angle


def _moments(x: torch.Tensor, var_floor: float | None) -> tuple[torch.Tensor, torch.Tensor]:
    dims = tuple(range(1, x.ndim))
    mean = x.mean(dim=dims, keepdim=True)
    if var_floor is None:  # the official torch.std: unbiased, no floor (a flat sample gives 0/0 = NaN)
        return mean, x.std(dim=dims, keepdim=True)
    return mean, x.var(dim=dims, keepdim=True, correction=1).clamp_min(var_floor).sqrt()


def spectrum_targets(patches: torch.Tensor, var_floor: float | None = VAR_FLOOR) -> SpectrumTargets:
    """``patches [batch, channels, n_patches, patch_length]`` -> |FFT| and angle of every patch (full complex FFT,
    all bins), each standardised per sample over (channels, patches, bins) with the unbiased std.

    ``var_floor``: lower bound of the variance (a flat sample gives finite targets); ``None`` reproduces the
    official code, whose division has no epsilon (NaN for a flat sample; families.md BQ3/LQ3)."""
    spectrum = torch.fft.fft(patches.float(), dim=-1)
    amplitude, angle = spectrum.abs(), real_fft_angle(spectrum)
    amp_mean, amp_std = _moments(amplitude, var_floor)
    ang_mean, ang_std = _moments(angle, var_floor)
    stats = SpectrumStats(amp_mean.flatten(), amp_std.flatten(), ang_mean.flatten(), ang_std.flatten())
    return SpectrumTargets((amplitude - amp_mean) / amp_std, (angle - ang_mean) / ang_std, stats)


def signal_from_spectrum_targets(amplitude: torch.Tensor, angle: torch.Tensor, stats: SpectrumStats) -> torch.Tensor:
    """The inverse of :func:`spectrum_targets` (families.md §B.6, an inference: the official code has none).

    ``amplitude``, ``angle`` ``[batch, ..., patch_length]`` standardised (predicted or true) -> patches of the same
    shape: un-standardise with ``stats``, clamp the amplitude at >= 0, ``X = A exp(i phi)``, real part of the
    inverse FFT per patch. Computed in float64 (returned as float32): the true targets give the patches back to
    float32 rounding."""
    shape = (-1,) + (1,) * (amplitude.ndim - 1)
    mean, std = stats.amplitude_mean.double().reshape(shape), stats.amplitude_std.double().reshape(shape)
    amp = amplitude.double() * std + mean
    phase = angle.double() * stats.angle_std.double().reshape(shape) + stats.angle_mean.double().reshape(shape)
    spectrum = torch.polar(amp.clamp_min(0.0), phase)
    return torch.fft.ifft(spectrum, dim=-1).real.float()


# ------------------------------------------------------------------------------------ waveform (BrainRVQ's time domain)
WAVEFORM_EPS = 1e-6
"""Added to each patch's std in the waveform z-score (the official formula; families.md §A.3.5)."""


class WaveformStats(NamedTuple):
    """Per-patch statistics of the input waveform, each ``[batch, channels, n_patches]`` float32 in the model's input
    unit: ``mean`` and the unbiased ``std`` over the patch's samples."""

    mean: torch.Tensor
    std: torch.Tensor


def waveform_targets(patches: torch.Tensor) -> tuple[torch.Tensor, WaveformStats]:
    """``patches [batch, channels, n_patches, patch_length]`` -> each patch z-scored over its own samples,
    ``(x - mean) / (std + 1e-6)`` with the unbiased std (BrainRVQ's time target, families.md §A.3.5), and the
    :class:`WaveformStats`. A flat patch gives zeros (the epsilon), never NaN."""
    x = patches.float()
    mean, std = x.mean(dim=-1, keepdim=True), x.std(dim=-1, keepdim=True)
    return (x - mean) / (std + WAVEFORM_EPS), WaveformStats(mean.squeeze(-1), std.squeeze(-1))


def signal_from_waveform_targets(waveform: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`waveform_targets`: ``waveform [..., patch_length]`` (z-scored, predicted or true) times
    ``std + 1e-6`` plus ``mean`` (each ``[...]``, one value per patch), computed in float64, returned as float32."""
    scale = (std.double() + WAVEFORM_EPS).unsqueeze(-1)
    return (waveform.double() * scale + mean.double().unsqueeze(-1)).float()
