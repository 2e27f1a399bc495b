"""BrainRVQ's hierarchical autoregressive student against the official fixtures (``../shared/fixtures/brainrvq``):
the official pretraining and fine-tuning layouts load through the official-layout loader and reproduce the labels,
the 12 logits tensors under teacher forcing (train mode) and under argmax feedback (eval mode), the student's
features, the per-level CEs, the engine's loss terms and the fine-tuning forward (ids exactly, every other tensor
within the fixture README's bound, 1e-4 x the tensor's scale); teacher forcing; full-size parameter counts and
layouts; the loss at initialisation."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from fixture_checks import check_finetune_forward, fixture_folder, within  # a helper module of this folder
from neurorvq.errors import CheckpointError, ConfigError, InputError
from neurorvq.models.brainrvq_fm import BrainRVQFoundationModel, stream_index

DOMAINS = {"t": "time", "f": "frequency"}
LEVELS = 3
TINY = dict(embed_dim=100, conv_channels=4, num_heads=5, mlp_ratio=1.0, depth=2)


@pytest.fixture(scope="module")
def fixtures() -> Path:
    return fixture_folder("brainrvq", "BrainRVQ", "fm_expected.safetensors")


@pytest.fixture(scope="module")
def data(fixtures):
    inputs = load_file(str(fixtures / "inputs.safetensors"))
    expected = load_file(str(fixtures / "fm_expected.safetensors"))
    channels = json.loads((fixtures / "inputs.json").read_text())["channel_names"]
    mask = inputs["bool_masked_pos"].bool()
    targets = torch.zeros(2, 2 * LEVELS, 20, dtype=torch.long)  # [B, H, L] from the fixture's labels per view
    for g, d in enumerate(DOMAINS):
        for k in range(LEVELS):
            row = targets[:, g * LEVELS + k]
            row[mask] = expected[f"pretrain.labels_{d}_masked"][k]
            row[~mask] = expected[f"pretrain.labels_{d}_symmetric"][k]
    return inputs, expected, channels, mask, targets


@pytest.fixture(scope="module")
def parity_model(fixtures):
    # drop-path 0, as the fixture (teacher forcing needs train mode; stochastic depth would make it random)
    return BrainRVQFoundationModel.from_official(fixtures / "fm_model.safetensors", drop_path=0.0)


@pytest.fixture(scope="module")
def passes(parity_model, data):
    inputs, _, channels, mask, targets = data
    out = {}
    with torch.no_grad():
        for mode in ("tf", "eval"):
            parity_model.train(mode == "tf")
            out[mode] = parity_model.forward_pretrain(inputs["x_uv"], channels, mask, targets)
    parity_model.eval()
    return out


# ------------------------------------------------------------------------------------------------ labels
def test_labels_are_the_tokenizer_ids_at_each_view(fixtures, data):
    """The fixture's labels are the official tokenizer's ids at the masked / other tokens, rows in (batch, token)
    order, so ``targets [B, H, L]`` from the tokenizer protocol (time levels, then frequency levels) carry them."""
    inputs, expected, channels, mask, targets = data
    tokens = load_file(str(fixtures / "tokenizer_expected.safetensors"))
    for g, d in enumerate(DOMAINS):
        official = tokens[f"tokens_{d}"]  # [3, B, L]
        assert torch.equal(official[:, mask], expected[f"pretrain.labels_{d}_masked"])
        assert torch.equal(official[:, ~mask], expected[f"pretrain.labels_{d}_symmetric"])
        assert torch.equal(targets[:, g * LEVELS:(g + 1) * LEVELS].transpose(0, 1), official)


def test_labels_exact_from_our_tokenizer(fixtures, data):
    from neurorvq.families import get_family

    try:
        tokenizer_class = get_family("brainrvq").tokenizer_class()
    except ConfigError as exc:
        pytest.skip(f"the brainrvq tokenizer is not available: {exc}")
    inputs, expected, channels, mask, targets = data
    tokenizer = tokenizer_class.from_official(fixtures / "tokenizer_model.safetensors").eval()
    ids = tokenizer.tokenize(inputs["x_uv"], channels).ids
    assert torch.equal(ids, targets)
    BrainRVQFoundationModel.from_official(fixtures / "fm_model.safetensors").check_targets(tokenizer.layout)


# ------------------------------------------------------------------------------------------------ pretraining
def test_architecture_read_from_the_shapes(parity_model):
    c, o = parity_model.config, parity_model.options
    assert (c.embed_dim, c.conv_channels, c.num_heads, c.mlp_ratio, c.max_patches, c.spatial_rows) == \
        (100, 4, 5, 1.0, 30, 129)
    assert (o["depth"], o["vocab_size"], o["levels"], o["domains"], o["parity"], o["provenance"]) == \
        (2, 64, 3, ("time", "frequency"), True, "official")
    assert parity_model.num_parameters() == 222_900  # the fixture's parameters(), dead tensors included


@pytest.mark.parametrize("mode", ["tf", "eval"])
@pytest.mark.parametrize("domain", list(DOMAINS))
@pytest.mark.parametrize("view", ["masked", "symmetric"])
@pytest.mark.parametrize("level", range(LEVELS))
def test_logits_within_tolerance(passes, data, mode, domain, view, level):
    out = passes[mode]
    logits = out.logits if view == "masked" else out.logits_symmetric
    h = stream_index(("time", "frequency"), LEVELS, DOMAINS[domain], level)
    within(logits[h], data[1][f"pretrain.{mode}.logits_{domain}_{view}.L{level}"])


@pytest.mark.parametrize("key,get", [
    ("pretrain.patch_embed", lambda o: o.patch_embed),
    ("pretrain.features", lambda o: o.features),
    ("pretrain.features_symmetric", lambda o: o.features_symmetric),
])
def test_student_tensors_within_tolerance(passes, data, key, get):
    within(get(passes["tf"]), data[1][key])
    assert torch.equal(get(passes["tf"]), get(passes["eval"]))  # the mode changes the heads' inputs only


def test_level_losses_and_engine_terms_within_tolerance(parity_model, passes, data):
    _, expected, _, mask, targets = data
    terms = parity_model.loss_terms(passes["tf"], targets, mask)
    for d, domain in DOMAINS.items():
        within(terms[f"ce_{domain}_masked"], expected[f"pretrain.tf.ce_{d}_masked"])
        within(terms[f"ce_{domain}_symmetric"], expected[f"pretrain.tf.ce_{d}_symmetric"])
        within(terms[f"loss_{domain}_masked"], expected[f"pretrain.tf.loss_rec_{d}"])
        within(terms[f"loss_{domain}_symmetric"], expected[f"pretrain.tf.loss_rec_sym_{d}"])
    within(parity_model.pretrain_loss(passes["tf"], targets, mask), expected["pretrain.tf.loss"])
    assert parity_model.level_weights == (1.0, 0.5, 0.25)


def test_eval_mode_feeds_the_argmax(parity_model, passes, data):
    """Argmax feedback equals teacher forcing with the lower levels' argmax as labels."""
    inputs, _, channels, mask, _ = data
    out = passes["eval"]
    streams = torch.zeros(2 * LEVELS, 2, 20, dtype=torch.long)  # [H, B, L]
    streams[:, mask] = out.logits.argmax(-1)
    streams[:, ~mask] = out.logits_symmetric.argmax(-1)
    with torch.no_grad():
        forced = parity_model.forward_pretrain(inputs["x_uv"], channels, mask, streams.transpose(0, 1),
                                               teacher_forcing=True)
    assert torch.equal(forced.logits, out.logits) and torch.equal(forced.logits_symmetric, out.logits_symmetric)


