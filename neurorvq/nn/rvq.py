"""Residual vector quantizers with l2-normalised codes and EMA codebooks (method.md §3.4).

One :class:`ResidualVQ` holds the quantizers of every branch: ``codebooks [branch, level, K, d]``. All
branches advance one level at a time together (one batched nearest-code search per level, bounded in memory:
:mod:`neurorvq.nn.code_search`), which is exact because branches never interact inside the quantizer.

Per level ``j`` with residual ``r_j`` (``r_1`` = encoder output): ``z = l2norm(r_j)``; ``idx = argmin_k
|z - e_k|^2``; ``q_j = z + sg(e_idx - z)`` (straight-through); ``r_{j+1} = r_j - q_j`` (un-normalised
residual); loss ``beta * mse(sg(e_idx), z) + aux_weight * mse(q_j, sg(r_{j+1}))`` (quirk Q6).

Codebooks are buffers updated by EMA in training (never by gradient). The statistics of all branches and levels
(per-code counts and sums) are gathered after the level loop and applied once per step: under DDP one all-reduce
of the stacked statistics per step (plus one broadcast of the codebooks when dead-code re-seeding is on). Whether
to synchronise is decided once, at the first call that needs it (``sync``). The forward pass reads nothing back
to the host: the first-batch k-means is the explicit hook :meth:`ResidualVQ.initialise` (run by the forward
itself only when a caller has not run it first).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from neurorvq.nn.code_search import BlockSearch, nearest_codes


class RVQOutput(NamedTuple):
    """Result of :meth:`ResidualVQ.forward`.

    quantized: ``[branch, M, d]`` sum of the straight-through level outputs (float32).
    indices: ``[branch, level, M]`` int64 code ids.
    loss_per_level: ``[branch, level]`` float32.
    counts: ``[branch, level, K]`` float32 per-code counts of this batch (all ranks' in DDP training; for usage
        and perplexity).
    """

    quantized: torch.Tensor
    indices: torch.Tensor
    loss_per_level: torch.Tensor
    counts: torch.Tensor


def _max_similarity_block(z: torch.Tensor, means: torch.Tensor, _sq_norms: torch.Tensor
                          ) -> tuple[torch.Tensor, torch.Tensor]:
    """k-means assignment block: ``argmax_k z.m_k`` (cosine similarity; scores are the similarities)."""
    similarity = torch.bmm(z, means.transpose(1, 2))
    ids = similarity.argmax(-1)
    return ids, similarity.gather(-1, ids.unsqueeze(-1)).squeeze(-1)


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


class ResidualVQ(nn.Module):
    """``num_branches`` residual quantizers of ``depth`` levels, each a codebook of ``codebook_size x dim``.

    Args:
        decay: EMA decay of codebooks and usage statistics (0.99 official).
        beta: weight of the commitment term. aux_weight: weight of the official auxiliary term (0 drops it).
        kmeans_iters: spherical k-means iterations of the first-batch initialisation (0 keeps the random init).
        official_eval_updates: reproduce the official eval-mode side effects (usage EMA updated and k-means
            run when uninitialised, even in eval; quirk Q13). Off by default: eval leaves all state frozen.
        dead_code_after: dead-code policy (0 = off, the official behaviour, quirk Q14). When > 0, a code that no
            vector of the (all-ranks) batch chose for this many consecutive training steps is re-seeded with a
            random vector of the current batch at its level, and its counter restarts. Under DDP rank 0's
            re-seeded codebooks are broadcast (one broadcast per step while enabled).
        search_block_elements: the most distance scores one block of the nearest-code search holds (``None``:
            :data:`~neurorvq.nn.code_search.DEFAULT_BLOCK_ELEMENTS`, 128 MiB of float32).
        search_impl: the search's block kernel (a name of
            :data:`~neurorvq.nn.code_search.SEARCH_IMPLEMENTATIONS` or a callable).

    Attribute ``sync``: whether statistics are reduced across ranks; ``None`` (the default) decides at the first
    call that needs it (a process group of more than one rank exists) and caches the answer; not pickled.
    """

    def __init__(self, num_branches: int, depth: int, codebook_size: int, dim: int, *, decay: float = 0.99,
                 beta: float = 1.0, aux_weight: float = 0.4, kmeans_iters: int = 10,
                 official_eval_updates: bool = False, dead_code_after: int = 0,
                 search_block_elements: int | None = None, search_impl: str | BlockSearch = "float32") -> None:
        super().__init__()
        self.num_branches, self.depth, self.codebook_size, self.dim = num_branches, depth, codebook_size, dim
        self.decay, self.beta, self.aux_weight = decay, beta, aux_weight
        self.kmeans_iters = kmeans_iters
        self.official_eval_updates = official_eval_updates
        self.dead_code_after = int(dead_code_after)
        self.search_block_elements = search_block_elements
        self.search_impl = search_impl
        codebooks = F.normalize(torch.randn(num_branches, depth, codebook_size, dim), dim=-1)
        self.register_buffer("codebooks", codebooks)
        self.register_buffer("initted", torch.zeros(num_branches, depth, dtype=torch.bool))
        self.register_buffer("usage", torch.zeros(num_branches, depth, codebook_size))
        # consecutive training steps each code went unchosen (for the dead-code policy; restored on resume)
        self.register_buffer("unused_steps", torch.zeros(num_branches, depth, codebook_size, dtype=torch.int32))
        self._initialised = False  # host mirror of initted.all(): refreshed on load, set by initialise()
        self.sync: bool | None = None

    # ------------------------------------------------------------------------------------ state
    def _load_from_state_dict(self, *args, **kwargs):  # noqa: D401 - torch hook
        result = super()._load_from_state_dict(*args, **kwargs)
        self._initialised = bool(self.initted.all())  # one host read at load time, none in forward
        return result

    def __getstate__(self):
        state = super().__getstate__()
        state["sync"] = None  # a pickled copy (a spawned DDP worker) decides in its own process
        return state

    @property
    def initialised(self) -> bool:
        """Every codebook initialised (k-means ran, a checkpoint was loaded, or :meth:`mark_initialised`)."""
        return self._initialised

    @property
    def needs_initialisation(self) -> bool:
        """The next forward would run the first-batch k-means (training, or eval with the Q13 behaviour)."""
        return (self.training or self.official_eval_updates) and not self._initialised

    def mark_initialised(self) -> None:
        """Declare the codebooks ready (no k-means on the next training forward)."""
        self.initted.fill_(True)
        self._initialised = True

    def _synchronised(self) -> bool:
        if self.sync is None:
            self.sync = _distributed()
        return self.sync

    # ------------------------------------------------------------------------------------ search
    def nearest(self, z: torch.Tensor, level: int) -> torch.Tensor:
        """Ids of the nearest codes: ``z [branch, M, d]`` (float32) -> ``[branch, M]`` (chunked search)."""
        return nearest_codes(z, self.codebooks[:, level], block_elements=self.search_block_elements,
                             impl=self.search_impl).ids

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """Sum of the selected codes over levels: ``indices [branch, level, ...]`` -> ``[branch, ..., d]``."""
        s, n = indices.shape[:2]
        offsets = (torch.arange(s * n, device=indices.device) * self.codebook_size).reshape(s, n, *([1] * (indices.ndim - 2)))
        codes = self.codebooks.reshape(-1, self.dim)[indices + offsets]
        return codes.sum(dim=1)

    # ------------------------------------------------------------------------------------ forward
    def forward(self, z: torch.Tensor) -> RVQOutput:
        """Quantize ``z [branch, M, d]`` level by level (computed in float32 even under autocast).

        Runs :meth:`initialise` first when :attr:`needs_initialisation` (a Python flag: no host read)."""
        if self.needs_initialisation:
            self.initialise(z)
        with torch.autocast(device_type=z.device.type, enabled=False):
            return self._forward(z.float())

    def _level(self, residual: torch.Tensor, level: int):
        """One level: ``(z, idx, codes, q, next_residual)`` for ``residual [S, M, d]``."""
        s, m, d = residual.shape
        z = F.normalize(residual, dim=-1)
        idx = self.nearest(z.detach(), level)
        codes = torch.gather(self.codebooks[:, level], 1, idx.unsqueeze(-1).expand(s, m, d))
        q = z + (codes - z).detach()
        return z, idx, codes, q, residual - q

    def _forward(self, residual: torch.Tensor) -> RVQOutput:
        s, m, d = residual.shape
        quantized = torch.zeros_like(residual)
        indices, losses = [], []
        if self.training:  # the statistics' input: every level's normalised vectors, then a column of ones
            source = residual.new_ones(s, self.depth, m, d + 1)
        for level in range(self.depth):
            z, idx, codes, q, next_residual = self._level(residual, level)
            loss = self.beta * (codes - z).square().mean(dim=(1, 2))
            if self.aux_weight:
                loss = loss + self.aux_weight * (q - next_residual.detach()).square().mean(dim=(1, 2))
            quantized = quantized + q
            residual = next_residual
            if self.training:
                source[:, level, :, :d] = z.detach()
            indices.append(idx)
            losses.append(loss)
        indices_t = torch.stack(indices, 1)  # [S, N, M]
        if self.training:
            counts = self._update_training_statistics(source, indices_t)
        else:
            counts = self._count(indices_t)
            if self.official_eval_updates:
                self._update_usage(counts)
        return RVQOutput(quantized, indices_t, torch.stack(losses, 1), counts)

    # ------------------------------------------------------------------------------------ statistics
    def _flat_ids(self, idx: torch.Tensor) -> torch.Tensor:
        """``idx [S, N, M]`` -> row ids into a ``[S * N * K]`` table, flattened."""
        s, n = idx.shape[:2]
        offsets = torch.arange(s * n, device=idx.device).reshape(s, n, 1) * self.codebook_size
        return (idx + offsets).reshape(-1)

    def _count(self, idx: torch.Tensor) -> torch.Tensor:
        """Per-code counts ``[S, N, K]`` of ``idx [S, N, M]``, without a host sync (no bincount)."""
        s, n = idx.shape[:2]
        flat = self._flat_ids(idx)
        out = torch.zeros(s * n * self.codebook_size, device=idx.device, dtype=torch.float32)
        return out.index_add_(0, flat, torch.ones(flat.numel(), device=idx.device)).reshape(s, n, -1)

    def _update_usage(self, counts: torch.Tensor) -> None:
        self.usage.mul_(self.decay).add_(counts, alpha=1.0 - self.decay)

    def _code_statistics(self, source: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """Sums and counts in one table (one ``index_add_``): ``source [S, N, M, d + 1]`` (vectors with a last
        column of ones), ``idx [S, N, M]`` -> ``[S, N, K, d + 1]``: per code, the sum of its vectors, then their
        count."""
        s, n, _, width = source.shape
        out = torch.zeros(s * n * self.codebook_size, width, device=source.device, dtype=source.dtype)
        return out.index_add_(0, self._flat_ids(idx), source.reshape(-1, width)).reshape(s, n, -1, width)

    @torch.no_grad()
    def _update_training_statistics(self, source: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """Counts, EMA, usage and dead-code counters of every branch and level, once per step.

        ``source [S, N, M, d + 1]``: the normalised vectors of every level and a column of ones; ``idx [S, N, M]``;
        returns the (all-ranks) counts ``[S, N, K]``.
        The statistics of all levels are gathered in one table and, under DDP, reduced by one all-reduce. The
        codebook update ``e <- l2norm(decay * e + (1 - decay) * l2norm(mean of assigned z))`` (unused codes keep
        their vector) then runs level by level: the same arithmetic, on level-sized blocks that stay in cache on
        CPU (one pass over all ``[S, N, K, d]`` codebooks was ~30% slower there).
        """
        d = source.shape[-1] - 1
        stats = self._code_statistics(source, idx)
        if self._synchronised():
            dist.all_reduce(stats)
        counts = stats[..., d].contiguous()
        reseed = self.dead_code_after > 0
        if reseed:
            self.unused_steps.add_(1).masked_fill_(counts > 0, 0)
        for level in range(self.depth):
            codebook, count = self.codebooks[:, level], counts[:, level]
            means = F.normalize(stats[:, level, :, :d] / count.clamp_min(1.0).unsqueeze(-1), dim=-1)
            means = torch.where(count.unsqueeze(-1) == 0, codebook, means)
            updated = F.normalize(self.decay * codebook + (1.0 - self.decay) * means, dim=-1)
            if reseed:
                updated = self._reseed_dead(updated, source[:, level, :, :d], level)
            codebook.copy_(updated)
        if reseed and self._synchronised():  # rank 0's random picks win: one broadcast of every codebook
            dist.broadcast(self.codebooks, src=0)
        self._update_usage(counts)
        return counts

    def _reseed_dead(self, codebook: torch.Tensor, z: torch.Tensor, level: int) -> torch.Tensor:
        """Codes of ``level`` unused for ``dead_code_after`` steps replaced by random vectors of ``z [S, M, d]``
        (no host sync); their counters restart."""
        s, m, d = z.shape
        unused = self.unused_steps[:, level]
        dead = unused >= self.dead_code_after
        pick = torch.randint(0, m, (s, self.codebook_size), device=z.device)
        candidates = torch.gather(z, 1, pick.unsqueeze(-1).expand(s, self.codebook_size, d))
        unused.masked_fill_(dead, 0)
        return torch.where(dead.unsqueeze(-1), candidates, codebook)

    # ------------------------------------------------------------------------------------ initialisation
    @torch.compiler.disable
    @torch.no_grad()
    def initialise(self, z: torch.Tensor) -> None:
        """First-batch initialisation: spherical k-means of every level on ``z [branch, M, d]`` (the quantizer's
        input), level after level (level ``j`` clusters the residuals left by the initialised levels before it).

        Call it once, on the first training batch, before the forward (the forward calls it when it has not run).
        Under DDP it is collective: every rank must call it, and every rank ends with rank 0's starting points
        refined on all ranks' vectors (identical codebooks everywhere). Updates no statistics (the forward does).
        """
        with torch.autocast(device_type=z.device.type, enabled=False):
            residual = z.detach().float()
            for level in range(self.depth):
                self._kmeans_init(F.normalize(residual, dim=-1), level)
                residual = self._level(residual, level)[-1]
        self._initialised = True

    def _kmeans_init(self, z: torch.Tensor, level: int) -> None:
        """Spherical k-means (``kmeans_iters`` rounds) on this batch's vectors of ``level``, every branch at once.

        Means start from batch vectors (with replacement when the batch has fewer than K); empty clusters keep
        their previous mean. Under DDP the starting means are rank 0's and every round's counts and sums are
        all-reduced (one all-reduce of both per round), so the k-means runs on the data of all ranks and every rank
        ends with the same codebooks (the official code initialises each rank separately: quirk Q13).
        """
        s, m, d = z.shape
        k = self.codebook_size
        distributed = self._synchronised()
        if self.kmeans_iters > 0:
            if m >= k:
                pick = torch.stack([torch.randperm(m, device=z.device)[:k] for _ in range(s)])
            else:
                pick = torch.randint(0, m, (s, k), device=z.device)
            means = torch.gather(z, 1, pick.unsqueeze(-1).expand(s, k, d)).contiguous()
            if distributed:
                dist.broadcast(means, src=0)
            source = torch.cat([z, z.new_ones(s, m, 1)], dim=-1).unsqueeze(1)  # [S, 1, M, d + 1]
            for _ in range(self.kmeans_iters):
                assign = nearest_codes(z, means, block_elements=self.search_block_elements,
                                       impl=_max_similarity_block).ids.unsqueeze(1)  # [S, 1, M]
                stats = self._code_statistics(source, assign)[:, 0]  # [S, K, d + 1]
                if distributed:
                    dist.all_reduce(stats)
                sums, counts = stats[..., :d], stats[..., d]
                means = torch.where(counts.unsqueeze(-1) == 0, means, F.normalize(sums, dim=-1))
            self.codebooks[:, level].copy_(means)
        if distributed:  # identical already; the broadcast also covers kmeans_iters=0 (random init per rank)
            codebook = self.codebooks[:, level].contiguous()
            dist.broadcast(codebook, src=0)
            self.codebooks[:, level].copy_(codebook)
        self.initted[:, level] = True
