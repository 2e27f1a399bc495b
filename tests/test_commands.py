"""``neurorvq tokenize`` / ``reconstruct`` end to end on the synthetic DataModule."""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

import pytest
import torch
import yaml

from neurorvq import NeuroRVQTokenizer
from neurorvq.cli import main
from neurorvq.commands import reconstruct, reconstruct_output_folder
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


def test_tokenize_refuses_other_tokenizers_folder(setup, capsys, cli_error):
    ckpt, data, tmp = setup
    out = tmp / "tokens"
    main(["tokenize", "--ckpt", str(ckpt), "--data", str(data), "--out", str(out)])
    main(["tokenize", "--ckpt", str(ckpt), "--data", str(data), "--out", str(out)])  # same tokenizer: fine
    torch.manual_seed(1)
    other = tmp / "other"
    NeuroRVQTokenizer("eeg", **TINY).save_pretrained(other)
    err = cli_error(["tokenize", "--ckpt", str(other), "--data", str(data), "--out", str(out)])
    assert re.search("holds tokens of another tokenizer.*--overwrite", err)
    main(["tokenize", "--ckpt", str(other), "--data", str(data), "--out", str(out), "--overwrite", "true"])
    assert read_manifest(out)["checkpoint"] == str(other)
    (tmp / "busy").mkdir()
    (tmp / "busy" / "notes.txt").write_text("mine")
    err = cli_error(["tokenize", "--ckpt", str(ckpt), "--data", str(data), "--out", str(tmp / "busy")])
    assert re.search("not empty", err)


def test_checkpoint_of_another_modality_or_configuration(setup, capsys, cli_error):
    ckpt, data, tmp = setup
    ecg = tmp / "ecg"
    NeuroRVQTokenizer("ecg", **TINY).save_pretrained(ecg)
    err = cli_error(["tokenize", "--ckpt", str(ecg), "--data", str(data), "--out", str(tmp / "t")])
    assert re.search("is a 'ecg' tokenizer but the data is 'eeg'", err)
    err = cli_error(["reconstruct", "--ckpt", str(ecg), "--data", str(data), "--figure", "null"])
    assert re.search("is a 'ecg' tokenizer but the data is 'eeg'", err)
    short = tmp / "short"
    NeuroRVQTokenizer("eeg", patch_length=100, branches=[{"kernel_sizes": [9, 5], "pools": [2, 2]}] * 4,
                      embed_dim=200, **TINY).save_pretrained(short)
    err = cli_error(["reconstruct", "--ckpt", str(short), "--data", str(data), "--figure", "null"])
    assert re.search("patch_length=100", err)


def test_reconstruct_prints_band_table_and_writes_figure(setup, capsys):
    ckpt, data, tmp = setup
    figure = tmp / "rec.png"
    main(["reconstruct", "--ckpt", str(ckpt), "--data", str(data), "--figure", str(figure)])
    out = capsys.readouterr().out
    assert "| raw | delta | theta | alpha | beta | gamma |" in out
    assert figure.is_file() and figure.stat().st_size > 1000
    assert "codebook usage on the test split" in out and "| group | level 0 |" in out
    assert f"figure written to {figure}" in out
    report = json.loads((tmp / "rec.json").read_text())  # an explicit figure path takes its report beside it
    assert report["figure"]["path"] == str(figure.resolve())


