"""LaBraM's masked-code student against the official fixtures (``../shared/fixtures/labram_vqnsp``): the official
pretraining and fine-tuning layouts load through the official-layout loader and reproduce the official mask, labels,
views, logits, CE losses and fine-tuning forward (ids and masks exactly, every other tensor within the fixture
README's bound, 1e-4 x the tensor's scale); full-size parameter counts and key layouts; masking counts; the loss at
initialisation."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

import neurorvq
from fixture_checks import check_finetune_forward, fixture_folder, within  # a helper module of this folder
from neurorvq.errors import CheckpointError, ConfigError
from neurorvq.models.fm import masked_token_loss
from neurorvq.models.labram_fm import LaBraMFoundationModel
from neurorvq.models.spectral_vq import LaBraMTokenizer
from neurorvq.tasks.masking import keep_floor_mask, masked_count, token_mask

MASK_SEED = 71  # the fixture README's mask_seed


@pytest.fixture(scope="module")
def fixtures() -> Path:
    return fixture_folder("labram_vqnsp", "LaBraM")


@pytest.fixture(scope="module")
def data(fixtures):
    inputs = load_file(str(fixtures / "inputs.safetensors"))
    expected = load_file(str(fixtures / "fm_expected.safetensors"))
    channels = json.loads((fixtures / "inputs.json").read_text())["channel_names"]
    return inputs, expected, channels


@pytest.fixture(scope="module")
def parity_pass(fixtures, data):
    inputs, expected, channels = data
    model = LaBraMFoundationModel.from_official(fixtures / "fm_model.safetensors").eval()
    mask = keep_floor_mask(expected["mask.noise"], 0.5)
    with torch.no_grad():
        out = model.forward_pretrain(inputs["x_uv"], channels, mask)
    return model, out, mask


# ------------------------------------------------------------------------------------------------ masking
def test_mask_from_the_recorded_draws_and_from_the_seed(data):
    inputs, expected, _ = data
    mask = keep_floor_mask(expected["mask.noise"], 0.5)
    assert torch.equal(mask, inputs["bool_masked_pos"].bool())
    assert torch.equal(mask, expected["mask.regenerated"])
    torch.manual_seed(MASK_SEED)  # the official draw, torch.rand(B, L) on CPU after the seed
    assert torch.equal(torch.rand(2, 16), expected["mask.noise"])


@pytest.mark.parametrize("length", [15, 16, 64, 257])
def test_masked_count(length):
    mask = token_mask(6, length, 0.5, "keep_floor", torch.Generator().manual_seed(length))
    expected = length - math.floor(0.5 * length)  # 8 of 15: one more than NeuroRVQ's round(0.5 L) = 7 (or 8)
    assert masked_count(length, 0.5, "keep_floor") == expected
    assert mask.sum(dim=1).tolist() == [expected] * 6
    assert not all(torch.equal(mask[0], m) for m in mask[1:])  # positions differ between samples
    assert torch.equal(mask, token_mask(6, length, 0.5, "keep_floor", torch.Generator().manual_seed(length)))


def test_keep_floor_refuses_a_view_without_tokens():
    with pytest.raises(ValueError, match="keeps 0 of 1"):
        keep_floor_mask(torch.rand(1, 1), 0.5)


# ------------------------------------------------------------------------------------------------ pretraining
def test_architecture_read_from_the_shapes(parity_pass):
    model, *_ = parity_pass
    c, o = model.config, model.options
    assert (c.embed_dim, c.conv_channels, c.num_heads, c.mlp_ratio, c.max_patches, c.spatial_rows) == \
        (100, 4, 5, 2.0, 16, 129)
    assert (o["depth"], o["vocab_size"], o["pretraining"], o["parity"], o["provenance"]) == \
        (2, 256, True, True, "official")
    assert model.num_parameters() == 239_064  # the fixture's parameters(), dead tensors included


def test_labels_exact(fixtures, data, parity_pass):
    inputs, expected, channels = data
    _, _, mask = parity_pass
    tokenizer = LaBraMTokenizer.from_official(fixtures / "tokenizer_model.safetensors").eval()
    ids = tokenizer.tokenize(inputs["x_uv"], channels).ids  # [B, 1, L]
    flat = ids.transpose(0, 1)
    assert torch.equal(flat[0][mask], expected["pretrain.labels"])
    assert torch.equal(flat[0][~mask], expected["pretrain.labels_symmetric"])


@pytest.mark.parametrize("key,get", [
    ("pretrain.patch_embed", lambda o: o.patch_embed),
    ("pretrain.features", lambda o: o.features),
    ("pretrain.features_symmetric", lambda o: o.features_symmetric),
    ("pretrain.logits", lambda o: o.logits[0]),
    ("pretrain.logits_symmetric", lambda o: o.logits_symmetric[0]),
])
def test_pretraining_tensors_within_tolerance(parity_pass, data, key, get):
    _, out, _ = parity_pass
    within(get(out), data[1][key])


def test_losses_within_tolerance(parity_pass, data):
    _, out, mask = parity_pass
    expected = data[1]
    rec = F.cross_entropy(out.logits[0], expected["pretrain.labels"])
    rec_sym = F.cross_entropy(out.logits_symmetric[0], expected["pretrain.labels_symmetric"])
    within(rec, expected["pretrain.loss_rec"])
    within(rec_sym, expected["pretrain.loss_rec_symmetric"])
    targets = torch.zeros(2, 1, 16, dtype=torch.long)  # the task's loss: [B, H, L] ids, one stream
    targets[:, 0][mask], targets[:, 0][~mask] = expected["pretrain.labels"], expected["pretrain.labels_symmetric"]
    within(masked_token_loss(out, targets, mask), expected["pretrain.loss"])


def test_default_mode_differs_only_in_the_cls_row(fixtures, data, parity_pass):
    inputs, expected, channels = data
    model = LaBraMFoundationModel.from_official(fixtures / "fm_model.safetensors", parity=False).eval()
    assert not hasattr(model, "dead_lm_head") and model.num_parameters() == 239_064 - 256 * 101 - 100 * 101
    _, _, mask = parity_pass
    with torch.no_grad():
        out = model.forward_pretrain(inputs["x_uv"], channels, mask)
        model.options["parity"] = True  # the same weights with the official CLS row reproduce the fixture
        official = model.forward_pretrain(inputs["x_uv"], channels, mask)
    within(official.features, expected["pretrain.features"])
    assert (out.features - official.features).abs().max() > 1e-3  # the fix changes the CLS row's embedding


# ------------------------------------------------------------------------------------------------ fine-tuning
@pytest.fixture(scope="module", params=[True, False], ids=["parity", "default"])
def finetune_model(request, fixtures):
    state = {**load_file(str(fixtures / "fm_model.safetensors")),
             **load_file(str(fixtures / "finetune_head.safetensors"))}
    # as run_class_finetuning.py: the student's keys, the head; mask token, final norm and heads dropped
    return LaBraMFoundationModel.from_official(state, pretraining=False, parity=request.param).eval()


def test_finetune_forward_within_tolerance(finetune_model, data):
    inputs, expected, channels = data
    assert finetune_model.num_classes == 4 and finetune_model.num_parameters() == 177_556
    check_finetune_forward(finetune_model, inputs["x_uv"], channels, expected)


def test_finetune_layout_round_trip(finetune_model, fixtures):
    official = finetune_model.to_official()
    head = load_file(str(fixtures / "finetune_head.safetensors"))
    assert all(torch.equal(official[k], v) for k, v in head.items())
    assert not any(k.startswith(("student.", "lm_head", "mask_token", "norm.")) for k in official)
    again = LaBraMFoundationModel.from_official(official)
    assert not again.options["pretraining"] and again.num_classes == 4


# ------------------------------------------------------------------------------------------------ layouts
def test_pretraining_layout_round_trip_and_dead_tensors(fixtures):
    state = load_file(str(fixtures / "fm_model.safetensors"))
    parity = LaBraMFoundationModel.from_official(state)
    exported = parity.to_official()
    assert exported.keys() == state.keys() and all(torch.equal(exported[k], state[k]) for k in state)
    default = LaBraMFoundationModel.from_official(state, parity=False)
    dead = {"student.lm_head.weight", "student.lm_head.bias", "projection_head.0.weight", "projection_head.0.bias"}
    assert default.to_official().keys() == state.keys() - dead


def test_neurorvq_load_recognises_both_layouts(fixtures):
    state = load_file(str(fixtures / "fm_model.safetensors"))
    model = neurorvq.load(state, kind="foundation_model")
    assert isinstance(model, LaBraMFoundationModel) and model.options["pretraining"]
    finetune = {k[len("student."):]: v for k, v in state.items() if k.startswith("student.") and "lm_head" not in k
                and k not in ("student.mask_token", "student.norm.weight", "student.norm.bias")}
    finetune.update(load_file(str(fixtures / "finetune_head.safetensors")))
    model = neurorvq.load(finetune, family="labram_vqnsp")
    assert isinstance(model, LaBraMFoundationModel) and model.num_classes == 4


def test_mismatching_checkpoints_fail_loudly(fixtures):
    state = load_file(str(fixtures / "fm_model.safetensors"))
    with pytest.raises(CheckpointError, match="unexpected_thing"):
        LaBraMFoundationModel.from_official({**state, "unexpected_thing": torch.zeros(1)})
    with pytest.raises(CheckpointError, match="shape"):
        LaBraMFoundationModel.from_official(state, vocab_size=32)
    qv_bias = {**state, "student.blocks.0.attn.q_bias": torch.zeros(100)}  # fine-tuned with the script's q/v bias
    with pytest.raises(CheckpointError, match="q_bias"):
        LaBraMFoundationModel.from_official(qv_bias)


@pytest.mark.parametrize("variant,classes", [("fm", 0), ("finetune", 6)])
def test_full_size_counts_and_layouts(fixtures, variant, classes):
    listing = json.loads((fixtures / "official_full_config_state_dicts.json").read_text())["models"][variant]
    state = {k: torch.zeros(v["shape"], device="meta") for k, v in listing["keys"].items()}
    with torch.device("meta"):  # shapes only: no memory, no initialisation cost
        model = LaBraMFoundationModel.from_official(state)
    assert model.num_parameters() == listing["parameters"]
    assert model.num_classes == classes and model.options["pretraining"] is (variant == "fm")
    if variant == "fm":  # 9,153,520 = student 7,466,728 + outer head 1,646,592 + dead projection head 40,200
        assert listing["parameters"] == 9_153_520
        student = model.num_parameters() - sum(p.numel() for p in (*model.lm_head.parameters(),
                                                                   *model.dead_projection.parameters()))
        assert student == 7_466_728 and model.num_parameters() - student - 1_646_592 == 40_200
        backbone = sum(p.numel() for n, p in model.named_parameters() if n.startswith(("conv.", "backbone.")))
        assert backbone == 5_819_536
    else:
        assert listing["parameters"] == 5_821_142
        with torch.device("meta"):
            built = LaBraMFoundationModel("eeg", pretraining=False, num_classes=6)  # the official size by default
        assert built.num_parameters() == 5_821_142 and built.state_dict().keys() == model.state_dict().keys()


def test_official_size_by_default():
    with torch.device("meta"):
        parity, default = LaBraMFoundationModel("eeg", parity=True), LaBraMFoundationModel("eeg")
    assert parity.num_parameters() == 9_153_520
    assert default.num_parameters() == 9_153_520 - 1_646_592 - 40_200  # the dead tensors dropped


# ------------------------------------------------------------------------------------------------ loss at init
def test_initial_loss_is_two_ln_k():
    torch.manual_seed(0)
    model = LaBraMFoundationModel("eeg", depth=1, vocab_size=8192, embed_dim=100, conv_channels=4, num_heads=5).eval()
    x = torch.randn(4, 8, 800) * 30.0
    channels = ["fp1", "fp2", "c3", "c4", "p3", "p4", "o1", "o2"]
    mask = token_mask(4, 32, 0.5, "keep_floor", torch.Generator().manual_seed(0))
    targets = torch.randint(0, 8192, (4, 1, 32))
    with torch.no_grad():
        out = model.forward_pretrain(x, channels, mask)
        loss = masked_token_loss(out, targets, mask)
    # the two views predict 4 x 16 and 4 x 16 tokens: every token exactly once per step
    assert out.logits.shape == (1, 4 * 16, 8192) and out.logits_symmetric.shape == (1, 4 * 16, 8192)
    assert abs(loss.item() - 2 * math.log(8192)) < 0.5  # ~18.0: two CEs near ln K each


def test_complement_view_predicts_every_other_token(data, parity_pass):
    inputs, _, channels = data
    model, out, mask = parity_pass
    tokens = torch.arange(32).reshape(2, 16)  # stand-in ids: which token each logit row belongs to
    rows = torch.cat((tokens[mask], tokens[~mask]))
    assert out.logits.shape[1] + out.logits_symmetric.shape[1] == 32 and sorted(rows.tolist()) == list(range(32))
    with torch.no_grad():  # the complement view's logits are the masked view's with the mask inverted
        swapped = model.forward_pretrain(inputs["x_uv"], channels, ~mask)
    within(swapped.logits, out.logits_symmetric)


def test_unknown_override_is_named():
    with pytest.raises(ConfigError, match="'dept'.*did you mean 'depth'"):
        LaBraMFoundationModel("eeg", dept=2)


# ------------------------------------------------------------------------------------------------ drop-path
def test_drop_path_is_off_by_default_and_only_acts_in_training():
    from neurorvq.nn.transformer import TokenTransformer

    assert all(b.drop_path == 0.0 for b in TokenTransformer(20, 3, 2, 5, 4).blocks)  # NeuroRVQ's default: off
    torch.manual_seed(0)
    backbone = TokenTransformer(20, 3, 2, 5, 4, init_values=0.1, drop_path=0.2)
    assert [b.drop_path for b in backbone.blocks] == pytest.approx([0.0, 0.1, 0.2])  # linearly spaced, as LaBraM
    x = torch.randn(64, 6, 20)
    block = backbone.blocks[2]
    block.eval()
    reference = block(x)
    block.drop_path = 0.0
    assert torch.equal(block.train()(x), reference)  # rate 0 in training: the plain block
    block.drop_path = 0.5
    out = block.train()(x)
    with torch.no_grad():  # a sample whose both branches were dropped comes out unchanged
        unchanged = (out - x).flatten(1).abs().amax(1) == 0
    assert 0 < int(unchanged.sum()) < 64
    with pytest.raises(ValueError, match="drop_path"):
        backbone.set_drop_path(1.0)
