"""The LaBraM recipes (recipes/labram_*.yaml, recipes/finetune/labram_*.yaml): each is instantiated and run for one
step (fast_dev_run) on CPU with a tiny LaBraM tokenizer / student, as tests/test_recipes.py does for the others; the
paper numbers they carry are checked; fine-tuning uses LaBraM's layer rule (LQ7 in parity, fixed by default)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from family_recipes import (RECIPE_DIR, SHARED_EEGMMIDB, config, data_overrides, in_tmp_folder,  # noqa: F401 (fixtures)
                            name, one_step_trainer, one_thread)
from neurorvq.cli import main
from neurorvq.file_io import write_safetensors

RECIPES = sorted([*RECIPE_DIR.glob("labram_*.yaml"), *(RECIPE_DIR / "finetune").glob("labram_*.yaml")])
LABRAM_OPTIONS = "neurorvq.families.labram.LaBraMOptions"
LABRAM_FM_OPTIONS = "neurorvq.families.labram.LaBraMFMOptions"
TINY_ARCH = {"embed_dim": 100, "conv_channels": 4, "num_heads": 5, "mlp_ratio": 2.0}
TINY_TOKENIZER = "{class_path: %s, init_args: {embed_dim: 100, conv_channels: 4, num_heads: 5, encoder_depth: 1, " \
                 "decoder_depth: 1, codebook_size: 32, code_dim: 8, kmeans_iters: 1}}" % LABRAM_OPTIONS
TINY_FM = "{class_path: %s, init_args: {depth: 1, embed_dim: 100, conv_channels: 4, num_heads: 5}}" % LABRAM_FM_OPTIONS


@pytest.fixture(scope="module")
def tiny_tokenizer(tmp_path_factory) -> Path:
    from neurorvq.models.spectral_vq import LaBraMTokenizer

    torch.manual_seed(0)
    model = LaBraMTokenizer("eeg", **TINY_ARCH, encoder_depth=1, decoder_depth=1, codebook_size=32, code_dim=8)
    return model.save_pretrained(tmp_path_factory.mktemp("labram_tok") / "tokenizer")


@pytest.fixture(scope="module")
def tiny_official_fm(tmp_path_factory) -> Path:
    """A tiny student in the official pretraining layout (dead tensors included: a parity model), as a file."""
    from neurorvq.models.labram_fm import LaBraMFoundationModel

    torch.manual_seed(0)
    model = LaBraMFoundationModel("eeg", **TINY_ARCH, depth=2, vocab_size=32, parity=True)
    path = tmp_path_factory.mktemp("labram_fm") / "labram-tiny.safetensors"
    write_safetensors(path, {k: v.contiguous() for k, v in model.to_official().items()}, {})
    return path


def tiny_args(recipe: Path, tmp_path: Path, tokenizer: Path, fm: Path | None = None) -> list[str]:
    task = config(recipe)["model"]["class_path"].rsplit(".", 1)[-1]
    trainer = one_step_trainer(tmp_path)
    if task == "TokenizerTask":
        model = [f"--model.init_args.tokenizer={TINY_TOKENIZER}"]
    elif task == "PretrainTask":
        model = [f"--model.init_args.tokenizer={tokenizer}", f"--model.init_args.fm={TINY_FM}"]
    elif task == "FinetuneTask":
        model = [f"--model.init_args.fm={fm}"] if fm else ["--model.init_args.fm=null",
                                                           f"--model.init_args.fm_overrides={TINY_FM}"]
    else:
        raise AssertionError(f"{name(recipe)}: add tiny model overrides for {task}")
    return ["fit", "--config", str(recipe), *trainer, *model, *data_overrides(recipe, tmp_path)]


# ------------------------------------------------------------------------------------------------ the recipes run
def test_recipes_exist():
    assert {name(r) for r in RECIPES} == {"labram_vqnsp_tokenizer", "labram_vqnsp_tokenizer_cpu", "labram_pretrain",
                                          "labram_pretrain_cpu", "finetune/labram_eegmmidb_eyes"}


@pytest.mark.parametrize("recipe", RECIPES, ids=name)
def test_recipe_runs_one_step(recipe, tmp_path, tiny_tokenizer):
    assert main(tiny_args(recipe, tmp_path, tiny_tokenizer)) in (0, None)


def test_finetune_recipe_from_official_weights(tmp_path, tiny_tokenizer, tiny_official_fm):
    recipe = RECIPE_DIR / "finetune" / "labram_eegmmidb_eyes.yaml"
    assert main(tiny_args(recipe, tmp_path, tiny_tokenizer, fm=tiny_official_fm)) in (0, None)


def test_cpu_recipes_chain(tmp_path):
    """The CPU pretraining recipe reads the checkpoint the CPU tokenizer recipe writes (a few steps each)."""
    steps = ["--trainer.max_steps=2", "--trainer.limit_val_batches=1", "--trainer.logger=false",
             "--data.init_args.train_windows=4", "--data.init_args.val_windows=2", "--data.init_args.batch_size=2"]
    small = ["--model.init_args.tokenizer.init_args.encoder_depth=1", "--model.init_args.tokenizer.init_args.kmeans_iters=1"]
    assert main(["fit", "--config", str(RECIPE_DIR / "labram_vqnsp_tokenizer_cpu.yaml"), *steps, *small]) in (0, None)
    ckpt = tmp_path / "runs" / "labram_vqnsp_tokenizer_cpu" / "checkpoints" / "last.ckpt"
    assert ckpt.is_file()
    assert main(["fit", "--config", str(RECIPE_DIR / "labram_pretrain_cpu.yaml"), *steps,
                 "--model.init_args.fm.init_args.depth=1"]) in (0, None)
    from neurorvq.loading import load
    from neurorvq.models.labram_fm import LaBraMFoundationModel

    fm = load(tmp_path / "runs" / "labram_pretrain_cpu" / "checkpoints" / "last.ckpt", kind="foundation_model")
    assert isinstance(fm, LaBraMFoundationModel) and fm.options["vocab_size"] == 256


# ------------------------------------------------------------------------------------------------ the numbers
def test_paper_numbers():
    tok = config(RECIPE_DIR / "labram_vqnsp_tokenizer.yaml")
    t = tok["model"]["init_args"]
    assert t["tokenizer"] == {"class_path": LABRAM_OPTIONS, "init_args": {}}  # official size, code_dim 64
    assert t["lr"] == pytest.approx(5e-5 * 1024 / 128) and t["betas"] == [0.9, 0.99] and t["weight_decay"] == 1e-4
    assert t["lr"] * t["min_lr_ratio"] == pytest.approx(1e-5) and t["warmup_fraction"] == pytest.approx(10 / 100)
    assert tok["trainer"]["devices"] * tok["data"]["init_args"]["batch_size"] == 1024
    assert tok["trainer"]["max_epochs"] == 100 and tok["trainer"]["precision"] == "16-mixed"
    assert tok["trainer"]["gradient_clip_val"] is None and tok["data"]["init_args"]["stride_seconds"] == 1.0
    assert tok["data"]["init_args"]["window_seconds"] <= 16
    pre = config(RECIPE_DIR / "labram_pretrain.yaml")
    p = pre["model"]["init_args"]
    assert p["fm"]["class_path"] == LABRAM_FM_OPTIONS and p["lr"] == 5e-4 and p["betas"] == [0.9, 0.98]
    assert p["weight_decay"] == 0.05 and p["lr"] * p["min_lr_ratio"] == pytest.approx(1e-5)
    assert p["warmup_fraction"] == pytest.approx(5 / 50) and pre["trainer"]["max_epochs"] == 50
    assert pre["trainer"]["gradient_clip_val"] == 3.0 and pre["trainer"]["devices"] == 8
    assert pre["data"]["init_args"]["batch_size"] == 64
    for recipe in (tok, pre):
        steps = {s["step"]: s for s in recipe["data"]["init_args"]["steps"]}
        assert (steps["BandPass"]["low"], steps["BandPass"]["high"], steps["Notch"]["freqs"]) == (0.1, 75.0, [50.0])


# ------------------------------------------------------------------------------------------------ layer decay
@pytest.fixture(scope="module")
def tiny_default_fm(tmp_path_factory) -> Path:
    """A tiny pretrained student in default mode, as a save_pretrained folder."""
    from neurorvq.models.labram_fm import LaBraMFoundationModel

    torch.manual_seed(0)
    model = LaBraMFoundationModel("eeg", **TINY_ARCH, depth=2, vocab_size=32)
    return model.save_pretrained(tmp_path_factory.mktemp("labram_fm_default") / "fm")


@pytest.mark.parametrize("source,mode", [("official", "official"), ("default", "block")])
def test_finetune_layer_decay_is_labrams(tiny_official_fm, tiny_default_fm, source, mode):
    """Auto mode follows the FM's parity: LaBraM's per-block rule with time_embed in the top group for the official
    (parity) weights (LQ7), with the embeddings for a default-mode FM; the head at the base lr; no weight decay on 1-D
    tensors, biases and the tables; warm-up + cosine; drop-path linearly spaced."""
    from neurorvq.tasks.finetune import FinetuneTask, layer_decay_groups

    fm = tiny_official_fm if source == "official" else tiny_default_fm
    task = FinetuneTask(str(fm), num_classes=4, layer_decay=0.65, weight_decay=0.05, drop_path=0.1)
    assert task.decay_mode == mode and task.schedule == "cosine" and task.description()["model"] == "LaBraM"
    assert not hasattr(task.fm, "mask_token") and not hasattr(task.fm, "dead_lm_head")  # fine-tuning model only
    assert [b.drop_path for b in task.fm.backbone.blocks] == [0.0, pytest.approx(0.1)]
    groups = {g["name"]: g for g in layer_decay_groups(task.fm, 1.0, 0.65, 0.05, task.decay_mode)}
    top = 3  # depth 2 + 1
    assert groups["backbone.cls_token"]["lr"] == pytest.approx(0.65 ** top)
    assert groups["backbone.pos_embed"]["lr"] == pytest.approx(0.65 ** top)
    assert groups["conv.convs.0.weight"]["lr"] == pytest.approx(0.65 ** top)
    assert groups["backbone.blocks.0.attn.qkv.weight"]["lr"] == pytest.approx(0.65 ** 2)
    assert groups["backbone.blocks.1.mlp.fc1.weight"]["lr"] == pytest.approx(0.65)
    assert groups["backbone.time_embed"]["lr"] == pytest.approx(1.0 if mode == "official" else 0.65 ** top)
    assert groups["head.weight"]["lr"] == groups["fc_norm.weight"]["lr"] == 1.0
    decayed = {n for n, g in groups.items() if g["weight_decay"] > 0}
    assert {"backbone.blocks.0.attn.qkv.weight", "head.weight", "conv.convs.0.weight"} <= decayed
    assert not decayed & {"backbone.cls_token", "backbone.pos_embed", "backbone.time_embed", "head.bias",
                          "backbone.blocks.0.gamma_1", "fc_norm.weight"}
    head = task.fm.head.weight  # LaBraM's head init: trunc-normal(0.02) x 0.001, zero bias
    assert 0.5 * 2e-5 < float(head.std()) < 2.0 * 2e-5 and not task.fm.head.bias.any()


def test_cv_fine_tunes_a_labram_student_on_folds(tmp_path):
    """neurorvq cv runs a LaBraM fine-tuning recipe (from scratch, tiny student) on real EEGMMIDB folds: the fold
    DataModule names the channels its windows use, so LaBraM's 128-name vocabulary takes them; the table names
    the family."""
    if not SHARED_EEGMMIDB.is_dir():
        pytest.skip(f"recordings not found at {SHARED_EEGMMIDB}")
    recipe = RECIPE_DIR / "finetune" / "labram_eegmmidb_eyes.yaml"
    out = tmp_path / "cv"
    assert main(["cv", "--config", str(recipe), "--folds", "2", "--val_fraction", "0", "--out", str(out),
                 f"--data.init_args.root={SHARED_EEGMMIDB}", "--data.init_args.subjects=[1, 3]",
                 "--model.init_args.fm=null", f"--model.init_args.fm_overrides={TINY_FM}",
                 "--trainer.max_epochs=1", "--trainer.precision=32", "--trainer.accelerator=cpu"]) == 0
    summary = (out / "summary.md").read_text() if (out / "summary.md").exists() else \
        "\n".join(p.read_text() for p in out.glob("*.md"))
    assert "LaBraM (no pretraining)" in summary
