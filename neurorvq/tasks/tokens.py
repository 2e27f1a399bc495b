"""Token files through Lightning's prediction loop: :class:`TokenExtractionTask` (a frozen tokenizer whose
``predict_step`` tokenizes) and the :class:`TokenWriter` callback that writes its output in the token format of
:mod:`neurorvq.token_files`. ``neurorvq tokenize`` runs them (:func:`neurorvq.commands.tokenize`); a recipe can
too::

    model: {class_path: neurorvq.tasks.tokens.TokenExtractionTask, init_args: {tokenizer: runs/tok/last.ckpt}}
    trainer: {callbacks: [{class_path: neurorvq.tasks.tokens.TokenWriter, init_args: {output_dir: tokens}}]}

Under DDP every rank writes its own shards (``tokens-rank001-00000.safetensors``; ``output_dir`` must be on a
filesystem all ranks share) and, once all are written, rank 0 writes ``manifest.json``. Lightning's prediction
sampler hands each window to one rank (:func:`neurorvq.data.sampling.unrepeated`); a shard's ``index`` tells each
window's position in the dataset.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Sequence

import lightning as L
import torch
from lightning.pytorch.callbacks import BasePredictionWriter

from neurorvq.errors import ConfigError
from neurorvq.shard_folder import ShardFolder
from neurorvq.tasks.channels import ChannelRows, model_ids
from neurorvq.token_files import FOLDER, OVERWRITE, shard_info, shard_name, weights_hash, write_shard
from neurorvq.tokenizers import Encoded

_EXTRAS = ("label", "subject")


def token_identity(tokenizer: Any) -> dict[str, str]:
    """What identifies a tokenizer's tokens (:data:`neurorvq.token_files.IDENTITY_KEYS`): its config and weights
    hashes."""
    return {"config_hash": tokenizer.config_hash(), "weights_hash": weights_hash(tokenizer)}


def data_headline(source: str, tokenizer: Any, datamodule: Any) -> str:
    """The first words of the refusal of data whose signal does not fit ``tokenizer`` (loaded from ``source``)."""
    data = getattr(getattr(datamodule, "spec", None), "name", "?")
    name = tokenizer.contract.name
    headline = (f"checkpoint '{source}' is a '{name}' tokenizer but the data is '{data}'" if name != data
                else f"checkpoint '{source}' does not fit the '{data}' data")
    return headline + " (data vs tokenizer)"


class TokenExtractionTask(L.LightningModule):
    """A frozen tokenizer whose ``predict_step`` returns its token ids.

    Args:
        tokenizer: any family's tokenizer: a TokenizerTask ``.ckpt``, a ``save_pretrained`` folder, an official
            checkpoint or a Hub id (:func:`neurorvq.loading.load` with ``kind="tokenizer"``).

    ``predict_step`` returns a list with one part per channel set in the batch (one, unless a batch mixes
    montages of one size), each ``{"encoded": Encoded (ids [b, streams, C*patches], side fields [b, ...]),
    "channel_ids": int64 [C] (the tokenizer's rows), "positions": int64 [b] rows of the batch or None (all),
    "label"/"subject": int64 [b] when the batch has them}``. On ``setup`` the DataModule's signal (where it has a
    ``spec``) must fit the tokenizer's: rate, unit, patch length, channels, window length.
    """

    def __init__(self, tokenizer: str) -> None:
        super().__init__()
        self.save_hyperparameters()
        from neurorvq.loading import load

        model = load(tokenizer, kind="tokenizer")
        model.eval().requires_grad_(False)
        self.tokenizer = model
        self.tokenizer_source = str(tokenizer)
        self._rows: ChannelRows | None = None

    def setup(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        self._rows = ChannelRows.bind(datamodule, self.tokenizer,
                                      headline=data_headline(self.tokenizer_source, self.tokenizer, datamodule))

    def predict_step(self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0) -> list[dict[str, Any]]:
        x, ids = batch["signal"], model_ids(self._rows, batch["channel_ids"]).long()
        b = x.shape[0]
        if ids.ndim == 1 or bool((ids == ids[0]).all()):
            groups = [(ids if ids.ndim == 1 else ids[0], None)]
        else:  # montages of one size mixed in a batch: one part per channel set
            sets, inverse = torch.unique(ids, dim=0, return_inverse=True)
            groups = [(row, torch.nonzero(inverse == g).reshape(-1)) for g, row in enumerate(sets)]
        parts = []
        for row, positions in groups:
            part: dict[str, Any] = {"encoded": self.tokenizer.tokenize(x if positions is None else x[positions], row),
                                    "channel_ids": row, "positions": positions}
            for key in _EXTRAS:
                value = batch.get(key)
                if torch.is_tensor(value) and value.numel() == b:
                    value = value.reshape(b).long()
                    part[key] = value if positions is None else value[positions]
            parts.append(part)
        return parts


class TokenWriter(BasePredictionWriter):
    """Write the predictions of :class:`TokenExtractionTask` to ``output_dir`` (format:
    :mod:`neurorvq.token_files`) in shards of about ``shard_windows`` windows of one channel set: a shard closes at
    the first batch that reaches ``shard_windows`` or when the channel set changes.

    Args:
        output_dir: token folder (created). Token files already there are replaced when they hold the same
            tokenizer's tokens; another tokenizer's raise :class:`ConfigError` unless ``overwrite``, and so does a
            non-empty folder without tokens. Only token files are ever removed; other files stay.
        shard_windows: windows per shard.
        overwrite: replace another tokenizer's tokens, or write beside other files.
        split: the data split tokenized, recorded in the manifest (``neurorvq tokenize`` sets it).
    """

    def __init__(self, output_dir: str, shard_windows: int = 4096, overwrite: bool = False,
                 split: Optional[str] = None) -> None:
        super().__init__(write_interval="batch")
        if int(shard_windows) < 1:
            raise ConfigError(f"shard_windows is {shard_windows}; give at least 1")
        self.output_dir = Path(output_dir)
        self.shard_windows = int(shard_windows)
        self.overwrite = bool(overwrite)
        self.split = split
        self._reset()

    def _reset(self) -> None:
        self._tokenizer: Any = None
        self._source = ""
        self._identity: dict[str, str] = {}
        self._rank, self._world = 0, 1
        self._key: tuple | None = None
        self._pending: dict[str, list] = {}
        self._count = 0
        self._written = 0

    @property
    def folder(self) -> ShardFolder:
        return ShardFolder(self.output_dir, FOLDER)

    # ------------------------------------------------------------------------------------ hooks
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        if stage != "predict":
            return
        tokenizer = getattr(pl_module, "tokenizer", None)
        if not callable(getattr(tokenizer, "tokenize", None)):
            raise ConfigError(f"TokenWriter writes token ids; the model is a {type(pl_module).__name__} without a "
                              "'tokenizer' (use neurorvq.tasks.tokens.TokenExtractionTask)")
        self._reset()
        self._tokenizer, self._source = tokenizer, str(getattr(pl_module, "tokenizer_source", ""))
        self._rank, self._world = int(trainer.global_rank), int(trainer.world_size)
        self._identity = token_identity(tokenizer)
        self.folder.check_writable(self._identity, self.overwrite, OVERWRITE)  # every rank: the same verdict
        trainer.strategy.barrier("token_writer_checked")
        if trainer.is_global_zero:
            self.folder.clear()
        trainer.strategy.barrier("token_writer_cleared")
        self.output_dir.mkdir(parents=True, exist_ok=True)
        trainer.predict_loop.return_predictions = False  # the tokens are on disk

    def write_on_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, prediction: Any,
                           batch_indices: Optional[Sequence[int]], batch: Any, batch_idx: int,
                           dataloader_idx: int) -> None:
        if not isinstance(prediction, list) or not all(isinstance(p, dict) and isinstance(p.get("encoded"), Encoded)
                                                       for p in prediction):
            raise ConfigError("TokenWriter expects predict_step to return a list of {'encoded': Encoded, "
                              "'channel_ids': ...} parts (TokenExtractionTask does)")
        for part in prediction:
            encoded: Encoded = part["encoded"].to("cpu")
            channel_ids = part["channel_ids"].detach().long().cpu()
            key = (int(dataloader_idx), tuple(channel_ids.tolist()), encoded.n_patches)
            if self._key is not None and key != self._key:
                self._flush()
            self._key = key
            self._pending.setdefault("encoded", []).append(encoded)
            for name in _EXTRAS:
                if torch.is_tensor(part.get(name)):
                    self._pending.setdefault(name, []).append(part[name].detach().reshape(-1).long().cpu())
            if batch_indices is not None and len(batch_indices) == len(batch["signal"]):
                index = torch.as_tensor(list(batch_indices), dtype=torch.long)
                positions = part.get("positions")
                self._pending.setdefault("index", []).append(index if positions is None else index[positions.cpu()])
            self._count += len(encoded)
            if self._count >= self.shard_windows:
                self._flush()

    def on_predict_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._flush()

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        """The manifest, once every rank has written its shards: ``teardown`` runs on every rank (also one whose
        loader was empty), and only after a successful run; an interrupted run leaves shards without a manifest."""
        if stage != "predict" or self._tokenizer is None:
            return
        self._flush()
        trainer.strategy.barrier("token_writer_shards")
        if trainer.is_global_zero:
            self._write_manifest()
        trainer.strategy.barrier("token_writer_manifest")
        self._tokenizer = None

    # ------------------------------------------------------------------------------------ writing
    def _flush(self) -> None:
        if not self._pending:
            return
        pending, (_, channel_ids, _) = self._pending, self._key
        self._pending, self._count = {}, 0
        encoded = Encoded.cat(pending.pop("encoded"))
        n = len(encoded)
        extras = {k: torch.cat(v) for k, v in pending.items()}
        extras = {k: v for k, v in extras.items() if v.shape[0] == n}  # a field some batches lacked is dropped
        contract = self._tokenizer.contract
        info = {"family": self._tokenizer.family, "modality": contract.name,
                "channels": [contract.channels[i] for i in channel_ids], "sampling_rate": contract.sampling_rate,
                "patch_length": contract.patch_length, "n_patches": encoded.n_patches, "unit": contract.unit,
                "codebook_size": encoded.layout.max_codebook_size, **self._identity}
        name = shard_name(self._written, self._rank, self._world)
        self._written += 1
        write_shard(self.output_dir / name, encoded, torch.tensor(channel_ids, dtype=torch.long), info, extras)

    def _write_manifest(self) -> None:
        """Rank 0, after every rank's shards are written: list them (rank 0's first) with their window counts."""
        shards = self.folder.shards()
        tokenizer = self._tokenizer
        manifest = {"family": tokenizer.family, "modality": tokenizer.contract.name,
                    "layout": tokenizer.layout.to_dict(), "split": self.split,
                    "windows": sum(shard_info(p)["windows"] for p in shards), "shards": [p.name for p in shards],
                    "checkpoint": self._source, "world_size": self._world,
                    **({"spec": tokenizer.spec.to_dict()} if hasattr(tokenizer, "spec") else {}), **self._identity}
        self.folder.write_manifest(manifest)


__all__ = ["TokenExtractionTask", "TokenWriter", "data_headline", "token_identity"]
