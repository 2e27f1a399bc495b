"""FM features on disk: ``neurorvq predict`` with the feature recipe equals ``fm.embed``; labels, subjects and
mixed channel sets; the same-model rewrite, the other-model refusal and ``overwrite``; modality mismatches."""

from __future__ import annotations

import re
from pathlib import Path

import lightning as L
import pytest
import torch
import yaml
from torch.utils.data import DataLoader

from neurorvq.cli import main
from neurorvq.datamodules.synthetic import SyntheticDataModule
from neurorvq.errors import ConfigError
from neurorvq.feature_files import FORMAT, load_pooled, read_features, read_manifest
from neurorvq.models.fm import NeuroRVQFoundationModel
from neurorvq.registry import get_modality
from neurorvq.tasks.features import FeatureExtractionTask, FeatureWriter
from neurorvq.token_files import weights_hash

RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "eeg_fm_features.yaml"
SYNTHETIC = {"channels": ["fp1", "cz", "o2"], "window_seconds": 2.0, "train_windows": 1, "val_windows": 1,
             "test_windows": 5, "batch_size": 2}


def tiny_fm(tmp_path: Path, name: str = "fm", modality: str = "eeg",
            seed: int = 0) -> tuple[Path, NeuroRVQFoundationModel]:
    torch.manual_seed(seed)
    fm = NeuroRVQFoundationModel(modality, pretraining=False, depth=1).eval()
    return fm.save_pretrained(tmp_path / name), fm


def predict(fm_dir: Path, out: Path, datamodule: L.LightningDataModule, **writer) -> None:
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=[FeatureWriter(str(out), **writer)])
    assert trainer.predict(FeatureExtractionTask(str(fm_dir)), datamodule=datamodule) is None  # nothing kept


def test_recipe_predict_writes_what_embed_returns(tmp_path):
    fm_dir, fm = tiny_fm(tmp_path)
    recipe = yaml.safe_load(RECIPE.read_text())
    assert recipe["model"]["class_path"] == "neurorvq.tasks.features.FeatureExtractionTask"
    assert recipe["data"]["class_path"] == "neurorvq.datamodules.eegmmidb.EEGMMIDBDataModule"
    (writer,) = recipe["trainer"]["callbacks"]
    assert writer["class_path"] == "neurorvq.tasks.features.FeatureWriter"
    out = tmp_path / "features"
    writer["init_args"].update(output_dir=str(out), shard_windows=2)
    recipe["data"] = {"class_path": "neurorvq.datamodules.synthetic.SyntheticDataModule", "init_args": SYNTHETIC}
    config = tmp_path / "recipe.yaml"
    config.write_text(yaml.safe_dump(recipe))
    main(["predict", "--config", str(config), f"--model.init_args.fm={fm_dir}", "--trainer.accelerator=cpu",
          f"--trainer.default_root_dir={tmp_path / 'root'}", "--trainer.enable_progress_bar=false"])

    manifest = read_manifest(out)
    assert manifest["format"] == FORMAT and manifest["format_version"] == 1
    assert manifest["modality"] == "eeg" and manifest["embed_dim"] == 800 and manifest["windows"] == 5
    assert manifest["checkpoint"] == str(fm_dir) and manifest["weights_hash"] == weights_hash(fm)
    assert [s["file"] for s in manifest["shards"]] == [f"features-0000{i}.safetensors" for i in range(3)]
    assert [s["windows"] for s in manifest["shards"]] == [2, 2, 1]
    assert all(s["channels"] == ["fp1", "cz", "o2"] and s["n_patches"] == 2 for s in manifest["shards"])

    data = SyntheticDataModule(**SYNTHETIC)
    batches = list(data.predict_dataloader())
    with torch.no_grad():
        expected = [fm.embed(b["signal"], b["channel_ids"]) for b in batches]
    shards = list(read_features(out))
    per_token = torch.cat([s.per_token for s in shards])
    pooled = torch.cat([s.pooled for s in shards])
    assert per_token.shape == (5, 3 * 2, 800) and pooled.shape == (5, 800) and pooled.dtype == torch.float32
    assert torch.allclose(per_token, torch.cat([e[0] for e in expected]), atol=1e-5)
    assert torch.allclose(pooled, torch.cat([e[1] for e in expected]), atol=1e-5)
    assert torch.equal(shards[0].channel_ids, data.channel_ids) and shards[0].label is None
    assert torch.equal(torch.cat([s.extras["index"] for s in shards]), torch.arange(5))
    flat = load_pooled(out)
    assert torch.equal(flat["pooled"], pooled) and flat["shard"].tolist() == [0, 0, 1, 1, 2]


