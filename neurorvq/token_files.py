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
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import torch

from neurorvq.errors import InputError
from neurorvq.nn.spectral import AmplitudeStats

FORMAT_VERSION = 1
MANIFEST = "manifest.json"


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
    """Write one shard (contents: the module docstring) to ``path`` atomically, with ordinary file permissions."""
    from neurorvq.file_io import write_safetensors

    dtype = torch.int16 if int(info["codebook_size"]) <= 32767 else torch.int32
    tensors = {"tokens": tokens.to(dtype).contiguous().cpu(),
               "amplitude_mean": stats.mean.float().contiguous().cpu(),
               "amplitude_std": stats.std.float().contiguous().cpu(),
               "channel_ids": channel_ids.long().contiguous().cpu()}
    for key, value in (extras or {}).items():
        tensors[key] = value.long().contiguous().cpu()
    write_safetensors(path, tensors, {"info": json.dumps(info)}, tmp=path.with_suffix(".tmp"))  # complete or absent


def read_tokens(path: str | Path) -> TokenShard:
    """Read one shard written by ``neurorvq tokenize`` (see the module docstring for its contents)."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise InputError(f"token shard '{path}' does not exist")
    with safe_open(str(path), framework="pt") as f:
        info = json.loads((f.metadata() or {}).get("info", "{}"))
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    if info.get("format_version") != FORMAT_VERSION or "tokens" not in tensors:
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
