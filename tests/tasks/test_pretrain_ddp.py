"""Masked-token pretraining under two-process DDP on CPU (gloo), each rank on different data: the frozen
tokenizer (weights and quantizer buffers: codebooks, usage, counters, ``initted`` flags) stays bit-identical
on every rank and to the file it was loaded from, it is in eval mode in every training step (validation
included in between), and the FM weights train and stay identical across ranks.

One pair of spawned processes (``torch.multiprocessing``, as test_ddp_codebooks.py) runs two Lightning fits
(``strategy="ddp"``; the processes are launched externally, as torchrun would, so the imports are paid once):
:class:`RecordingPretrainTask`, and a negative control whose ``train()`` no longer keeps the tokenizer in eval
mode (``task.train()`` is called before each fit), which shows that the checks catch a tokenizer that learns.
Each rank saves what it saw to a file in a tmp folder (a failing rank writes its traceback); the parent asserts.
"""

from __future__ import annotations

import faulthandler
import os
import traceback
import warnings
from datetime import timedelta
from pathlib import Path

import pytest
import torch
from ddp_spawn import free_port, spawn

WORLD = 2
TINY = {"encoder_depth": 1, "decoder_depth": 1, "n_quantizers": 2, "codebook_size": 32, "code_dim": 8}
CHANNELS = ["c3", "cz", "c4"]
MAX_STEPS = 3  # validation runs after step 2, so step 3 checks the modes restored after it
QUANTIZER_BUFFERS = ("quantizer.codebooks", "quantizer.initted", "quantizer.usage", "quantizer.unused_steps")
DEADLINE_S = 150.0  # a healthy run takes ~15-30 s (mostly imports); a hang in a collective fails instead


def _clone_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _saved_state(tokenizer_dir: str) -> dict[str, torch.Tensor]:
    from neurorvq.models.pretrained import WEIGHTS_NAME, read_state_dict

    return read_state_dict(Path(tokenizer_dir) / WEIGHTS_NAME)


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]) for k in a)


# ---------------------------------------------------------------------------------------------- tasks
def _make_task_classes():
    """Built in the children (Lightning subclasses; nothing is pickled)."""
    import lightning as L

    from neurorvq.tasks.pretrain import PretrainTask

    class RecordingPretrainTask(PretrainTask):
        """Records, inside every training step, the modes of tokenizer and FM and the rank's batch, and after
        it whether the tokenizer's full state still equals the saved file's."""

        def _records(self) -> list[dict]:
            if "step_records" not in self.__dict__:
                self.__dict__["step_records"] = []
                self.__dict__["saved"] = _saved_state(self.hparams.tokenizer)
            return self.__dict__["step_records"]

        def training_step(self, batch, batch_idx):
            self._records().append({
                "step": self.global_step,
                "tokenizer_training": self.tokenizer.training,
                "tokenizer_any_submodule_training": any(m.training for m in self.tokenizer.modules()),
                "fm_training": self.fm.training,
                "signal": batch["signal"].detach().clone(),
            })
            loss = super().training_step(batch, batch_idx)
            self._records()[-1]["loss"] = loss.detach().clone()
            return loss

        def on_validation_start(self) -> None:
            self.__dict__.setdefault("validated_at", []).append(self.global_step)

        def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
            self._records()[-1]["tokenizer_as_saved"] = _same(self.tokenizer.state_dict(), self.__dict__["saved"])

    class UnfrozenPretrainTask(RecordingPretrainTask):
        """Negative control: ``train()`` without PretrainTask's override, so the tokenizer trains too."""

        def train(self, mode: bool = True):
            L.LightningModule.train(self, mode)
            return self

    return {"frozen": RecordingPretrainTask, "unfrozen": UnfrozenPretrainTask}


# ---------------------------------------------------------------------------------------------- workers
def _worker(rank: int, port: int, tokenizer_dir: str, out_dir: str) -> None:
    out = Path(out_dir)
    with open(out / f"stacks_rank{rank}.txt", "w") as stacks:
        faulthandler.dump_traceback_later(DEADLINE_S - 20, file=stacks)
        try:
            _run(rank, port, tokenizer_dir, out)
        except BaseException:
            (out / f"error_rank{rank}.txt").write_text(f"rank {rank}:\n{traceback.format_exc()}")
            raise
        finally:
            faulthandler.cancel_dump_traceback_later()


