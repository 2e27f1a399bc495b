"""The BrainRVQ tokenizer recipes (recipes/brainrvq_tokenizer*.yaml, recipes/e2e/table1_brainrvq.yaml): each is
instantiated and run for one step (fast_dev_run) on CPU with a tiny DD-RVQ tokenizer, as tests/test_labram_recipes.py
does for LaBraM's; the paper numbers they carry are checked, and the Table 1 recipe matches the VQ-NSP one except for
the tokenizer, whose size is within 25% of the NeuroRVQ side's."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from family_recipes import (RECIPE_DIR, config, data_overrides, in_tmp_folder,  # noqa: F401 (fixtures)
                            name, one_step_trainer, one_thread)
from neurorvq.cli import main

RECIPES = sorted([*RECIPE_DIR.glob("brainrvq_*.yaml"), RECIPE_DIR / "e2e" / "table1_brainrvq.yaml",
                  *(RECIPE_DIR / "e2e").glob("brainrvq_*.yaml"), *(RECIPE_DIR / "finetune").glob("brainrvq_*.yaml")])
BRAINRVQ_OPTIONS = "neurorvq.families.brainrvq.BrainRVQOptions"
TINY_TOKENIZER = "{class_path: %s, init_args: {embed_dim: 100, conv_channels: 4, num_heads: 5, encoder_depth: 1, " \
                 "decoder_depth: 1, codebook_size: 32, code_dim: 8, kmeans_iters: 1}}" % BRAINRVQ_OPTIONS
TINY_FM = "{class_path: neurorvq.families.brainrvq_fm.BrainRVQFMOptions, init_args: {depth: 1, embed_dim: 100, " \
          "conv_channels: 4, num_heads: 5}}"
NEURORVQ_TABLE1_PARAMETERS = 2.41e6


@pytest.fixture(scope="module")
def tiny_tokenizer(tmp_path_factory) -> Path:
    from neurorvq.models.spectral_vq import BrainRVQTokenizer

    torch.manual_seed(0)
    model = BrainRVQTokenizer("eeg", embed_dim=100, conv_channels=4, num_heads=5, encoder_depth=1, decoder_depth=1,
                              codebook_size=32, code_dim=8)
    return model.save_pretrained(tmp_path_factory.mktemp("brainrvq_tok") / "tokenizer")


def tiny_args(recipe: Path, tmp_path: Path, tokenizer: Path) -> list[str]:
    task = config(recipe)["model"]["class_path"].rsplit(".", 1)[-1]
    trainer = one_step_trainer(tmp_path)
    if task == "TokenizerTask":
        model = [f"--model.init_args.tokenizer={TINY_TOKENIZER}"]
    elif task == "PretrainTask":  # the importance mask's curriculum needs a number of epochs
        model = [f"--model.init_args.tokenizer={tokenizer}", f"--model.init_args.fm={TINY_FM}",
                 "--trainer.max_epochs=2"]
    elif task == "FinetuneTask":
        model = ["--model.init_args.fm=null", f"--model.init_args.fm_overrides={TINY_FM}"]
    else:
        raise AssertionError(f"{name(recipe)}: add tiny model overrides for {task}")
    return ["fit", "--config", str(recipe), *trainer, *model, *data_overrides(recipe, tmp_path)]


# ------------------------------------------------------------------------------------------------ the recipes run
def test_recipes_exist():
    assert {name(r) for r in RECIPES} == {"brainrvq_tokenizer", "brainrvq_tokenizer_cpu", "e2e/table1_brainrvq",
                                          "brainrvq_pretrain", "brainrvq_pretrain_cpu",
                                          "finetune/brainrvq_eegmmidb_eyes", "e2e/brainrvq_eeg_tokenizer",
                                          "e2e/brainrvq_eeg_fm"}


@pytest.mark.parametrize("recipe", RECIPES, ids=name)
def test_recipe_runs_one_step(recipe, tmp_path, tiny_tokenizer):
    assert main(tiny_args(recipe, tmp_path, tiny_tokenizer)) in (0, None)


def test_pretraining_recipe_numbers():
    """families.md §A.4.4: AdamW lr 5e-4 (not batch-scaled), betas (0.9, 0.999), wd 0.05, 5 of 20 warm-up epochs,
    cosine to 1e-5, no clipping, fp16; the student with importance masking."""
    recipe = config(RECIPE_DIR / "brainrvq_pretrain.yaml")
    t = recipe["model"]["init_args"]
    assert t["lr"] == 5e-4 and t["betas"] == [0.9, 0.999] and t["weight_decay"] == 0.05
    assert t["warmup_fraction"] == pytest.approx(5 / 20) and t["lr"] * t["min_lr_ratio"] == pytest.approx(1e-5)
    assert recipe["trainer"]["max_epochs"] == 20 and recipe["trainer"].get("gradient_clip_val") is None
    assert recipe["trainer"]["precision"] == "16-mixed" and t["mask_ratio"] == 0.5
    assert t["fm"]["class_path"] == "neurorvq.families.brainrvq_fm.BrainRVQFMOptions"


def test_cpu_recipe_trains_and_its_checkpoint_loads(tmp_path):
    """The CPU recipe at its own size (one encoder block less), a few steps; its checkpoint is a BrainRVQ tokenizer."""
    steps = ["--trainer.max_steps=2", "--trainer.limit_val_batches=1", "--trainer.logger=false",
             "--data.init_args.train_windows=4", "--data.init_args.val_windows=2", "--data.init_args.batch_size=2",
             "--model.init_args.tokenizer.init_args.encoder_depth=1",
             "--model.init_args.tokenizer.init_args.kmeans_iters=1"]
    assert main(["fit", "--config", str(RECIPE_DIR / "brainrvq_tokenizer_cpu.yaml"), *steps]) in (0, None)
    from neurorvq.loading import load
    from neurorvq.models.spectral_vq import BrainRVQTokenizer

    tok = load(tmp_path / "runs" / "brainrvq_tokenizer_cpu" / "checkpoints" / "last.ckpt", kind="tokenizer")
    assert isinstance(tok, BrainRVQTokenizer) and tok.layout.depths == (3, 3) and tok.config.codebook_size == 256


# ------------------------------------------------------------------------------------------------ the numbers
def test_paper_numbers():
    tok = config(RECIPE_DIR / "brainrvq_tokenizer.yaml")
    t = tok["model"]["init_args"]
    assert t["tokenizer"] == {"class_path": BRAINRVQ_OPTIONS, "init_args": {}}  # the official full size
    total_batch = tok["trainer"]["devices"] * tok["data"]["init_args"]["batch_size"]
    assert tok["data"]["init_args"]["batch_size"] == 128 and t["lr"] == pytest.approx(5e-5 * total_batch / 128)
    assert t["betas"] == [0.9, 0.999] and t["weight_decay"] == 1e-4
    assert t["lr"] * t["min_lr_ratio"] == pytest.approx(1e-5) and t["warmup_fraction"] == pytest.approx(5 / 20)
    assert tok["trainer"]["max_epochs"] == 20 and tok["trainer"]["precision"] == "16-mixed"
    assert tok["trainer"]["gradient_clip_val"] is None and tok["data"]["init_args"]["window_seconds"] <= 30
    from neurorvq.families.brainrvq import BrainRVQOptions

    model = BrainRVQOptions(**t["tokenizer"]["init_args"]).build("eeg")
    assert model.num_parameters() == 9_101_240 and model.options["kmeans_iters"] > 0  # k-means on [I]
    cpu = config(RECIPE_DIR / "brainrvq_tokenizer_cpu.yaml")["model"]["init_args"]["tokenizer"]["init_args"]
    assert BrainRVQOptions(**cpu).build("eeg").num_parameters() == 478_808  # the CPU recipe's comment


def test_table1_recipe_matches_the_vqnsp_one_but_for_the_tokenizer():
    ours = config(RECIPE_DIR / "e2e" / "table1_brainrvq.yaml")
    vqnsp = config(RECIPE_DIR / "e2e" / "table1_vqnsp.yaml")
    assert ours["data"] == vqnsp["data"] and ours["seed_everything"] == vqnsp["seed_everything"]
    assert ours["trainer"]["max_steps"] == vqnsp["trainer"]["max_steps"] == 400
    strip = ("default_root_dir", "callbacks")
    assert {k: v for k, v in ours["trainer"].items() if k not in strip} == \
        {k: v for k, v in vqnsp["trainer"].items() if k not in strip}
    ours_model, vqnsp_model = dict(ours["model"]["init_args"]), dict(vqnsp["model"]["init_args"])
    tokenizer = ours_model.pop("tokenizer")
    vqnsp_model.pop("tokenizer")
    assert ours_model == vqnsp_model and tokenizer["class_path"] == BRAINRVQ_OPTIONS


def test_table1_tokenizer_size_is_within_a_quarter_of_the_neurorvq_side():
    from neurorvq.families.brainrvq import BrainRVQOptions

    init = config(RECIPE_DIR / "e2e" / "table1_brainrvq.yaml")["model"]["init_args"]["tokenizer"]["init_args"]
    count = BrainRVQOptions(**init).build("eeg").num_parameters()
    assert count == 2_347_640  # the number the recipe's comment states
    assert abs(count / NEURORVQ_TABLE1_PARAMETERS - 1) <= 0.25
    assert "2,347,640" in (RECIPE_DIR / "e2e" / "table1_brainrvq.yaml").read_text()
