"""docs/training.md, "Loading what `fit` wrote": a tiny quickstart fit in an empty folder, then the documented block
(after <!-- training:load -->) run exactly as written."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import lightning.pytorch  # noqa: F401  (imported at collection: Lightning's log handler keeps the stderr of its
#                          first import, which inside a capsys test would be closed afterwards)
import torch

from neurorvq.cli import main
from neurorvq.models.tokenizer import NeuroRVQTokenizer

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "training.md"
MARKER = "<!-- training:load -->"
TINY = ["--model.init_args.tokenizer={encoder_depth: 1, decoder_depth: 1, n_quantizers: 2, codebook_size: 32, "
        "code_dim: 8}", "--trainer.max_epochs=1", "--trainer.limit_train_batches=2", "--trainer.limit_val_batches=1",
        "--data.init_args.train_windows=32", "--data.init_args.val_windows=16", "--data.init_args.test_windows=16"]


def documented_block() -> str:
    """The ```python block right after the marker."""
    text = DOC.read_text(encoding="utf-8")
    assert text.count(MARKER) == 1, f"expected one {MARKER} in {DOC.name}"
    match = re.match(r"\s*```python[ \t]*\n(.*?)^```[ \t]*$", text.split(MARKER, 1)[1], re.DOTALL | re.MULTILINE)
    assert match, f"no ```python block right after {MARKER} in {DOC.name}"
    return match.group(1)


def test_the_documented_block_loads_the_checkpoint_fit_wrote(tmp_path, monkeypatch, capsys):
    (tmp_path / "recipes").mkdir()
    shutil.copy(REPO / "recipes" / "quickstart.yaml", tmp_path / "recipes")
    monkeypatch.chdir(tmp_path)
    assert main(["fit", "--config", "recipes/quickstart.yaml", *TINY]) == 0
    capsys.readouterr()

    namespace: dict = {"__name__": "training_doc_example"}
    exec(compile(documented_block(), str(DOC), "exec"), namespace)

    tok, encoded, recon, x = namespace["tok"], namespace["encoded"], namespace["recon"], namespace["x"]
    assert isinstance(tok, NeuroRVQTokenizer) and not tok.training
    assert tok.spec.n_quantizers == 2 and tok.spec.codebook_size == 32  # the fit's model, not a default one
    streams = tok.spec.num_branches * tok.spec.n_quantizers
    assert encoded.ids.shape == (2, streams, 8 * 2) and recon.shape == x.shape == (2, 8, 400)
    assert torch.isfinite(recon).all()
    # the block's model is the one fit trained: its checkpoint's weights
    ckpt = torch.load(tmp_path / "runs/quickstart/lightning_logs/version_0/checkpoints/last.ckpt",
                      map_location="cpu", weights_only=False)
    trained = {k[len("tokenizer."):]: v for k, v in ckpt["state_dict"].items() if k.startswith("tokenizer.")}
    assert all(torch.equal(v, trained[k]) for k, v in tok.state_dict().items())
    again = NeuroRVQTokenizer.from_pretrained(tmp_path / "my-tokenizer").eval()
    assert torch.equal(again.tokenize(x, namespace["channels"]).ids, encoded.ids)
