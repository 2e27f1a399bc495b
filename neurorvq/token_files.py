"""On-disk token format written by ``neurorvq tokenize`` and read back by :func:`read_tokens`.

A token folder holds ``manifest.json`` and shards ``tokens-00000.safetensors``, ... Each shard holds windows
that share one channel set:

- ``tokens``: ``[windows, branch, depth, channels*patches]`` int16 (int32 if the codebook has > 32767 codes),
  channel-major token order;
- ``amplitude_mean``, ``amplitude_std``: ``[windows]`` float32, the per-window log-amplitude statistics that
  decoding needs (tokens do not carry the absolute amplitude);
- ``channel_ids``: ``[channels]`` int64 vocabulary ids; optional ``label``/``subject`` ``[windows]`` int64;

and, as safetensors metadata, JSON ``info``: modality, channel names, sampling rate (Hz), patch length
(samples), patches per channel, unit, the tokenizer's ``config_hash`` (its spec) and ``weights_hash`` (its
codebooks and weights). ``manifest.json`` repeats the tokenizer identity and lists the shards.

Each shard also records, in its safetensors metadata, a SHA-256 checksum of every tensor and of ``info``
(:func:`neurorvq.file_io.write_safetensors` with ``checksums=True``); :func:`read_tokens` verifies it on every
read, so ids changed in place (still inside the codebook, so decoding would not notice) raise
:class:`~neurorvq.file_io.DamagedFileError` naming the folder and shard. The checksum lives in the shard rather
than the manifest so that one shard read on its own is verified too. Shards written before checksums (no
record) are read unverified, as before; the format version is unchanged.
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

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
REWRITE = ("re-run `neurorvq tokenize` into a fresh --out folder (or with --overwrite) to write the tokens again "
           "from the tokenizer checkpoint")


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
    """One shard read back: ``tokens [windows, S, N, L]`` int64, ``amplitude_stats`` (``[windows]`` each),
    ``channels`` (names), and the metadata of the module docstring in ``info``."""

    tokens: torch.Tensor
    amplitude_stats: AmplitudeStats
    channels: list[str]
    channel_ids: torch.Tensor
    info: dict[str, Any]
    extras: dict[str, torch.Tensor] = field(default_factory=dict)


def write_shard(path: Path, tokens: torch.Tensor, stats: AmplitudeStats, channel_ids: torch.Tensor,
                info: dict[str, Any], extras: dict[str, torch.Tensor] | None = None) -> None:
    """Write one shard (contents: the module docstring, with its checksum) to ``path`` atomically, with ordinary
    file permissions."""
    dtype = torch.int16 if int(info["codebook_size"]) <= 32767 else torch.int32
    tensors = {"tokens": tokens.to(dtype).contiguous().cpu(),
               "amplitude_mean": stats.mean.float().contiguous().cpu(),
               "amplitude_std": stats.std.float().contiguous().cpu(),
               "channel_ids": channel_ids.long().contiguous().cpu()}
    for key, value in (extras or {}).items():
        tensors[key] = value.long().contiguous().cpu()
    write_safetensors(path, tensors, {"info": json.dumps(info)}, tmp=path.with_suffix(".tmp"),  # complete or absent
                      checksums=True)


def read_tokens(path: str | Path) -> TokenShard:
    """Read one shard written by ``neurorvq tokenize`` (see the module docstring for its contents), verifying its
    checksum (when it has one); a damaged shard raises :class:`~neurorvq.file_io.DamagedFileError`."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"token shard '{path}' does not exist")
    metadata, tensors = read_safetensors(path, what="token shard", fix=REWRITE)
    try:
        info = json.loads(metadata.get("info", "{}"))
    except ValueError:
        info = {}
    if not isinstance(info, dict) or info.get("format_version") != FORMAT_VERSION or "tokens" not in tensors:
        raise InputError(f"'{path}' is not a neurorvq token shard (format {FORMAT_VERSION})")
    extras = {k: v for k, v in tensors.items() if k not in ("tokens", "amplitude_mean", "amplitude_std", "channel_ids")}
    return TokenShard(tensors["tokens"].long(), AmplitudeStats(tensors["amplitude_mean"], tensors["amplitude_std"]),
                      list(info["channels"]), tensors["channel_ids"], info, extras)


def read_token_dir(directory: str | Path) -> Iterator[TokenShard]:
    """Every shard of a token folder, in order."""
    directory = Path(directory)
    manifest = read_manifest(directory)
    for name in manifest["shards"]:
        yield read_tokens(directory / name)


def read_manifest(directory: str | Path) -> dict[str, Any]:
    path = Path(directory) / MANIFEST
    if not path.is_file():
        raise InputError(f"'{directory}' holds no {MANIFEST}: not a finished neurorvq token folder")
    return json.loads(path.read_text())
