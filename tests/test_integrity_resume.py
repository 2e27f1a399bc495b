"""An interrupted run resumed from its last checkpoint ends, on CPU with the same seed, exactly where the
uninterrupted run ends: `neurorvq fit` (a tokenizer whose dead-code re-seeding draws random numbers every step)
and a `neurorvq cv` fold (EEGNet, with dropout, on shuffled batches)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from lightning.pytorch.callbacks import Callback

from neurorvq.cli import run

REPO = Path(__file__).resolve().parents[1]
QUICKSTART = REPO / "recipes" / "quickstart.yaml"
ARMBAND = REPO / "recipes" / "finetune" / "semg_armband.yaml"
# dead_code_after: 1 re-seeds unused codes with random batch vectors at every step: the run depends on the RNG
TINY = "{encoder_depth: 1, decoder_depth: 1, n_quantizers: 2, codebook_size: 32, code_dim: 8, dead_code_after: 1}"


class CrashOnce(Callback):
    """Raise (a crash) at ``batch`` of ``epoch`` (0-based), once: not again after ``marker`` exists."""

    def __init__(self, marker: str, epoch: int = 1, batch: int = 1) -> None:
        self.marker, self.epoch, self.batch = Path(marker), epoch, batch

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.current_epoch == self.epoch and batch_idx == self.batch and not self.marker.exists():
            self.marker.touch()
            raise RuntimeError("simulated crash")


def callbacks(marker: Path, *extra: str, epoch: int = 1) -> str:
    crash = f"{{class_path: {__name__}.CrashOnce, init_args: {{marker: '{marker}', epoch: {epoch}}}}}"
    return f"--trainer.callbacks=[{', '.join([*extra, crash])}]"


def fit_args(root: Path, marker: Path, *extra: str) -> list[str]:
    last = "{class_path: lightning.pytorch.callbacks.ModelCheckpoint, init_args: {save_last: true}}"
    return ["fit", "--config", str(QUICKSTART), f"--model.init_args.tokenizer={TINY}", "--trainer.max_epochs=2",
            "--trainer.limit_train_batches=3", "--trainer.limit_val_batches=1", "--trainer.logger=false",
            f"--trainer.default_root_dir={root}", "--trainer.enable_progress_bar=false",
            "--data.init_args.train_windows=48", "--data.init_args.val_windows=16", callbacks(marker, last), *extra]


def same_weights(a: Path, b: Path) -> bool:
    sa, sb = (torch.load(p, map_location="cpu", weights_only=False)["state_dict"] for p in (a, b))
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_an_interrupted_fit_resumes_to_the_uninterrupted_result(tmp_path):
    marker = tmp_path / "crashed"
    marker.touch()
    assert run(fit_args(tmp_path / "whole", marker)) == 0
    marker.unlink()
    with pytest.raises(RuntimeError, match="simulated crash"):  # in epoch 2, after last.ckpt of epoch 1
        run(fit_args(tmp_path / "resumed", marker))
    last = tmp_path / "resumed" / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=False)["global_step"] == 3
    (last.parent / "epoch=1-step=5.ckpt.tmp").write_bytes(b"cut short")  # a write killed with the run
    assert run(fit_args(tmp_path / "resumed", marker, f"--ckpt_path={last}")) == 0
    assert not (last.parent / "epoch=1-step=5.ckpt.tmp").exists()  # removed on resume
    whole = tmp_path / "whole" / "checkpoints" / "last.ckpt"
    assert [torch.load(p, weights_only=False)["global_step"] for p in (whole, last)] == [6, 6]
    assert same_weights(whole, last)


def write_armband(root: Path, subjects=(1, 2, 3, 4), motions=(1, 2, 3), trials=3) -> Path:
    """Armband-layout CSVs (8 channels, 200 Hz, 1.5 s): the motion sets which channel carries a 40 Hz burst."""
    t = np.arange(300) / 200.0
    for sub in subjects:
        for motion in motions:
            for trial in range(1, trials + 1):
                rng = np.random.default_rng(sub * 100 + motion * 10 + trial)
                data = rng.normal(0, 0.05, (300, 8))
                data[:, motion % 8] += 0.3 * np.sin(2 * np.pi * 40 * t)
                path = root / f"sub{sub}" / "day1" / f"D1M{motion}T{trial}.csv"
                path.parent.mkdir(parents=True, exist_ok=True)
                np.savetxt(path, data, delimiter=",", fmt="%.5f")
    return root


@pytest.fixture(scope="module")
def cv_runs(tmp_path_factory) -> dict[str, Path]:
    """Fold 0 of an EEGNet cv run (3 epochs) whole, and crashed in its third epoch then resumed (same command)."""
    from neurorvq.crossval.runner import CVSettings, run_cv

    tmp = tmp_path_factory.mktemp("cv")
    data = write_armband(tmp / "data")
    marker = tmp / "crashed"
    overrides = ["--trainer.max_epochs=3", "--trainer.enable_progress_bar=false",
                 "--trainer.enable_model_summary=false", "--trainer.logger=false", "--data.init_args.batch_size=8",
                 f"--data.init_args.root={data}",
                 "--model.init_args.num_classes=3", callbacks(marker, epoch=2)]

    def cv(out: Path) -> None:
        run_cv(CVSettings(recipe=str(ARMBAND), overrides=overrides, n_folds=3, val_fraction=0.34, baseline="eegnet",
                          only_folds=[0]), out)

    marker.touch()
    cv(tmp / "whole")
    marker.unlink()
    with pytest.raises(RuntimeError, match="simulated crash"):
        cv(tmp / "resumed")
    last = tmp / "resumed" / "fold_0" / "checkpoints" / "last.ckpt"
    interrupted_epoch = torch.load(last, weights_only=False)["epoch"]
    cv(tmp / "resumed")
    return {"whole": tmp / "whole" / "fold_0", "resumed": tmp / "resumed" / "fold_0",
            "interrupted_epoch": interrupted_epoch}


def test_a_cv_fold_resumes_from_its_last_finished_epoch(cv_runs):
    """last.ckpt follows every epoch, also when the validation metric stopped improving (Lightning refreshes a
    monitoring checkpoint's last.ckpt only with a new best)."""
    assert cv_runs["interrupted_epoch"] == 1  # crashed in epoch 2 (0-based): resumes after epoch 1
    for run_dir in (cv_runs["whole"], cv_runs["resumed"]):
        assert torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False)["epoch"] == 2


def test_an_interrupted_cv_fold_resumes_to_the_uninterrupted_result(cv_runs):
    import json

    whole, resumed = (json.loads((cv_runs[k] / "metrics.json").read_text()) for k in ("whole", "resumed"))
    assert resumed["metrics"] == whole["metrics"] and resumed["selected_epoch"] == whole["selected_epoch"]
    assert same_weights(cv_runs["whole"] / "checkpoints" / "last.ckpt",
                        cv_runs["resumed"] / "checkpoints" / "last.ckpt")
