"""Every recipe (recipes/**/*.yaml) is instantiated and run for one step (fast_dev_run) with tiny overrides, so
none can rot: tokenizer recipes get a tiny tokenizer, pretraining recipes a tiny saved tokenizer and a one-block
FM, fine-tuning recipes a one-block FM (one of them loaded from a saved pretrained FM), the feature recipe a
tiny saved FM under `predict`. Real-data recipes read ../shared/data or a small layout written here."""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import re
from pathlib import Path

import pytest
import yaml

from neurorvq.cli import main
from neurorvq.errors import ConfigError

RECIPE_DIR = Path(__file__).resolve().parents[1] / "recipes"
# recipes/examples/ belong to a guide and need the files it writes first (a spec file, generated recordings):
# tests/docs/ runs each with its guide (ppg_tokenizer.yaml: tests/docs/test_adding_a_modality.py)
# data-only recipes (the reconstruction rows' `data:` sections for compare-tokenizers) have no model to train: their
# dataset tests run them through compare-tokenizers
RECIPES = sorted(r for r in RECIPE_DIR.rglob("*.yaml") if r.relative_to(RECIPE_DIR).parts[0] != "examples"
                 and not r.name.startswith(("labram_", "brainrvq_"))  # their own tests run them with tiny models
                 and "model" in (yaml.safe_load(r.read_text()) or {}))
QUICKSTART = RECIPE_DIR / "quickstart.yaml"
TINY_TOKENIZER = "{encoder_depth: 1, decoder_depth: 1, n_quantizers: 2, codebook_size: 32, code_dim: 8}"
TINY_BY_OPTIONS = {  # a recipe whose tokenizer names its family's options class gets that family's tiny size
    "neurorvq.families.labram.LaBraMOptions": "{encoder_depth: 1, decoder_depth: 1, codebook_size: 32, code_dim: 8}",
    "neurorvq.families.brainrvq.BrainRVQOptions": "{encoder_depth: 1, decoder_depth: 1, codebook_size: 32, code_dim: 8}",
    "neurorvq.families.toy.ToyVQOptions": "{hidden: 16, codebook_size: 16}",
}
TINY_FM = "{depth: 1}"
FINETUNE_FROM_SAVED_FM = {"finetune/semg_armband"}  # fine-tuned from a saved pretrained FM, not a random init

TOKENIZER_TASK = "neurorvq.tasks.tokenizer.TokenizerTask"
PRETRAIN_TASK = "neurorvq.tasks.pretrain.PretrainTask"
FINETUNE_TASK = "neurorvq.tasks.finetune.FinetuneTask"
FEATURE_TASK = "neurorvq.tasks.features.FeatureExtractionTask"

SHARED_DATA = Path(os.environ.get("NEURORVQ_SHARED", Path(__file__).resolve().parents[2] / "shared")) / "data"
SHARED_EEGMMIDB = SHARED_DATA / "eegmmidb"


def recipe_name(recipe: Path) -> str:
    """``finetune/sleep_edf`` for recipes/finetune/sleep_edf.yaml."""
    return recipe.relative_to(RECIPE_DIR).with_suffix("").as_posix()


def _config(recipe: Path) -> dict:
    return yaml.safe_load(recipe.read_text())


def _require(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"recordings not found at {path}")
    return path


@functools.lru_cache(maxsize=None)
def _data_test_module(name: str):
    """A module of tests/data (its layout writers), imported by path."""
    module_path = Path(__file__).resolve().parent / "data" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"{name}_layout_helper", module_path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ------------------------------------------------------------------------------------------------ tiny models
