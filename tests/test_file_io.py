"""Damaged files fail with one message naming the file and what to do; writes are atomic and get the umask's
ordinary mode, like the JSON written beside them (safetensors' own save_file gives 600)."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from neurorvq import NeuroRVQTokenizer
from neurorvq.errors import CheckpointError, ConfigError
from neurorvq.file_io import (DamagedFileError, FileWriteError, read_safetensors, read_yaml, torch_load, write_atomic,
                              write_safetensors)
from neurorvq.tasks.tokenizer import load_tokenizer

REPO = Path(__file__).resolve().parents[1]
TINY = {"encoder_depth": 1, "decoder_depth": 1, "n_quantizers": 2, "codebook_size": 8, "code_dim": 4}


def truncate(path: Path, keep: float = 0.5) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def test_a_yaml_syntax_error_names_file_line_and_column(tmp_path, cli_error):
    recipe = tmp_path / "bad.yaml"
    recipe.write_text("trainer:\n  max_epochs: 2\n  devices: [1, 2\nmodel: {}\n")
    with pytest.raises(ConfigError, match=r"bad.yaml', line 4, column 6: YAML syntax error \(expected ',' or ']'"):
        read_yaml(recipe)
    err = cli_error(["fit", "--config", str(recipe)])
    assert "bad.yaml', line 4, column 6: YAML syntax error" in err


def test_truncated_checkpoints_name_the_file(tmp_path, cli_error):
    ckpt = tmp_path / "last.ckpt"
    torch.save({"epoch": 0, "state_dict": {"w": torch.zeros(1000)}, "hyper_parameters": {"modality": "eeg"}}, ckpt)
    truncate(ckpt)
    with pytest.raises(CheckpointError, match=r"last.ckpt' cannot be read as a PyTorch checkpoint: the file is "
                                              r"damaged or incomplete"):
        load_tokenizer(str(ckpt))
    with pytest.raises(CheckpointError, match="last.ckpt"):
        torch_load(ckpt, weights_only=False, mmap=True)
    err = cli_error(["fit", "--config", str(REPO / "recipes" / "quickstart.yaml"), f"--ckpt_path={ckpt}"])
    assert "last.ckpt' cannot be read" in err


def test_damaged_save_pretrained_files_name_the_file(tmp_path):
    folder = NeuroRVQTokenizer("ecg", **TINY).save_pretrained(tmp_path / "tok")
    truncate(folder / "model.safetensors")
    with pytest.raises(CheckpointError, match=r"model.safetensors' cannot be read as a safetensors file"):
        NeuroRVQTokenizer.from_pretrained(folder)
    NeuroRVQTokenizer("ecg", **TINY).save_pretrained(folder)
    (folder / "config.json").write_bytes(b"\x00" * 64)
    with pytest.raises(CheckpointError, match=r"config.json' cannot be read as JSON"):
        NeuroRVQTokenizer.from_pretrained(folder)


def test_a_failed_write_leaves_no_file_under_its_name(tmp_path, monkeypatch):
    target = tmp_path / "model.safetensors"
    write_atomic(target, b"old")

    def disk_full(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", disk_full)
    with pytest.raises(FileWriteError, match=r"could not write '.*model.safetensors' \(0.0 MB; .* MB free\): No "
                                             r"space") as caught:
        write_atomic(target, b"new contents")
    assert isinstance(caught.value, OSError) and caught.value.errno == errno.ENOSPC  # callers catching OSError still do
    assert target.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["model.safetensors"]


def test_checksums_cover_every_tensor_and_metadata_string(tmp_path):
    tensors = {"a": torch.arange(6, dtype=torch.bfloat16).reshape(2, 3), "b": torch.tensor(7)}
    path = write_safetensors(tmp_path / "x.safetensors", tensors, {"note": "hi"}, checksums=True)
    metadata, read = read_safetensors(path, ["b"])  # a subset is read and verified
    assert metadata == {"note": "hi"} and list(read) == ["b"] and torch.equal(read["b"], tensors["b"])
    data = bytearray(path.read_bytes())
    data[-1] ^= 1  # the last byte of the last tensor's data
    path.write_bytes(bytes(data))
    with pytest.raises(DamagedFileError, match=r"file 'x.safetensors' in '.*' does not match the checksum recorded "
                                               r"when it was written \(tensor '[ab]'\)"):
        read_safetensors(path)


def test_files_follow_the_umask_and_read_back(tmp_path):
    previous = os.umask(0o027)
    try:
        write_safetensors(tmp_path / "a.safetensors", {"x": torch.arange(6).reshape(2, 3)}, {"note": "hi"})
        NeuroRVQTokenizer("eeg", encoder_depth=1, decoder_depth=1, n_quantizers=1, codebook_size=8,
                          code_dim=4).save_pretrained(tmp_path / "model")
        (tmp_path / "plain.txt").write_text("plain")
    finally:
        os.umask(previous)
    plain = stat.S_IMODE((tmp_path / "plain.txt").stat().st_mode)
    assert plain == 0o640
    for path in (tmp_path / "a.safetensors", tmp_path / "model" / "model.safetensors", tmp_path / "model" / "config.json"):
        assert stat.S_IMODE(path.stat().st_mode) == plain, path
    assert torch.equal(load_file(tmp_path / "a.safetensors")["x"], torch.arange(6).reshape(2, 3))


def test_a_refused_tensor_leaves_no_file(tmp_path):
    with pytest.raises(ValueError, match="non contiguous"):
        write_safetensors(tmp_path / "b.safetensors", {"x": torch.arange(6).reshape(2, 3).t()})
    assert not (tmp_path / "b.safetensors").exists()
