"""Tokenizer behaviour beyond the fixtures: generic sizes, round trips, autocast, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from neurorvq import NeuroRVQTokenizer, TemporalBranch
from neurorvq.errors import CheckpointError, ConfigError, InputError

SMALL = dict(encoder_depth=1, decoder_depth=1, codebook_size=64, code_dim=8)
CHANNELS = ["Fp1", "cz", "O2"]


def small_model(**overrides) -> NeuroRVQTokenizer:
    torch.manual_seed(0)
    return NeuroRVQTokenizer("eeg", **{**SMALL, **overrides}).eval()


def signal(batch=2, channels=3, seconds=2, seed=0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(seconds * 200) / 200
    alpha = 20 * torch.sin(2 * math.pi * 10 * t)
    return alpha + 10 * torch.randn(batch, channels, seconds * 200, generator=g)


def test_generic_branches_and_depth():
    branches = (TemporalBranch((21, 9), (2, 4)), TemporalBranch((5, 3), (2, 4)))
    model = small_model(branches=branches, n_quantizers=3)
    x = signal()
    tokens, stats = model.encode(x, CHANNELS, return_amplitude_stats=True)
    assert tokens.shape == (2, 2, 3, 3 * 2) and tokens.dtype == torch.int64
    assert int(tokens.min()) >= 0 and int(tokens.max()) < 64
    assert stats.mean.shape == stats.std.shape == (2,)
    rec, figures = model(x, CHANNELS)
    assert rec.shape == x.shape
    assert figures["code_per_level"].shape == figures["usage"].shape == figures["perplexity"].shape == (2, 3)
    for name in ("loss", "code", "amp", "phase", "sig"):
        assert figures[name].ndim == 0 and torch.isfinite(figures[name])
    total = figures["code"] + figures["amp"] + figures["phase"] + figures["sig"]
    assert torch.allclose(figures["loss"], total)
    assert torch.equal(figures["tokens"], tokens)
    assert model.decode(tokens, CHANNELS, stats).shape == x.shape


def test_decode_reproduces_forward_reconstruction():
    model = small_model()
    x = signal()
    rec, figures = model(x, CHANNELS)
    tokens, stats = model.encode(x, CHANNELS, return_amplitude_stats=True)
    assert torch.allclose(model.decode(tokens, CHANNELS, stats), rec, rtol=1e-4, atol=1e-3 * rec.abs().max().item())


def test_channel_ids_and_per_sample_channel_tensors():
    model = small_model()
    x = signal()
    ids = [model.spec.channel_index(c) for c in CHANNELS]
    by_name = model.encode(x, CHANNELS)
    assert torch.equal(model.encode(x, ids), by_name)
    assert torch.equal(model.encode(x, torch.tensor([ids, ids])), by_name)


def test_training_mode_backward_and_kmeans():
    model = small_model().train()
    assert not bool(model.quantizer.initted.any())
    x = signal(batch=4)
    rec, figures = model(x, CHANNELS)
    figures["loss"].backward()
    assert bool(model.quantizer.initted.all())
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert model.temporal.branches[0].convs[0].weight.grad.abs().sum() > 0  # gradient reaches the encoder
    norms = model.quantizer.codebooks.norm(dim=-1)
    assert torch.allclose(norms, torch.ones_like(norms), atol=1e-5)


def test_bf16_autocast_keeps_float32_search():
    model = small_model()
    x = signal()
    reference = model.encode(x, CHANNELS)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        rec, figures = model(x, CHANNELS)
    assert torch.isfinite(rec).all() and torch.isfinite(figures["loss"])
    # the quantizer runs in float32 whatever the autocast state: same projected input -> same ids
    inp = model.prepare(x, CHANNELS)
    _, _, projected = model.encode_features(inp)
    s, b, l, d = projected.shape
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ids = model.quantizer(projected.reshape(s, b * l, d)).indices
    assert torch.equal(ids.reshape(s, -1, b, l).permute(2, 0, 1, 3), reference)


def test_save_pretrained_round_trip(tmp_path):
    model = small_model(crop=True)
    x = signal()
    model.save_pretrained(tmp_path / "tok")
    assert (tmp_path / "tok" / "config.json").is_file() and (tmp_path / "tok" / "model.safetensors").is_file()
    again = NeuroRVQTokenizer.from_pretrained(tmp_path / "tok").eval()
    assert again.spec == model.spec and again.options == model.options
    assert torch.equal(again.encode(x, CHANNELS), model.encode(x, CHANNELS))
    for key, value in model.state_dict().items():
        assert torch.equal(again.state_dict()[key], value)


def test_from_pretrained_errors(tmp_path):
    with pytest.raises(CheckpointError, match="nothing-here' not found: no such file or folder"):
        NeuroRVQTokenizer.from_pretrained(tmp_path / "nothing-here")
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "config.json").write_text("{}")
    with pytest.raises(CheckpointError, match="model.safetensors"):
        NeuroRVQTokenizer.from_pretrained(tmp_path / "half")
    small_model().save_pretrained(tmp_path / "tok")
    with pytest.raises(CheckpointError, match=r"'quantizer\.codebooks' has shape \(4, 8, 64, 8\).*\(4, 8, 32, 8\)"):
        NeuroRVQTokenizer.from_pretrained(tmp_path / "tok", codebook_size=32)


def test_unknown_override_is_a_config_error():
    with pytest.raises(ConfigError, match="codebook_sise"):
        NeuroRVQTokenizer("eeg", codebook_sise=12)
    with pytest.raises(ConfigError, match="num_heads"):
        NeuroRVQTokenizer("eeg", num_heads=7)


# ------------------------------------------------------------------------------------ bad input
def test_nan_names_sample_and_channel():
    x = signal()
    x[1, 2, 17] = float("nan")
    with pytest.raises(InputError, match=r"sample 1, channel 2 \('O2'\)"):
        small_model().encode(x, CHANNELS)
    x[1, 2, 17] = float("inf")
    with pytest.raises(InputError, match="NaN/Inf"):
        small_model()(x, CHANNELS)


@pytest.mark.parametrize("channels", [
    [b"Fp1", b"cz", b"O2"],
    [np.bytes_(b"Fp1\x00\x00"), np.bytes_(b"cz"), np.bytes_(b"O2")],  # HDF5 fixed-width, NUL-padded
    np.array([b"Fp1", b"cz", b"O2"]),
    [np.str_("Fp1"), np.str_("cz"), np.str_("O2")],
    np.array(["Fp1", "cz", "O2"]),
    "ids",
], ids=["bytes", "np.bytes_", "bytes-array", "np.str_", "str-array", "np.int64"])
def test_file_channel_names_give_the_str_tokens(channels):
    model = small_model()
    if isinstance(channels, str):
        channels = [np.int64(model.spec.channel_index(c)) for c in CHANNELS]
    x = signal()
    tokens, stats = model.encode(x, CHANNELS, return_amplitude_stats=True)
    assert torch.equal(model.encode(x, channels), tokens)
    assert torch.equal(model.decode(tokens, channels, stats), model.decode(tokens, CHANNELS, stats))
    model.check_inputs = False  # the training path: names go straight to the cached embedding ids
    assert torch.equal(model.encode(x, channels), tokens)


def test_bytes_and_str_names_share_cached_embedding_ids():
    from neurorvq.models.inputs import embedding_ids

    spec, cpu = small_model().spec, torch.device("cpu")
    by_str = embedding_ids(spec, ["fp1", "cz"], 2, cpu)
    by_bytes = embedding_ids(spec, [b"fp1", b"cz"], 2, cpu)
    assert all(a is b for a, b in zip(by_str, by_bytes))


@pytest.mark.parametrize("bad, message", [
    (["Fp1", "cz", 1.0], r"channels\[2\] is a float \(1\.0\): give a name \(str or bytes\) or an integer id"),
    (["Fp1", None, "O2"], r"channels\[1\] is None"),
    ([b"Fp1", b"\xffcz", b"O2"], r"channels\[1\] is bytes b'\\xffcz' that are not UTF-8"),
    (b"cz", "not a single string"),
])
def test_channels_neither_names_nor_ids_are_refused(bad, message):
    model = small_model()
    with pytest.raises(InputError, match=message):
        model.encode(signal(), bad)
    # unchecked, a float would hit a cached list with the int in its place (1.0 == 1 as a cache key)
    if not any(isinstance(v, float) for v in bad):
        model.check_inputs = False
        with pytest.raises(InputError, match=message):
            model.encode(signal(), bad)


def test_unknown_channels_listed_with_closest():
    with pytest.raises(InputError, match=r"'Czz' \(closest: cz.*'EEG Fp1-REF'"):
        small_model().encode(signal(), ["Czz", "EEG Fp1-REF", "o2"])
    with pytest.raises(InputError, match=r"id 104"):
        small_model().encode(signal(), [0, 1, 104])
    with pytest.raises(InputError, match="3 channels"):
        small_model().encode(signal(), ["cz", "o2"])


def test_length_not_whole_patches():
    x = signal()[..., :350]
    with pytest.raises(InputError, match=r"350 samples is not a whole number of 200-sample patches.*crop=True"):
        small_model().encode(x, CHANNELS)
    tokens = small_model(crop=True).encode(x, CHANNELS)
    assert tokens.shape[-1] == 3  # one patch per channel kept
    with pytest.raises(InputError, match="shorter than one 200-sample patch"):
        small_model().encode(signal()[..., :150], CHANNELS)


def test_too_many_patches():
    model = small_model(max_patches=4)
    with pytest.raises(InputError, match=r"5 patches per channel exceed .*max_patches=4"):
        model.encode(signal(seconds=5), CHANNELS)


def test_decode_rejects_bad_tokens():
    model = small_model()
    x = signal()
    tokens, stats = model.encode(x, CHANNELS, return_amplitude_stats=True)
    bad = tokens.clone()
    bad[0, 1, 2, 3] = 64
    with pytest.raises(InputError, match=r"out of range at \[batch, branch, depth, token\]=\[0, 1, 2, 3\].*0\.\.63"):
        model.decode(bad, CHANNELS, stats)
    with pytest.raises(InputError, match="amplitude_stats"):
        model.decode(tokens, CHANNELS, None)
    with pytest.raises(InputError, match=r"expected \[batch, 4, 8"):
        model.decode(tokens[:, :2], CHANNELS, stats)


def test_checks_can_be_switched_off():
    model = small_model(check_inputs=False)
    x = signal()
    x[0, 0, 0] = float("nan")
    model.encode(x, CHANNELS)  # no check, no error: the training path's data pipeline validated already
    model.check_inputs = True
    with pytest.raises(InputError):
        model.encode(x, CHANNELS)


def test_bf16_forward_equal_tokens_on_well_separated_codebook():
    # four orthogonal codes: decisions are far from ties compared with the bf16 encoder's error
    model = small_model(codebook_size=4, code_dim=8, n_quantizers=2)
    basis = torch.eye(8)[:4]
    model.quantizer.codebooks.copy_(basis.expand_as(model.quantizer.codebooks))
    model.quantizer.mark_initialised()
    x = signal(batch=2, seconds=3)
    reference = model.encode(x, CHANNELS)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        rec, figures = model(x, CHANNELS)
        tokens = model.encode(x, CHANNELS)
    assert torch.isfinite(rec).all() and all(torch.isfinite(figures[k]) for k in ("loss", "code", "amp"))
    assert torch.equal(tokens, reference)
