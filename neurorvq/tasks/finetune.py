"""Fine-tuning the NeuroRVQ foundation model on a labelled task (method.md §4.3).

Head: pooled features (``pooling``: the official ``mean`` over tokens, or a channel-aware option of
:mod:`neurorvq.models.pooling`) -> LayerNorm -> Linear (1 logit + BCE for two classes, CE otherwise, as the
official code).

Fine-tuning follows the backbone's provenance (``layer_decay_mode="auto"``, ``schedule="auto"``):

- a backbone from **official weights** gets the official recipe (method.md §4.3): per-tensor decay and the
  linear warm-up (from 0.1 lr) / linear decay (to 0.1 lr) schedule;
- a backbone **pretrained here**, and the **from-scratch control**, get true per-block decay and warm-up +
  cosine. The official per-tensor decay presumes a backbone after 50 epochs of large-scale pretraining: on a
  4-block model it gives the embeddings 0.044x and the convs 0.05-0.1x the head's lr, so a young or random
  backbone hardly moves. The learning rate (and decay) are then chosen on validation subjects of the training
  side (``neurorvq cv --grid``), never on test folds, with the same budget for every model of a comparison.

Layer-wise learning-rate decay modes:

- ``official`` (quirk Q9, for parity with the published numbers): per parameter *tensor*: every parameter but
  ``fc_norm``/``head`` gets ``lr * decay ** (P - i)`` with P the number of named parameters of the official
  fine-tuning model and i the tensor's index in the official enumeration order (:func:`official_tensor_order`:
  embeddings, then the temporal convs layer by layer, the blocks, the unused ``fc_norm_1..S`` (which occupy
  2 x S indices, 275 tensors in all at the official size), ``fc_norm``, ``head``);
- ``block``: true per-block decay: embeddings and the temporal conv ``decay ** (depth + 1)``, block k
  ``decay ** (depth - k)``, ``fc_norm``/``head`` the base lr;
- ``none``: every parameter at the base lr.

LaBraM's student (family ``labram_vqnsp``, ``fm_overrides: {class_path: neurorvq.families.labram.LaBraMFMOptions}``
or a LaBraM checkpoint) brings its own layer rule (the FM's ``layer_id(name, mode)``, families.md §B.8 LQ7): scale
``decay ** (depth + 1 - id)``, id 0 for ``cls_token``, ``pos_embed`` and the TemporalConv, b + 1 for block b,
depth + 1 for the head. Mode ``official`` puts ``time_embed`` in the top group (full lr, as LaBraM's code), ``block``
with the embeddings (the fix); ``auto`` follows the FM's ``parity`` option. Its schedule is warm-up + cosine, and
1-D tensors, biases and the cls/pos/time tables get no weight decay, as LaBraM fine-tunes. BrainRVQ's student
(``fm_overrides: {class_path: neurorvq.families.brainrvq_fm.BrainRVQFMOptions}``) is LaBraM's with a 30-row temporal
table and inherits all of it (families.md §A.6, §A.11 #13; ``time_embed`` at full lr in parity mode is its BQ2).

``drop_path`` sets stochastic depth on the backbone's blocks (linearly spaced from 0 to the rate; LaBraM 0.1).

Loss, class weights, label checks and metrics (balanced accuracy, Cohen's kappa, weighted F1, AUROC/AUC-PR) are
those of every classifier: :mod:`neurorvq.tasks.classification`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch

from neurorvq.compat import FIELDS, SIGNAL_FIELDS, check_compatible
from neurorvq.errors import ConfigError
from neurorvq.families.neurorvq import NeuroRVQFMOptions
from neurorvq.families.options import FMOptions, coerce_options
from neurorvq.models.fm import NeuroRVQFoundationModel
from neurorvq.registry import MODELS_CHECKPOINT_KEY, get_modality
from neurorvq.tasks.channels import ChannelRows, model_ids
from neurorvq.tasks.classification import ClassificationTask, balanced_class_weights, single_montage
from neurorvq.tasks.optim import SCHEDULES, lr_scheduler

HEAD_NAMES = ("fc_norm.", "head.", "pool.")  # a pooling with parameters is part of the head
LAYER_DECAY_MODES = ("auto", "official", "block", "none")


BLOCK_TENSORS = ("gamma_1", "gamma_2", "norm1.weight", "norm1.bias", "attn.q_bias", "attn.v_bias", "attn.qkv.weight",
                 "attn.q_norm.weight", "attn.q_norm.bias", "attn.k_norm.weight", "attn.k_norm.bias", "attn.proj.weight",
                 "attn.proj.bias", "norm2.weight", "norm2.bias", "mlp.fc1.weight", "mlp.fc1.bias", "mlp.fc2.weight",
                 "mlp.fc2.bias")
"""A block's tensors in the official enumeration order."""