def test_teacher_forcing_uses_only_the_lower_levels(parity_model, data):
    """Level k's logits do not change when the codes of levels >= k change; changing level 0's codes changes levels
    1 and 2 only; the domains share no embeddings."""
    inputs, _, channels, mask, targets = data

    def run(t: torch.Tensor):
        with torch.no_grad():
            return parity_model.forward_pretrain(inputs["x_uv"], channels, mask, t, teacher_forcing=True)

    reference = run(targets)
    generator = torch.Generator().manual_seed(0)
    for level in range(LEVELS):
        changed = targets.clone()
        for g in range(2):  # every level >= `level` of both domains gets new codes
            for k in range(level, LEVELS):
                changed[:, g * LEVELS + k] = torch.randint(0, 64, (2, 20), generator=generator)
        out = run(changed)
        for g in range(2):
            for k in range(level + 1):
                h = g * LEVELS + k
                assert torch.equal(out.logits[h], reference.logits[h]), (g, k, level)
                assert torch.equal(out.logits_symmetric[h], reference.logits_symmetric[h]), (g, k, level)
            if level < LEVELS - 1:
                assert not torch.equal(out.logits[g * LEVELS + level + 1], reference.logits[g * LEVELS + level + 1])
    time_only = targets.clone()
    time_only[:, 0] = (time_only[:, 0] + 1) % 64  # time level 0 only
    out = run(time_only)
    assert torch.equal(out.logits[LEVELS:], reference.logits[LEVELS:])  # frequency untouched
    assert not torch.equal(out.logits[1], reference.logits[1]) and not torch.equal(out.logits[2], reference.logits[2])


