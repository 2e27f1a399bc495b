"""One folder of shards with a manifest, the layout shared by token folders (:mod:`neurorvq.token_files`) and
feature folders (:mod:`neurorvq.feature_files`); the window cache (:mod:`neurorvq.data.cache`) shares its
version message (:func:`newer_format_message`).

A :class:`FolderFormat` describes one kind of folder: its manifest's ``format`` id and version, the versions this
neurorvq reads, the glob of its shard files, the manifest fields that identify the model that wrote it, and what
to do when a folder cannot be used. :class:`ShardFolder` applies it to one folder:

- :meth:`~ShardFolder.read_manifest`: the manifest of a finished folder, or one clear error (missing: an
  unfinished run; another format; a version written by a newer neurorvq);
- :meth:`~ShardFolder.check_writable`: whether a run may write there (the same model's files are replaced; another
  model's only with ``overwrite``);
- :meth:`~ShardFolder.clear`: remove this format's files (manifest first), never anything else;
- :meth:`~ShardFolder.write_manifest`: atomically, with ``format``, ``format_version`` and ``writer``; written
  last, so its presence means the folder is complete;
- :meth:`~ShardFolder.leftovers`: temporary files of interrupted writes (``.tmp``, ``.partial``).
"""

from __future__ import annotations

import fnmatch
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal, Mapping, Sequence

from neurorvq.errors import ConfigError, InputError

LEFTOVER_SUFFIXES = (".tmp", ".partial")


@dataclass(frozen=True)
class FolderFormat:
    """One kind of shard folder.

    name: what a user calls it in messages ("token folder"). format: the manifest's ``format`` id
    ("neurorvq-tokens"). version: the version written; readable: the versions read. manifest_name: the manifest
    file. shard_pattern: glob of its shard files ("tokens-*[0-9].safetensors"). identity_keys: manifest (and shard
    ``info``) fields naming the model that wrote the folder. contents: what another model's folder holds, for the
    refusal ("tokens of another tokenizer"). foreign_files: files of no format of ours in a folder that holds none
    of this format: ``"ignore"`` or ``"refuse"`` (unless overwrite). fix: what to do when a folder cannot be read
    (appended to errors). legacy: recognises a manifest written before the ``format`` key existed. shard_info:
    reads a shard's header ``info`` (raising :class:`InputError` for a foreign file), so that shards left without a
    manifest are checked too.
    """

    name: str
    format: str
    version: int
    readable: tuple[int, ...]
    shard_pattern: str
    identity_keys: tuple[str, ...]
    fix: str
    contents: str = "files of another model"
    manifest_name: str = "manifest.json"
    foreign_files: Literal["ignore", "refuse"] = "ignore"
    legacy: Callable[[dict], bool] | None = None
    shard_info: Callable[[Path], dict] | None = None

    def __post_init__(self) -> None:
        if self.version not in self.readable:
            raise ConfigError(f"{self.name}: version {self.version} is not among readable {self.readable}")
        if self.foreign_files not in ("ignore", "refuse"):
            raise ConfigError(f"{self.name}: foreign_files is {self.foreign_files!r}; give 'ignore' or 'refuse'")

    def is_shard(self, name: str) -> bool:
        return fnmatch.fnmatchcase(name, self.shard_pattern)

    def is_leftover(self, name: str) -> bool:
        """A temporary file of a write of this format: ``<shard or manifest>.tmp``, the shard's stem with ``.tmp``
        (``tokens-00000.tmp``), a hidden ``.<name>.<pid>.tmp``, and the same with ``.partial``."""
        suffix = next((s for s in LEFTOVER_SUFFIXES if name.endswith(s)), None)
        if suffix is None:
            return False
        base = name[: -len(suffix)]
        stem = self.shard_pattern.rsplit(".", 1)[0]
        if fnmatch.fnmatchcase(base, stem) or self.is_shard(base) or base == self.manifest_name:
            return True
        if not base.startswith("."):
            return False
        hidden = base[1:].rsplit(".", 1)[0]  # .<name>.<pid>: write_atomic's default temporary name
        return hidden == self.manifest_name or self.is_shard(hidden)


