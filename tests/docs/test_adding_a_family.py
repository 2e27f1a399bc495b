"""Runs docs/adding-a-family.md as written: its first Python block must be neurorvq/families/toy.py itself (the
documented family is the shipped one), its YAML block recipes/examples/toy_tokenizer.yaml; the second Python block
runs in an empty folder, and the bash block's commands run at a tiny size through neurorvq.cli.main."""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

# imported at collection: Lightning's log handler keeps the stderr of the moment it is imported (see
# tests/docs/test_adding_a_modality.py)
import lightning.pytorch  # noqa: F401
import torch

from neurorvq.cli import main
from neurorvq.token_files import read_manifest, read_token_dir

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "adding-a-family.md"
MODULE = REPO / "neurorvq" / "families" / "toy.py"
RECIPE = REPO / "recipes" / "examples" / "toy_tokenizer.yaml"
TINY = ["--trainer.max_epochs=1", "--trainer.limit_train_batches=2", "--trainer.limit_val_batches=1",
        "--trainer.enable_progress_bar=false"]


def blocks(language: str) -> list[str]:
    fence = re.compile(rf"^```{language}[ \t]*\n(.*?)^```[ \t]*$", re.DOTALL | re.MULTILINE)
    return fence.findall(DOC.read_text(encoding="utf-8"))


def test_the_guide_shows_the_shipped_module_and_recipe() -> None:
    python = blocks("python")
    assert len(python) == 2, f"expected 2 ```python blocks in {DOC.name}, found {len(python)}"
    assert python[0] == MODULE.read_text(encoding="utf-8"), f"the guide's first block differs from {MODULE}"
    (recipe,) = blocks("yaml")
    assert recipe == RECIPE.read_text(encoding="utf-8"), f"the guide's recipe differs from {RECIPE}"


def test_the_python_example_runs(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "adding_a_family_example"}
    exec(compile(blocks("python")[1], str(DOC), "exec"), namespace)
    assert namespace["encoded"].layout.groups == ("patch",)


def test_the_commands_train_reconstruct_and_tokenize_the_toy_family(tmp_path, monkeypatch, capsys) -> None:
    commands = [shlex.split(line)[1:] for block in blocks("bash") for line in block.splitlines()
                if line.startswith("neurorvq ")]
    assert [c[0] for c in commands] == ["fit", "reconstruct", "tokenize"]
    monkeypatch.chdir(tmp_path)
    (tmp_path / "recipes" / "examples").mkdir(parents=True)
    (tmp_path / "recipes" / "examples" / "toy_tokenizer.yaml").write_text(RECIPE.read_text())
    fit, reconstruct, tokenize = commands
    assert main(fit + TINY) == 0
    assert "MSE after training" in capsys.readouterr().out
    ckpt = tmp_path / "runs" / "toy_tokenizer" / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt"
    saved = torch.load(ckpt, map_location="cpu", weights_only=False)
    assert saved["neurorvq"]["models"]["tokenizer"]["family"] == "toy_vq"
    assert main(reconstruct + ["--max_batches", "1"]) == 0
    out = capsys.readouterr().out
    assert "codebook usage on the test split" in out and "| patch |" in out
    assert (ckpt.parent / "reconstruction_test.json").is_file()
    assert main(tokenize) == 0
    shards = list(read_token_dir(tmp_path / "runs" / "toy_tokens"))
    assert shards and shards[0].layout.groups == ("patch",) and shards[0].ids.shape[1:] == (1, 4 * 2)
    assert read_manifest(tmp_path / "runs" / "toy_tokens")["family"] == "toy_vq"
    assert sorted(shards[0].side) == ["mean", "std"]
    assert os.path.isfile(tmp_path / "runs" / "toy_tokens" / "manifest.json")
