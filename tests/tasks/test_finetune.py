"""Fine-tuning: layer-decay groups, class weights, metrics against hand-computed values, a short fit, errors."""

from __future__ import annotations

import json
import re

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader

from neurorvq.errors import ConfigError
from neurorvq.models.fm import NeuroRVQFoundationModel
from neurorvq.registry import get_modality
from neurorvq.tasks.finetune import FinetuneTask, balanced_class_weights, layer_decay_groups, official_tensor_order

TINY = {"depth": 2}


def _official_name(ours: str) -> str:
    m = re.match(r"temporal\.branches\.(\d+)\.(convs|norms)\.(\d+)\.(\w+)\Z", ours)
    if m:
        kind = "conv" if m.group(2) == "convs" else "norm"
        return f"patch_embed.{kind}{int(m.group(3)) + 1}_{int(m.group(1)) + 1}.{m.group(4)}"
    return ours.removeprefix("backbone.")


def test_official_per_tensor_decay_follows_the_official_enumeration(fixtures_dir):
    """Quirk Q9: lr * decay ** (P - i), i = the tensor's index among the official fine-tuning model's 275 named
    parameters (fixture key order, which includes the unused fc_norm_1..4)."""
    layout = json.loads((fixtures_dir / "official_full_config_state_dicts.json").read_text())
    official = list(layout["models"]["fm_finetune_n_outputs_4"]["keys"])
    assert len(official) == 275
    model = NeuroRVQFoundationModel("eeg", pretraining=True)
    model.drop_pretraining_parts()  # as FinetuneTask does with a pretrained FM
    model.reset_classifier(4)
    groups = layer_decay_groups(model, lr=1.0, decay=0.975, weight_decay=0.01, mode="official")
    assert len(groups) == 267  # 275 - the 8 unused fc_norm_1..4 tensors
    for group in groups:
        name = group["name"]
        expected = 1.0 if name.startswith(("fc_norm.", "head.")) else 0.975 ** (275 - official.index(_official_name(name)))
        assert group["lr"] == pytest.approx(expected, rel=1e-12), name
    lr = {g["name"]: g["lr"] for g in groups}  # the figures method.md §4.3 quotes
    assert lr["backbone.blocks.0.attn.qkv.weight"] == pytest.approx(0.0027, abs=5e-5)
    assert lr["backbone.blocks.11.mlp.fc2.weight"] == pytest.approx(0.70, abs=5e-3)
    assert lr["backbone.cls_token"] == pytest.approx(0.001, abs=1e-4)


def test_a_pretrained_fm_loses_its_pretraining_parts_for_fine_tuning(tmp_path):
    pretrained = NeuroRVQFoundationModel("eeg", pretraining=True, vocab_size=16, n_quantizers=2, **TINY)
    pretrained.save_pretrained(tmp_path / "fm")
    task = FinetuneTask(fm=str(tmp_path / "fm"), num_classes=3)
    names = {n for n, _ in task.fm.named_parameters()}
    assert not {"mask_token", "head_weight", "head_bias"} & names and not any(n.startswith("norm_pre") for n in names)
    assert torch.equal(task.fm.backbone.pos_embed, pretrained.backbone.pos_embed)
    with pytest.raises(ConfigError, match="no official position"):
        layer_decay_groups(pretrained, 1.0, 0.9, 0.0, mode="official")


def test_true_block_decay_hand_computed():
    model = NeuroRVQFoundationModel("eeg", pretraining=False, **TINY)
    model.reset_classifier(3)
    lr = {g["name"]: g["lr"] for g in layer_decay_groups(model, 2.0, 0.5, 0.0, mode="block")}
    assert lr["backbone.pos_embed"] == lr["temporal.branches.0.convs.0.weight"] == pytest.approx(2.0 * 0.5 ** 3)
    assert lr["backbone.blocks.0.attn.qkv.weight"] == pytest.approx(2.0 * 0.5 ** 2)
    assert lr["backbone.blocks.1.mlp.fc2.bias"] == pytest.approx(2.0 * 0.5 ** 1)
    assert lr["head.weight"] == lr["fc_norm.bias"] == 2.0
    with pytest.raises(ConfigError, match="layer_decay_mode"):
        layer_decay_groups(model, 1.0, 0.5, 0.0, mode="per-layer")


def test_head_only_trains_only_the_head():
    model = NeuroRVQFoundationModel("eeg", pretraining=False, **TINY)
    model.reset_classifier(2)
    groups = layer_decay_groups(model, 1.0, 0.9, 0.0, head_only=True)
    assert {g["name"] for g in groups} == {"fc_norm.weight", "fc_norm.bias", "head.weight", "head.bias"}
    assert model.head.weight.shape == (1, 800)  # two classes: one logit (BCE), as the official head


def test_balanced_class_weights():
    weights = balanced_class_weights(torch.tensor([0, 0, 0, 1]), 2)
    assert torch.allclose(weights, torch.tensor([0.5, 1.5]))  # 1/3 and 1/1, normalised to sum to 2