def _run(rank: int, port: int, tokenizer_dir: str, out: Path) -> None:
    import torch.distributed as dist

    # externally launched processes (as torchrun): Lightning's "ddp" joins this process group, launches nothing
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), LOCAL_RANK=str(rank), NODE_RANK="0",
                      WORLD_SIZE=str(WORLD))
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", category=UserWarning)  # Lightning's tips (few workers, small data, ...)
    warnings.filterwarnings("ignore", category=FutureWarning)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD, timeout=timedelta(seconds=60))
    try:
        results = {name: _fit(cls, tokenizer_dir, out / name) for name, cls in _make_task_classes().items()}
        torch.save(results, out / f"rank{rank}.pt")
        dist.barrier()
    finally:
        dist.destroy_process_group()


def _fit(task_cls, tokenizer_dir: str, root: Path) -> dict:
    import lightning as L
    from lightning.pytorch.strategies import DDPStrategy

    from neurorvq.datamodules.synthetic import SyntheticDataModule

    L.seed_everything(0, verbose=False)  # the same FM initialisation on every rank
    task = task_cls(tokenizer_dir, fm={"depth": 1}, lr=1e-3)
    # Lightning 2.x keeps the modes the module has at fit start (it no longer calls .train() itself): call it as
    # a user, an older Lightning or a hook would. PretrainTask.train() must leave the tokenizer in eval mode.
    task.train()
    fm_initial = _clone_state(task.fm)
    trainer = L.Trainer(accelerator="cpu", devices=WORLD, strategy=DDPStrategy(timeout=timedelta(seconds=60)),
                        max_steps=MAX_STEPS, val_check_interval=2, limit_val_batches=1, num_sanity_val_steps=0,
                        logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=root)
    assert trainer.world_size == WORLD
    # 12 windows -> 6 per rank (DistributedSampler): 3 batches of 2, different windows on each rank
    data = SyntheticDataModule(modality="eeg", channels=CHANNELS, window_seconds=2.0, train_windows=12,
                               val_windows=4, batch_size=2)
    trainer.fit(task, data)
    return {
        "global_rank": trainer.global_rank,
        "tokenizer": _clone_state(task.tokenizer),
        "tokenizer_training_after_fit": task.tokenizer.training,
        "fm_initial": fm_initial,
        "fm": _clone_state(task.fm),
        "trainable": sorted(n for n, p in task.fm.named_parameters() if p.requires_grad),
        "steps": task.__dict__.get("step_records", []),
        "validated_at": task.__dict__.get("validated_at", []),
    }


# ---------------------------------------------------------------------------------------------- tests
@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory) -> Path:
    """A 'trained' tiny tokenizer: k-means ran (initted), the EMA moved the codebooks, usage is non-zero."""
    from neurorvq import NeuroRVQTokenizer

    torch.manual_seed(0)
    model = NeuroRVQTokenizer("eeg", **TINY).train()
    with torch.no_grad():
        for _ in range(2):
            model(torch.randn(4, len(CHANNELS), 400) * 20, CHANNELS)
    path = tmp_path_factory.mktemp("pretrain_ddp") / "tokenizer"
    model.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def runs(tokenizer_dir, tmp_path_factory) -> list[dict]:
    """``runs[rank][name]`` for name in ('frozen', 'unfrozen')."""
    out = tmp_path_factory.mktemp("pretrain_ddp_runs")
    spawn(_worker, (free_port(), str(tokenizer_dir), str(out)), out)
    results = [torch.load(out / f"rank{rank}.pt", weights_only=False) for rank in range(WORLD)]
    for rank, result in enumerate(results):
        assert all(r["global_rank"] == rank for r in result.values())
    return results


