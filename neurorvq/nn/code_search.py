"""Nearest-code search with bounded memory (method.md §3.4, "Assign").

``idx = argmin_k |z - e_k|^2`` for every row ``z`` of ``[branch, M, d]`` against the branch's codebook ``[K, d]``.
The score matrix ``|e_k|^2 - 2 z.e_k`` (``|z|^2`` is constant per row, so it does not move the argmin) is
computed in row chunks so that no block holds more than ``block_elements`` scores: at the official size (4
branches, K = 8192) one dense block at batch 64 (M = 16,384 rows) is 2 GiB of float32, the default bound 128 MiB.

The block kernel is pluggable: :data:`SEARCH_IMPLEMENTATIONS` maps a name to a :data:`BlockSearch`, and a callable
may be passed directly. ``"float32"`` is the only one shipped: one float32 ``baddbmm`` and an ``argmin``, the
arithmetic of the original dense search, so ids are unchanged except at float32-level near-ties (a different
chunk shape may let the matrix library sum in another order). A reduced-precision candidate search re-ranked in
float32 is not provided (see benchmarks/README.md).
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import torch

DEFAULT_BLOCK_ELEMENTS = 1 << 25
"""Largest score block of :func:`nearest_codes` by default: 33,554,432 elements (128 MiB of float32; 1,024 rows of
4 branches at K = 8192). Smaller blocks cost time on CPU (2^23-2^24: up to ~10% slower at the official size, 2
cores; benchmarks/README.md)."""

BlockSearch = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
"""``(z [S, m, d], codebook [S, K, d], code_sq_norms [S, 1, K]) -> (ids [S, m] int64, scores [S, m])`` where
``scores`` is ``|e_id|^2 - 2 z.e_id`` (float32). Receives one row chunk at a time."""


class SearchResult(NamedTuple):
    """ids: ``[S, M]`` int64 nearest code per row. distances: ``[S, M]`` float32 ``|z - e_id|^2``."""

    ids: torch.Tensor
    distances: torch.Tensor


def float32_block(z: torch.Tensor, codebook: torch.Tensor, code_sq_norms: torch.Tensor
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """One float32 score block ``[S, m, K] = |e|^2 - 2 z.e`` and its row-wise argmin (first index on ties)."""
    scores = torch.baddbmm(code_sq_norms, z, codebook.transpose(1, 2), alpha=-2.0)
    ids = scores.argmin(dim=-1)
    return ids, scores.gather(-1, ids.unsqueeze(-1)).squeeze(-1)


SEARCH_IMPLEMENTATIONS: dict[str, BlockSearch] = {"float32": float32_block}


def resolve_search(impl: str | BlockSearch) -> BlockSearch:
    """The block kernel named ``impl`` (a key of :data:`SEARCH_IMPLEMENTATIONS`), or ``impl`` if callable."""
    if callable(impl):
        return impl
    try:
        return SEARCH_IMPLEMENTATIONS[impl]
    except KeyError:
        raise ValueError(f"unknown search implementation {impl!r}; known: {sorted(SEARCH_IMPLEMENTATIONS)}") from None


def chunk_rows(num_branches: int, rows: int, codebook_size: int, block_elements: int) -> tuple[bool, int]:
    """How :func:`nearest_codes` splits ``[S, M]`` rows against ``K`` codes under ``block_elements``.

    Returns ``(all_branches, rows_per_block)``: all branches together in blocks of ``rows_per_block`` rows
    (``S * rows_per_block * K <= block_elements``), or, when a single row of every branch would exceed the
    bound, one branch at a time (``rows_per_block * K <= block_elements``). Raises ``ValueError`` if even one
    row of one branch (``K`` scores) exceeds it.
    """
    if block_elements < codebook_size:
        raise ValueError(f"block_elements={block_elements} is below one row of scores (codebook of {codebook_size})")
    together = block_elements // (num_branches * codebook_size)
    if together >= 1:
        return True, min(together, max(rows, 1))
    return False, min(block_elements // codebook_size, max(rows, 1))


def nearest_codes(z: torch.Tensor, codebook: torch.Tensor, *, block_elements: int | None = None,
                  impl: str | BlockSearch = "float32") -> SearchResult:
    """Nearest code of every row: ``z [S, M, d]``, ``codebook [S, K, d]`` -> :class:`SearchResult` ``[S, M]``.

    ``block_elements``: the most scores one block may hold (default :data:`DEFAULT_BLOCK_ELEMENTS`); blocks are
    row chunks of all branches together, or of one branch when ``S x K`` alone exceeds the bound. ``impl``: the
    block kernel (name or :data:`BlockSearch`). Pure: reads its arguments only (no autograd graph is built for
    the ids; pass detached inputs).
    """
    s, m, _ = z.shape
    k = codebook.shape[1]
    block = resolve_search(impl)
    limit = DEFAULT_BLOCK_ELEMENTS if block_elements is None else int(block_elements)
    code_sq_norms = codebook.square().sum(-1).unsqueeze(1)  # [S, 1, K]
    together, rows = chunk_rows(s, m, k, limit)
    if together:
        if rows >= m:
            ids, scores = block(z, codebook, code_sq_norms)
        else:
            parts = [block(z[:, i:i + rows], codebook, code_sq_norms) for i in range(0, m, rows)]
            ids, scores = torch.cat([p[0] for p in parts], 1), torch.cat([p[1] for p in parts], 1)
    else:
        per_branch = []
        for b in range(s):
            zb, cb, nb = z[b:b + 1], codebook[b:b + 1], code_sq_norms[b:b + 1]
            per_branch.append([block(zb[:, i:i + rows], cb, nb) for i in range(0, m, rows)])
        ids = torch.cat([torch.cat([p[0] for p in parts], 1) for parts in per_branch], 0)
        scores = torch.cat([torch.cat([p[1] for p in parts], 1) for parts in per_branch], 0)
    return SearchResult(ids, scores + z.square().sum(-1))


def nearest_codes_dense(z: torch.Tensor, codebook: torch.Tensor) -> SearchResult:
    """The original search kept as the reference: one dense ``[S, M, K]`` float32 score matrix, no chunking."""
    code_sq_norms = codebook.square().sum(-1).unsqueeze(1)
    scores = torch.baddbmm(code_sq_norms, z, codebook.transpose(1, 2), alpha=-2.0)
    ids = scores.argmin(dim=-1)
    return SearchResult(ids, scores.gather(-1, ids.unsqueeze(-1)).squeeze(-1) + z.square().sum(-1))
