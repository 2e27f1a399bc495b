"""BrainRVQ's DD-RVQ family: registry, config and options, shapes, the waveform target and both reconstructions, the
RVQ semantics it relies on, the parity-vs-default behaviours, bad input, persistence and training through
TokenizerTask (families.md §A.11, tokenizer items)."""

from __future__ import annotations

import lightning as L
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import neurorvq
from neurorvq import ConfigError, InputError
from neurorvq.families import get_family
from neurorvq.families.brainrvq import BrainRVQConfig, BrainRVQOptions
from neurorvq.families.labram import LABRAM_STANDARD_1020, LaBraMConfig
from neurorvq.families.options import coerce_options
from neurorvq.models.spectral_vq import BrainRVQTokenizer, FrequencyDecoder, TimeDecoder, autocast_search
from neurorvq.nn.spectral import waveform_targets
from neurorvq.tokenizers import Tokenizer

CHANNELS = ["FP1", "CZ", "O2", "T3"]
TINY = dict(embed_dim=100, conv_channels=4, num_heads=5, encoder_depth=1, decoder_depth=1, mlp_ratio=1.0,
            codebook_size=32, code_dim=8)


def eeg(batch: int = 2, patches: int = 4, channels: int = 4, seed: int = 0) -> torch.Tensor:
    """Gaussian 'EEG' in µV, ``[batch, channels, patches*200]``."""
    return 30.0 * torch.randn(batch, channels, patches * 200, generator=torch.Generator().manual_seed(seed))


def tiny(**overrides) -> BrainRVQTokenizer:
    torch.manual_seed(0)
    return BrainRVQTokenizer("eeg", **{**TINY, **overrides})


# ------------------------------------------------------------------------------------ registry, config, options
def test_the_family_is_registered_with_its_config_and_tokenizer():
    family = get_family("brainrvq")
    assert family.config is BrainRVQConfig and family.tokenizer_class() is BrainRVQTokenizer
    assert family.foundation_model == "neurorvq.models.brainrvq_fm:BrainRVQFoundationModel"
    config = BrainRVQConfig()
    assert (config.depth, config.codebook_size, config.code_dim, config.domains) == (3, 8192, 64, ("time", "frequency"))
    assert (config.max_patches, config.spatial_rows, config.input_scale) == (30, 129, 0.01)
    assert config.usable_channels == LABRAM_STANDARD_1020[:128]
    assert BrainRVQConfig.from_dict(config.to_dict()) == config and config != LaBraMConfig()
    with pytest.raises(ConfigError, match=r"unknown BrainRVQConfig field\(s\) \['levels'\]"):
        BrainRVQConfig.from_dict({"levels": 3})


def test_vocabulary_ids_with_the_plus_one_offset():
    tok = tiny()
    assert tok.channel_ids(["FP1", "T3", "A2"]).tolist() == [0, 88, 95]  # spatial rows 1, 89, 96 (id + 1)
    assert torch.equal(tok.prepare(eeg(channels=3), ["FP1", "T3", "A2"]).spatial_ids.unique_consecutive(),
                       torch.tensor([1, 89, 96]))


def test_options_build_the_tokenizer_and_are_picked_by_class_path():
    options = coerce_options({"class_path": "neurorvq.families.brainrvq.BrainRVQOptions",
                              "init_args": {"code_dim": 8, "reconstruction": "time"}}, BrainRVQOptions(), "tokenizer")
    assert options == BrainRVQOptions(code_dim=8, reconstruction="time") and options.family == "brainrvq"
    tok = BrainRVQOptions(**TINY).build("eeg")
    assert isinstance(tok, BrainRVQTokenizer) and isinstance(tok, Tokenizer) and tok.config.depth == 3


@pytest.mark.parametrize("overrides,message", [
    ({"reconstruction": "waveform"}, r"reconstruction is 'waveform'; give one of the model's domains "
                                     r"\['frequency', 'time'\]"),
    ({"domains": ("frequency",), "reconstruction": "time"}, r"reconstruction is 'time'; give one of the model's "
                                                            r"domains \['frequency'\]"),
    ({"parity": True, "depth": 2}, r"parity=True reproduces the official DDRVQ, which hard-codes two residual VQs "
                                   r"\(time, frequency\) of 3 levels; got domains \['time', 'frequency'\] and depth 2"),
    ({"parity": True, "domains": ("frequency", "time")}, r"parity=True reproduces the official DDRVQ"),
    ({"code_dims": 8}, r"unknown brainrvq override\(s\): 'code_dims'; did you mean 'code_dim'\?"),
])
def test_bad_options_are_named(overrides, message):
    with pytest.raises(ConfigError, match=message):
        tiny(**overrides)


