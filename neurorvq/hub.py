"""Hugging Face Hub sources for :func:`neurorvq.load`: ``hf://owner/name[@revision][/path/in/repo]``.

A Hub repo is always written with the ``hf://`` scheme, so a local path that happens to contain a "/" is never
taken for a repo id. The one exception is the documented alias :data:`OFFICIAL_REPO_ID` (``ntinosbarmpas/NeuroRVQ``,
the official weights), which the README and the recipes use bare. Revisions that contain "/" (``refs/pr/1``) are
written URL-encoded (``@refs%2Fpr%2F1``).

Files are fetched with ``huggingface_hub`` (the ``[hub]`` extra) into its cache; with ``HF_HUB_OFFLINE=1`` they come
from the cache only (``HF_HUB_CACHE`` names it).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote

from neurorvq.errors import CheckpointError, ConfigError

HUB_SCHEME = "hf://"
OFFICIAL_REPO_ID = "ntinosbarmpas/NeuroRVQ"
"""The official NeuroRVQ repo: the one bare ``owner/name`` that :func:`neurorvq.load` accepts."""

_REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*")
FORM = "hf://owner/name[@revision][/path/in/repo]"


class HubError(CheckpointError):
    """A file could not be had from the Hub (no ``huggingface_hub``, no such repo, revision or file, or not in the
    cache while offline); the message names the repo and what to do."""


@dataclass(frozen=True)
class HubSource:
    """A Hub repo, optionally at ``revision`` (branch, tag or commit), and optionally one ``path`` inside it (a file,
    or ``sub/folder/config.json`` for a ``save_pretrained`` folder inside the repo)."""

    repo_id: str
    revision: str | None = None
    path: str | None = None

    def __str__(self) -> str:
        revision = f"@{quote(self.revision, safe='')}" if self.revision else ""
        return f"{HUB_SCHEME}{self.repo_id}{revision}{'/' + self.path if self.path else ''}"


def looks_like_repo_id(text: str) -> bool:
    """Whether ``text`` has the form of a bare Hub repo id (``owner/name``)."""
    return bool(_REPO_ID.fullmatch(text))


def parse_hub_source(text: str, revision: str | None = None) -> HubSource:
    """``hf://owner/name[@revision][/path/in/repo]`` as a :class:`HubSource`; ``revision`` (the loader's keyword)
    fills in a revision the text does not give. A malformed text or two different revisions raise
    :class:`ConfigError`."""
    if not text.startswith(HUB_SCHEME):
        raise ConfigError(f"'{text}' is not a Hub source: write {FORM}")
    parts = text[len(HUB_SCHEME):].split("/")
    if len(parts) < 2:
        raise ConfigError(f"'{text}' is not a Hub source: write {FORM}")
    owner, name_rev, rest = parts[0], parts[1], parts[2:]
    name, _, given = name_rev.partition("@")
    repo_id = f"{owner}/{name}"
    path = "/".join(rest)
    if not looks_like_repo_id(repo_id) or (name_rev.endswith("@")) or any(p in ("", ".", "..") for p in rest):
        raise ConfigError(f"'{text}' is not a Hub source: write {FORM} (owner and name of letters, digits, "
                          "'-', '_', '.'; a revision with '/' URL-encoded, e.g. @refs%2Fpr%2F1)")
    given = unquote(given) if given else None
    if given and revision and given != revision:
        raise ConfigError(f"'{text}' names revision '{given}' but revision='{revision}' was passed; give one")
    return HubSource(repo_id, given or revision, path or None)


def offline() -> bool:
    """Whether ``huggingface_hub`` runs offline (``HF_HUB_OFFLINE``, as the library itself read it)."""
    try:
        from huggingface_hub import constants

        return bool(constants.HF_HUB_OFFLINE)
    except ImportError:
        return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def hub_download(source: HubSource, filename: str) -> Path:
    """The local path of ``filename`` (relative to the repo root) of ``source``'s repo at its revision, downloaded
    into the Hugging Face cache when it is not there yet. Every failure is a :class:`HubError` naming the repo."""
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:
        raise HubError(f"'{source}': reading from the Hugging Face Hub needs huggingface_hub: "
                       "pip install 'neurorvq[hub]'") from None
    errors = _error_types()
    where = f"'{HubSource(source.repo_id, source.revision)}'"
    try:
        return Path(hf_hub_download(repo_id=source.repo_id, filename=filename, revision=source.revision))
    except errors["LocalEntryNotFoundError"]:  # not in the cache, and the Hub could not (or must not) be asked
        from huggingface_hub import constants

        if offline():
            raise HubError(f"{where}: '{filename}' is not in the Hugging Face cache ({constants.HF_HUB_CACHE}) and "
                           "offline mode is on (HF_HUB_OFFLINE=1): download it once with HF_HUB_OFFLINE unset, or "
                           "point HF_HUB_CACHE at a cache that holds it") from None
        raise HubError(f"{where}: '{filename}' is not in the Hugging Face cache ({constants.HF_HUB_CACHE}) and the "
                       "Hub could not be reached; check the connection and try again") from None
    except errors["RevisionNotFoundError"]:
        raise HubError(f"{where}: no revision '{source.revision}' in repo '{source.repo_id}'") from None
    except errors["RepositoryNotFoundError"]:
        raise HubError(f"{where}: no such Hub repo (or it is private or gated: log in with `hf auth login` and "
                       "check access)") from None
    except errors["EntryNotFoundError"]:
        raise HubError(f"{where} has no file '{filename}'") from None
    except errors["HFValidationError"] as error:
        raise HubError(f"{where} is not a valid Hub repo id or revision ({error})") from None


def _error_types() -> dict[str, type[BaseException]]:
    """huggingface_hub's error classes by name (``huggingface_hub.errors``, or ``.utils`` before 0.23)."""
    try:
        from huggingface_hub import errors as module
    except ImportError:  # older releases keep them in utils
        from huggingface_hub import utils as module
    names = ("LocalEntryNotFoundError", "RevisionNotFoundError", "RepositoryNotFoundError", "EntryNotFoundError",
             "HFValidationError")
    return {name: getattr(module, name, _Never) for name in names}


class _Never(Exception):
    """Stands in for an error class a huggingface_hub release lacks (never raised)."""


__all__ = ["FORM", "HUB_SCHEME", "HubError", "HubSource", "OFFICIAL_REPO_ID", "hub_download", "looks_like_repo_id",
           "offline", "parse_hub_source"]
