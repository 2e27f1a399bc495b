"""A toy tokenizer family: one vector-quantizer level over patches (``docs/adding-a-family.md`` walks through it).

Each window is standardised (per window: mean and std over channels and time, the side information decoding
needs), cut into patches of the modality's ``patch_length`` samples, and every patch is encoded on its own by a
small MLP, quantized by one codebook (the shared :class:`~neurorvq.nn.rvq.ResidualVQ` with one level: EMA updates,
k-means initialisation) and decoded by a second MLP. One id per channel and patch. It ignores which channel a
patch came from and has no attention: a baseline, and the shortest complete example of the tokenizer protocol.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Mapping, Optional

import torch
import torch.nn.functional as F
from torch import nn

from neurorvq.errors import ConfigError, InputError
from neurorvq.families import Family, register_family
from neurorvq.families.options import TokenizerOptions, refuse_unknown_fields
from neurorvq.file_io import write_atomic, write_safetensors
from neurorvq.models.inputs import channel_id_tensor, check_finite
from neurorvq.nn.rvq import ResidualVQ
from neurorvq.registry import ModalitySpec, get_modality
from neurorvq.tokenizers import Encoded, SideField, SignalContract, TokenLayout

FAMILY = "toy_vq"


@dataclass(frozen=True)
class ToyVQConfig:
    """The architecture: patch MLPs of width ``hidden``, codes of ``code_dim``, ``codebook_size`` codes, and at
    most ``max_patches`` patches per channel."""

    hidden: int = 64
    code_dim: int = 16
    codebook_size: int = 64
    max_patches: int = 64

    def validate(self, patch_length: int, where: str) -> None:
        for name, value in dataclasses.asdict(self).items():
            if int(value) < 1:
                raise ConfigError(f"{where}: {name} is {value}; it must be a positive integer")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ToyVQConfig":
        refuse_unknown_fields(cls, data)
        return cls(**data)


@dataclass(frozen=True)
class ToyVQOptions(TokenizerOptions):
    """What a recipe sets (``model.init_args.tokenizer: {class_path: neurorvq.families.toy.ToyVQOptions, ...}``).

    Args:
        hidden: width of the patch MLPs (None: the modality's toy_vq default, else 64).
        code_dim: code vector size.
        codebook_size: codes in the codebook.
        max_patches: most patches per channel.
        decay: EMA decay of the codebook.
        kmeans_iters: k-means iterations of the first-batch codebook initialisation.
        check_inputs: validate inputs at the public entry points.
    """

    hidden: Optional[int] = None
    code_dim: Optional[int] = None
    codebook_size: Optional[int] = None
    max_patches: Optional[int] = None
    decay: float = 0.99
    kmeans_iters: int = 5
    check_inputs: bool = True

    family: ClassVar[str] = FAMILY


OPTIONS = {f.name: f.default for f in dataclasses.fields(ToyVQOptions) if f.default is not None}
"""Training options that are not architecture (kept in saved configs too)."""


class ToyVQTokenizer(nn.Module):
    """The toy tokenizer for ``modality`` (a registered name, a spec file or a ModalitySpec).

    ``overrides``: :class:`ToyVQConfig` fields (the modality's ``families["toy_vq"]`` default, else the class
    defaults, is the base) and the :data:`OPTIONS`. Signals ``x`` are ``[B, C, A*T]`` in the modality's unit, with
    ``T = patch_length``; ``channels`` are vocabulary names or ids (a list ``[C]`` or a tensor ``[B, C]``).
    """

    family = FAMILY
    model_kind = "tokenizer"
    loss_names = ("loss", "code", "rec")

    def __init__(self, modality: str | ModalitySpec = "eeg", **overrides: Any) -> None:
        super().__init__()
        self.signal = get_modality(modality)
        fields = {f.name for f in dataclasses.fields(ToyVQConfig)}
        unknown = sorted(set(overrides) - fields - set(OPTIONS))
        if unknown:
            raise ConfigError(f"unknown toy_vq override(s) {unknown}; valid: {sorted(fields | set(OPTIONS))}")
        base = self.signal.families.get(FAMILY, ToyVQConfig())
        self.config = dataclasses.replace(base, **{k: v for k, v in overrides.items() if k in fields})
        self.config.validate(self.signal.patch_length, f"modality '{self.signal.name}', family '{FAMILY}'")
        self.options = {**OPTIONS, **{k: v for k, v in overrides.items() if k in OPTIONS}}
        t, c = self.signal.patch_length, self.config
        self.encoder = nn.Sequential(nn.Linear(t, c.hidden), nn.GELU(), nn.Linear(c.hidden, c.code_dim))
        self.quantizer = ResidualVQ(1, 1, c.codebook_size, c.code_dim, decay=self.options["decay"],
                                    aux_weight=0.0, kmeans_iters=self.options["kmeans_iters"])
        self.decoder = nn.Sequential(nn.Linear(c.code_dim, c.hidden), nn.GELU(), nn.Linear(c.hidden, t))

    # ------------------------------------------------------------------------------------ the protocol
    @property
    def layout(self) -> TokenLayout:
        """One group of one level; decoding needs each window's mean and std."""
        return TokenLayout(("patch",), (1,), ((self.config.codebook_size,),),
                           side=(SideField("mean", doc="per-window mean"), SideField("std", doc="per-window std")))

    @property
    def contract(self) -> SignalContract:
        s = self.signal
        return SignalContract(s.name, s.sampling_rate, s.unit, s.patch_length, self.config.max_patches, s.channels)

    def forward(self, x: torch.Tensor, channels: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Training pass: ``(reconstruction [B, C, A*T], outputs)`` with the losses of :attr:`loss_names`, the ids
        ``[B, 1, C*A]`` and this batch's codebook ``usage``/``perplexity`` (``[1]``)."""
        patches, mean, std = self._standardised_patches(x, channels)
        b, c, a, t = patches.shape
        rvq = self.quantizer(self.encoder(patches.reshape(1, b * c * a, t)))
        rec = self.decoder(rvq.quantized).reshape(b, c, a, t)
        rec_loss = F.mse_loss(rec, patches)
        code = rvq.loss_per_level.sum()
        probs = rvq.counts[0] / rvq.counts[0].sum(-1, keepdim=True).clamp_min(1.0)
        outputs = {"loss": rec_loss + code, "code": code, "rec": rec_loss,
                   "ids": rvq.indices.reshape(b, 1, c * a),
                   "usage": (rvq.counts[0] > 0).float().mean(-1),
                   "perplexity": torch.exp(-(probs * probs.clamp_min(1e-12).log()).sum(-1))}
        return self._restore(rec, mean, std), outputs

    @torch.no_grad()
    def tokenize(self, x: torch.Tensor, channels: Any) -> Encoded:
        patches, mean, std = self._standardised_patches(x, channels)
        b, c, a, t = patches.shape
        ids = self.quantizer(self.encoder(patches.reshape(1, b * c * a, t))).indices.reshape(b, 1, c * a)
        return Encoded(ids, {"mean": mean, "std": std}, self.layout, c, a)

    @torch.no_grad()
    def detokenize(self, encoded: Encoded, channels: Any) -> torch.Tensor:
        if encoded.layout != self.layout:
            raise InputError(f"these ids have layout {encoded.layout.to_dict()}; this tokenizer's is "
                             f"{self.layout.to_dict()}")
        if self.options["check_inputs"]:
            self.layout.check_ids(encoded.ids)
        b, c, a = len(encoded), encoded.n_channels, encoded.n_patches
        rec = self.decoder(self.quantizer.lookup(encoded.ids.reshape(1, 1, b * c * a)))
        return self._restore(rec.reshape(b, c, a, -1), encoded.side["mean"], encoded.side["std"])

    def config_hash(self) -> str:
        """Hash of the signal and the architecture: equal hashes mean interchangeable token layouts."""
        signal = {k: v for k, v in self.signal.to_dict().items() if k not in ("doc", "families")}
        text = json.dumps({"family": FAMILY, "signal": signal, "config": self.config.to_dict()}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def save_pretrained(self, directory: str | Path) -> Path:
        """``config.json`` (family, signal, config, options) and ``model.safetensors`` in ``directory``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        write_safetensors(directory / "model.safetensors", state, {"kind": self.model_kind})
        write_atomic(directory / "config.json", json.dumps({"kind": self.model_kind, **self.to_config()}, indent=2))
        return directory

    def to_config(self) -> dict[str, Any]:
        """Everything :meth:`from_config` needs: family, signal, architecture, options (JSON)."""
        return {"family": FAMILY, "signal": self.signal.to_dict(), "config": self.config.to_dict(),
                "options": dict(self.options)}

    @classmethod
    def from_config(cls, config: Mapping[str, Any], **overrides: Any) -> "ToyVQTokenizer":
        """A new (untrained) model from :meth:`to_config`'s output (weights are loaded by the caller)."""
        signal = ModalitySpec.from_dict(config["signal"])
        return cls(signal, **{**config["config"], **config.get("options", {}), **overrides})

    # ------------------------------------------------------------------------------------ pieces
    def _standardised_patches(self, x: torch.Tensor, channels: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``x [B, C, A*T]`` -> standardised patches ``[B, C, A, T]`` and the per-window mean and std ``[B]``."""
        t = self.signal.patch_length
        if self.options["check_inputs"]:
            if x.ndim != 3 or not x.is_floating_point():
                raise InputError(f"x must be a float tensor [batch, channels, time]; got {x.dtype} {tuple(x.shape)}")
            ids = channel_id_tensor(self.signal, channels, x.device, check=True)
            if ids.shape[-1] != x.shape[1]:
                raise InputError(f"{ids.shape[-1]} channels given for {x.shape[1]} rows of x")
            if x.shape[-1] % t or not 0 < x.shape[-1] // t <= self.config.max_patches:
                raise InputError(f"signal length {x.shape[-1]} is not 1..{self.config.max_patches} whole patches of "
                                 f"{t} samples")
            check_finite(x, channels)
        b, c, n = x.shape
        mean = x.mean(dim=(1, 2))
        std = x.std(dim=(1, 2)).clamp_min(1e-6)
        patches = ((x - mean.view(b, 1, 1)) / std.view(b, 1, 1)).reshape(b, c, n // t, t)
        return patches.float(), mean.float(), std.float()

    @staticmethod
    def _restore(rec: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
        b, c, a, t = rec.shape
        return rec.reshape(b, c, a * t) * std.view(b, 1, 1) + mean.view(b, 1, 1)


register_family(Family(FAMILY, ToyVQConfig, tokenizer="neurorvq.families.toy:ToyVQTokenizer",
                       doc="one VQ level over MLP-encoded patches (docs/adding-a-family.md)"))