# ------------------------------------------------------------------------------------ shapes and layout
@pytest.mark.parametrize("patches", [2, 10, 30])
def test_shapes(patches):
    tok = tiny().eval()
    x = eeg(patches=patches, channels=16)
    names = LABRAM_STANDARD_1020[:16]
    with torch.no_grad():
        out = tok.forward_details(x, names)
    tokens_t, tokens_f = tok.get_codebook_indices(x, names)
    for tokens in (tokens_t, tokens_f):
        assert tokens.shape == (3, 2, 16 * patches) and tokens.dtype == torch.int64
        assert 0 <= int(tokens.min()) and int(tokens.max()) < 32
    for head in (out.predictions["time"]["waveform"], out.predictions["frequency"]["amplitude"],
                 out.predictions["frequency"]["angle"]):
        assert head.shape == (2, 16 * patches, 200)
    assert out.reconstruction.shape == x.shape and out.quant_per_level.shape == (2, 3)
    layout = tok.layout
    assert layout.groups == ("time", "frequency") and layout.depths == (3, 3) and layout.num_streams == 6
    assert [f.name for f in layout.side] == ["amplitude_mean", "amplitude_std", "angle_mean", "angle_std"]
    assert [f.name for f in tiny(reconstruction="time").layout.side] == ["waveform_mean", "waveform_std"]


# ------------------------------------------------------------------------------------ targets and reconstruction
def test_waveform_target_matches_numpy():
    patches = eeg().reshape(2, 4, 4, 200) / 100
    got, stats = waveform_targets(patches)
    p = patches.double().numpy()
    mean, std = p.mean(-1, keepdims=True), p.std(-1, ddof=1, keepdims=True)
    assert np.abs(got.double().numpy() - (p - mean) / (std + 1e-6)).max() < 1e-5
    assert np.abs(stats.std.double().numpy() - std[..., 0]).max() < 1e-6
    flat, _ = waveform_targets(torch.zeros(1, 1, 2, 200))
    assert torch.equal(flat, torch.zeros(1, 1, 2, 200))  # the epsilon: a flat patch gives zeros, not NaN


@pytest.mark.parametrize("decoder", [TimeDecoder, FrequencyDecoder], ids=["time", "frequency"])
def test_true_targets_round_trip_to_the_signal(decoder):
    tok = tiny()
    x = eeg(patches=3)
    targets, side = decoder.targets(tok.prepare(x, CHANNELS).patches, parity=False)
    b, c, a, t = next(iter(targets.values())).shape
    predictions = {k: v.reshape(b, c * a, t) for k, v in targets.items()}
    back = decoder.reconstruct(predictions, side).reshape(b, c, a * t) * 100  # µV/100 -> µV
    assert (back - x).abs().max() <= 1e-5 * x.abs().max()


@pytest.mark.parametrize("reconstruction", ["frequency", "time"])
def test_tokenize_detokenize_and_token_shards(tmp_path, reconstruction):
    from neurorvq.token_files import read_tokens, write_shard

    tok = tiny(reconstruction=reconstruction).eval()
    x = eeg(patches=3)
    encoded = tok.tokenize(x, CHANNELS)
    assert encoded.ids.shape == (2, 6, 12) and set(encoded.side) == {f.name for f in tok.layout.side}
    rec = tok.detokenize(encoded, CHANNELS)
    with torch.no_grad():
        forward_rec, _ = tok(x, CHANNELS)
    assert rec.shape == x.shape and (rec - forward_rec).abs().max() <= 1e-4 * forward_rec.abs().max()
    write_shard(tmp_path / "s.safetensors", encoded, tok.channel_ids(CHANNELS), {"channels": CHANNELS,
                                                                                 "family": tok.family})
    shard = read_tokens(tmp_path / "s.safetensors")
    assert shard.layout == tok.layout and torch.equal(tok.detokenize(shard.encoded(), CHANNELS), rec)


