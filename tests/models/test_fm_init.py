"""A fresh foundation model is initialised as the official code initialises it (method.md §3.8), tells
electrodes apart, and official weights replace every initialised value."""

from __future__ import annotations

import math

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from neurorvq.models.fm import NeuroRVQFoundationModel

STD = 0.02


def _std_close(t: torch.Tensor, expected: float, rel: float = 0.1) -> None:
    got = float(t.detach().double().std())
    assert abs(got - expected) <= rel * expected, f"std {got:.5f}, expected {expected:.5f}"


@pytest.fixture(scope="module")
def fresh() -> NeuroRVQFoundationModel:
    torch.manual_seed(0)
    return NeuroRVQFoundationModel("eeg", depth=4, vocab_size=512, num_classes=3)


def test_embeddings_tokens_and_heads_are_trunc_normal(fresh):
    for t in (fresh.backbone.pos_embed, fresh.backbone.time_embed, fresh.head_weight):
        _std_close(t, STD)
        assert float(t.detach().abs().max()) <= 2.0  # timm's absolute cut at ±2
    for t in (fresh.backbone.cls_token, fresh.mask_token):  # 200 values each: a looser bound
        _std_close(t, STD, rel=0.25)
    assert float(fresh.head_bias.detach().abs().max()) == 0.0


def test_temporal_convs_trunc_normal_with_zero_bias_and_unit_norms(fresh):
    convs = [m for m in fresh.temporal.modules() if isinstance(m, nn.Conv2d)]
    norms = [m for m in fresh.temporal.modules() if isinstance(m, nn.GroupNorm)]
    assert convs and norms
    for conv in convs:
        _std_close(conv.weight, STD, rel=0.35 if conv.weight.numel() < 200 else 0.15)
        assert float(conv.bias.abs().max()) == 0.0  # PyTorch's default bias had std ~0.13, the signal's size
    for norm in norms:
        assert torch.equal(norm.weight, torch.ones_like(norm.weight)) and float(norm.bias.abs().max()) == 0.0


def test_blocks_depth_rescaled_zero_biases_layer_scale(fresh):
    for i, block in enumerate(fresh.backbone.blocks, start=1):
        _std_close(block.attn.qkv.weight, STD)
        _std_close(block.mlp.fc1.weight, STD)
        _std_close(block.attn.proj.weight, STD / math.sqrt(2 * i))
        _std_close(block.mlp.fc2.weight, STD / math.sqrt(2 * i))
        for bias in (block.attn.q_bias, block.attn.v_bias, block.attn.proj.bias, block.mlp.fc1.bias,
                     block.mlp.fc2.bias):
            assert float(bias.abs().max()) == 0.0
        for norm in (block.norm1, block.norm2, block.attn.q_norm, block.attn.k_norm):
            assert torch.equal(norm.weight, torch.ones_like(norm.weight)) and float(norm.bias.abs().max()) == 0.0
        assert torch.allclose(block.gamma_1, torch.full_like(block.gamma_1, 1e-5))


def test_fine_tuning_head_keeps_pytorch_default_init(fresh):
    """method.md §4.3: reset_classifier's Linear has PyTorch's default (kaiming-uniform, bound 1/sqrt(fan_in))."""
    bound = 1.0 / math.sqrt(fresh.head.in_features)
    assert float(fresh.head.weight.abs().max()) <= bound
    _std_close(fresh.head.weight, bound / math.sqrt(3), rel=0.1)  # uniform(-b, b) has std b / sqrt(3)
    assert torch.equal(fresh.fc_norm.weight, torch.ones_like(fresh.fc_norm.weight))


def test_a_fresh_fm_tells_electrodes_apart():
    """Same signal on every channel: per-token features differ across channels by > 0.5% of their norm (they
    were identical when pos_embed started at zero)."""
    torch.manual_seed(1)
    model = NeuroRVQFoundationModel("eeg", depth=2, pretraining=False).eval()
    channels = ["Fp1", "Cz", "O2", "T7"]
    x = (torch.randn(2, 1, 400) * 20).expand(2, len(channels), 400).contiguous()
    with torch.no_grad():
        per_token, _ = model.embed(x, channels)
    f = per_token.reshape(2, len(channels), 2, -1)  # [B, C, A, S*D]
    reference = f[:, :1]
    relative = (f[:, 1:] - reference).norm(dim=-1) / reference.norm(dim=-1)
    assert float(relative.min()) > 0.005, float(relative.min())


def test_official_weights_replace_the_initialisation(fixtures_dir):
    """Loading an official checkpoint leaves nothing of the fresh init: every tensor equals the file's."""
    state = load_file(str(fixtures_dir / "fm_model.safetensors"))
    torch.manual_seed(123)
    a = NeuroRVQFoundationModel.from_official(state)
    torch.manual_seed(456)
    b = NeuroRVQFoundationModel.from_official(state)
    for key, value in a.state_dict().items():
        assert torch.equal(value, b.state_dict()[key]), key
    assert torch.equal(a.backbone.pos_embed, state["pos_embed"])
    assert torch.equal(a.mask_token, state["mask_token"])


def test_the_tokenizer_has_no_such_defect():
    """The tokenizer was already initialised by method.md §3.8; nothing of it starts at zero or PyTorch's default."""
    from neurorvq.models.tokenizer import NeuroRVQTokenizer

    torch.manual_seed(0)
    tok = NeuroRVQTokenizer("eeg", encoder_depth=2, decoder_depth=2, codebook_size=64)
    for t in (tok.encoder.pos_embed, tok.decoder.time_embed):
        _std_close(t, STD)
    for conv in (m for m in tok.temporal.modules() if isinstance(m, nn.Conv2d)):
        assert float(conv.bias.detach().abs().max()) == 0.0
    _std_close(tok.encoder.blocks[1].mlp.fc2.weight, STD / 2.0)  # block 2: / sqrt(4)
