"""What the family fixture tests share: where the official fixtures are (``../shared/fixtures/<name>``, or
``$NEURORVQ_SHARED/fixtures/<name>``; a test skips, naming the path, where they are absent), the README's bound
on a tensor (max abs difference within ``rel`` x the expected tensor's own scale), and the official-size temporal
convolution check both LaBraM-style fixtures (VQ-NSP, DD-RVQ) carry."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

SHARED = Path(os.environ.get("NEURORVQ_SHARED", Path(__file__).resolve().parents[2].parent / "shared"))


def fixture_folder(name: str, label: str, required: str | None = None) -> Path:
    """``SHARED/fixtures/<name>``, or a skip naming it when it (or its file ``required``) is absent."""
    folder = SHARED / "fixtures" / name
    if not (folder / required if required else folder).exists():
        pytest.skip(f"{label} fixtures not found at {folder} (set NEURORVQ_SHARED to the folder holding fixtures/)")
    return folder


def within(got: torch.Tensor, expected: torch.Tensor, rel: float = 1e-4) -> float:
    """Max abs difference, asserted within ``rel`` x the tensor's own scale (the fixture README's bound)."""
    assert got.shape == expected.shape, (tuple(got.shape), tuple(expected.shape))
    diff = (got.double() - expected.double()).abs().max().item()
    scale = expected.double().abs().max().item()
    assert diff <= rel * scale, f"max abs diff {diff:.3e} > {rel} x {scale:.3e}"
    return diff


def check_official_size_temporal_conv(fixtures: Path, channels: int) -> None:
    """LaBraM's temporal convolution at the official size (8 channels, 4 groups) loaded from the fixture's
    ``conv_official_size_model.safetensors`` (official ``conv{stage}`` / ``norm{stage}``, 1-based) reproduces
    ``conv_official_size_expected.safetensors`` on the fixture's ``x`` seen as ``[2, 1, channels, 200]``."""
    from safetensors.torch import load_file

    from neurorvq.families.labram import LABRAM_CONV
    from neurorvq.nn.temporal import TemporalConvBranch

    state = load_file(str(fixtures / "conv_official_size_model.safetensors"))
    expected = load_file(str(fixtures / "conv_official_size_expected.safetensors"))["conv_official_size.output"]
    x = load_file(str(fixtures / "inputs.safetensors"))["x"]
    conv = TemporalConvBranch(LABRAM_CONV, conv_channels=8, groups=4)
    mapped = {}
    for key, value in state.items():
        kind, stage, p = key[:4], int(key[4]) - 1, key.split(".")[1]
        mapped[f"{kind}s.{stage}.{p}"] = value
    conv.load_state_dict(mapped)
    with torch.no_grad():
        got = conv(x.reshape(2, 1, channels, 200))
    within(got, expected)


def check_finetune_forward(model, x_uv: torch.Tensor, channels: list[str], expected: dict[str, torch.Tensor]) -> None:
    """A LaBraM-style fine-tuning FM's tokens, pooled features, ``fc_norm`` output and logits on ``x_uv`` equal the
    fixture's ``finetune.tokens`` / ``.pooled`` / ``.fc_norm`` / ``.logits`` (LaBraM's and BrainRVQ's FM fixtures)."""
    with torch.no_grad():
        tokens = model.encode(x_uv, channels)
        pooled = model.classifier_features(x_uv, channels)
        normed = model.fc_norm(pooled)
        logits = model(x_uv, channels)
    within(tokens, expected["finetune.tokens"])
    within(pooled, expected["finetune.pooled"])
    within(normed, expected["finetune.fc_norm"])
    within(logits, expected["finetune.logits"])
