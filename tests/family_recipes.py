"""What the family recipe tests (tests/test_labram_recipes.py, tests/test_brainrvq_recipes.py) share: where recipes
and the EEGMMIDB sample are, reading a recipe, its test id, the trainer and data overrides that run it for one step on
CPU with tiny data, and the fixtures that run each test in its own folder (recipes name relative run folders) on one
thread."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import yaml

RECIPE_DIR = Path(__file__).resolve().parents[1] / "recipes"
SHARED_EEGMMIDB = Path(os.environ.get("NEURORVQ_SHARED", Path(__file__).resolve().parents[2] / "shared")) \
    / "data" / "eegmmidb"


def config(recipe: Path) -> dict:
    return yaml.safe_load(recipe.read_text())


def name(recipe: Path) -> str:
    """``finetune/labram_eegmmidb_eyes`` for recipes/finetune/labram_eegmmidb_eyes.yaml."""
    return recipe.relative_to(RECIPE_DIR).with_suffix("").as_posix()


def one_step_trainer(tmp_path: Path) -> list[str]:
    """One step (fast_dev_run) on one CPU, float32, logs under ``tmp_path``."""
    return ["--trainer.fast_dev_run=1", "--trainer.accelerator=cpu", "--trainer.devices=1", "--trainer.strategy=auto",
            "--trainer.precision=32", f"--trainer.default_root_dir={tmp_path}"]


def data_overrides(recipe: Path, tmp_path: Path) -> list[str]:
    """Tiny data for the recipe's DataModule (synthetic EEG, or two EEGMMIDB runs of the shared sample)."""
    data = config(recipe)["data"]
    if data["class_path"].endswith("SyntheticDataModule"):
        return ["--data.init_args.train_windows=2", "--data.init_args.val_windows=2", "--data.init_args.batch_size=2",
                "--data.init_args.num_workers=0"]
    assert data["class_path"].endswith("EEGMMIDBDataModule"), f"{name(recipe)}: add tiny data overrides"
    if not SHARED_EEGMMIDB.exists():
        pytest.skip(f"recordings not found at {SHARED_EEGMMIDB}")
    out = [f"--data.init_args.root={SHARED_EEGMMIDB}", "--data.init_args.runs=[1, 2]", "--data.init_args.batch_size=2",
           "--data.init_args.num_workers=0", "--data.init_args.verbose=false"]
    if data["init_args"].get("cache_dir") is not None:
        out.append(f"--data.init_args.cache_dir={tmp_path / 'cache'}")
    return out


@pytest.fixture(autouse=True)
def in_tmp_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # recipes name relative run folders


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
