"""Foundation-model features for downstream models: ``neurorvq predict`` with :class:`FeatureExtractionTask`
and the :class:`FeatureWriter` callback writes, for every window of the data's predict split, the pooled
``[S*D]`` and per-token ``[L, S*D]`` features of :meth:`NeuroRVQFoundationModel.embed` (format:
:mod:`neurorvq.feature_files`)::

    neurorvq predict --config recipes/eeg_fm_features.yaml --model.init_args.fm=runs/eeg_fm/checkpoints/last.ckpt

Under DDP every rank writes its own shards (``features-rank001-00000.safetensors``, ...; ``output_dir`` must be
on a filesystem all ranks share); after a barrier rank 0 reads the shard headers and writes ``manifest.json``.
Which windows a rank sees is the DataLoader's business: Lightning's predict sampler does not repeat windows,
and ``index`` (when stored) tells each window's position in the predict dataset.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Sequence

import lightning as L
import torch
from lightning.pytorch.callbacks import BasePredictionWriter

from neurorvq.errors import ConfigError
from neurorvq.registry import get_modality
from neurorvq.feature_files import (FOLDER, check_output_dir, clear_feature_files, shard_info, shard_name,
                                    write_feature_shard, write_manifest)
from neurorvq.shard_folder import ShardFolder
from neurorvq.models.fm import NeuroRVQFoundationModel
from neurorvq.compat import SIGNAL_FIELDS, check_compatible
from neurorvq.tasks.channels import ChannelRows, model_ids
from neurorvq.tasks.finetune import check_data_spec, load_fm
from neurorvq.token_files import weights_hash



class FeatureExtractionTask(L.LightningModule):
    """A frozen foundation model whose ``predict_step`` returns its features.

    Args:
        fm: the FM: a ``save_pretrained`` folder, a PretrainTask ``.ckpt`` or an official checkpoint file
            (:func:`neurorvq.tasks.finetune.load_fm`).
        modality: expected modality; ``None`` = the FM's. A different one raises :class:`ConfigError`.
        per_token: also return the per-token features ``[B, L, S*D]`` (L = channels x patches); ``False`` keeps
            only the pooled ``[B, S*D]`` (far smaller on disk).

    ``predict_step`` returns ``{"pooled": float32 [B, S*D], "per_token": float32 [B, L, S*D] (if per_token),
    "channel_ids": int64 [B, C], "n_patches": int}`` plus ``"label"`` / ``"subject"`` ``[B]`` when the batch has
    them. On ``setup`` the DataModule's signal (where it has a ``spec``) must fit the FM's: sampling rate, unit and
    patch length equal, its channels in the FM's vocabulary, its windows within the FM's temporal table.
    """

    def __init__(self, fm: str, modality: Optional[str] = None, per_token: bool = True) -> None:
        super().__init__()
        self.save_hyperparameters()
        model = load_fm(fm)
        if modality is not None:
            signal = get_modality(modality)
            check_compatible(signal, model, fields=SIGNAL_FIELDS,
                             headline=f"foundation model '{fm}' is a '{model.contract.name}' model but modality is "
                                      f"'{signal.name}' (give a checkpoint whose signal fits it or leave modality out; "
                                      "modality vs model)")
        model.eval().requires_grad_(False)
        self.fm: NeuroRVQFoundationModel = model
        self.fm_source = str(fm)
        self.per_token = bool(per_token)
        self._rows: ChannelRows | None = None

    @property
    def embed_dim(self) -> int:
        """Width of one feature vector, S*D."""
        return self.fm.feature_dim

    def setup(self, stage: str) -> None:
        self._rows = check_data_spec(getattr(self.trainer, "datamodule", None), self.fm, "extract features with",
                                     self.fm_source)

    def forward(self, x: torch.Tensor, channels) -> tuple[torch.Tensor, torch.Tensor]:
        return self.fm.embed(x, channels)

    def predict_step(self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0) -> dict[str, Any]:
        x, ids = batch["signal"], model_ids(self._rows, batch["channel_ids"])
        per_token, pooled = self.fm.embed(x, ids)
        b = x.shape[0]
        ids = ids.long()
        if ids.ndim == 1:
            ids = ids.unsqueeze(0).expand(b, -1)
        out: dict[str, Any] = {"pooled": pooled.float(), "channel_ids": ids,
                               "n_patches": per_token.shape[1] // ids.shape[-1]}
        if self.per_token:
            out["per_token"] = per_token.float()
        for key in ("label", "subject"):
            value = batch.get(key)
            if torch.is_tensor(value) and value.numel() == b:
                out[key] = value.reshape(b).long()
        return out


class FeatureWriter(BasePredictionWriter):
    """Write the predictions of :class:`FeatureExtractionTask` to ``output_dir`` (format:
    :mod:`neurorvq.feature_files`) batch by batch, in shards of about ``shard_windows`` windows, one channel set
    and window length per shard.

    Args:
        output_dir: feature folder (created). Files of this format already there are replaced when they hold
            the same FM's features; another FM's features raise :class:`ConfigError` unless ``overwrite``.
            Other files are left alone.
        shard_windows: windows per shard (a shard closes at the first batch that reaches it).
        overwrite: replace another FM's features.
        keep_predictions: also let ``trainer.predict`` return every prediction in memory. Off by default: the
            features are on disk, and per-token features of a whole dataset rarely fit in memory.
    """

    def __init__(self, output_dir: str, shard_windows: int = 4096, overwrite: bool = False,
                 keep_predictions: bool = False) -> None:
        super().__init__(write_interval="batch")
        if int(shard_windows) < 1:
            raise ConfigError(f"shard_windows is {shard_windows}; give at least 1")
        self.output_dir = Path(output_dir)
        self.shard_windows = int(shard_windows)
        self.overwrite = bool(overwrite)
        self.keep_predictions = bool(keep_predictions)
        self._reset()

    def _reset(self) -> None:
        self._pending: dict[tuple, dict[str, list[torch.Tensor]]] = {}
        self._counts: dict[tuple, int] = {}
        self._written = 0
        self._fm: NeuroRVQFoundationModel | None = None
        self._source = ""
        self._identity: dict[str, Any] = {}
        self._rank, self._world = 0, 1

    # ------------------------------------------------------------------------------------ hooks
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        if stage != "predict":
            return
        fm = getattr(pl_module, "fm", None)
        if not isinstance(fm, NeuroRVQFoundationModel):
            raise ConfigError(f"FeatureWriter writes foundation-model features; the model is a "
                              f"{type(pl_module).__name__} without an 'fm' (use neurorvq.tasks.features."
                              "FeatureExtractionTask)")
        self._reset()
        self._fm, self._source = fm, str(getattr(pl_module, "fm_source", ""))
        self._rank, self._world = int(trainer.global_rank), int(trainer.world_size)
        self._identity = {"modality": fm.spec.name, "config_hash": fm.spec.config_hash(),
                          "weights_hash": weights_hash(fm)}
        check_output_dir(self.output_dir, self._identity, self.overwrite)  # every rank: the same verdict
        trainer.strategy.barrier("feature_writer_checked")
        if trainer.is_global_zero:
            clear_feature_files(self.output_dir)
        trainer.strategy.barrier("feature_writer_cleared")
        self.output_dir.mkdir(parents=True, exist_ok=True)
        if not self.keep_predictions:
            trainer.predict_loop.return_predictions = False

    def write_on_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, prediction: Any,
                           batch_indices: Optional[Sequence[int]], batch: Any, batch_idx: int,
                           dataloader_idx: int) -> None:
        if not isinstance(prediction, dict) or "pooled" not in prediction or "channel_ids" not in prediction:
            raise ConfigError("FeatureWriter expects predict_step to return a dict with 'pooled' and "
                              "'channel_ids' (FeatureExtractionTask does)")
        pooled = prediction["pooled"].detach().float().cpu()
        b = pooled.shape[0]
        ids = prediction["channel_ids"].detach().long().cpu()
        if ids.ndim == 1:
            ids = ids.unsqueeze(0).expand(b, -1)
        tensors = {"pooled": pooled}
        if prediction.get("per_token") is not None:
            tensors["per_token"] = prediction["per_token"].detach().float().cpu()
        for key in ("label", "subject"):
            if torch.is_tensor(prediction.get(key)):
                tensors[key] = prediction[key].detach().reshape(-1).long().cpu()
        if batch_indices is not None and len(batch_indices) == b:
            tensors["index"] = torch.as_tensor(list(batch_indices), dtype=torch.long)
        n_patches = int(prediction.get("n_patches", 0))
        if bool((ids == ids[0]).all()):
            groups = [(ids[0], None)]
        else:  # a batch mixing channel sets of one size: one shard per set
            sets, inverse = torch.unique(ids, dim=0, return_inverse=True)
            groups = [(row, inverse == g) for g, row in enumerate(sets)]
        for row, rows in groups:
            key = (int(dataloader_idx), tuple(row.tolist()), n_patches)
            pending = self._pending.setdefault(key, {})
            for name, value in tensors.items():
                pending.setdefault(name, []).append(value if rows is None else value[rows])
            self._counts[key] = self._counts.get(key, 0) + (b if rows is None else int(rows.sum()))
            if self._counts[key] >= self.shard_windows:
                self._flush(key)

    def on_predict_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        for key in list(self._pending):
            self._flush(key)

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        """The manifest, once every rank has written its shards. ``teardown`` (unlike ``on_predict_end``) runs on
        every rank, also one whose loader was empty, and only after a successful run: an interrupted run leaves
        shards without a manifest."""
        if stage != "predict" or self._fm is None:
            return
        for key in list(self._pending):
            self._flush(key)
        trainer.strategy.barrier("feature_writer_shards")
        if trainer.is_global_zero:
            self._write_manifest()
        trainer.strategy.barrier("feature_writer_manifest")
        self._fm = None

    # ------------------------------------------------------------------------------------ writing
    def _flush(self, key: tuple) -> None:
        pending, n = self._pending.pop(key), self._counts.pop(key)
        dataloader_idx, channel_ids, n_patches = key
        spec = self._fm.spec
        cat = {name: torch.cat(values) for name, values in pending.items()}
        extras = {k: v for k, v in cat.items() if k not in ("pooled", "per_token") and v.shape[0] == n}
        info = {**self._identity, "channels": [spec.channels[i] for i in channel_ids], "n_patches": n_patches,
                "embed_dim": spec.num_branches * spec.embed_dim, "sampling_rate": spec.sampling_rate,
                "patch_length": spec.patch_length, "rank": self._rank, "dataloader": dataloader_idx}
        name = shard_name(self._written, self._rank, self._world)
        self._written += 1
        write_feature_shard(self.output_dir / name, cat["pooled"], torch.tensor(channel_ids, dtype=torch.long), info,
                            cat.get("per_token"), extras)

    def _write_manifest(self) -> None:
        """Rank 0, after every rank's shards are written: list them from their headers."""
        shards = []
        for path in ShardFolder(self.output_dir, FOLDER).shards():  # rank 0's first
            info = shard_info(path)
            shards.append({"file": path.name, "windows": info["windows"], "channels": info["channels"],
                           "n_patches": info["n_patches"], "rank": info["rank"], "dataloader": info["dataloader"],
                           "per_token": info["per_token"]})
        from neurorvq import __version__

        spec = self._fm.spec
        manifest = {**self._identity, "checkpoint": self._source, "embed_dim": spec.num_branches * spec.embed_dim,
                    "branches": spec.num_branches, "token_dim": spec.embed_dim,
                    "per_token": bool(shards) and all(s["per_token"] for s in shards),
                    "windows": sum(s["windows"] for s in shards), "world_size": self._world,
                    "neurorvq_version": __version__, "spec": spec.to_dict(), "shards": shards}
        write_manifest(self.output_dir, manifest)


__all__ = ["FeatureExtractionTask", "FeatureWriter"]
