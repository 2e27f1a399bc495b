"""On-disk feature format written by ``neurorvq predict`` with :class:`neurorvq.tasks.features.FeatureWriter`,
read back by :func:`read_features` (one shard at a time) or :func:`load_pooled` (all pooled features at once).

A feature folder holds ``manifest.json`` and shards ``features-00000.safetensors``, ... (under DDP each rank
writes its own: ``features-rank001-00000.safetensors``). Each shard holds windows that share one channel set
and one window length (so per-token features have one shape ``L = channels x patches``):

- ``pooled``: ``[windows, S*D]`` float32, the mean over tokens (the input of the fine-tuning head);
- ``per_token``: ``[windows, L, S*D]`` float32, channel-major token order (absent with ``per_token: false``);
- ``channel_ids``: ``[channels]`` int64 vocabulary ids;
- optional ``label`` / ``subject`` ``[windows]`` int64 (when the batches carry them) and ``index``
  ``[windows]`` int64, the window's position in the predict dataset (when Lightning can tell it);

and, as safetensors metadata, JSON ``info``: format name and version, modality, channel names, patches per
channel, embed dim ``S*D``, sampling rate (Hz), patch length (samples), the FM's ``config_hash`` (its spec) and
``weights_hash`` (:func:`neurorvq.token_files.weights_hash` of its weights), rank and dataloader index.

``manifest.json`` (written last, by rank 0: its presence means the folder is complete) repeats the FM identity
(modality, ``config_hash``, ``weights_hash``, checkpoint path, spec), the embed dim, the number of windows and
lists the shards in order (file, windows, channel names, patches, rank).

Features of two FMs are comparable only if ``weights_hash`` matches; a folder holding another FM's features is
not written into unless ``overwrite`` (only this format's files are ever replaced; other files are left alone).

Each shard records, in its safetensors metadata, a SHA-256 checksum of every tensor and of ``info``
(:func:`neurorvq.file_io.write_safetensors` with ``checksums=True``), verified by :func:`read_feature_shard` for
the tensors it reads (``per_token=False`` skips, and so does not hash, the per-token tensor): features changed in
place raise :class:`~neurorvq.file_io.DamagedFileError` naming the folder and shard. In the shard, not the
manifest, so that a shard read on its own is verified too. Shards written before checksums (no record) are read
unverified, as before; the format version is unchanged.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import torch

from neurorvq.errors import InputError
from neurorvq.file_io import read_safetensors, write_safetensors
from neurorvq.shard_folder import FolderFormat, ShardFolder

FORMAT = "neurorvq-features"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
IDENTITY_KEYS = ("modality", "config_hash", "weights_hash")
"""Manifest / shard fields that identify the FM; features from different FMs differ in one of them."""
EXTRA_KEYS = ("label", "subject", "index")
REWRITE = ("extract the features again into a fresh output_dir (`neurorvq predict` with the FeatureWriter, e.g. "
           "recipes/eeg_fm_features.yaml)")


def shard_name(number: int, rank: int = 0, world_size: int = 1) -> str:
    """``features-00000.safetensors``, or ``features-rank001-00000.safetensors`` when several ranks write."""
    if world_size > 1:
        return f"features-rank{rank:03d}-{number:05d}.safetensors"
    return f"features-{number:05d}.safetensors"


@dataclass
class FeatureShard:
    """One shard read back: ``pooled [windows, S*D]``, ``per_token [windows, L, S*D]`` (``None`` when not
    written or not loaded), ``channels`` (names) and ``channel_ids [C]``, the metadata of the module docstring
    in ``info``, and ``extras`` (``label``, ``subject``, ``index`` ``[windows]`` where written)."""

    pooled: torch.Tensor
    per_token: torch.Tensor | None
    channels: list[str]
    channel_ids: torch.Tensor
    info: dict[str, Any]
    extras: dict[str, torch.Tensor] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.pooled.shape[0])

    @property
    def label(self) -> torch.Tensor | None:
        return self.extras.get("label")

    @property
    def subject(self) -> torch.Tensor | None:
        return self.extras.get("subject")


def write_feature_shard(path: Path, pooled: torch.Tensor, channel_ids: torch.Tensor, info: dict[str, Any],
                        per_token: torch.Tensor | None = None, extras: dict[str, torch.Tensor] | None = None) -> None:
    """Write one shard atomically (a shard is either complete or absent), with its checksum. ``info`` gets the
    format fields."""
    tensors = {"pooled": pooled.float().contiguous().cpu(), "channel_ids": channel_ids.long().contiguous().cpu()}
    if per_token is not None:
        tensors["per_token"] = per_token.float().contiguous().cpu()
    for key, value in (extras or {}).items():
        tensors[key] = value.long().reshape(-1).contiguous().cpu()
    info = {"format": FORMAT, "format_version": FORMAT_VERSION, **info, "windows": int(pooled.shape[0]),
            "per_token": per_token is not None}
    write_safetensors(path, tensors, {"info": json.dumps(info)}, tmp=path.with_suffix(".tmp"),  # complete or absent
                      checksums=True)


def shard_info(path: Path) -> dict[str, Any]:
    """The ``info`` metadata of a shard (header only, not verified); raises :class:`InputError` if it is not a
    feature shard."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            info = json.loads((f.metadata() or {}).get("info", "{}"))
    except Exception as exc:  # noqa: BLE001 - a truncated or foreign file
        raise InputError(f"'{path}' is not a readable neurorvq feature shard ({exc})") from exc
    return _checked_info(path, info)


