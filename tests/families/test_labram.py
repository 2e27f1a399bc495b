"""LaBraM's VQ-NSP family: registry, config and options, the tokenizer protocol, targets and their inverse, the
parity-vs-default behaviours, the shared blocks it configures, and training through TokenizerTask."""

from __future__ import annotations

import lightning as L
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import neurorvq
from neurorvq import ConfigError, InputError, ModalitySpec
from neurorvq.families import get_family
from neurorvq.families.labram import LABRAM_STANDARD_1020, LaBraMConfig, LaBraMOptions
from neurorvq.families.options import coerce_options
from neurorvq.models.spectral_vq import FrequencyDecoder, LaBraMTokenizer, autocast_search
from neurorvq.nn.rvq import ResidualVQ
from neurorvq.nn.spectral import signal_from_spectrum_targets, spectrum_targets
from neurorvq.nn.transformer import Block, TokenTransformer
from neurorvq.tokenizers import Tokenizer

CHANNELS = ["FP1", "CZ", "O2", "T3"]
TINY = dict(encoder_depth=1, decoder_depth=1, codebook_size=32, code_dim=8)


def eeg(batch: int = 2, patches: int = 4, channels: int = 4, seed: int = 0) -> torch.Tensor:
    """Gaussian 'EEG' in µV, ``[batch, channels, patches*200]``."""
    return 30.0 * torch.randn(batch, channels, patches * 200, generator=torch.Generator().manual_seed(seed))


def tiny(**overrides) -> LaBraMTokenizer:
    torch.manual_seed(0)
    return LaBraMTokenizer("eeg", **{**TINY, **overrides})


# ------------------------------------------------------------------------------------ registry, config, options
def test_the_family_is_registered_with_its_config_and_tokenizer():
    family = get_family("labram_vqnsp")
    assert family.config is LaBraMConfig and family.tokenizer_class() is LaBraMTokenizer
    config = LaBraMConfig()
    assert (config.code_dim, config.codebook_size, config.max_patches, config.spatial_rows) == (64, 8192, 16, 129)
    assert config.usable_channels == LABRAM_STANDARD_1020[:128] and len(LABRAM_STANDARD_1020) == 136
    assert LaBraMConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ConfigError, match=r"unknown LaBraMConfig field\(s\) \['code_dims'\]"):
        LaBraMConfig.from_dict({"code_dims": 3})


@pytest.mark.parametrize("changes,message", [
    ({"embed_dim": 128}, r"embed_dim is 128 but TemporalConv yields conv_channels x steps = 8 x 25 = 200"),
    ({"num_heads": 7}, r"num_heads \(7\) does not divide embed_dim=200"),
    ({"domains": ("freq",)}, r"domains is \['freq'\]; give distinct names out of \['time', 'frequency'\]"),
    ({"code_dim": 0}, r"code_dim is 0; it must be a positive integer"),
])
def test_bad_configs_are_named(changes, message):
    with pytest.raises(ConfigError, match=r"modality 'eeg', family 'labram_vqnsp': " + message):
        LaBraMTokenizer("eeg", **changes)


def test_domains_are_a_parameter_and_unknown_overrides_are_refused():
    """The time decoder (BrainRVQ's) plugs into the same module: a LaBraM-configured tokenizer with both domains has
    both code groups; an unknown domain is refused."""
    assert LaBraMTokenizer("eeg", domains=("time", "frequency"), **TINY).layout.groups == ("time", "frequency")
    with pytest.raises(ConfigError, match="spectrum"):
        LaBraMTokenizer("eeg", domains=("spectrum",), **TINY)
    with pytest.raises(ConfigError, match=r"unknown labram_vqnsp override\(s\): 'code_dims'; did you mean "
                                          r"'code_dim'\?"):
        LaBraMTokenizer("eeg", code_dims=8)


