"""Residual vector quantizers with l2-normalised codes and EMA codebooks (method.md §3.4).

One :class:`ResidualVQ` holds the quantizers of every branch: ``codebooks [branch, level, K, d]``. All
branches advance one level at a time together (one batched matrix product per level), which is exact
because branches never interact inside the quantizer.

Per level ``j`` with residual ``r_j`` (``r_1`` = encoder output): ``z = l2norm(r_j)``; ``idx = argmin_k
|z - e_k|^2``; ``q_j = z + sg(e_idx - z)`` (straight-through); ``r_{j+1} = r_j - q_j`` (un-normalised
residual); loss ``beta * mse(sg(e_idx), z) + aux_weight * mse(q_j, sg(r_{j+1}))`` (quirk Q6).
Codebooks are buffers updated by EMA in training (never by gradient), and all-reduced across DDP ranks
when a process group exists at call time.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn


class RVQOutput(NamedTuple):
    """Result of :meth:`ResidualVQ.forward`.

    quantized: ``[branch, M, d]`` sum of the straight-through level outputs (float32).
    indices: ``[branch, level, M]`` int64 code ids.
    loss_per_level: ``[branch, level]`` float32.
    counts: ``[branch, level, K]`` float32 per-code counts of this batch (for usage and perplexity).
    """

    quantized: torch.Tensor
    indices: torch.Tensor
    loss_per_level: torch.Tensor
    counts: torch.Tensor


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
            re-seeded codebook is broadcast (one level-sized broadcast per level and step while enabled).
    """

    def __init__(self, num_branches: int, depth: int, codebook_size: int, dim: int, *, decay: float = 0.99,
                 beta: float = 1.0, aux_weight: float = 0.4, kmeans_iters: int = 10,
                 official_eval_updates: bool = False, dead_code_after: int = 0) -> None:
        super().__init__()
        self.num_branches, self.depth, self.codebook_size, self.dim = num_branches, depth, codebook_size, dim
        self.decay, self.beta, self.aux_weight = decay, beta, aux_weight
        self.kmeans_iters = kmeans_iters
        self.official_eval_updates = official_eval_updates
        self.dead_code_after = int(dead_code_after)
        codebooks = F.normalize(torch.randn(num_branches, depth, codebook_size, dim), dim=-1)
        self.register_buffer("codebooks", codebooks)
        self.register_buffer("initted", torch.zeros(num_branches, depth, dtype=torch.bool))
        self.register_buffer("usage", torch.zeros(num_branches, depth, codebook_size))
        # consecutive training steps each code went unchosen (for the dead-code policy; restored on resume)
        self.register_buffer("unused_steps", torch.zeros(num_branches, depth, codebook_size, dtype=torch.int32))
        self._all_initted: bool | None = None

    # ------------------------------------------------------------------------------------ state
    def _load_from_state_dict(self, *args, **kwargs):  # noqa: D401 - torch hook
        self._all_initted = None
        return super()._load_from_state_dict(*args, **kwargs)

    def mark_initialised(self) -> None:
        """Declare the codebooks ready (no k-means on the next training forward)."""
        self.initted.fill_(True)
        self._all_initted = True

    def _needs_init(self) -> bool:
        if self._all_initted is None:  # one host read, then cached until the next load
            self._all_initted = bool(self.initted.all())
        return not self._all_initted

    # ------------------------------------------------------------------------------------ search
    def nearest(self, z: torch.Tensor, level: int) -> torch.Tensor:
        """Ids of the nearest codes: ``z [branch, M, d]`` (float32) -> ``[branch, M]``.

        One float32 matrix product per level: ``argmin_k |e_k|^2 - 2 z.e_k`` (``|z|^2`` is constant per row).
        """
        codebook = self.codebooks[:, level]
        sq_norms = codebook.square().sum(-1).unsqueeze(1)  # [S, 1, K]
        distances = torch.baddbmm(sq_norms, z, codebook.transpose(1, 2), alpha=-2.0)
        return distances.argmin(dim=-1)

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """Sum of the selected codes over levels: ``indices [branch, level, ...]`` -> ``[branch, ..., d]``."""
        s, n = indices.shape[:2]
        offsets = (torch.arange(s * n, device=indices.device) * self.codebook_size).reshape(s, n, *([1] * (indices.ndim - 2)))
        codes = self.codebooks.reshape(-1, self.dim)[indices + offsets]
        return codes.sum(dim=1)

    # ------------------------------------------------------------------------------------ forward
    def forward(self, z: torch.Tensor) -> RVQOutput:
        """Quantize ``z [branch, M, d]`` level by level (computed in float32 even under autocast)."""
        with torch.autocast(device_type=z.device.type, enabled=False):
            return self._forward(z.float())

    def _forward(self, residual: torch.Tensor) -> RVQOutput:
        s, m, d = residual.shape
        updates = self.training or self.official_eval_updates
        init = updates and self._needs_init()
        quantized = torch.zeros_like(residual)
        indices, losses, counts = [], [], []
        for level in range(self.depth):
            z = F.normalize(residual, dim=-1)
            if init:
                self._kmeans_init(z.detach(), level)
            idx = self.nearest(z.detach(), level)
            codes = torch.gather(self.codebooks[:, level], 1, idx.unsqueeze(-1).expand(s, m, d))
            q = z + (codes - z).detach()
            next_residual = residual - q
            loss = self.beta * (codes - z).square().mean(dim=(1, 2))
            if self.aux_weight:
                loss = loss + self.aux_weight * (q - next_residual.detach()).square().mean(dim=(1, 2))
            count = self._count(idx)
            if self.training and _distributed():
                dist.all_reduce(count)  # whole-batch counts: usage, EMA and dead-code counters agree on every rank
            if self.training:
                self._ema_update(z.detach(), idx, count, level)
            if updates:
                self.usage[:, level].mul_(self.decay).add_(count, alpha=1.0 - self.decay)
            quantized = quantized + q
            residual = next_residual
            indices.append(idx)
            losses.append(loss)
            counts.append(count)
        if init:
            self.mark_initialised()
        return RVQOutput(quantized, torch.stack(indices, 1), torch.stack(losses, 1), torch.stack(counts, 1))

    # ------------------------------------------------------------------------------------ statistics
    def _count(self, idx: torch.Tensor) -> torch.Tensor:
        """Per-code counts ``[branch, K]`` of ``idx [branch, M]``, without a host sync (no bincount)."""
        s, k = idx.shape[0], self.codebook_size
        flat = idx + torch.arange(s, device=idx.device).unsqueeze(1) * k
        out = torch.zeros(s * k, device=idx.device, dtype=torch.float32)
        return out.index_add_(0, flat.reshape(-1), torch.ones(flat.numel(), device=idx.device)).reshape(s, k)

    def _code_sums(self, z: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """Sum of the vectors assigned to each code: ``[branch, K, d]``."""
        s, m, d = z.shape
        k = self.codebook_size
        flat = (idx + torch.arange(s, device=idx.device).unsqueeze(1) * k).reshape(-1)
        return torch.zeros(s * k, d, device=z.device, dtype=z.dtype).index_add_(0, flat, z.reshape(-1, d)).reshape(s, k, d)

    @torch.no_grad()
    def _ema_update(self, z: torch.Tensor, idx: torch.Tensor, counts: torch.Tensor, level: int) -> None:
        """``e <- l2norm(decay * e + (1 - decay) * l2norm(mean of assigned z))``; unused codes keep their vector."""
        sums = self._code_sums(z, idx)
        if _distributed():  # counts arrive already reduced
            dist.all_reduce(sums)
        codebook = self.codebooks[:, level]
        means = F.normalize(sums / counts.clamp_min(1.0).unsqueeze(-1), dim=-1)
        means = torch.where(counts.unsqueeze(-1) == 0, codebook, means)
        updated = F.normalize(self.decay * codebook + (1.0 - self.decay) * means, dim=-1)
        if self.dead_code_after > 0:
            updated = self._reseed_dead(updated, z, counts, level)
        codebook.copy_(updated)

    def _reseed_dead(self, codebook: torch.Tensor, z: torch.Tensor, counts: torch.Tensor, level: int) -> torch.Tensor:
        """Replace codes unused for ``dead_code_after`` steps by random batch vectors (no host sync)."""
        s, m, d = z.shape
        unused = self.unused_steps[:, level]
        unused.add_(1).masked_fill_(counts > 0, 0)
        dead = unused >= self.dead_code_after
        pick = torch.randint(0, m, (s, self.codebook_size), device=z.device)
        candidates = torch.gather(z, 1, pick.unsqueeze(-1).expand(s, self.codebook_size, d))
        codebook = torch.where(dead.unsqueeze(-1), candidates, codebook)
        unused.masked_fill_(dead, 0)
        if _distributed():
            codebook = codebook.contiguous()
            dist.broadcast(codebook, src=0)
        return codebook

    @torch.no_grad()
    def _kmeans_init(self, z: torch.Tensor, level: int) -> None:
        """Spherical k-means (``kmeans_iters`` rounds) on this batch's vectors of ``level``, every branch at once.

        Means start from batch vectors (with replacement when the batch has fewer than K); empty clusters keep
        their previous mean. Under DDP the starting means are rank 0's and every round's counts and sums are
        all-reduced, so the k-means runs on the data of all ranks and every rank ends with the same codebooks
        (the official code initialises each rank separately: quirk Q13).
        """
        s, m, _ = z.shape
        k = self.codebook_size
        distributed = _distributed()
        if self.kmeans_iters > 0:
            if m >= k:
                pick = torch.stack([torch.randperm(m, device=z.device)[:k] for _ in range(s)])
            else:
                pick = torch.randint(0, m, (s, k), device=z.device)
            means = torch.gather(z, 1, pick.unsqueeze(-1).expand(s, k, z.shape[-1])).contiguous()
            if distributed:
                dist.broadcast(means, src=0)
            for _ in range(self.kmeans_iters):
                assign = torch.bmm(z, means.transpose(1, 2)).argmax(-1)
                counts, sums = self._count(assign), self._code_sums(z, assign)
                if distributed:
                    dist.all_reduce(counts)
                    dist.all_reduce(sums)
                means = torch.where(counts.unsqueeze(-1) == 0, means, F.normalize(sums, dim=-1))
            self.codebooks[:, level].copy_(means)
        if distributed:  # identical already; the broadcast also covers kmeans_iters=0 (random init per rank)
            dist.broadcast(self.codebooks, src=0)
        self.initted[:, level] = True