def test_time_reconstruction_keeps_each_patchs_mean_and_scale():
    tok = tiny(reconstruction="time").eval()
    x = eeg(patches=2)
    encoded = tok.tokenize(x, CHANNELS)
    assert encoded.side["waveform_mean"].shape == (2, 8)  # [B, C*A], channel-major
    patches = tok.detokenize(encoded, CHANNELS).reshape(2, 4, 2, 200) / 100
    means = x.reshape(2, 4, 2, 200).mean(-1) / 100
    predicted = tok.forward_details(x, CHANNELS).predictions["time"]["waveform"].reshape(2, 4, 2, 200)
    std = encoded.side["waveform_std"].reshape(2, 4, 2) + 1e-6
    expected_means = means + predicted.mean(-1) * std  # the head's own mean is scaled, the input's added
    assert torch.allclose(patches.mean(-1), expected_means, atol=1e-5)


def test_initial_losses_at_full_size():
    torch.manual_seed(0)
    tok = BrainRVQTokenizer("eeg").train()
    with torch.no_grad():
        _, outputs = tok(eeg(channels=16, patches=4), LABRAM_STANDARD_1020[:16])  # the k-means batch
    for name in ("amp", "angle", "time"):
        assert abs(float(outputs[name]) - 1.0) < 0.05, name
    assert float(outputs["quant"]) < 1e-6
    assert outputs["ids"].shape == (2, 6, 64) and outputs["usage"].shape == (2, 3)


# ------------------------------------------------------------------------------------ RVQ semantics
def test_rvq_semantics_both_domains_same_z_summed_losses_and_gradients():
    tok = tiny().eval()  # eval: the codebooks stay as they are (training would move them after the forward)
    tok.quantizer.mark_initialised()
    x = eeg(patches=2)
    out = tok.forward_details(x, CHANNELS)
    b, l, d = out.projected.shape
    rvq = tok.quantizer
    residual = out.projected.detach().reshape(1, b * l, d).expand(2, b * l, d)
    total, losses = torch.zeros(2, b * l, d), []
    for level in range(3):  # r_{j+1} = r_j - e_idx (un-normalised residual); output = sum of the unit codes
        z, idx, codes, _, residual = rvq._level(residual, level)
        assert torch.allclose(codes.norm(dim=-1), torch.ones(2, b * l))
        total = total + codes
        losses.append((codes - z).square().mean(dim=(1, 2)))
    assert torch.allclose(out.quantized.reshape(2, b * l, d), total, atol=1e-6)
    assert torch.allclose(out.quant_per_level, torch.stack(losses, 1), atol=1e-7)
    assert torch.allclose(out.losses["quant"], out.quant_per_level.sum())  # summed over levels and domains
    expected = out.losses["quant"] + out.losses["time"] + out.losses["amp"] + out.losses["angle"]
    assert torch.allclose(out.losses["loss"], expected)
    for level in range(3):  # the gradient reaches the projection through every level's loss
        tok.zero_grad()
        out = tok.forward_details(x, CHANNELS)
        out.quant_per_level[:, level].sum().backward()
        assert tok.encoder.projection[2].weight.grad.abs().sum() > 0, level


# ------------------------------------------------------------------------------------ parity vs default
def test_one_patch_windows():
    x = eeg(patches=1)
    rec, outputs = tiny().eval()(x, CHANNELS)
    assert rec.shape == x.shape and torch.isfinite(outputs["loss"])
    parity = tiny(parity=True).eval()
    assert parity.tokenize(x, CHANNELS).ids.shape == (2, 6, 4)  # the official encoder handles A = 1
    with pytest.raises(InputError, match=r"parity=True reproduces the official decoder, which cannot decode one-patch "
                                         r"windows \(with A = 1 .*; BQ4\)"):
        parity(x, CHANNELS)


def test_flat_sample_nan_in_parity_only():
    x = eeg()
    x[1] = 0.0
    _, default = tiny().eval()(x, CHANNELS, check_inputs=False)
    _, parity = tiny(parity=True).eval()(x, CHANNELS, check_inputs=False)
    assert torch.isfinite(default["loss"]) and torch.isnan(parity["amp"]) and torch.isnan(parity["angle"])
    assert torch.isfinite(parity["time"]) and torch.isfinite(default["time"])  # the waveform z-score has its epsilon


