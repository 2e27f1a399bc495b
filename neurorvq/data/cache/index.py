"""A window cache's manifest: the format constants, :class:`CacheError`, ``index.json`` (:class:`CacheIndex`,
:class:`ShardInfo`, :func:`load_index`), the completeness check (:func:`check_cache`, :func:`open_cache`) and
the URLs of a cache's files. The format itself is described in :mod:`neurorvq.data.cache`."""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from neurorvq.data.cache.checksum import _ShardStream
from neurorvq.errors import NeuroRVQError
from neurorvq.shard_folder import is_newer, newer_format_message

FORMAT = "neurorvq-window-cache"
FORMAT_VERSION = 2
READABLE_FORMAT_VERSIONS = (1, 2)
"""Index versions this module reads: 1 (no shard checksums, read unverified) and 2."""
REBUILD = "delete the folder and run again to rebuild it"
CHECKSUM = "crc32"
"""Algorithm of the shard checksums (``zlib.crc32`` of the whole shard file), stored as ``"crc32:<8 hex>"``."""

PathLike = str | os.PathLike


class CacheError(NeuroRVQError, RuntimeError):
    """A cache that cannot be written or read (names the folder or shard and the reason)."""


@dataclass
class ShardInfo:
    """One shard: file ``name`` in the cache folder, ``windows`` it holds, file size ``bytes``,
    ``channel_sets`` (indices into :attr:`CacheIndex.channel_sets`) present in it, and ``checksum`` of the
    whole file (``"crc32:<8 hex digits>"``; ``None`` in a format-1 cache, which is read unverified)."""

    name: str
    windows: int
    bytes: int
    channel_sets: list[int] = field(default_factory=list)
    checksum: str | None = None

    def crc32(self) -> int | None:
        """The recorded CRC-32 as an int (``None`` when the index has no checksum)."""
        if self.checksum is None:
            return None
        algorithm, _, value = str(self.checksum).partition(":")
        if algorithm != CHECKSUM or len(value) != 8:
            raise CacheError(f"shard {self.name}: checksum {self.checksum!r} is not '{CHECKSUM}:<8 hex digits>'; "
                             "the index was written by a newer neurorvq or is damaged")
        try:
            return int(value, 16)
        except ValueError:
            raise CacheError(f"shard {self.name}: checksum {self.checksum!r} is not hexadecimal; index.json is "
                             "damaged") from None


@dataclass
class CacheIndex:
    """A complete cache's manifest (``index.json``) and where it lives (``location``: folder or URL prefix)."""

    location: str
    key: str
    config: dict[str, Any]
    sources: list[dict[str, Any]]
    shards: list[ShardInfo]
    channel_sets: list[dict[str, Any]]  # [{"channel_ids": [int, ...], "windows": int}]
    total_windows: int
    total_bytes: int
    format_version: int = FORMAT_VERSION

    @classmethod
    def from_json(cls, location: str, doc: Mapping[str, Any]) -> "CacheIndex":
        if doc.get("format") == FORMAT and is_newer(doc, READABLE_FORMAT_VERSIONS):
            raise CacheError(newer_format_message("window cache", location, doc, READABLE_FORMAT_VERSIONS,
                                                  REBUILD))
        if doc.get("format") != FORMAT or doc.get("format_version") not in READABLE_FORMAT_VERSIONS:
            raise CacheError(f"{location}/index.json is format {doc.get('format')!r} version "
                             f"{doc.get('format_version')!r}; this neurorvq reads {FORMAT!r} versions "
                             f"{', '.join(map(str, READABLE_FORMAT_VERSIONS))}")
        return cls(location=location, key=doc["key"], config=doc.get("config", {}), sources=doc.get("sources", []),
                   shards=[ShardInfo(**s) for s in doc["shards"]], channel_sets=doc.get("channel_sets", []),
                   total_windows=int(doc["totals"]["windows"]), total_bytes=int(doc["totals"]["bytes"]),
                   format_version=doc["format_version"])

    def shard_url(self, name: str) -> str:
        return _join(self.location, name)

    @property
    def shard_urls(self) -> list[str]:
        return [self.shard_url(s.name) for s in self.shards]

    @property
    def has_checksums(self) -> bool:
        """Whether every shard has a recorded checksum (format 2); format-1 caches have none."""
        return all(s.checksum is not None for s in self.shards)


