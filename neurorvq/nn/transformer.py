"""Pre-norm transformer with QK-norm and temporal/spatial embeddings (method.md §3.2, BEiT-v2/LaBraM style).

The defaults are NeuroRVQ's (LayerNorm eps 1e-5, QK-norm, q/v bias, CLS on spatial row 0); other families set
``norm_eps``, ``qk_norm``, ``qkv_bias`` and ``cls_position`` (LaBraM's VQ-NSP: eps 1e-6, no QK-norm; its
pretraining student: the CLS token on the first channel's row, families.md BQ1). ``drop_path`` (stochastic depth,
rates linearly spaced over the blocks as LaBraM fine-tunes with) defaults to 0: off, NeuroRVQ unchanged.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


CLS_POSITIONS = ("row0", "first_channel")
"""Which spatial row the CLS token gets: row 0 (NeuroRVQ, LaBraM's tokenizer) or the first channel's (BQ1)."""


class Attention(nn.Module):
    """Multi-head self-attention; qkv without k bias, optional per-head LayerNorm on q and k (``qk_norm``), fused
    SDPA kernel."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True, qk_norm_eps: float = 1e-6,
                 qk_norm: bool = True) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        if qkv_bias:
            self.q_bias = nn.Parameter(torch.zeros(dim))
            self.v_bias = nn.Parameter(torch.zeros(dim))
        else:
            self.q_bias = self.v_bias = None
        if qk_norm:
            self.q_norm = nn.LayerNorm(self.head_dim, eps=qk_norm_eps)
            self.k_norm = nn.LayerNorm(self.head_dim, eps=qk_norm_eps)
        else:
            self.q_norm = self.k_norm = None
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x [batch, seq, dim]`` -> ``[batch, seq, dim]``."""
        n, s, d = x.shape
        bias = None
        if self.q_bias is not None:
            bias = torch.cat((self.q_bias, torch.zeros_like(self.q_bias), self.v_bias))
        qkv = F.linear(x, self.qkv.weight, bias).reshape(n, s, 3, self.num_heads, self.head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        if self.q_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        out = F.scaled_dot_product_attention(q, k, v)  # scale = head_dim ** -0.5, as the checkpoints assume
        return self.proj(out.transpose(1, 2).reshape(n, s, d))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


def drop_path(x: torch.Tensor, rate: float, training: bool) -> torch.Tensor:
    """Stochastic depth: in training, zero a residual branch ``x [batch, ...]`` for a random ``rate`` of the samples
    and scale the kept ones by ``1 / (1 - rate)``; the identity in eval or at rate 0."""
    if rate <= 0.0 or not training:
        return x
    keep = 1.0 - rate
    mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
    return x * mask.div_(keep)


class Block(nn.Module):
    """``x + g1 * attn(LN1(x))`` then ``x + g2 * mlp(LN2(x))``; layer scale ``g`` only if ``init_values > 0``.

    ``norm_eps``: eps of LN1 and LN2 (NeuroRVQ 1e-5, LaBraM 1e-6); ``qk_norm``: LayerNorm on q and k per head;
    ``drop_path``: stochastic-depth rate of both residual branches (0 = off)."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, init_values: float = 0.0,
                 qkv_bias: bool = True, norm_eps: float = 1e-5, qk_norm: bool = True, drop_path: float = 0.0) -> None:
        super().__init__()
        self.drop_path = float(drop_path)
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = Attention(dim, num_heads, qkv_bias=qkv_bias, qk_norm=qk_norm)
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        if init_values > 0:
            self.gamma_1 = nn.Parameter(torch.full((dim,), float(init_values)))
            self.gamma_2 = nn.Parameter(torch.full((dim,), float(init_values)))
        else:
            self.gamma_1 = self.gamma_2 = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.drop_path > 0.0 and self.training:
            return self._forward_dropping(x)
        if self.gamma_1 is None:
            x = x + self.attn(self.norm1(x))
            return x + self.mlp(self.norm2(x))
        x = x + self.gamma_1 * self.attn(self.norm1(x))
        return x + self.gamma_2 * self.mlp(self.norm2(x))

    def _forward_dropping(self, x: torch.Tensor) -> torch.Tensor:
        attn = self.attn(self.norm1(x))
        x = x + drop_path(attn if self.gamma_1 is None else self.gamma_1 * attn, self.drop_path, True)
        mlp = self.mlp(self.norm2(x))
        return x + drop_path(mlp if self.gamma_2 is None else self.gamma_2 * mlp, self.drop_path, True)


