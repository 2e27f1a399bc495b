"""Codebook usage of a tokenizer's ids: how many of the V codes of each (branch, level) quantizer occur, and the
perplexity ``exp(entropy)`` of their distribution (1 = one code, V = uniform). ``neurorvq reconstruct`` reports
them on the split it reconstructs (e.g. a held-out subject); the FM's pretraining diagnostics use the same counts.
"""

from __future__ import annotations

from typing import Any

import torch


def add_code_counts(counts: torch.Tensor, codes: torch.Tensor) -> None:
    """Add the ids ``codes [S, N, M]`` (int64, in ``[0, V)``) to ``counts [S, N, V]`` in place: counts[s, n, c] +=
    number of ``c`` in ``codes[s, n]``. One ``scatter_add_`` on the flat index ``(s*N + n)*V + id``: no host sync
    (``torch.bincount`` would read the maximum back on CUDA)."""
    s, n, v = counts.shape
    if codes.dim() != 3 or codes.shape[:2] != (s, n):
        raise ValueError(f"codes must be [{s}, {n}, M]; got {tuple(codes.shape)}")
    if not counts.is_contiguous():
        raise ValueError("counts must be contiguous (it is updated through a flat view)")
    offsets = torch.arange(s * n, device=codes.device, dtype=torch.long).view(s, n, 1) * v
    index = (codes.long() + offsets).flatten()
    counts.view(-1).scatter_add_(0, index, torch.ones_like(index, dtype=counts.dtype))


def code_perplexity(counts: torch.Tensor) -> torch.Tensor:
    """``exp(entropy)`` of each row's distribution ``counts [..., V]`` (0 log 0 = 0); NaN for an empty row."""
    total = counts.sum(-1, keepdim=True).double()
    p = counts.double() / total
    entropy = -torch.where(p > 0, p * p.log(), torch.zeros_like(p)).sum(-1)
    return torch.where(total.squeeze(-1) > 0, entropy.exp(), torch.full_like(entropy, float("nan")))


class CodebookUsage:
    """Code counts of token ids ``[B, S, N, L]`` (batch, branch, level, tokens) accumulated over batches."""

    def __init__(self, branches: int, levels: int, codebook_size: int) -> None:
        self.counts = torch.zeros(branches, levels, codebook_size, dtype=torch.long)

    def update(self, tokens: torch.Tensor) -> None:
        b, s, n, l = tokens.shape
        add_code_counts(self.counts, tokens.detach().cpu().permute(1, 2, 0, 3).reshape(s, n, b * l))

    def table(self) -> dict[str, Any]:
        """``usage [S][N]`` (fraction of the codes seen at least once), ``perplexity [S][N]``, their means, the
        codebook size and the number of tokens counted per quantizer."""
        usage = (self.counts > 0).double().mean(-1)
        perplexity = code_perplexity(self.counts)
        return {"usage": usage.tolist(), "perplexity": perplexity.tolist(), "mean_usage": float(usage.mean()),
                "mean_perplexity": float(perplexity.mean()), "codebook_size": int(self.counts.shape[-1]),
                "tokens": int(self.counts[0, 0].sum())}


def format_usage(table: dict[str, Any], title: str) -> str:
    """A Markdown table: one row per branch, one column per RVQ level, ``usage % (perplexity)`` in each cell."""
    levels = len(table["usage"][0])
    lines = [title, "", "| branch | " + " | ".join(f"level {n}" for n in range(levels)) + " |",
             "|---|" + "---|" * levels]
    for s, (usage, perplexity) in enumerate(zip(table["usage"], table["perplexity"])):
        lines.append(f"| {s} | " + " | ".join(f"{100 * u:.0f}% ({p:.0f})" for u, p in zip(usage, perplexity)) + " |")
    lines.append("")
    lines.append(f"Mean: {100 * table['mean_usage']:.0f}% of {table['codebook_size']} codes used, perplexity "
                 f"{table['mean_perplexity']:.1f}, over {table['tokens']} tokens per quantizer.")
    return "\n".join(lines)


__all__ = ["CodebookUsage", "add_code_counts", "code_perplexity", "format_usage"]