def _versions(readable: Sequence[int]) -> str:
    return ", ".join(str(v) for v in readable)


def writer_version(doc: Mapping[str, Any]) -> str | None:
    """The neurorvq version recorded in a manifest (``writer.neurorvq`` or, in feature manifests before it,
    ``neurorvq_version``), else ``None``."""
    writer = doc.get("writer")
    version = writer.get("neurorvq") if isinstance(writer, Mapping) else None
    version = version or doc.get("neurorvq_version")
    return str(version) if version else None


def newer_format_message(what: str, location: str | Path, doc: Mapping[str, Any], readable: Sequence[int],
                         fix: str) -> str:
    """``"<what> '<location>' was written by neurorvq <v> (format N); this neurorvq reads formats 1, 2: upgrade
    neurorvq, or <fix>"`` (``a newer neurorvq`` when the manifest ``doc`` does not record the version)."""
    version = writer_version(doc)
    by = f"neurorvq {version}" if version else "a newer neurorvq"
    return (f"{what} '{location}' was written by {by} (format {doc.get('format_version')}); this neurorvq reads "
            f"formats {_versions(readable)}: upgrade neurorvq, or {fix}")


def is_newer(doc: Mapping[str, Any], readable: Sequence[int]) -> bool:
    """Whether the manifest ``doc`` has an integer ``format_version`` above every readable one."""
    version = doc.get("format_version")
    return isinstance(version, int) and not isinstance(version, bool) and version > max(readable)