def official_tensor_order(model: NeuroRVQFoundationModel) -> list[str | None]:
    """Our parameter names in the order the official fine-tuning model enumerates its tensors (``None`` for the
    official ``fc_norm_{b}.weight``/``.bias``, which exist there but are unused, method.md §4.3): ``cls_token``,
    ``pos_embed``, ``time_embed``; ``conv{k}_{b}``/``norm{k}_{b}`` for layer k, then branch b; the blocks;
    ``fc_norm_1..S``; ``fc_norm``; ``head``. At the official size: 275 entries, as method.md states."""
    branches = model.spec.num_branches
    layers = len(model.spec.branches[0].kernel_sizes)
    order: list[str | None] = ["backbone.cls_token", "backbone.pos_embed", "backbone.time_embed"]
    for k in range(layers):
        for b in range(branches):
            order += [f"temporal.branches.{b}.{kind}.{k}.{p}" for kind in ("convs", "norms") for p in ("weight", "bias")]
    for i in range(len(model.backbone.blocks)):
        order += [f"backbone.blocks.{i}.{t}" for t in BLOCK_TENSORS]
    order += [None] * (2 * branches)
    order += ["fc_norm.weight", "fc_norm.bias", "head.weight", "head.bias"]
    return order


def layer_decay_groups(model: NeuroRVQFoundationModel, lr: float, decay: float, weight_decay: float,
                       mode: str = "official", head_only: bool = False) -> list[dict[str, Any]]:
    """AdamW parameter groups with layer-wise lr decay (see the module docstring); one group per tensor."""
    if mode not in ("official", "block", "none"):
        raise ConfigError(f"layer_decay_mode is {mode!r}; use 'official' (per tensor, quirk Q9), 'block' or 'none'")
    if hasattr(model, "layer_id"):
        return layer_id_groups(model, lr, decay, weight_decay, mode, head_only)
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    depth = len(model.backbone.blocks)
    official = official_tensor_order(model)
    position = {name: i for i, name in enumerate(official) if name is not None}
    if mode == "official":
        unknown = [n for n, _ in named if n not in position and not n.startswith(HEAD_NAMES)]
        if unknown:
            raise ConfigError(f"layer_decay_mode 'official' needs the fine-tuning model (no pretraining parts); "
                              f"tensors {unknown[:4]} have no official position. Call drop_pretraining_parts() first")
    groups = []
    for name, param in named:
        is_head = name.startswith(HEAD_NAMES)
        if head_only and not is_head:
            param.requires_grad_(False)
            continue
        if is_head or mode == "none":
            scale = 1.0
        elif mode == "official":
            scale = decay ** (len(official) - position[name])
        else:
            parts = name.split(".")
            block = int(parts[2]) if name.startswith("backbone.blocks.") else -1
            scale = decay ** (depth - block) if block >= 0 else decay ** (depth + 1)
        groups.append({"params": [param], "lr": lr * scale, "lr_scale": scale, "weight_decay": weight_decay,
                       "name": name})
    return groups


