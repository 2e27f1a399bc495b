"""Writing ``.safetensors`` files with ordinary permissions.

safetensors' ``save_file`` creates its file with mode 600; shards, feature files and ``save_pretrained`` weights
are meant to be shared like the JSON beside them, so they are serialised in memory and written with ``open()``,
which applies the umask like any other file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import torch


def write_safetensors(path: str | Path, tensors: Mapping[str, torch.Tensor],
                      metadata: Mapping[str, str] | None = None) -> Path:
    """Write ``tensors`` (contiguous CPU tensors) with string ``metadata`` to ``path``; returns the path."""
    from safetensors.torch import save

    path = Path(path)
    payload = save(dict(tensors), metadata=dict(metadata) if metadata is not None else None)  # before opening:
    with open(path, "wb") as f:  # a refused tensor leaves no empty file behind
        f.write(payload)
    return path


__all__ = ["write_safetensors"]
