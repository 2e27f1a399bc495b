"""The tokenizer protocol: token layouts, encoded batches, signal contracts, and NeuroRVQ satisfying them."""

import pytest
import torch

from neurorvq import ConfigError, InputError, NeuroRVQFoundationModel, NeuroRVQTokenizer
from neurorvq.tokenizers import Encoded, FoundationModel, SideField, SignalContract, TokenLayout, Tokenizer

SMALL = dict(encoder_depth=1, decoder_depth=1, n_quantizers=3, codebook_size=64, code_dim=8)
NAMES = ["fp1", "cz", "o2"]


@pytest.fixture(scope="module")
def tokenizer() -> NeuroRVQTokenizer:
    torch.manual_seed(0)
    return NeuroRVQTokenizer("eeg", **SMALL).eval()


def signal(batch: int = 2, patches: int = 2) -> torch.Tensor:
    return 30.0 * torch.randn(batch, len(NAMES), patches * 200, generator=torch.Generator().manual_seed(1))


# ------------------------------------------------------------------------------------ layout
def test_uniform_layout_streams_are_group_major():
    layout = TokenLayout.uniform(["b0", "b1"], 3, 16)
    assert layout.num_streams == 6 and layout.is_uniform and layout.max_codebook_size == 16
    assert layout.stream_names == ("b0_d0", "b0_d1", "b0_d2", "b1_d0", "b1_d1", "b1_d2")
    assert layout.tokens_per_window(n_channels=3, n_patches=4) == 12
    ids = torch.arange(2 * 6 * 5).reshape(2, 6, 5)
    grouped = layout.grouped(ids)
    assert grouped.shape == (2, 2, 3, 5) and torch.equal(grouped[:, 1, 2], ids[:, 5])
    assert torch.equal(layout.flat(grouped), ids)
    assert TokenLayout.uniform(2, 1, 8).groups == ("g0", "g1")


def test_layout_round_trips_through_a_dict():
    layout = TokenLayout(("t", "f"), (2, 1), ((8, 4), (2,)), side=(SideField("scale", (3,), doc="why"),))
    again = TokenLayout.from_dict(layout.to_dict())
    assert again == layout and again.side[0].shape == (3,)
    assert not layout.is_uniform
    with pytest.raises(ConfigError, match="do not reshape"):
        layout.grouped(torch.zeros(1, 3, 2, dtype=torch.long))
    with pytest.raises(ConfigError, match=r"unknown TokenLayout field\(s\) \['group'\]"):
        TokenLayout.from_dict({"group": ["a"], "depths": [1], "codebook_sizes": [[2]]})


