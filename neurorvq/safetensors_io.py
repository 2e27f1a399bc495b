"""Writing ``.safetensors`` files with ordinary permissions.

safetensors' ``save_file`` creates its file with mode 600; shards, feature files and ``save_pretrained`` weights
are meant to be shared like the JSON beside them, so they are serialised in memory and written with ``open()``,
which applies the umask like any other file, through a temporary name renamed when complete
(:func:`neurorvq.file_io.write_atomic`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import torch


def write_safetensors(path: str | Path, tensors: Mapping[str, torch.Tensor],
                      metadata: Mapping[str, str] | None = None) -> Path:
    """Write ``tensors`` (contiguous CPU tensors) with string ``metadata`` to ``path``; returns the path."""
    from safetensors.torch import save

    from neurorvq.file_io import write_atomic

    payload = save(dict(tensors), metadata=dict(metadata) if metadata is not None else None)  # a refused tensor
    return write_atomic(path, payload)  # leaves no file; a failed write none under the final name


__all__ = ["write_safetensors"]
