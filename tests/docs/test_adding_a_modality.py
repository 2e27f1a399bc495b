"""Runs docs/adding-a-modality.md as written: its Python blocks in order in one empty folder (§9's example, §10's
recordings), then §10's recipe (which must equal recipes/examples/ppg_tokenizer.yaml) with its commands, at a tiny
size, the way a new process sees them: 'ppg' registered only through the spec file the example saved."""

from __future__ import annotations

from pathlib import Path

import os
import re
import shlex
import shutil

# imported at collection: Lightning's log handler keeps the stderr of the moment it is imported, and a capsys
# stream (the fit below) is closed after its test, which breaks the logging of later tests
import lightning.pytorch  # noqa: F401
import pytest

import neurorvq.registry
from neurorvq.cli import main
from neurorvq.families.neurorvq_spec import as_neurorvq_spec
from neurorvq.registry import ModalitySpec, get_modality, unregister_modality

REPO = Path(__file__).resolve().parents[2]

DOC = REPO / "docs" / "adding-a-modality.md"
RECIPE = REPO / "recipes" / "examples" / "ppg_tokenizer.yaml"
TINY = ["--model.init_args.tokenizer={encoder_depth: 1, decoder_depth: 1, n_quantizers: 2, codebook_size: 32, "
        "code_dim: 8}", "--trainer.max_epochs=1", "--trainer.limit_train_batches=2", "--trainer.limit_val_batches=1"]


def blocks(language: str) -> list[str]:
    """The fenced blocks of ``language`` in the guide, in order."""
    fence = re.compile(rf"^```{language}[ \t]*\n(.*?)^```[ \t]*$", re.DOTALL | re.MULTILINE)
    return fence.findall(DOC.read_text(encoding="utf-8"))


def guide_commands() -> list[list[str]]:
    """The ``neurorvq`` command lines of the guide's bash blocks (without the program name)."""
    return [shlex.split(line)[1:] for block in blocks("bash") for line in block.splitlines()
            if line.startswith("neurorvq ")]


@pytest.fixture(scope="module")
def guide_run(tmp_path_factory):
    """The guide's Python blocks run in order in one empty folder; yields ``(folder, namespace)``. 'ppg' is
    unregistered again afterwards, so each test starts as a new process would."""
    folder = tmp_path_factory.mktemp("guide")
    assert "ppg" not in neurorvq.registry.list_modalities(), "'ppg' is already registered before the guide"
    namespace: dict = {"__name__": "adding_a_modality_example"}
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        for code in blocks("python"):
            exec(compile(code, str(DOC), "exec"), namespace)
        assert "ppg" in neurorvq.registry.list_modalities()
    finally:
        os.chdir(cwd)
        unregister_modality("ppg")
    yield folder, namespace
    unregister_modality("ppg")


def test_guide_blocks_are_the_example_the_data_the_recipe_and_its_commands() -> None:
    """Adding a block is deliberate: each one is run by a test below."""
    python = blocks("python")
    assert len(python) == 2, f"expected 2 ```python blocks (§9 example, §10 data) in {DOC.name}, found {len(python)}"
    assert "register_modality" in python[0] and "from_pretrained" in python[0] and ".save(" in python[0]
    assert "wfdb.wrsamp" in python[1]
    (recipe,) = blocks("yaml")
    assert recipe == RECIPE.read_text(encoding="utf-8"), f"the guide's recipe differs from {RECIPE}"
    assert [c[0] for c in guide_commands()] == ["fit", "reconstruct"]


def test_guide_example_runs(guide_run) -> None:
    folder, namespace = guide_run
    assert namespace["tokens"].shape == (2, 3, 8, 24)
    assert namespace["recon"].shape == namespace["x"].shape
    assert ModalitySpec.load(folder / "ppg.json") == namespace["PPG"]  # the full spec, not the demo's overrides
    assert sorted(p.name for p in (folder / "ppg_data").iterdir())[:2] == ["ppg01.dat", "ppg01.hea"]


def test_guide_trains_the_new_modality_with_neurorvq_fit(guide_run, monkeypatch, capsys) -> None:
    folder, _ = guide_run
    shutil.copy(RECIPE, folder / "ppg_tokenizer.yaml")
    monkeypatch.chdir(folder)
    fit, reconstruct = guide_commands()
    assert fit == ["fit", "--config", "ppg_tokenizer.yaml"]
    try:
        assert main(fit + TINY) == 0
        out = capsys.readouterr().out
        assert "windows train/val/test = 24/6/6 from 4/1/1 subjects" in out and "MSE after training" in out
        ckpt = folder / "runs" / "ppg_tokenizer" / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt"
        assert ckpt.is_file() and str(ckpt.relative_to(folder)) == reconstruct[reconstruct.index("--ckpt") + 1]

        # reloading as a new process would: nothing registers 'ppg', and the checkpoint holds its spec (the file
        # is moved away meanwhile)
        unregister_modality("ppg")
        from neurorvq.tasks.tokenizer import load_tokenizer

        expected = as_neurorvq_spec(ModalitySpec.load("ppg.json").with_config(
            "neurorvq", encoder_depth=1, decoder_depth=1, n_quantizers=2, codebook_size=32, code_dim=8))
        (folder / "ppg.json").rename(folder / "moved.json")
        try:
            assert load_tokenizer(ckpt).spec == expected
        finally:
            (folder / "moved.json").rename(folder / "ppg.json")

        unregister_modality("ppg")
        assert main(reconstruct) == 0
        assert "codebook usage on the test split" in capsys.readouterr().out
        assert (ckpt.parent / "reconstruction_test.json").is_file()
        assert get_modality("ppg") == ModalitySpec.load("ppg.json")  # registered through the recipe's file
    finally:
        unregister_modality("ppg")
