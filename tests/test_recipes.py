"""Every recipe is instantiated and run for one step (fast_dev_run) with tiny overrides, so none can rot."""

from __future__ import annotations

from pathlib import Path

import pytest

from neurorvq.cli import main
from neurorvq.errors import ConfigError

RECIPES = sorted((Path(__file__).resolve().parents[1] / "recipes").glob("*.yaml"))
QUICKSTART = RECIPES[[r.name for r in RECIPES].index("quickstart.yaml")]
TINY_TOKENIZER = "{encoder_depth: 1, decoder_depth: 1, n_quantizers: 2, codebook_size: 32, code_dim: 8}"


SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SHARED_EEGMMIDB = SHARED_DATA / "eegmmidb"


def _require(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"recordings not found at {path}")
    return path


def _ptbxl_layout(tmp_path: Path) -> Path:
    """A small PTB-XL folder written by the PTB-XL tests' helper from the shared PTB Diagnostic record."""
    import importlib.util

    module_path = Path(__file__).resolve().parent / "data" / "test_ptbxl.py"
    spec = importlib.util.spec_from_file_location("ptbxl_layout_helper", module_path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    source = _require(SHARED_DATA / "ptbdb" / "patient001" / "s0010_re.hea").with_suffix("")
    return module.write_ptbxl_layout(tmp_path / "ptbxl", source)


def data_overrides(recipe: Path, tmp_path: Path) -> list[str]:
    """Tiny data settings: synthetic recipes get a few windows; real-data recipes read ../shared/data."""
    import yaml

    class_path = yaml.safe_load(recipe.read_text())["data"]["class_path"]
    if class_path.endswith("SyntheticDataModule"):
        return ["--data.init_args.train_windows=2", "--data.init_args.val_windows=2", "--data.init_args.batch_size=2",
                "--data.init_args.num_workers=0"]
    quiet = ["--data.init_args.batch_size=2", "--data.init_args.num_workers=0", "--data.init_args.verbose=false"]
    if class_path.endswith("EEGMMIDBDataModule"):
        return [f"--data.init_args.root={_require(SHARED_EEGMMIDB)}", "--data.init_args.runs=[1, 2]",
                f"--data.init_args.cache_dir={tmp_path / 'cache'}", *quiet]
    if class_path.endswith("PTBXLDataModule"):
        return [f"--data.init_args.root={_ptbxl_layout(tmp_path)}", *quiet]
    if class_path.endswith("SEMGArmbandDataModule"):
        root = _require(SHARED_DATA / "long-term-semg-armband" / "data")
        return [f"--data.init_args.root={root}", "--data.init_args.subjects=[1, 2]", "--data.init_args.days=[1]",
                *quiet]
    raise AssertionError(f"{recipe.name}: add tiny data overrides for {class_path}")


def tiny_args(recipe: Path, tmp_path: Path) -> list[str]:
    return [
        "fit", "--config", str(recipe),
        "--trainer.fast_dev_run=1", "--trainer.accelerator=cpu", "--trainer.devices=1",
        "--trainer.strategy=auto", "--trainer.precision=32", f"--trainer.default_root_dir={tmp_path}",
        f"--model.init_args.tokenizer={TINY_TOKENIZER}",
        *data_overrides(recipe, tmp_path),
    ]


def test_recipes_exist():
    names = {r.name for r in RECIPES}
    assert {"quickstart.yaml", "eeg_tokenizer.yaml", "ecg_tokenizer.yaml", "emg_tokenizer.yaml",
            "semg_tokenizer.yaml"} <= names


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.stem)
def test_recipe_runs_one_step(recipe, tmp_path, capsys):
    main(tiny_args(recipe, tmp_path))


def test_paper_recipe_trains_on_real_eegmmidb(tmp_path):
    recipe = RECIPES[[r.name for r in RECIPES].index("eeg_tokenizer.yaml")]
    args = [a for a in tiny_args(recipe, tmp_path) if not a.startswith("--trainer.fast_dev_run")]
    main(args + ["--trainer.max_steps=3", "--trainer.limit_val_batches=1", "--trainer.logger=false",
                 "--trainer.enable_checkpointing=false", "--trainer.callbacks=[]"])


def test_official_size_in_paper_recipe():
    import yaml

    config = yaml.safe_load((Path(__file__).resolve().parents[1] / "recipes" / "eeg_tokenizer.yaml").read_text())
    assert config["model"]["init_args"]["tokenizer"] == {}  # the official configuration, no overrides
    assert config["trainer"]["strategy"] == "ddp" and config["trainer"]["precision"] == "16-mixed"


# jsonargparse re-raises errors of instantiation inside a ValueError that quotes them
def test_unknown_modality_is_named(tmp_path):
    args = tiny_args(QUICKSTART, tmp_path) + ["--model.init_args.modality=eegg", "--data.init_args.modality=eeg"]
    with pytest.raises((ConfigError, ValueError), match=r"unknown modality 'eegg'; registered: \['ecg', 'eeg', 'emg'"):
        main(args)


def test_unknown_tokenizer_field_is_named(tmp_path):
    args = tiny_args(QUICKSTART, tmp_path) + ["--model.init_args.tokenizer={encoder_dept: 2}"]
    with pytest.raises((ConfigError, ValueError),
                       match=r"unknown tokenizer override\(s\) \['encoder_dept'\].*encoder_depth"):
        main(args)


def test_unknown_recipe_field_is_named(tmp_path):
    args = tiny_args(QUICKSTART, tmp_path) + ["--model.init_args.learning_rate=0.1"]
    with pytest.raises(ConfigError, match=r"\['model.init_args.learning_rate'\] are not parameters of "
                                          r"neurorvq.tasks.tokenizer.TokenizerTask; valid: .*'lr'"):
        main(args)


def test_unknown_field_in_a_recipe_file(tmp_path):
    recipe = tmp_path / "bad.yaml"
    recipe.write_text(QUICKSTART.read_text().replace("    batch_size: 16", "    batch_sise: 16"))
    with pytest.raises(ConfigError, match=r"data.init_args.batch_sise.*valid: .*'batch_size'"):
        main(["fit", "--config", str(recipe)])
    recipe.write_text(QUICKSTART.read_text().replace("  max_epochs: 4", "  max_epoch: 4"))
    with pytest.raises(ConfigError, match=r"trainer.max_epoch'\].*'max_epochs'"):
        main(["fit", "--config", str(recipe)])
