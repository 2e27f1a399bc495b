"""Reconstruct the same held-out windows with several tokenizers and score each one (NeuroRVQ's Table 1).

Every batch of the window iterator goes through every tokenizer (``tokenize`` -> ``detokenize``), so all of them
see exactly the same windows even when the loader shuffles. Per tokenizer:

* raw and per-band MSE of per-window standardised signals (:func:`neurorvq.eval.bands.band_mse_per_window`), in
  mode ``patch`` (band filters applied to each patch of each channel on its own, as the official plotting code
  does; the default) and/or ``channel`` (each continuous channel, as ``neurorvq reconstruct`` does); means over
  windows;
* bits per second of signal per channel: ``sum over streams of log2(codebook size) x tokens per second``, from the
  token layout (side information such as NeuroRVQ's amplitude statistics is not counted);
* codebook usage and perplexity of every (group, level) stream on these windows (:mod:`neurorvq.eval.codebook`).
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import torch

from neurorvq.compat import FIELDS, Signal, check_compatible
from neurorvq.errors import ConfigError, InputError
from neurorvq.eval.bands import band_mse_per_window
from neurorvq.eval.codebook import CodebookUsage
from neurorvq.tokenizers import TokenLayout

MODES = ("patch", "channel")
"""Band-filtering modes: per patch row (the official plotting code's; default) and per continuous channel."""


def mode_text(mode: str, patch_length: int, sampling_rate: float) -> str:
    """What a filtering mode means, for captions: e.g. ``"band filters applied to each 200-sample (1 s) patch of
    each channel on its own"``."""
    if mode == "patch":
        return (f"band filters applied to each {patch_length}-sample ({patch_length / sampling_rate:g} s) patch of "
                "each channel on its own (transfer-function form, filtfilt padding: the official plotting code)")
    if mode == "channel":
        return "band filters applied to each continuous channel (second-order sections: as neurorvq reconstruct)"
    raise ConfigError(f"mode is {mode!r}; give one of {', '.join(MODES)}")


def bits_per_second(layout: TokenLayout, sampling_rate: float, patch_length: int) -> float:
    """Bits per second of signal and channel: ``sum_h log2(K_h) * sampling_rate / patch_length`` over the
    layout's streams ``h`` (one token per stream, channel and patch; ``sampling_rate`` in Hz, ``patch_length`` in
    samples). NeuroRVQ EEG (4 groups x 8 levels of 8192 codes, 200-sample patches at 200 Hz): 416 bits/s."""
    return sum(math.log2(k) for _, _, k in layout.streams) * float(sampling_rate) / int(patch_length)


@dataclass
class TokenizerScores:
    """One tokenizer's scores on the compared windows.

    mse / mse_std: ``{mode: {"raw": ..., band: ...}}``, mean and (population) std over windows. bits_per_second:
    per channel (:func:`bits_per_second`); tokens_per_second: token positions per channel and second (each has
    ``layout.num_streams`` ids). codebook: :meth:`~neurorvq.eval.codebook.CodebookUsage.table` on these windows.
    """

    name: str
    family: str
    source: str | None
    config_hash: str | None
    layout: TokenLayout
    bits_per_second: float
    tokens_per_second: float
    mse: dict[str, dict[str, float]]
    mse_std: dict[str, dict[str, float]]
    codebook: dict[str, Any]
    windows: int

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "family": self.family, "source": self.source, "config_hash": self.config_hash,
                "layout": self.layout.to_dict(), "bits_per_second": self.bits_per_second,
                "tokens_per_second": self.tokens_per_second, "mse": self.mse, "mse_std": self.mse_std,
                "codebook": self.codebook, "windows": self.windows}


@dataclass
class ExampleWindow:
    """The first compared window, for the figure: ``signal [C, T]`` and each tokenizer's ``reconstructions[name]
    [C, T]`` in the data's unit, with the channel names."""

    signal: np.ndarray
    reconstructions: dict[str, np.ndarray]
    channels: list[str]


@dataclass
class Comparison:
    """The scores of every tokenizer on the same ``windows`` windows of ``data`` (``{"name", "sampling_rate",
    "unit", "patch_length"}``), filtered in ``modes`` with ``bands`` (``(name, low Hz, high Hz)``)."""

    scores: list[TokenizerScores]
    modes: tuple[str, ...]
    bands: tuple[tuple[str, float, float], ...]
    windows: int
    data: dict[str, Any]
    example: ExampleWindow | None = field(default=None, repr=False)

    @property
    def columns(self) -> list[str]:
        """``["raw", band names...]``: the MSE columns."""
        return ["raw", *[b[0] for b in self.bands]]

    def mode_text(self, mode: str) -> str:
        return mode_text(mode, self.data["patch_length"], self.data["sampling_rate"])

    def to_dict(self) -> dict[str, Any]:
        return {"windows": self.windows, "modes": list(self.modes),
                "mode_definitions": {m: self.mode_text(m) for m in self.modes},
                "bands": [list(b) for b in self.bands], "data": self.data,
                "tokenizers": [s.to_dict() for s in self.scores]}