class TinyModels:
    """Tiny saved models, written once per module on first use: ``tokenizer(modality)``, ``fm(modality)``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._made: dict[tuple, Path] = {}

    def tokenizer(self, modality: str) -> Path:
        key = ("tokenizer", modality)
        if key not in self._made:
            import torch

            from neurorvq.models.tokenizer import NeuroRVQTokenizer

            torch.manual_seed(0)
            model = NeuroRVQTokenizer(modality, encoder_depth=1, decoder_depth=1, n_quantizers=2, codebook_size=32,
                                      code_dim=8)
            self._made[key] = model.save_pretrained(self.root / f"tokenizer_{modality}")
        return self._made[key]

    def fm(self, modality: str) -> Path:
        """A pretrained-FM folder (token heads included, as PretrainTask saves it) of the tiny tokenizer's size."""
        key = ("fm", modality)
        if key not in self._made:
            import torch

            from neurorvq.models.fm import NeuroRVQFoundationModel

            torch.manual_seed(0)
            model = NeuroRVQFoundationModel(modality, pretraining=True, depth=1, vocab_size=32, n_quantizers=2)
            self._made[key] = model.save_pretrained(self.root / f"fm_{modality}")
        return self._made[key]


@pytest.fixture(autouse=True)
def in_tmp_folder(tmp_path, monkeypatch):
    """Run from tmp_path: recipes name relative output folders (checkpoint dirpaths under runs/), which must not
    land in the checkout, where real runs keep their checkpoints."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One intra-op thread: the tiny models' ops are microseconds of work, and on a busy machine waking a second
    thread costs milliseconds per op (a 30x slower step)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory) -> TinyModels:
    return TinyModels(tmp_path_factory.mktemp("tiny_models"))


# ------------------------------------------------------------------------------------------------ tiny data
def _ptbxl_layout(tmp_path: Path) -> Path:
    """A small PTB-XL folder written by the PTB-XL tests' helper from the shared PTB Diagnostic record."""
    source = _require(SHARED_DATA / "ptbdb" / "patient001" / "s0010_re.hea").with_suffix("")
    return _data_test_module("test_ptbxl").write_ptbxl_layout(tmp_path / "ptbxl", source)


def _sleep_edf_layout(tmp_path: Path) -> Path:
    """One 5-min Sleep-EDF night (SC4001E0-PSG.edf + its hypnogram: every R&K stage) with the Sleep-EDF tests'
    EDF writers."""
    pytest.importorskip("edfio", reason="mne.export.export_raw writes EDF with edfio")
    import mne

    helper = _data_test_module("test_sleep_edf")
    folder = tmp_path / "sleep-edf" / "sleep-cassette"
    folder.mkdir(parents=True)
    stages = ["W", "W", "1", "2", "2", "3", "4", "R", "R", "W"]  # 30-s epochs
    seconds = 30.0 * len(stages)
    annotations = mne.Annotations([30.0 * k for k in range(len(stages))], [30.0] * len(stages),
                                  [f"Sleep stage {s}" for s in stages])
    helper._write_psg(folder / "SC4001E0-PSG.edf", seconds)
    helper._write_hypnogram(folder / "SC4001EC-Hypnogram.edf", annotations, seconds)
    return folder


def _bci_iv_2a_layout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Subject 1's T and E sessions (8 trials each) as built by the BCI IV 2a tests (MNE cannot write GDF: the
    files are placeholders and the DataModule's reader returns the sessions built in memory) and the true
    labels A01E.mat."""
    import numpy as np
    from scipy.io import savemat

    from neurorvq.datamodules.bci_iv_2a import BCIIV2aDataModule

    helper = _data_test_module("test_bci_iv_2a")
    root = tmp_path / "bci-iv-2a"
    root.mkdir()
    sessions = {}
    for session in ("T", "E"):
        (root / f"A01{session}.gdf").write_bytes(b"")
        sessions[f"A01{session}.gdf"] = helper.make_session(session, seed=1)
    savemat(root / "A01E.mat", {"classlabel": np.asarray(helper.CLASSES, np.uint8)[:, None]})
    monkeypatch.setattr(BCIIV2aDataModule, "read_recording", lambda self, path: sessions[Path(path).name])
    return root


def _ninapro_db5_layout(tmp_path: Path) -> Path:
    """Subject 1's three exercises (a few gestures x 6 repetitions each) as written by the NinaPro DB5 tests."""
    helper = _data_test_module("test_ninapro_db5")
    root = tmp_path / "ninapro-db5"
    for exercise in (1, 2, 3):
        helper.write(root, 1, exercise)
    return root


def _layout(module: str, writer: str, folder: Path) -> Path:
    """A small folder in a dataset's published layout, written by that dataset's tests (``tests/data/<module>.py``,
    function ``writer(root) -> root``)."""
    return getattr(_data_test_module(module), writer)(folder)