def test_saved_tokenizer_has_trained_quantizer_state(tokenizer_dir):
    saved = _saved_state(str(tokenizer_dir))
    assert set(QUANTIZER_BUFFERS) <= saved.keys()  # the comparisons below cover the buffers, not only weights
    assert saved["quantizer.initted"].all() and saved["quantizer.usage"].sum() > 0


def test_ranks_see_different_data_and_train(runs):
    for rank in range(WORLD):
        steps = runs[rank]["frozen"]["steps"]
        assert [s["step"] for s in steps] == list(range(MAX_STEPS))
        assert runs[rank]["frozen"]["validated_at"][:1] == [2]  # step 3 (global_step 2) follows a validation
        assert all(torch.isfinite(s["loss"]) for s in steps)
    for i in range(MAX_STEPS):
        signals = [runs[rank]["frozen"]["steps"][i]["signal"] for rank in range(WORLD)]
        assert not torch.equal(signals[0], signals[1]), f"step {i}: the ranks must see different windows"


def test_tokenizer_in_eval_mode_in_every_training_step(runs):
    for rank in range(WORLD):
        run = runs[rank]["frozen"]
        for s in run["steps"]:
            assert not s["tokenizer_training"], f"rank {rank} step {s['step']}: tokenizer in train mode"
            assert not s["tokenizer_any_submodule_training"], f"rank {rank} step {s['step']}: a tokenizer submodule"
            assert s["fm_training"], f"rank {rank} step {s['step']}: the FM must train"
        assert not run["tokenizer_training_after_fit"]


def test_tokenizer_state_bit_identical_across_ranks_and_to_saved_file(runs, tokenizer_dir):
    saved = _saved_state(str(tokenizer_dir))
    states = [runs[rank]["frozen"]["tokenizer"] for rank in range(WORLD)]
    for rank, state in enumerate(states):
        assert state.keys() == saved.keys()
        changed = [k for k in saved if state[k].dtype != saved[k].dtype or not torch.equal(state[k], saved[k])]
        assert not changed, f"rank {rank}: tokenizer entries differ from the saved file: {changed}"
        per_step = [s["tokenizer_as_saved"] for s in runs[rank]["frozen"]["steps"]]
        assert per_step == [True] * MAX_STEPS, f"rank {rank}: tokenizer changed during training: {per_step}"
    assert _same(states[0], states[1])


def test_fm_weights_trained_and_identical_across_ranks(runs):
    fms = [runs[rank]["frozen"]["fm"] for rank in range(WORLD)]
    initial = [runs[rank]["frozen"]["fm_initial"] for rank in range(WORLD)]
    assert _same(initial[0], initial[1])  # same seed: the ranks start identical
    differing = [k for k in fms[0] if not torch.equal(fms[0][k], fms[1][k])]
    assert not differing, f"FM entries differ across ranks after DDP steps: {differing}"
    trainable = runs[0]["frozen"]["trainable"]
    unchanged = [k for k in trainable if torch.equal(fms[0][k], initial[0][k])]
    assert not unchanged, f"trainable FM parameters that did not move: {unchanged}"


def test_negative_control_tokenizer_in_train_mode_drifts_from_saved_file(runs, tokenizer_dir):
    """Without PretrainTask.train()'s override the tokenizer trains with the FM: its codebooks and usage
    statistics move, so the checks above would catch a tokenizer left in train mode."""
    saved = _saved_state(str(tokenizer_dir))
    for rank in range(WORLD):
        run = runs[rank]["unfrozen"]
        assert all(s["tokenizer_training"] for s in run["steps"])
        assert not any(s["tokenizer_as_saved"] for s in run["steps"])
        state = run["tokenizer"]
        for name in ("quantizer.codebooks", "quantizer.usage"):
            assert not torch.equal(state[name], saved[name]), f"rank {rank}: {name} unchanged in train mode"
        # the drifted state still agrees across ranks (the quantizer all-reduces its statistics and DDP broadcasts
        # rank 0's buffers), so it is the comparison with the saved file that catches a learning tokenizer
        assert _same(state, runs[0]["unfrozen"]["tokenizer"])
