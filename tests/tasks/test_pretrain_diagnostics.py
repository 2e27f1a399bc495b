"""Pretraining diagnostics: masked accuracy beside the most-frequent-code accuracy, codebook usage and perplexity
of the targets, per (branch, depth) head; the json in the run folder, the checkpoint key and its readers."""

from __future__ import annotations

import json
import math

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger

from neurorvq import NeuroRVQTokenizer
from neurorvq.datamodules.synthetic import SyntheticDataModule
from neurorvq.tasks.pretrain import PretrainTask
from neurorvq.tasks.pretrain_diagnostics import (CHECKPOINT_KEY, DIAGNOSTICS_FILE, add_code_counts,
                                                 diagnostics_markdown, diagnostics_table, read_pretrain_diagnostics)

TINY = dict(encoder_depth=1, decoder_depth=1, n_quantizers=2, codebook_size=32, code_dim=8)
S, N, V = 4, 2, 32  # the tiny EEG tokenizer: 4 branches, 2 levels, 32 codes


# ---------------------------------------------------------------------------------------------- pure functions
def _hand_example():
    train = torch.tensor([[[5, 1, 0, 2], [0, 0, 3, 3]]])  # S=1, N=2, V=4; head (0,1) ties: the smaller id, 2
    val = torch.tensor([[[1, 2, 0, 1], [1, 0, 1, 2]]])  # 4 masked tokens per head
    correct = torch.tensor([[2, 3]])
    return train, val, correct, 4


def test_table_on_a_hand_made_example():
    table = diagnostics_table(*_hand_example())
    assert (table["branches"], table["depths"], table["codebook_size"]) == (1, 2, 4)
    assert table["majority_source"] == table["usage_source"] == "train"
    assert table["train_tokens"] == 8 and table["val_masked_tokens"] == 4
    assert table["majority_code"] == [[0, 2]]
    assert table["masked_accuracy"] == [[0.5, 0.75]]
    assert table["majority_accuracy"] == [[0.25, 0.25]]  # val[0,0,0] / 4 and val[0,1,2] / 4
    assert table["codebook_usage"] == [[0.75, 0.5]]
    p = [5 / 8, 1 / 8, 2 / 8]
    ppl = math.exp(-sum(q * math.log(q) for q in p))
    assert table["perplexity"][0][0] == pytest.approx(ppl, abs=1e-12)
    assert table["perplexity"][0][1] == pytest.approx(2.0, abs=1e-12)
    assert table["mean"] == pytest.approx({"masked_accuracy": 0.625, "majority_accuracy": 0.25,
                                           "codebook_usage": 0.625, "perplexity": (ppl + 2) / 2})
    assert "most frequent code" in table["note"]
    json.dumps(table)  # JSON-ready


def test_table_without_training_counts_uses_validation_then_nothing():
    train, val, correct, total = _hand_example()
    table = diagnostics_table(torch.zeros_like(train), val, correct, total)
    assert table["majority_source"] == "validation"
    assert table["majority_code"] == [[1, 3]]
    assert table["majority_accuracy"] == [[0.5, 0.5]]
    assert table["codebook_usage"] == [[0.75, 0.75]]
    empty = diagnostics_table(torch.zeros_like(train), torch.zeros_like(val), torch.zeros_like(correct), 0)
    assert empty["majority_source"] is None and empty["masked_accuracy"] == [[None, None]]
    assert empty["mean"] == {"masked_accuracy": None, "majority_accuracy": None, "codebook_usage": None,
                             "perplexity": None}
    assert "n/a" in diagnostics_markdown(empty)
    only_train = diagnostics_table(train, torch.zeros_like(val), torch.zeros_like(correct), 0)
    assert only_train["majority_accuracy"] == [[None, None]] and only_train["codebook_usage"] == [[0.75, 0.5]]
    with pytest.raises(ValueError, match="val_correct"):
        diagnostics_table(train, val, correct.flatten(), total)


