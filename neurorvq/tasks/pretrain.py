"""Masked-token pretraining of the NeuroRVQ foundation model (method.md §4.2).

A frozen tokenizer (in eval mode, its quantizer state frozen, identical on every rank since every rank loads
the same file) turns each batch into target ids ``[B, H, L]`` (``H = S*N`` streams, its token layout) inside
the same step; the FM sees the raw
patches with a random half of the tokens replaced by its mask token (and the complementary view), and one
batched head predicts all S x N ids. Optimiser defaults are method.md §5's proposals (LaBraM-base-like): AdamW
(0.9, 0.98), lr 5e-4, weight decay 0.05, warm-up then cosine; mask ratio 0.5.

Diagnostics (:mod:`neurorvq.tasks.pretrain_diagnostics`): the steps count, on the device, the codes of every
training target and of the validation masked targets per (branch, depth) head, plus the validation hits. At each
validation epoch end and each training epoch end the counts are summed over the ranks and turned into a table —
masked accuracy beside the accuracy of always predicting the most frequent training code, the tokenizer's
codebook usage and perplexity on the targets — that is logged, written to ``<log_dir>/pretrain_diagnostics.json``
(rank 0) and stored in every checkpoint (``checkpoint["neurorvq_pretrain_diagnostics"]``).

Other families' FMs (LaBraM's student, ``fm: {class_path: neurorvq.families.labram.LaBraMFMOptions}``) take part
through the protocol plus four optional members of the FM class, each with NeuroRVQ's behaviour as the default when
absent: ``target_overrides(tokenizer)`` (classmethod: the construction arguments the tokenizer fixes; absent: the
NeuroRVQ head sizes and channel rows), ``mask_rule`` (:mod:`neurorvq.tasks.masking`; absent: ``round``),
``target_autocast(device_type)`` (the precision the frozen tokenizer runs in; absent: the trainer's) and
``no_weight_decay_names()`` (absent: :data:`~neurorvq.tasks.optim.NO_DECAY_NAMES`). The loss is CE over the masked
tokens plus CE over the complement, each a mean over its tokens and streams, unless the FM brings its own. BrainRVQ's
hierarchical student (``fm: {class_path: neurorvq.families.brainrvq_fm.BrainRVQFMOptions}``) uses three more optional
members: ``pretrain_mask(x, channels, ratio=, generator=, epoch=, epochs=)`` (the mask of a batch, e.g. its
importance-guided curriculum over the epochs; absent: :func:`~neurorvq.tasks.masking.token_mask` under
``mask_rule``), ``conditions_on_targets`` (True: ``forward_pretrain`` gets ``targets=`` the ids, for teacher forcing)
and ``pretrain_loss(out, targets, mask)`` (its level-weighted loss; absent: the CE above). Teacher forcing follows the
FM's mode: training steps feed the true codes of the lower levels, validation steps the argmax, so the logged
accuracies are teacher-forced in training and free-running in validation.
"""

from __future__ import annotations

import contextlib
from typing import Any, Mapping

import lightning as L
import torch

from neurorvq.errors import ConfigError
from neurorvq.registry import MODELS_CHECKPOINT_KEY, SPEC_CHECKPOINT_KEY, get_modality
from neurorvq.families.neurorvq import NeuroRVQFMOptions
from neurorvq.families.options import FMOptions, coerce_options
from neurorvq.models.fm import masked_token_loss
from neurorvq.compat import SIGNAL_FIELDS, check_compatible
from neurorvq.tasks.channels import ChannelRows, model_ids
from neurorvq.tasks.masking import token_mask
from neurorvq.tasks.optim import NO_DECAY_NAMES, warmup_cosine_scheduler, weight_decay_groups
from neurorvq.tasks.pretrain_diagnostics import (CHECKPOINT_KEY, add_code_counts, diagnostics_table,
                                                 write_diagnostics_json)