LAYOUT_WRITERS = {  # DataModule class name -> (test module, writer): recipes over these read a generated folder
    "HighGammaDataModule": ("test_high_gamma", "write_high_gamma_layout"),
    "Lee2019ERPDataModule": ("test_lee2019_erp", "write_lee2019_erp_layout"),
    "Pavlov2022DataModule": ("test_pavlov2022", "write_pavlov_layout"),
    "DiscreteGesturesDataModule": ("test_discrete_gestures", "write_discrete_gestures_layout"),
    "EPN612DataModule": ("test_epn612", "write_epn612_layout"),
    "UCIEMGDataModule": ("test_uci_emg", "write_uci_emg_layout"),
}


def data_overrides(recipe: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch | None = None) -> list[str]:
    """Tiny data settings: synthetic recipes get a few windows; real-data recipes read ../shared/data or a small
    layout written under ``tmp_path``. A layout of one subject leaves val/test empty (train keeps it)."""
    data = _config(recipe)["data"]
    class_path, init = data["class_path"], data.get("init_args") or {}
    if class_path.endswith("SyntheticDataModule"):
        return ["--data.init_args.train_windows=2", "--data.init_args.val_windows=2", "--data.init_args.batch_size=2",
                "--data.init_args.num_workers=0"]
    quiet = ["--data.init_args.batch_size=2", "--data.init_args.num_workers=0", "--data.init_args.verbose=false"]
    if init.get("cache_dir") is not None:
        quiet.append(f"--data.init_args.cache_dir={tmp_path / 'cache'}")
    if class_path.endswith("EEGMMIDBDataModule"):
        from neurorvq.datamodules.eegmmidb import TASK_RUNS

        # S001 has every run, S003 runs 1-3: pretrain/eyes read runs 1-2 of both, a cue task (imagery_lr, ...)
        # its first run, which only S001 has (train only; the feature recipe makes S001 its test subject)
        task = init.get("task", "pretrain")
        runs = [1, 2] if task in ("pretrain", "eyes") else [TASK_RUNS[task][0]]
        return [f"--data.init_args.root={_require(SHARED_EEGMMIDB)}", f"--data.init_args.runs={runs}", *quiet]
    if class_path.endswith("PTBXLDataModule"):
        return [f"--data.init_args.root={_ptbxl_layout(tmp_path)}", *quiet]
    if class_path.endswith("SEMGArmbandDataModule"):
        root = _require(SHARED_DATA / "long-term-semg-armband" / "data")
        # subjects 1 and 2 only: the recipes' held-out subjects (val 4, test 5) give way to the default split
        return [f"--data.init_args.root={root}", "--data.init_args.subjects=[1, 2]", "--data.init_args.days=[1]",
                "--data.init_args.val_subjects=null", "--data.init_args.test_subjects=null", *quiet]
    if class_path.endswith("SleepEDFDataModule"):
        return [f"--data.init_args.root={_sleep_edf_layout(tmp_path)}", *quiet]
    if class_path.endswith("BCIIV2aDataModule"):
        assert monkeypatch is not None, "the BCI IV 2a layout needs monkeypatch (its reader is replaced)"
        return [f"--data.init_args.root={_bci_iv_2a_layout(tmp_path, monkeypatch)}", *quiet]
    if class_path.endswith("NinaProDB5DataModule"):
        return [f"--data.init_args.root={_ninapro_db5_layout(tmp_path)}", *quiet]
    writer = LAYOUT_WRITERS.get(class_path.rsplit(".", 1)[-1])
    if writer is not None:
        if writer[0] == "test_pavlov2022":
            pytest.importorskip("eeglabio", reason="mne-bids writes the generated EEGLAB files with eeglabio")
        return [f"--data.init_args.root={_layout(*writer, tmp_path / writer[0])}", *quiet]
    raise AssertionError(f"{recipe_name(recipe)}: add tiny data overrides for {class_path}")