def test_teacher_forcing_needs_targets(parity_model, data):
    inputs, _, channels, mask, targets = data
    with pytest.raises(InputError, match="teacher forcing needs targets"):
        parity_model.forward_pretrain(inputs["x_uv"], channels, mask, teacher_forcing=True)
    with pytest.raises(InputError, match=r"6 streams \(2 domains x 3 levels\)"):
        parity_model.forward_pretrain(inputs["x_uv"], channels, mask, targets[:, :3], teacher_forcing=True)


def test_default_mode_drops_the_dead_tensors_and_fixes_the_cls_row(fixtures, data, passes):
    inputs, expected, channels, mask, targets = data
    model = BrainRVQFoundationModel.from_official(fixtures / "fm_model.safetensors", parity=False).eval()
    assert not hasattr(model, "dead_lm_head") and len(model.ar["time"].embed) == LEVELS - 1
    assert model.num_parameters() == 222_900 - 64 * 101 - 2 * 64 * 100  # student.lm_head, token_embed_{t,f}.2
    with torch.no_grad():
        out = model.forward_pretrain(inputs["x_uv"], channels, mask)
        model.options["parity"] = True  # the same weights with the official CLS row reproduce the fixture
        official = model.forward_pretrain(inputs["x_uv"], channels, mask)
    within(official.features, expected["pretrain.features"])
    within(official.logits[0], expected["pretrain.eval.logits_t_masked.L0"])
    assert (out.features - official.features).abs().max() > 1e-3  # the fix changes the CLS row's embedding


# ------------------------------------------------------------------------------------------------ fine-tuning
@pytest.fixture(scope="module", params=[True, False], ids=["parity", "default"])
def finetune_model(request, fixtures):
    # as finetuning_main.py: the student's keys, prefix stripped, plus the head; the pretraining parts dropped
    state = {k[len("student."):]: v for k, v in load_file(str(fixtures / "fm_model.safetensors")).items()
             if k.startswith("student.")}
    state.update(load_file(str(fixtures / "finetune_head.safetensors")))
    for key in ("lm_head.weight", "lm_head.bias", "mask_token", "norm.weight", "norm.bias"):  # unexpected keys
        del state[key]
    return BrainRVQFoundationModel.from_official(state, parity=request.param).eval()


def test_finetune_forward_within_tolerance(finetune_model, data):
    inputs, expected, channels, *_ = data
    assert finetune_model.num_classes == 4 and finetune_model.num_parameters() == 138_756
    assert not finetune_model.options["pretraining"] and not hasattr(finetune_model, "ar")
    check_finetune_forward(finetune_model, inputs["x_uv"], channels, expected)


