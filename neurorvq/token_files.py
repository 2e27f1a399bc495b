"""On-disk token format written by ``neurorvq tokenize`` and read back by :func:`read_tokens`.

A token folder holds ``manifest.json`` and shards ``tokens-00000.safetensors``, ... Each shard holds windows
that share one channel set (format 2; any tokenizer family):

- ``tokens``: ``[windows, streams, channels*patches]`` int16 (int32 if a codebook has > 32767 codes): the ids of
  every stream of the tokenizer's :class:`~neurorvq.tokenizers.TokenLayout` (group-major: NeuroRVQ's stream
  ``s*N + n`` is branch ``s``, level ``n``), channel-major token order;
- one float32 tensor per side field of the layout, ``[windows, *shape]``: what decoding needs besides the ids
  (NeuroRVQ: ``amplitude_mean``, ``amplitude_std``, the per-window log-amplitude statistics);
- ``channel_ids``: ``[channels]`` int64, rows of the tokenizer's vocabulary; optional ``label``/``subject``
  ``[windows]`` int64;

and, as safetensors metadata, JSON ``info``: format version, family, ``layout`` (:meth:`TokenLayout.to_dict`),
modality, channel names (authoritative), sampling rate (Hz), patch length (samples), patches per channel, unit,
the tokenizer's ``config_hash`` and ``weights_hash`` (its codebooks and weights). ``manifest.json`` (written
last, by rank 0 under DDP: its presence means the folder is complete) names the format (``"format":
"neurorvq-tokens"``, since this version; older manifests have no ``format`` key and are still read), repeats the
tokenizer identity and lists the shard file names in order. Under DDP each rank writes its own shards
(``tokens-rank001-00000.safetensors``; :func:`shard_name`), so a shard also carries ``index`` ``[windows]``
int64, each window's position in the tokenized dataset, when Lightning can tell it. Format 1 (NeuroRVQ only:
``tokens [windows, branch, depth, tokens]``) is read as before; its layout is rebuilt from the tensor's shape and
``info["codebook_size"]``. The folder rules (manifest, versions, identity, overwrite) are
:mod:`neurorvq.shard_folder`'s.

Each shard also records, in its safetensors metadata, a SHA-256 checksum of every tensor and of ``info``
(:func:`neurorvq.file_io.write_safetensors` with ``checksums=True``); :func:`read_tokens` verifies it on every
read, so ids changed in place (still inside the codebook, so decoding would not notice) raise
:class:`~neurorvq.file_io.DamagedFileError` naming the folder and shard. The checksum lives in the shard rather
than the manifest so that one shard read on its own is verified too. Shards written before checksums (no
record) are read unverified, as before.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import torch

from neurorvq.errors import InputError
from neurorvq.file_io import read_safetensors, write_safetensors
from neurorvq.nn.spectral import AmplitudeStats
from neurorvq.shard_folder import FolderFormat, ShardFolder
from neurorvq.tokenizers import Encoded, SideField, TokenLayout

FORMAT = "neurorvq-tokens"
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
_AMPLITUDE = ("amplitude_mean", "amplitude_std")
MANIFEST = "manifest.json"
IDENTITY_KEYS = ("config_hash", "weights_hash")
"""Manifest / shard ``info`` fields that identify the tokenizer; tokens of different tokenizers differ in one."""
REWRITE = ("re-run `neurorvq tokenize` into a fresh --out folder (or with --overwrite) to write the tokens again "
           "from the tokenizer checkpoint")
OVERWRITE = ("choose another --out (TokenWriter: output_dir), or pass --overwrite true (TokenWriter: overwrite: true): "
             "it replaces token files only, other files stay")


def weights_hash(model: torch.nn.Module) -> str:
    """Short SHA-256 of every tensor of ``model``'s state dict (tokens of two tokenizers are comparable only
    if this matches)."""
    digest = hashlib.sha256()
    for key, value in sorted(model.state_dict().items()):
        digest.update(key.encode())
        digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


@dataclass
class TokenShard:
    """One shard read back: ``ids [windows, streams, L]`` int64, ``side`` (``{name: [windows, *shape]}``), the
    tokenizer's ``layout``, ``channels`` (names) and ``channel_ids``, the metadata of the module docstring in
    ``info``, and ``label``/``subject`` in ``extras``."""

    ids: torch.Tensor
    side: dict[str, torch.Tensor]
    layout: TokenLayout
    channels: list[str]
    channel_ids: torch.Tensor
    info: dict[str, Any]
    extras: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def tokens(self) -> torch.Tensor:
        """The ids grouped ``[windows, groups, levels, L]`` (uniform layouts: NeuroRVQ's ``[W, S, N, L]``)."""
        return self.layout.grouped(self.ids)

    @property
    def amplitude_stats(self) -> AmplitudeStats:
        """NeuroRVQ's side information as :class:`~neurorvq.nn.spectral.AmplitudeStats` (``[windows]`` each)."""
        if not all(k in self.side for k in _AMPLITUDE):
            raise InputError(f"these tokens carry side information {sorted(self.side)}, not NeuroRVQ's amplitude "
                             "statistics; decode them with their own tokenizer's detokenize")
        return AmplitudeStats(self.side["amplitude_mean"], self.side["amplitude_std"])

    def encoded(self) -> Encoded:
        """The shard as :class:`~neurorvq.tokenizers.Encoded`, for ``tokenizer.detokenize(shard.encoded(),
        shard.channels)``."""
        n_channels = len(self.channels)
        return Encoded(self.ids, dict(self.side), self.layout, n_channels, self.ids.shape[-1] // max(n_channels, 1))


def write_shard(path: Path, encoded: Encoded, channel_ids: torch.Tensor, info: dict[str, Any],
                extras: dict[str, torch.Tensor] | None = None) -> None:
    """Write one shard of ``encoded`` (contents: the module docstring, with its checksum) to ``path`` atomically,
    with ordinary file permissions. ``info`` gains the format version and the layout."""
    layout = encoded.layout
    dtype = torch.int16 if layout.max_codebook_size <= 32767 else torch.int32
    tensors = {"tokens": encoded.ids.to(dtype).contiguous().cpu(), "channel_ids": channel_ids.long().contiguous().cpu()}
    for spec in layout.side:
        tensors[spec.name] = encoded.side[spec.name].float().contiguous().cpu()
    for key, value in (extras or {}).items():
        tensors[key] = value.long().contiguous().cpu()
    info = {**info, "format_version": FORMAT_VERSION, "layout": layout.to_dict()}
    write_safetensors(path, tensors, {"info": json.dumps(info)}, tmp=path.with_suffix(".tmp"),  # complete or absent
                      checksums=True)


def read_tokens(path: str | Path) -> TokenShard:
    """Read one shard written by ``neurorvq tokenize`` (format 2, or 1; see the module docstring), verifying its
    checksum (when it has one); a damaged shard raises :class:`~neurorvq.file_io.DamagedFileError`."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"token shard '{path}' does not exist")
    metadata, tensors = read_safetensors(path, what="token shard", fix=REWRITE)
    try:
        info = json.loads(metadata.get("info", "{}"))
    except ValueError:
        info = {}
    version = info.get("format_version") if isinstance(info, dict) else None
    if version not in READABLE_VERSIONS or "tokens" not in tensors:
        raise InputError(f"'{path}' is not a neurorvq token shard (formats {list(READABLE_VERSIONS)})")
    tokens = tensors["tokens"].long()
    if version == 1:  # NeuroRVQ's [W, S, N, L] with the amplitude statistics
        w, s, n, l = tokens.shape
        layout = TokenLayout.uniform([f"b{i}" for i in range(s)], n, int(info["codebook_size"]),
                                     side=tuple(SideField(k) for k in _AMPLITUDE))
        ids = tokens.reshape(w, s * n, l)
    else:
        layout = TokenLayout.from_dict(info["layout"])
        ids = tokens
    side_names = [f.name for f in layout.side]
    side = {k: tensors[k] for k in side_names}
    extras = {k: v for k, v in tensors.items() if k not in ("tokens", "channel_ids", *side_names)}
    return TokenShard(ids, side, layout, list(info["channels"]), tensors["channel_ids"], info, extras)


def read_token_dir(directory: str | Path) -> Iterator[TokenShard]:
    """Every shard of a token folder, in manifest order."""
    directory = Path(directory)
    manifest = read_manifest(directory)
    for name in manifest["shards"]:
        yield read_tokens(directory / name)


def read_manifest(directory: str | Path) -> dict[str, Any]:
    """The manifest of a finished token folder (format 2, or 1; with or without the ``format`` key); a missing,
    foreign or newer manifest raises :class:`InputError` saying what to do."""
    return ShardFolder(directory, FOLDER).read_manifest()


# ------------------------------------------------------------------------------------ writing a folder
def shard_name(number: int, rank: int = 0, world_size: int = 1) -> str:
    """``tokens-00000.safetensors``, or ``tokens-rank001-00000.safetensors`` when several ranks write."""
    if world_size > 1:
        return f"tokens-rank{rank:03d}-{number:05d}.safetensors"
    return f"tokens-{number:05d}.safetensors"


def shard_info(path: str | Path) -> dict[str, Any]:
    """The ``info`` metadata of a token shard plus ``windows`` (header only, not verified); :class:`InputError` if
    it is not a token shard."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            info = json.loads((f.metadata() or {}).get("info", "{}"))
            windows = int(f.get_slice("tokens").get_shape()[0]) if "tokens" in f.keys() else None
    except Exception as exc:  # noqa: BLE001 - a truncated or foreign file
        raise InputError(f"'{path}' is not a readable neurorvq token shard ({exc})") from exc
    if not isinstance(info, dict) or info.get("format_version") not in READABLE_VERSIONS or windows is None:
        raise InputError(f"'{path}' is not a neurorvq token shard (formats {list(READABLE_VERSIONS)})")
    return {**info, "windows": windows}


def _legacy_manifest(doc: dict) -> bool:
    """A manifest written before the ``format`` key: format 1 or 2 with a list of shard names."""
    shards = doc.get("shards")
    return (doc.get("format_version") in READABLE_VERSIONS and isinstance(shards, list)
            and all(isinstance(name, str) for name in shards))


FOLDER = FolderFormat(name="token folder", format=FORMAT, version=FORMAT_VERSION, readable=READABLE_VERSIONS,
                      shard_pattern="tokens-*[0-9].safetensors", identity_keys=IDENTITY_KEYS, fix=REWRITE,
                      contents="tokens of another tokenizer", manifest_name=MANIFEST, foreign_files="refuse",
                      legacy=_legacy_manifest, shard_info=shard_info)
"""The token folder's rules (:class:`~neurorvq.shard_folder.FolderFormat`): files of no token format in a folder
without tokens are refused unless overwrite (`--out .` must not write into a working folder)."""


__all__ = ["FOLDER", "FORMAT", "FORMAT_VERSION", "IDENTITY_KEYS", "MANIFEST", "OVERWRITE", "READABLE_VERSIONS",
           "REWRITE", "TokenShard", "read_manifest", "read_token_dir", "read_tokens", "shard_info", "shard_name",
           "weights_hash", "write_shard"]