# ------------------------------------------------------------------------------------------------ arguments
def tiny_args(recipe: Path, tmp_path: Path, models: TinyModels | None = None,
              monkeypatch: pytest.MonkeyPatch | None = None) -> list[str]:
    """The command line running ``recipe`` for one step on CPU with a tiny model and tiny data."""
    model = _config(recipe)["model"]
    class_path, init = model["class_path"], model.get("init_args") or {}
    modality = init.get("modality", "eeg")
    trainer = ["--trainer.fast_dev_run=1", "--trainer.accelerator=cpu", "--trainer.devices=1",
               "--trainer.strategy=auto", "--trainer.precision=32", f"--trainer.default_root_dir={tmp_path}"]
    if class_path == TOKENIZER_TASK:
        options = init.get("tokenizer") or {}
        options_class = options.get("class_path") if isinstance(options, dict) else None
        if options_class is None:
            command, overrides = "fit", [f"--model.init_args.tokenizer={TINY_TOKENIZER}"]
        else:
            assert options_class in TINY_BY_OPTIONS, f"{recipe_name(recipe)}: add a tiny size for {options_class}"
            command, overrides = "fit", [f"--model.init_args.tokenizer.class_path={options_class}",
                                         f"--model.init_args.tokenizer.init_args={TINY_BY_OPTIONS[options_class]}"]
    elif class_path == PRETRAIN_TASK:
        assert models is not None, f"{recipe_name(recipe)} needs a saved tokenizer"
        command = "fit"
        overrides = [f"--model.init_args.tokenizer={models.tokenizer(modality)}", f"--model.init_args.fm={TINY_FM}"]
    elif class_path == FINETUNE_TASK:
        command = "fit"
        if recipe_name(recipe) in FINETUNE_FROM_SAVED_FM:
            assert models is not None, f"{recipe_name(recipe)} needs a saved FM"
            overrides = [f"--model.init_args.fm={models.fm(modality)}"]
        else:
            overrides = ["--model.init_args.fm=null", f"--model.init_args.fm_overrides={TINY_FM}"]
    elif class_path == FEATURE_TASK:
        assert models is not None, f"{recipe_name(recipe)} needs a saved FM"
        command = "predict"
        overrides = [f"--model.init_args.fm={models.fm(modality)}",
                     f"--trainer.callbacks.init_args.output_dir={tmp_path / 'features'}",
                     "--data.init_args.test_subjects=[1]"]  # predict writes the test split
    else:
        raise AssertionError(f"{recipe_name(recipe)}: add tiny model overrides for {class_path}")
    return [command, "--config", str(recipe), *trainer, *overrides, *data_overrides(recipe, tmp_path, monkeypatch)]


# ------------------------------------------------------------------------------------------------ tests
def test_recipes_exist():
    names = {recipe_name(r) for r in RECIPES}
    assert {"quickstart", "eeg_tokenizer", "ecg_tokenizer", "emg_tokenizer", "semg_tokenizer", "eeg_fm",
            "eeg_fm_features", "e2e/eeg_tokenizer", "e2e/eeg_fm", "e2e/semg_tokenizer", "e2e/semg_fm",
            "finetune/bci_iv_2a", "finetune/eegmmidb_eyes", "finetune/eegmmidb_motor_imagery", "finetune/ninapro_db5",
            "finetune/ptbxl", "finetune/semg_armband", "finetune/sleep_edf", "benchmarks/motor_high_gamma",
            "benchmarks/erp_kuerp", "benchmarks/memory_pavlov", "benchmarks/sleep_sleep_edf",
            "benchmarks/eyes_eegmmidb"} <= names


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda r: recipe_name(r))
def test_recipe_runs_one_step(recipe, tmp_path, tiny_models, monkeypatch, capsys):
    main(tiny_args(recipe, tmp_path, tiny_models, monkeypatch))
    if _config(recipe)["model"]["class_path"] == FEATURE_TASK:  # the features of one batch were written
        manifest = tmp_path / "features" / "manifest.json"
        assert manifest.is_file() and json.loads(manifest.read_text())["windows"] > 0


def test_paper_recipe_trains_on_real_eegmmidb(tmp_path):
    recipe = RECIPE_DIR / "eeg_tokenizer.yaml"
    args = [a for a in tiny_args(recipe, tmp_path) if not a.startswith("--trainer.fast_dev_run")]
    main(args + ["--trainer.max_steps=3", "--trainer.limit_val_batches=1", "--trainer.logger=false",
                 "--trainer.enable_checkpointing=false", "--trainer.callbacks=[]"])


