"""Same seed, same run on CPU: per-step losses and final weights bit for bit (issue: quickstart runs drifting).

Cause found: the CPU backward of ``TokenTransformer.embed``'s table lookups (``pos_embed[spatial_ids]``, advanced
indexing, whose backward is an ``index_put_`` with ``accumulate=True``) adds the rows of a batch in parallel, in
thread order, once the index holds more than ~32k elements (the quickstart's ``[branch*batch, channels*patches]``
ids x width 200). ``pos_embed``'s gradient then differs in the last bits from run to run and the runs drift
apart from step 3 on. Fixed at the cause: the tables are now read with ``F.embedding``, whose backward is ordered
in any mode; ``recipes/quickstart.yaml`` also sets ``trainer.deterministic: true``. Everything else was checked
equal between runs: data batches (generated from ``(seed, index)``), initial weights, the k-means starting points.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
import yaml

from neurorvq.datamodules.synthetic import SyntheticDataModule
from neurorvq.nn.rvq import ResidualVQ
from neurorvq.nn.transformer import TokenTransformer
from neurorvq.tasks.tokenizer import TokenizerTask

ROOT = Path(__file__).resolve().parents[2]
TINY = {"encoder_depth": 1, "decoder_depth": 1, "n_quantizers": 2, "codebook_size": 32, "code_dim": 8}
# 8 channels x 2 patches x batch 8 x 4 branches x width 200 = 102400 index elements: enough for the parallel
# (unordered) path of the embedding backward, which a smaller batch would not reach.
CHANNELS = ["fp1", "fp2", "c3", "c4", "p3", "p4", "o1", "o2"]


@pytest.fixture(autouse=True)
def restore_deterministic_mode():
    """Lightning's ``deterministic=True`` sets a process-wide flag and never resets it."""
    enabled = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    yield
    torch.use_deterministic_algorithms(enabled, warn_only=warn_only)


class LossRecorder(L.Callback):
    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.losses.append(outputs["loss"].item())


def short_run(tmp_path: Path, deterministic: bool = True,
              steps: int = 5) -> tuple[list[float], dict[str, torch.Tensor]]:
    L.seed_everything(0, verbose=False)
    task = TokenizerTask("eeg", tokenizer=TINY, lr=1e-3, warmup_fraction=0.2, figure_every_n_epochs=0)
    data = SyntheticDataModule("eeg", CHANNELS, window_seconds=2.0, train_windows=64, val_windows=8,
                               test_windows=8, batch_size=8)
    recorder = LossRecorder()
    L.Trainer(accelerator="cpu", devices=1, precision=32, max_steps=steps, gradient_clip_val=1.0, logger=False,
              enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
              num_sanity_val_steps=0, limit_val_batches=0, default_root_dir=tmp_path, callbacks=[recorder],
              deterministic=deterministic).fit(task, data)
    return recorder.losses, {k: v.detach().clone() for k, v in task.state_dict().items()}


@pytest.mark.parametrize("deterministic", [True, False])
def test_two_identical_runs_give_identical_losses_and_weights(tmp_path, deterministic):
    losses_a, weights_a = short_run(tmp_path / "a", deterministic)
    losses_b, weights_b = short_run(tmp_path / "b", deterministic)
    assert len(losses_a) == 5
    assert losses_a == losses_b  # bit for bit, every step
    assert weights_a.keys() == weights_b.keys()
    differing = [k for k in weights_a if not torch.equal(weights_a[k], weights_b[k])]
    assert not differing, f"final weights/buffers differ between two identical runs: {differing}"


def test_quickstart_recipe_is_seeded_and_deterministic():
    recipe = yaml.safe_load((ROOT / "recipes" / "quickstart.yaml").read_text())
    assert recipe["seed_everything"] == 0
    assert recipe["trainer"]["accelerator"] == "cpu"
    # without it the embedding-table gradients (and so every run) differ in the last bits from run to run
    assert recipe["trainer"]["deterministic"] is True


def _embedding_grads(transformer: TokenTransformer, spatial: torch.Tensor, temporal: torch.Tensor,
                     x: torch.Tensor, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    transformer.zero_grad(set_to_none=True)
    (transformer.embed(x, spatial, temporal) * weight).sum().backward()
    return transformer.pos_embed.grad.clone(), transformer.time_embed.grad.clone()


def _embedding_setup():
    """The quickstart's shapes: 4 branches x batch 16 rows of 8 channels x 2 patches, width 200."""
    generator = torch.Generator().manual_seed(0)
    transformer = TokenTransformer(200, depth=1, num_heads=10, spatial_rows=105, max_patches=256)
    transformer.init_weights()
    rows, channels, patches = 64, 8, 2
    spatial = torch.arange(1, channels + 1).repeat_interleave(patches).expand(rows, -1).contiguous()
    temporal = torch.arange(patches).repeat(channels)
    x = torch.randn(rows, channels * patches, 200, generator=generator)
    weight = torch.randn(rows, 1 + channels * patches, 200, generator=generator)
    return transformer, spatial, temporal, x, weight


def test_embedding_gradients_are_reproducible_in_deterministic_mode():
    """The op that made runs differ: under ``use_deterministic_algorithms`` its gradient is bitwise stable."""
    torch.use_deterministic_algorithms(True)
    setup = _embedding_setup()
    pos, time = _embedding_grads(*setup)
    for _ in range(20):
        pos_again, time_again = _embedding_grads(*setup)
        assert torch.equal(pos, pos_again)
        assert torch.equal(time, time_again)


def test_embedding_gradients_are_reproducible_without_deterministic_mode():
    """The cause itself is fixed: the tables are read with F.embedding, whose backward is ordered in any mode
    (advanced indexing, pos_embed[ids], added rows in thread order)."""
    torch.use_deterministic_algorithms(False)
    setup = _embedding_setup()
    pos, _ = _embedding_grads(*setup)
    for _ in range(20):
        assert torch.equal(pos, _embedding_grads(*setup)[0])


def test_kmeans_initialisation_depends_only_on_the_seed():
    """The first-batch k-means draws its starting points from the global generator that ``seed_everything``
    seeds: the same seed gives the same codebooks, another seed others."""
    z = torch.randn(4, 512, 16, generator=torch.Generator().manual_seed(1))

    def init(seed: int) -> torch.Tensor:
        torch.manual_seed(seed)
        rvq = ResidualVQ(4, 2, 64, 16).train()
        rvq(z)
        return rvq.codebooks.clone()

    first = init(0)
    assert torch.equal(first, init(0))
    assert not torch.equal(first, init(1))
