"""The key of a window cache: :func:`source_identity` of each source file and the preprocessing config as JSON
(:func:`cache_key`); see :mod:`neurorvq.data.cache`."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from neurorvq.data.cache.index import FORMAT, FORMAT_VERSION, CacheError, PathLike
from neurorvq.errors import ConfigError

HEADER_BYTES = 64 * 1024
"""Bytes of each source file hashed into the cache key (its header; large files are not re-read)."""
_KEY_HEX = 24  # characters of the SHA-256 kept in the key (96 bits)


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable; give the config as plain JSON values")


def _config_json(config: Mapping[str, Any] | None) -> str:
    try:
        return json.dumps(config or {}, sort_keys=True, default=_jsonable, separators=(",", ":"))
    except TypeError as exc:
        raise ConfigError(f"cache config: {exc}") from exc


def source_identity(path: PathLike) -> dict[str, Any]:
    """``{"path", "size", "mtime_ns", "header_sha256"}`` of a source file; the SHA-256 covers its first
    ``HEADER_BYTES`` (64 KiB) only, so identifying a large corpus does not re-read it."""
    p = Path(path)
    try:
        st = p.stat()
        if not p.is_file():
            raise CacheError(f"cache source {p} is not a file; list the files (not folders) a cache is built from")
        with open(p, "rb") as f:
            header = hashlib.sha256(f.read(HEADER_BYTES)).hexdigest()
    except FileNotFoundError as exc:
        raise CacheError(f"cache source {p} does not exist") from exc
    return {"path": os.fspath(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns, "header_sha256": header}


def cache_key(sources: Sequence[PathLike], config: Mapping[str, Any] | None) -> str:
    """Key of the cache built from ``sources`` (in this order) with the preprocessing ``config``.

    SHA-256 (first 24 hex characters) of: the format version, each source's :func:`source_identity` (path as
    given, size, mtime_ns, SHA-256 of its first 64 KiB) and ``config`` as JSON with sorted keys. Touching,
    resizing or editing the header of a file, or changing any config value, gives another key.
    """
    h = hashlib.sha256()
    h.update(f"{FORMAT}/{FORMAT_VERSION}\n".encode())
    for src in sources:
        h.update(json.dumps(source_identity(src), sort_keys=True).encode())
        h.update(b"\n")
    h.update(_config_json(config).encode())
    return h.hexdigest()[:_KEY_HEX]
