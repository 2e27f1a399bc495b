"""Diagnostics of masked-token pretraining: per (branch, depth) head, the FM's masked-token accuracy beside the
accuracy of always predicting the most frequent code, and the frozen tokenizer's codebook usage on the targets.

:class:`~neurorvq.tasks.pretrain.PretrainTask` accumulates code counts on the device in its steps
(:func:`add_code_counts`), sums them over the ranks at epoch ends and turns them into a table with
:func:`diagnostics_table`. The latest table is written to ``<run folder>/pretrain_diagnostics.json``
(:data:`DIAGNOSTICS_FILE`) and stored in every checkpoint under :data:`CHECKPOINT_KEY`;
:func:`read_pretrain_diagnostics` reads it back from a ``.ckpt`` and :func:`diagnostics_markdown` renders it.

Nothing here imports Lightning: a report can use the readers without the training stack.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Sequence

import torch

from neurorvq.eval.codebook import add_code_counts, code_perplexity
from neurorvq.file_io import read_lightning_checkpoint, write_atomic

CHECKPOINT_KEY = "neurorvq_pretrain_diagnostics"
DIAGNOSTICS_FILE = "pretrain_diagnostics.json"
FORMAT_VERSION = 1
METRICS = ("masked_accuracy", "majority_accuracy", "codebook_usage", "perplexity")

NOTE = ("Per (branch, depth) token head. masked_accuracy: argmax of the FM's logits equals the tokenizer's id, "
        "pooled over the validation masked tokens. majority_accuracy: accuracy of always predicting one code per "
        "head, the most frequent code of the reference targets (majority_source: 'train' = every target id of the "
        "current training epoch; 'validation' = the validation masked targets, when no training step was counted), "
        "scored on the same validation masked tokens: val_counts[s, n, code] / val_masked_tokens. codebook_usage: "
        "fraction of the V codes that occur at least once in the reference targets (usage_source); perplexity: "
        "exp(entropy) of their code distribution (1 = one code, V = uniform). Counts are summed over all ranks. "
        "epoch is Lightning's 0-based current_epoch; 'validation' says when the validation counts were taken.")


def _nested(values: torch.Tensor) -> list[list[float | None]]:
    return [[None if math.isnan(x) else float(x) for x in row] for row in values.double().tolist()]


def _mean(values: torch.Tensor) -> float | None:
    return None if bool(values.isnan().any()) else float(values.double().mean())


def diagnostics_table(train_counts: torch.Tensor, val_counts: torch.Tensor, val_correct: torch.Tensor,
                      val_total: int | torch.Tensor) -> dict[str, Any]:
    """The diagnostics of S x N token heads from counts (pure; CPU or device tensors).

    Args:
        train_counts: ``[S, N, V]`` occurrences of each code among the training targets (all positions).
        val_counts: ``[S, N, V]`` occurrences of each code among the validation masked targets.
        val_correct: ``[S, N]`` validation masked tokens whose FM prediction was right.
        val_total: validation masked tokens per head (every head shares the mask).

    Returns a JSON-ready dict: ``branches``, ``depths``, ``codebook_size``, ``majority_source`` / ``usage_source``
    ('train', 'validation' or None), ``train_tokens`` / ``val_masked_tokens`` (per head), the ``[S][N]`` lists
    ``masked_accuracy``, ``majority_accuracy``, ``majority_code``, ``codebook_usage``, ``perplexity`` (None where
    there is nothing to score), ``mean`` (the four metrics averaged over the heads) and ``note``. The majority code
    is the reference counts' argmax (the smallest id on ties).
    """
    train_counts, val_counts = train_counts.detach().long().cpu(), val_counts.detach().long().cpu()
    val_correct = val_correct.detach().long().cpu()
    if train_counts.dim() != 3 or val_counts.shape != train_counts.shape:
        raise ValueError(f"train_counts and val_counts must both be [S, N, V]; got {tuple(train_counts.shape)} and "
                         f"{tuple(val_counts.shape)}")
    s, n, v = train_counts.shape
    if val_correct.shape != (s, n):
        raise ValueError(f"val_correct must be [{s}, {n}]; got {tuple(val_correct.shape)}")
    val_total = int(val_total)
    train_tokens = int(train_counts[0, 0].sum()) if s and n else 0
    if train_tokens > 0:
        source, reference = "train", train_counts
    elif val_total > 0:
        source, reference = "validation", val_counts
    else:
        source, reference = None, train_counts
    nan = torch.full((s, n), float("nan"), dtype=torch.float64)
    majority_code = reference.argmax(-1)  # first maximum: the smallest id on ties
    if val_total > 0:
        masked_accuracy = val_correct.double() / val_total
        majority_accuracy = val_counts.gather(-1, majority_code.unsqueeze(-1)).squeeze(-1).double() / val_total
    else:
        masked_accuracy = majority_accuracy = nan
    if source is not None:
        usage = (reference > 0).sum(-1).double() / v
        perplexity = code_perplexity(reference)
    else:
        usage = perplexity = nan
    metrics = {"masked_accuracy": masked_accuracy, "majority_accuracy": majority_accuracy,
               "codebook_usage": usage, "perplexity": perplexity}
    return {
        "format_version": FORMAT_VERSION, "branches": s, "depths": n, "codebook_size": v,
        "majority_source": source, "usage_source": source,
        "train_tokens": train_tokens, "val_masked_tokens": val_total,
        **{name: _nested(values) for name, values in metrics.items()},
        "majority_code": majority_code.tolist() if source is not None else [[None] * n for _ in range(s)],
        "mean": {name: _mean(values) for name, values in metrics.items()},
        "note": NOTE,
    }


def write_diagnostics_json(table: dict[str, Any], folder: str | os.PathLike) -> Path:
    """Write ``table`` to ``folder/pretrain_diagnostics.json`` (atomically: a temporary file, then a rename)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / DIAGNOSTICS_FILE
    return write_atomic(path, json.dumps(table, indent=2) + "\n", tmp=path.with_name(path.name + ".tmp"))