class TokenTransformer(nn.Module):
    """CLS token + spatial and temporal embeddings + a stack of shared :class:`Block` s.

    One instance serves every branch: callers stack branches into the batch axis, which is exact because
    blocks and embedding tables are shared across branches (method.md §3.2).

    Args:
        dim: width D. spatial_rows: rows of the channel table (vocabulary + 1). max_patches: rows of the
        temporal table. depth, num_heads, mlp_ratio, init_values: block settings. qkv_bias, norm_eps, qk_norm:
        block options (:class:`Block`). cls_position: the CLS token's spatial row, one of :data:`CLS_POSITIONS`.
        drop_path: the last block's stochastic-depth rate; block i gets ``drop_path * i / (depth - 1)``
        (:meth:`set_drop_path`).
    """

    def __init__(self, dim: int, depth: int, num_heads: int, spatial_rows: int, max_patches: int,
                 mlp_ratio: float = 4.0, init_values: float = 0.0, *, qkv_bias: bool = True,
                 norm_eps: float = 1e-5, qk_norm: bool = True, cls_position: str = "row0",
                 drop_path: float = 0.0) -> None:
        super().__init__()
        if cls_position not in CLS_POSITIONS:
            raise ValueError(f"cls_position is {cls_position!r}; valid: {', '.join(CLS_POSITIONS)}")
        self.cls_position = cls_position
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(spatial_rows, dim))
        self.time_embed = nn.Parameter(torch.zeros(max_patches, dim))
        self.blocks = nn.ModuleList(Block(dim, num_heads, mlp_ratio, init_values, qkv_bias=qkv_bias,
                                          norm_eps=norm_eps, qk_norm=qk_norm) for _ in range(depth))
        self.set_drop_path(drop_path)

    def set_drop_path(self, rate: float) -> None:
        """Stochastic depth linearly spaced over the blocks, 0 for the first and ``rate`` for the last (LaBraM's
        and BEiT's rule); 0 turns it off. Changes no parameter, so it may be set on a loaded model."""
        if not 0.0 <= float(rate) < 1.0:
            raise ValueError(f"drop_path is {rate}; give a rate in [0, 1)")
        n = len(self.blocks)
        for i, block in enumerate(self.blocks):
            block.drop_path = float(rate) * i / (n - 1) if n > 1 else float(rate)

    def embed(self, x: torch.Tensor, spatial_ids: torch.Tensor, temporal_ids: torch.Tensor) -> torch.Tensor:
        """Prepend CLS (spatial row 0, or the first token's row with ``cls_position="first_channel"``; no temporal
        row) and add the embeddings.

        ``x [batch, seq, D]``; ids ``[seq]`` or ``[batch, seq]`` (int64 rows of the tables).
        Returns ``[batch, 1 + seq, D]``.
        """
        n = x.shape[0]
        x = torch.cat((self.cls_token.expand(n, -1, -1), x), dim=1)
        # F.embedding, not pos_embed[ids]: the CPU backward of advanced indexing adds rows in thread order, so two
        # runs of the same seed would drift apart; embedding's backward is ordered (tests/tasks/test_determinism.py)
        pos = F.embedding(spatial_ids, self.pos_embed)
        if self.cls_position == "row0":
            cls_pos = self.pos_embed[:1].expand(*pos.shape[:-2], 1, -1)
        else:
            cls_pos = pos[..., :1, :]
        x = x + torch.cat((cls_pos, pos), dim=-2)
        time = F.embedding(temporal_ids, self.time_embed)
        return torch.cat((x[:, :1], x[:, 1:] + time), dim=1)

    def run_blocks(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return x

    def forward(self, x: torch.Tensor, spatial_ids: torch.Tensor, temporal_ids: torch.Tensor) -> torch.Tensor:
        """``x [batch, seq, D]`` -> ``[batch, seq, D]``: embeddings, blocks, CLS dropped (final norm = identity)."""
        return self.run_blocks(self.embed(x, spatial_ids, temporal_ids))[:, 1:]

    def forward_branches(self, x: torch.Tensor, spatial_ids: torch.Tensor, temporal_ids: torch.Tensor) -> torch.Tensor:
        """Every branch through the shared blocks as one batch: ``x [S, B, seq, D]`` -> ``[S, B, seq, D]``.

        Exact, because blocks and embedding tables are shared across branches; ``spatial_ids`` ``[seq]`` or
        ``[B, seq]`` (then repeated for each branch)."""
        s, b, l, d = x.shape
        spatial = spatial_ids.repeat(s, 1) if spatial_ids.ndim == 2 else spatial_ids
        return self(x.reshape(s * b, l, d), spatial, temporal_ids).reshape(s, b, l, d)

    @torch.no_grad()
    def init_weights(self, std: float = 0.02) -> None:
        """Training-from-scratch init of method.md §3.8 (trunc-normal, zero biases, depth-scaled outputs)."""
        for p in (self.cls_token, self.pos_embed, self.time_embed):
            nn.init.trunc_normal_(p, std=std, a=-2.0, b=2.0)
        for layer_id, block in enumerate(self.blocks, start=1):
            for module in block.modules():
                if isinstance(module, nn.Linear):
                    nn.init.trunc_normal_(module.weight, std=std, a=-2.0, b=2.0)
                    if module.bias is not None:
                        nn.init.zeros_(module.bias)
                elif isinstance(module, nn.LayerNorm):
                    nn.init.ones_(module.weight)
                    nn.init.zeros_(module.bias)
            if block.attn.q_bias is not None:
                nn.init.zeros_(block.attn.q_bias)
                nn.init.zeros_(block.attn.v_bias)
            block.attn.proj.weight.div_(math.sqrt(2.0 * layer_id))
            block.mlp.fc2.weight.div_(math.sqrt(2.0 * layer_id))