class Labelled(L.LightningDataModule):
    """Random windows whose label is the sign of their 10 Hz component: learnable, tiny."""

    def __init__(self, n: int = 16) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        t = torch.arange(400) / 200
        labels = torch.arange(n) % 2
        signal = torch.randn(n, 3, 400, generator=g) * 5 + (labels * 2 - 1).reshape(-1, 1, 1) * 30 * torch.sin(
            2 * torch.pi * 10 * t)
        ids = torch.tensor([36, 9, 10]).expand(n, 3)
        self.items = [{"signal": signal[i], "channel_ids": ids[i], "label": labels[i]} for i in range(n)]
        self.spec = get_modality("eeg")

    def train_dataloader(self):
        return DataLoader(self.items, batch_size=8)

    def val_dataloader(self):
        return DataLoader(self.items, batch_size=8)


def test_short_fit_logs_metrics(tmp_path):
    task = FinetuneTask(fm=None, num_classes=2, fm_overrides=TINY, lr=1e-3)
    trainer = L.Trainer(accelerator="cpu", devices=1, max_epochs=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)
    trainer.fit(task, Labelled())
    metrics = trainer.callback_metrics
    for name in ("val/balanced_accuracy", "val/f1_weighted", "val/auroc", "val/auc_pr"):
        assert name in metrics and 0.0 <= float(metrics[name]) <= 1.0, name
    assert -1.0 <= float(metrics["val/cohen_kappa"]) <= 1.0


def test_metrics_hand_computed():
    task = FinetuneTask(fm=None, num_classes=3, fm_overrides=TINY)
    probs = torch.tensor([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8], [0.8, 0.1, 0.1]])
    labels = torch.tensor([0, 1, 2, 2])  # predictions 0, 1, 2, 0: class 2 recalled 1/2
    results = {k: float(v) for k, v in task.val_metrics(probs, labels).items()}
    assert results["val/balanced_accuracy"] == pytest.approx((1 + 1 + 0.5) / 3)
    # weighted F1: class 0 F1 = 2/3 (w 1/4), class 1 F1 = 1 (w 1/4), class 2 F1 = 2/3 (w 2/4)
    assert results["val/f1_weighted"] == pytest.approx(0.25 * 2 / 3 + 0.25 * 1 + 0.5 * 2 / 3)
    # kappa: p_o = 3/4; p_e = (2/4 * 1/4) + (1/4 * 1/4) + (1/4 * 2/4) = 5/16
    assert results["val/cohen_kappa"] == pytest.approx((0.75 - 5 / 16) / (1 - 5 / 16))


