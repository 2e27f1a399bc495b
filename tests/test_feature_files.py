"""Feature shards carry a checksum verified on every read: a feature value changed in place fails with one
message naming the folder, the shard and what to do (the per-token tensor is verified when it is read); shards
written before checksums still read."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import lightning as L
import pytest
import torch

from neurorvq.datamodules.synthetic import SyntheticDataModule
from neurorvq.feature_files import load_pooled, read_feature_shard, read_features
from neurorvq.file_io import CHECKSUM_KEY, DamagedFileError, write_safetensors
from neurorvq.models.fm import NeuroRVQFoundationModel
from neurorvq.tasks.features import FeatureExtractionTask, FeatureWriter


def tensor_offset(path: Path, name: str) -> int:
    """Byte offset in the file of float32 tensor ``name`` of a safetensors file (its header says where)."""
    data = path.read_bytes()
    n = int.from_bytes(data[:8], "little")
    entry = json.loads(data[8:8 + n])[name]
    assert entry["dtype"] == "F32"
    return 8 + n + entry["data_offsets"][0]


def patch_float(path: Path, name: str, index: int, value: float) -> None:
    """Rewrite ``path`` with element ``index`` of ``name`` set to ``value`` (same size, the checksum kept)."""
    data = bytearray(path.read_bytes())
    at = tensor_offset(path, name) + 4 * index
    data[at:at + 4] = struct.pack("<f", value)
    path.write_bytes(bytes(data))


@pytest.fixture(scope="module")
def features(tmp_path_factory) -> Path:
    """A feature folder written by FeatureWriter (what `neurorvq predict` runs): tiny FM, 5 windows, 3 shards."""
    tmp = tmp_path_factory.mktemp("features")
    torch.manual_seed(0)
    fm_dir = NeuroRVQFoundationModel("eeg", pretraining=False, depth=1).eval().save_pretrained(tmp / "fm")
    data = SyntheticDataModule(modality="eeg", channels=["fp1", "cz", "o2"], window_seconds=2.0, train_windows=1,
                               val_windows=1, test_windows=5, batch_size=2)
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=[FeatureWriter(str(tmp / "out"), shard_windows=2)])
    trainer.predict(FeatureExtractionTask(str(fm_dir)), datamodule=data)
    return tmp / "out"


def copy_folder(src: Path, dst: Path) -> Path:
    dst.mkdir()
    for f in src.iterdir():
        (dst / f.name).write_bytes(f.read_bytes())
    return dst


def test_a_changed_feature_value_is_caught(features, tmp_path):
    folder = copy_folder(features, tmp_path / "out")
    shard = folder / "features-00001.safetensors"
    pooled = read_feature_shard(shard).pooled
    patch_float(shard, "pooled", 5, float(pooled.reshape(-1)[5]) + 0.5)  # a plausible value, silently wrong
    with pytest.raises(DamagedFileError) as caught:
        load_pooled(folder)
    message = str(caught.value)
    assert f"feature shard 'features-00001.safetensors' in '{folder}'" in message
    assert "does not match the checksum" in message and "tensor 'pooled'" in message
    assert "Extract the features again into a fresh output_dir" in message


def test_per_token_features_are_verified_when_read(features, tmp_path):
    folder = copy_folder(features, tmp_path / "out")
    shard = folder / "features-00000.safetensors"
    patch_float(shard, "per_token", 7, 1e3)
    with pytest.raises(DamagedFileError, match=r"features-00000.safetensors' .*tensor 'per_token'"):
        list(read_features(folder))
    # per_token=False neither reads nor hashes the per-token tensor (documented); the rest is still verified
    assert sum(len(s) for s in read_features(folder, per_token=False)) == 5


def test_shards_written_before_checksums_still_read(features, tmp_path):
    from safetensors import safe_open

    src = features / "features-00000.safetensors"
    with safe_open(str(src), framework="pt") as f:
        assert CHECKSUM_KEY in f.metadata()
        metadata = {k: v for k, v in f.metadata().items() if k != CHECKSUM_KEY}
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    old = read_feature_shard(write_safetensors(tmp_path / "features-00000.safetensors", tensors, metadata))
    assert torch.equal(old.pooled, read_feature_shard(src).pooled) and old.channels == ["fp1", "cz", "o2"]


def test_newer_or_unfinished_feature_folders_say_what_to_do(features, tmp_path):
    from neurorvq import __version__
    from neurorvq.errors import InputError
    from neurorvq.feature_files import read_manifest

    folder = copy_folder(features, tmp_path / "out")
    manifest = read_manifest(folder)
    assert manifest["format"] == "neurorvq-features" and manifest["writer"] == {"neurorvq": __version__}
    (folder / "manifest.json").write_text(json.dumps({**manifest, "format_version": 2,
                                                      "writer": {"neurorvq": "0.8.0"}}))
    with pytest.raises(InputError) as caught:
        load_pooled(folder)
    assert str(caught.value) == (f"feature folder '{folder}' was written by neurorvq 0.8.0 (format 2); this neurorvq "
                                 "reads formats 1: upgrade neurorvq, or extract the features again into a fresh "
                                 "output_dir (`neurorvq predict` with the FeatureWriter, e.g. "
                                 "recipes/eeg_fm_features.yaml)")
    (folder / "manifest.json").unlink()
    with pytest.raises(InputError, match=r"'.*' is not a finished feature folder \(no manifest.json"):
        list(read_features(folder))