def test_reconstruct_writes_figure_and_report_beside_the_checkpoint(setup, tmp_path_factory, monkeypatch, capsys):
    ckpt, data, _ = setup
    cwd = tmp_path_factory.mktemp("cwd")
    monkeypatch.chdir(cwd)
    captured = capture_figures(monkeypatch)
    table = reconstruct(str(ckpt), str(data))
    out = capsys.readouterr().out
    figure, report_path = ckpt / "reconstruction_test.png", ckpt / "reconstruction_test.json"  # inside the folder
    assert figure.is_file() and figure.stat().st_size > 1000
    assert f"figure written to {figure}" in out and f"report written to {report_path}" in out
    assert list(cwd.iterdir()) == []
    report = json.loads(report_path.read_text())
    assert report["checkpoint"] == str(ckpt.resolve()) and report["data"] == str(data.resolve())
    assert report["split"] == "test" and report["windows"] == 10 and report["batches"] == 3
    assert report["mse"] == pytest.approx(table) and list(report["mse"]) == ["raw", "delta", "theta", "alpha", "beta",
                                                                               "gamma"]
    assert report["unit"] == "uV" and report["codebook_usage"]["tokens"] == 10 * 3 * 2
    assert report["figure"]["channels"] == ["fp1", "cz", "o2"] and report["figure"]["window"] == 0
    # the figure names what it shows; signals are in the data's unit
    title = captured[0]._suptitle.get_text()
    assert "test split, window 0" in title and ckpt.name in title and f"MSE {report['figure']['mse']:.3f}" in title
    assert captured[0].axes[0].get_ylabel() == "fp1\namplitude (µV)"
    assert captured[0].axes[1].get_ylabel() == "|FFT| amplitude (µV)"

    # a Lightning checkpoint file: beside it; no figure: the report still goes there
    lightning = write_lightning_ckpt(ckpt, cwd.parent / "run" / "checkpoints" / "last.ckpt")
    reconstruct(str(lightning), str(data), split="val", figure=None, max_batches=1)
    assert sorted(p.name for p in lightning.parent.iterdir()) == ["last.ckpt", "reconstruction_val.json"]
    assert json.loads((lightning.parent / "reconstruction_val.json").read_text())["figure"] is None
    assert list(cwd.iterdir()) == []


def test_reconstruct_falls_back_when_the_checkpoint_folder_is_read_only(setup, tmp_path_factory, monkeypatch,
                                                                        capsys):
    ckpt, data, tmp = setup
    lightning = write_lightning_ckpt(ckpt, tmp / "shared" / "model.ckpt")
    read_only(lightning.parent, monkeypatch)
    cwd = tmp_path_factory.mktemp("cwd")
    monkeypatch.chdir(cwd)
    try:
        reconstruct(str(lightning), str(data), max_batches=1)
    finally:
        lightning.parent.chmod(0o755)
    out = capsys.readouterr().out
    fallback = Path("runs") / "reconstruct" / "model"
    assert f"'{lightning.parent}' is not writable; writing outputs to '{fallback}' instead" in out
    assert sorted(p.name for p in (cwd / fallback).iterdir()) == ["reconstruction_test.json",
                                                                  "reconstruction_test.png"]
    assert sorted(p.name for p in lightning.parent.iterdir()) == ["model.ckpt"]


def test_hub_id_outputs_go_under_runs(capsys):
    assert reconstruct_output_folder("someone/NeuroRVQ") == Path("runs") / "reconstruct" / "NeuroRVQ"
    assert "'someone/NeuroRVQ' is not a local file or folder" in capsys.readouterr().out


def capture_figures(monkeypatch) -> list:
    """Record the figures ``reconstruct`` draws (they are closed once saved, but stay inspectable)."""
    import neurorvq.eval.figures as figures

    captured, draw = [], figures.reconstruction_figure

    def record(*args, **kwargs):
        captured.append(draw(*args, **kwargs))
        return captured[-1]

    monkeypatch.setattr(figures, "reconstruction_figure", record)
    return captured


def write_lightning_ckpt(pretrained: Path, path: Path) -> Path:
    """A minimal TokenizerTask checkpoint holding the weights of ``pretrained``."""
    model = NeuroRVQTokenizer.from_pretrained(pretrained)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"hyper_parameters": {"modality": "eeg", "tokenizer": TINY},
                "state_dict": {f"tokenizer.{k}": v for k, v in model.state_dict().items()}}, path)
    return path


def read_only(folder: Path, monkeypatch) -> None:
    """Make ``folder`` read-only; as root, where modes are not enforced, answer os.access as the OS would."""
    folder.chmod(0o555)
    if os.geteuid() == 0:
        access = os.access
        monkeypatch.setattr(os, "access", lambda path, mode, **kw: False if Path(path) == folder and mode & os.W_OK
                            else access(path, mode, **kw))


