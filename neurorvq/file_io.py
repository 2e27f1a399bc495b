"""Reading and writing recipes, checkpoints, weight files and data shards so that damage is named and never left
behind.

Reading: a damaged or incomplete file (a write interrupted by a killed process or a full disk, a truncated copy)
otherwise fails deep inside PyYAML, PyTorch or safetensors with a message that names neither the file nor a
remedy. These readers turn those failures into the project's errors (:class:`~neurorvq.errors.ConfigError` for
recipes, :class:`~neurorvq.errors.CheckpointError` for weights, :class:`DamagedFileError` for data shards), which
the CLI prints as one message.

Writing: :func:`write_atomic` goes through a temporary name in the same folder, flushed to disk and renamed when
complete, so a failed write leaves no file under the final name and its error (:class:`FileWriteError`) names the
path and the free space. :func:`write_safetensors` uses it: safetensors' own ``save_file`` creates its file with
mode 600, while shards, feature files and ``save_pretrained`` weights are meant to be shared like the JSON beside
them (``open()`` applies the umask).

Checksums: :func:`write_safetensors` with ``checksums=True`` records a SHA-256 of every tensor (dtype, shape and
bytes) and of every metadata string in the file's metadata (:data:`CHECKSUM_KEY`); :func:`read_safetensors`
verifies the tensors it reads against it. A file damaged in place (same size, a changed byte: a bad disk or copy,
an edit) then fails with :class:`DamagedFileError` instead of being trusted. SHA-256 rather than BLAKE2b: CPUs
with SHA extensions (x86 since ~2017-2019, ARMv8) hash it about twice as fast through OpenSSL (1.8 vs 0.9 GB/s
measured on the development machine), and the project already hashes weights with it.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import pickle
from pathlib import Path
from typing import Any, Iterable, Mapping

from neurorvq.errors import CheckpointError, ConfigError, InputError, NeuroRVQError

DAMAGED = ("the file is damaged or incomplete (for example a write interrupted by a killed process or a full "
           "disk, or a truncated copy)")
TEMP_SUFFIX = ".tmp"
"""Suffix of a file being written (``<name>.tmp`` or ``.<name>.<pid>.tmp``): a leftover one is an interrupted
write, never a usable file."""
CHECKSUM_KEY = "checksums"
"""Safetensors metadata key of the checksum record (JSON ``{"algorithm", "tensors", "metadata"}``)."""
CHECKSUM_ALGORITHM = "sha256"


class FileWriteError(NeuroRVQError, OSError):
    """A file could not be written (a full disk, no permission); the message names the path and the free space.
    An :class:`OSError` too (``errno`` kept), so callers catching ``OSError`` still do."""

    def __str__(self) -> str:
        return self.strerror or super().__str__()


class DamagedFileError(InputError):
    """A data file neurorvq wrote that no longer reads back as written: unreadable, or its content differs from
    the checksum recorded when it was written. The message names the folder, the file and what to do."""


def unfinished_write(path: str | Path) -> bool:
    """Whether ``path`` is the temporary file of a write (:data:`TEMP_SUFFIX`): left behind, it is an interrupted
    one, never a usable file."""
    return Path(path).name.endswith(TEMP_SUFFIX)


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


def checkpoint_read_error(path: str | Path, error: BaseException) -> CheckpointError:
    """The one message for a PyTorch checkpoint that cannot be read (``error`` from ``torch.load``): missing,
    an unfinished write (``.tmp``), or damaged."""
    path = Path(path)
    if isinstance(error, FileNotFoundError):
        leftover = [p.name for p in (path.with_name(path.name + TEMP_SUFFIX),) if p.is_file()]
        hint = (f"; '{leftover[0]}' beside it is an interrupted write of it (a killed run or a full disk), not a "
                "usable checkpoint: use an earlier one" if leftover else "")
        return CheckpointError(f"checkpoint '{path}' does not exist{hint}")
    if unfinished_write(path):
        return CheckpointError(f"'{path}' is the temporary file of a checkpoint write that did not finish (a killed "
                               "run or a full disk); use a finished checkpoint (e.g. last.ckpt or an earlier epoch's)")
    return CheckpointError(f"'{path}' cannot be read as a PyTorch checkpoint: {DAMAGED}. Use another checkpoint "
                           f"(e.g. an earlier epoch's) or write it again. ({type(error).__name__}: "
                           f"{str(error).splitlines()[0][:160] if str(error) else ''})")


CHECKPOINT_READ_ERRORS = (RuntimeError, EOFError, ValueError, OSError)
"""What ``torch.load`` raises on a damaged or incomplete file (``pickle.UnpicklingError``, a refused
``weights_only`` load, is not damage and passes through)."""


def torch_load(path: str | Path, **kwargs: Any) -> Any:
    """``torch.load(path, map_location="cpu", **kwargs)``; an unreadable file is a :class:`CheckpointError` naming
    it. ``mmap=True`` falls back to a plain read for the legacy (non-zip) serialisation."""
    import torch

    path = Path(path)
    kwargs.setdefault("map_location", "cpu")
    try:
        if unfinished_write(path):
            raise ValueError("an unfinished write")
        try:
            return torch.load(str(path), **kwargs)
        except RuntimeError:
            if not kwargs.get("mmap"):
                raise
            return torch.load(str(path), **{**kwargs, "mmap": False})
    except CHECKPOINT_READ_ERRORS as error:
        raise checkpoint_read_error(path, error) from None


def read_lightning_checkpoint(path: str | Path, *, mmap: bool = True) -> dict[str, Any]:
    """The dict a Lightning checkpoint holds (tensors on the CPU, memory-mapped when ``mmap``); a damaged or
    missing file is a :class:`CheckpointError` naming it."""
    try:
        return torch_load(path, weights_only=True, mmap=mmap)
    except pickle.UnpicklingError:
        # the restricted unpickler refuses some objects that Lightning or a callback may have stored (e.g. an
        # AttributeDict of hyper-parameters); the file is a Lightning checkpoint written locally by `neurorvq fit`
        # that the user asked to load, so the full unpickler reads it
        return torch_load(path, weights_only=False, mmap=mmap)


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


def _free_space(folder: Path) -> str:
    import shutil

    try:
        return f"{shutil.disk_usage(folder).free / 1e6:.1f} MB free"
    except OSError:
        return "free space unknown"


def _sync(fd: int) -> None:
    """``fsync``: the rename must not reach the disk before the data (after a crash the file could hold zeros).
    File systems without it (``EINVAL``/``ENOTSUP``: some FUSE and network mounts) are left to their own order;
    a full disk or an I/O error reported here is raised."""
    import errno

    try:
        os.fsync(fd)
    except OSError as error:
        if error.errno not in (errno.EINVAL, errno.ENOTSUP):
            raise


def write_atomic(path: str | Path, data: bytes | bytearray | memoryview | str, tmp: str | Path | None = None) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder (``tmp``, default a hidden
    ``.<name>.<pid>.tmp``; a file format may name its own, which its clean-up recognises), flushed to disk
    (``fsync``) and renamed when complete: an interrupted or failed write (a full disk) leaves no file under the
    final name, and the temporary file is removed. Ordinary permissions (umask). A failure is a
    :class:`FileWriteError` naming the path, the size (MB) and the free space."""
    path = Path(path)
    tmp = Path(tmp) if tmp is not None else path.with_name(f".{path.name}.{os.getpid()}{TEMP_SUFFIX}")
    payload = data.encode() if isinstance(data, str) else data
    size = memoryview(payload).nbytes
    try:
        with open(tmp, "wb") as f:
            f.write(payload)
            f.flush()
            _sync(f.fileno())
        os.replace(tmp, path)
    except OSError as error:
        tmp.unlink(missing_ok=True)
        raise FileWriteError(error.errno, f"could not write '{path}' ({size / 1e6:.1f} MB; "
                             f"{_free_space(path.parent)}): {error.strerror or error}. It was not written (an earlier "
                             "file of that name, if any, is unchanged); free space there or write elsewhere") from None
    except BaseException:  # KeyboardInterrupt while writing: no temporary file either
        tmp.unlink(missing_ok=True)
        raise
    return path


