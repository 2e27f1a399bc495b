"""BrainRVQ's student through the tasks: PretrainTask with a tiny frozen BrainRVQ tokenizer (targets ``[B, 6, L]``,
teacher forcing in training, argmax feedback in validation, the importance-guided mask per batch with the epoch, the
level-weighted loss), FinetuneTask (LaBraM's head, label smoothing, the layer-decay map of families.md §A.11 #13 with
BQ2 in parity and its fix by default)."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader

from neurorvq.datamodules.synthetic import SyntheticDataModule
from neurorvq.errors import ConfigError
from neurorvq.families.brainrvq_fm import BrainRVQFMOptions
from neurorvq.models.brainrvq_fm import BrainRVQFoundationModel
from neurorvq.registry import get_modality
from neurorvq.tasks.finetune import FinetuneTask, layer_decay_groups
from neurorvq.tasks.importance import ImportanceMaskSettings, importance_mask
from neurorvq.tasks.pretrain import PretrainTask

TINY_ARCH = dict(embed_dim=100, conv_channels=4, num_heads=5, mlp_ratio=1.0)
TINY_FM = BrainRVQFMOptions(depth=2, drop_path=0.0, **TINY_ARCH)


def trainer(tmp_path, epochs: int = 1) -> L.Trainer:
    return L.Trainer(accelerator="cpu", devices=1, max_epochs=epochs, logger=False, enable_checkpointing=False,
                     enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                     default_root_dir=tmp_path)


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory):
    from neurorvq.families import get_family

    try:
        tokenizer_class = get_family("brainrvq").tokenizer_class()
    except ConfigError as exc:
        pytest.skip(f"the brainrvq tokenizer is not available: {exc}")
    torch.manual_seed(0)
    model = tokenizer_class("eeg", **TINY_ARCH, encoder_depth=1, decoder_depth=1, codebook_size=32, code_dim=8,
                            kmeans_iters=1)
    return model.save_pretrained(tmp_path_factory.mktemp("brainrvq_tok") / "tokenizer")


# ------------------------------------------------------------------------------------------------ pretraining
def test_pretrain_task_builds_the_heads_from_the_tokenizer(tokenizer_dir):
    task = PretrainTask(str(tokenizer_dir), fm=TINY_FM)
    fm = task.fm
    assert isinstance(fm, BrainRVQFoundationModel) and task.stream_names == (
        "time_d0", "time_d1", "time_d2", "frequency_d0", "frequency_d1", "frequency_d2")
    assert (fm.options["vocab_size"], fm.options["levels"], fm.options["domains"]) == (32, 3, ("time", "frequency"))
    assert fm.config.max_patches == 30 and fm.target_layout.stream_names == task.stream_names
    x = torch.randn(2, 3, 800) * 20
    targets = task.tokenizer.tokenize(x, ["cz", "c3", "c4"]).ids
    assert targets.shape == (2, 6, 12) and int(targets.max()) < 32
    mask = torch.zeros(2, 12, dtype=torch.bool)
    mask[:, ::3] = True
    out = task.fm.train().forward_pretrain(x, ["cz", "c3", "c4"], mask, targets=targets)
    assert out.logits.shape == (6, 8, 32) and out.logits_symmetric.shape == (6, 16, 32)


def test_pretrain_mask_is_the_importance_mask_of_the_epoch():
    """The hook draws the importance-guided mask of the patches in the model's unit (µV/100) at the given epoch;
    ``masking: random`` is the ablation; the curriculum refuses a run without a number of epochs."""
    torch.manual_seed(0)
    model = BrainRVQFoundationModel("eeg", **TINY_ARCH, depth=1, vocab_size=16)
    x = torch.randn(2, 8, 1200) * 30
    channels = ["fp1", "fp2", "c3", "c4", "p3", "p4", "o1", "o2"]
    mask = model.pretrain_mask(x, channels, ratio=0.5, generator=torch.Generator().manual_seed(3), epoch=6, epochs=20)
    direct = importance_mask((x / 100).reshape(2, 8, 6, 200), 6, 20, torch.Generator().manual_seed(3),
                             ImportanceMaskSettings())
    assert mask.shape == (2, 48) and mask.dtype == torch.bool and torch.equal(mask, direct)
    late = model.pretrain_mask(x, channels, ratio=0.5, generator=torch.Generator().manual_seed(3), epoch=19,
                               epochs=20)
    assert not torch.equal(mask, late)  # the curriculum weight moved
    with pytest.raises(ConfigError, match="trainer.max_epochs"):
        model.pretrain_mask(x, channels, ratio=0.5, generator=None, epoch=0, epochs=None)
    model.options["masking"] = "random"
    ablation = model.pretrain_mask(x, channels, ratio=0.5, generator=torch.Generator().manual_seed(3))
    assert torch.equal(ablation, importance_mask((x / 100).reshape(2, 8, 6, 200), 0, 1, torch.Generator().manual_seed(3),
                                                 ImportanceMaskSettings(random_mask=True)))


def test_short_pretraining_fit(tokenizer_dir, tmp_path, monkeypatch):
    task = PretrainTask(str(tokenizer_dir), fm=TINY_FM, lr=1e-3)
    epochs_seen, forcing_seen = [], []
    hook = task.fm.pretrain_mask

    def spy(*args, **kwargs):
        epochs_seen.append((kwargs["epoch"], kwargs["epochs"]))
        return hook(*args, **kwargs)

    monkeypatch.setattr(task.fm, "pretrain_mask", spy)
    forward = task.fm.forward_pretrain

    def spy_forward(*args, **kwargs):
        forcing_seen.append((task.fm.training, kwargs.get("targets") is not None))
        return forward(*args, **kwargs)

    monkeypatch.setattr(task.fm, "forward_pretrain", spy_forward)
    frozen = {k: v.clone() for k, v in task.tokenizer.state_dict().items()}
    data = SyntheticDataModule(modality="eeg", channels=["c3", "cz", "c4", "pz"], window_seconds=4.0, train_windows=8,
                               val_windows=4, batch_size=4)
    fit = trainer(tmp_path, epochs=2)
    fit.fit(task, data)
    assert sorted(set(epochs_seen)) == [(0, 2), (1, 2)]  # the mask hook got the epoch and the run's epochs
    assert (True, True) in forcing_seen and (False, True) in forcing_seen  # training: teacher forcing; validation
    assert all(torch.equal(v, frozen[k]) for k, v in task.tokenizer.state_dict().items())
    metrics = fit.callback_metrics
    assert torch.isfinite(metrics["train/loss"]) and 0.0 <= float(metrics["val/masked_accuracy"]) <= 1.0
    assert "val_accuracy/frequency_d2" in metrics and "val_accuracy/time_d0" in metrics
    assert float(metrics["val/loss"]) == pytest.approx(7 * torch.log(torch.tensor(32.0)).item(), abs=3.0)


def test_pretraining_step_loss_is_the_level_weighted_sum(tokenizer_dir):
    task = PretrainTask(str(tokenizer_dir), fm=TINY_FM)
    data = SyntheticDataModule(modality="eeg", channels=["c3", "cz", "c4", "pz"], window_seconds=4.0, train_windows=4,
                               val_windows=4, batch_size=4)
    data.setup("fit")
    batch = next(iter(data.train_dataloader()))
    task.setup("fit")
    from neurorvq.tasks.channels import model_ids

    x, channels = batch["signal"], model_ids(task._rows, batch["channel_ids"])
    targets = task._targets(x, channels)
    mask = task.fm.pretrain_mask(x, channels, ratio=0.5, generator=torch.Generator().manual_seed(0), epoch=0,
                                 epochs=1)
    task.fm.train()
    out = task.fm.forward_pretrain(x, channels, mask, targets=targets)
    terms = task.fm.loss_terms(out, targets, mask)
    assert len([k for k in terms if k.startswith("loss_")]) == 4  # 2 domains x 2 views, each over 3 levels
    expected = sum((torch.tensor([1.0, 0.5, 0.25]) * terms[f"ce_{d}_{v}"]).sum() for d in ("time", "frequency")
                   for v in ("masked", "symmetric"))
    assert torch.allclose(task.fm.pretrain_loss(out, targets, mask), expected)


# ------------------------------------------------------------------------------------------------ fine-tuning
class FourClasses(L.LightningDataModule):
    """Random windows whose class sets the frequency of a strong rhythm: learnable, tiny."""

    def __init__(self, n: int = 16) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        t = torch.arange(400) / 200
        labels = torch.arange(n) % 4
        freq = (6.0 + 4.0 * labels.float()).reshape(-1, 1, 1)
        signal = torch.randn(n, 3, 400, generator=g) * 5 + 30 * torch.sin(2 * torch.pi * freq * t)
        ids = torch.tensor([36, 9, 10]).expand(n, 3)  # cz, c3, c4
        self.items = [{"signal": signal[i], "channel_ids": ids[i], "label": labels[i]} for i in range(n)]
        self.spec = get_modality("eeg")

    def channel_names_used(self) -> list[str]:
        return ["cz", "c3", "c4"]  # within LaBraM's vocabulary, which lacks some of the eeg modality's names

    def train_dataloader(self):
        return DataLoader(self.items, batch_size=8)

    def val_dataloader(self):
        return DataLoader(self.items, batch_size=8)


def test_short_finetuning_fit_with_label_smoothing(tmp_path):
    task = FinetuneTask(fm=None, num_classes=4, fm_overrides=TINY_FM, lr=1e-3, layer_decay=0.9, weight_decay=0.05,
                        label_smoothing=0.1, drop_path=0.1)
    fm = task.fm
    assert isinstance(fm, BrainRVQFoundationModel) and not fm.options["pretraining"] and not hasattr(fm, "ar")
    assert task.description()["model"] == "BrainRVQ" and fm.config.max_patches == 30
    assert 0.5 * 2e-5 < float(fm.head.weight.detach().std()) < 2.0 * 2e-5 and not fm.head.bias.any()  # x 0.001 init
    fit = trainer(tmp_path)
    fit.fit(task, FourClasses())
    metrics = fit.callback_metrics
    assert torch.isfinite(metrics["train/loss"]) and 0.0 <= float(metrics["val/balanced_accuracy"]) <= 1.0


@pytest.mark.parametrize("parity,mode", [(True, "official"), (False, "block")])
def test_layer_decay_map(parity, mode):
    """families.md §A.11 #13: scale 0.9 ** (13 - id): cls/pos/patch_embed 0.9^13, block b 0.9^(12 - b), time_embed
    (BQ2: parity) / fc_norm / head 1; the fix puts time_embed with the embeddings. No weight decay on 1-D tensors,
    biases and the cls/pos/time tables."""
    with torch.device("meta"):
        options = BrainRVQFMOptions(parity=parity)
        task = FinetuneTask(fm=None, num_classes=4, fm_overrides=options, layer_decay=0.9, weight_decay=0.05)
    assert task.decay_mode == mode and task.schedule == "cosine"
    groups = {g["name"]: g for g in layer_decay_groups(task.fm, 1.0, 0.9, 0.05, task.decay_mode)}
    assert groups["backbone.cls_token"]["lr"] == pytest.approx(0.9 ** 13)
    assert groups["backbone.pos_embed"]["lr"] == pytest.approx(0.9 ** 13)
    assert groups["conv.convs.0.weight"]["lr"] == pytest.approx(0.9 ** 13)
    for b in (0, 5, 11):
        assert groups[f"backbone.blocks.{b}.mlp.fc1.weight"]["lr"] == pytest.approx(0.9 ** (12 - b))
    assert groups["backbone.time_embed"]["lr"] == pytest.approx(1.0 if parity else 0.9 ** 13)
    assert groups["fc_norm.weight"]["lr"] == groups["head.weight"]["lr"] == 1.0
    decayed = {n for n, g in groups.items() if g["weight_decay"] > 0}
    assert {"backbone.blocks.0.attn.qkv.weight", "head.weight", "conv.convs.0.weight"} <= decayed
    assert not decayed & {"backbone.cls_token", "backbone.pos_embed", "backbone.time_embed", "head.bias",
                          "backbone.blocks.0.gamma_1", "fc_norm.weight"}


def test_pretraining_weight_decay_groups():
    """Parity: the official skip list (the mask token and the code embeddings are decayed); default: not decayed."""
    from neurorvq.tasks.optim import weight_decay_groups

    for parity in (True, False):
        with torch.device("meta"):
            model = BrainRVQFoundationModel("eeg", **TINY_ARCH, depth=1, vocab_size=16, parity=parity)
        decay, no_decay = weight_decay_groups(model, 0.05, model.no_weight_decay_names())
        decayed = {id(p) for p in decay["params"]}
        named = dict(model.named_parameters())
        assert (id(named["mask_token"]) in decayed) is parity
        assert (id(named["ar.time.embed.0.weight"]) in decayed) is parity
        assert id(named["ar.time.heads.0.weight"]) in decayed
        assert id(named["backbone.time_embed"]) not in decayed


def test_cv_fine_tunes_a_brainrvq_student_on_folds(tmp_path, monkeypatch):
    """``neurorvq cv`` runs a fine-tuning recipe with BrainRVQ's student (from scratch, tiny) on real EEGMMIDB folds
    and names the family in its table. The recipe is LaBraM's (BrainRVQ inherits LaBraM's fine-tuning script)."""
    import os
    from pathlib import Path

    from neurorvq.cli import main

    root = Path(__file__).resolve().parents[2]
    data = Path(os.environ.get("NEURORVQ_SHARED", root.parent / "shared")) / "data" / "eegmmidb"
    if not data.is_dir():
        pytest.skip(f"recordings not found at {data}")
    monkeypatch.chdir(tmp_path)
    fm = ("{class_path: neurorvq.families.brainrvq_fm.BrainRVQFMOptions, init_args: {depth: 1, embed_dim: 100, "
          "conv_channels: 4, num_heads: 5, mlp_ratio: 1.0}}")
    out = tmp_path / "cv"
    assert main(["cv", "--config", str(root / "recipes" / "finetune" / "labram_eegmmidb_eyes.yaml"), "--folds", "2",
                 "--val_fraction", "0", "--out", str(out), f"--data.init_args.root={data}",
                 "--data.init_args.subjects=[1, 3]", "--model.init_args.fm=null",
                 f"--model.init_args.fm_overrides={fm}", "--trainer.max_epochs=1", "--trainer.precision=32",
                 "--trainer.accelerator=cpu"]) == 0
    summary = "\n".join(p.read_text() for p in out.glob("*.md"))
    assert "BrainRVQ (no pretraining)" in summary


@pytest.fixture()
def connected_family():
    """The ``brainrvq`` family record with its foundation model (registered as is if the record already names it,
    else a copy naming it for the test's duration)."""
    import dataclasses

    from neurorvq.families import get_family, register_family

    record = get_family("brainrvq")
    path = "neurorvq.models.brainrvq_fm:BrainRVQFoundationModel"
    if record.foundation_model == path:
        yield record
        return
    register_family(dataclasses.replace(record, foundation_model=path), overwrite=True)
    try:
        yield get_family("brainrvq")
    finally:
        register_family(record, overwrite=True)


def test_pretrained_student_fine_tunes_from_its_checkpoint(tokenizer_dir, tmp_path, connected_family):
    """save_pretrained / from_pretrained keep the options; a PretrainTask checkpoint is a FinetuneTask backbone."""
    model = BrainRVQFoundationModel("eeg", **TINY_ARCH, depth=1, vocab_size=16, level_weights=(1.0, 0.3, 0.1))
    again = BrainRVQFoundationModel.from_pretrained(model.save_pretrained(tmp_path / "fm"))
    assert again.level_weights == (1.0, 0.3, 0.1) and again.options["domains"] == ("time", "frequency")
    assert again.config_hash() == model.config_hash()
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))
    task = PretrainTask(str(tokenizer_dir), fm=TINY_FM, lr=1e-3)
    data = SyntheticDataModule(modality="eeg", channels=["c3", "cz", "c4", "pz"], window_seconds=4.0, train_windows=4,
                               val_windows=4, batch_size=4)
    fit = L.Trainer(accelerator="cpu", devices=1, max_epochs=1, logger=False, enable_progress_bar=False,
                    enable_model_summary=False, num_sanity_val_steps=0, default_root_dir=tmp_path)
    fit.fit(task, data)
    ckpt = tmp_path / "pretrain.ckpt"
    fit.save_checkpoint(ckpt)
    finetune = FinetuneTask(fm=str(ckpt), num_classes=4, label_smoothing=0.1)
    assert isinstance(finetune.fm, BrainRVQFoundationModel) and finetune.provenance == "pretrained"
    assert finetune.decay_mode == "block" and not hasattr(finetune.fm, "ar")
    backbone = {k: v for k, v in task.fm.state_dict().items() if k.startswith(("conv.", "backbone."))}
    assert all(torch.equal(finetune.fm.state_dict()[k], v) for k, v in backbone.items())


def test_floor_count_rule():
    from neurorvq.tasks.masking import masked_count, token_mask

    mask = token_mask(5, 15, 0.5, "floor", torch.Generator().manual_seed(0))
    assert masked_count(15, 0.5, "floor") == 7 and mask.sum(1).tolist() == [7] * 5
    assert torch.equal(mask, token_mask(5, 15, 0.5, "floor", torch.Generator().manual_seed(0)))
    with pytest.raises(ValueError, match="masks 0 of 1"):
        token_mask(1, 1, 0.5, "floor")
