"""Checkpoints are complete or absent: `neurorvq fit` writes them through AtomicCheckpointIO, a disk that fills
during a write leaves no file under the final name (and no temporary file) and fails with one message naming the
path and the free space; truncated checkpoints, unfinished writes and truncated weights fail with one message
naming the file."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
import torch

from neurorvq import NeuroRVQTokenizer
from neurorvq.checkpoint_io import AtomicCheckpointIO, RandomStateCheckpoint
from neurorvq.cli.lightning_cli import run_lightning_cli
from neurorvq.errors import CheckpointError
from neurorvq.file_io import FileWriteError

REPO = Path(__file__).resolve().parents[1]
QUICKSTART = REPO / "recipes" / "quickstart.yaml"
TINY = "{encoder_depth: 1, decoder_depth: 1, n_quantizers: 2, codebook_size: 32, code_dim: 8}"


def quick(root: Path, *extra: str) -> list[str]:
    return ["fit", "--config", str(QUICKSTART), f"--model.init_args.tokenizer={TINY}", "--trainer.max_epochs=1",
            "--trainer.limit_train_batches=2", "--trainer.limit_val_batches=1", f"--trainer.default_root_dir={root}",
            "--data.init_args.train_windows=32", "--data.init_args.val_windows=16",
            *extra]


def truncate(path: Path, keep: float = 0.5) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def disk_full(fd: int) -> None:
    """``os.fsync`` on a full disk: the data did not fit (some file systems report it only here)."""
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_fit_writes_its_checkpoints_through_the_atomic_writer(tmp_path):
    cli = run_lightning_cli(quick(tmp_path))
    assert type(cli.trainer.strategy.checkpoint_io) is AtomicCheckpointIO
    folder = tmp_path / "lightning_logs" / "version_0" / "checkpoints"
    assert sorted(p.name for p in folder.iterdir()) == ["epoch=0-step=2.ckpt", "last.ckpt"]  # no .tmp left
    state = torch.load(folder / "last.ckpt", map_location="cpu", weights_only=True)  # the random state is plain data
    assert state["global_step"] == 2 and "tokenizer.quantizer.codebooks" in state["state_dict"]
    assert RandomStateCheckpoint.__qualname__ in state["callbacks"]  # the random state travels with it


def test_a_full_disk_during_a_checkpoint_write_leaves_no_file(tmp_path, monkeypatch, cli_error):
    monkeypatch.setattr(os, "fsync", disk_full)
    err = cli_error(quick(tmp_path))
    assert "neurorvq fit: error: could not write '" in err and "epoch=0-step=2.ckpt' (" in err
    assert "MB free): No space left on device. It was not written" in err
    assert sum("error:" in line for line in err.splitlines()) == 1  # one message
    folder = tmp_path / "lightning_logs" / "version_0" / "checkpoints"
    assert list(folder.iterdir()) == []  # neither a partial checkpoint nor its temporary file


def test_a_failed_rewrite_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    io = AtomicCheckpointIO()
    last = tmp_path / "checkpoints" / "last.ckpt"
    io.save_checkpoint({"epoch": 0, "w": torch.zeros(1000)}, last)
    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(FileWriteError, match=r"could not write '.*last.ckpt' \(0.0 MB; .* MB free\): No space") as e:
        io.save_checkpoint({"epoch": 1, "w": torch.ones(1000)}, last)
    assert e.value.errno == errno.ENOSPC and isinstance(e.value, OSError)
    assert torch.load(last, weights_only=True)["epoch"] == 0  # last.ckpt is still the previous, complete one
    assert sorted(p.name for p in last.parent.iterdir()) == ["last.ckpt"]


def test_a_truncated_checkpoint_given_to_lightning_is_named(tmp_path):
    """trainer.test/validate(ckpt_path=...) (as `neurorvq cv` tests the selected checkpoint) reads through the
    plugin: a damaged file is one CheckpointError naming it, not PytorchStreamReader's message."""
    import lightning as L
    from lightning.pytorch.demos.boring_classes import BoringModel

    from neurorvq.checkpoint_io import fault_tolerant

    trainer = fault_tolerant(L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False,
                                       enable_model_summary=False, limit_val_batches=1, max_epochs=1,
                                       limit_train_batches=1, default_root_dir=tmp_path))
    trainer.fit(BoringModel())
    ckpt = Path(trainer.checkpoint_callback.best_model_path)
    truncate(ckpt)
    with pytest.raises(CheckpointError, match=r"epoch=0-step=1.ckpt' cannot be read as a PyTorch checkpoint: the "
                                              r"file is damaged or incomplete"):
        trainer.validate(BoringModel(), ckpt_path=str(ckpt))


def test_unfinished_writes_are_recognised(tmp_path, cli_error):
    """A killed run's <name>.ckpt.tmp is refused as --ckpt_path, and named when the checkpoint itself is missing."""
    leftover = tmp_path / "last.ckpt.tmp"
    torch.save({"epoch": 0}, leftover)
    truncate(leftover)
    err = cli_error(quick(tmp_path, f"--ckpt_path={leftover}"))
    assert "last.ckpt.tmp' is the temporary file of a checkpoint write that did not finish" in err
    err = cli_error(quick(tmp_path, f"--ckpt_path={tmp_path / 'last.ckpt'}"))
    assert "last.ckpt' does not exist ('last.ckpt.tmp' beside it is an interrupted write of it" in err


def test_truncated_weights_are_named_by_the_cli(tmp_path, cli_error):
    """`neurorvq tokenize` from a save_pretrained folder whose model.safetensors was cut short."""
    import yaml

    folder = NeuroRVQTokenizer("eeg", encoder_depth=1, decoder_depth=1, n_quantizers=2, codebook_size=8,
                               code_dim=4).save_pretrained(tmp_path / "tok")
    truncate(folder / "model.safetensors")
    data = tmp_path / "data.yaml"
    data.write_text(yaml.safe_dump({"data": {"class_path": "neurorvq.datamodules.synthetic.SyntheticDataModule",
                                             "init_args": {"modality": "eeg", "test_windows": 2}}}))
    err = cli_error(["tokenize", "--ckpt", str(folder), "--data", str(data), "--out", str(tmp_path / "t")])
    assert f"'{folder / 'model.safetensors'}' cannot be read as a safetensors file: the file is damaged" in err
