"""Freeze today's file formats before the multi-family refactor: tiny files written by the current code, which
``tests/test_legacy_formats.py`` must keep loading (or refuse with a migration message) after every later change.

Run once, at the commit named in the output's ``legacy.json``, from the repository root:

    python scripts/make_legacy_fixtures.py tests/fixtures/legacy_v0_1

It writes (ECG-sized model, 1-block transformers, 2 RVQ levels x 8 codes: about 1.5 MB in all):
``tokenizer/`` and ``fm/`` (``save_pretrained`` folders), ``tokenizer_task.ckpt`` (a TokenizerTask checkpoint
with its ``modality_spec``; the test derives the older form without it), ``pretrain_task.ckpt`` (a PretrainTask
checkpoint), ``tokens/`` (a format-1 token folder), ``legacy_ecg.json`` (a flat spec file), ``inputs.safetensors``
(signals, channel ids, and the ids and FM features they must give) and ``legacy.json`` (the hashes and
preprocessing configs that caches and token folders are keyed by).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

TINY = {"encoder_depth": 1, "decoder_depth": 1, "n_quantizers": 2, "codebook_size": 8, "code_dim": 4,
        "max_patches": 16}
CHANNELS = ["i", "ii", "v1"]
DATA = {"class_path": "neurorvq.datamodules.synthetic.SyntheticDataModule",
        "init_args": {"modality": "ecg", "channels": CHANNELS, "window_seconds": 2.0, "train_windows": 8,
                      "val_windows": 4, "test_windows": 4, "batch_size": 4}}


def _fit_one_step(task, data, checkpoint: Path) -> None:
    """One optimiser step of ``task`` on ``data``, then its weights-only Lightning checkpoint."""
    import lightning as L

    with tempfile.TemporaryDirectory() as tmp:
        trainer = L.Trainer(accelerator="cpu", devices=1, max_steps=1, logger=False, enable_checkpointing=False,
                            enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                            limit_val_batches=0, default_root_dir=tmp)
        trainer.fit(task, data)
        trainer.save_checkpoint(checkpoint, weights_only=True)


def main(out: Path) -> None:
    from neurorvq.commands import tokenize
    from neurorvq.data.preprocess import Pipeline
    from neurorvq.datamodules.synthetic import SyntheticDataModule
    from neurorvq.registry import get_modality
    from neurorvq.tasks.finetune import load_fm
    from neurorvq.tasks.pretrain import PretrainTask
    from neurorvq.tasks.tokenizer import TokenizerTask, load_tokenizer
    from neurorvq.token_files import weights_hash

    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    data = SyntheticDataModule(**DATA["init_args"])
    _fit_one_step(TokenizerTask(modality="ecg", tokenizer=TINY), data, out / "tokenizer_task.ckpt")
    tokenizer = load_tokenizer(str(out / "tokenizer_task.ckpt")).eval()
    tokenizer.save_pretrained(out / "tokenizer")

    _fit_one_step(PretrainTask(str(out / "tokenizer"), modality="ecg", fm={"depth": 1}, lr=1e-3), data,
                  out / "pretrain_task.ckpt")
    fm = load_fm(str(out / "pretrain_task.ckpt")).eval()
    fm.save_pretrained(out / "fm")

    with tempfile.TemporaryDirectory() as tmp:
        recipe = Path(tmp) / "data.yaml"
        recipe.write_text(json.dumps({"data": DATA}))
        tokenize(str(out / "tokenizer"), str(recipe), str(out / "tokens"), split="test", device="cpu")

    spec_file = get_modality("ecg").replace(name="legacy_ecg", doc="a flat spec file of neurorvq 0.1 (legacy)")
    spec_file.save(out / "legacy_ecg.json")

    generator = torch.Generator().manual_seed(1)
    x = torch.randn(2, len(CHANNELS), 400, generator=generator) * 0.5  # [B, C, T] mV, 2 s at 200 Hz
    ids = torch.tensor([get_modality("ecg").channel_index(c) for c in CHANNELS])
    with torch.no_grad():
        tokens = tokenizer.encode(x, ids)
        features, _ = fm.embed(x, ids)
    from neurorvq.file_io import write_safetensors

    write_safetensors(out / "inputs.safetensors", {"signal": x, "channel_ids": ids, "tokens": tokens.contiguous(),
                                                   "fm_features": features.contiguous()})
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    legacy = {"commit": commit, "channels": CHANNELS, "tokenizer_options": TINY,
              "tokenizer_config_hash": tokenizer.spec.config_hash(), "tokenizer_weights_hash": weights_hash(tokenizer),
              "fm_config_hash": fm.spec.config_hash(),
              "spec_file_config_hash": spec_file.config_hash(),
              "builtin_config_hash": {m: get_modality(m).config_hash() for m in ("eeg", "ecg", "emg", "semg200")},
              "builtin_pipeline": {m: Pipeline.default(get_modality(m)).config()
                                   for m in ("eeg", "ecg", "emg", "semg200")}}
    (out / "legacy.json").write_text(json.dumps(legacy, indent=1, sort_keys=True) + "\n")
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"legacy fixtures of {commit[:7]} in {out}: {size / 1e6:.2f} MB")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/legacy_v0_1"))
