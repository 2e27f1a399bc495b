"""The tokenizer protocol every family satisfies: a token layout, encoded windows, and the signal a model accepts.

A tokenizer turns windows ``x [B, C, A*T]`` (C channels, A patches of T samples, in the signal's unit) into
integer ids and back. What differs between families is described by data, not by code paths:

* :class:`TokenLayout` — how many code *groups* a token has (NeuroRVQ: one per temporal branch, ``b0..b3``;
  BrainRVQ: a temporal and a frequency group; LaBraM: one), the RVQ depth of each group and the codebook size of
  each level, and what decoding needs besides the ids (:class:`SideField`: NeuroRVQ's per-sample amplitude
  statistics; other families none). The FM's token heads, pretraining targets, codebook reports and token files
  are sized from it.
* :class:`Encoded` — the ids ``[B, H, L]`` of a batch (``H`` streams = one per (group, level), group-major;
  ``L = C*A`` tokens, channel-major: token ``k`` is channel ``k // A``, patch ``k % A``) and their side tensors.
* :class:`SignalContract` — the signal a model accepts: rate, unit, patch length, patches per channel, channel
  vocabulary and in-model scaling. Compatibility of data, tokenizer and FM compares these fields.
* :class:`Tokenizer` / :class:`FoundationModel` — the methods the tasks, the commands and the loader call.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping, Protocol, Sequence, runtime_checkable

import torch

from neurorvq.errors import ConfigError, InputError


@dataclass(frozen=True)
class SideField:
    """One per-sample tensor that decoding needs besides the ids, ``[B, *shape]`` of ``dtype``."""

    name: str
    shape: tuple[int, ...] = ()
    dtype: str = "float32"
    doc: str = field(default="", compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype, "doc": self.doc}


@dataclass(frozen=True)
class TokenLayout:
    """The token streams of a tokenizer: ``groups[g]`` has ``depths[g]`` RVQ levels, level ``n`` of group ``g``
    has ``codebook_sizes[g][n]`` codes. Streams are numbered group-major: ``h = sum(depths[:g]) + n``."""

    groups: tuple[str, ...]
    depths: tuple[int, ...]
    codebook_sizes: tuple[tuple[int, ...], ...]
    side: tuple[SideField, ...] = ()
    order: str = "channel-major"

    def __post_init__(self) -> None:
        object.__setattr__(self, "groups", tuple(str(g) for g in self.groups))
        object.__setattr__(self, "depths", tuple(int(d) for d in self.depths))
        object.__setattr__(self, "codebook_sizes", tuple(tuple(int(k) for k in ks) for ks in self.codebook_sizes))
        object.__setattr__(self, "side", tuple(s if isinstance(s, SideField) else SideField(
            s["name"], tuple(s.get("shape", ())), s.get("dtype", "float32"), s.get("doc", ""))
            for s in self.side))
        if not self.groups or len(set(self.groups)) != len(self.groups):
            raise ConfigError(f"TokenLayout.groups is {list(self.groups)}; give one or more distinct group names")
        if len(self.depths) != len(self.groups) or len(self.codebook_sizes) != len(self.groups):
            raise ConfigError(f"TokenLayout has {len(self.groups)} groups but {len(self.depths)} depths and "
                              f"{len(self.codebook_sizes)} codebook-size lists; give one of each per group")
        for g, (depth, sizes) in enumerate(zip(self.depths, self.codebook_sizes)):
            if depth < 1 or len(sizes) != depth or min(sizes) < 1:
                raise ConfigError(f"TokenLayout group '{self.groups[g]}': depth {depth} with codebook sizes "
                                  f"{list(sizes)}; give depth >= 1 and one positive size per level")
        if self.order != "channel-major":
            raise ConfigError(f"TokenLayout.order is {self.order!r}; only 'channel-major' is defined")

    @classmethod
    def uniform(cls, groups: int | Sequence[str], depth: int, codebook_size: int,
                side: Sequence[SideField] = ()) -> "TokenLayout":
        """``groups`` (a count, named ``g0, g1, ...``, or names) of ``depth`` levels of ``codebook_size`` codes."""
        names = tuple(f"g{i}" for i in range(groups)) if isinstance(groups, int) else tuple(groups)
        return cls(names, (depth,) * len(names), ((codebook_size,) * depth,) * len(names), tuple(side))

    # ------------------------------------------------------------------------------------ derived
    @property
    def num_streams(self) -> int:
        """H, the id streams per token (one per (group, level))."""
        return sum(self.depths)

    @property
    def streams(self) -> tuple[tuple[str, int, int], ...]:
        """``(group, level, codebook size)`` of every stream, group-major."""
        return tuple((g, n, k) for g, sizes in zip(self.groups, self.codebook_sizes) for n, k in enumerate(sizes))

    @property
    def stream_names(self) -> tuple[str, ...]:
        """``"<group>_d<level>"`` per stream (NeuroRVQ: ``b0_d0 .. b3_d7``), the keys of per-stream metrics."""
        return tuple(f"{g}_d{n}" for g, n, _ in self.streams)

    @property
    def is_uniform(self) -> bool:
        """Every group has the same depth and every level the same codebook size (ids reshape to ``[B, G, N, L]``)."""
        return len(set(self.depths)) == 1 and len({k for ks in self.codebook_sizes for k in ks}) == 1

    @property
    def max_codebook_size(self) -> int:
        return max(k for ks in self.codebook_sizes for k in ks)

    def codebook_size_tensor(self, device: torch.device | None = None) -> torch.Tensor:
        """``[H]`` int64: the codebook size of every stream."""
        return torch.tensor([k for _, _, k in self.streams], dtype=torch.long, device=device)

    def tokens_per_window(self, n_channels: int, n_patches: int) -> int:
        """``L``, tokens per window and stream: ``n_channels * n_patches``."""
        return int(n_channels) * int(n_patches)

    # ------------------------------------------------------------------------------------ reshaping
    def grouped(self, ids: torch.Tensor) -> torch.Tensor:
        """``[B, H, L]`` -> ``[B, G, N, L]`` (uniform layouts only)."""
        if not self.is_uniform:
            raise ConfigError(f"ids of layout {self.groups} with depths {self.depths} do not reshape to "
                              "[batch, group, level, token]; use the flat [batch, stream, token] form")
        b, h, l = ids.shape
        return ids.reshape(b, len(self.groups), self.depths[0], l)

    def flat(self, ids: torch.Tensor) -> torch.Tensor:
        """``[B, G, N, L]`` -> ``[B, H, L]`` (the inverse of :meth:`grouped`)."""
        b, g, n, l = ids.shape
        return ids.reshape(b, g * n, l)

    def check_ids(self, ids: torch.Tensor, what: str = "ids") -> None:
        """Raise :class:`InputError` unless ``ids`` is an integer ``[B, H, L]`` with every id inside its stream's
        codebook (the message names the first bad position as ``[batch, stream, token]`` and its stream)."""
        if not torch.is_tensor(ids) or ids.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
            raise InputError(f"{what} must be an integer tensor [batch, stream, token]")
        if ids.ndim != 3 or ids.shape[1] != self.num_streams:
            raise InputError(f"{what} have shape {tuple(ids.shape)}; expected [batch, {self.num_streams} streams "
                             f"({' '.join(self.stream_names)}), tokens]")
        sizes = self.codebook_size_tensor(ids.device).view(1, -1, 1)
        bad = (ids < 0) | (ids >= sizes)
        if bool(bad.any()):
            b, h, t = bad.nonzero()[0].tolist()
            group, level, k = self.streams[h]
            raise InputError(f"{what}[{b}, {h}, {t}] = {int(ids[b, h, t])} is outside stream {group}_d{level}'s "
                             f"codebook (valid ids 0..{k - 1})")

    # ------------------------------------------------------------------------------------ files
    def to_dict(self) -> dict[str, Any]:
        return {"groups": list(self.groups), "depths": list(self.depths),
                "codebook_sizes": [list(ks) for ks in self.codebook_sizes],
                "side": [s.to_dict() for s in self.side], "order": self.order}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TokenLayout":
        known = {"groups", "depths", "codebook_sizes", "side", "order"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown TokenLayout field(s) {unknown}; valid fields: {sorted(known)}")
        return cls(**data)


@dataclass
class Encoded:
    """Encoded windows: ``ids [B, H, L]`` int64 (group-major streams, channel-major tokens, ``L = n_channels *
    n_patches``) and one tensor per ``layout.side`` field, ``side[name] [B, *shape]``."""

    ids: torch.Tensor
    side: dict[str, torch.Tensor]
    layout: TokenLayout
    n_channels: int
    n_patches: int

    def __post_init__(self) -> None:
        expected = {s.name for s in self.layout.side}
        if set(self.side) != expected:
            raise InputError(f"side information has {sorted(self.side)}; this layout needs {sorted(expected)}")
        if self.ids.ndim != 3 or self.ids.shape[2] != self.n_channels * self.n_patches:
            raise InputError(f"ids have shape {tuple(self.ids.shape)}; expected [batch, stream, "
                             f"{self.n_channels} channels x {self.n_patches} patches]")

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def grouped(self) -> torch.Tensor:
        """``[B, G, N, L]`` (uniform layouts)."""
        return self.layout.grouped(self.ids)

    def to(self, device: torch.device | str) -> "Encoded":
        return Encoded(self.ids.to(device), {k: v.to(device) for k, v in self.side.items()}, self.layout,
                       self.n_channels, self.n_patches)

    def __getitem__(self, index: slice | int) -> "Encoded":
        """The windows ``index`` (a slice keeps the batch dimension; an int gives a batch of one)."""
        index = slice(index, index + 1) if isinstance(index, int) else index
        return Encoded(self.ids[index], {k: v[index] for k, v in self.side.items()}, self.layout, self.n_channels,
                       self.n_patches)

    @staticmethod
    def cat(parts: Sequence["Encoded"]) -> "Encoded":
        """The batches of ``parts`` (same layout and window shape) concatenated."""
        if not parts:
            raise InputError("Encoded.cat needs at least one part")
        first = parts[0]
        for p in parts[1:]:
            if p.layout != first.layout or (p.n_channels, p.n_patches) != (first.n_channels, first.n_patches):
                raise InputError("Encoded.cat: parts differ in layout or window shape")
        return Encoded(torch.cat([p.ids for p in parts]), {k: torch.cat([p.side[k] for p in parts]) for k in first.side},
                       first.layout, first.n_channels, first.n_patches)


@dataclass(frozen=True)
class SignalContract:
    """The signal a model accepts.

    name: the modality's name (messages only; compatibility compares the other fields). sampling_rate [Hz];
    unit: the unit of ``x`` at the model's entry; patch_length [samples per token]; max_patches: patches per
    channel the model can index; channels: its channel vocabulary (rows of its spatial table, before
    ``channel_offset``); case_sensitive: whether names match case-sensitively; channel_offset: spatial rows before
    the first channel's; input_scale: factor applied to ``x`` inside the model (LaBraM/BrainRVQ 0.01: µV / 100).
    """

    name: str
    sampling_rate: float
    unit: str
    patch_length: int
    max_patches: int
    channels: tuple[str, ...]
    case_sensitive: bool = False
    channel_offset: int = 0
    input_scale: float = 1.0

    @property
    def patch_seconds(self) -> float:
        return self.patch_length / self.sampling_rate


@runtime_checkable
class Tokenizer(Protocol):
    """What every family's tokenizer provides (checked with ``isinstance(model, Tokenizer)``).

    ``tokenize(x [B, C, A*T], channels)`` -> :class:`Encoded` (no gradients); ``detokenize(encoded, channels)`` ->
    ``[B, C, A*T]`` in ``contract.unit``; ``forward(x, channels)`` -> ``(reconstruction, outputs)``, the training
    pass, with ``outputs`` holding the scalar losses named by ``loss_names`` (``"loss"``, the total, first), the ids
    ``outputs["ids"] [B, H, L]`` and, optionally, per-stream ``"usage"``/``"perplexity"`` of the batch.
    ``channels``: vocabulary names or ids, a list ``[C]`` or an int tensor ``[B, C]``. ``to_config()`` (JSON, with
    ``"family"``) and the classmethod ``from_config(config, **overrides)`` persist the model's construction;
    ``save_pretrained(folder)`` writes it with the weights.
    """

    family: ClassVar[str]
    model_kind: ClassVar[str]
    loss_names: ClassVar[tuple[str, ...]]

    @property
    def layout(self) -> TokenLayout: ...

    @property
    def contract(self) -> SignalContract: ...

    @property
    def signal(self) -> Any: ...  # the ModalitySpec it reads (name, rate, unit, vocabulary, report bands)

    def tokenize(self, x: torch.Tensor, channels: Any) -> Encoded: ...

    def detokenize(self, encoded: Encoded, channels: Any) -> torch.Tensor: ...

    def config_hash(self) -> str: ...

    def to_config(self) -> dict[str, Any]: ...  # JSON with "family"; cls.from_config(config, **overrides) rebuilds


@runtime_checkable
class FoundationModel(Protocol):
    """What every family's foundation model provides: the signal it accepts, the token layout its pretraining
    heads predict (``None``: no heads), the width of its features, and a check that a tokenizer's layout is one it
    can predict (:class:`ConfigError` naming the difference)."""

    family: ClassVar[str]
    model_kind: ClassVar[str]

    @property
    def contract(self) -> SignalContract: ...

    @property
    def target_layout(self) -> TokenLayout | None: ...

    @property
    def feature_dim(self) -> int: ...

    def check_targets(self, layout: TokenLayout) -> None: ...