def read_pretrain_diagnostics(ckpt_path: str | os.PathLike) -> dict[str, Any] | None:
    """The diagnostics table stored in a PretrainTask ``.ckpt`` (the latest one when it was saved), or None when
    the file holds none (a checkpoint from before the diagnostics, another task's, a non-dict file, or a folder,
    e.g. ``save_pretrained`` output). A missing path raises :class:`FileNotFoundError`."""
    path = Path(ckpt_path)
    if path.is_dir():
        return None
    if not path.exists():
        raise FileNotFoundError(f"checkpoint '{path}' does not exist")
    ckpt = read_lightning_checkpoint(path)  # memory-mapped: only the small table is read
    table = ckpt.get(CHECKPOINT_KEY) if isinstance(ckpt, dict) else None
    return dict(table) if isinstance(table, dict) else None


def _fmt(value: float | None, digits: int) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def diagnostics_markdown(table: dict[str, Any]) -> str:
    """A Markdown table of ``table`` (rows: branch/depth; columns: masked accuracy, majority accuracy, codebook
    usage, perplexity) and a line with the means over the heads."""
    lines = ["| branch | depth | masked acc | majority acc | codebook usage | perplexity |",
             "|---:|---:|---:|---:|---:|---:|"]
    for s in range(int(table["branches"])):
        for n in range(int(table["depths"])):
            lines.append(f"| {s} | {n} | {_fmt(table['masked_accuracy'][s][n], 3)} | "
                         f"{_fmt(table['majority_accuracy'][s][n], 3)} | {_fmt(table['codebook_usage'][s][n], 3)} | "
                         f"{_fmt(table['perplexity'][s][n], 1)} |")
    mean = table["mean"]
    where = []
    if table.get("epoch") is not None:
        where.append(f"epoch {table['epoch']}")
    if table.get("global_step") is not None:
        where.append(f"step {table['global_step']}")
    source = table.get("majority_source")
    lines.append("")
    lines.append(f"Mean over the {table['branches']} x {table['depths']} heads: masked accuracy "
                 f"{_fmt(mean['masked_accuracy'], 3)}, majority accuracy {_fmt(mean['majority_accuracy'], 3)} "
                 f"(always the most frequent code of the {source or 'n/a'} targets), codebook usage "
                 f"{_fmt(mean['codebook_usage'], 3)} of {table['codebook_size']} codes, perplexity "
                 f"{_fmt(mean['perplexity'], 1)}" + (f" ({', '.join(where)})" if where else "") + ".")
    return "\n".join(lines) + "\n"


def diagnostics_overview_markdown(entries: Sequence[tuple[str, str, dict[str, Any]]]) -> str:
    """One Markdown line per ``(label, checkpoint, table)`` (e.g. one FM pretrained per cross-validation fold):
    the means over the heads of masked accuracy, majority accuracy, codebook usage and perplexity."""
    lines = ["| run | checkpoint | epoch | masked acc | majority acc | codebook usage | perplexity |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for label, checkpoint, table in entries:
        mean = table["mean"]
        epoch = "n/a" if table.get("epoch") is None else str(table["epoch"])
        lines.append(f"| {label} | {checkpoint} | {epoch} | {_fmt(mean['masked_accuracy'], 3)} | "
                     f"{_fmt(mean['majority_accuracy'], 3)} | {_fmt(mean['codebook_usage'], 3)} | "
                     f"{_fmt(mean['perplexity'], 1)} |")
    lines.append("")
    lines.append("Means over the branch x depth token heads; majority acc: always the most frequent code of the "
                 "reference targets, scored on the same validation masked tokens.")
    return "\n".join(lines) + "\n"


__all__ = ["CHECKPOINT_KEY", "DIAGNOSTICS_FILE", "add_code_counts", "diagnostics_markdown",
           "diagnostics_overview_markdown", "diagnostics_table", "read_pretrain_diagnostics", "write_diagnostics_json"]