# ------------------------------------------------------------------------------------ which tokenizers
TokenizerLike = Any  # an object satisfying neurorvq.tokenizers.Tokenizer, or a source neurorvq.load takes


def _is_source(item: Any) -> bool:
    return isinstance(item, (str, os.PathLike))


def default_name(source: str | os.PathLike) -> str:
    """A tokenizer's label from its source: the folder's or file's name without suffix (``runs/tok`` -> ``tok``,
    ``hf://owner/name`` -> ``name``)."""
    text = str(source).rstrip("/")
    return Path(text).stem or text


def named_tokenizers(tokenizers: Sequence[TokenizerLike] | Mapping[str, TokenizerLike]) \
        -> list[tuple[str, str | None, Any]]:
    """``[(name, source or None, tokenizer)]``: sources (paths, Hub ids) are loaded with :func:`neurorvq.load`
    (``kind="tokenizer"``); a mapping gives the names, otherwise a source's :func:`default_name` or an object's
    family. Names must be unique."""
    from neurorvq.loading import load

    items = list(tokenizers.items()) if isinstance(tokenizers, Mapping) else [(None, t) for t in tokenizers]
    if not items:
        raise ConfigError("tokenizers is empty; give at least one tokenizer (object or checkpoint)")
    out: list[tuple[str, str | None, Any]] = []
    for name, item in items:
        source = str(item) if _is_source(item) else None
        model = load(item, kind="tokenizer") if source is not None else item
        for attr in ("layout", "contract", "tokenize", "detokenize"):
            if not hasattr(model, attr):
                raise ConfigError(f"tokenizer {name or type(model).__name__!r} has no '{attr}': give an object "
                                  "satisfying neurorvq.tokenizers.Tokenizer or a checkpoint path")
        label = str(name) if name is not None else default_name(source) if source is not None else \
            str(getattr(model, "family", type(model).__name__))
        if any(label == other for other, _, _ in out):
            raise ConfigError(f"two tokenizers are named {label!r}; label them (name=path on the command line, "
                              "or a mapping name -> tokenizer)")
        out.append((label, source, model))
    return out


# ------------------------------------------------------------------------------------ the comparison
def _data_signal(data: Any) -> Signal:
    signal = Signal.of(data)
    if signal is None:
        raise ConfigError(f"data {type(data).__name__} has no signal spec (rate, unit, patch length, channels): "
                          "give the DataModule or its ModalitySpec")
    return signal


def _headline(name: str, model: Any, signal: Signal) -> str:
    family = getattr(model, "family", type(model).__name__)
    return f"tokenizer '{name}' ({family}, '{model.contract.name}') cannot take the '{signal.name}' data " \
           "(data vs tokenizer)"


def _device(device: str | torch.device) -> torch.device:
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


@dataclass
class _Entry:
    name: str
    source: str | None
    model: Any
    rows: Any
    usage: CodebookUsage
    errors: dict[str, dict[str, list[np.ndarray]]]


