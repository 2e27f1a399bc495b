"""What the family fixture tests share: where the official fixtures are (``../shared/fixtures/<name>``, or
``$NEURORVQ_SHARED/fixtures/<name>``; a test skips, naming the path, where they are absent) and the README's bound
on a tensor (max abs difference within ``rel`` x the expected tensor's own scale)."""

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