@pytest.mark.parametrize("kwargs, message", [
    (dict(groups=(), depths=(), codebook_sizes=()), "one or more distinct group names"),
    (dict(groups=("a", "a"), depths=(1, 1), codebook_sizes=((2,), (2,))), "distinct"),
    (dict(groups=("a",), depths=(1, 2), codebook_sizes=((2,),)), "1 groups but 2 depths"),
    (dict(groups=("a",), depths=(2,), codebook_sizes=((2,),)), "group 'a': depth 2 with codebook sizes \\[2\\]"),
    (dict(groups=("a",), depths=(1,), codebook_sizes=((2,),), order="patch-major"), "only 'channel-major'"),
])
def test_bad_layouts_are_refused(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        TokenLayout(**kwargs)


def test_check_ids_names_the_first_bad_position_and_its_stream():
    layout = TokenLayout(("t", "f"), (2, 1), ((8, 4), (2,)))
    ids = torch.zeros(2, 3, 5, dtype=torch.long)
    layout.check_ids(ids)
    ids[1, 2, 3] = 2  # f_d0 has 2 codes
    with pytest.raises(InputError, match=r"ids\[1, 2, 3\] = 2 is outside stream f_d0's codebook \(valid ids 0..1\)"):
        layout.check_ids(ids)
    with pytest.raises(InputError, match=r"expected \[batch, 3 streams \(t_d0 t_d1 f_d0\), tokens\]"):
        layout.check_ids(torch.zeros(2, 2, 5, dtype=torch.long))
    with pytest.raises(InputError, match="integer tensor"):
        layout.check_ids(torch.zeros(2, 3, 5))


# ------------------------------------------------------------------------------------ encoded
def test_encoded_checks_its_side_fields_and_concatenates():
    layout = TokenLayout.uniform(["a"], 1, 4, side=(SideField("mean"),))
    part = Encoded(torch.zeros(2, 1, 6, dtype=torch.long), {"mean": torch.ones(2)}, layout, 3, 2)
    both = Encoded.cat([part, part[1]])
    assert len(both) == 3 and both.side["mean"].shape == (3,) and both.grouped().shape == (3, 1, 1, 6)
    with pytest.raises(InputError, match=r"side information has \[\]; this layout needs \['mean'\]"):
        Encoded(torch.zeros(2, 1, 6, dtype=torch.long), {}, layout, 3, 2)
    with pytest.raises(InputError, match="3 channels x 3 patches"):
        Encoded(torch.zeros(2, 1, 6, dtype=torch.long), {"mean": torch.ones(2)}, layout, 3, 3)
    other = Encoded(torch.zeros(1, 1, 4, dtype=torch.long), {"mean": torch.ones(1)}, layout, 2, 2)
    with pytest.raises(InputError, match="differ in layout or window shape"):
        Encoded.cat([part, other])


# ------------------------------------------------------------------------------------ NeuroRVQ
def test_neurorvq_tokenizer_satisfies_the_protocol(tokenizer):
    assert isinstance(tokenizer, Tokenizer) and tokenizer.family == "neurorvq"
    layout = tokenizer.layout
    assert layout.groups == ("b0", "b1", "b2", "b3") and layout.depths == (3,) * 4
    assert layout.max_codebook_size == 64 and [s.name for s in layout.side] == ["amplitude_mean", "amplitude_std"]
    contract = tokenizer.contract
    assert contract == SignalContract("eeg", 200.0, "uV", 200, 256, tokenizer.spec.channels, False, 0, 1.0)
    assert tokenizer.loss_names[0] == "loss"


def test_tokenize_is_encode_with_flat_streams_and_detokenize_is_decode(tokenizer):
    x = signal()
    encoded = tokenizer.tokenize(x, NAMES)
    tokens, stats = tokenizer.encode(x, NAMES, return_amplitude_stats=True)
    assert encoded.ids.shape == (2, 12, 6) and (encoded.n_channels, encoded.n_patches) == (3, 2)
    assert torch.equal(encoded.grouped(), tokens)
    assert torch.equal(encoded.side["amplitude_mean"], stats.mean)
    tokenizer.layout.check_ids(encoded.ids)
    assert torch.equal(tokenizer.detokenize(encoded, NAMES), tokenizer.decode(tokens, NAMES, stats))
    _, outputs = tokenizer(x, NAMES)
    assert torch.equal(outputs["ids"], encoded.ids)


def test_detokenize_refuses_ids_of_another_layout(tokenizer):
    other = NeuroRVQTokenizer("eeg", **{**SMALL, "codebook_size": 32}).eval()
    encoded = other.tokenize(signal(), NAMES)
    with pytest.raises(InputError, match=r"codebooks up to 32.*codebooks of 64"):
        tokenizer.detokenize(encoded, NAMES)


def test_foundation_model_heads_follow_the_tokenizer_layout(tokenizer):
    fm = NeuroRVQFoundationModel("eeg", depth=1, n_quantizers=3, vocab_size=64)
    assert isinstance(fm, FoundationModel) and fm.feature_dim == 4 * 200
    assert fm.target_layout == TokenLayout.uniform(["b0", "b1", "b2", "b3"], 3, 64)
    fm.check_targets(tokenizer.layout)  # the side fields are the tokenizer's business
    with pytest.raises(ConfigError, match=r"1 code groups \['t'\] of depths \[3\].*4 branches x 3 levels x 64"):
        fm.check_targets(TokenLayout.uniform(["t"], 3, 64))
    no_heads = NeuroRVQFoundationModel("eeg", depth=1, pretraining=False)
    assert no_heads.target_layout is None
    with pytest.raises(ConfigError, match="without pretraining heads"):
        no_heads.check_targets(tokenizer.layout)