def test_add_code_counts_matches_bincount_per_head():
    g = torch.Generator().manual_seed(0)
    codes = torch.randint(0, 5, (3, 2, 50), generator=g)
    counts = torch.zeros(3, 2, 5, dtype=torch.long)
    add_code_counts(counts, codes)
    add_code_counts(counts, codes[:, :, :7])
    for s in range(3):
        for n in range(2):
            expected = torch.bincount(codes[s, n], minlength=5) + torch.bincount(codes[s, n, :7], minlength=5)
            assert torch.equal(counts[s, n], expected)
    with pytest.raises(ValueError, match="codes must be"):
        add_code_counts(counts, codes[:2])


def test_markdown_has_rows_and_the_means():
    table = {**diagnostics_table(*_hand_example()), "epoch": 3, "global_step": 40}
    text = diagnostics_markdown(table)
    assert "| 0 | 0 | 0.500 | 0.250 | 0.750 |" in text and "| 0 | 1 | 0.750 | 0.250 | 0.500 | 2.0 |" in text
    assert "masked accuracy 0.625, majority accuracy 0.250" in text and "epoch 3, step 40" in text


def test_reader_returns_none_without_the_key(tmp_path):
    torch.save({"state_dict": {}}, tmp_path / "old.ckpt")
    assert read_pretrain_diagnostics(tmp_path / "old.ckpt") is None
    assert read_pretrain_diagnostics(tmp_path) is None  # a folder (save_pretrained output)
    torch.save({CHECKPOINT_KEY: {"mean": {}}}, tmp_path / "new.ckpt")
    assert read_pretrain_diagnostics(str(tmp_path / "new.ckpt")) == {"mean": {}}
    with pytest.raises(FileNotFoundError):
        read_pretrain_diagnostics(tmp_path / "missing.ckpt")


# ---------------------------------------------------------------------------------------------- in training
@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("diag") / "tok"
    NeuroRVQTokenizer("eeg", **TINY).save_pretrained(path)
    return path


def _data():
    return SyntheticDataModule(modality="eeg", channels=["c3", "cz", "c4"], window_seconds=2.0, train_windows=8,
                               val_windows=6, batch_size=4)  # val batches of 4 and 2