def test_bad_inputs():
    with pytest.raises(ConfigError, match="at least 2"):
        FinetuneTask(fm=None, num_classes=1, fm_overrides=TINY)
    task = FinetuneTask(fm=None, num_classes=2, modality="ecg", fm_overrides={"depth": 1})
    trainer = L.Trainer(accelerator="cpu", max_steps=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    with pytest.raises(ConfigError, match="data's modality 'eeg'.*differs from the foundation model's 'ecg'"):
        trainer.fit(task, Labelled())


def test_official_schedule_hand_computed():
    """method.md §4.3: linear warm-up from 0.1 lr to lr over the warm-up, then linear decay to 0.1 lr; a run no
    longer than the warm-up is one linear warm-up."""
    from neurorvq.tasks.optim import official_linear

    # 20 epochs of 10 steps, 4 warm-up epochs = 40 steps
    assert official_linear(0, 200, 40) == pytest.approx(0.1)
    assert official_linear(20, 200, 40) == pytest.approx(0.1 + 0.9 * 20 / 40)
    assert official_linear(40, 200, 40) == pytest.approx(1.0)
    assert official_linear(120, 200, 40) == pytest.approx(1.0 - 0.9 * 80 / 160)
    assert official_linear(200, 200, 40) == pytest.approx(0.1)
    assert official_linear(5, 10, 40) == pytest.approx(0.1 + 0.9 * 5 / 10)


def _fit_optimizer(task, steps_per_epoch=5, epochs=4):
    class FakeTrainer:
        estimated_stepping_batches = steps_per_epoch * epochs

    task._trainer = FakeTrainer()  # configure_optimizers only reads the number of steps
    try:
        return task.configure_optimizers()
    finally:
        task._trainer = None


def test_official_mode_learning_rates_and_schedule(fixtures_dir):
    """An official backbone gets per-tensor decay and the official linear schedule (auto mode)."""
    path = fixtures_dir / "fm_model.safetensors"
    task = FinetuneTask(fm=str(path), num_classes=2, lr=1e-3, warmup_fraction=0.25)
    assert task.provenance == "official" and task.decay_mode == "official" and task.schedule == "official_linear"
    config = _fit_optimizer(task)
    optimizer, scheduler = config["optimizer"], config["lr_scheduler"]["scheduler"]
    lrs = {g["name"]: g["initial_lr"] for g in optimizer.param_groups}  # before the schedule's multiplier
    p = len(official_tensor_order(task.fm))
    assert lrs["backbone.cls_token"] == pytest.approx(1e-3 * 0.975 ** p)
    assert lrs["head.weight"] == pytest.approx(1e-3)
    # step 0 of 20 (5 warm-up): 0.1 x lr for every group, in proportion
    head = next(g for g in optimizer.param_groups if g["name"] == "head.weight")
    assert head["lr"] == pytest.approx(1e-4)
    for _ in range(5):
        optimizer.step()
        scheduler.step()
    assert head["lr"] == pytest.approx(1e-3)


def test_auto_mode_for_pretrained_and_scratch_is_block_decay_with_cosine():
    scratch = FinetuneTask(fm=None, num_classes=3, fm_overrides=TINY, lr=2.0, layer_decay=0.5)
    assert (scratch.provenance, scratch.decay_mode, scratch.schedule) == ("scratch", "block", "cosine")
    lrs = {g["name"]: g["lr"] for g in _fit_optimizer(scratch)["optimizer"].param_groups}
    # cosine warm-up starts from 0: step 0 multiplier = 1 / warmup steps (0.2 x 20 = 4)
    assert lrs["head.weight"] == pytest.approx(2.0 / 4)
    assert lrs["backbone.pos_embed"] == pytest.approx(2.0 * 0.5 ** 3 / 4)
    flat = FinetuneTask(fm=None, num_classes=3, fm_overrides=TINY, lr=2.0, layer_decay_mode="none")
    assert all(g["lr"] == pytest.approx(0.5) for g in _fit_optimizer(flat)["optimizer"].param_groups)
    from neurorvq.tasks.finetune import backbone_provenance

    assert backbone_provenance("runs/fm/last.ckpt") == "pretrained"
    assert backbone_provenance("NeuroRVQ_EEG_foundation_model_v1.pt") == "official"
    assert backbone_provenance("ntinosbarmpas/NeuroRVQ") == "official"
    with pytest.raises(ConfigError, match="layer_decay_mode"):
        FinetuneTask(fm=None, num_classes=2, fm_overrides=TINY, layer_decay_mode="layer")
    with pytest.raises(ConfigError, match="schedule"):
        FinetuneTask(fm=None, num_classes=2, fm_overrides=TINY, schedule="step")


def test_channel_aware_pooling_takes_the_montage_from_the_data():
    task = FinetuneTask(fm=None, num_classes=2, fm_overrides=TINY, pooling="channel_concat", lr=1e-3)
    trainer = L.Trainer(accelerator="cpu", devices=1, max_steps=2, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)

    class WithDatasets(Labelled):
        datasets = {"train": [{"signal": torch.zeros(3, 400)}]}

    trainer.fit(task, WithDatasets())
    assert task.hparams.pool_channels == 3 and task.fm.head.in_features == 3 * 800
    features = task.features({"signal": torch.randn(4, 3, 400), "channel_ids": torch.tensor([[36, 9, 10]] * 4)})
    assert features.shape == (4, 2400)
    with pytest.raises(ConfigError, match="unknown pooling"):
        FinetuneTask(fm=None, num_classes=2, fm_overrides=TINY, pooling="max")


def test_provenance_is_recorded_by_the_official_loader_and_survives_save_pretrained(fixtures_dir, tmp_path):
    """A save_pretrained folder of official weights is still fine-tuned the official way."""
    official = NeuroRVQFoundationModel.from_official(fixtures_dir / "fm_model.safetensors")
    assert official.options["provenance"] == "official"
    folder = official.save_pretrained(tmp_path / "official_copy")
    task = FinetuneTask(fm=str(folder), num_classes=2)
    assert (task.provenance, task.decay_mode, task.schedule) == ("official", "official", "official_linear")
    mine = NeuroRVQFoundationModel("eeg", depth=2).save_pretrained(tmp_path / "mine")
    assert FinetuneTask(fm=str(mine), num_classes=2).provenance == "pretrained"


def test_a_loaded_head_does_not_survive_a_channel_aware_pooling(tmp_path):
    folder = NeuroRVQFoundationModel("eeg", depth=1, pretraining=False, num_classes=3).save_pretrained(tmp_path / "m")
    task = FinetuneTask(fm=str(folder), num_classes=2, pooling="channel_concat")
    assert task.head_pending and not hasattr(task.fm, "head") and not hasattr(task.fm, "pool")


def test_a_pooling_with_parameters_is_trained_as_part_of_the_head():
    from neurorvq.models.pooling import POOLINGS, Pooling

    class Scored(Pooling):
        def __init__(self, width, num_channels=None):
            super().__init__(width, num_channels)
            self.score = torch.nn.Linear(width, 1)

        def forward(self, per_token, channel_ids):
            return (per_token.softmax(1) * self.score(per_token)).sum(1)

    POOLINGS["scored_test"] = Scored
    try:
        model = NeuroRVQFoundationModel("eeg", pretraining=False, **TINY)
        model.reset_classifier(3, pooling="scored_test")
        for mode in ("block", "official"):
            lr = {g["name"]: g["lr"] for g in layer_decay_groups(model, 2.0, 0.5, 0.0, mode=mode)}
            assert lr["pool.score.weight"] == lr["head.weight"] == 2.0
    finally:
        del POOLINGS["scored_test"]