# ------------------------------------------------------------------------------------ safetensors + checksums
def tensor_digest(tensor: Any) -> str:
    """SHA-256 (hex, 128 bits) of a tensor's dtype, shape and bytes (C order, as safetensors stores them)."""
    import torch

    digest = hashlib.new(CHECKSUM_ALGORITHM, f"{tensor.dtype}{tuple(tensor.shape)}".encode())
    flat = tensor.detach().cpu().contiguous().reshape(-1)
    digest.update(flat.view(torch.uint8).numpy())  # the buffer itself: no copy
    return digest.hexdigest()[:32]


def _text_digest(text: str) -> str:
    return hashlib.new(CHECKSUM_ALGORITHM, text.encode()).hexdigest()[:32]


def checksum_record(tensors: Mapping[str, Any], metadata: Mapping[str, str]) -> str:
    """The :data:`CHECKSUM_KEY` metadata value: digests of every tensor and every metadata string (JSON)."""
    return json.dumps({"algorithm": CHECKSUM_ALGORITHM,
                       "tensors": {k: tensor_digest(v) for k, v in sorted(tensors.items())},
                       "metadata": {k: _text_digest(v) for k, v in sorted(metadata.items()) if k != CHECKSUM_KEY}})


def write_safetensors(path: str | Path, tensors: Mapping[str, Any], metadata: Mapping[str, str] | None = None,
                      tmp: str | Path | None = None, checksums: bool = False) -> Path:
    """Write ``tensors`` (contiguous CPU tensors) with string ``metadata`` to ``path`` (:func:`write_atomic`, so
    ordinary permissions and complete-or-absent; ``tmp`` as there); returns the path. ``checksums`` adds the
    checksum record that :func:`read_safetensors` verifies. A tensor safetensors refuses leaves no file."""
    from safetensors.torch import save

    metadata = dict(metadata or {})
    if checksums:
        metadata[CHECKSUM_KEY] = checksum_record(tensors, metadata)
    payload = save(dict(tensors), metadata=metadata or None)
    return write_atomic(path, payload, tmp)