from neurorvq.tasks.tokenizer import load_tokenizer, unchecked


class PretrainTask(L.LightningModule):
    """Masked-token pretraining.

    Args:
        tokenizer: the frozen tokenizer (TokenizerTask ``.ckpt``, ``save_pretrained`` folder or official file).
        modality: must be the tokenizer's.
        fm: the FM's options (:class:`~neurorvq.families.neurorvq.NeuroRVQFMOptions`: ``depth``, the backbone's
            architecture; ``{depth: 4}`` in a recipe; another family's by ``{class_path: ..., init_args: ...}``);
            the heads' vocabulary and token depth come from the tokenizer's layout.
        mask_ratio: fraction of tokens masked per sample (0.5 as LaBraM; the complement is predicted too; the count
            rule is the FM's ``mask_rule``).
        mask_seed: masks are drawn from a generator seeded with ``(mask_seed, global_step)``: reproducible and
            the same after resuming.

    Diagnostics: :attr:`diagnostics` holds the latest table (:func:`~neurorvq.tasks.pretrain_diagnostics.
    diagnostics_table` plus ``epoch``, ``global_step``, ``stage``, ``tokenizer`` and ``validation``), refreshed
    at every validation epoch end (sanity check excluded) and every training epoch end. Training counts cover
    the current training epoch (reset at its start; a validation in the middle of an epoch sees the part done so
    far; after a mid-epoch resume, the part since the resume); validation counts cover the latest validation run
    and are kept until the next one starts, so a training epoch without validation reports them beside its own
    training counts, ``validation`` saying when they were taken. Logged: ``val_majority_accuracy/b{s}_d{n}``,
    ``val/majority_accuracy`` and ``val/accuracy_above_majority`` (validation epoch end; ``val/masked_accuracy``
    and ``val_accuracy/b{s}_d{n}`` are logged by the steps), ``targets_codebook_usage/b{s}_d{n}``,
    ``targets_perplexity/b{s}_d{n}``, ``targets/codebook_usage`` and ``targets/perplexity`` (training epoch end,
    when the epoch's training counts are complete).
    """

    def __init__(self, tokenizer: str, modality: str = "eeg", fm: FMOptions = NeuroRVQFMOptions(),
                 mask_ratio: float = 0.5, mask_seed: int = 0, lr: float = 5e-4, weight_decay: float = 0.05,
                 betas: tuple[float, float] = (0.9, 0.98), warmup_fraction: float = 0.1,
                 min_lr_ratio: float = 0.01) -> None:
        super().__init__()
        for key in ("vocab_size", "n_quantizers"):
            if isinstance(fm, Mapping) and key in fm:
                raise ConfigError(f"fm.{key} comes from the tokenizer; remove it from the recipe")
        options = coerce_options(fm, NeuroRVQFMOptions(), "fm")
        self.save_hyperparameters(ignore=["fm"])
        self.hparams["fm"] = options.as_hparams()  # plain data in checkpoints, not a pickled dataclass
        frozen = load_tokenizer(tokenizer).eval()
        signal = get_modality(modality)  # modality may name a spec file (ppg.json)
        check_compatible(signal, frozen, fields=SIGNAL_FIELDS,
                         headline=f"tokenizer '{tokenizer}' is a '{frozen.contract.name}' tokenizer but modality is "
                                  f"'{signal.name}' (modality vs tokenizer)")
        layout = frozen.layout
        if not layout.is_uniform:
            raise ConfigError(f"tokenizer '{tokenizer}' gives code groups of unequal depth or codebook size "
                              f"({dict(zip(layout.groups, layout.depths))}); the FM's heads need a uniform layout")
        target_overrides = getattr(options.model_class(), "target_overrides", None)
        if target_overrides is not None:  # the FM's family says what the tokenizer fixes
            self.fm = options.build(modality, pretraining=True, **target_overrides(frozen))
        else:
            if getattr(frozen, "spec", None) is None:
                raise ConfigError(f"tokenizer '{tokenizer}' is a '{frozen.family}' tokenizer and the FM options are "
                                  f"{type(options).__name__}: give the FM options of a family that can learn its ids "
                                  "(fm: {class_path: ..., init_args: {...}})")
            same_rows = {} if frozen.contract.channels == signal.channels else {"channels": frozen.contract.channels}
            self.fm = options.build(modality, pretraining=True, vocab_size=layout.max_codebook_size,
                                    n_quantizers=layout.depths[0], **same_rows)  # channels indexed as the tokenizer
            if self.fm.spec.branches != frozen.spec.branches or self.fm.spec.patch_length != frozen.spec.patch_length:
                raise ConfigError(f"tokenizer '{tokenizer}' has branches/patch length that differ from the FM's "
                                  f"({frozen.spec.branches} vs {self.fm.spec.branches}); the token targets must come "
                                  "from the same patches")
        check_compatible(frozen, self.fm, fields=SIGNAL_FIELDS, headline=f"tokenizer '{tokenizer}' and the FM read "
                         "different signals (tokenizer vs FM)")
        if frozen.contract.channels != self.fm.contract.channels:
            raise ConfigError(f"tokenizer '{tokenizer}' has a {len(frozen.contract.channels)}-channel vocabulary and "
                              f"the FM ('{modality}') a different {len(self.fm.contract.channels)}-channel one; the "
                              "FM must index channels as its tokenizer does: use the tokenizer's modality")
        self.fm.check_targets(layout)
        self.stream_names = layout.stream_names
        for p in frozen.parameters():
            p.requires_grad_(False)
        self.tokenizer = frozen
        self._tokenize_options = unchecked(frozen.tokenize)  # no input checks on the step (as the FM's below)
        self.fm.options["check_inputs"] = False  # the data pipeline validated the batch: no device syncs
        # diagnostics accumulators (int64, per rank): plain tensors made on the batch's device, not buffers, since
        # DDP broadcasts rank 0's buffers before every forward and would overwrite the other ranks' counts
        shape = (len(layout.groups), layout.depths[0], layout.max_codebook_size)
        self._count_shapes = {"train_code_counts": shape, "val_code_counts": shape, "val_correct": shape[:2],
                              "val_masked": ()}
        self._counts: dict[str, torch.Tensor] = {}
        self.diagnostics: dict[str, Any] | None = None
        self._rows: ChannelRows | None = None
        self._validation_at: dict[str, int] | None = None

    def setup(self, stage: str) -> None:
        # the tokenizer and the FM read the same signal and vocabulary (checked above): one translation serves both
        self._rows = ChannelRows.for_task(self, self.fm, "foundation model")

    def train(self, mode: bool = True):
        super().train(mode)
        self.tokenizer.eval()  # always frozen, quantizer statistics included
        return self

    def _mask(self, batch: int, length: int, device, x: torch.Tensor | None = None,
              channels: torch.Tensor | None = None) -> torch.Tensor:
        """The ``[batch, length]`` mask of this step: the FM's ``pretrain_mask`` on the windows ``x`` when it has one
        (given the epoch, for curricula), else a random mask under its ``mask_rule``."""
        generator = torch.Generator().manual_seed(int(self.hparams.mask_seed) * 1_000_003 + int(self.global_step))
        hook = getattr(self.fm, "pretrain_mask", None)
        if hook is not None and x is not None:
            epochs = self.trainer.max_epochs if self._trainer is not None else None
            return hook(x, channels, ratio=self.hparams.mask_ratio, generator=generator, epoch=int(self.current_epoch),
                        epochs=epochs if epochs is not None and epochs > 0 else None)
        rule = getattr(self.fm, "mask_rule", "round")
        return token_mask(batch, length, self.hparams.mask_ratio, rule, generator, device)

    def _targets(self, x: torch.Tensor, channels: torch.Tensor) -> torch.Tensor:
        """The frozen tokenizer's ids ``[B, H, L]`` (H streams, group-major), in the precision the FM asks for."""
        precision = getattr(self.fm, "target_autocast", None)
        with precision(x.device.type) if precision is not None else contextlib.nullcontext():
            return self.tokenizer.tokenize(x, channels, **self._tokenize_options).ids

    def _step(self, batch: dict[str, torch.Tensor], stage: str) -> torch.Tensor:
        x, channels = batch["signal"], model_ids(self._rows, batch["channel_ids"])
        targets = self._targets(x, channels)
        b, h, l = targets.shape
        s, n = self._count_shapes["train_code_counts"][:2]
        mask = self._mask(b, l, x.device, x, channels)
        if getattr(self.fm, "conditions_on_targets", False):
            out = self.fm.forward_pretrain(x, channels, mask, targets=targets)
        else:
            out = self.fm.forward_pretrain(x, channels, mask)
        own_loss = getattr(self.fm, "pretrain_loss", None)
        loss = own_loss(out, targets, mask) if own_loss is not None else masked_token_loss(out, targets, mask)
        flat = targets.transpose(0, 1)  # [H, B, L]
        masked_targets = flat[:, mask]  # [H, M]
        hits = out.logits.argmax(-1) == masked_targets
        correct = hits.float().mean(-1).reshape(s, n)
        with torch.no_grad():  # diagnostics counts: device-side updates only
            if stage == "train":
                add_code_counts(self._count("train_code_counts", x.device), flat.reshape(s, n, b * l))
            elif stage == "val":
                add_code_counts(self._count("val_code_counts", x.device), masked_targets.reshape(s, n, -1))
                self._count("val_correct", x.device).add_(hits.sum(-1).reshape(s, n))
                self._count("val_masked", x.device).add_(masked_targets.shape[1])
        on_step = stage == "train"
        self.log(f"{stage}/loss", loss, prog_bar=True, on_step=on_step, on_epoch=not on_step, batch_size=b,
                 sync_dist=not on_step)
        self.log(f"{stage}/masked_accuracy", correct.mean(), on_step=on_step, on_epoch=not on_step, batch_size=b,
                 sync_dist=not on_step)
        for name, value in zip(self.stream_names, correct.flatten()):
            self.log(f"{stage}_accuracy/{name}", value, on_step=on_step, on_epoch=not on_step, batch_size=b)
        return loss

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._step(batch, "val")

    # ------------------------------------------------------------------------------------ diagnostics
    def _count(self, name: str, device: torch.device) -> torch.Tensor:
        """The accumulator ``name`` on ``device`` (created as zeros, or moved there, on first use)."""
        counts = self._counts.get(name)
        if counts is None:
            counts = torch.zeros(self._count_shapes[name], dtype=torch.long, device=device)
        elif counts.device != device:
            counts = counts.to(device)
        self._counts[name] = counts
        return counts

    def local_diagnostic_counts(self) -> dict[str, torch.Tensor]:
        """This rank's accumulators (copies): ``train_code_counts [S, N, V]`` (current training epoch),
        ``val_code_counts [S, N, V]``, ``val_correct [S, N]`` and ``val_masked []`` (latest validation run)."""
        return {name: self._count(name, self.device).clone() for name in self._count_shapes}

    def on_train_epoch_start(self) -> None:
        self._count("train_code_counts", self.device).zero_()

    def on_validation_epoch_start(self) -> None:
        for name in ("val_code_counts", "val_correct", "val_masked"):
            self._count(name, self.device).zero_()

    def _refresh_diagnostics(self, stage: str) -> dict[str, Any]:
        """Sum the counts over the ranks (every rank calls this), build the table, keep it, write it (rank 0)."""
        parts = [self._count(name, self.device) for name in self._count_shapes]
        summed = self.trainer.strategy.reduce(torch.cat([p.flatten() for p in parts]), reduce_op="sum")
        train, val, correct, total = (chunk.view(shape) for chunk, shape in
                                      zip(summed.cpu().split([p.numel() for p in parts]), self._count_shapes.values()))
        table = diagnostics_table(train, val, correct, int(total))
        self.diagnostics = {"epoch": int(self.current_epoch), "global_step": int(self.global_step), "stage": stage,
                            "tokenizer": str(self.hparams.tokenizer), "validation": self._validation_at, **table}
        folder = self.trainer.log_dir or self.trainer.default_root_dir  # log_dir broadcasts: every rank asks
        if self.trainer.is_global_zero and folder:
            write_diagnostics_json(self.diagnostics, folder)
        return self.diagnostics

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            return
        self._validation_at = {"epoch": int(self.current_epoch), "global_step": int(self.global_step)}
        table = self._refresh_diagnostics("validation_epoch_end")
        metrics = self._per_head(table, "majority_accuracy", "val_majority_accuracy")
        mean = table["mean"]
        if mean["majority_accuracy"] is not None:
            metrics["val/majority_accuracy"] = mean["majority_accuracy"]
            metrics["val/accuracy_above_majority"] = mean["masked_accuracy"] - mean["majority_accuracy"]
        self._log_table_metrics(metrics)

    def on_train_epoch_end(self) -> None:
        table = self._refresh_diagnostics("train_epoch_end")
        metrics: dict[str, float] = {}
        for name in ("codebook_usage", "perplexity"):
            metrics.update(self._per_head(table, name, f"targets_{name}"))
            if table["mean"][name] is not None:
                metrics[f"targets/{name}"] = table["mean"][name]
        self._log_table_metrics(metrics)

    def _per_head(self, table: dict[str, Any], name: str, prefix: str) -> dict[str, float]:
        values = [v for row in table[name] for v in row]  # [group][level] -> the layout's stream order
        return {f"{prefix}/{stream}": v for stream, v in zip(self.stream_names, values) if v is not None}

    def _log_table_metrics(self, metrics: dict[str, float]) -> None:
        # the values are already summed over the ranks, hence equal on all of them: the mean over ranks that
        # sync_dist takes changes nothing, and avoids Lightning's epoch-level warning under DDP
        if metrics:
            self.log_dict(metrics, sync_dist=True)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.diagnostics is not None:
            checkpoint[CHECKPOINT_KEY] = self.diagnostics
        # how to rebuild both models, as TokenizerTask does: neurorvq.load needs neither the registry nor a spec file
        checkpoint[MODELS_CHECKPOINT_KEY] = {"format": 2, "models": {
            "fm": {"kind": "foundation_model", "prefix": "fm.", **self.fm.to_config()},
            "tokenizer": {"kind": "tokenizer", "prefix": "tokenizer.", **self.tokenizer.to_config()}}}
        if hasattr(self.fm, "spec"):
            checkpoint[SPEC_CHECKPOINT_KEY] = self.fm.spec.to_dict()  # NeuroRVQ's flat spec, as neurorvq 0.1 read it

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.diagnostics = checkpoint.get(CHECKPOINT_KEY)
        if self.diagnostics is not None:
            self._validation_at = self.diagnostics.get("validation")

    def configure_optimizers(self):
        no_decay = self.fm.no_weight_decay_names() if hasattr(self.fm, "no_weight_decay_names") else NO_DECAY_NAMES
        groups = weight_decay_groups(self.fm, self.hparams.weight_decay, no_decay)
        optimizer = torch.optim.AdamW(groups, lr=self.hparams.lr, betas=tuple(self.hparams.betas))
        total = max(1, int(self.trainer.estimated_stepping_batches))
        scheduler = warmup_cosine_scheduler(optimizer, total, self.hparams.warmup_fraction, self.hparams.min_lr_ratio)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
