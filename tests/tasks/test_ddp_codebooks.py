"""Two-process DDP on CPU (gloo): the quantizer state stays bit-identical on every rank after every step although
each rank sees different data. The first batch runs k-means on each rank's own vectors (rank 0's result is
broadcast), the EMA statistics of all branches and levels are all-reduced in one call per step, and dead-code
re-seeding broadcasts rank 0's re-seeded codebooks (neurorvq/nn/rvq.py); the collectives per step are counted.

Workers run in spawned processes, so everything they call is defined at module level. Children report through
files in a tmp folder (rank 0 saves what it all-gathered; a failing rank writes its traceback) and the parent
asserts. ``torch.multiprocessing`` re-raises a child's exception in the parent; a deadline kills hung children
(their stacks are dumped to the tmp folder first and shown in the failure).
"""

from __future__ import annotations

import faulthandler
import os
import sys
import traceback
import warnings
from datetime import timedelta
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from ddp_spawn import free_port, spawn

WORLD = 2
TINY = {"encoder_depth": 1, "decoder_depth": 1, "n_quantizers": 2, "codebook_size": 32, "code_dim": 8}
CHANNELS = ["c3", "cz", "c4"]
SYNCED = ("codebooks", "initted", "unused_steps")  # rank-identical by construction (all-reduce / broadcast)
BUFFERS = (*SYNCED, "usage")
STEPS = 4
DEADLINE_S = 150.0  # per spawned job; a healthy one takes ~10-20 s (mostly imports), a hang fails instead

# name -> (dead_code_after, quantizer sync on, codebooks marked initialised before training)
RUNS = {
    "dead0": (0, True, False),
    "dead1": (1, True, False),
    "dead2": (2, True, False),
    "nosync-kmeans": (0, False, False),  # negative control: k-means results are not broadcast, EMA not reduced
    "nosync-ema": (0, False, True),      # negative control: no k-means; only the EMA all-reduce is missing
}


def _never_distributed() -> bool:
    return False


class CollectiveCounter:
    """Counts calls of the real ``torch.distributed.all_reduce`` / ``broadcast`` (wrapped, not replaced) in a
    worker; the quantizer looks them up on the module at call time, so the wrapper sees every call it makes."""

    NAMES = ("all_reduce", "broadcast")

    def __init__(self) -> None:
        self.calls = dict.fromkeys(self.NAMES, 0)
        self._originals = {name: getattr(dist, name) for name in self.NAMES}
        for name, original in self._originals.items():
            setattr(dist, name, self._counting(name, original))

    def _counting(self, name, original):
        def wrapped(*args, **kwargs):
            self.calls[name] += 1
            return original(*args, **kwargs)
        return wrapped

    def take(self) -> torch.Tensor:
        """``[all_reduce, broadcast]`` calls since the last take."""
        counts = torch.tensor([self.calls[name] for name in self.NAMES])
        self.calls = dict.fromkeys(self.NAMES, 0)
        return counts

    def remove(self) -> None:
        for name, original in self._originals.items():
            setattr(dist, name, original)


def _gather(tensor: torch.Tensor) -> list[torch.Tensor]:
    """All ranks' copies of ``tensor`` (bool goes through uint8 for gloo)."""
    t = tensor.detach().contiguous()
    send = t.to(torch.uint8) if t.dtype == torch.bool else t
    parts = [torch.empty_like(send) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, send)
    return [p.to(t.dtype) for p in parts]


# ---------------------------------------------------------------------------------------------- plain DDP
def _train_worker(rank: int, port: int, out_dir: str) -> None:
    out = Path(out_dir)
    with open(out / f"stacks_rank{rank}.txt", "w") as stacks:
        faulthandler.dump_traceback_later(DEADLINE_S - 20, file=stacks)
        try:
            _train_all(rank, port, out)
        except BaseException:
            (out / f"error_rank{rank}.txt").write_text(f"rank {rank}:\n{traceback.format_exc()}")
            raise
        finally:
            faulthandler.cancel_dump_traceback_later()


def _train_all(rank: int, port: int, out: Path) -> None:
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", message=".*broadcast_buffers.*", category=FutureWarning)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD, timeout=timedelta(seconds=60))
    try:
        import neurorvq.nn.rvq as rvq

        results = {}
        for name, (dead_code_after, sync, preinit) in RUNS.items():
            original = rvq._distributed
            if not sync:  # the process group exists, but the quantizer does not use it
                rvq._distributed = _never_distributed
            try:
                assert dist.is_initialized() and rvq._distributed() is sync
                results[name] = _train(rank, dead_code_after, preinit)
            finally:
                rvq._distributed = original
        if rank == 0:
            torch.save(results, out / "records.pt")
        dist.barrier()
    finally:
        dist.destroy_process_group()