def compare_tokenizers(tokenizers: Sequence[TokenizerLike] | Mapping[str, TokenizerLike],
                       windows: Iterable[Mapping[str, torch.Tensor]], data: Any, *,
                       modes: Sequence[str] = MODES, max_windows: int | None = None,
                       bands: Sequence[tuple[str, float, float]] | None = None,
                       device: str | torch.device = "cpu") -> Comparison:
    """Reconstruct the same windows with every tokenizer and score them (module docstring).

    Args:
        tokenizers: objects satisfying :class:`~neurorvq.tokenizers.Tokenizer`, or sources :func:`neurorvq.load`
            takes (checkpoints, ``save_pretrained`` folders, Hub ids); a mapping ``name -> tokenizer`` names them.
            Modules are put in eval mode and moved to ``device``.
        windows: batches ``{"signal": float [B, C, T] in the data's unit, "channel_ids": int [C] or [B, C]}``
            (ids into the data's vocabulary), e.g. a held-out split's DataLoader.
        data: the data's DataModule or ModalitySpec: its rate, unit, patch length and channels are checked against
            every tokenizer's (:mod:`neurorvq.compat`); its ``bands`` are the default ``bands``.
        modes: ``"patch"`` and/or ``"channel"`` (:data:`MODES`).
        max_windows: compare at most this many windows (None: all).
        bands: ``(name, low Hz, high Hz)`` per band (default: the data's).
        device: ``"cpu"``, ``"cuda"``, ``"auto"``...

    Raises :class:`~neurorvq.compat.IncompatibleSignal` naming the tokenizer and every field it cannot take.
    """
    from neurorvq.tasks.channels import ChannelRows, model_ids

    modes = tuple(dict.fromkeys(modes))
    if not modes or any(m not in MODES for m in modes):
        raise ConfigError(f"modes is {list(modes)}; give one or both of {', '.join(MODES)}")
    if max_windows is not None and int(max_windows) < 1:
        raise ConfigError(f"max_windows is {max_windows}; give 1 or more (or None for all windows)")
    signal = _data_signal(data)
    spec = getattr(data, "spec", data)
    bands = tuple((str(n), float(lo), float(hi)) for n, lo, hi in (getattr(spec, "bands", ()) if bands is None
                                                                    else bands))
    dev = _device(device)
    entries: list[_Entry] = []
    for name, source, model in named_tokenizers(tokenizers):
        # every field (the window length too when the data states it; otherwise it is checked on the first batch)
        rows = ChannelRows.bind(signal, model, headline=_headline(name, model, signal), fields=FIELDS)
        if isinstance(model, torch.nn.Module):
            model.eval().to(dev)
        entries.append(_Entry(name, source, model, rows, CodebookUsage(model.layout),
                              {m: {c: [] for c in ["raw", *[b[0] for b in bands]]} for m in modes}))
    count = 0
    example: ExampleWindow | None = None
    with torch.no_grad():
        for batch in windows:
            if max_windows is not None and count >= max_windows:
                break
            x, ids = batch["signal"], batch["channel_ids"]
            if max_windows is not None and count + x.shape[0] > max_windows:
                keep = max_windows - count
                x, ids = x[:keep], ids[:keep] if ids.ndim == 2 else ids
            if count == 0 and signal.window_samples is None:  # the window length is known from the first batch
                for entry in entries:
                    check_compatible(dataclasses.replace(signal, window_samples=int(x.shape[-1])), entry.model,
                                     headline=_headline(entry.name, entry.model, signal), fields=("window",))
            x_np = x.double().cpu().numpy()
            shown: dict[str, np.ndarray] = {}
            for entry in entries:
                rec = _round_trip(entry, x.to(dev), model_ids(entry.rows, ids.to(dev)))
                if rec.shape != x_np.shape:
                    raise InputError(f"tokenizer '{entry.name}' reconstructed shape {rec.shape} from windows of "
                                     f"shape {x_np.shape}")
                for mode in modes:
                    per = band_mse_per_window(x_np, rec, bands, signal.sampling_rate,
                                              signal.patch_length if mode == "patch" else None)
                    for column, values in per.items():
                        entry.errors[mode][column].append(values)
                shown[entry.name] = rec[0]
            if example is None:
                first = (ids[0] if ids.ndim == 2 else ids).tolist()
                example = ExampleWindow(x_np[0], shown, [signal.channels[i] for i in first])
            count += x.shape[0]
    if count == 0:
        raise InputError("the window iterator gave no windows; check the split and its data")
    scores = [_scores(entry, signal, count) for entry in entries]
    data_info = {"name": signal.name, "sampling_rate": signal.sampling_rate, "unit": signal.unit,
                 "patch_length": signal.patch_length}
    return Comparison(scores, modes, bands, count, data_info, example)


def _round_trip(entry: _Entry, x: torch.Tensor, channels: torch.Tensor) -> np.ndarray:
    """``x [B, C, T]`` -> ids -> reconstruction ``[B, C, T]`` (float64, on the CPU); counts the ids."""
    encoded = entry.model.tokenize(x, channels)
    entry.usage.update(encoded.ids)
    return entry.model.detokenize(encoded, channels).double().cpu().numpy()


def _scores(entry: _Entry, signal: Signal, count: int) -> TokenizerScores:
    mse = {m: {c: float(np.mean(np.concatenate(v))) for c, v in cols.items()} for m, cols in entry.errors.items()}
    std = {m: {c: float(np.std(np.concatenate(v))) for c, v in cols.items()} for m, cols in entry.errors.items()}
    model = entry.model
    config_hash = model.config_hash() if callable(getattr(model, "config_hash", None)) else None
    return TokenizerScores(
        entry.name, str(getattr(model, "family", type(model).__name__)), entry.source, config_hash, model.layout,
        bits_per_second(model.layout, signal.sampling_rate, signal.patch_length),
        signal.sampling_rate / signal.patch_length, mse, std, entry.usage.table(), count)


__all__ = ["Comparison", "ExampleWindow", "MODES", "TokenizerScores", "bits_per_second", "compare_tokenizers",
           "default_name", "mode_text", "named_tokenizers"]
