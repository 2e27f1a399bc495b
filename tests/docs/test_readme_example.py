"""The README's Python example runs as written (random weights; the commented lines need downloads)."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_python_example_runs(capsys) -> None:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Python example"):]
    (code,) = re.findall(r"^```python\n(.*?)^```", section, re.DOTALL | re.MULTILINE)[:1]
    namespace: dict = {}
    exec(compile(code, str(README), "exec"), namespace)
    assert "torch.Size([2, 4, 8, 12])" in capsys.readouterr().out
    assert namespace["encoded"].ids.shape == (2, 32, 12) and namespace["reconstruction"].shape == (2, 3, 800)