def read_safetensors(path: str | Path, keys: Iterable[str] | None = None, *, what: str = "file",
                     fix: str = "write it again") -> tuple[dict[str, str], dict[str, Any]]:
    """``(metadata, tensors)`` of a ``.safetensors`` file: the tensors named in ``keys`` (those present; all when
    None) and the metadata without the checksum record. When the file has a checksum record, every tensor read
    and every metadata string is verified against it (one SHA-256 pass over the bytes read, about 1-2 GB/s);
    a file without one (written before checksums, or without them) is read unverified.

    An unreadable file or a mismatch is a :class:`DamagedFileError` naming the file, its folder, the tensor and
    ``fix`` (what to do, e.g. re-run the command that wrote the folder); ``what`` names the kind of file."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    where = f"{what} '{path.name}' in '{path.parent}'"
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = dict(f.metadata() or {})
            present = list(f.keys())
            wanted = present if keys is None else [k for k in keys if k in present]
            tensors = {k: f.get_tensor(k) for k in wanted}
    except (SafetensorError, OSError, ValueError, RuntimeError) as error:
        raise DamagedFileError(f"{where} cannot be read: {DAMAGED}. {fix[:1].upper()}{fix[1:]}. "
                               f"({type(error).__name__}: {str(error).splitlines()[0][:160] if str(error) else ''})"
                               ) from None
    record_text = metadata.pop(CHECKSUM_KEY, None)
    if record_text is None:
        return metadata, tensors
    try:
        record = json.loads(record_text)
        expected_tensors, expected_metadata = dict(record["tensors"]), dict(record["metadata"])
        if record.get("algorithm") != CHECKSUM_ALGORITHM:
            raise ValueError(f"algorithm {record.get('algorithm')!r}")
    except (ValueError, KeyError, TypeError) as error:
        raise DamagedFileError(f"{where}: its checksum record is damaged ({error}). {fix[:1].upper()}{fix[1:]}"
                               ) from None
    bad = [f"metadata '{k}'" for k in sorted(set(metadata) | set(expected_metadata))
           if k not in metadata or k not in expected_metadata or _text_digest(metadata[k]) != expected_metadata[k]]
    bad += [f"tensor '{k}'" for k in sorted(set(present) - set(expected_tensors))]
    bad += [f"tensor '{k}'" for k, tensor in tensors.items()
            if k in expected_tensors and tensor_digest(tensor) != expected_tensors[k]]
    if bad:
        raise DamagedFileError(f"{where} does not match the checksum recorded when it was written ({', '.join(bad)}): "
                               "the file changed since (a damaged disk or copy, or an edit) and its contents cannot "
                               f"be trusted. {fix[:1].upper()}{fix[1:]}")
    return metadata, tensors


def json_ready(value: Any, finite: bool = False) -> Any:
    """``value`` with tuples as lists and mappings as dicts (what ``json.dumps``/YAML write as plain data); with
    ``finite``, non-finite floats (an unused codebook's perplexity) as ``None``: strict JSON has no NaN."""
    if isinstance(value, Mapping):
        return {str(k): json_ready(v, finite) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v, finite) for v in value]
    if finite and isinstance(value, float) and not math.isfinite(value):
        return None
    return value


__all__ = ["CHECKSUM_KEY", "DAMAGED", "TEMP_SUFFIX", "DamagedFileError", "FileWriteError", "checkpoint_read_error",
           "checksum_record", "json_ready", "load_safetensors", "read_lightning_checkpoint", "read_safetensors", "read_yaml",
           "tensor_digest", "torch_load", "unfinished_write", "write_atomic", "write_safetensors"]
