"""``neurorvq compare-tokenizers`` through its module's entry function: a NeuroRVQ and a toy-family checkpoint on
the synthetic DataModule, labels, outputs, and the errors a user can make."""

from __future__ import annotations

import csv
import json

import pytest
import torch
import yaml

from neurorvq import NeuroRVQTokenizer
from neurorvq.cli.compare import compare_parser, run_compare_command
from neurorvq.compat import IncompatibleSignal
from neurorvq.errors import CheckpointError, ConfigError
from neurorvq.eval.compare.command import parse_sources
from neurorvq.families.toy import ToyVQTokenizer

TINY = dict(encoder_depth=1, decoder_depth=1, n_quantizers=2, codebook_size=32, code_dim=8)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("compare")
    torch.manual_seed(0)
    NeuroRVQTokenizer("eeg", **TINY).save_pretrained(tmp / "nrvq")
    ToyVQTokenizer("eeg", codebook_size=16).save_pretrained(tmp / "toy")
    data = tmp / "data.yaml"
    data.write_text(yaml.safe_dump({"data": {
        "class_path": "neurorvq.datamodules.synthetic.SyntheticDataModule",
        "init_args": {"modality": "eeg", "channels": ["fp1", "cz", "o2"], "window_seconds": 2.0,
                      "test_windows": 10, "batch_size": 4}}}))
    return tmp, data


def test_two_families_compared_and_every_file_written(setup, capsys):
    tmp, data = setup
    out = tmp / "out"
    status = run_compare_command(["--tokenizers", f"neuro={tmp / 'nrvq'}", str(tmp / "toy"), "--data", str(data),
                                  "--out", str(out), "--max_windows", "6", "--set", "batch_size=5",
                                  "--device", "cpu"])
    assert status == 0
    printed = capsys.readouterr().out
    assert "filtering mode `patch`" in printed and "filtering mode `channel`" in printed  # default: both
    assert "| neuro | neurorvq | 6 |" in printed and "| toy | toy_vq | 6 |" in printed
    assert "published (paper, different data)" in printed and "written: " in printed
    report = json.loads((out / "comparison.json").read_text())
    assert report["windows"] == 6 and report["modes"] == ["patch", "channel"]
    assert [t["name"] for t in report["tokenizers"]] == ["neuro", "toy"]
    assert [t["bits_per_second"] for t in report["tokenizers"]] == [40.0, 4.0]
    assert report["context"]["split"] == "test" and report["context"]["overrides"] == ["batch_size=5"]
    assert report["context"]["tokenizers"] == {"neuro": str((tmp / "nrvq").resolve()),
                                               "toy": str((tmp / "toy").resolve())}
    assert report["tokenizers"][0]["source"] == str(tmp / "nrvq")
    rows = list(csv.DictReader((out / "comparison.csv").open()))
    assert len(rows) == 2 * 2 + 2 and {r["windows"] for r in rows[:4]} == {"6"}
    assert (out / "comparison.png").stat().st_size > 10_000 and (out / "codebook.csv").is_file()
    assert (out / "comparison.md").read_text().startswith("# Tokenizer comparison")


def test_one_mode_and_no_figure(setup, capsys):
    tmp, data = setup
    out = tmp / "patch_only"
    run_compare_command(["--tokenizers", str(tmp / "toy"), "--data", str(data), "--out", str(out),
                         "--mode", "channel", "--figure", "false", "--max_windows", "null"])
    report = json.loads((out / "comparison.json").read_text())
    assert report["modes"] == ["channel"] and report["windows"] == 10
    assert not (out / "comparison.png").exists() and "figure" not in report["files"]
    assert "filtering mode `patch`" not in (out / "comparison.md").read_text()


def test_a_tokenizer_that_cannot_take_the_data_is_named(setup):
    tmp, data = setup
    torch.manual_seed(0)
    NeuroRVQTokenizer("ecg", **TINY).save_pretrained(tmp / "ecg")
    with pytest.raises(IncompatibleSignal, match=r"tokenizer 'heart' \(neurorvq, 'ecg'\) cannot take the 'eeg' "
                                                  r"data .*unit uV vs mV; patch_length=200 vs patch_length=40"):
        run_compare_command(["--tokenizers", str(tmp / "toy"), f"heart={tmp / 'ecg'}", "--data", str(data),
                             "--out", str(tmp / "bad")])
    assert not (tmp / "bad").exists()


