"""LaBraM's VQ-NSP: the official-layout fixtures (``../shared/fixtures/labram_vqnsp``) load through the official
loader and reproduce the official outputs (ids exactly, every other tensor within the fixture README's bounds), in
the parity mode and in the default one; full-size parameter counts and key layout."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import neurorvq
from fixture_checks import (SHARED, check_official_size_temporal_conv, fixture_folder,  # a helper module of this folder
                            within)
from neurorvq.errors import CheckpointError
from neurorvq.families.labram import LABRAM_STANDARD_1020
from neurorvq.models.official_labram import map_official_to_ours
from neurorvq.models.spectral_vq import LaBraMTokenizer



@pytest.fixture(scope="module")
def fixtures() -> Path:
    return fixture_folder("labram_vqnsp", "LaBraM")


def run(fixtures: Path, parity: bool):
    inputs = load_file(str(fixtures / "inputs.safetensors"))
    meta = json.loads((fixtures / "inputs.json").read_text())
    model = LaBraMTokenizer.from_official(fixtures / "tokenizer_model.safetensors", parity=parity).eval()
    with torch.no_grad():
        out = model.forward_details(inputs["x_uv"], meta["channel_names"])
    return model, out, inputs, meta


@pytest.fixture(scope="module", params=[True, False], ids=["parity", "default"])
def official(request, fixtures):
    expected = load_file(str(fixtures / "tokenizer_expected.safetensors"))
    return (*run(fixtures, request.param), expected)


def test_architecture_read_from_the_shapes(official):
    model, *_ = official
    c = model.config
    assert (c.embed_dim, c.conv_channels, c.num_heads, c.mlp_ratio) == (100, 4, 5, 2.0)
    assert (c.encoder_depth, c.decoder_depth, c.codebook_size, c.code_dim, c.depth) == (2, 1, 256, 16, 1)
    assert (c.max_patches, c.spatial_rows, c.domains, c.norm_eps) == (16, 129, ("frequency",), 1e-6)


def test_vocabulary_ids_scaling_and_temporal_rows(official):
    model, _, inputs, meta, _ = official
    assert list(LABRAM_STANDARD_1020) == meta["standard_1020"]
    prepared = model.prepare(inputs["x_uv"], meta["channel_names"])
    assert torch.equal(prepared.spatial_ids.unique_consecutive(), inputs["input_chans"][1:])  # [0] is the CLS row
    assert torch.equal(prepared.temporal_ids, torch.arange(4).repeat(4))  # left-aligned, per channel
    assert torch.equal(prepared.patches, inputs["x"].reshape(2, 4, 4, 200))  # µV / 100, bit for bit


def test_token_ids_exact(official):
    model, out, inputs, meta, expected = official
    assert torch.equal(out.tokens[:, 0, 0], expected["tokens"])
    assert torch.equal(model.get_codebook_indices(inputs["x_uv"], meta["channel_names"]), expected["tokens"])
    assert torch.equal(model.tokenize(inputs["x_uv"], meta["channel_names"]).ids[:, 0], expected["tokens"])


@pytest.mark.parametrize("key,get", [
    ("encoder_patch_embed", lambda o: o.patch_embed),
    ("encoder_features", lambda o: o.encoder_features),
    ("encoder_projected", lambda o: o.projected),
    ("quantizer_input_l2", lambda o: o.normalised),
    ("quantized", lambda o: o.quantized[0]),
    ("decoder_patch_embed", lambda o: o.decoder_embed["frequency"]),
    ("decoder_features", lambda o: o.decoder_features["frequency"]),
    ("rec.amplitude", lambda o: o.predictions["frequency"]["amplitude"]),
    ("rec.angle", lambda o: o.predictions["frequency"]["angle"]),
    ("target.amplitude", lambda o: o.targets["frequency"]["amplitude"]),
    ("target.amp_mean", lambda o: o.side["amplitude_mean"].reshape(-1, 1, 1, 1)),
    ("target.amp_std", lambda o: o.side["amplitude_std"].reshape(-1, 1, 1, 1)),
    ("target.angle_mean", lambda o: o.side["angle_mean"].reshape(-1, 1, 1, 1)),
    ("target.angle_std", lambda o: o.side["angle_std"].reshape(-1, 1, 1, 1)),
    ("loss.quant", lambda o: o.losses["quant"]),
    ("loss.rec_amplitude", lambda o: o.losses["amp"]),
    ("loss.rec_angle", lambda o: o.losses["angle"]),
    ("loss.total", lambda o: o.losses["loss"]),
])
def test_tensors_within_tolerance(official, key, get):
    _, out, *_, expected = official
    within(get(out), expected[key])


def test_angle_target_within_its_absolute_bound(official):
    _, out, *_, expected = official  # ill-conditioned bins: an absolute bound (fixture README)
    assert (out.targets["frequency"]["angle"] - expected["target.angle"]).abs().max() <= 1e-3


@pytest.mark.parametrize("parity", [True, False])
def test_eval_usage_update_only_in_parity_mode(fixtures, parity):
    model, *_ = run(fixtures, parity)  # a fresh model: exactly one forward
    if parity:
        expected = load_file(str(fixtures / "tokenizer_expected.safetensors"))
        within(model.quantizer.usage[0, 0], expected["after_forward.quantize.cluster_size"])
    else:
        official_usage = load_file(str(fixtures / "tokenizer_model.safetensors"))["quantize.cluster_size"]
        assert torch.equal(model.quantizer.usage[0, 0], official_usage)


def test_tokens_decode_to_the_forward_reconstruction(official):
    model, out, inputs, meta, _ = official
    encoded = model.tokenize(inputs["x_uv"], meta["channel_names"])
    assert torch.allclose(encoded.side["amplitude_std"], out.side["amplitude_std"])
    rec = model.detokenize(encoded, meta["channel_names"])
    within(rec, out.reconstruction, rel=1e-4)  # codebook rows vs z + (e - z): float32 rounding only


def test_official_size_temporal_conv(fixtures):
    check_official_size_temporal_conv(fixtures, channels=16)


@pytest.mark.parametrize("code_dim,key", [(64, "tokenizer"), (32, "tokenizer_code_dim_32")])
def test_full_size_counts_keys_and_shapes(fixtures, code_dim, key):
    reference = json.loads((fixtures / "official_full_config_state_dicts.json").read_text())["models"][key]
    model = LaBraMTokenizer("eeg", code_dim=code_dim)
    assert model.num_parameters() == reference["trainable"]
    assert model.official_parameter_count() == reference["parameters"]
    exported = model.to_official()
    if "keys" in reference:
        assert sorted(exported) == sorted(reference["keys"])
        for name, tensor in exported.items():
            assert list(tensor.shape) == reference["keys"][name]["shape"], name
    assert len(exported) == reference["state_dict_entries"]
    assert sum(t.numel() for t in exported.values()) == reference["state_dict_numbers"]


def test_export_round_trips_through_the_official_layout(fixtures):
    state = load_file(str(fixtures / "tokenizer_model.safetensors"))
    model = LaBraMTokenizer.from_official(state)
    exported = model.to_official()
    assert sorted(exported) == sorted(state)
    for key, tensor in state.items():
        if "embed_avg" in key or key == "quantize.embedding.cluster_size":
            assert not exported[key].any()  # dead: zeros
        else:
            assert torch.equal(exported[key], tensor.to(exported[key].dtype)), key


def test_neurorvq_load_recognises_the_family(fixtures):
    path = fixtures / "tokenizer_model.safetensors"
    model = neurorvq.load(path)
    assert isinstance(model, LaBraMTokenizer) and model.family == "labram_vqnsp"
    assert isinstance(neurorvq.load(load_file(str(path)), kind="tokenizer", family="labram_vqnsp"), LaBraMTokenizer)
    with pytest.raises(CheckpointError, match=r"tokenizer_model\.safetensors' is a 'labram_vqnsp' checkpoint, not "
                                              r"'neurorvq'$"):
        neurorvq.load(path, family="neurorvq")
    from neurorvq import NeuroRVQTokenizer

    with pytest.raises(CheckpointError, match=r"is a 'labram_vqnsp' checkpoint, not 'neurorvq'"):
        NeuroRVQTokenizer.from_pretrained(str(path))


def test_official_neurorvq_file_refused_as_labram():
    neurorvq_official = SHARED / "fixtures" / "official" / "tokenizer_model.safetensors"
    if not neurorvq_official.exists():
        pytest.skip(f"NeuroRVQ fixtures not found at {neurorvq_official}")
    with pytest.raises(CheckpointError, match=r"is a 'neurorvq' checkpoint, not 'labram_vqnsp'$"):
        neurorvq.load(neurorvq_official, family="labram_vqnsp")
    with pytest.raises(CheckpointError, match=r"is an official 'neurorvq' tokenizer, not a 'labram_vqnsp' one"):
        LaBraMTokenizer.from_official(neurorvq_official)


def test_unknown_official_keys_are_named(fixtures):
    state = load_file(str(fixtures / "tokenizer_model.safetensors"))
    state["encoder.extra.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointError, match=r"keys outside the official VQ-NSP layout: \['encoder\.extra\.weight'\]"):
        map_official_to_ours(state, "'x'")
