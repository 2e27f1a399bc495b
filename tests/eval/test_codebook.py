"""Codebook usage and perplexity of token ids, as ``neurorvq reconstruct`` reports them."""

from __future__ import annotations

import math

import torch

from neurorvq.eval.codebook import CodebookUsage, code_perplexity, format_usage
from neurorvq.tokenizers import TokenLayout


def test_usage_and_perplexity_per_branch_and_level():
    usage = CodebookUsage(branches=2, levels=2, codebook_size=4)
    tokens = torch.zeros(3, 2, 2, 4, dtype=torch.long)  # [B, S, N, L]
    tokens[:, 0, 1] = torch.tensor([0, 1, 2, 3])          # branch 0, level 1: every code, uniformly
    tokens[:, 1, 0] = torch.tensor([0, 0, 1, 1])          # branch 1, level 0: two codes, equally often
    usage.update(tokens[:2])
    usage.update(tokens[2:])  # accumulated over batches
    table = usage.table()
    assert table["usage"] == [[0.25, 1.0], [0.5, 0.25]] and table["tokens"] == 12
    assert math.isclose(table["perplexity"][0][1], 4.0) and math.isclose(table["perplexity"][1][0], 2.0)
    assert math.isclose(table["perplexity"][0][0], 1.0)
    text = format_usage(table, "title")
    assert "| group | level 0 | level 1 |" in text and "| b0 | 25% (1) | 100% (4) |" in text and "50% of 4 codes" in text


def test_perplexity_of_an_empty_row_is_nan():
    assert torch.isnan(code_perplexity(torch.zeros(1, 3))).all()


def test_layouts_with_unequal_groups_count_each_stream_in_its_own_codebook():
    layout = TokenLayout(("t", "f"), (2, 1), ((4, 8), (2,)))  # two temporal levels, one frequency level
    usage = CodebookUsage(layout)
    ids = torch.zeros(2, 3, 4, dtype=torch.long)  # [B, H, L]
    ids[:, 1] = torch.tensor([0, 1, 2, 3])  # t level 1: 4 of its 8 codes
    ids[:, 2] = torch.tensor([0, 1, 0, 1])  # f level 0: both of its 2 codes
    usage.update(ids)
    table = usage.table()
    assert table["groups"] == ["t", "f"] and table["usage"] == [[0.25, 0.5], [1.0]]
    assert math.isclose(table["perplexity"][1][0], 2.0) and table["codebook_size"] == 8
    assert "| f | 100% (2) |  |" in format_usage(table, "title")