def _train(rank: int, dead_code_after: int, preinit: bool) -> dict:
    """4 DDP steps on rank-dependent data; all ranks' quantizer buffers gathered before and after each step."""
    from neurorvq.models.tokenizer import NeuroRVQTokenizer

    torch.manual_seed(0)  # the same model on every rank
    model = NeuroRVQTokenizer("eeg", **TINY, dead_code_after=dead_code_after)
    quantizer = model.quantizer
    if preinit:
        quantizer.mark_initialised()
    # broadcast_buffers=False: DDP must not re-sync the buffers itself, or it would hide a missing sync
    ddp = torch.nn.parallel.DistributedDataParallel(model, broadcast_buffers=False)
    optimizer = torch.optim.AdamW(ddp.parameters(), lr=1e-3)
    data = torch.Generator().manual_seed(100 + rank)  # every rank sees different signals
    records = {"initial": {name: _gather(getattr(quantizer, name)) for name in BUFFERS}, "steps": [],
               "levels": quantizer.depth, "kmeans_iters": quantizer.kmeans_iters}
    for _ in range(STEPS):
        before = quantizer.codebooks.clone()
        x = torch.randn(4, 3, 400, generator=data) * 20
        counter = CollectiveCounter()
        try:
            _, figures = ddp(x, CHANNELS)
            optimizer.zero_grad(set_to_none=True)
            figures["loss"].backward()
            optimizer.step()
        finally:
            counter.remove()
        step = {name: _gather(getattr(quantizer, name)) for name in BUFFERS}
        step["collectives"] = _gather(counter.take())  # [all_reduce, broadcast] calls of this step, per rank
        step["signal"] = _gather(x)
        step["moved"] = _gather((quantizer.codebooks - before).norm(dim=-1).amax())  # largest move of a code
        step["loss"] = _gather(figures["loss"].detach())
        records["steps"].append(step)
    return records


@pytest.fixture(scope="module")
def plain_runs(tmp_path_factory) -> dict:
    """Every configuration of RUNS, trained in one pair of spawned processes (the imports dominate the cost)."""
    out = tmp_path_factory.mktemp("ddp_plain")
    spawn(_train_worker, (free_port(), str(out)), out)
    return torch.load(out / "records.pt", weights_only=False)


def _mismatches(record: dict, names=SYNCED) -> list[str]:
    return [name for name in names if not all(torch.equal(record[name][0], r) for r in record[name][1:])]


@pytest.mark.parametrize("dead_code_after", [0, 1, 2], ids=lambda d: f"dead_code_after={d}")
def test_quantizer_state_identical_across_ranks_every_step(plain_runs, dead_code_after):
    records = plain_runs[f"dead{dead_code_after}"]
    steps = records["steps"]
    assert len(steps) == STEPS
    assert not records["initial"]["initted"][0].any()  # step 1 runs k-means, each rank on its own batch
    previous = records["initial"]["codebooks"][0]
    for i, step in enumerate(steps, 1):
        assert not torch.equal(step["signal"][0], step["signal"][1]), "ranks must see different data"
        assert torch.isfinite(step["loss"][0]) and torch.isfinite(step["loss"][1])
        bad = _mismatches(step)
        assert not bad, f"step {i}: {bad} differ across ranks"
        assert step["initted"][0].all()
        codebooks = step["codebooks"][0]
        assert not torch.equal(codebooks, previous), f"step {i}: codebooks did not change (no k-means/EMA?)"
        torch.testing.assert_close(codebooks.norm(dim=-1), torch.ones(codebooks.shape[:-1]))  # unit codes
        previous = codebooks
    moves = torch.stack([step["moved"][0] for step in steps[1:]])  # the steps after the k-means one
    if dead_code_after == 0:
        assert moves.max() < 0.05, moves  # EMA only: a code moves by at most ~2 * (1 - decay) per step
    else:
        assert moves.max() > 0.1, moves  # some codes were re-seeded (a jump to a batch vector), identically
    counters = torch.stack([step["unused_steps"][0] for step in steps])
    if dead_code_after == 2:
        assert counters.max() == 1 and counters.min() == 0, counters  # counting, and reset when re-seeded
    else:
        assert counters.max() == 0, counters


def test_usage_identical_across_ranks(plain_runs):
    for i, step in enumerate(plain_runs["dead0"]["steps"], 1):
        assert not _mismatches(step, ["usage"]), f"step {i}: usage differs across ranks"


@pytest.mark.parametrize("run,reduces,broadcasts", [("dead0", 1, 0), ("dead1", 1, 1), ("dead2", 1, 1),
                                                     ("nosync-kmeans", 0, 0), ("nosync-ema", 0, 0)])
