"""Token files through Lightning's prediction loop (TokenExtractionTask + TokenWriter, run by ``neurorvq
tokenize``): one process writes what the one-process loop before it wrote (ids, side fields, channel ids,
labels, subjects, shard boundaries); batches mixing montages; two-process DDP (gloo, CPU) writes every window
exactly once, each equal to the one-process folder's."""

from __future__ import annotations

import faulthandler
import json
import os
import traceback
import warnings
from datetime import timedelta
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from ddp_spawn import free_port, spawn
from torch.utils.data import DataLoader

from neurorvq import NeuroRVQTokenizer
from neurorvq.data.sampling import window_loader
from neurorvq.data.windowset import WindowDataset, WindowSet
from neurorvq.errors import ConfigError
from neurorvq.registry import get_modality
from neurorvq.tasks.tokens import TokenExtractionTask, TokenWriter
from neurorvq.token_files import read_manifest, read_token_dir
from neurorvq.tokenizers import Encoded

TINY = dict(encoder_depth=1, decoder_depth=1, n_quantizers=2, codebook_size=32, code_dim=8)
MONTAGES = (["fp1", "cz", "o2"], ["c3", "c4", "pz"], ["fz", "cz"])


class Montages(L.LightningDataModule):
    """EEG windows (2 s at 200 Hz, µV) of three montages, two recordings each, with labels and subjects; test
    batches of 4 through the channel-bucket sampler (one channel set per batch)."""

    def __init__(self) -> None:
        super().__init__()
        self.spec = get_modality("eeg")
        self.window_samples = 400
        rng = np.random.default_rng(3)
        sets = []
        for r, (montage, n) in enumerate(zip(MONTAGES * 2, (5, 3, 6, 2, 4, 3))):
            ids = np.asarray([self.spec.channels.index(c) for c in montage])
            sets.append(WindowSet((rng.normal(size=(n, len(ids), 400)) * 20).astype(np.float32), ids,
                                  labels=np.arange(n) % 3, subjects=np.full(n, 10 + r), recording=f"r{r}",
                                  starts=np.arange(n) * 400))
        self.dataset = WindowDataset(sets)

    def setup(self, stage: str) -> None:
        pass

    def test_dataloader(self) -> DataLoader:
        return window_loader(self.dataset, 4, shuffle=False)


def old_tokenize(tokenizer, loader, shard_windows: int) -> list[dict]:
    """What ``neurorvq tokenize`` wrote before it ran through Lightning (its one-process loop, kept here as the
    reference): a shard closes when the channel set changes or once it reaches ``shard_windows`` windows."""
    shards, pending, current = [], {}, None

    def flush() -> None:
        nonlocal pending
        if pending:
            shards.append({"encoded": Encoded.cat(pending.pop("encoded")), "channel_ids": current,
                           **{k: torch.cat(v) for k, v in pending.items()}})
        pending = {}

    with torch.no_grad():
        for batch in loader:
            ids = batch["channel_ids"][0]
            if current is not None and not torch.equal(ids, current):
                flush()
            current = ids
            pending.setdefault("encoded", []).append(tokenizer.tokenize(batch["signal"], ids))
            for key in ("label", "subject"):
                pending.setdefault(key, []).append(batch[key].reshape(-1))
            if sum(len(e) for e in pending["encoded"]) >= shard_windows:
                flush()
    flush()
    return shards


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    return NeuroRVQTokenizer("eeg", **TINY).save_pretrained(tmp_path_factory.mktemp("tok") / "tok")


def run_tokenize(tokenizer_dir: Path, out: Path, monkeypatch, **options) -> None:
    """``neurorvq tokenize`` (commands.tokenize) on :class:`Montages`."""
    from neurorvq import commands

    monkeypatch.setattr(commands, "load_datamodule", lambda data, overrides=(): Montages())
    commands.tokenize(str(tokenizer_dir), "montages", str(out), **{"device": "cpu", "shard_windows": 5, **options})


