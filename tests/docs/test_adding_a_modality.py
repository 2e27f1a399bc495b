"""Runs the end-to-end example of docs/adding-a-modality.md exactly as written."""

from __future__ import annotations

import re
from pathlib import Path

import neurorvq.registry

DOC = Path(__file__).resolve().parents[2] / "docs" / "adding-a-modality.md"
FENCE = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.DOTALL | re.MULTILINE)


def python_blocks(text: str) -> list[str]:
    return FENCE.findall(text)


def test_guide_has_exactly_one_python_block() -> None:
    assert DOC.is_file(), f"{DOC} is missing"
    blocks = python_blocks(DOC.read_text(encoding="utf-8"))
    assert len(blocks) == 1, f"expected exactly one ```python block in {DOC.name}, found {len(blocks)}"
    assert "register_modality" in blocks[0] and "from_pretrained" in blocks[0]


def test_guide_example_runs() -> None:
    (code,) = python_blocks(DOC.read_text(encoding="utf-8"))
    assert "ppg" not in neurorvq.registry.list_modalities(), "'ppg' is already registered before the example"
    namespace: dict = {"__name__": "adding_a_modality_example"}
    try:
        exec(compile(code, str(DOC), "exec"), namespace)
        assert "ppg" in neurorvq.registry.list_modalities()
        assert namespace["tokens"].shape == (2, 3, 8, 24)
        assert namespace["recon"].shape == namespace["x"].shape
    finally:
        neurorvq.registry.unregister_modality("ppg")
    assert "ppg" not in neurorvq.registry.list_modalities()
