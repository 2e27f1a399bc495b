"""The foundation model against the official fixtures, and the full-size official layouts."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from neurorvq.errors import CheckpointError
from neurorvq.models.fm import NeuroRVQFoundationModel, masked_token_loss


def within(got: torch.Tensor, expected: torch.Tensor, rel: float = 1e-4) -> None:
    diff = (got.double() - expected.double()).abs().max().item()
    scale = expected.double().abs().max().item()
    assert diff <= rel * scale, f"max abs diff {diff:.3e} > {rel} x {scale:.3e}"


@pytest.fixture(scope="module")
def fixture(fixtures_dir):
    inputs = load_file(str(fixtures_dir / "inputs.safetensors"))
    expected = load_file(str(fixtures_dir / "fm_expected.safetensors"))
    channels = json.loads((fixtures_dir / "inputs.json").read_text())["channel_names"]
    return inputs, expected, channels


def test_pretraining_forward(fixtures_dir, fixture):
    inputs, expected, channels = fixture
    model = NeuroRVQFoundationModel.from_official(fixtures_dir / "fm_model.safetensors").eval()
    assert model.spec.n_quantizers == 8 and model.options["vocab_size"] == 64 and model.options["depth"] == 2
    mask = inputs["bool_masked_pos"].bool()
    with torch.no_grad():
        out = model.forward_pretrain(inputs["x"], channels, mask)
        patch_embed = model.temporal(model.prepare(inputs["x"], channels).patches)
    within(patch_embed, expected["patch_embed"])
    within(out.features, expected["pretrain.features"])
    within(out.features_symmetric, expected["pretrain.features_symmetric"])
    within(out.logits, expected["pretrain.logits"])  # [32, 16, 64]: head = branch * 8 + level
    within(out.logits_symmetric, expected["pretrain.logits_symmetric"])
    targets = torch.randint(0, 64, (2, 4, 8, 16))
    loss = masked_token_loss(out, targets, mask)
    assert loss.ndim == 0 and torch.isfinite(loss)


def test_finetune_forward_and_features(fixtures_dir, fixture):
    inputs, expected, channels = fixture
    state = {**load_file(str(fixtures_dir / "fm_model.safetensors")),
             **load_file(str(fixtures_dir / "fm_finetune_head.safetensors"))}
    model = NeuroRVQFoundationModel.from_official(state).eval()
    with torch.no_grad():
        per_token, pooled = model.embed(inputs["x"], channels)
        logits = model(inputs["x"], channels)
    assert per_token.shape == (2, 16, 400) and pooled.shape == (2, 400)
    within(per_token.reshape(2, 16, 4, 100).permute(2, 0, 1, 3), expected["finetune.features"])
    within(pooled, expected["finetune.pooled"])
    within(logits, expected["finetune.logits"])


@pytest.mark.parametrize("variant,pretraining,classes", [("fm_pretraining", True, 0), ("fm_inference", False, 0),
                                                         ("fm_finetune_n_outputs_4", False, 4)])
def test_full_size_official_layouts_load(fixtures_dir, variant, pretraining, classes):
    listing = json.loads((fixtures_dir / "official_full_config_state_dicts.json").read_text())["models"][variant]
    state = {k: torch.zeros(v["shape"]) for k, v in listing["keys"].items()}
    model = NeuroRVQFoundationModel.from_official(state)
    assert model.options["pretraining"] is pretraining and model.num_classes == classes
    unused = sum(v.numel() for k, v in state.items() if k.startswith("fc_norm_"))  # dropped (method.md §4.3)
    assert sum(p.numel() for p in model.parameters()) == listing["n_parameters"] - unused
    if pretraining:
        assert model.head_weight.shape == (4, 8, 8192, 200)  # one batched head for the 32 official heads


def test_mismatching_fm_checkpoint(fixtures_dir):
    state = load_file(str(fixtures_dir / "fm_model.safetensors"))
    with pytest.raises(CheckpointError, match="unexpected_thing"):
        NeuroRVQFoundationModel.from_official({**state, "unexpected_thing": torch.zeros(1)})
    with pytest.raises(CheckpointError, match="shape"):
        NeuroRVQFoundationModel.from_official(state, vocab_size=32)
