"""Reading and writing recipes, checkpoints and weight files so that damage is named and never left behind.

Reading: a damaged or incomplete file (a write interrupted by a killed process or a full disk, a truncated copy)
otherwise fails deep inside PyYAML, PyTorch or safetensors with a message that names neither the file nor a
remedy. These readers turn those failures into the project's errors (:class:`~neurorvq.errors.ConfigError` for
recipes, :class:`~neurorvq.errors.CheckpointError` for weights), which the CLI prints as one message.

Writing: :func:`write_atomic` goes through a temporary name renamed when complete, so a failed write leaves no
file under the final name. :func:`write_safetensors` uses it: safetensors' own ``save_file`` creates its file with
mode 600, while shards, feature files and ``save_pretrained`` weights are meant to be shared like the JSON beside
them (``open()`` applies the umask).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from neurorvq.errors import CheckpointError, ConfigError

DAMAGED = ("the file is damaged or incomplete (for example a write interrupted by a killed process or a full "
           "disk, or a truncated copy)")


def read_yaml(path: str | Path, what: str = "recipe") -> Any:
    """The YAML document in ``path``; a syntax error names the file, line and column (1-based)."""
    import yaml

    path = Path(path)
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ConfigError(f"{what} '{path}'{where}: YAML syntax error ({problem}); fix the file there") from None
    except UnicodeDecodeError as error:
        raise ConfigError(f"{what} '{path}' is not text (byte {error.start} cannot be decoded as UTF-8); "
                          "give a YAML file") from None


def torch_load(path: str | Path, **kwargs: Any) -> Any:
    """``torch.load(path, map_location="cpu", **kwargs)``; an unreadable file is a :class:`CheckpointError` naming
    it. ``mmap=True`` falls back to a plain read for the legacy (non-zip) serialisation."""
    import torch

    path = Path(path)
    kwargs.setdefault("map_location", "cpu")
    try:
        try:
            return torch.load(str(path), **kwargs)
        except RuntimeError:
            if not kwargs.get("mmap"):
                raise
            return torch.load(str(path), **{**kwargs, "mmap": False})
    except (RuntimeError, EOFError, ValueError, OSError) as error:
        if isinstance(error, FileNotFoundError):
            raise CheckpointError(f"checkpoint '{path}' does not exist") from None
        raise CheckpointError(f"'{path}' cannot be read as a PyTorch checkpoint: {DAMAGED}. Use another checkpoint "
                              f"(e.g. an earlier epoch's) or write it again. ({type(error).__name__}: "
                              f"{str(error).splitlines()[0][:160]})") from None


def load_safetensors(path: str | Path) -> dict[str, Any]:
    """The tensors of a ``.safetensors`` file; an unreadable file is a :class:`CheckpointError` naming it."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(f"'{path}' cannot be read as a safetensors file: {DAMAGED}. Write it again (e.g. "
                              f"save_pretrained) or use another copy. ({type(error).__name__}: "
                              f"{str(error).splitlines()[0][:160]})") from None


def write_atomic(path: str | Path, data: bytes | str, tmp: str | Path | None = None) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder (``tmp``, default a hidden
    ``.<name>.<pid>.tmp``; a file format may name its own, which its clean-up recognises), renamed when complete:
    an interrupted or failed write (a full disk) leaves no file under the final name. Ordinary permissions
    (umask). A failure is a :class:`OSError` naming the path and the free space."""
    import os
    import shutil

    path = Path(path)
    tmp = Path(tmp) if tmp is not None else path.with_name(f".{path.name}.{os.getpid()}.tmp")
    payload = data.encode() if isinstance(data, str) else data
    try:
        with open(tmp, "wb") as f:
            f.write(payload)
        os.replace(tmp, path)
    except OSError as error:
        tmp.unlink(missing_ok=True)
        try:
            free = f"{shutil.disk_usage(path.parent).free / 1e6:.1f} MB free"
        except OSError:
            free = "free space unknown"
        raise OSError(error.errno, f"could not write '{path}' ({len(payload) / 1e6:.1f} MB; {free}): "
                      f"{error.strerror or error}") from None
    return path


def write_safetensors(path: str | Path, tensors: Mapping[str, Any], metadata: Mapping[str, str] | None = None,
                      tmp: str | Path | None = None) -> Path:
    """Write ``tensors`` (contiguous CPU tensors) with string ``metadata`` to ``path`` (:func:`write_atomic`, so
    ordinary permissions and complete-or-absent; ``tmp`` as there); returns the path. A tensor safetensors
    refuses leaves no file."""
    from safetensors.torch import save

    payload = save(dict(tensors), metadata=dict(metadata) if metadata is not None else None)
    return write_atomic(path, payload, tmp)


__all__ = ["DAMAGED", "load_safetensors", "read_yaml", "torch_load", "write_atomic", "write_safetensors"]