@pytest.fixture(scope="module")
def fitted(tokenizer_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("diag_run")
    L.seed_everything(0, verbose=False)
    task = PretrainTask(str(tokenizer_dir), fm={"depth": 1}, lr=1e-3)
    logger = TensorBoardLogger(str(root), name="tb")
    checkpoint = ModelCheckpoint(dirpath=root / "checkpoints", save_last=True)
    trainer = L.Trainer(accelerator="cpu", devices=1, max_epochs=2, logger=logger, callbacks=[checkpoint],
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=1,
                        default_root_dir=root)
    data = _data()
    trainer.fit(task, data)
    return task, trainer, data, root


def _hand_counts(task: PretrainTask, data: SyntheticDataModule):
    """Training-target counts of one epoch and, with the masks of the last validation (drawn from global_step,
    unchanged since it ran), the validation masked counts, the FM's hits and the masked total."""
    task.eval()
    train = torch.zeros(S, N, V, dtype=torch.long)
    val = torch.zeros(S, N, V, dtype=torch.long)
    hits, total = torch.zeros(S, N, dtype=torch.long), 0
    with torch.no_grad():
        for batch in data.train_dataloader():
            t = task.tokenizer.encode(batch["signal"], batch["channel_ids"])  # [B, S, N, L]
            for s in range(S):
                for n in range(N):
                    train[s, n] += torch.bincount(t[:, s, n].flatten(), minlength=V)
        for batch in data.val_dataloader():
            x, ids = batch["signal"], batch["channel_ids"]
            t = task.tokenizer.encode(x, ids)
            mask = task._mask(t.shape[0], t.shape[-1], x.device)
            pred = task.fm.forward_pretrain(x, ids, mask).logits.argmax(-1).reshape(S, N, -1)
            total += int(mask.sum())
            for s in range(S):
                for n in range(N):
                    val[s, n] += torch.bincount(t[:, s, n][mask], minlength=V)
                    hits[s, n] += int((pred[s, n] == t[:, s, n][mask]).sum())
    return train, val, hits, total


def test_json_in_the_run_folder_matches_a_hand_computation(fitted):
    task, trainer, data, root = fitted
    path = root / "tb" / "version_0" / DIAGNOSTICS_FILE  # the TensorBoard run folder (trainer.log_dir)
    assert trainer.log_dir == str(path.parent) and path.is_file()
    table = json.loads(path.read_text())
    assert table == task.diagnostics
    assert (table["epoch"], table["global_step"], table["stage"]) == (1, 4, "train_epoch_end")
    assert table["validation"] == {"epoch": 1, "global_step": 4}
    assert table["tokenizer"] == task.hparams.tokenizer and table["majority_source"] == "train"
    for name in ("masked_accuracy", "majority_accuracy", "codebook_usage", "perplexity", "majority_code"):
        assert len(table[name]) == S and all(len(row) == N for row in table[name]), name
    for name in ("masked_accuracy", "majority_accuracy", "codebook_usage"):
        assert all(0.0 <= x <= 1.0 for row in table[name] for x in row), name
    assert all(1.0 <= x <= V for row in table["perplexity"] for x in row)

    train, val, hits, total = _hand_counts(task, data)
    assert table["train_tokens"] == int(train[0, 0].sum()) and table["val_masked_tokens"] == total
    majority = train.argmax(-1)
    assert table["majority_code"] == majority.tolist()
    for s in range(S):
        for n in range(N):
            assert table["majority_accuracy"][s][n] == pytest.approx(int(val[s, n, majority[s, n]]) / total,
                                                                     abs=1e-12)
            assert table["masked_accuracy"][s][n] == pytest.approx(int(hits[s, n]) / total, abs=1e-12)
            assert table["codebook_usage"][s][n] == pytest.approx(int((train[s, n] > 0).sum()) / V, abs=1e-12)
    assert table == diagnostics_table(train, val, hits, total) | {k: table[k] for k in
                                                                   ("epoch", "global_step", "stage", "tokenizer",
                                                                    "validation")}


def test_logged_to_tensorboard(fitted):
    task, trainer, data, root = fitted
    metrics = trainer.callback_metrics
    for key in ("val/majority_accuracy", "val/accuracy_above_majority", "val_majority_accuracy/b3_d1",
                "targets/codebook_usage", "targets/perplexity", "targets_codebook_usage/b0_d0", "val/masked_accuracy"):
        assert key in metrics, key
    assert float(metrics["val/majority_accuracy"]) == pytest.approx(task.diagnostics["mean"]["majority_accuracy"])
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(trainer.log_dir)
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"val/majority_accuracy", "val_majority_accuracy/b0_d1", "targets/codebook_usage",
            "val_accuracy/b0_d1"} <= tags
    assert len(events.Scalars("val/majority_accuracy")) == 2  # one per validation epoch, the sanity check excluded


def test_checkpoint_holds_the_table_and_readers(fitted, tokenizer_dir):
    task, trainer, data, root = fitted
    last = root / "checkpoints" / "last.ckpt"
    table = read_pretrain_diagnostics(last)
    assert table == task.diagnostics
    assert torch.load(last, map_location="cpu", weights_only=False)[CHECKPOINT_KEY] == table
    assert not any("counts" in k or k.startswith("val_") for k in task.state_dict())  # not in the weights
    restored = PretrainTask.load_from_checkpoint(last)
    assert restored.diagnostics == table
    text = diagnostics_markdown(table)
    assert text.count("\n| ") == S * N  # one row per head
    assert f"{table['majority_accuracy'][3][1]:.3f}" in text
    assert f"masked accuracy {table['mean']['masked_accuracy']:.3f}" in text
    assert f"perplexity {table['mean']['perplexity']:.1f}" in text