def test_pretraining_layout_loads_into_a_finetuning_model(fixtures, data):
    """The official fine-tuning script's non-strict load: the student's weights, the pretraining parts ignored."""
    inputs, expected, channels, *_ = data
    model = BrainRVQFoundationModel.from_official(fixtures / "fm_model.safetensors", pretraining=False)
    assert not hasattr(model, "ar") and not hasattr(model, "mask_token") and not hasattr(model, "dead_lm_head")
    model.reset_classifier(4)
    head = load_file(str(fixtures / "finetune_head.safetensors"))
    model.fc_norm.load_state_dict({k[len("fc_norm."):]: v for k, v in head.items() if k.startswith("fc_norm.")})
    model.head.load_state_dict({k[len("head."):]: v for k, v in head.items() if k.startswith("head.")})
    with torch.no_grad():
        within(model.eval()(inputs["x_uv"], channels), expected["finetune.logits"])


# ------------------------------------------------------------------------------------------------ layouts
def test_layouts_round_trip(fixtures, finetune_model):
    state = load_file(str(fixtures / "fm_model.safetensors"))
    exported = BrainRVQFoundationModel.from_official(state).to_official()
    assert exported.keys() == state.keys() and all(torch.equal(exported[k], state[k]) for k in state)
    default = BrainRVQFoundationModel.from_official(state, parity=False)
    dead = {"student.lm_head.weight", "student.lm_head.bias", "token_embed_t.2.weight", "token_embed_f.2.weight"}
    assert default.to_official().keys() == state.keys() - dead
    official = finetune_model.to_official()
    head = load_file(str(fixtures / "finetune_head.safetensors"))
    assert all(torch.equal(official[k], v) for k, v in head.items())
    assert not any(k.startswith(("student.", "token_embed", "lm_heads", "mask_token", "norm.")) for k in official)


def test_mismatching_checkpoints_fail_loudly(fixtures):
    state = load_file(str(fixtures / "fm_model.safetensors"))
    with pytest.raises(CheckpointError, match="unexpected_thing"):
        BrainRVQFoundationModel.from_official({**state, "unexpected_thing": torch.zeros(1)})
    with pytest.raises(CheckpointError, match="shape"):
        BrainRVQFoundationModel.from_official(state, vocab_size=32)
    with pytest.raises(CheckpointError, match="q_bias"):  # fine-tuned with the script's q/v bias (BQ8)
        BrainRVQFoundationModel.from_official({**state, "student.blocks.0.attn.q_bias": torch.zeros(100)})


def _meta_model(listing: dict, **overrides) -> BrainRVQFoundationModel:
    state = {k: torch.zeros(v["shape"], device="meta") for k, v in listing["keys"].items()}
    with torch.device("meta"):  # shapes only: no memory, no initialisation cost
        return BrainRVQFoundationModel.from_official(state, **overrides)


def test_full_size_parameter_counts(fixtures):
    models = json.loads((fixtures / "official_full_config_state_dicts.json").read_text())["models"]
    assert models["fm"]["parameters"] == 27_181_080 and models["finetune"]["parameters"] == 5_823_540
    parity = _meta_model(models["fm"])
    assert parity.options["parity"] and parity.num_parameters() == 27_181_080
    assert parity.state_dict().keys() == _meta_model(models["fm"], parity=True).state_dict().keys()
    assert _meta_model(models["fm"], parity=False).num_parameters() == 22_257_688  # without the dead tensors
    finetune = _meta_model(models["finetune"])
    assert finetune.num_classes == 4 and finetune.num_parameters() == 5_823_540
    with torch.device("meta"):  # the official size by default
        assert BrainRVQFoundationModel("eeg", parity=True).num_parameters() == 27_181_080
        assert BrainRVQFoundationModel("eeg").num_parameters() == 22_257_688
        built = BrainRVQFoundationModel("eeg", pretraining=False, num_classes=4)
    assert built.num_parameters() == 5_823_540 and built.state_dict().keys() == finetune.state_dict().keys()


