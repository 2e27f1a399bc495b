"""Masked-token pretraining: masks, frozen targets, the batched head, errors."""

from __future__ import annotations

import lightning as L
import pytest
import torch

from neurorvq import NeuroRVQTokenizer
from neurorvq.datamodules.synthetic import SyntheticDataModule
from neurorvq.errors import ConfigError
from neurorvq.tasks.masking import random_token_mask
from neurorvq.tasks.pretrain import PretrainTask

TINY = dict(encoder_depth=1, decoder_depth=1, n_quantizers=2, codebook_size=32, code_dim=8)


def test_mask_ratio_positions_and_determinism():
    g = torch.Generator().manual_seed(5)
    mask = random_token_mask(4, 20, 0.5, g)
    assert mask.shape == (4, 20) and mask.dtype == torch.bool
    assert mask.sum(dim=1).tolist() == [10, 10, 10, 10]  # exactly half per sample
    assert not torch.equal(mask[0], mask[1])  # positions differ between samples
    again = random_token_mask(4, 20, 0.5, torch.Generator().manual_seed(5))
    assert torch.equal(mask, again)
    assert random_token_mask(2, 10, 0.3, torch.Generator().manual_seed(0)).sum(dim=1).tolist() == [3, 3]
    with pytest.raises(ValueError, match="ratio"):
        random_token_mask(1, 10, 1.0)


@pytest.fixture()
def tokenizer_dir(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "tok"
    NeuroRVQTokenizer("eeg", **TINY).save_pretrained(path)
    return path


def test_pretraining_steps_with_a_frozen_tokenizer(tokenizer_dir, tmp_path):
    task = PretrainTask(str(tokenizer_dir), fm={"depth": 1}, lr=1e-3)
    assert task.fm.head_weight.shape == (4, 2, 32, 200)  # one batched head for S x N = 8 token heads
    frozen_before = {k: v.clone() for k, v in task.tokenizer.state_dict().items()}
    data = SyntheticDataModule(modality="eeg", channels=["c3", "cz", "c4"], window_seconds=2.0, train_windows=8,
                               val_windows=4, batch_size=4)
    trainer = L.Trainer(accelerator="cpu", devices=1, max_epochs=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                        default_root_dir=tmp_path)
    trainer.fit(task, data)
    assert not task.tokenizer.training  # kept in eval mode while the FM trains
    for key, value in task.tokenizer.state_dict().items():
        assert torch.equal(value, frozen_before[key]), key  # weights, codebooks and usage statistics unchanged
    metrics = trainer.callback_metrics
    assert torch.isfinite(metrics["train/loss"]) and 0.0 <= float(metrics["val/masked_accuracy"]) <= 1.0
    assert "val_accuracy/b3_d1" in metrics
    assert (tmp_path / "pretrain_diagnostics.json").is_file()  # the run folder (test_pretrain_diagnostics.py)


def test_target_shapes_and_loss_from_the_tokenizer(tokenizer_dir):
    task = PretrainTask(str(tokenizer_dir), fm={"depth": 1})
    x = torch.randn(2, 3, 400) * 20
    ids = torch.tensor([[9, 36, 10]] * 2)
    targets = task.tokenizer.encode(x, ids)
    assert targets.shape == (2, 4, 2, 6) and int(targets.max()) < 32
    mask = random_token_mask(2, 6, 0.5, torch.Generator().manual_seed(1))
    out = task.fm.forward_pretrain(x, ids, mask)
    assert out.logits.shape == (8, 6, 32) and out.logits_symmetric.shape == (8, 6, 32)


def test_mismatching_tokenizer_is_refused(tokenizer_dir, tmp_path):
    ecg = tmp_path / "ecg"
    NeuroRVQTokenizer("ecg", **TINY).save_pretrained(ecg)
    with pytest.raises(ConfigError, match="'ecg' tokenizer but modality is 'eeg'"):
        PretrainTask(str(ecg))
    with pytest.raises(ConfigError, match="vocab_size comes from the tokenizer"):
        PretrainTask(str(tokenizer_dir), fm={"vocab_size": 64})
    other = tmp_path / "other"
    NeuroRVQTokenizer("eeg", branches=[{"kernel_sizes": [21, 9], "pools": [2, 4]}] * 2, **TINY).save_pretrained(other)
    with pytest.raises(ConfigError, match="branches/patch length"):
        PretrainTask(str(other))


def test_checkpoints_keep_the_spec_and_reload_without_the_registry(tokenizer_dir, tmp_path, monkeypatch):
    """A PretrainTask checkpoint stores its modality spec: load_fm rebuilds the FM from it, not from the name."""
    from neurorvq.tasks.finetune import load_fm

    task = PretrainTask(str(tokenizer_dir), fm={"depth": 1}, lr=1e-3)
    data = SyntheticDataModule(modality="eeg", channels=["c3", "cz", "c4"], window_seconds=2.0, train_windows=4,
                               val_windows=4, batch_size=4)
    trainer = L.Trainer(accelerator="cpu", devices=1, max_epochs=1, logger=False, enable_progress_bar=False,
                        enable_model_summary=False, num_sanity_val_steps=0, default_root_dir=tmp_path)
    trainer.fit(task, data)
    ckpt = tmp_path / "fm.ckpt"
    trainer.save_checkpoint(ckpt)
    assert torch.load(ckpt, map_location="cpu", weights_only=False)["modality_spec"] == task.fm.spec.to_dict()
    import neurorvq.loading as loading
    import neurorvq.registry as registry

    def no_registry(name):  # reloading must not look the modality up by name
        raise AssertionError(f"looked up {name!r}")

    monkeypatch.setattr(loading, "get_modality", no_registry)
    monkeypatch.setattr(registry, "get_modality", no_registry)
    reloaded = load_fm(str(ckpt))
    assert reloaded.spec == task.fm.spec
    assert all(torch.equal(a, b) for a, b in zip(reloaded.state_dict().values(), task.fm.state_dict().values()))
