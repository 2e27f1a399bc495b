"""BrainRVQ's importance-guided curriculum masking (families.md §A.5, §A.11 #7-9): the official fixtures
(``../shared/fixtures/brainrvq/masking_expected.safetensors``: features and score within the README's bound, every
mask stage exactly, replayed from a CPU generator seeded as the official ``torch.manual_seed``), the statistics of
the sampler, the curriculum, the per-channel run limit and the bad inputs."""

from __future__ import annotations

import json
import math
import os
import warnings
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from neurorvq.errors import ConfigError, InputError
from neurorvq.tasks.importance import (FEATURE_WEIGHTS, ImportanceMaskSettings, PatchFeatures, curriculum_weight,
                                       guided_mask, importance_mask, importance_mask_draw, importance_score,
                                       limit_runs, patch_features, random_mask)

SHARED = Path(os.environ.get("NEURORVQ_SHARED", Path(__file__).resolve().parents[2].parent / "shared"))
FIXTURES = SHARED / "fixtures" / "brainrvq"
PATCH = 200


@pytest.fixture(scope="module")
def fixture_data() -> tuple[dict, dict, dict]:
    if not (FIXTURES / "masking_expected.safetensors").exists():
        pytest.skip(f"BrainRVQ fixtures not found at {FIXTURES} (set NEURORVQ_SHARED to the folder holding fixtures/)")
    config = json.loads((FIXTURES / "config.json").read_text())
    return (load_file(str(FIXTURES / "inputs.safetensors")), load_file(str(FIXTURES / "masking_expected.safetensors")),
            config)