def _join(location: str, name: str) -> str:
    if "{shard}" in location:
        return location.replace("{shard}", name)
    if "://" in location or location.startswith("pipe:"):
        return location.rstrip("/") + "/" + name
    return os.path.join(location, name)


@contextlib.contextmanager
def _open_url(url: str, storage_options: Mapping[str, Any] | None = None):
    """Binary read stream of a local path, ``file://`` URL, ``pipe:`` command or any fsspec URL."""
    if url.startswith("pipe:"):
        from webdataset.gopen import gopen

        stream = gopen(url, "rb")
    elif url.startswith("file://"):
        from urllib.parse import urlparse
        from urllib.request import url2pathname

        stream = open(url2pathname(urlparse(url).path), "rb")
    elif "://" in url:
        import fsspec

        stream = fsspec.open(url, "rb", **(storage_options or {})).open()
    else:
        stream = open(url, "rb")
    try:
        yield stream
    finally:
        stream.close()


def load_index(location: PathLike, storage_options: Mapping[str, Any] | None = None) -> CacheIndex:
    """Read ``index.json`` at ``location`` (folder, ``file://``/fsspec URL prefix, or ``pipe:`` with
    ``{shard}``). Raises :class:`CacheError` if it is missing or unreadable; does not check the shards."""
    location = os.fspath(location)
    url = _join(location, "index.json")
    try:
        with _open_url(url, storage_options) as f:
            doc = json.loads(f.read())
    except (OSError, ValueError) as exc:
        raise CacheError(f"no readable cache index at {url}: {exc}") from exc
    return CacheIndex.from_json(location, doc)


def check_cache(folder: PathLike, key: str | None = None, checksums: bool = False) -> str | None:
    """Why the local cache ``folder`` is not complete (``None`` if it is): ``index.json`` missing or
    unreadable, written for another key or format, or a listed shard missing or of the wrong size. With
    ``checksums`` also every shard's checksum (reads the whole cache: a full check, e.g. after copying a
    cache; :func:`open_cache` and reading do not need it, reading verifies each shard as it streams)."""
    folder = Path(folder)
    if not (folder / "index.json").is_file():
        return f"{folder}/index.json is missing (build interrupted or never run)"
    try:
        index = load_index(folder)
    except (CacheError, KeyError, TypeError) as exc:
        return f"{folder}/index.json is unusable: {exc}"
    if key is not None and index.key != key:
        return f"{folder}/index.json is for key {index.key}, not {key}"
    for shard in index.shards:
        p = folder / shard.name
        if not p.is_file():
            return f"shard {p} listed in index.json is missing"
        if p.stat().st_size != shard.bytes:
            return f"shard {p} has {p.stat().st_size} bytes, index.json says {shard.bytes}"
        try:
            want = shard.crc32() if checksums else None
        except CacheError as exc:
            return str(exc)
        if want is not None:
            with open(p, "rb") as f:
                reader = _ShardStream(f, checksum=True)
                crc, _ = reader.finish()
            if crc != want:
                return f"shard {p} has checksum {CHECKSUM}:{crc:08x}, index.json says {shard.checksum}"
    return None


def open_cache(root_dir: PathLike, key: str) -> CacheIndex | None:
    """The complete cache ``<root_dir>/<key>/`` or ``None`` if it is missing or incomplete (see
    :func:`check_cache` for the reason)."""
    folder = Path(root_dir) / key
    if check_cache(folder, key) is not None:
        return None
    return load_index(folder)
