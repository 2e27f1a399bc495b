"""Codebook usage of a tokenizer's ids: how many of the V codes of each (code group, level) quantizer occur, and the
perplexity ``exp(entropy)`` of their distribution (1 = one code, V = uniform). ``neurorvq reconstruct`` reports
them on the split it reconstructs (e.g. a held-out subject); the FM's pretraining diagnostics use the same counts.
"""

from __future__ import annotations

from typing import Any

import torch

from neurorvq.tokenizers import TokenLayout


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
    """Code counts of a tokenizer's ids accumulated over batches, per stream of its :class:`TokenLayout`.

    ``CodebookUsage(layout)``; ``CodebookUsage(branches=S, levels=N, codebook_size=V)`` is the uniform layout of S
    groups ``b0 .. b{S-1}`` (NeuroRVQ's). :meth:`update` takes ids ``[B, H, L]`` (or the grouped ``[B, G, N, L]``).
    """

    def __init__(self, layout: TokenLayout | None = None, *, branches: int | None = None, levels: int | None = None,
                 codebook_size: int | None = None) -> None:
        if layout is None:
            if None in (branches, levels, codebook_size):
                raise ValueError("give a TokenLayout, or branches, levels and codebook_size")
            layout = TokenLayout.uniform([f"b{i}" for i in range(branches)], levels, codebook_size)
        self.layout = layout
        self.counts = torch.zeros(1, layout.num_streams, layout.max_codebook_size, dtype=torch.long)

    def update(self, ids: torch.Tensor) -> None:
        if ids.dim() == 4:
            ids = ids.flatten(1, 2)
        b, h, l = ids.shape
        add_code_counts(self.counts, ids.detach().cpu().transpose(0, 1).reshape(1, h, b * l))

    def table(self) -> dict[str, Any]:
        """``usage [G][N_g]`` (fraction of each codebook seen at least once), ``perplexity [G][N_g]``, their means,
        the group names, the (largest) codebook size and the number of tokens counted per quantizer."""
        usage, perplexity = [], []
        for h, (_, level, size) in enumerate(self.layout.streams):
            counts = self.counts[0, h, :size]
            if level == 0:
                usage.append([])
                perplexity.append([])
            usage[-1].append(float((counts > 0).double().mean()))
            perplexity[-1].append(float(code_perplexity(counts)))
        flat_usage = [u for row in usage for u in row]
        flat_perplexity = [p for row in perplexity for p in row]
        return {"usage": usage, "perplexity": perplexity, "mean_usage": sum(flat_usage) / len(flat_usage),
                "mean_perplexity": float(torch.tensor(flat_perplexity, dtype=torch.float64).mean()),
                "groups": list(self.layout.groups), "codebook_size": self.layout.max_codebook_size,
                "tokens": int(self.counts[0, 0].sum())}


def format_usage(table: dict[str, Any], title: str) -> str:
    """A Markdown table: one row per code group (NeuroRVQ: per branch), one column per RVQ level,
    ``usage % (perplexity)`` in each cell (empty where a group has fewer levels)."""
    levels = max(len(row) for row in table["usage"])
    groups = table.get("groups") or [str(s) for s in range(len(table["usage"]))]
    lines = [title, "", "| group | " + " | ".join(f"level {n}" for n in range(levels)) + " |",
             "|---|" + "---|" * levels]
    for group, usage, perplexity in zip(groups, table["usage"], table["perplexity"]):
        cells = [f"{100 * u:.0f}% ({p:.0f})" for u, p in zip(usage, perplexity)] + [""] * (levels - len(usage))
        lines.append(f"| {group} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(f"Mean: {100 * table['mean_usage']:.0f}% of {table['codebook_size']} codes used, perplexity "
                 f"{table['mean_perplexity']:.1f}, over {table['tokens']} tokens per quantizer.")
    return "\n".join(lines)


__all__ = ["CodebookUsage", "add_code_counts", "code_perplexity", "format_usage"]