def test_input_scale_must_fit_the_modality_unit():
    spec = ModalitySpec(name="mvsig", sampling_rate=200.0, patch_length=200, channels=("fp1", "cz"), unit="mV",
                        preprocessing=[{"step": "Resample"}])
    with pytest.raises(ConfigError, match=r"input_scale 0\.01 turns µV into LaBraM's µV/100, but the modality's unit "
                                          r"is mV"):
        LaBraMTokenizer(spec, **TINY)
    assert LaBraMTokenizer(spec, input_scale=10.0, **TINY).contract.input_scale == 10.0


def test_options_build_the_tokenizer_and_are_picked_by_class_path():
    options = coerce_options({"class_path": "neurorvq.families.labram.LaBraMOptions",
                              "init_args": {"code_dim": 32, "parity": True}}, LaBraMOptions(), "tokenizer")
    assert options == LaBraMOptions(code_dim=32, parity=True)
    tok = options.build("eeg", **TINY | {"code_dim": 8})
    assert isinstance(tok, LaBraMTokenizer) and tok.options["parity"] is True


# ------------------------------------------------------------------------------------ protocol
def test_protocol_layout_and_contract():
    tok = tiny()
    assert isinstance(tok, Tokenizer)
    layout = tok.layout
    assert (layout.groups, layout.depths, layout.codebook_sizes) == (("frequency",), (1,), ((32,),))
    assert layout.stream_names == ("frequency_d0",)
    assert [f.name for f in layout.side] == ["amplitude_mean", "amplitude_std", "angle_mean", "angle_std"]
    contract = tok.contract
    assert (contract.unit, contract.input_scale, contract.channel_offset, contract.max_patches) == ("uV", 0.01, 1, 16)
    assert len(contract.channels) == 128 and not contract.case_sensitive
    assert tok.loss_names == ("loss", "quant", "amp", "angle")


def test_tokenize_detokenize_and_id_checks():
    tok = tiny().eval()
    x = eeg()
    encoded = tok.tokenize(x, CHANNELS)
    assert encoded.ids.shape == (2, 1, 16) and (encoded.n_channels, encoded.n_patches) == (4, 4)
    rec = tok.detokenize(encoded, CHANNELS)
    assert rec.shape == x.shape and torch.isfinite(rec).all()
    ids = torch.tensor([0, 41, 82, 88])  # the same channels as vocabulary ids
    assert torch.equal(tok.tokenize(x, ids).ids, encoded.ids)
    encoded.ids[1, 0, 3] = 32
    with pytest.raises(InputError, match=r"ids\[1, 0, 3\] = 32 is outside stream frequency_d0's codebook"):
        tok.detokenize(encoded, CHANNELS)


def test_token_shards_carry_the_layout_and_side_fields(tmp_path):
    from neurorvq.token_files import read_tokens, write_shard

    tok = tiny().eval()
    x = eeg()
    encoded = tok.tokenize(x, CHANNELS)
    ids = tok.channel_ids(CHANNELS)
    write_shard(tmp_path / "s.safetensors", encoded, ids, {"channels": CHANNELS, "family": tok.family})
    shard = read_tokens(tmp_path / "s.safetensors")
    assert shard.layout == tok.layout and torch.equal(shard.ids, encoded.ids)
    assert torch.equal(tok.detokenize(shard.encoded(), CHANNELS), tok.detokenize(encoded, CHANNELS))


def test_bad_signals_are_named():
    tok = tiny().eval()
    with pytest.raises(InputError, match=r"x must be a float tensor \[batch, channels, time\]; got torch.int64"):
        tok.tokenize(torch.zeros(2, 4, 800, dtype=torch.long), CHANNELS)
    with pytest.raises(InputError, match=r"signal length 700 samples is not a whole number \(>= 1\) of 200-sample"):
        tok.tokenize(eeg()[..., :700], CHANNELS)
    assert tiny(crop=True).eval().tokenize(eeg()[..., :700], CHANNELS).n_patches == 3
    with pytest.raises(InputError, match=r"x has 4 channels but 3 channel names/ids were given"):
        tok.tokenize(eeg(), CHANNELS[:3])
    with pytest.raises(InputError, match=r"channel ids span 0..128; valid: 0..127"):
        tok.tokenize(eeg(), torch.tensor([0, 1, 2, 128]))
    nan = eeg()
    nan[1, 2, 5] = float("nan")
    with pytest.raises(InputError, match=r"NaN/Inf at sample 1, channel 2 \('O2'\)"):
        tok.tokenize(nan, CHANNELS)


