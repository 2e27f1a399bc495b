"""Safetensors outputs (token shards, feature files, save_pretrained weights) get the umask's ordinary mode, like
the JSON written beside them (safetensors' own save_file gives 600)."""

from __future__ import annotations

import os
import stat

import torch
from safetensors.torch import load_file

from neurorvq import NeuroRVQTokenizer
from neurorvq.safetensors_io import write_safetensors


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
    import pytest

    with pytest.raises(ValueError, match="non contiguous"):
        write_safetensors(tmp_path / "b.safetensors", {"x": torch.arange(6).reshape(2, 3).t()})
    assert not (tmp_path / "b.safetensors").exists()