def test_token_files_get_ordinary_permissions(setup):
    ckpt, data, tmp = setup
    out = tmp / "tokens"
    previous = os.umask(0o027)  # not the usual 022: the files must follow whatever umask is set
    try:
        main(["tokenize", "--ckpt", str(ckpt), "--data", str(data), "--out", str(out), "--shard_windows", "8"])
        with open(tmp / "plain.txt", "w") as f:
            f.write("plain")
    finally:
        os.umask(previous)
    plain = stat.S_IMODE((tmp / "plain.txt").stat().st_mode)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in out.iterdir()}
    assert sorted(modes) == ["manifest.json", "tokens-00000.safetensors", "tokens-00001.safetensors"]
    assert plain == 0o640 and set(modes.values()) == {plain}


def test_data_yaml_errors(setup, capsys, cli_error):
    ckpt, _, tmp = setup
    bad = tmp / "bad.yaml"
    bad.write_text("trainer: {max_epochs: 1}\n")
    assert re.search("no data class_path", cli_error(["reconstruct", "--ckpt", str(ckpt), "--data", str(bad)]))
    err = cli_error(["reconstruct", "--ckpt", str(ckpt), "--data", str(Path(tmp) / "missing.yaml")])
    assert re.search("is not a file", err)


def test_tokenize_overwrite_replaces_only_token_files(setup, capsys):
    """--overwrite replaces another tokenizer's tokens (and writes beside other files) but never removes a user's
    files: only the token format's manifest, shards and leftovers go."""
    ckpt, data, tmp = setup
    out = tmp / "busy"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    (out / "tokens-00007.tmp").write_text("an interrupted write")
    torch.manual_seed(1)
    NeuroRVQTokenizer("eeg", **TINY).save_pretrained(tmp / "other")
    main(["tokenize", "--ckpt", str(tmp / "other"), "--data", str(data), "--out", str(out), "--overwrite", "true",
          "--shard_windows", "4"])
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "notes.txt", "tokens-00000.safetensors",
                                                     "tokens-00001.safetensors", "tokens-00002.safetensors"]
    main(["tokenize", "--ckpt", str(ckpt), "--data", str(data), "--out", str(out), "--overwrite", "true"])
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "notes.txt", "tokens-00000.safetensors"]
    assert (out / "notes.txt").read_text() == "mine" and read_manifest(out)["checkpoint"] == str(ckpt)
    assert "tokenize: wrote 10 windows in 1 shard(s)" in capsys.readouterr().out


def test_tokenize_device_options_reach_the_trainer(setup, monkeypatch):
    from neurorvq import commands
    from neurorvq.commands import trainer_devices
    from neurorvq.errors import ConfigError

    assert trainer_devices("auto") == ("auto", 1) and trainer_devices("cpu") == ("cpu", 1)
    assert trainer_devices("cuda") == ("gpu", 1) and trainer_devices("cuda:1") == ("gpu", [1])
    assert trainer_devices("cuda:1", devices="2") == ("gpu", 2)
    assert trainer_devices("cpu", accelerator="gpu", devices="0,1") == ("gpu", "0,1")
    with pytest.raises(ConfigError, match="--device 'tpu' is not auto, cpu, cuda or cuda:N"):
        trainer_devices("tpu")
    seen = {}
    monkeypatch.setattr(commands, "tokenize", lambda *args, **kwargs: seen.update(args=args, kwargs=kwargs))
    ckpt, data, tmp = setup
    main(["tokenize", "--ckpt", str(ckpt), "--data", str(data), "--out", str(tmp / "t"), "--accelerator", "cpu",
          "--devices", "2", "--strategy", "ddp", "--max_batches", "3"])
    assert seen["kwargs"] == {"accelerator": "cpu", "devices": "2", "strategy": "ddp"} and seen["args"][6] == 3


def test_data_overrides_take_the_recipe_key_forms(tmp_path):
    """``--set`` accepts ``key=``, ``init_args.key=`` and the recipe's full ``data.init_args.key=`` spelling."""
    from neurorvq.commands import load_datamodule

    recipe = tmp_path / "data.yaml"
    recipe.write_text("data:\n  class_path: neurorvq.datamodules.synthetic.SyntheticDataModule\n"
                      "  init_args: {batch_size: 4}\n")
    for key in ("batch_size", "init_args.batch_size", "data.init_args.batch_size"):
        assert load_datamodule(str(recipe), [f"{key}=3"]).hparams["batch_size"] == 3
