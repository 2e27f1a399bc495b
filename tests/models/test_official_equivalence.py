"""The acceptance test of the core: official checkpoints load and reproduce the official outputs."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from neurorvq import NeuroRVQTokenizer
from neurorvq.errors import CheckpointError
from neurorvq.nn.temporal import MultiScaleTemporalConv
from neurorvq.registry import get_modality


def within(got: torch.Tensor, expected: torch.Tensor, rel: float = 1e-4) -> float:
    """Max abs difference, asserted within ``rel`` x the tensor's own scale (fixture README's bound)."""
    diff = (got.double() - expected.double()).abs().max().item()
    scale = expected.double().abs().max().item()
    assert diff <= rel * scale, f"max abs diff {diff:.3e} > {rel} x {scale:.3e}"
    return diff


@pytest.fixture(scope="module")
def official(fixtures_dir):
    inputs = load_file(str(fixtures_dir / "inputs.safetensors"))
    expected = load_file(str(fixtures_dir / "tokenizer_expected.safetensors"))
    meta = json.loads((fixtures_dir / "inputs.json").read_text())
    model = NeuroRVQTokenizer.from_official(fixtures_dir / "tokenizer_model.safetensors",
                                            official_eval_updates=True).eval()
    with torch.no_grad():
        out = model.forward_details(inputs["x"], meta["channel_names"])
    return model, out, expected, inputs, meta


def test_config_inferred_from_shapes(official):
    model, *_ = official
    spec = model.spec
    assert (spec.embed_dim, spec.conv_channels, spec.num_heads) == (100, 4, 5)
    assert (spec.encoder_depth, spec.decoder_depth, spec.n_quantizers) == (2, 1, 8)
    assert (spec.codebook_size, spec.code_dim, spec.max_patches, spec.patch_length) == (256, 16, 256, 200)
    assert [b.kernel_sizes for b in spec.branches] == [(21, 9), (15, 7), (9, 5), (5, 3)]


def test_token_ids_exact(official):
    _, out, expected, *_ = official
    assert torch.equal(out.tokens.permute(1, 2, 0, 3), expected["tokens"])


def test_ids_match_official_derivation(official, fixtures_dir):
    model, _, _, inputs, meta = official
    prepared = model.prepare(inputs["x"], meta["channel_names"])
    assert torch.equal(prepared.spatial_ids, inputs["spatial_embedding_ix"][0])
    assert torch.equal(prepared.temporal_ids, inputs["temporal_embedding_ix"][0])


@pytest.mark.parametrize("key,attr", [
    ("encoder_patch_embed", "patch_embed"), ("encoder_features", "encoder_features"),
    ("encoder_projected", "projected"), ("quantized", "quantized"), ("decoder_features", "decoder_features"),
    ("rec.log_amplitude_std", "log_amplitude_std"), ("rec.sin_phase", "sin_phase"),
    ("rec.cos_phase", "cos_phase"), ("rec.amplitude", "amplitude"), ("rec.signal", "patch_reconstruction"),
])
def test_intermediates_within_tolerance(official, key, attr):
    _, out, expected, *_ = official
    within(getattr(out, attr), expected[key])


def test_targets(official):
    _, out, expected, *_ = official
    within(out.targets.log_amplitude_std, expected["target.log_amplitude_std"])
    within(out.targets.stats.mean.reshape(-1, 1, 1, 1), expected["target.amp_mean"])
    within(out.targets.stats.std.reshape(-1, 1, 1, 1), expected["target.amp_std"])
    for name in ("sin_phase", "cos_phase"):  # ill-conditioned near empty bins: absolute bound (fixture README)
        assert (getattr(out.targets, name) - expected[f"target.{name}"]).abs().max() <= 1e-3


@pytest.mark.parametrize("key,loss", [
    ("loss.code", "code"), ("loss.code_per_branch", "code_per_branch"), ("loss.code_per_level", "code_per_level"),
    ("loss.phase", "phase"), ("loss.rec_amplitude", "amp"), ("loss.signal_rec", "sig"), ("loss.total", "loss"),
    ("out.std_x", "std_x"), ("out.std_rec_signal", "std_rec"), ("usage_ratios", "usage"),
])
def test_losses_and_outputs(official, key, loss):
    _, out, expected, *_ = official
    within(out.losses[loss], expected[key])


def test_official_eval_usage_update(official):
    model, _, expected, *_ = official
    for b in range(4):
        for j in range(8):
            within(model.quantizer.usage[b, j], expected[f"after_forward.quantize_{b + 1}.layers.{j}.cluster_size"])


def test_usage_frozen_in_eval_by_default(fixtures_dir):
    inputs = load_file(str(fixtures_dir / "inputs.safetensors"))
    meta = json.loads((fixtures_dir / "inputs.json").read_text())
    model = NeuroRVQTokenizer.from_official(fixtures_dir / "tokenizer_model.safetensors").eval()
    before = model.quantizer.usage.clone()
    model(inputs["x"], meta["channel_names"])
    assert torch.equal(model.quantizer.usage, before)


def test_encode_decode_match_forward(official):
    model, out, expected, inputs, meta = official
    model.quantizer.official_eval_updates = False
    tokens, stats = model.encode(inputs["x"], meta["channel_names"], return_amplitude_stats=True)
    assert torch.equal(tokens, out.tokens)
    rec = model.decode(tokens, meta["channel_names"], stats)
    b, c, t = inputs["x"].shape
    within(rec, expected["rec.signal"].reshape(b, c, t))


def test_official_size_temporal_conv(fixtures_dir):
    state = load_file(str(fixtures_dir / "conv_official_size_model.safetensors"))
    expected = load_file(str(fixtures_dir / "conv_official_size_expected.safetensors"))
    x = load_file(str(fixtures_dir / "inputs.safetensors"))["x"]
    conv = MultiScaleTemporalConv(get_modality("eeg").neurorvq_config.branches, conv_channels=8, groups=4)
    mapped = {}
    for key, value in state.items():  # official conv{stage}_{branch} / norm{stage}_{branch}
        kind, rest = key.split(".", 1)[0], key.split(".", 1)[1]
        stage, branch = (int(v) for v in kind[4:].split("_"))
        mapped[f"branches.{branch - 1}.{kind[:4]}s.{stage - 1}.{rest}"] = value
    conv.load_state_dict(mapped)
    with torch.no_grad():
        got = conv(x.reshape(2, 4, 4, 200))
    within(got, expected["conv_official_size.branch_outputs"])


def test_full_official_configuration(fixtures_dir):
    listing = json.loads((fixtures_dir / "official_full_config_state_dicts.json").read_text())["models"]["tokenizer"]
    keys = listing["keys"]
    model = NeuroRVQTokenizer("eeg")
    assert model.num_parameters() == listing["n_trainable_parameters"] == 8_355_440
    assert model.codebook_numel() == 4 * 8 * 8192 * 128
    exported = model.to_official()
    assert set(exported) == set(keys) and len(keys) == 505
    assert all(list(exported[k].shape) == keys[k]["shape"] for k in keys)
    # the official count adds the frozen codebook-related "parameters" (quirk Q12)
    dead_and_codebooks = sum(exported[k].numel() for k in keys if keys[k]["kind"] == "parameter"
                             and ".embedding." in k)
    assert model.num_parameters() + dead_and_codebooks == listing["n_parameters"] == 75_726_448
    state = {k: torch.zeros(v["shape"]) for k, v in keys.items()}
    for k in state:
        if k.endswith("initted"):
            state[k].fill_(1.0)
    loaded = NeuroRVQTokenizer.from_official(state)
    assert loaded.spec == model.spec


def test_export_round_trip(official):
    model, *_ = official
    again = NeuroRVQTokenizer.from_official(model.to_official())
    for key, value in model.state_dict().items():
        assert torch.equal(again.state_dict()[key], value), key


def test_state_dict_errors(fixtures_dir):
    state = load_file(str(fixtures_dir / "tokenizer_model.safetensors"))
    bad = dict(state)
    bad["encoder.blocks.0.mlp.fc1.bias"] = torch.zeros(7)
    with pytest.raises(CheckpointError, match=r"encoder\.blocks\.0\.mlp\.fc1\.bias.*\(7,\).*\(400,\)"):
        NeuroRVQTokenizer.from_official(bad)
    extra = {**state, "encoder.something_new": torch.zeros(3)}
    with pytest.raises(CheckpointError, match="something_new"):
        NeuroRVQTokenizer.from_official(extra)
    missing = {k: v for k, v in state.items() if k != "decoder.fc_norm_2.weight"}
    with pytest.raises(CheckpointError, match=r"decoder_norms\.1\.weight"):
        NeuroRVQTokenizer.from_official(missing)
    with pytest.raises(CheckpointError, match="pos_embed has 105 rows"):
        NeuroRVQTokenizer.from_official(state, modality="ecg")
    with pytest.raises(CheckpointError, match="shape"):
        NeuroRVQTokenizer.from_official(state, codebook_size=128)