def patches(x: torch.Tensor) -> torch.Tensor:
    b, c, t = x.shape
    return x.reshape(b, c, t // PATCH, PATCH)


def within(got: torch.Tensor, expected: torch.Tensor, rel: float = 1e-4) -> float:
    """Max abs difference, asserted within ``rel`` x the tensor's own scale (the fixture README's bound)."""
    diff = (got.double() - expected.double()).abs().max().item()
    scale = expected.double().abs().max().item()
    assert diff <= rel * scale, f"max abs diff {diff:.3e} > {rel} x {scale:.3e}"
    return diff


def longest_run(mask: torch.Tensor) -> int:
    best = 0
    for row in mask.tolist():
        run = 0
        for value in row:
            run = run + 1 if value else 0
            best = max(best, run)
    return best


# --- the official fixtures ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("parity", [True, False], ids=["parity", "default"])
def test_features_and_score_match_the_official_code(fixture_data, parity):
    inputs, expected, _ = fixture_data
    x = patches(inputs["x"])
    features = patch_features(x)
    for name in PatchFeatures._fields:
        within(getattr(features, name), expected[f"importance.{name}"])
    within(importance_score(x, parity=parity), expected["importance.score"])
    within(importance_score(patches(inputs["x_mask_large"]), parity=parity), expected["large.importance.score"])


@pytest.mark.parametrize("prefix, key", [("", "x"), ("large.", "x_mask_large")])
def test_every_mask_stage_replays_the_official_draws(fixture_data, prefix, key):
    inputs, expected, config = fixture_data
    masking = config["masking"]
    draw = importance_mask_draw(patches(inputs[key]), masking["epoch"], masking["epochs"],
                                torch.Generator().manual_seed(config["seeds"]["mask_seed"]))
    assert draw.weight == masking["info_weight"]
    for stage in ("random_scores", "punch_rand", "ids_mask", "sampled", "after_punch", "final"):
        name = f"{prefix}mask.{stage}"
        if name in expected:
            assert torch.equal(getattr(draw.stages, stage), expected[name]), name
    for stage in ("combined_scores", "norm_scores", "probs"):
        if f"{prefix}mask.{stage}" in expected:
            within(getattr(draw.stages, stage), expected[f"{prefix}mask.{stage}"])
    if not prefix:
        assert torch.equal(draw.stages.final, inputs["bool_masked_pos"])


def test_sampler_is_bit_exact_given_the_official_score(fixture_data):
    inputs, expected, config = fixture_data
    stages = guided_mask(expected["importance.score"], config["masking"]["info_weight"], 0.5, 0.8, 0.1, 5,
                         generator=torch.Generator().manual_seed(config["seeds"]["mask_seed"]))
    for stage in ("random_scores", "combined_scores", "norm_scores", "probs", "ids_mask", "sampled", "punch_rand",
                  "after_punch", "final"):
        assert torch.equal(getattr(stages, stage), expected[f"mask.{stage}"]), stage


def test_global_seed_replays_the_official_mask(fixture_data):
    inputs, _, config = fixture_data
    with torch.random.fork_rng():
        torch.manual_seed(config["seeds"]["mask_seed"])
        mask = importance_mask(patches(inputs["x"]), config["masking"]["epoch"], config["masking"]["epochs"])
    assert torch.equal(mask, inputs["bool_masked_pos"])


def test_random_mask_ablation_matches_the_official_draws(fixture_data):
    inputs, expected, _ = fixture_data
    draw = importance_mask_draw(patches(inputs["x_mask_large"]), 6, 20, torch.Generator().manual_seed(58),
                                ImportanceMaskSettings(random_mask=True))
    assert draw.score is None and draw.weight is None
    for stage in ("noise", "top_indices", "sampled", "punch_rand", "after_punch", "final"):
        assert torch.equal(getattr(draw.stages, stage), expected[f"large.random_mask.{stage}"]), stage


def test_run_limit_demo_matches(fixture_data):
    inputs, expected, _ = fixture_data
    assert torch.equal(limit_runs(inputs["run_limit_demo_in"], 5), expected["run_limit_demo.out"])


def test_curriculum_matches_the_official_values(fixture_data):
    _, _, config = fixture_data
    for key, value in config["masking"]["curriculum_examples"].items():
        epoch, epochs = (int(v) for v in key.split("/"))
        assert curriculum_weight(epoch, epochs) == value, key


# --- the score ---------------------------------------------------------------------------------------------------

def test_score_ranks_rhythm_noise_line_noise_drift():
    """families.md §A.5.1's 4-patch example (10 Hz sine, 1 Hz sine, white noise, 60 Hz sine: 0.618 / 0.009 /
    0.603 / 0.250). The sines' scores depend on the noise draw only through the min-max range; the noise patch
    scores 0.60-0.66 here, so whether it ranks above or below the 10 Hz sine depends on the draw (seeds 0 and 1
    put it above): 10 Hz > 60 Hz > 1 Hz and noise > 60 Hz always hold."""
    t = torch.arange(PATCH) / 200.0
    for seed in range(5):
        noise = torch.randn(PATCH, generator=torch.Generator().manual_seed(seed))
        x = torch.stack([torch.sin(2 * math.pi * 10 * t), torch.sin(2 * math.pi * t), noise,
                         torch.sin(2 * math.pi * 60 * t)]).reshape(1, 1, 4, PATCH)
        s10, s1, snoise, s60 = importance_score(x)[0].tolist()
        assert s10 > s60 > s1 and snoise > s60
        assert (s10, s1, s60) == pytest.approx((0.618, 0.009, 0.250), abs=3e-3)
        assert snoise == pytest.approx(0.603, abs=0.06)


def test_score_is_a_weighted_sum_of_unit_features():
    assert sum(FEATURE_WEIGHTS) == pytest.approx(1.0)
    x = torch.randn(3, 4, 6, PATCH, generator=torch.Generator().manual_seed(0))
    score = importance_score(x)
    assert score.shape == (3, 24) and score.min() >= 0 and score.max() <= 1


def test_scale_free():
    x = torch.randn(2, 3, 4, PATCH, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(importance_score(x), importance_score(x * 100), atol=1e-5)


# --- the sampler -------------------------------------------------------------------------------------------------

def test_without_punch_and_run_limit_exactly_floor_half():
    x = torch.randn(8, 5, 7, PATCH, generator=torch.Generator().manual_seed(2))  # L = 35: floor 17
    for random in (False, True):
        settings = ImportanceMaskSettings(punch_ratio=0.0, max_run=None, random_mask=random)
        mask = importance_mask(x, 3, 10, torch.Generator().manual_seed(0), settings)
        assert mask.sum(1).tolist() == [17] * 8
        settings = ImportanceMaskSettings(punch_ratio=0.0, max_run=35, random_mask=random)
        assert torch.equal(importance_mask(x, 3, 10, torch.Generator().manual_seed(0), settings), mask)


def test_run_limit_cuts_runs_at_six_twelve():
    mask = torch.tensor([[True] * 14 + [False] + [True] * 5])
    out = limit_runs(mask, 5)
    assert (~out[0]).nonzero().flatten().tolist() == [5, 11, 14]
    assert torch.equal(limit_runs(mask, None), mask)


def test_run_limit_per_channel_restarts_at_each_channel():
    mask = torch.ones(1, 16, dtype=torch.bool)  # 2 channels x 8 patches
    assert (~limit_runs(mask, 5)).nonzero()[:, 1].tolist() == [5, 11]  # runs cross the channel boundary
    assert (~limit_runs(mask, 5, channels=2)).nonzero()[:, 1].tolist() == [5, 13]
    x = torch.randn(1, 2, 8, PATCH, generator=torch.Generator().manual_seed(0))
    settings = ImportanceMaskSettings(mask_ratio=0.9, punch_ratio=0.0, run_limit_axis="channel", random_mask=True)
    draw = importance_mask_draw(x, 0, 1, torch.Generator().manual_seed(0), settings)
    assert torch.equal(draw.stages.final, limit_runs(draw.stages.after_punch, 5, channels=2))


def test_final_masks_have_no_run_longer_than_five():
    x = torch.randn(16, 4, 10, PATCH, generator=torch.Generator().manual_seed(3))
    for axis in ("flat", "channel"):
        settings = ImportanceMaskSettings(mask_ratio=0.8, punch_ratio=0.0, run_limit_axis=axis)
        draw = importance_mask_draw(x, 0, 5, torch.Generator().manual_seed(1), settings)
        rows = (lambda m: m) if axis == "flat" else (lambda m: m.reshape(16 * 4, 10))  # runs within a channel
        assert longest_run(rows(draw.stages.after_punch)) > 5 and longest_run(rows(draw.stages.final)) == 5


def test_deterministic_under_a_seed():
    x = torch.randn(4, 3, 5, PATCH, generator=torch.Generator().manual_seed(4))
    for random in (False, True):
        settings = ImportanceMaskSettings(random_mask=random)
        first = importance_mask(x, 2, 10, torch.Generator().manual_seed(11), settings)
        assert torch.equal(first, importance_mask(x, 2, 10, torch.Generator().manual_seed(11), settings))
        assert not torch.equal(first, importance_mask(x, 2, 10, torch.Generator().manual_seed(12), settings))


def test_high_scores_are_masked_more_often():
    """§A.11 #8: w = 1, T = 0.8, 1,000 draws: the top quarter of the scores is masked far more than the bottom."""
    score = torch.linspace(0, 1, 40).expand(1000, 40)
    stages = guided_mask(score, 1.0, 0.5, 0.8, 0.0, None, generator=torch.Generator().manual_seed(3))
    rate = stages.final.float().mean(0)
    assert rate[-10:].mean() > 0.85 and rate[:10].mean() < 0.2
    uniform = guided_mask(score, 0.0, 0.5, 0.8, 0.0, None, generator=torch.Generator().manual_seed(3))
    assert (uniform.final.float().mean(0) - 0.5).abs().max() < 0.06  # w = 0: no preference


@pytest.mark.parametrize("epoch", [0, 49])
@pytest.mark.parametrize("random", [False, True], ids=["guided", "random"])
def test_effective_ratio_at_570_tokens(epoch, random):
    """§A.11 #8: 0.445 ± 0.01 at L = 570 (19 channels x 30 patches), 64 windows."""
    x = torch.randn(64, 19, 30, PATCH, generator=torch.Generator().manual_seed(5))
    mask = importance_mask(x, epoch, 50, torch.Generator().manual_seed(6), ImportanceMaskSettings(random_mask=random))
    assert mask.shape == (64, 570)
    assert mask.float().mean().item() == pytest.approx(0.445, abs=0.01)


def test_curriculum_schedule():
    """§A.11 #9."""
    assert curriculum_weight(0, 50) == pytest.approx(0.20)
    assert curriculum_weight(25, 50) == pytest.approx(0.45)
    assert curriculum_weight(49, 50) == pytest.approx(0.69)
    x = torch.randn(1, 2, 3, PATCH, generator=torch.Generator().manual_seed(0))
    assert importance_mask_draw(x, 0, 50, torch.Generator().manual_seed(0)).weight == pytest.approx(0.20)
    settings = ImportanceMaskSettings(weight_start=0.0, weight_growth=1.0)
    assert importance_mask_draw(x, 5, 10, torch.Generator().manual_seed(0), settings).weight == 0.5


# --- bad input ---------------------------------------------------------------------------------------------------

def test_nan_is_an_error_naming_sample_channel_patch():
    x = torch.randn(2, 3, 4, PATCH)
    x[1, 2, 3, 17] = float("nan")
    with pytest.raises(InputError, match="sample 1, channel 2, patch 3"):
        importance_mask(x, 0, 10, torch.Generator().manual_seed(0))
    # the ablation does not read the signal
    assert importance_mask(x, 0, 10, torch.Generator().manual_seed(0), ImportanceMaskSettings(random_mask=True)).any()


def test_flat_channel_default_scores_zero_and_warns():
    x = torch.randn(2, 4, 5, PATCH, generator=torch.Generator().manual_seed(7))
    x[:, 2] = 0.0
    with pytest.warns(UserWarning, match=r"channel\(s\) \[2\].*scored 0"):
        score = importance_score(x)
    assert (score.reshape(2, 4, 5)[:, 2] == 0).all()
    # the other patches are normalised as if the flat channel were absent
    alive = x[:, [0, 1, 3]]
    kept = score.reshape(2, 4, 5)[:, [0, 1, 3]].reshape(2, 15)
    assert torch.allclose(kept, importance_score(alive), atol=1e-6)


def test_flat_channel_parity_keeps_the_official_arithmetic():
    x = torch.randn(1, 3, 4, PATCH, generator=torch.Generator().manual_seed(8))
    x[:, 1] = 0.0
    features = patch_features(x)
    flat = slice(4, 8)  # channel 1's tokens
    assert features.neural_ratio[0, flat].eq(0).all() and features.clean_score[0, flat].eq(1).all()
    assert features.complexity[0, flat].eq(0).all() and features.irregularity[0, flat].eq(0).all()
    assert features.mobility[0, flat].eq(1).all()
    with pytest.warns(UserWarning, match="as the official code does"):
        score = importance_score(x, parity=True)
    assert torch.isfinite(score).all() and (score[0, flat] > 0.2).all()  # a middling score, not 0


def test_no_warning_without_flat_patches():
    x = torch.randn(1, 2, 3, PATCH, generator=torch.Generator().manual_seed(9))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        importance_score(x)


@pytest.mark.parametrize("shape, match", [((2, 3, 1000), "reshape"), ((2, 1, 1, PATCH), "at least 2 tokens")])
def test_bad_shapes(shape, match):
    with pytest.raises(InputError, match=match):
        importance_mask(torch.randn(shape), 0, 10)


def test_ratio_leaving_an_empty_view():
    with pytest.raises(InputError, match="draws 0 of 3"):
        importance_mask(torch.randn(1, 1, 3, PATCH), 0, 10, settings=ImportanceMaskSettings(mask_ratio=0.2))


@pytest.mark.parametrize("field, value", [("mask_ratio", 1.0), ("temperature", 0.0), ("punch_ratio", 1.0),
                                          ("max_run", 0), ("run_limit_axis", "row"), ("weight_start", 1.5),
                                          ("weight_growth", 0.9), ("sampling_rate", 0.0)])
def test_bad_settings_name_the_field(field, value):
    with pytest.raises(ConfigError, match=field):
        ImportanceMaskSettings(**{field: value})


@pytest.mark.parametrize("epoch, epochs, match", [(50, 50, r"epoch 50 outside \[0, 50\)"), (-1, 5, "epoch -1"),
                                                  (0, 0, "max_epochs 0")])
def test_bad_epochs(epoch, epochs, match):
    with pytest.raises(ConfigError, match=match):
        curriculum_weight(epoch, epochs)


def test_random_mask_counts_and_device():
    stages = random_mask(3, 30, 0.5, 0.0, None, generator=torch.Generator().manual_seed(0))
    assert stages.final.sum(1).tolist() == [15] * 3 and stages.final.device.type == "cpu"