def test_collectives_per_step(plain_runs, run, reduces, broadcasts):
    """One all-reduce per step for the statistics of every branch and level (plus one broadcast of the codebooks
    while dead-code re-seeding is on), counted on the real collectives; the first step adds the k-means: per
    level one broadcast of the starting means, one all-reduce per round and one broadcast of the result."""
    records = plain_runs[run]
    levels, rounds = records["levels"], records["kmeans_iters"]
    for i, step in enumerate(records["steps"], 1):
        expected = [reduces, broadcasts]
        if i == 1 and run not in ("nosync-kmeans", "nosync-ema"):
            expected = [reduces + levels * rounds, broadcasts + 2 * levels]
        for rank, counts in enumerate(step["collectives"]):
            assert counts.tolist() == expected, f"step {i}, rank {rank}: [all_reduce, broadcast] = {counts.tolist()}"


@pytest.mark.parametrize("run", ["nosync-kmeans", "nosync-ema"])
def test_negative_control_without_sync_codebooks_diverge(plain_runs, run):
    """The same training with the quantizer's distributed check patched off: the ranks' codebooks drift apart,
    so the test above would catch a missing broadcast of the k-means init or a missing all-reduce of the EMA."""
    steps = plain_runs[run]["steps"]
    assert not _mismatches(plain_runs[run]["initial"]), "ranks must start identical"
    for i, step in enumerate(steps, 1):
        assert not torch.equal(step["signal"][0], step["signal"][1])
        assert "codebooks" in _mismatches(step), f"step {i}: codebooks agree without the sync"


# ---------------------------------------------------------------------------------------------- Lightning
def _make_callback_class():
    import lightning as L

    class RecordQuantizerState(L.Callback):
        """After every training batch each rank saves its quantizer buffers and its batch; the codebooks are
        also all-gathered in the child and rank 0 appends ``step agree`` to ``verdicts.txt``."""

        def __init__(self, out_dir: str) -> None:
            self.out_dir = out_dir

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            quantizer = pl_module.tokenizer.quantizer
            rank, step = trainer.global_rank, trainer.global_step
            state = {name: getattr(quantizer, name).detach().clone() for name in BUFFERS}
            state["signal"] = batch["signal"].detach().clone()
            torch.save(state, Path(self.out_dir, f"rank{rank}_step{step}.pt"))
            gathered = trainer.strategy.all_gather(quantizer.codebooks)  # [world, branch, level, K, d]
            if rank == 0:
                agree = all(torch.equal(gathered[0], g) for g in gathered[1:])
                with open(Path(self.out_dir, "verdicts.txt"), "a") as f:
                    f.write(f"{step} {int(agree)}\n")

    RecordQuantizerState.__module__ = __name__
    RecordQuantizerState.__qualname__ = "RecordQuantizerState"
    return RecordQuantizerState


def __getattr__(name: str):
    # PEP 562: the callback class (a Lightning subclass) is built on first use, so the plain-DDP workers, which
    # import this module, do not pay for importing Lightning; pickling finds it under its module-level name.
    if name == "RecordQuantizerState":
        cls = globals()[name] = _make_callback_class()
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def test_lightning_ddp_spawn_codebooks_identical(tmp_path, monkeypatch):
    import lightning as L
    from lightning.pytorch.strategies import DDPStrategy

    from neurorvq.datamodules.synthetic import SyntheticDataModule
    from neurorvq.tasks.tokenizer import TokenizerTask

    callback_cls = getattr(sys.modules[__name__], "RecordQuantizerState")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(free_port()))  # Lightning writes it to os.environ; restored after
    for name in ("PL_GLOBAL_SEED", "PL_SEED_WORKERS"):
        monkeypatch.setenv(name, os.environ.get(name, ""))  # seed_everything sets these: undone after the test
        if not os.environ[name]:
            monkeypatch.delenv(name)
    L.seed_everything(0)
    max_steps = 3
    # "ddp_spawn" with a collective timeout, so a missing collective fails instead of hanging
    trainer = L.Trainer(accelerator="cpu", devices=WORLD,
                        strategy=DDPStrategy(start_method="spawn", timeout=timedelta(seconds=60)),
                        max_steps=max_steps, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0,
                        default_root_dir=tmp_path, callbacks=[callback_cls(str(tmp_path))])
    datamodule = SyntheticDataModule(modality="eeg", channels=CHANNELS, window_seconds=2.0, train_windows=16,
                                     batch_size=2)
    trainer.fit(TokenizerTask(tokenizer=dict(TINY)), datamodule)

    lines = (tmp_path / "verdicts.txt").read_text().splitlines()
    verdicts = [tuple(map(int, line.split())) for line in lines if line]
    assert verdicts == [(step, 1) for step in range(1, max_steps + 1)], verdicts
    for step in range(1, max_steps + 1):
        states = [torch.load(tmp_path / f"rank{r}_step{step}.pt", weights_only=False) for r in range(WORLD)]
        assert not torch.equal(states[0]["signal"], states[1]["signal"]), "the DistributedSampler splits the data"
        for name in SYNCED:
            assert torch.equal(states[0][name], states[1][name]), f"step {step}: {name} differs across ranks"
        assert states[0]["initted"].all()