def test_save_pretrained_and_load_round_trip(tmp_path):
    tok = tiny(code_dim=4).eval()
    folder = tok.save_pretrained(tmp_path / "vqnsp")
    loaded = neurorvq.load(folder).eval()
    assert type(loaded) is LaBraMTokenizer and loaded.config == tok.config and loaded.options == tok.options
    assert loaded.config_hash() == tok.config_hash()
    x = eeg()
    assert torch.equal(loaded.tokenize(x, CHANNELS).ids, tok.tokenize(x, CHANNELS).ids)
    assert LaBraMTokenizer.from_pretrained(folder).config.code_dim == 4
    with pytest.raises(neurorvq.CheckpointError, match=r"vqnsp' is a 'labram_vqnsp' checkpoint, not 'neurorvq'"):
        neurorvq.load(folder, family="neurorvq")


# ------------------------------------------------------------------------------------ targets and signal
def test_targets_match_numpy():
    patches = eeg().reshape(2, 4, 4, 200) / 100
    got = spectrum_targets(patches, var_floor=None)
    spectrum = np.fft.fft(patches.double().numpy(), axis=-1)
    for name, values in (("amplitude", np.abs(spectrum)), ("angle", np.angle(spectrum))):
        if name == "angle":  # real input: DC and Nyquist are 0 or +pi (the module's convention)
            values[..., [0, 100]] = np.where(spectrum.real[..., [0, 100]] < 0, np.pi, 0.0)
        mean = values.mean(axis=(1, 2, 3), keepdims=True)
        std = values.std(axis=(1, 2, 3), ddof=1, keepdims=True)
        expected = torch.from_numpy((values - mean) / std)
        assert (getattr(got, name).double() - expected).abs().max() < 1e-4


def test_true_targets_round_trip_to_the_signal():
    tok = tiny()
    x = eeg(patches=3)
    targets, side = FrequencyDecoder.targets(tok.prepare(x, CHANNELS).patches, parity=False)
    b, c, a, t = targets["amplitude"].shape
    predictions = {k: v.reshape(b, c * a, t) for k, v in targets.items()}
    back = FrequencyDecoder.reconstruct(predictions, side).reshape(b, c, a * t) * 100  # µV/100 -> µV
    assert (back - x).abs().max() <= 1e-5 * x.abs().max()
    flat = eeg(patches=2)
    flat[0] = 0.0  # a flat sample: with the variance floor the inverse gives it back as zeros
    t = spectrum_targets(flat.reshape(2, 4, 2, 200))
    assert torch.equal(signal_from_spectrum_targets(t.amplitude, t.angle, t.stats)[0], torch.zeros(4, 2, 200))


def test_initial_losses_at_full_size():
    torch.manual_seed(0)
    tok = LaBraMTokenizer("eeg").train()
    with torch.no_grad():
        _, outputs = tok(eeg(), CHANNELS)  # first training batch: k-means picks the codes from it
    assert abs(float(outputs["amp"]) - 1.0) < 0.1 and abs(float(outputs["angle"]) - 1.0) < 0.1
    assert float(outputs["quant"]) < 1e-6
    assert outputs["ids"].shape == (2, 1, 16) and outputs["usage"].shape == (1, 1)