class LabelledTwoMontages(L.LightningDataModule):
    """Labelled windows with subjects; batches alternate two 3-channel montages, one batch mixes both."""

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(1)
        self.spec = get_modality("eeg")
        montages = [torch.tensor([0, 9, 36]), torch.tensor([5, 20, 40])]
        which = [0, 0, 1, 1, 0, 1, 0]  # batches of 2: [0 0] [1 1] [0 1] [0]
        self.items = [{"signal": torch.randn(3, 200, generator=g) * 20, "channel_ids": montages[m],
                       "label": torch.tensor(i % 3), "subject": torch.tensor(10 + i)} for i, m in enumerate(which)]

    def predict_dataloader(self):
        return DataLoader(self.items, batch_size=2)


def test_labels_subjects_and_channel_sets_pooled_only(tmp_path):
    fm_dir, fm = tiny_fm(tmp_path)
    data = LabelledTwoMontages()
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=[FeatureWriter(str(tmp_path / "out"))])
    trainer.predict(FeatureExtractionTask(str(fm_dir), modality="eeg", per_token=False), datamodule=data)
    manifest = read_manifest(tmp_path / "out")
    assert manifest["windows"] == 7 and manifest["per_token"] is False
    assert [s["windows"] for s in manifest["shards"]] == [4, 3]  # one shard per channel set
    shards = list(read_features(tmp_path / "out"))
    assert shards[0].channel_ids.tolist() == [0, 9, 36]
    assert shards[0].channels == [data.spec.channels[i] for i in (0, 9, 36)]
    assert shards[1].channel_ids.tolist() == [5, 20, 40]
    for shard in shards:
        assert shard.per_token is None and shard.pooled.shape == (len(shard), 800)
        rows = shard.extras["index"].tolist()
        assert shard.label.tolist() == [i % 3 for i in rows] and shard.subject.tolist() == [10 + i for i in rows]
        x = torch.stack([data.items[i]["signal"] for i in rows])
        with torch.no_grad():
            assert torch.allclose(shard.pooled, fm.embed(x, shard.channel_ids)[1], atol=1e-5)
    assert sorted(load_pooled(tmp_path / "out")["index"].tolist()) == list(range(7))


def test_refuses_another_models_features_unless_overwrite(tmp_path):
    fm_a, model_a = tiny_fm(tmp_path, "a", seed=0)
    fm_b, model_b = tiny_fm(tmp_path, "b", seed=1)
    out = tmp_path / "out"
    data = SyntheticDataModule(**{**SYNTHETIC, "test_windows": 2})
    out.mkdir()
    (out / "notes.txt").write_text("kept")  # other files neither block nor get removed
    predict(fm_a, out, data)
    predict(fm_a, out, data)  # the same model's features are replaced
    assert read_manifest(out)["weights_hash"] == weights_hash(model_a)
    refusal = rf"'{re.escape(str(out))}' holds features of another foundation model.*overwrite: true"
    with pytest.raises(ConfigError, match=refusal):
        predict(fm_b, out, data)
    assert read_manifest(out)["weights_hash"] == weights_hash(model_a)  # untouched
    predict(fm_b, out, data, overwrite=True)
    assert read_manifest(out)["weights_hash"] == weights_hash(model_b)
    assert (out / "notes.txt").read_text() == "kept"
    assert sorted(p.name for p in out.iterdir()) == ["features-00000.safetensors", "manifest.json", "notes.txt"]


def test_modality_mismatches(tmp_path):
    fm_dir, _ = tiny_fm(tmp_path)
    with pytest.raises(ConfigError, match="is a 'eeg' model but modality is 'ecg'"):
        FeatureExtractionTask(str(fm_dir), modality="ecg")
    ecg_dir, _ = tiny_fm(tmp_path, "ecg", modality="ecg")
    with pytest.raises(ConfigError, match="data's modality 'eeg'.*differs from the foundation model's 'ecg'"):
        predict(ecg_dir, tmp_path / "out", SyntheticDataModule(**SYNTHETIC))
    assert not (tmp_path / "out" / "manifest.json").exists()


class Empty(L.LightningDataModule):
    def predict_dataloader(self):
        return DataLoader([], batch_size=2)


def test_an_empty_split_still_gets_a_manifest(tmp_path):
    fm_dir, _ = tiny_fm(tmp_path)
    predict(fm_dir, tmp_path / "out", Empty())
    assert read_manifest(tmp_path / "out")["windows"] == 0 and read_manifest(tmp_path / "out")["shards"] == []
    assert load_pooled(tmp_path / "out")["pooled"].shape == (0, 800)