def test_eval_usage_updates_only_in_parity():
    for parity in (False, True):
        tok = tiny(parity=parity).eval()
        tok.quantizer.mark_initialised()
        before = tok.quantizer.usage.clone()
        tok.tokenize(eeg(), CHANNELS)
        assert torch.equal(tok.quantizer.usage, before) != parity


def test_reduced_precision_distances_only_in_parity_under_autocast():
    tok, parity = tiny(codebook_size=256, code_dim=16).eval(), tiny(codebook_size=256, code_dim=16, parity=True).eval()
    tok.quantizer.mark_initialised()
    parity.load_state_dict(tok.state_dict())
    z = torch.randn(1, 4000, 16, generator=torch.Generator().manual_seed(1))
    exact = tok.quantize(z).indices
    assert exact.shape == (2, 3, 4000)  # both domains' codebooks searched with the same z
    assert torch.equal(parity.quantize(z).indices, exact)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.equal(tok.quantize(z).indices, exact)
        reduced = parity.quantize(z).indices
    codebook = tok.quantizer.codebooks[:, 0]
    ids, _ = autocast_search(torch.bfloat16)(F.normalize(z.expand(2, -1, -1), dim=-1), codebook,
                                             codebook.square().sum(-1).unsqueeze(1))
    assert torch.equal(reduced[:, 0], ids) and not torch.equal(reduced, exact)


# ------------------------------------------------------------------------------------ bad input
def test_windows_longer_than_the_temporal_table():
    for check in (True, False):
        with pytest.raises(InputError, match=r"31 patches per channel exceed BrainRVQ's 30-row temporal table: at "
                                             r"most 30 patches \(30 s, 6000 samples at 200 Hz\)"):
            tiny().eval().tokenize(eeg(patches=31, batch=1), CHANNELS, check_inputs=check)


def test_channels_outside_the_vocabulary_are_listed_with_closest_names():
    tok = tiny().eval()
    with pytest.raises(InputError, match=r"not in BrainRVQ's vocabulary: 'FPX1' \(closest: .*FP1.*\); 'P4-O2' "
                                         r"\(BrainRVQ id 136 has no row in the 129-row table; .*first electrode: "
                                         r"'P4'\)"):
        tok.tokenize(eeg(channels=3), ["FPX1", "cz", "P4-O2"])


# ------------------------------------------------------------------------------------ persistence and training
def test_save_pretrained_and_load_round_trip(tmp_path):
    tok = tiny(reconstruction="time").eval()
    folder = tok.save_pretrained(tmp_path / "ddrvq")
    loaded = neurorvq.load(folder).eval()
    assert type(loaded) is BrainRVQTokenizer and loaded.config == tok.config and loaded.options == tok.options
    x = eeg()
    assert torch.equal(loaded.tokenize(x, CHANNELS).ids, tok.tokenize(x, CHANNELS).ids)
    with pytest.raises(neurorvq.CheckpointError, match=r"ddrvq' is a 'brainrvq' checkpoint, not 'labram_vqnsp'"):
        neurorvq.load(folder, family="labram_vqnsp")


def test_trains_through_the_tokenizer_task(tmp_path):
    from neurorvq.datamodules.synthetic import SyntheticDataModule
    from neurorvq.tasks.tokenizer import TokenizerTask

    L.seed_everything(0)
    data = SyntheticDataModule(modality="eeg", channels=["c3", "cz", "c4"], window_seconds=2.0, train_windows=8,
                               val_windows=4, test_windows=4, batch_size=4, seed=3)
    task = TokenizerTask(tokenizer=BrainRVQOptions(**TINY, kmeans_iters=2), lr=1e-3)
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=tmp_path, num_sanity_val_steps=0,
                        log_every_n_steps=1, max_epochs=1)
    trainer.fit(task, data)
    assert task.tokenizer.quantizer.initialised
    assert set(trainer.callback_metrics) >= {"train/loss", "train/quant", "train/time", "train/amp", "train/angle",
                                             "val/loss"}
    loaded = neurorvq.load(trainer.checkpoint_callback.best_model_path).eval()
    assert isinstance(loaded, BrainRVQTokenizer) and loaded.config == task.tokenizer.config
    x = eeg(channels=3)
    assert torch.equal(loaded.tokenize(x, ["c3", "cz", "c4"]).ids,
                       task.tokenizer.eval().tokenize(x, ["c3", "cz", "c4"]).ids)