def test_official_size_in_paper_recipe():
    config = _config(RECIPE_DIR / "eeg_tokenizer.yaml")
    assert config["model"]["init_args"]["tokenizer"] == {}  # the official configuration, no overrides
    assert config["trainer"]["strategy"] == "ddp" and config["trainer"]["precision"] == "16-mixed"


# A user's mistake prints one message (exit status 2, no traceback), also when jsonargparse wraps the error of a
# recipe class it instantiates.
def test_unknown_modality_is_named(tmp_path, capsys, cli_error):
    args = tiny_args(QUICKSTART, tmp_path) + ["--model.init_args.modality=eegg", "--data.init_args.modality=eeg"]
    assert re.search(r"unknown modality 'eegg'; registered: \['ecg', 'eeg', 'emg'", cli_error(args))


def test_unknown_tokenizer_field_is_named(tmp_path, capsys, cli_error):
    args = tiny_args(QUICKSTART, tmp_path) + ["--model.init_args.tokenizer={encoder_dept: 2}"]
    err = cli_error(args)
    assert re.search(r"unknown model.init_args.tokenizer field\(s\) for NeuroRVQOptions: 'encoder_dept'; did you "
                     r"mean 'encoder_depth'", err)
    assert err.count("\n") <= 2  # the message and the --debug hint


def test_unknown_recipe_field_is_named(tmp_path, capsys, cli_error):
    args = tiny_args(QUICKSTART, tmp_path) + ["--model.init_args.learning_rate=0.1"]
    assert re.search(r"not parameters of neurorvq.tasks.tokenizer.TokenizerTask: 'model.init_args.learning_rate'"
                     r".*valid: .*'lr'", cli_error(args))


def test_unknown_field_in_a_recipe_file(tmp_path, capsys, cli_error):
    recipe = tmp_path / "bad.yaml"
    recipe.write_text(QUICKSTART.read_text().replace("    batch_size: 16", "    batch_sise: 16"))
    assert re.search(r"'data.init_args.batch_sise': did you mean 'batch_size'",
                     cli_error(["fit", "--config", str(recipe)]))
    recipe.write_text(QUICKSTART.read_text().replace("  max_epochs: 4", "  max_epoch: 4"))
    err = cli_error(["fit", "--config", str(recipe)])
    assert re.search(r"'trainer.max_epoch': did you mean 'max_epochs'", err) and "accumulate_grad_batches" not in err


def test_appending_to_a_list_field_is_not_an_unknown_field():
    """jsonargparse's ``--trainer.callbacks+=CLASS`` appends a callback: the field is ``callbacks``."""
    from neurorvq.recipe_check import check_recipe_fields

    check_recipe_fields(["--config", str(RECIPE_DIR / "quickstart.yaml"),
                         "--trainer.callbacks+=lightning.pytorch.callbacks.ModelCheckpoint",
                         "--trainer.callbacks.every_n_epochs=5"])
    with pytest.raises(ConfigError, match=r"not parameters of lightning.Trainer: 'trainer\.callback': did you mean"):
        check_recipe_fields(["--config", str(RECIPE_DIR / "quickstart.yaml"), "--trainer.callback+=x"])


def test_a_datamodule_forwarding_common_arguments_still_gets_did_you_mean():
    """The DataModules forward their common arguments with ``**common``; the early field check follows them into
    the base class (as jsonargparse does), so a typo in a common argument is still one line with the fix."""
    from neurorvq.recipe_check import check_recipe_fields

    args = ["--data=neurorvq.datamodules.eegmmidb.EEGMMIDBDataModule", "--data.init_args.root=/x"]
    check_recipe_fields(args + ["--data.init_args.cache_dir=/tmp/c", "--data.init_args.split.by=run"])
    with pytest.raises(ConfigError, match=r"'data.init_args.cache_dri': did you mean 'cache_dir'"):
        check_recipe_fields(args + ["--data.init_args.cache_dri=/tmp/c"])