def test_bad_options_are_one_line_errors(setup):
    tmp, data = setup
    with pytest.raises(ConfigError, match="--mode"):
        run_compare_command(["--tokenizers", str(tmp / "toy"), "--data", str(data), "--mode", "bands"])
    with pytest.raises(ConfigError, match="max_windows is 0"):
        run_compare_command(["--tokenizers", str(tmp / "toy"), "--data", str(data), "--max_windows", "0",
                             "--out", str(tmp / "zero")])
    with pytest.raises(ConfigError, match="--split 'held' is not one of train, val, test, predict"):
        run_compare_command(["--tokenizers", str(tmp / "toy"), "--data", str(data), "--split", "held"])
    with pytest.raises(ConfigError, match="two tokenizers are named 'toy'"):
        run_compare_command(["--tokenizers", str(tmp / "toy"), f"toy={tmp / 'nrvq'}", "--data", str(data)])
    with pytest.raises(ConfigError, match="did you mean"):
        run_compare_command(["--tokenizers", str(tmp / "toy"), "--data", str(data), "--max_window", "3"])
    with pytest.raises(CheckpointError, match="checkpoint '.*missing' not found"):
        run_compare_command(["--tokenizers", str(tmp / "missing"), "--data", str(data)])


def test_labels_and_help():
    assert parse_sources(["a=runs/x", "runs/y/last.ckpt", "hf://owner/name"]) == {
        "a": "runs/x", "last": "runs/y/last.ckpt", "name": "hf://owner/name"}
    assert parse_sources(["runs/a=b/tok"]) == {"tok": "runs/a=b/tok"}  # a "/" before "=": a path, not a label
    text = compare_parser().format_help()
    assert "--tokenizers" in text and "patch" in text and "--max_windows" in text


def test_the_top_level_cli_runs_it_and_lists_it(setup, capsys):
    from neurorvq.cli.app import main

    tmp, data = setup
    out = tmp / "top"
    assert main(["compare-tokenizers", "--tokenizers", str(tmp / "nrvq"), "--data", str(data), "--mode", "patch",
                 "--figure", "false", "--out", str(out)]) == 0
    assert (out / "comparison.md").is_file() and "patch" in (out / "comparison.md").read_text()
    assert main(["compare-tokenizers", "--tokenizers", str(tmp / "nrvq"), "--data", str(data), "--mode",
                 "bands"]) == 2
    assert "Traceback" not in capsys.readouterr().err
    main(["--help"])
    assert "compare-tokenizers" in capsys.readouterr().out


def test_a_recording_datamodule_is_checked_by_the_channels_its_windows_use(tmp_path):
    """LaBraM's vocabulary (128 names) lacks some of the EEG modality's names (eog, ...): the comparison checks
    a tokenizer against the channels the loaded windows use, so EEGMMIDB's 64 electrodes are accepted."""
    import os
    from pathlib import Path

    from neurorvq.models.spectral_vq import LaBraMTokenizer

    root = Path(os.environ.get("NEURORVQ_SHARED", Path(__file__).resolve().parents[3] / "shared")) / "data" / "eegmmidb"
    if not root.is_dir():
        pytest.skip(f"recordings not found at {root}")
    torch.manual_seed(0)
    LaBraMTokenizer("eeg", embed_dim=100, conv_channels=4, num_heads=5, encoder_depth=1, decoder_depth=1,
                    codebook_size=16, code_dim=8).save_pretrained(tmp_path / "labram")
    data = tmp_path / "data.yaml"
    data.write_text(yaml.safe_dump({"data": {
        "class_path": "neurorvq.datamodules.eegmmidb.EEGMMIDBDataModule",
        "init_args": {"root": str(root), "task": "eyes", "subjects": [1, 3], "test_subjects": [3],
                      "val_subjects": [], "window_seconds": 4.0, "batch_size": 8, "verbose": False}}}))
    out = tmp_path / "out"
    assert run_compare_command(["--tokenizers", str(tmp_path / "labram"), "--data", str(data), "--max_windows", "8",
                                "--mode", "channel", "--figure", "false", "--out", str(out)]) == 0
    report = json.loads((out / "comparison.json").read_text())
    assert report["windows"] == 8 and len(report["tokenizers"]) == 1