# ------------------------------------------------------------------------------------------------ loss at init
def test_initial_loss_is_seven_ln_v():
    """12 weighted CEs near ln V each: 2 domains x 2 views x (1 + 0.5 + 0.25) = 7 x ln V (about 63 for V = 8192)."""
    torch.manual_seed(0)
    model = BrainRVQFoundationModel("eeg", **{**TINY, "depth": 1}, vocab_size=8192).train()
    x = torch.randn(4, 8, 800) * 30.0
    channels = ["fp1", "fp2", "c3", "c4", "p3", "p4", "o1", "o2"]
    mask = torch.rand(4, 32, generator=torch.Generator().manual_seed(0)) < 0.45
    targets = torch.randint(0, 8192, (4, 6, 32))
    with torch.no_grad():
        out = model.forward_pretrain(x, channels, mask, targets)
        terms = model.loss_terms(out, targets, mask)
        loss = model.pretrain_loss(out, targets, mask)
    assert out.logits.shape == (6, int(mask.sum()), 8192) and out.logits_symmetric.shape == (6, int((~mask).sum()), 8192)
    for name, ce in terms.items():
        if name.startswith("ce_"):
            assert (ce - math.log(8192)).abs().max() < 0.3, name
    assert abs(loss.item() - 7 * math.log(8192)) < 1.5  # ~63.1


# ------------------------------------------------------------------------------------------------ options
def test_bad_options_are_named():
    with pytest.raises(ConfigError, match="'levles'.*did you mean 'levels'"):
        BrainRVQFoundationModel("eeg", levles=2)
    with pytest.raises(ConfigError, match="level_weights"):
        BrainRVQFoundationModel("eeg", **TINY, vocab_size=16, level_weights=(1.0, 0.5))
    with pytest.raises(ConfigError, match="masking"):
        BrainRVQFoundationModel("eeg", **TINY, vocab_size=16, masking="importance_guided")
    model = BrainRVQFoundationModel("eeg", **TINY, vocab_size=16, levels=2, domains=("frequency",))
    assert model.level_weights == (1.0, 0.5) and model.target_layout.stream_names == ("frequency_d0", "frequency_d1")
    from neurorvq.tokenizers import TokenLayout

    with pytest.raises(ConfigError, match=r"groups \['time', 'frequency'\] of depths \[3, 3\]"):
        model.check_targets(TokenLayout.uniform(["time", "frequency"], 3, 16))


def test_the_mask_hook_replays_the_official_mask(parity_model, data, fixtures):
    """The FM's mask hook (what PretrainTask calls per batch) on the fixture's µV input, at the fixture's epoch 6 of
    20 and the official seed, gives the official importance-guided mask the fixture's forward used."""
    inputs, _, channels, mask, _ = data
    config = json.loads((fixtures / "config.json").read_text())["set_config"]
    got = parity_model.pretrain_mask(inputs["x_uv"], channels, ratio=0.5,
                                     generator=torch.Generator().manual_seed(config["mask_seed"]),
                                     epoch=config["epoch"], epochs=config["epochs"])
    assert torch.equal(got, mask)


def test_neurorvq_load_reads_both_student_layouts_as_brainrvq(fixtures, tmp_path, finetune_model):
    """The pretraining layout is recognised as BrainRVQ's by its keys; the fine-tuning layout has LaBraM's keys, so
    it is detected as LaBraM's and loads as BrainRVQ when the caller asks for that family."""
    import neurorvq
    from neurorvq.file_io import write_safetensors

    pretrained = neurorvq.load(str(fixtures / "fm_model.safetensors"))
    assert type(pretrained).__name__ == "BrainRVQFoundationModel"
    path = tmp_path / "finetuned.safetensors"
    write_safetensors(path, finetune_model.to_official())
    assert type(neurorvq.load(str(path))).__name__ == "LaBraMFoundationModel"
    assert type(neurorvq.load(str(path), family="brainrvq")).__name__ == "BrainRVQFoundationModel"
