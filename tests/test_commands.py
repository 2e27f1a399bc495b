"""``neurorvq tokenize`` / ``reconstruct`` end to end on the synthetic DataModule."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from neurorvq import NeuroRVQTokenizer
from neurorvq.cli import main
from neurorvq.errors import ConfigError, InputError
from neurorvq.token_files import read_manifest, read_token_dir

TINY = dict(encoder_depth=1, decoder_depth=1, n_quantizers=2, codebook_size=32, code_dim=8)


@pytest.fixture()
def setup(tmp_path):
    torch.manual_seed(0)
    ckpt = tmp_path / "tok"
    NeuroRVQTokenizer("eeg", **TINY).save_pretrained(ckpt)
    data = tmp_path / "data.yaml"
    data.write_text(yaml.safe_dump({"data": {
        "class_path": "neurorvq.datamodules.synthetic.SyntheticDataModule",
        "init_args": {"modality": "eeg", "channels": ["fp1", "cz", "o2"], "window_seconds": 2.0,
                      "test_windows": 10, "batch_size": 4}}}))
    return ckpt, data, tmp_path


def test_tokenize_round_trip(setup):
    ckpt, data, tmp = setup
    out = tmp / "tokens"
    main(["tokenize", "--ckpt", str(ckpt), "--data", str(data), "--out", str(out), "--shard_windows", "8"])
    manifest = read_manifest(out)
    assert manifest["windows"] == 10 and len(manifest["shards"]) == 2  # 8 + 2 windows
    shards = list(read_token_dir(out))
    tokens = torch.cat([s.tokens for s in shards])
    assert tokens.shape == (10, 4, 2, 3 * 2)
    shard = shards[0]
    assert shard.channels == ["fp1", "cz", "o2"] and shard.info["sampling_rate"] == 200.0
    assert shard.info["patch_length"] == 200 and shard.info["config_hash"] == manifest["config_hash"]
    # tokens read back decode to the same reconstruction as encoding the windows directly
    from neurorvq.commands import load_datamodule, split_loader

    tokenizer = NeuroRVQTokenizer.from_pretrained(ckpt).eval()
    batch = next(iter(split_loader(load_datamodule(str(data)), "test")))
    direct_tokens, stats = tokenizer.encode(batch["signal"], shard.channels, return_amplitude_stats=True)
    assert torch.equal(shard.tokens[:4], direct_tokens)
    from_file = tokenizer.decode(shard.tokens[:4], shard.channels,
                                 (shard.amplitude_stats.mean[:4], shard.amplitude_stats.std[:4]))
    assert torch.allclose(from_file, tokenizer.decode(direct_tokens, shard.channels, stats))


def test_tokenize_refuses_other_tokenizers_folder(setup):
    ckpt, data, tmp = setup
    out = tmp / "tokens"
    main(["tokenize", "--ckpt", str(ckpt), "--data", str(data), "--out", str(out)])
    main(["tokenize", "--ckpt", str(ckpt), "--data", str(data), "--out", str(out)])  # same tokenizer: fine
    torch.manual_seed(1)
    other = tmp / "other"
    NeuroRVQTokenizer("eeg", **TINY).save_pretrained(other)
    with pytest.raises(InputError, match="holds tokens of another tokenizer.*--overwrite"):
        main(["tokenize", "--ckpt", str(other), "--data", str(data), "--out", str(out)])
    main(["tokenize", "--ckpt", str(other), "--data", str(data), "--out", str(out), "--overwrite", "true"])
    assert read_manifest(out)["checkpoint"] == str(other)
    (tmp / "busy").mkdir()
    (tmp / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="not empty"):
        main(["tokenize", "--ckpt", str(ckpt), "--data", str(data), "--out", str(tmp / "busy")])


def test_checkpoint_of_another_modality_or_configuration(setup):
    ckpt, data, tmp = setup
    ecg = tmp / "ecg"
    NeuroRVQTokenizer("ecg", **TINY).save_pretrained(ecg)
    with pytest.raises(ConfigError, match="is a 'ecg' tokenizer but the data is 'eeg'"):
        main(["tokenize", "--ckpt", str(ecg), "--data", str(data), "--out", str(tmp / "t")])
    with pytest.raises(ConfigError, match="is a 'ecg' tokenizer but the data is 'eeg'"):
        main(["reconstruct", "--ckpt", str(ecg), "--data", str(data), "--figure", "null"])
    short = tmp / "short"
    NeuroRVQTokenizer("eeg", patch_length=100, branches=[{"kernel_sizes": [9, 5], "pools": [2, 2]}] * 4,
                      embed_dim=200, **TINY).save_pretrained(short)
    with pytest.raises(ConfigError, match="patch_length=100"):
        main(["reconstruct", "--ckpt", str(short), "--data", str(data), "--figure", "null"])


def test_reconstruct_prints_band_table_and_writes_figure(setup, capsys):
    ckpt, data, tmp = setup
    figure = tmp / "rec.png"
    main(["reconstruct", "--ckpt", str(ckpt), "--data", str(data), "--figure", str(figure)])
    out = capsys.readouterr().out
    assert "| raw | delta | theta | alpha | beta | gamma |" in out
    assert figure.is_file() and figure.stat().st_size > 1000
    assert "codebook usage on the test split" in out and "| branch | level 0 |" in out


def test_data_yaml_errors(setup):
    ckpt, _, tmp = setup
    bad = tmp / "bad.yaml"
    bad.write_text("trainer: {max_epochs: 1}\n")
    with pytest.raises(ConfigError, match="no data class_path"):
        main(["reconstruct", "--ckpt", str(ckpt), "--data", str(bad)])
    with pytest.raises(ConfigError, match="is not a file"):
        main(["reconstruct", "--ckpt", str(ckpt), "--data", str(Path(tmp) / "missing.yaml")])
