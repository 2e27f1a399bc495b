"""fit/validate/test/predict through the neurorvq CLI: a missing --ckpt_path, resuming a finished run (and
extending it), and a run that fails before its first step leaving no version_N folder."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from neurorvq.cli import main, run
from neurorvq.cli.lightning_cli import DropEmptyRunFolder

REPO = Path(__file__).resolve().parents[2]

QUICKSTART = REPO / "recipes" / "quickstart.yaml"
TINY = "{encoder_depth: 1, decoder_depth: 1, n_quantizers: 2, codebook_size: 32, code_dim: 8}"


def quick(root: Path, *extra: str) -> list[str]:
    return ["fit", "--config", str(QUICKSTART), f"--model.init_args.tokenizer={TINY}", "--trainer.max_epochs=1",
            "--trainer.limit_train_batches=2", "--trainer.limit_val_batches=1", f"--trainer.default_root_dir={root}",
            "--data.init_args.train_windows=32", "--data.init_args.val_windows=16", *extra]


def versions(root: Path) -> list[str]:
    return sorted(p.name for p in (root / "lightning_logs").glob("version_*"))


def test_a_missing_checkpoint_is_refused_before_anything_is_made(tmp_path, capsys, cli_error):
    err = cli_error(quick(tmp_path, f"--ckpt_path={tmp_path / 'nope.ckpt'}"))
    assert "nope.ckpt' does not exist" in err and "leave --ckpt_path out" in err
    assert not (tmp_path / "lightning_logs").exists()
    err = cli_error(["validate", "--config", str(QUICKSTART), "--ckpt_path", str(tmp_path / "gone.ckpt")])
    assert "gone.ckpt' does not exist" in err


def test_resuming_a_finished_run_says_how_to_extend_it(tmp_path, capsys, cli_error):
    assert main(quick(tmp_path)) == 0
    last = tmp_path / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt"
    assert last.is_file() and versions(tmp_path) == ["version_0"]
    err = cli_error(quick(tmp_path, f"--ckpt_path={last}"))
    assert "already finished 1 epoch(s) and max_epochs is 1" in err and "--trainer.max_epochs=2" in err
    assert versions(tmp_path) == ["version_0"]  # the refused resume made no folder
    # extending: raise max_epochs; training goes on from the checkpoint's epoch
    assert main(quick(tmp_path, f"--ckpt_path={last}", "--trainer.max_epochs=2")) == 0
    extended = sorted((tmp_path / "lightning_logs").glob("version_*/checkpoints/last.ckpt"))[-1]
    state = torch.load(extended, map_location="cpu", weights_only=False)
    assert state["loops"]["fit_loop"]["epoch_progress"]["current"]["processed"] == 2 and state["global_step"] == 4


def test_a_run_failing_before_its_first_step_leaves_no_version_folder(tmp_path, monkeypatch):
    bad = quick(tmp_path, "--model.init_args.lr=-1")  # AdamW refuses it in configure_optimizers, inside fit
    with pytest.raises(ValueError, match="Invalid learning rate"):
        run(bad)
    assert versions(tmp_path) == []
    # without the cleanup the saved config would be left in a version folder: the callback is what removes it
    monkeypatch.setattr(DropEmptyRunFolder, "on_exception", lambda *args: None)
    with pytest.raises(ValueError):
        run(bad)
    assert versions(tmp_path) == ["version_0"]


@pytest.mark.parametrize("case", ["lacks", "same_electrode", "malformed"])
def test_channel_map_mistakes_are_one_message(tmp_path, capsys, case, cli_error, anonymised_edf):
    """`neurorvq fit` on an EEG folder whose channels are 'EEG 000'...: a map naming channels the file lacks, two
    channels on one electrode and a malformed map file each exit with status 2 and one message naming them."""
    anonymised_edf(tmp_path / "data" / "sub-01" / "rec.edf", 4)
    maps = {"lacks": '{"EEG 000": fp1, "EEG 001": fp2, "EEG 009": cz}',
            "same_electrode": '{"EEG 000": fp1, "EEG 001": FP1}'}
    if case == "malformed":
        (tmp_path / "map.csv").write_text("EEG 000,fp1\nEEG 001 fp2\n")
        channel_map = str(tmp_path / "map.csv")
    else:
        channel_map = maps[case]
    err = cli_error(["fit", "--config", str(QUICKSTART), f"--model.init_args.tokenizer={TINY}",
                     "--data=neurorvq.datamodules.eeg_folder.EEGFolderDataModule",
                     f"--data.init_args.root={tmp_path / 'data'}", f"--data.init_args.channel_map={channel_map}",
                     "--trainer.max_epochs=1", f"--trainer.default_root_dir={tmp_path}"])
    expected = {"lacks": r"rec.edf lacks 1 channel\(s\) named in channel_map: 'EEG 009'",
                "same_electrode": r"'EEG 000' and 'EEG 001' both map to 'fp1'",
                "malformed": r"map.csv', line 2: expected two columns"}[case]
    assert re.search(expected, err), err


def test_a_run_saved_at_validation_end_counts_its_last_epoch(tmp_path):
    """A last.ckpt written at validation end (check_val_every_n_epoch > 1, val_check_interval < 1) has the final
    epoch started but not yet counted as processed: it is still finished."""
    from neurorvq.cli.lightning_cli import finished_training

    def save(started: int, processed: int, last_batch: bool) -> str:
        path = tmp_path / f"{started}_{processed}_{last_batch}.ckpt"
        loops = {"fit_loop": {"epoch_progress": {"current": {"started": started, "processed": processed}},
                              "epoch_loop.batch_progress": {"is_last_batch": last_batch}}}
        torch.save({"epoch": started - 1, "global_step": 8, "loops": loops}, path)
        return str(path)

    assert "finished 2 epoch(s)" in finished_training(save(2, 1, True), max_epochs=2, max_steps=None)
    assert finished_training(save(2, 1, False), max_epochs=2, max_steps=None) is None  # saved mid-epoch
    assert finished_training(save(2, 2, False), max_epochs=3, max_steps=None) is None
    assert "max_steps=8" in finished_training(save(1, 1, True), max_epochs=None, max_steps=8)
