"""The chunked nearest-code search (neurorvq/nn/code_search.py): the same ids and distances as the dense reference
for every chunk size, and the block bound itself, observed where ATen allocates."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch.profiler import ProfilerActivity, profile

from neurorvq.nn.code_search import (
    DEFAULT_BLOCK_ELEMENTS,
    chunk_rows,
    float32_block,
    nearest_codes,
    nearest_codes_dense,
)

S, M, K, D = 4, 1000, 512, 16


def unit(*shape: int, seed: int) -> torch.Tensor:
    return F.normalize(torch.randn(*shape, generator=torch.Generator().manual_seed(seed)), dim=-1)


def near_ties(z: torch.Tensor, codebook: torch.Tensor, gap: float = 1e-6) -> torch.Tensor:
    """``[S, M]`` bool: rows whose two nearest codes are closer than ``gap`` in squared distance (float64)."""
    d = torch.cdist(z.double(), codebook.double()).square()
    best2 = d.topk(2, dim=-1, largest=False).values
    return (best2[..., 1] - best2[..., 0]) < gap


# block_elements -> rows per block: 70 (1000 = 14 x 70 + 20: uneven), 1 row, 333 (uneven), all rows, and the
# one-branch-at-a-time fallback (a bound below S x K), uneven too
CHUNKINGS = [S * K * 70, S * K, S * K * 333, S * K * M, K * 3, DEFAULT_BLOCK_ELEMENTS]


@pytest.mark.parametrize("block_elements", CHUNKINGS)
def test_chunked_equals_dense_ids_and_distances(block_elements):
    z, codebook = unit(S, M, D, seed=0), unit(S, K, D, seed=1)
    dense = nearest_codes_dense(z, codebook)
    chunked = nearest_codes(z, codebook, block_elements=block_elements)
    differ = chunked.ids != dense.ids
    ties = near_ties(z, codebook)
    assert not (differ & ~ties).any(), f"{int((differ & ~ties).sum())} ids differ outside near-ties"
    print(f"block {block_elements}: {int(differ.sum())} near-tie ids differ (of {int(ties.sum())} near-ties)")
    assert (chunked.distances - dense.distances).abs().max() <= 1e-6
    exact = (z.double() - torch.gather(codebook.double(), 1, chunked.ids.unsqueeze(-1).expand(S, M, D))).square().sum(-1)
    assert (chunked.distances.double() - exact).abs().max() <= 1e-5
    assert chunked.ids.dtype == torch.int64 and chunked.ids.shape == (S, M)


def test_many_random_queries_differ_only_at_near_ties():
    """A larger random set at the official code width: mismatches (if any) are all float32-level near-ties."""
    s, m, k, d = 4, 4096, 2048, 128
    z, codebook = unit(s, m, d, seed=2), unit(s, k, d, seed=3)
    dense = nearest_codes_dense(z, codebook)
    ties = near_ties(z, codebook)
    for block in (s * k * 97, k * 1000):  # uneven row chunks; one branch at a time
        chunked = nearest_codes(z, codebook, block_elements=block)
        differ = chunked.ids != dense.ids
        assert not (differ & ~ties).any()
        assert (chunked.distances - dense.distances).abs().max() <= 1e-6
        print(f"block {block}: {int(differ.sum())} of {s * m} ids differ; {int(ties.sum())} near-ties (< 1e-6)")


def test_official_fixture_ids_identical_with_small_blocks(fixtures_dir):
    """The official fixtures' token ids, with the search forced into many uneven blocks."""
    from neurorvq import NeuroRVQTokenizer

    inputs = load_file(str(fixtures_dir / "inputs.safetensors"))
    expected = load_file(str(fixtures_dir / "tokenizer_expected.safetensors"))["tokens"]
    meta = json.loads((fixtures_dir / "inputs.json").read_text())
    model = NeuroRVQTokenizer.from_official(fixtures_dir / "tokenizer_model.safetensors").eval()
    k = model.spec.codebook_size
    for block in (4 * k * 7, k * 5):  # 7 rows of all branches; 5 rows of one branch at a time
        model.quantizer.search_block_elements = block
        tokens = model.encode(inputs["x"], meta["channel_names"])
        assert torch.equal(tokens.permute(1, 2, 0, 3), expected), block


def test_chunk_plan():
    assert chunk_rows(4, 1000, 512, 4 * 512 * 70) == (True, 70)
    assert chunk_rows(4, 10, 512, 10 ** 9) == (True, 10)
    assert chunk_rows(4, 1000, 512, 512 * 3) == (False, 3)
    with pytest.raises(ValueError, match="below one row"):
        chunk_rows(4, 1000, 512, 511)
    with pytest.raises(ValueError, match="unknown search implementation"):
        nearest_codes(unit(1, 2, 4, seed=0), unit(1, 3, 4, seed=1), impl="bf16")


@pytest.mark.parametrize("block_elements", [S * K * 70, K * 3])
def test_block_shapes_reaching_the_kernel_stay_within_the_bound(block_elements):
    """The implementation is pluggable: a recording wrapper around the real float32 kernel sees every block."""
    shapes = []

    def recording(z, codebook, sq_norms):
        shapes.append((tuple(z.shape), tuple(codebook.shape)))
        return float32_block(z, codebook, sq_norms)

    z, codebook = unit(S, M, D, seed=0), unit(S, K, D, seed=1)
    out = nearest_codes(z, codebook, block_elements=block_elements, impl=recording)
    assert torch.equal(out.ids, nearest_codes(z, codebook, block_elements=block_elements).ids)
    together, rows = chunk_rows(S, M, K, block_elements)
    branches = S if together else 1
    expected_blocks = math.ceil(M / rows) * (1 if together else S)
    assert len(shapes) == expected_blocks
    assert sum(zs[1] for zs, _ in shapes) == M * (1 if together else S)  # every row searched once
    for zs, cs in shapes:
        assert zs[0] == cs[0] == branches and cs[1] == K
        assert zs[0] * zs[1] * cs[1] <= block_elements
    assert shapes[-1][0][1] == M - (math.ceil(M / rows) - 1) * rows  # the uneven last block


def _largest_aten_allocation(fn) -> int:
    """Bytes of the largest allocation any one ATen op made itself while ``fn`` ran (torch.profiler)."""
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    return max(e.self_cpu_memory_usage for e in prof.events() if e.name.startswith("aten::"))


def test_profiled_allocations_respect_the_bound():
    """What ATen actually allocates: the chunked search's largest block is within the bound (float32 = 4 bytes a
    score); the dense reference allocates the whole ``[S, M, K]`` matrix (the measurement sees it)."""
    z, codebook = unit(S, M, D, seed=0), unit(S, K, D, seed=1)
    bound = S * K * 70
    chunked = _largest_aten_allocation(lambda: nearest_codes(z, codebook, block_elements=bound))
    dense = _largest_aten_allocation(lambda: nearest_codes_dense(z, codebook))
    assert chunked <= bound * 4, (chunked, bound * 4)
    assert dense >= S * M * K * 4
    assert chunked * 10 < dense