def test_without_validation_the_training_epoch_end_writes_the_table(tokenizer_dir, tmp_path):
    task = PretrainTask(str(tokenizer_dir), fm={"depth": 1})
    trainer = L.Trainer(accelerator="cpu", devices=1, max_epochs=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                        default_root_dir=tmp_path)
    trainer.fit(task, _data())
    table = json.loads((tmp_path / DIAGNOSTICS_FILE).read_text())
    assert table["validation"] is None and table["majority_source"] == "train"
    assert table["masked_accuracy"][0] == [None, None] and table["mean"]["majority_accuracy"] is None
    assert all(0.0 < x <= 1.0 for row in table["codebook_usage"] for x in row)
    assert "targets/codebook_usage" in trainer.callback_metrics


# ---------------------------------------------------------------------------------------------- two ranks
def _ddp_worker(rank: int, port: int, tokenizer_dir: str, out_dir: str) -> None:
    """One rank of a two-process CPU (gloo) fit; saves its local counts and its table (or its traceback)."""
    import os
    import traceback
    import warnings
    from datetime import timedelta
    from pathlib import Path

    import torch.distributed as dist
    from lightning.pytorch.strategies import DDPStrategy

    out = Path(out_dir)
    try:
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), LOCAL_RANK=str(rank), NODE_RANK="0",
                          WORLD_SIZE="2")
        torch.set_num_threads(1)
        warnings.filterwarnings("ignore")
        dist.init_process_group("gloo", rank=rank, world_size=2, timeout=timedelta(seconds=60))
        try:
            L.seed_everything(0, verbose=False)
            task = PretrainTask(tokenizer_dir, fm={"depth": 1})
            trainer = L.Trainer(accelerator="cpu", devices=2, strategy=DDPStrategy(timeout=timedelta(seconds=60)),
                                max_epochs=1, num_sanity_val_steps=0, logger=False, enable_checkpointing=False,
                                enable_progress_bar=False, enable_model_summary=False, default_root_dir=out)
            trainer.fit(task, SyntheticDataModule(modality="eeg", channels=["c3", "cz", "c4"], window_seconds=2.0,
                                                  train_windows=8, val_windows=4, batch_size=2))
            torch.save({"local": task.local_diagnostic_counts(), "table": task.diagnostics}, out / f"rank{rank}.pt")
            dist.barrier()
        finally:
            dist.destroy_process_group()
    except BaseException:
        (out / f"error_rank{rank}.txt").write_text(f"rank {rank}:\n{traceback.format_exc()}")
        raise


def test_counts_are_summed_over_two_ranks(tokenizer_dir, tmp_path):
    from ddp_spawn import free_port, spawn

    spawn(_ddp_worker, (free_port(), str(tokenizer_dir), str(tmp_path)), tmp_path)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(2)]
    assert ranks[0]["table"] == ranks[1]["table"]  # every rank holds the same, reduced table
    local = [r["local"] for r in ranks]
    assert not torch.equal(local[0]["train_code_counts"], local[1]["train_code_counts"])  # different data per rank
    summed = {name: local[0][name] + local[1][name] for name in local[0]}
    expected = diagnostics_table(summed["train_code_counts"], summed["val_code_counts"], summed["val_correct"],
                                 int(summed["val_masked"]))
    table = ranks[0]["table"]
    assert {k: table[k] for k in expected} == expected
    # the rank sums are the counts of all 8 training windows (each rank saw 4): none was lost or counted twice
    from neurorvq.tasks.tokenizer import load_tokenizer

    tokenizer = load_tokenizer(str(tokenizer_dir)).eval()
    windows = SyntheticDataModule(modality="eeg", channels=["c3", "cz", "c4"], window_seconds=2.0, train_windows=8,
                                  val_windows=4, batch_size=8).train_dataloader()
    batch = next(iter(windows))
    with torch.no_grad():
        targets = tokenizer.encode(batch["signal"], batch["channel_ids"])  # [8, S, N, L]
    hand = torch.stack([torch.stack([torch.bincount(targets[:, s, n].flatten(), minlength=V) for n in range(N)])
                        for s in range(S)])
    assert torch.equal(summed["train_code_counts"], hand)
    assert table["train_tokens"] == targets[:, 0, 0].numel()
    assert json.loads((tmp_path / DIAGNOSTICS_FILE).read_text()) == table