def test_one_process_writes_what_the_old_loop_wrote(tokenizer_dir, tmp_path, monkeypatch, capsys):
    out = tmp_path / "tokens"
    run_tokenize(tokenizer_dir, out, monkeypatch)
    assert "tokenize: wrote 23 windows in 4 shard(s)" in capsys.readouterr().out
    tokenizer = NeuroRVQTokenizer.from_pretrained(tokenizer_dir).eval()
    expected = old_tokenize(tokenizer, Montages().test_dataloader(), shard_windows=5)
    shards = list(read_token_dir(out))
    names = [f"tokens-0000{i}.safetensors" for i in range(4)]
    assert [p.name for p in sorted(out.iterdir())] == ["manifest.json", *names]
    # buckets of 7, 7 and 9 windows in batches of 4: a shard closes at a new channel set or at 5 windows or more
    assert [len(s.ids) for s in shards] == [len(e["encoded"]) for e in expected] == [7, 7, 8, 1]
    for shard, old in zip(shards, expected):
        assert torch.equal(shard.ids, old["encoded"].ids)
        assert shard.side.keys() == old["encoded"].side.keys()
        assert all(torch.equal(shard.side[k], old["encoded"].side[k]) for k in shard.side)
        assert torch.equal(shard.channel_ids, old["channel_ids"])
        assert shard.channels == [tokenizer.contract.channels[i] for i in old["channel_ids"]]
        assert torch.equal(shard.extras["label"], old["label"]) and torch.equal(shard.extras["subject"], old["subject"])
    index = torch.cat([s.extras["index"] for s in shards])
    assert sorted(index.tolist()) == list(range(23))  # each window's position in the dataset, once
    manifest = read_manifest(out)
    assert manifest["format"] == "neurorvq-tokens" and manifest["format_version"] == 2
    assert manifest["windows"] == 23 and manifest["split"] == "test" and manifest["world_size"] == 1
    assert manifest["shards"] == names


def test_max_batches_and_another_split(tokenizer_dir, tmp_path, monkeypatch):
    out = tmp_path / "tokens"
    run_tokenize(tokenizer_dir, out, monkeypatch, max_batches=2)
    assert read_manifest(out)["windows"] == 7  # batches of 4 and 3: the first montage's windows
    with pytest.raises(ConfigError, match="--split 'dev' is not one of"):
        run_tokenize(tokenizer_dir, out, monkeypatch, split="dev")


class MixedBatches(L.LightningDataModule):
    """Batches of 2 that mix two 3-channel montages (a plain DataLoader, no bucketing)."""

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(1)
        self.spec = get_modality("eeg")
        montages = [torch.tensor([0, 9, 36]), torch.tensor([5, 20, 40])]
        self.items = [{"signal": torch.randn(3, 400, generator=g) * 20, "channel_ids": montages[m],
                       "label": torch.tensor(i % 3)} for i, m in enumerate([0, 1, 1, 1, 0])]

    def predict_dataloader(self) -> DataLoader:
        return DataLoader(self.items, batch_size=2)


def test_batches_mixing_montages_are_tokenized_per_channel_set(tokenizer_dir, tmp_path):
    data = MixedBatches()
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=[TokenWriter(str(tmp_path / "out"), shard_windows=100)])
    trainer.predict(TokenExtractionTask(str(tokenizer_dir)), datamodule=data)
    tokenizer = NeuroRVQTokenizer.from_pretrained(tokenizer_dir).eval()
    seen = []
    for shard in read_token_dir(tmp_path / "out"):
        rows = shard.extras["index"].tolist()
        seen += rows
        assert all(torch.equal(data.items[i]["channel_ids"], shard.channel_ids) for i in rows)
        assert shard.extras["label"].tolist() == [i % 3 for i in rows]
        with torch.no_grad():
            direct = tokenizer.tokenize(torch.stack([data.items[i]["signal"] for i in rows]), shard.channel_ids)
        assert torch.equal(shard.ids, direct.ids)
    assert sorted(seen) == list(range(5)) and read_manifest(tmp_path / "out")["split"] is None


