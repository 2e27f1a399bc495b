"""Tokenizer training: resume, precision, divergence, optimiser groups and schedule."""

from __future__ import annotations

import math

import lightning as L
import pytest
from lightning.pytorch.loggers import Logger
import torch

from neurorvq.datamodules.synthetic import SyntheticDataModule
from neurorvq.tasks.optim import warmup_cosine, weight_decay_groups
from neurorvq.tasks.tokenizer import TokenizerTask, TrainingDiverged, load_tokenizer

TINY = {"encoder_depth": 1, "decoder_depth": 1, "n_quantizers": 2, "codebook_size": 32, "code_dim": 8}
CHANNELS = ["c3", "cz", "c4"]


def datamodule(**kwargs) -> SyntheticDataModule:
    args = dict(modality="eeg", channels=CHANNELS, window_seconds=2.0, train_windows=16, val_windows=4,
                test_windows=4, batch_size=4, seed=3)
    return SyntheticDataModule(**{**args, **kwargs})


def trainer(tmp_path, **kwargs) -> L.Trainer:
    args = dict(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False, enable_model_summary=False,
                default_root_dir=tmp_path, num_sanity_val_steps=0, log_every_n_steps=1, deterministic=True)
    return L.Trainer(**{**args, **kwargs})


class LossRecorder(L.Callback):
    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.losses.append(float(outputs["loss"]))


class Interrupt(L.Callback):
    """Stops training after ``after_epochs`` epochs, as an interruption would (the checkpoint is written)."""

    def __init__(self, after_epochs: int) -> None:
        self.after_epochs = after_epochs

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if trainer.current_epoch + 1 >= self.after_epochs:
            trainer.should_stop = True


def test_resume_gives_same_next_step_loss(tmp_path):
    L.seed_everything(0)
    full = LossRecorder()
    trainer(tmp_path / "a", max_epochs=2, callbacks=[full], enable_checkpointing=False).fit(
        TokenizerTask(tokenizer=TINY, lr=1e-3), datamodule())

    L.seed_everything(0)
    first = trainer(tmp_path / "b", max_epochs=2, callbacks=[Interrupt(after_epochs=1)])  # same schedule, cut short
    first.fit(TokenizerTask(tokenizer=TINY, lr=1e-3), datamodule())
    ckpt = first.checkpoint_callback.best_model_path
    resumed = LossRecorder()
    task = TokenizerTask(tokenizer=TINY, lr=1e-3)
    trainer(tmp_path / "b", max_epochs=2, callbacks=[resumed]).fit(task, datamodule(), ckpt_path=ckpt)
    assert len(full.losses) == 8 and len(resumed.losses) == 4
    next_full, next_resumed = full.losses[4], resumed.losses[0]
    assert abs(next_resumed - next_full) <= 1e-6 * abs(next_full)
    # same codebooks, EMA state and optimizer state were restored: the rest of the run matches too
    assert all(abs(a - b) <= 1e-5 * abs(a) for a, b in zip(full.losses[4:], resumed.losses))


def test_bf16_mixed_cpu_step(tmp_path):
    recorder = LossRecorder()
    trainer(tmp_path, max_steps=2, precision="bf16-mixed", callbacks=[recorder], enable_checkpointing=False).fit(
        TokenizerTask(tokenizer=TINY), datamodule())
    assert len(recorder.losses) == 2 and all(math.isfinite(v) for v in recorder.losses)


class NaNData(SyntheticDataModule):
    """Windows turn NaN from the 6th training window on (batch 2 with batch size 4)."""

    def train_dataloader(self):
        loader = super().train_dataloader()

        def poisoned():
            for i, batch in enumerate(loader):
                if i >= 1:
                    batch["signal"][1:, 0, 5] = float("nan")
                yield batch
        return poisoned()


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    from lightning.pytorch.callbacks import ModelCheckpoint

    checkpoints = ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=1, save_top_k=-1)
    task = TokenizerTask(tokenizer=TINY)
    with pytest.raises(TrainingDiverged, match=r"\['code', 'amp', 'phase', 'sig'\] became NaN/Inf at step 1"):
        trainer(tmp_path, max_epochs=1, callbacks=[checkpoints]).fit(task, NaNData(**datamodule().hparams))
    saved = sorted((tmp_path / "ckpt").glob("*.ckpt"))
    assert saved, "the checkpoint of the last good step must survive"
    good = load_tokenizer(saved[-1])
    assert all(torch.isfinite(p).all() for p in good.parameters())