def layer_id_groups(model: Any, lr: float, decay: float, weight_decay: float, mode: str = "official",
                    head_only: bool = False) -> list[dict[str, Any]]:
    """AdamW groups for an FM with its own layer rule (``model.layer_id(name, mode)`` in 0 .. depth + 1, LaBraM's):
    lr ``lr * decay ** (depth + 1 - id)`` (every tensor at ``lr`` in mode ``none``); no weight decay on 1-D tensors,
    biases and the names of ``model.no_weight_decay_names()``. One group per tensor."""
    top = len(model.backbone.blocks) + 1
    skip = tuple(model.no_weight_decay_names()) if hasattr(model, "no_weight_decay_names") else ()
    groups = []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        if head_only and not name.startswith(HEAD_NAMES):
            param.requires_grad_(False)
            continue
        scale = 1.0 if mode == "none" else decay ** (top - model.layer_id(name, mode))
        exempt = param.ndim == 1 or name.endswith(".bias") or any(part in name for part in skip)
        groups.append({"params": [param], "lr": lr * scale, "lr_scale": scale,
                       "weight_decay": 0.0 if exempt else weight_decay, "name": name})
    return groups


def check_data_spec(datamodule: Any, fm: Any, action: str, source: str | None = None,
                    fields: Sequence[str] = FIELDS) -> ChannelRows | None:
    """Refuse a DataModule (when it has a ``spec``) whose signal does not fit the FM ``fm`` in any of ``fields``
    (rate, unit, patch length, channels, window length: :mod:`neurorvq.compat`); ``action`` ("fine-tune", "extract
    features with") and ``source`` (the checkpoint) word the message. Returns the channel translation (None when the
    data's ids are the FM's rows)."""
    spec = getattr(datamodule, "spec", None)
    if spec is None:
        return None
    where = f" in '{source}'" if source else ""
    model = fm.contract
    headline = (f"the data's modality '{spec.name}' ({len(spec.channels)} channels) differs from the foundation "
                f"model's '{model.name}' ({len(model.channels)} channels){where}; {action} a model whose signal fits "
                "the data (data vs model)")
    return ChannelRows.bind(datamodule, fm, headline=headline, fields=fields)


def backbone_provenance(fm: str | None, model: NeuroRVQFoundationModel | None = None) -> str:
    """Where a fine-tuning backbone comes from: ``"scratch"`` (no checkpoint), ``"official"`` (official weights: an
    official file, the official Hub repo, or a ``save_pretrained`` folder of a model loaded from them, which records
    it) or ``"pretrained"`` (pretrained with this package: a PretrainTask ``.ckpt`` or a ``save_pretrained``
    folder). With the loaded ``model`` its recorded provenance decides; without it, the source's form (a Hub source
    ``hf://owner/name[/file]`` as its local counterpart: the official repo, a ``save_pretrained`` repo, a file)."""
    from neurorvq.hub import HUB_SCHEME, OFFICIAL_REPO_ID, parse_hub_source
    from neurorvq.models.pretrained import CONFIG_NAME, WEIGHTS_NAME

    if not fm:
        return "scratch"
    if model is not None:
        return "official" if model.options.get("provenance") == "official" else "pretrained"
    if str(fm) == OFFICIAL_REPO_ID:
        return "official"
    if str(fm).startswith(HUB_SCHEME):
        hub = parse_hub_source(str(fm))
        if hub.path is None:
            return "official" if hub.repo_id == OFFICIAL_REPO_ID else "pretrained"
        file = Path(hub.path)
        return "pretrained" if file.suffix == ".ckpt" or file.name in (CONFIG_NAME, WEIGHTS_NAME) else "official"
    return "pretrained" if Path(fm).is_dir() or Path(fm).suffix == ".ckpt" else "official"


def load_fm(path: str, **overrides: Any) -> NeuroRVQFoundationModel:
    """An FM from a ``save_pretrained`` folder, a PretrainTask ``.ckpt``, an official checkpoint file,
    ``hf://owner/name`` or the official repo id (the ``[hub]`` extra): ``neurorvq.load(path,
    kind="foundation_model", **overrides)``."""
    from neurorvq.loading import load

    return load(path, kind="foundation_model", **overrides)


