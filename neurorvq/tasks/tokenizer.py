"""LightningModule that trains a tokenizer of any family, NeuroRVQ by default (the official code ships no tokenizer
training).

Batches are dicts ``{"signal": [B, C, T] float (spec unit), "channel_ids": [B, C] or [C] int64}`` as every
neurorvq DataModule yields them. Optimiser, schedule and their defaults are method.md §5's **proposals**
(the paper gives none): AdamW (0.9, 0.99), lr 1e-4, weight decay 1e-4 (not on norms, biases and embedding
tables), 10% linear warm-up then cosine decay to 1% of lr, stepped per batch. Gradient clipping and
precision are Trainer settings (``gradient_clip_val``, ``precision: 32 | 16-mixed | bf16-mixed``).
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import lightning as L
import torch

from neurorvq.errors import ConfigError, NeuroRVQError
from neurorvq.models.tokenizer import NeuroRVQTokenizer
from neurorvq.registry import MODELS_CHECKPOINT_KEY, SPEC_CHECKPOINT_KEY, get_modality
from neurorvq.compat import SIGNAL_FIELDS, check_compatible
from neurorvq.families.neurorvq import NeuroRVQOptions
from neurorvq.families.options import TokenizerOptions, coerce_options
from neurorvq.tasks.channels import ChannelRows, model_ids
from neurorvq.tasks.optim import warmup_cosine_scheduler, weight_decay_groups

SCALAR_LOSSES = NeuroRVQTokenizer.loss_names  # kept for imports; the task reads its tokenizer's loss_names


def unchecked(method: Any) -> dict[str, bool]:
    """``{"check_inputs": False}`` if ``method`` takes that keyword (a NeuroRVQ tokenizer's ``forward``/``tokenize``),
    else ``{}`` (a family that validates by its own option). Decided once per task, passed on every step: the data
    pipeline validated the batch, and the checks would synchronise the device."""
    return {"check_inputs": False} if "check_inputs" in inspect.signature(method).parameters else {}


class TrainingDiverged(NeuroRVQError, RuntimeError):
    """A loss term became NaN/Inf; training stops and keeps the last good checkpoint."""


class TokenizerTask(L.LightningModule):
    """Train (or evaluate) a tokenizer of any family (:class:`NeuroRVQTokenizer` by default).

    Args:
        modality: registered modality name (``eeg``, ``ecg``, ``emg``, or a plug-in's) or a spec file.
        tokenizer: the tokenizer's family and options: :class:`~neurorvq.families.neurorvq.NeuroRVQOptions` by
            default (a recipe's ``tokenizer: {encoder_depth: 2, codebook_size: 1024}`` sets its fields; ``{}`` keeps
            the modality's architecture), another family's by ``{class_path: neurorvq.families.toy.ToyVQOptions,
            init_args: {...}}``. Python callers may pass a mapping of the default class's fields.
        init_from: optional starting weights: anything :func:`neurorvq.load` reads (a ``save_pretrained`` folder,
            a ``.ckpt``, an official file); ``tokenizer`` fields changed from their defaults are applied to it.
        lr, weight_decay, betas, warmup_fraction, min_lr_ratio: optimiser and schedule (proposals, see above).
        figure_every_n_epochs: log an original-vs-reconstruction figure every N validation epochs (0 = never).
        figure_channels: channels shown in that figure.
        compile: run the tokenizer's forward under ``torch.compile`` (made in :meth:`setup`, in the training process;
            the first batch's k-means initialisation stays eager).
    """

    def __init__(self, modality: str = "eeg", tokenizer: TokenizerOptions = NeuroRVQOptions(),
                 init_from: str | None = None, lr: float = 1e-4, weight_decay: float = 1e-4,
                 betas: tuple[float, float] = (0.9, 0.99), warmup_fraction: float = 0.1, min_lr_ratio: float = 0.01,
                 figure_every_n_epochs: int = 5, figure_channels: int = 3, compile: bool = False) -> None:
        super().__init__()
        options = coerce_options(tokenizer, NeuroRVQOptions(), "tokenizer")
        self.save_hyperparameters(ignore=["tokenizer"])
        self.hparams["tokenizer"] = options.as_hparams()  # plain data in checkpoints, not a pickled dataclass
        if init_from:
            self.tokenizer = load_tokenizer(init_from, **options.changes())
            if options.changes() and options.family != self.tokenizer.family:
                raise ConfigError(f"init_from '{init_from}' holds a '{self.tokenizer.family}' tokenizer but the "
                                  f"tokenizer options are {type(options).__name__} ('{options.family}'); give that "
                                  "family's options or leave them out")
        else:
            self.tokenizer = options.build(modality)
        signal = get_modality(modality)  # modality may name a spec file (ppg.json)
        check_compatible(signal, self.tokenizer, fields=SIGNAL_FIELDS,
                         headline=f"init_from '{init_from}' holds a '{self.tokenizer.contract.name}' tokenizer but "
                                  f"modality is '{signal.name}' (modality vs tokenizer)")
        self._val_batch: dict[str, torch.Tensor] | None = None
        self._rows: ChannelRows | None = None
        self._forward_options = unchecked(self.tokenizer.forward)
        self._compiled_forward: Any = None

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state["_compiled_forward"] = None  # a spawned or copied task compiles again in its own setup
        return state

    def setup(self, stage: str) -> None:
        self._rows = ChannelRows.for_task(self, self.tokenizer, "tokenizer")
        if self.hparams.get("compile") and self._compiled_forward is None:
            self._compiled_forward = torch.compile(self.tokenizer.forward)

    def model_ids(self, channel_ids: torch.Tensor) -> torch.Tensor:
        """A batch's channel ids (the data's vocabulary) as the tokenizer's rows."""
        return model_ids(self._rows, channel_ids)

    @property
    def spec(self):
        return self.tokenizer.spec

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # how to rebuild the model, so the checkpoint reloads without the registry or the spec file its recipe named
        checkpoint[MODELS_CHECKPOINT_KEY] = {"format": 2, "models": {
            "tokenizer": {"kind": "tokenizer", "prefix": "tokenizer.", **self.tokenizer.to_config()}}}
        if hasattr(self.tokenizer, "spec"):  # NeuroRVQ's flat spec, as neurorvq 0.1 read it
            checkpoint[SPEC_CHECKPOINT_KEY] = self.tokenizer.spec.to_dict()

    def forward(self, signal: torch.Tensor, channel_ids: torch.Tensor):
        return self.tokenizer(signal, channel_ids)

    # ------------------------------------------------------------------------------------ steps
    def _step(self, batch: dict[str, torch.Tensor], stage: str) -> dict[str, torch.Tensor]:
        forward = self.tokenizer if self._compiled_forward is None else self._compiled_forward
        _, outputs = forward(batch["signal"], self.model_ids(batch["channel_ids"]), **self._forward_options)
        batch_size = batch["signal"].shape[0]
        on_step = stage == "train"
        for name in self.tokenizer.loss_names:
            self.log(f"{stage}/{name}", outputs[name], on_step=on_step, on_epoch=not on_step,
                     prog_bar=name == "loss", batch_size=batch_size, sync_dist=not on_step)
        return outputs

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        outputs = self._step(batch, "train")
        if self._is_logging_step():
            self._stop_if_diverged(outputs)
            self._log_codebooks(outputs, "train")
        return outputs["loss"]

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        outputs = self._step(batch, "val")
        if batch_idx == 0:
            self._log_codebooks(outputs, "val")
            self._val_batch = {k: v[:1].detach() for k, v in batch.items() if torch.is_tensor(v)}

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._step(batch, "test")

    def predict_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> dict[str, torch.Tensor]:
        channel_ids = self.model_ids(batch["channel_ids"])
        encoded = self.tokenizer.tokenize(batch["signal"], channel_ids)
        out = {"ids": encoded.ids, **encoded.side, "channel_ids": channel_ids}
        if encoded.layout.is_uniform:
            out["tokens"] = encoded.grouped()  # [B, G, N, L], as before the token layout existed
        return out

    # ------------------------------------------------------------------------------------ monitoring
    def _is_logging_step(self) -> bool:
        every = getattr(self.trainer, "log_every_n_steps", 50) if self._trainer is not None else 1
        return self.global_step % max(1, every) == 0

    def _stop_if_diverged(self, outputs: dict[str, torch.Tensor]) -> None:
        names = self.tokenizer.loss_names
        values = torch.stack([outputs[n].detach().float() for n in names])
        finite = torch.isfinite(values)
        if bool(finite.all()):  # one host read per logging step, where logging reads values anyway
            return
        bad = [n for n, ok in zip(names, finite.tolist()) if not ok and n != "loss"] or ["loss"]
        ckpt = getattr(getattr(self.trainer, "checkpoint_callback", None), "last_model_path", "") or \
            getattr(getattr(self.trainer, "checkpoint_callback", None), "best_model_path", "")
        raise TrainingDiverged(
            f"loss term(s) {bad} became NaN/Inf at step {self.global_step}; training stopped. The last good "
            f"checkpoint is kept{f' at {ckpt}' if ckpt else ''}: resume from it with a lower lr, gradient "
            "clipping (trainer.gradient_clip_val) or 32-bit precision")

    def _log_codebooks(self, outputs: dict[str, torch.Tensor], stage: str) -> None:
        """Per-stream codebook usage and perplexity of the batch (``[G, N]`` or ``[H]``), when the tokenizer
        reports them, under the layout's stream names (NeuroRVQ: ``b{branch}_d{level}``)."""
        if "usage" not in outputs or "perplexity" not in outputs:
            return
        usage, perplexity = outputs["usage"].detach().flatten(), outputs["perplexity"].detach().flatten()
        for i, stream in enumerate(self.tokenizer.layout.stream_names):
            self.log(f"{stage}_codebook/usage_{stream}", usage[i], on_step=stage == "train",
                     on_epoch=stage != "train", batch_size=1)
            self.log(f"{stage}_codebook/perplexity_{stream}", perplexity[i], on_step=stage == "train",
                     on_epoch=stage != "train", batch_size=1)

    def on_validation_epoch_end(self) -> None:
        every = self.hparams.figure_every_n_epochs
        if not every or self._val_batch is None or self.trainer.sanity_checking:
            return
        if self.current_epoch % every:
            return
        experiment = getattr(self.logger, "experiment", None)
        if experiment is None or not hasattr(experiment, "add_figure"):
            return
        from neurorvq.eval.figures import reconstruction_figure, reconstruction_title, window_mse

        batch = self._val_batch
        with torch.no_grad():
            channel_ids = self.model_ids(batch["channel_ids"])
            rec, _ = self.tokenizer(batch["signal"], channel_ids)
        ids = channel_ids.reshape(-1, batch["signal"].shape[1])[0].tolist()
        contract = self.tokenizer.contract
        names = [contract.channels[i] for i in ids]
        signal, reconstruction = batch["signal"][0].float().cpu().numpy(), rec[0].float().cpu().numpy()
        subject = batch.get("subject")
        title = reconstruction_title("val", window=0, epoch=self.current_epoch, mse=window_mse(signal, reconstruction),
                                     subject=int(subject.reshape(-1)[0]) if subject is not None else None)
        # batches carry signals in the spec's unit (module docstring), and so does the reconstruction
        fig = reconstruction_figure(signal, reconstruction, names, contract.sampling_rate,
                                    max_channels=self.hparams.figure_channels, title=title, unit=contract.unit)
        experiment.add_figure("val/reconstruction", fig, global_step=self.global_step)

    # ------------------------------------------------------------------------------------ optimisation
    def configure_optimizers(self):
        groups = weight_decay_groups(self.tokenizer, self.hparams.weight_decay)
        optimizer = torch.optim.AdamW(groups, lr=self.hparams.lr, betas=tuple(self.hparams.betas))
        total = max(1, int(self.trainer.estimated_stepping_batches))
        scheduler = warmup_cosine_scheduler(optimizer, total, self.hparams.warmup_fraction, self.hparams.min_lr_ratio)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def load_tokenizer(path: str | Path, **overrides: Any) -> NeuroRVQTokenizer:
    """A tokenizer from a Lightning ``.ckpt`` of :class:`TokenizerTask`, a ``save_pretrained`` folder, an official
    ``.pt``/``.safetensors`` file, ``hf://owner/name`` or the official repo id: ``neurorvq.load(path,
    kind="tokenizer", **overrides)``."""
    from neurorvq.loading import load

    return load(path, kind="tokenizer", **overrides)