class ShardFolder:
    """The folder ``path`` in the format ``fmt`` (see the module docstring)."""

    def __init__(self, path: str | Path, fmt: FolderFormat) -> None:
        self.path = Path(path)
        self.fmt = fmt

    @property
    def manifest_path(self) -> Path:
        return self.path / self.fmt.manifest_name

    # ------------------------------------------------------------------------------------ listing
    def _files(self) -> list[Path]:
        if not self.path.is_dir():
            return []
        return sorted(p for p in self.path.iterdir() if p.is_file())

    def shards(self) -> list[Path]:
        """This format's finished shard files, sorted by name."""
        return [p for p in self._files() if self.fmt.is_shard(p.name)]

    def leftovers(self) -> list[Path]:
        """Temporary files of this format's interrupted writes (``.tmp``, ``.partial``)."""
        return [p for p in self._files() if self.fmt.is_leftover(p.name)]

    def format_files(self) -> list[Path]:
        """Every file of this format here: manifest, shards, leftovers (sorted by name); nothing else."""
        return [p for p in self._files() if p.name == self.fmt.manifest_name or self.fmt.is_shard(p.name)
                or self.fmt.is_leftover(p.name)]

    def foreign(self) -> list[Path]:
        """Entries here that are not this format's files (a user's notes, another tool's output)."""
        if not self.path.is_dir():
            return []
        ours = set(self.format_files())
        return sorted(p for p in self.path.iterdir() if p not in ours)

    # ------------------------------------------------------------------------------------ reading
    def read_manifest(self) -> dict[str, Any]:
        """The manifest of a finished folder; :class:`InputError` when it is missing, unreadable, of another
        format or of a version this neurorvq does not read (the message says what to do)."""
        fmt, where = self.fmt, self.path
        if not self.manifest_path.is_file():
            raise InputError(f"'{where}' is not a finished {fmt.name} (no {fmt.manifest_name}; an interrupted run "
                             f"leaves shards without a manifest): {fmt.fix}")
        try:
            doc = json.loads(self.manifest_path.read_text())
        except (ValueError, UnicodeDecodeError) as error:
            raise InputError(f"'{self.manifest_path}' is not readable JSON ({error}); the {fmt.name} is damaged: "
                             f"{fmt.fix}") from None
        if not isinstance(doc, dict):
            raise InputError(f"'{self.manifest_path}' is not a {fmt.name} manifest (not a JSON object): {fmt.fix}")
        if "format" not in doc and fmt.legacy is not None and fmt.legacy(doc):
            pass  # written before manifests named their format
        elif doc.get("format") != fmt.format:
            raise InputError(f"'{self.manifest_path}' is not a {fmt.name} manifest (format {doc.get('format')!r}, "
                             f"expected {fmt.format!r}); give a {fmt.name}")
        if doc.get("format_version") not in fmt.readable:
            if is_newer(doc, fmt.readable):
                raise InputError(newer_format_message(fmt.name, where, doc, fmt.readable, fmt.fix))
            raise InputError(f"{fmt.name} '{where}' has format {doc.get('format_version')!r}; this neurorvq reads "
                             f"formats {_versions(fmt.readable)}: {fmt.fix}")
        return doc

    # ------------------------------------------------------------------------------------ writing
    def check_writable(self, identity: Mapping[str, Any], overwrite: bool, fix: str) -> bool:
        """Raise :class:`ConfigError` (ending with ``fix``: how to choose another folder or overwrite) when this
        folder holds another model's files of this format (an ``identity`` field differs: manifest or shard
        headers), a manifest that is not this format's, or, with ``foreign_files="refuse"``, only other files;
        all unless ``overwrite``. Returns whether files of this format are there (they will be replaced).
        Leftovers of interrupted writes never block."""
        fmt, where = self.fmt, self.path
        if where.exists() and not where.is_dir():
            raise ConfigError(f"output folder '{where}' is a file; give a folder")
        ours = [p for p in self.format_files() if not fmt.is_leftover(p.name)]
        if overwrite:
            return bool(ours)
        if not ours:
            others = self.foreign()
            if others and fmt.foreign_files == "refuse":
                more = f" and {len(others) - 1} more" if len(others) > 1 else ""
                raise ConfigError(f"'{where}' is not empty and is not a {fmt.name} (it holds '{others[0].name}'"
                                  f"{more}); {fix}")
            return False
        mine = ", ".join(f"{k} {identity.get(k)}" for k in fmt.identity_keys)
        for path in ours:
            old = self._identity_of(path, fix)
            if any(old.get(k) != identity.get(k) for k in fmt.identity_keys):
                theirs = ", ".join(f"{k} {old.get(k)}" for k in fmt.identity_keys)
                raise ConfigError(f"'{where}' holds {fmt.contents} ({theirs}; this one: {mine}); {fix}")
        return True

    def _identity_of(self, path: Path, fix: str) -> dict[str, Any]:
        fmt = self.fmt
        if path.name == fmt.manifest_name:
            try:
                doc = json.loads(path.read_text())
            except (ValueError, UnicodeDecodeError):
                doc = None
            legacy = isinstance(doc, dict) and "format" not in doc and fmt.legacy is not None and fmt.legacy(doc)
            if not isinstance(doc, dict) or (doc.get("format") != fmt.format and not legacy):
                raise ConfigError(f"'{self.path}' holds a {fmt.manifest_name} that is not a {fmt.name} manifest; "
                                  f"{fix}")
            return doc
        if fmt.shard_info is None:
            return {}
        try:
            return fmt.shard_info(path)
        except InputError:
            raise ConfigError(f"'{self.path}' holds '{path.name}', which is not a readable {fmt.name} shard; "
                              f"{fix}") from None

    def clear(self) -> None:
        """Create the folder if needed and remove this format's files: the manifest first (a half-cleared folder is
        never taken for a finished one), then shards and leftovers. Other files stay."""
        self.path.mkdir(parents=True, exist_ok=True)
        for path in sorted(self.format_files(), key=lambda p: p.name != self.fmt.manifest_name):
            path.unlink(missing_ok=True)

    def write_manifest(self, doc: Mapping[str, Any]) -> Path:
        """Write the manifest atomically (complete or absent) with ``format``, ``format_version`` and ``writer``
        (``{"neurorvq": <version>}``); call it after every shard is written."""
        from neurorvq import __version__
        from neurorvq.file_io import write_atomic

        fmt = self.fmt
        body = {"format": fmt.format, "format_version": fmt.version, **doc,
                "writer": {**dict(doc.get("writer") or {}), "neurorvq": __version__}}
        return write_atomic(self.manifest_path, json.dumps(body, indent=2),
                            tmp=self.manifest_path.with_name(fmt.manifest_name + ".tmp"))


__all__ = ["FolderFormat", "ShardFolder", "is_newer", "newer_format_message", "writer_version"]
