"""Files written by neurorvq 0.1 (tests/fixtures/legacy_v0_1, made by scripts/make_legacy_fixtures.py at the commit
in its legacy.json) keep loading and giving the same ids, features and hashes; the preprocessing configs and spec
hashes that window caches and token folders are keyed by stay the same. A later format change must keep these
passing or make the loaders refuse them with a message that says how to migrate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from neurorvq import NeuroRVQTokenizer
from neurorvq.data.preprocess import Pipeline
from neurorvq.families.neurorvq_spec import as_neurorvq_spec
from neurorvq.models.fm import NeuroRVQFoundationModel
from neurorvq.registry import SPEC_CHECKPOINT_KEY, get_modality, unregister_modality
from neurorvq.tasks.finetune import load_fm
from neurorvq.tasks.tokenizer import load_tokenizer
from neurorvq.token_files import read_manifest, read_token_dir, weights_hash

LEGACY = Path(__file__).resolve().parent / "fixtures" / "legacy_v0_1"
PINNED = json.loads((LEGACY / "legacy.json").read_text())
INPUTS = load_file(LEGACY / "inputs.safetensors")


@pytest.mark.parametrize("source", ["tokenizer", "tokenizer_task.ckpt", "tokenizer_task_no_spec.ckpt"])
def test_tokenizers_give_the_same_ids_and_hashes(source, tmp_path):
    if source == "tokenizer_task_no_spec.ckpt":  # as written before checkpoints stored their spec
        ckpt = torch.load(LEGACY / "tokenizer_task.ckpt", map_location="cpu", weights_only=False)
        del ckpt[SPEC_CHECKPOINT_KEY]
        torch.save(ckpt, tmp_path / source)
    path = LEGACY / source if source != "tokenizer_task_no_spec.ckpt" else tmp_path / source
    tokenizer = (NeuroRVQTokenizer.from_pretrained(path) if source == "tokenizer" else load_tokenizer(str(path))).eval()
    with torch.no_grad():
        tokens = tokenizer.encode(INPUTS["signal"], INPUTS["channel_ids"])
    assert torch.equal(tokens, INPUTS["tokens"])
    assert tokenizer.spec.config_hash() == PINNED["tokenizer_config_hash"]
    assert weights_hash(tokenizer) == PINNED["tokenizer_weights_hash"]


@pytest.mark.parametrize("source", ["fm", "pretrain_task.ckpt"])
def test_foundation_models_give_the_same_features(source):
    fm = (NeuroRVQFoundationModel.from_pretrained(LEGACY / source) if source == "fm"
          else load_fm(str(LEGACY / source))).eval()
    with torch.no_grad():
        features, _ = fm.embed(INPUTS["signal"], INPUTS["channel_ids"])
    assert torch.allclose(features, INPUTS["fm_features"], atol=1e-6)
    assert fm.spec.config_hash() == PINNED["fm_config_hash"]


def test_a_format_1_token_folder_reads_back():
    manifest = read_manifest(LEGACY / "tokens")
    assert manifest["format_version"] == 1 and manifest["config_hash"] == PINNED["tokenizer_config_hash"]
    assert manifest["weights_hash"] == PINNED["tokenizer_weights_hash"]
    shards = list(read_token_dir(LEGACY / "tokens"))
    assert sum(s.tokens.shape[0] for s in shards) == manifest["windows"] == 4
    tokenizer = NeuroRVQTokenizer.from_pretrained(LEGACY / "tokenizer").eval()
    shard = shards[0]
    decoded = tokenizer.decode(shard.tokens, shard.channels, (shard.amplitude_stats.mean, shard.amplitude_stats.std))
    assert decoded.shape[0] == shard.tokens.shape[0] and torch.isfinite(decoded).all()


def test_a_flat_spec_file_registers_the_same_spec():
    """Read as the signal plus its NeuroRVQ architecture (with a warning saying how to rewrite it); the flat record
    they join into hashes as the file's spec did."""
    try:
        with pytest.warns(DeprecationWarning, match=r"flat form of neurorvq 0\.1.*ModalitySpec\.load\("):
            spec = get_modality(str(LEGACY / "legacy_ecg.json"))
        assert spec.name == "legacy_ecg" and [s["step"] for s in spec.preprocessing] == ["PickChannels", "Resample"]
        assert as_neurorvq_spec(spec).config_hash() == PINNED["spec_file_config_hash"]
    finally:
        unregister_modality("legacy_ecg")


@pytest.mark.parametrize("modality", ["eeg", "ecg", "emg", "semg200"])
def test_builtin_specs_and_preprocessing_keep_their_identity(modality):
    """Window caches are keyed by the preprocessing config, token folders by the hash of the flat NeuroRVQ record
    (signal + architecture: what a tokenizer's ``spec`` is)."""
    spec = get_modality(modality)
    assert as_neurorvq_spec(spec).config_hash() == PINNED["builtin_config_hash"][modality]
    assert json.loads(json.dumps(Pipeline.default(spec).config())) == PINNED["builtin_pipeline"][modality]