def _checked_info(path: Path, info: Any) -> dict[str, Any]:
    if not isinstance(info, dict) or info.get("format") != FORMAT or info.get("format_version") != FORMAT_VERSION:
        raise InputError(f"'{path}' is not a neurorvq feature shard (format {FORMAT} version {FORMAT_VERSION})")
    return info


def read_feature_shard(path: str | Path, per_token: bool = True) -> FeatureShard:
    """Read one shard (see the module docstring), verifying the checksum of what it reads (when the shard has
    one; a damaged shard raises :class:`~neurorvq.file_io.DamagedFileError`); ``per_token=False`` skips the
    per-token tensor (large)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"feature shard '{path}' does not exist")
    keys = ("pooled", "channel_ids", *EXTRA_KEYS, *(("per_token",) if per_token else ()))
    metadata, tensors = read_safetensors(path, keys, what="feature shard", fix=REWRITE)
    try:
        info = json.loads(metadata.get("info", "{}"))
    except ValueError:
        info = None
    info = _checked_info(path, info)
    if "pooled" not in tensors or "channel_ids" not in tensors:
        raise InputError(f"'{path}' is not a neurorvq feature shard (it lacks 'pooled' or 'channel_ids')")
    extras = {k: tensors[k] for k in EXTRA_KEYS if k in tensors}
    return FeatureShard(tensors["pooled"], tensors.get("per_token"), list(info["channels"]), tensors["channel_ids"],
                        info, extras)


def read_manifest(directory: str | Path) -> dict[str, Any]:
    """The manifest of a finished feature folder; a missing, foreign or newer manifest raises
    :class:`InputError` saying what to do."""
    return ShardFolder(directory, FOLDER).read_manifest()


def read_features(directory: str | Path, per_token: bool = True) -> Iterator[FeatureShard]:
    """Every shard of a feature folder, in manifest order (rank 0's shards first under DDP).

    Example::

        for shard in read_features("runs/eeg_fm_features"):
            shard.pooled      # [n, S*D]
            shard.per_token   # [n, channels*patches, S*D]
            shard.channels, shard.label, shard.subject
    """
    directory = Path(directory)
    manifest = read_manifest(directory)
    for entry in manifest["shards"]:
        yield read_feature_shard(directory / entry["file"], per_token=per_token)


def load_pooled(directory: str | Path) -> dict[str, torch.Tensor]:
    """All pooled features of a folder at once (per-token features are not loaded): ``{"pooled": [N, S*D],
    "shard": [N]`` (shard position in the manifest), and ``"label"``, ``"subject"``, ``"index"`` ``[N]`` when
    every shard has them``}`` — ready for a linear probe or scikit-learn."""
    shards = list(read_features(directory, per_token=False))
    manifest = read_manifest(directory)
    if not shards:
        return {"pooled": torch.zeros(0, int(manifest["embed_dim"])), "shard": torch.zeros(0, dtype=torch.long)}
    out = {"pooled": torch.cat([s.pooled for s in shards]),
           "shard": torch.cat([torch.full((len(s),), i, dtype=torch.long) for i, s in enumerate(shards)])}
    for key in EXTRA_KEYS:
        if all(key in s.extras for s in shards):
            out[key] = torch.cat([s.extras[key] for s in shards])
    return out


# ------------------------------------------------------------------------------------ writing a folder
FOLDER = FolderFormat(name="feature folder", format=FORMAT, version=FORMAT_VERSION, readable=(FORMAT_VERSION,),
                      shard_pattern="features-*[0-9].safetensors", identity_keys=IDENTITY_KEYS, fix=REWRITE,
                      contents="features of another foundation model", manifest_name=MANIFEST,
                      foreign_files="ignore", shard_info=shard_info)
"""The feature folder's rules (:class:`~neurorvq.shard_folder.FolderFormat`): other files are left alone."""
OVERWRITE = "choose another output_dir, or set overwrite: true in the FeatureWriter's init_args to replace them"


def format_files(directory: str | Path) -> list[Path]:
    """This format's files in ``directory`` (manifest, shards, unfinished ``.tmp`` writes); nothing else."""
    return ShardFolder(directory, FOLDER).format_files()


def check_output_dir(directory: str | Path, identity: dict[str, Any], overwrite: bool) -> None:
    """Raise :class:`~neurorvq.errors.ConfigError` when ``directory`` holds features of another FM (or a foreign
    ``manifest.json``) and ``overwrite`` is false. Features of the same FM (``identity``: modality, config
    and weights hash) are replaced silently; other files are ignored."""
    ShardFolder(directory, FOLDER).check_writable(identity, overwrite, OVERWRITE)


def clear_feature_files(directory: str | Path) -> None:
    """Remove this format's files from ``directory`` (manifest first, so a half-cleared folder is never taken for
    a finished one) and create the folder if needed."""
    ShardFolder(directory, FOLDER).clear()


def write_manifest(directory: str | Path, manifest: dict[str, Any]) -> Path:
    """Write ``manifest.json`` atomically (with the format fields and ``writer``); call it after every shard is
    written."""
    return ShardFolder(directory, FOLDER).write_manifest(manifest)


__all__ = ["FOLDER", "FORMAT", "FORMAT_VERSION", "MANIFEST", "FeatureShard", "check_output_dir", "clear_feature_files",
           "format_files", "load_pooled", "read_feature_shard", "read_features", "read_manifest", "shard_info",
           "shard_name", "write_feature_shard", "write_manifest"]