def test_the_writer_needs_a_tokenizer_task(tmp_path):
    class NotATokenizer(L.LightningModule):
        def predict_step(self, batch, batch_idx):
            return batch

    trainer = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
                        callbacks=[TokenWriter(str(tmp_path / "out"))])
    with pytest.raises(ConfigError, match="TokenWriter writes token ids.*TokenExtractionTask"):
        trainer.predict(NotATokenizer(), datamodule=MixedBatches())
    with pytest.raises(ConfigError, match="shard_windows is 0"):
        TokenWriter(str(tmp_path / "out"), shard_windows=0)


# ---------------------------------------------------------------------------------------------- DDP
WORLD = 2
DEADLINE_S = 150.0


def _worker(rank: int, port: int, tokenizer_dir: str, out_dir: str) -> None:
    out = Path(out_dir)
    with open(out / f"stacks_rank{rank}.txt", "w") as stacks:
        faulthandler.dump_traceback_later(DEADLINE_S - 20, file=stacks)
        try:
            import torch.distributed as dist

            from neurorvq import commands

            # externally launched processes (as torchrun): Lightning's "ddp" joins this process group
            os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), LOCAL_RANK=str(rank), NODE_RANK="0",
                              WORLD_SIZE=str(WORLD))
            torch.set_num_threads(1)
            warnings.filterwarnings("ignore", category=UserWarning)
            dist.init_process_group("gloo", rank=rank, world_size=WORLD, timeout=timedelta(seconds=60))
            commands.load_datamodule = lambda data, overrides=(): Montages()
            try:
                commands.tokenize(tokenizer_dir, "montages", str(out / "tokens"), shard_windows=5,
                                  accelerator="cpu", devices=WORLD, strategy="ddp")
            finally:
                dist.destroy_process_group()
        except BaseException:
            (out / f"error_rank{rank}.txt").write_text(f"rank {rank}:\n{traceback.format_exc()}")
            raise
        finally:
            faulthandler.cancel_dump_traceback_later()


def test_two_processes_write_every_window_once(tokenizer_dir, tmp_path, monkeypatch):
    spawn(_worker, (free_port(), str(tokenizer_dir), str(tmp_path)), tmp_path, world=WORLD, deadline_s=DEADLINE_S)
    folder = tmp_path / "tokens"
    manifest = read_manifest(folder)
    assert manifest["world_size"] == 2 and manifest["windows"] == 23
    assert {name.split("-")[1] for name in manifest["shards"]} == {"rank000", "rank001"}
    assert manifest["shards"] == sorted(manifest["shards"])  # rank 0's shards first
    shards = list(read_token_dir(folder))
    index = torch.cat([s.extras["index"] for s in shards])
    assert sorted(index.tolist()) == list(range(23))  # no window twice (no padding), none missing
    # every window's ids, side fields, label and subject equal the one-process folder's
    run_tokenize(tokenizer_dir, tmp_path / "one", monkeypatch)
    single = {}
    for shard in read_token_dir(tmp_path / "one"):
        for row, i in enumerate(shard.extras["index"].tolist()):
            single[i] = (shard, row)
    for shard in shards:
        for row, i in enumerate(shard.extras["index"].tolist()):
            ref, r = single[i]
            assert torch.equal(shard.ids[row], ref.ids[r]) and torch.equal(shard.channel_ids, ref.channel_ids)
            assert all(torch.equal(shard.side[k][row], ref.side[k][r]) for k in shard.side)
            assert shard.extras["label"][row] == ref.extras["label"][r]
            assert shard.extras["subject"][row] == ref.extras["subject"][r]
    assert json.loads((folder / "manifest.json").read_text())["writer"]["neurorvq"]