def test_weight_decay_groups_skip_norms_biases_embeddings():
    task = TokenizerTask(tokenizer=TINY)
    decay, no_decay = weight_decay_groups(task.tokenizer, 0.1)
    decay_ids = {id(p) for p in decay["params"]}
    names = {id(p): n for n, p in task.tokenizer.named_parameters()}
    assert all(names[i].endswith("weight") for i in decay_ids)
    for name, p in task.tokenizer.named_parameters():
        if "pos_embed" in name or "time_embed" in name or "norm" in name or name.endswith("bias"):
            assert id(p) not in decay_ids, name
    assert not any("codebooks" in n for n in names.values())  # buffers never reach the optimizer


def test_warmup_cosine_schedule():
    values = [warmup_cosine(s, total_steps=110, warmup_steps=10, min_ratio=0.01) for s in range(110)]
    assert values[0] == pytest.approx(0.1) and values[9] == pytest.approx(1.0)
    assert values[10] == pytest.approx(1.0)
    assert values[60] == pytest.approx(0.01 + 0.99 * 0.5, abs=1e-9)  # half way through the cosine
    assert values[-1] == pytest.approx(0.01, abs=1e-3)
    assert all(a >= b for a, b in zip(values[10:], values[11:]))


def test_logs_every_loss_and_codebook_figures(tmp_path):
    from lightning.pytorch.loggers import CSVLogger

    logger = CSVLogger(tmp_path)
    trainer(tmp_path, max_epochs=1, limit_train_batches=2, logger=logger, limit_val_batches=1,
            enable_checkpointing=False).fit(
        TokenizerTask(tokenizer=TINY), datamodule())
    import csv

    with open(logger.experiment.metrics_file_path) as f:
        rows = list(csv.DictReader(f))
    keys = {k for row in rows for k, v in row.items() if v not in ("", None)}
    for name in ("loss", "code", "amp", "phase", "sig"):
        assert f"train/{name}" in keys and f"val/{name}" in keys
    assert {"train_codebook/usage_b3_d1", "train_codebook/perplexity_b0_d0", "val_codebook/usage_b2_d0"} <= keys


class FigureLogger(Logger):
    """Keeps the figures a task logs, as TensorBoard's ``experiment.add_figure`` would receive them."""

    def __init__(self) -> None:
        super().__init__()
        self.figures: list[tuple[str, object, int]] = []

    @property
    def experiment(self):
        return self

    def add_figure(self, tag: str, figure, global_step: int) -> None:
        self.figures.append((tag, figure, global_step))

    name = "figures"
    version = 0

    def log_metrics(self, metrics, step=None) -> None:
        pass

    def log_hyperparams(self, params, *args, **kwargs) -> None:
        pass


def test_validation_figure_names_epoch_split_mse_and_unit(tmp_path):
    import matplotlib.pyplot as plt

    logger = FigureLogger()
    trainer(tmp_path, max_epochs=2, limit_train_batches=1, limit_val_batches=1, logger=logger,
            enable_checkpointing=False).fit(TokenizerTask(tokenizer=TINY, figure_every_n_epochs=1,
                                                          figure_channels=2), datamodule())
    assert [(tag, step) for tag, _, step in logger.figures] == [("val/reconstruction", 1), ("val/reconstruction", 2)]
    fig = logger.figures[-1][1]
    title = fig._suptitle.get_text()
    assert title.startswith("val split, window 0 | epoch 1 | MSE ") and title.endswith("(standardised)")
    assert [a.get_ylabel() for a in fig.axes] == ["c3\namplitude (µV)", "|FFT| amplitude (µV)",
                                                  "cz\namplitude (µV)", "|FFT| amplitude (µV)"]
    assert fig.axes[3].get_xlabel() == "frequency (Hz)"
    plt.close("all")
