"""Fourier targets, reconstruction and the unit-circle phase loss."""

from __future__ import annotations

import math

import torch

from neurorvq.nn.spectral import (
    amplitude_from_log_std,
    fourier_targets,
    per_sample_standardize,
    phase_loss,
    spectrum_to_signal,
)


def test_phase_loss_zero_for_equal_phases():
    phi = torch.rand(2, 5, 200) * 2 * math.pi - math.pi
    assert phase_loss(torch.sin(phi), torch.cos(phi), torch.sin(phi), torch.cos(phi)).abs() < 1e-6


def test_phase_loss_circle_term():
    phi = torch.rand(2, 5, 200) * 2 * math.pi
    half_sin, half_cos = 0.5 * torch.sin(phi), 0.5 * torch.cos(phi)  # right direction, radius 0.5
    loss = phase_loss(half_sin, half_cos, torch.sin(phi), torch.cos(phi), circle_weight=0.1)
    assert torch.allclose(loss, torch.tensor(0.1 * (0.25 - 1) ** 2), atol=1e-6)
    opposite = phase_loss(-torch.sin(phi), -torch.cos(phi), torch.sin(phi), torch.cos(phi), circle_weight=0.4)
    assert torch.allclose(opposite, torch.tensor(2.0), atol=1e-6)  # cos-sim -1, on the circle


def test_targets_invert_to_signal():
    x = torch.randn(2, 3, 4, 200) * 30
    targets = fourier_targets(x)
    amplitude = amplitude_from_log_std(targets.log_amplitude_std, targets.stats)
    rebuilt = spectrum_to_signal(amplitude, targets.sin_phase, targets.cos_phase)
    assert torch.allclose(rebuilt, x, atol=1e-3)
    assert targets.log_amplitude_std.shape == x.shape and targets.stats.mean.shape == (2,)


def test_standardize_is_per_sample_unbiased():
    x = torch.randn(3, 4, 50) * torch.tensor([1.0, 5.0, 0.1]).reshape(3, 1, 1) + 7
    z, mean, std = per_sample_standardize(x)
    assert torch.allclose(z.mean(dim=(1, 2)), torch.zeros(3), atol=1e-5)
    assert torch.allclose(z.reshape(3, -1).std(dim=1, correction=1), torch.ones(3), atol=1e-5)
    flat = torch.zeros(1, 2, 10)
    assert torch.isfinite(per_sample_standardize(flat)[0]).all()  # variance floor, no division by zero


def test_the_amplitude_statistics_alone_equal_those_of_the_full_targets():
    from neurorvq.nn.spectral import fourier_targets, log_amplitude_stats

    patches = 30.0 * torch.randn(3, 4, 5, 200, generator=torch.Generator().manual_seed(0))
    full, alone = fourier_targets(patches).stats, log_amplitude_stats(patches)
    assert torch.equal(full.mean, alone.mean) and torch.equal(full.std, alone.std)
