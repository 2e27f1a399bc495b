"""BrainRVQ's DD-RVQ: the official-layout fixtures (``../shared/fixtures/brainrvq``) load through the official loader
and reproduce the official outputs (every token id of both RVQs and all levels exactly, every other tensor of
``tokenizer_expected`` within the fixture README's bounds), in the parity mode and in the default one; the official
size TemporalConv; full-size parameter counts, keys and shapes; export; family recognition and cross-family errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import pytest
import torch
from safetensors.torch import load_file

import neurorvq
from fixture_checks import (SHARED, check_official_size_temporal_conv, fixture_folder,  # a helper module of this folder
                            within)
from neurorvq.errors import CheckpointError
from neurorvq.families.labram import LABRAM_STANDARD_1020
from neurorvq.models.official_brainrvq import map_official_to_ours
from neurorvq.models.spectral_vq import BrainRVQTokenizer, LaBraMTokenizer, SpectralVQOutput

ANGLE_BOUND = 1e-3  # absolute (fixture README: ill-conditioned bins)


@pytest.fixture(scope="module")
def fixtures() -> Path:
    return fixture_folder("brainrvq", "BrainRVQ")


def run(fixtures: Path, parity: bool) -> tuple[BrainRVQTokenizer, SpectralVQOutput, dict, dict]:
    inputs = load_file(str(fixtures / "inputs.safetensors"))
    meta = json.loads((fixtures / "inputs.json").read_text())
    model = BrainRVQTokenizer.from_official(fixtures / "tokenizer_model.safetensors", parity=parity).eval()
    with torch.no_grad():
        out = model.forward_details(inputs["x_uv"], meta["channel_names"])
    return model, out, inputs, meta


def level_tensors(model: BrainRVQTokenizer, out: SpectralVQOutput) -> dict[str, torch.Tensor]:
    """Per domain, the residual entering each level, its l2-normalised form and the level's output, ``[N, B, L, d]``,
    from the model's own quantizer step (``ResidualVQ._level``) run on the encoder's projection."""
    b, l, d = out.projected.shape
    s = len(model.config.domains)
    residual = out.projected.reshape(1, b * l, d).expand(s, b * l, d)
    inputs, normalised, outputs = [], [], []
    with torch.no_grad():
        for level in range(model.config.depth):
            z, _, _, q, next_residual = model.quantizer._level(residual, level)
            inputs.append(residual)
            normalised.append(z)
            outputs.append(q)
            residual = next_residual
    out_tensors = {}
    for i, domain in enumerate(model.config.domains):
        x = domain[0]
        for name, values in (("level_input", inputs), ("level_input_l2", normalised), ("level_output", outputs)):
            out_tensors[f"rvq_{x}.{name}"] = torch.stack([v[i] for v in values]).reshape(-1, b, l, d)
    return out_tensors


def patch_stat(out: SpectralVQOutput, name: str) -> torch.Tensor:
    return out.side[name].reshape(out.patches.shape[:3]).unsqueeze(-1)  # [B, C*A] -> [B, C, A, 1]


GETTERS: dict[str, Callable[[SpectralVQOutput], torch.Tensor]] = {
    "encoder_patch_embed": lambda o: o.patch_embed,
    "encoder_features": lambda o: o.encoder_features,
    "encoder_projected": lambda o: o.projected,
    "quantized_t": lambda o: o.quantized[0],
    "quantized_f": lambda o: o.quantized[1],
    "decoder_t_patch_embed": lambda o: o.decoder_embed["time"],
    "decoder_t_features": lambda o: o.decoder_features["time"],
    "decoder_f_patch_embed": lambda o: o.decoder_embed["frequency"],
    "decoder_f_features": lambda o: o.decoder_features["frequency"],
    "rec.time": lambda o: o.predictions["time"]["waveform"],
    "rec.amplitude": lambda o: o.predictions["frequency"]["amplitude"],
    "rec.angle": lambda o: o.predictions["frequency"]["angle"],
    "target.time": lambda o: o.targets["time"]["waveform"],
    "target.time_mean": lambda o: patch_stat(o, "waveform_mean"),
    "target.time_std": lambda o: patch_stat(o, "waveform_std"),
    "target.amplitude": lambda o: o.targets["frequency"]["amplitude"],
    "target.amp_mean": lambda o: o.side["amplitude_mean"].reshape(-1, 1, 1, 1),
    "target.amp_std": lambda o: o.side["amplitude_std"].reshape(-1, 1, 1, 1),
    "target.angle_mean": lambda o: o.side["angle_mean"].reshape(-1, 1, 1, 1),
    "target.angle_std": lambda o: o.side["angle_std"].reshape(-1, 1, 1, 1),
    "loss.quant_t": lambda o: o.quant_per_level[0].sum(),
    "loss.quant_f": lambda o: o.quant_per_level[1].sum(),
    "loss.quant_t_per_level": lambda o: o.quant_per_level[0],
    "loss.quant_f_per_level": lambda o: o.quant_per_level[1],
    "loss.rec_time": lambda o: o.losses["time"],
    "loss.rec_amplitude": lambda o: o.losses["amp"],
    "loss.rec_angle": lambda o: o.losses["angle"],
    "loss.total": lambda o: o.losses["loss"],
}
"""Expected-file key -> our value (``target.angle``, the ids, the level tensors and the usage buffers separately)."""


@pytest.fixture(scope="module", params=[True, False], ids=["parity", "default"])
def official(request, fixtures):
    expected = load_file(str(fixtures / "tokenizer_expected.safetensors"))
    return (*run(fixtures, request.param), expected)


def test_every_expected_tensor_is_checked(official):
    *_, expected = official
    separate = {"target.angle", "tokens_t", "tokens_f"} | {k for k in expected if k.startswith(("rvq_", "after_"))}
    assert set(expected) == set(GETTERS) | separate


def test_architecture_read_from_the_shapes(official):
    model, *_ = official
    c = model.config
    assert (c.embed_dim, c.conv_channels, c.num_heads, c.mlp_ratio) == (100, 4, 5, 1.0)
    assert (c.encoder_depth, c.decoder_depth, c.codebook_size, c.code_dim, c.depth) == (2, 1, 64, 16, 3)
    assert (c.max_patches, c.spatial_rows, c.domains, c.norm_eps) == (30, 129, ("time", "frequency"), 1e-6)


def test_vocabulary_ids_scaling_and_temporal_rows(official):
    model, _, inputs, meta, _ = official
    assert list(LABRAM_STANDARD_1020) == meta["standard_1020"]
    prepared = model.prepare(inputs["x_uv"], meta["channel_names"])
    assert torch.equal(prepared.spatial_ids.unique_consecutive(), inputs["input_chans"][1:])  # [0] is the CLS row
    assert torch.equal(prepared.temporal_ids, torch.arange(5).repeat(4))  # left-aligned, per channel
    assert torch.equal(prepared.patches, inputs["x"].reshape(2, 4, 5, 200))  # µV / 100, bit for bit


def test_token_ids_exact_for_both_rvqs_and_every_level(official):
    model, out, inputs, meta, expected = official
    assert torch.equal(out.tokens[:, 0].permute(1, 0, 2), expected["tokens_t"])  # [B, N, L] -> [N, B, L]
    assert torch.equal(out.tokens[:, 1].permute(1, 0, 2), expected["tokens_f"])
    tokens_t, tokens_f = model.get_codebook_indices(inputs["x_uv"], meta["channel_names"])
    assert torch.equal(tokens_t, expected["tokens_t"]) and torch.equal(tokens_f, expected["tokens_f"])
    ids = model.tokenize(inputs["x_uv"], meta["channel_names"]).ids  # [B, 2*3, L]: time levels, then frequency
    assert torch.equal(ids, torch.cat([expected["tokens_t"], expected["tokens_f"]]).permute(1, 0, 2))


@pytest.mark.parametrize("key", sorted(GETTERS))
def test_tensors_within_tolerance(official, key):
    _, out, *_, expected = official
    within(GETTERS[key](out), expected[key])


def test_level_inputs_and_outputs_within_tolerance(official):
    model, out, *_, expected = official
    got = level_tensors(model, out)
    assert set(got) == {k for k in expected if k.startswith("rvq_")}
    for key, value in got.items():
        within(value, expected[key])
    assert torch.equal(got["rvq_t.level_input"][0], got["rvq_f.level_input"][0])  # both RVQs see the same z


def test_angle_target_within_its_absolute_bound(official):
    _, out, *_, expected = official
    assert (out.targets["frequency"]["angle"] - expected["target.angle"]).abs().max() <= ANGLE_BOUND


@pytest.mark.parametrize("parity", [True, False])
def test_eval_usage_update_only_in_parity_mode(fixtures, parity):
    model, *_ = run(fixtures, parity)  # a fresh model: exactly one forward
    state = load_file(str(fixtures / "tokenizer_model.safetensors"))
    expected = load_file(str(fixtures / "tokenizer_expected.safetensors"))
    for s, x in enumerate("tf"):
        for level in range(3):
            key = f"quantize_{x}.layers.{level}.cluster_size"
            if parity:
                within(model.quantizer.usage[s, level], expected[f"after_forward.{key}"])
            else:
                assert torch.equal(model.quantizer.usage[s, level], state[key])


def test_tokens_decode_to_the_forward_reconstruction(official):
    model, out, inputs, meta, _ = official
    encoded = model.tokenize(inputs["x_uv"], meta["channel_names"])
    assert set(encoded.side) == {"amplitude_mean", "amplitude_std", "angle_mean", "angle_std"}
    within(model.detokenize(encoded, meta["channel_names"]), out.reconstruction)  # codebook rows vs z + (e - z)


def test_official_size_temporal_conv(fixtures):
    check_official_size_temporal_conv(fixtures, channels=20)


def test_full_size_counts_keys_and_shapes(fixtures):
    reference = json.loads((fixtures / "official_full_config_state_dicts.json").read_text())["models"]["tokenizer"]
    model = BrainRVQTokenizer("eeg")
    assert model.num_parameters() == reference["trainable"] == 9_101_240
    assert model.official_parameter_count() == reference["parameters"] == 15_441_848
    exported = model.to_official()
    assert sorted(exported) == sorted(reference["keys"])
    for name, tensor in exported.items():
        assert list(tensor.shape) == reference["keys"][name]["shape"], name
    assert len(exported) == reference["state_dict_entries"] == 311
    assert sum(t.numel() for t in exported.values()) == reference["state_dict_numbers"]
    live = model.quantizer.codebooks.numel()
    assert live == 3_145_728


def test_export_round_trips_through_the_official_layout(fixtures):
    state = load_file(str(fixtures / "tokenizer_model.safetensors"))
    model = BrainRVQTokenizer.from_official(state)
    exported = model.to_official()
    assert sorted(exported) == sorted(state)
    for key, tensor in state.items():
        if key.endswith(("embedding.embed_avg", "embedding.cluster_size")):
            assert not exported[key].any()  # dead: zeros
        else:
            assert torch.equal(exported[key], tensor.to(exported[key].dtype)), key
    assert torch.equal(BrainRVQTokenizer.from_official(exported).quantizer.codebooks, model.quantizer.codebooks)


def test_neurorvq_load_recognises_the_family(fixtures):
    path = fixtures / "tokenizer_model.safetensors"
    model = neurorvq.load(path)
    assert isinstance(model, BrainRVQTokenizer) and model.family == "brainrvq"
    assert isinstance(neurorvq.load(load_file(str(path)), kind="tokenizer", family="brainrvq"), BrainRVQTokenizer)
    for other in ("labram_vqnsp", "neurorvq"):
        with pytest.raises(CheckpointError, match=rf"tokenizer_model\.safetensors' is a 'brainrvq' checkpoint, not "
                                                  rf"'{other}'$"):
            neurorvq.load(path, family=other)


def test_a_brainrvq_file_given_to_another_familys_loader_names_both(fixtures):
    from neurorvq import NeuroRVQTokenizer

    path = fixtures / "tokenizer_model.safetensors"
    with pytest.raises(CheckpointError, match=r"is an official 'brainrvq' tokenizer, not a 'labram_vqnsp' one: load it "
                                              r"with neurorvq\.load or BrainRVQTokenizer\.from_official$"):
        LaBraMTokenizer.from_official(path)
    with pytest.raises(CheckpointError, match=r"is a 'brainrvq' tokenizer in its official layout, not a 'neurorvq' "
                                              r"one"):
        NeuroRVQTokenizer.from_official(str(path))


def test_another_familys_file_given_to_brainrvq_names_both():
    vqnsp = SHARED / "fixtures" / "labram_vqnsp" / "tokenizer_model.safetensors"
    official = SHARED / "fixtures" / "official" / "tokenizer_model.safetensors"
    if not (vqnsp.exists() and official.exists()):
        pytest.skip(f"LaBraM / NeuroRVQ fixtures not found under {SHARED / 'fixtures'}")
    with pytest.raises(CheckpointError, match=r"is an official 'labram_vqnsp' tokenizer, not a 'brainrvq' one: load it "
                                              r"with neurorvq\.load or LaBraMTokenizer\.from_official$"):
        BrainRVQTokenizer.from_official(vqnsp)
    with pytest.raises(CheckpointError, match=r"is an official 'neurorvq' tokenizer, not a 'brainrvq' one"):
        BrainRVQTokenizer.from_official(official)
    with pytest.raises(CheckpointError, match=r"is a 'labram_vqnsp' checkpoint, not 'brainrvq'$"):
        neurorvq.load(vqnsp, family="brainrvq")


def test_unknown_official_keys_are_named(fixtures):
    state = load_file(str(fixtures / "tokenizer_model.safetensors"))
    state["decoder_t.extra.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointError, match=r"keys outside the official BrainRVQ DD-RVQ layout: "
                                              r"\['decoder_t\.extra\.weight'\]"):
        map_official_to_ours(state, "'x'")
    del state["decoder_t.extra.weight"], state["quantize_f.layers.2.embedding.weight"]
    with pytest.raises(CheckpointError, match=r"'x': quantize_f lacks level\(s\) \[2\] of 3"):
        map_official_to_ours(state, "'x'")