class FinetuneTask(ClassificationTask):
    """Fine-tune (or train from scratch when ``fm`` is None) a classifier on the FM.

    Args:
        fm: pretrained FM (folder, PretrainTask ``.ckpt`` or official file); ``None`` = random init.
        modality, num_classes: the task's modality and classes; labels must lie in ``0..num_classes-1``.
        fm_overrides: the FM's options when ``fm`` is None (:class:`~neurorvq.families.neurorvq.NeuroRVQFMOptions`:
            ``{depth: 2}`` in a recipe; the architecture defaults to the modality's).
        lr, layer_decay, weight_decay: optimiser (official: 5e-4, 0.975, 1e-2; weight decay on every tensor).
        layer_decay_mode: ``auto`` (NeuroRVQ: ``official`` for official weights, else ``block``; LaBraM:
            ``official`` in parity mode, else ``block``), ``official``, ``block`` or ``none`` (module docstring).
        schedule: ``auto`` (``official_linear`` with NeuroRVQ's ``official`` decay, else ``cosine``), ``official_linear``
            (warm-up from and decay to ``min_lr_ratio`` x lr) or ``cosine`` (warm-up from 0, cosine to
            ``min_lr_ratio`` x lr); stepped per batch, ``warmup_fraction`` of the steps warm up (0.2 = the
            official 4 of 20 epochs).
        head_only: train only ``fc_norm`` and ``head``.
        pooling, pool_channels: the head's pooling (:mod:`neurorvq.models.pooling`); a channel-aware pooling
            takes the montage's channel count from the training windows at ``setup`` unless given.
        class_weights: ``"balanced"`` (from the training labels), a list, or ``None``.
        drop_path: stochastic depth of the last block, linearly spaced from 0 over the blocks (0 = off; LaBraM 0.1).
        label_smoothing: label smoothing of the multi-class cross-entropy (0 = off; LaBraM and BrainRVQ 0.1; the
            binary loss is plain BCE either way).
    """

    def __init__(self, fm: str | None = None, modality: str = "eeg", num_classes: int = 2,
                 fm_overrides: FMOptions = NeuroRVQFMOptions(), lr: float = 5e-4, layer_decay: float = 0.975,
                 layer_decay_mode: str = "auto", schedule: str = "auto", weight_decay: float = 1e-2,
                 warmup_fraction: float = 0.2, min_lr_ratio: float = 0.1, head_only: bool = False,
                 pooling: str = "mean", pool_channels: int | None = None,
                 class_weights: str | list[float] | None = "balanced", drop_path: float = 0.0,
                 label_smoothing: float = 0.0) -> None:
        super().__init__(num_classes, class_weights, label_smoothing)
        options = coerce_options(fm_overrides, NeuroRVQFMOptions(), "fm_overrides")
        self.save_hyperparameters(ignore=["fm_overrides"])
        self.hparams["fm_overrides"] = options.as_hparams()  # plain data in checkpoints, not a pickled dataclass
        if layer_decay_mode not in LAYER_DECAY_MODES:
            raise ConfigError(f"layer_decay_mode is {layer_decay_mode!r}; valid: {', '.join(LAYER_DECAY_MODES)}")
        if schedule not in ("auto", *SCHEDULES):
            raise ConfigError(f"schedule is {schedule!r}; valid: auto, {', '.join(SCHEDULES)}")
        if fm:
            model = load_fm(fm)
        else:
            model = options.build(modality, pretraining=False)
        self.provenance = backbone_provenance(fm, model)
        own_rule = hasattr(model, "layer_id")  # LaBraM: its layer rule, warm-up + cosine (module docstring)
        if layer_decay_mode != "auto":
            self.decay_mode = layer_decay_mode
        elif own_rule:
            self.decay_mode = "official" if model.options.get("parity") else "block"
        else:
            self.decay_mode = "official" if self.provenance == "official" else "block"
        self.schedule = schedule if schedule != "auto" else (
            "official_linear" if self.decay_mode == "official" and not own_rule else "cosine")
        signal = get_modality(modality)  # modality may name a spec file (ppg.json)
        check_compatible(signal, model, fields=SIGNAL_FIELDS,
                         headline=f"foundation model '{fm}' is a '{model.contract.name}' model but modality is "
                                  f"'{signal.name}' (modality vs model)")
        if model.options["pretraining"]:
            model.drop_pretraining_parts()  # as the official loader: mask token, norm_pre and token heads go
        model.options.update(pooling=pooling, pool_channels=pool_channels)
        model.options["check_inputs"] = False
        if drop_path:
            model.backbone.set_drop_path(drop_path)
            if "drop_path" in model.options:
                model.options["drop_path"] = float(drop_path)
        self.fm = model
        self.head_pending = pool_channels is None and _needs_channels(pooling)
        self._rows: ChannelRows | None = None
        if self.head_pending:  # built at setup, from the montage; a loaded model's own head must not survive
            for name in ("pool", "fc_norm", "head"):
                if hasattr(model, name):
                    delattr(model, name)
        else:
            model.reset_classifier(num_classes)  # an unknown pooling fails here, before any training

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # the fine-tuned FM with its head (options: classes, pooling, montage): neurorvq.load rebuilds it
        checkpoint[MODELS_CHECKPOINT_KEY] = {"format": 2, "models": {
            "fm": {"kind": "foundation_model", "prefix": "fm.", **self.fm.to_config()}}}

    def setup(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        self._rows = check_data_spec(datamodule, self.fm, "fine-tune")
        if self.head_pending:
            channels, _ = single_montage(datamodule, f"pooling '{self.hparams.pooling}' needs one fixed montage",
                                         "use pooling 'mean'", "pool_channels")
            self.fm.reset_classifier(self.num_classes, num_channels=channels)
            self.hparams.pool_channels = channels  # the checkpoint rebuilds the same head
            self.head_pending = False
        super().setup(stage)

    def logits(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.fm(batch["signal"], model_ids(self._rows, batch["channel_ids"]))

    def features(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """What enters the classifier: the head's pooled features ``[B, F]``."""
        return self.fm.classifier_features(batch["signal"], model_ids(self._rows, batch["channel_ids"]))

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        """Logits from :meth:`features` (``fc_norm`` then ``head``)."""
        return self.fm.head(self.fm.fc_norm(features))

    def description(self) -> dict[str, Any]:
        """What ran, for result records: backbone provenance, the resolved decay mode and schedule, pooling."""
        h = self.hparams
        return {"model": getattr(self.fm, "display_name", "NeuroRVQ-FM"), "backbone": self.provenance, "fm": h.fm,
                "layer_decay_mode": self.decay_mode,
                "layer_decay": h.layer_decay, "schedule": self.schedule, "lr": h.lr, "weight_decay": h.weight_decay,
                "pooling": self.fm.options["pooling"], "pool_channels": self.fm.options["pool_channels"],
                "depth": len(self.fm.backbone.blocks), "head_only": h.head_only}

    def configure_optimizers(self):
        groups = layer_decay_groups(self.fm, self.hparams.lr, self.hparams.layer_decay, self.hparams.weight_decay,
                                    self.decay_mode, self.hparams.head_only)
        optimizer = torch.optim.AdamW(groups, lr=self.hparams.lr)
        total = max(1, int(self.trainer.estimated_stepping_batches))
        scheduler = lr_scheduler(optimizer, self.schedule, total, self.hparams.warmup_fraction,
                                 self.hparams.min_lr_ratio)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def _needs_channels(pooling: str) -> bool:
    from neurorvq.models.pooling import POOLINGS

    return bool(getattr(POOLINGS.get(pooling), "needs_channels", False))


__all__ = ["LAYER_DECAY_MODES", "FinetuneTask", "backbone_provenance", "balanced_class_weights", "check_data_spec",
           "layer_decay_groups", "layer_id_groups", "load_fm", "official_tensor_order"]