# ------------------------------------------------------------------------------------ parity vs default
def test_one_patch_windows():
    x = eeg(patches=1)
    rec, outputs = tiny().eval()(x, CHANNELS)
    assert rec.shape == x.shape and torch.isfinite(outputs["loss"])
    parity = tiny(parity=True).eval()
    assert parity.tokenize(x, CHANNELS).ids.shape == (2, 1, 4)  # the official encoder handles A = 1
    with pytest.raises(InputError, match=r"parity=True reproduces the official decoder, which cannot decode one-patch"):
        parity(x, CHANNELS)


def test_windows_longer_than_the_temporal_table():
    for check in (True, False):
        with pytest.raises(InputError, match=r"17 patches per channel exceed LaBraM's 16-row temporal table: at most "
                                             r"16 patches \(16 s, 3200 samples at 200 Hz\)"):
            tiny().eval().tokenize(eeg(patches=17), CHANNELS, check_inputs=check)


def test_channels_outside_the_vocabulary_are_listed_with_closest_names():
    tok = tiny().eval()
    with pytest.raises(InputError, match=r"not in LaBraM's vocabulary: 'FPX1' \(closest: .*FP1.*\); 'P4-O2' \(LaBraM "
                                         r"id 136 has no row in the 129-row table; .*first electrode: 'P4'\)"):
        tok.tokenize(eeg(channels=3), ["FPX1", "cz", "P4-O2"])
    lower = tok.tokenize(eeg(), ["fp1", "cz", "o2", "ftt9h"]).ids  # case-insensitive
    assert torch.equal(lower, tok.tokenize(eeg(), ["FP1", "CZ", "O2", "FTT9h"]).ids)


def test_flat_sample_nan_in_parity_only():
    x = eeg()
    x[1] = 0.0
    _, default = tiny().eval()(x, CHANNELS, check_inputs=False)
    _, parity = tiny(parity=True).eval()(x, CHANNELS, check_inputs=False)
    assert torch.isfinite(default["loss"]) and torch.isnan(parity["amp"]) and torch.isnan(parity["angle"])


def test_reduced_precision_distances_only_in_parity_under_autocast():
    tok, parity = tiny(codebook_size=256, code_dim=16).eval(), tiny(codebook_size=256, code_dim=16, parity=True).eval()
    tok.quantizer.mark_initialised()  # else parity's eval forward would run the k-means (the official Q13 behaviour)
    parity.load_state_dict(tok.state_dict())
    z = torch.randn(1, 4000, 16, generator=torch.Generator().manual_seed(1))
    exact = tok.quantize(z).indices
    assert torch.equal(parity.quantize(z).indices, exact)  # no autocast: identical
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.equal(tok.quantize(z).indices, exact)  # the default stays in float32
        reduced = parity.quantize(z).indices
    codebook = tok.quantizer.codebooks[:, 0]
    ids, _ = autocast_search(torch.bfloat16)(F.normalize(z, dim=-1), codebook, codebook.square().sum(-1).unsqueeze(1))
    assert torch.equal(reduced[:, 0], ids) and not torch.equal(reduced, exact)


def test_single_level_quantizer_is_the_official_one_bit_for_bit():
    """families.md §B.10 test 3: ResidualVQ(1 branch x 1 level, aux_weight 0) == the official single VQ."""
    gen = torch.Generator().manual_seed(5)
    codebook = F.normalize(torch.randn(64, 8, generator=gen), dim=-1)
    z_in = torch.randn(300, 8, generator=gen)
    rvq = ResidualVQ(1, 1, 64, 8, aux_weight=0.0, beta=1.0).eval()
    rvq.codebooks.copy_(codebook.reshape(1, 1, 64, 8))
    rvq.mark_initialised()
    out = rvq(z_in.unsqueeze(0))
    z = F.normalize(z_in, dim=-1)  # the official: l2norm, |z|^2 + |e|^2 - 2 z.e, argmin, commitment, STE
    distance = z.pow(2).sum(1, keepdim=True) + codebook.pow(2).sum(1) - 2 * z @ codebook.t()
    ids = distance.argmin(1)
    chosen = codebook[ids]
    assert torch.equal(out.indices[0, 0], ids)
    assert torch.equal(out.quantized[0], z + (chosen - z).detach())
    assert torch.equal(out.loss_per_level[0, 0], F.mse_loss(chosen.detach(), z))


