"""Residual VQ against small hand-computed examples."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from neurorvq.nn.rvq import ResidualVQ


def hand_rvq(aux_weight=0.4) -> ResidualVQ:
    rvq = ResidualVQ(1, 2, 3, 2, beta=1.0, aux_weight=aux_weight, decay=0.9)
    rvq.codebooks.copy_(torch.tensor([[[[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]],
                                       [[0.6, 0.8], [0.8, -0.6], [-0.6, -0.8]]]]))
    rvq.mark_initialised()
    return rvq.eval()


def test_level_by_level_choices_and_residuals():
    rvq = hand_rvq()
    out = rvq(torch.tensor([[[3.0, 4.0]]]))
    # level 1: z = (0.6, 0.8) -> nearest (0, 1); residual (3, 4) - (0, 1) = (3, 3), un-normalised
    # level 2: z = (1, 1)/sqrt(2) -> nearest (0.6, 0.8); residual (3, 3) - (0.6, 0.8) = (2.4, 2.2)
    assert out.indices.tolist() == [[[1], [0]]]
    assert torch.allclose(out.quantized, torch.tensor([[[0.6, 1.8]]]), atol=1e-6)
    r = 1 / math.sqrt(2)
    level1 = ((0 - 0.6) ** 2 + (1 - 0.8) ** 2) / 2 + 0.4 * ((0 - 3) ** 2 + (1 - 3) ** 2) / 2
    level2 = ((0.6 - r) ** 2 + (0.8 - r) ** 2) / 2 + 0.4 * ((0.6 - 2.4) ** 2 + (0.8 - 2.2) ** 2) / 2
    assert torch.allclose(out.loss_per_level, torch.tensor([[level1, level2]]), atol=1e-6)
    assert out.counts[0, 0].tolist() == [0, 1, 0] and out.counts[0, 1].tolist() == [1, 0, 0]


def test_aux_term_can_be_dropped():
    out = hand_rvq(aux_weight=0.0)(torch.tensor([[[3.0, 4.0]]]))
    assert torch.allclose(out.loss_per_level[0, 0], torch.tensor(0.2), atol=1e-6)


def test_straight_through_gradient_reaches_input():
    rvq = hand_rvq()
    z = torch.tensor([[[3.0, 4.0]]], requires_grad=True)
    rvq(z).quantized.sum().backward()
    assert z.grad is not None and z.grad.abs().sum() > 0


def test_lookup_sums_levels():
    rvq = hand_rvq()
    ids = torch.tensor([[[1], [0]]])  # [branch, level, M]
    assert torch.allclose(rvq.lookup(ids), torch.tensor([[[0.6, 1.8]]]))


def test_ema_update_hand_computed():
    rvq = hand_rvq().train()
    z = torch.tensor([[[0.1, 1.0], [-0.1, 2.0]]])  # both pick code 1 of level 1
    out = rvq(z)
    assert out.indices[0, 0].tolist() == [1, 1]
    mean = F.normalize((F.normalize(z[0, 0], dim=0) + F.normalize(z[0, 1], dim=0)) / 2, dim=0)
    expected = F.normalize(0.9 * torch.tensor([0.0, 1.0]) + 0.1 * mean, dim=0)
    assert torch.allclose(rvq.codebooks[0, 0, 1], expected, atol=1e-6)
    assert torch.equal(rvq.codebooks[0, 0, 0], torch.tensor([1.0, 0.0]))  # unused codes keep their vector
    assert torch.allclose(rvq.usage[0, 0], torch.tensor([0.0, 0.2, 0.0]))  # 0.9 * 0 + 0.1 * counts


def test_eval_freezes_state():
    rvq = hand_rvq()
    before = (rvq.codebooks.clone(), rvq.usage.clone())
    rvq(torch.randn(1, 5, 2))
    assert torch.equal(rvq.codebooks, before[0]) and torch.equal(rvq.usage, before[1])


def test_kmeans_init_finds_clusters():
    torch.manual_seed(0)
    rvq = ResidualVQ(2, 1, 2, 2, kmeans_iters=10).train()
    directions = torch.tensor([[1.0, 0.0], [0.0, -1.0]])
    pick = torch.randint(0, 2, (2, 200))
    z = directions[pick] * 3 + 0.01 * torch.randn(2, 200, 2)
    rvq(z)
    assert bool(rvq.initted.all())
    for branch in range(2):
        found = rvq.codebooks[branch, 0]
        similarity = found @ directions.T
        assert similarity.max(dim=0).values.min() > 0.99  # both directions have a code


def test_dead_code_reseeding():
    rvq = ResidualVQ(1, 1, 4, 2, decay=0.99, dead_code_after=3)
    rvq.codebooks.copy_(torch.tensor([[[[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]]]]))
    rvq.mark_initialised()
    rvq.train()
    z = torch.tensor([[[1.0, 0.1], [1.0, -0.1]]])  # only code 0 is ever chosen
    for _ in range(2):
        rvq(z)
    assert rvq.unused_steps[0, 0].tolist() == [0, 2, 2, 2]
    assert torch.allclose(rvq.codebooks[0, 0, 1:], torch.tensor([[0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]]))
    rvq(z)  # third unused step: codes 1..3 are re-seeded from this batch's vectors
    batch = F.normalize(z[0], dim=-1)
    for code in rvq.codebooks[0, 0, 1:]:
        assert min((code - v).abs().max() for v in batch) < 1e-6
    assert rvq.unused_steps[0, 0].tolist() == [0, 0, 0, 0]


def test_dead_code_policy_off_by_default():
    rvq = hand_rvq().train()
    for _ in range(5):
        rvq(torch.tensor([[[3.0, 4.0]]]))
    assert torch.equal(rvq.codebooks[0, 0, 2], torch.tensor([-1.0, 0.0]))  # never chosen, never moved


def test_initialise_hook_equals_first_forward():
    """The k-means hook run explicitly before the forward gives what the forward's own first-batch call gives."""
    z = torch.randn(2, 300, 8, generator=torch.Generator().manual_seed(0))
    outs, books = [], []
    for explicit in (False, True):
        torch.manual_seed(0)
        rvq = ResidualVQ(2, 3, 16, 8).train()
        assert rvq.needs_initialisation and not rvq.initialised
        if explicit:
            rvq.initialise(z)
            assert rvq.initialised and bool(rvq.initted.all()) and not rvq.needs_initialisation
        outs.append(rvq(z))
        books.append(rvq.codebooks.clone())
    assert torch.equal(outs[0].indices, outs[1].indices) and torch.equal(books[0], books[1])


