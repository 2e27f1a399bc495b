"""The toy family: registered by name, satisfies the tokenizer protocol, reads a modality's default, refuses bad
input; the family registry's errors."""

import pytest
import torch

from neurorvq import ConfigError, InputError, ModalitySpec
from neurorvq.families import Family, get_family, list_families, register_family
from neurorvq.families.toy import ToyVQConfig, ToyVQTokenizer
from neurorvq.tokenizers import Tokenizer

CHANNELS = ["fp1", "cz", "o2"]


def signal(batch: int = 4, patches: int = 2) -> torch.Tensor:
    return 25.0 * torch.randn(batch, len(CHANNELS), patches * 200, generator=torch.Generator().manual_seed(0))


def test_the_toy_satisfies_the_protocol_and_round_trips():
    torch.manual_seed(0)
    tok = get_family("toy_vq").tokenizer_class()("eeg", codebook_size=16)
    assert isinstance(tok, ToyVQTokenizer) and isinstance(tok, Tokenizer)
    x = signal()
    tok.train()
    _, outputs = tok(x, CHANNELS)  # k-means initialisation
    assert outputs["ids"].shape == (4, 1, 6) and outputs["usage"].shape == (1,)
    tok.eval()
    encoded = tok.tokenize(x, CHANNELS)
    tok.layout.check_ids(encoded.ids)
    assert (encoded.n_channels, encoded.n_patches) == (3, 2)
    assert torch.allclose(encoded.side["mean"], x.mean(dim=(1, 2)))
    restored = tok.detokenize(encoded, CHANNELS)
    assert restored.shape == x.shape and torch.isfinite(restored).all()
    assert tok.contract.patch_length == 200 and tok.contract.max_patches == 64


def test_a_modality_default_and_overrides_set_the_architecture(tmp_path):
    spec = ModalitySpec(name="toytest", sampling_rate=100.0, patch_length=50, channels=("a", "b"),
                        preprocessing=[{"step": "Resample"}], families={"toy_vq": {"hidden": 8, "codebook_size": 4}})
    assert spec.config("toy_vq") == ToyVQConfig(hidden=8, codebook_size=4)
    tok = ToyVQTokenizer(spec, code_dim=4)
    assert (tok.config.hidden, tok.config.code_dim, tok.config.codebook_size) == (8, 4, 4)
    assert tok.layout.max_codebook_size == 4
    again = ToyVQTokenizer.from_config(tok.to_config())
    assert again.config == tok.config and again.config_hash() == tok.config_hash()
    with pytest.raises(ConfigError, match=r"unknown toy_vq override\(s\) \['hiden'\]"):
        ToyVQTokenizer(spec, hiden=4)
    with pytest.raises(ConfigError, match="family 'toy_vq': hidden is 0"):
        ToyVQTokenizer(spec, hidden=0)


def test_bad_input_is_named():
    tok = ToyVQTokenizer("eeg").eval()
    with pytest.raises(InputError, match="not 1..64 whole patches of 200 samples"):
        tok.tokenize(signal()[..., :300], CHANNELS)
    with pytest.raises(InputError, match="closest"):
        tok.tokenize(signal(), ["fp1", "cz", "o3x"])
    encoded = tok.tokenize(signal(), CHANNELS)
    encoded.ids[0, 0, 0] = 64
    with pytest.raises(InputError, match=r"outside stream patch_d0's codebook \(valid ids 0..63\)"):
        tok.detokenize(encoded, CHANNELS)


def test_the_registry_lists_refuses_and_keeps_names():
    assert {"neurorvq", "toy_vq"} <= set(list_families())
    with pytest.raises(ConfigError, match=r"unknown tokenizer family 'toy_qv'; known: \[.*'neurorvq', 'toy_vq'\]; "
                                          r"did you mean 'toy_vq'\?"):
        get_family("toy_qv")
    with pytest.raises(ConfigError, match="'toy_vq' is already registered"):
        register_family(Family("toy_vq", ToyVQConfig))
    with pytest.raises(ConfigError, match="lower-case"):
        register_family(Family("Toy", ToyVQConfig))
    with pytest.raises(ConfigError, match="has no foundation model"):
        get_family("toy_vq").foundation_model_class()