# ------------------------------------------------------------------------------------ shared blocks
def test_transformer_options_and_neurorvq_defaults():
    neurorvq_block = Block(20, 2)
    assert neurorvq_block.norm1.eps == 1e-5 and neurorvq_block.attn.q_norm is not None
    labram_block = Block(20, 2, norm_eps=1e-6, qk_norm=False)
    assert labram_block.norm1.eps == 1e-6 and not any("q_norm" in k for k in labram_block.state_dict())
    torch.manual_seed(0)
    row0 = TokenTransformer(8, 0, 2, spatial_rows=5, max_patches=3)
    first = TokenTransformer(8, 0, 2, spatial_rows=5, max_patches=3, cls_position="first_channel")
    for t in (row0, first):
        t.pos_embed.data = torch.arange(40.0).reshape(5, 8)
    x, spatial, temporal = torch.zeros(1, 2, 8), torch.tensor([3, 3]), torch.tensor([0, 1])
    assert torch.equal(row0.embed(x, spatial, temporal)[0, 0], row0.pos_embed[0])
    assert torch.equal(first.embed(x, spatial, temporal)[0, 0], first.pos_embed[3])  # BQ1: the first channel's row
    with pytest.raises(ValueError, match="cls_position is 'last'"):
        TokenTransformer(8, 0, 2, 5, 3, cls_position="last")


# ------------------------------------------------------------------------------------ training
def test_trains_through_the_tokenizer_task(tmp_path):
    from neurorvq.datamodules.synthetic import SyntheticDataModule
    from neurorvq.tasks.tokenizer import TokenizerTask

    L.seed_everything(0)
    data = SyntheticDataModule(modality="eeg", channels=["c3", "cz", "c4"], window_seconds=2.0, train_windows=8,
                               val_windows=4, test_windows=4, batch_size=4, seed=3)
    task = TokenizerTask(tokenizer=LaBraMOptions(**TINY), lr=1e-3)
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=tmp_path, num_sanity_val_steps=0,
                        log_every_n_steps=1, max_epochs=1)
    trainer.fit(task, data)
    assert task.tokenizer.quantizer.initialised
    assert set(trainer.callback_metrics) >= {"train/loss", "train/quant", "train/amp", "train/angle", "val/loss"}
    loaded = neurorvq.load(trainer.checkpoint_callback.best_model_path).eval()
    assert isinstance(loaded, LaBraMTokenizer) and loaded.config == task.tokenizer.config
    x = eeg(channels=3)
    assert torch.equal(loaded.tokenize(x, ["c3", "cz", "c4"]).ids,
                       task.tokenizer.eval().tokenize(x, ["c3", "cz", "c4"]).ids)


def test_a_labram_file_given_to_neurorvq_names_both_families(tmp_path):
    """The reverse direction of the cross-family check: NeuroRVQ's official loader refuses a VQ-NSP state dict
    with one message naming both families and the loader that reads it."""
    import torch

    from neurorvq import NeuroRVQTokenizer
    from neurorvq.errors import CheckpointError
    from neurorvq.models.spectral_vq import LaBraMTokenizer

    path = tmp_path / "vqnsp.pth"
    torch.save(LaBraMTokenizer("eeg", encoder_depth=1, decoder_depth=1, codebook_size=16, code_dim=8).to_official(),
               path)
    with pytest.raises(CheckpointError, match=r"vqnsp\.pth is a 'labram_vqnsp' tokenizer in its official layout, "
                                              r"not a 'neurorvq' one: load it with neurorvq\.load"):
        NeuroRVQTokenizer.from_official(str(path))
