"""The README's quickstart chain (fit -> reconstruct -> tokenize, the block after <!-- readme:chain -->), run as
written at a tiny size from an empty folder: each output lands where the README's "What you get" table says."""

from __future__ import annotations

from pathlib import Path

import shlex
import shutil

import lightning.pytorch  # noqa: F401  (imported at collection: Lightning's log handler keeps the stderr of its
#                          first import, which inside a capsys test would be closed afterwards)

from neurorvq.cli import main

REPO = Path(__file__).resolve().parents[2]

TINY = ["--model.init_args.tokenizer={encoder_depth: 1, decoder_depth: 1, n_quantizers: 2, codebook_size: 32, "
        "code_dim: 8}", "--trainer.max_epochs=1", "--trainer.limit_train_batches=2", "--trainer.limit_val_batches=1",
        "--data.init_args.train_windows=32", "--data.init_args.val_windows=16", "--data.init_args.test_windows=16"]


def readme_chain() -> list[list[str]]:
    """The ``neurorvq`` commands of the README's chain block that use the quickstart recipe, without comments."""
    text = (REPO / "README.md").read_text()
    block = text.split("<!-- readme:chain -->", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    commands = []
    for line in block.splitlines():
        words = shlex.split(line.split("#", 1)[0])
        if words[:1] == ["neurorvq"] and "recipes/quickstart.yaml" in words:
            commands.append(words[1:])
    return commands


def test_the_readme_chain_puts_every_output_where_the_readme_says(tmp_path, monkeypatch, capsys):
    (tmp_path / "recipes").mkdir()
    shutil.copy(REPO / "recipes" / "quickstart.yaml", tmp_path / "recipes")
    monkeypatch.chdir(tmp_path)
    chain = readme_chain()
    assert [c[0] for c in chain] == ["fit", "reconstruct", "tokenize"]
    for command in chain:
        assert main(command + (TINY if command[0] == "fit" else [])) == 0, command
    run = tmp_path / "runs" / "quickstart" / "lightning_logs" / "version_0"
    assert (run / "checkpoints" / "last.ckpt").is_file() and (run / "config.yaml").is_file()
    assert list(run.glob("events.out.tfevents.*"))
    assert (run / "checkpoints" / "reconstruction_test.png").is_file()
    assert (run / "checkpoints" / "reconstruction_test.json").is_file()
    assert (tmp_path / "tokens" / "manifest.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["recipes", "runs", "tokens"]  # nothing else in the cwd
    assert "codebook usage on the test split" in capsys.readouterr().out