def test_initialised_flag_follows_loaded_state_without_forward():
    ready = ResidualVQ(1, 2, 4, 2)
    ready.mark_initialised()
    fresh = ResidualVQ(1, 2, 4, 2).train()
    assert fresh.needs_initialisation
    fresh.load_state_dict(ready.state_dict())
    assert fresh.initialised and not fresh.needs_initialisation
    fresh.load_state_dict(ResidualVQ(1, 2, 4, 2).state_dict())
    assert not fresh.initialised
    assert not fresh.eval().needs_initialisation  # eval leaves the codebooks alone unless official_eval_updates
    assert ResidualVQ(1, 2, 4, 2, official_eval_updates=True).eval().needs_initialisation


def test_sync_decided_once_and_not_pickled():
    import pickle

    rvq = ResidualVQ(1, 1, 4, 2).train()
    assert rvq.sync is None
    rvq(torch.randn(1, 8, 2))
    assert rvq.sync is False  # no process group: decided at the first training call, then cached
    assert pickle.loads(pickle.dumps(rvq)).sync is None  # a spawned worker decides in its own process


def test_statistics_of_all_levels_match_a_level_by_level_update():
    """The once-per-step update of every branch and level equals the per-level EMA formula applied to each."""
    torch.manual_seed(0)
    rvq = ResidualVQ(2, 3, 8, 4, decay=0.9)
    rvq.mark_initialised()
    before = rvq.codebooks.clone()
    z = torch.randn(2, 50, 4)
    out = rvq.train()(z)
    residual = z
    for level in range(3):
        zn = F.normalize(residual, dim=-1)
        idx = out.indices[:, level]
        for b in range(2):
            counts = torch.bincount(idx[b], minlength=8).float()
            assert torch.equal(out.counts[b, level], counts)
            sums = torch.zeros(8, 4).index_add_(0, idx[b], zn[b])
            means = F.normalize(sums / counts.clamp_min(1).unsqueeze(-1), dim=-1)
            means = torch.where(counts.unsqueeze(-1) == 0, before[b, level], means)
            expected = F.normalize(0.9 * before[b, level] + 0.1 * means, dim=-1)
            torch.testing.assert_close(rvq.codebooks[b, level], expected, rtol=0, atol=1e-6)
            torch.testing.assert_close(rvq.usage[b, level], 0.1 * counts)
        codes = before[:, level].gather(1, idx.unsqueeze(-1).expand(2, 50, 4))
        residual = residual - (zn + (codes - zn))


def test_official_eval_updates_touch_usage_only():
    rvq = hand_rvq()
    rvq.official_eval_updates = True
    books = rvq.codebooks.clone()
    out = rvq(torch.tensor([[[3.0, 4.0]]]))
    assert torch.equal(rvq.codebooks, books)
    torch.testing.assert_close(rvq.usage, 0.1 * out.counts)


def test_search_block_bound_is_an_option():
    """A tiny search block (one row of one branch at a time) gives the same ids as the default."""
    torch.manual_seed(0)
    rvq = ResidualVQ(2, 2, 32, 8).eval()
    z = torch.randn(2, 37, 8)
    dense = rvq(z).indices
    rvq.search_block_elements = 32
    assert torch.equal(rvq(z).indices, dense)
