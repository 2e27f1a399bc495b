"""Token shards carry a checksum verified on every read: an id changed in place (still inside the codebook, so
decoding would not notice), a changed ``info`` and a truncated shard each fail with one message naming the folder,
the shard and what to do; shards written before checksums still read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from neurorvq import NeuroRVQTokenizer
from neurorvq.file_io import CHECKSUM_KEY, DamagedFileError, write_safetensors
from neurorvq.token_files import read_token_dir, read_tokens

TINY = dict(encoder_depth=1, decoder_depth=1, n_quantizers=2, codebook_size=32, code_dim=8)


def tensor_offset(path: Path, name: str) -> tuple[int, int]:
    """``(byte offset in the file, item size)`` of tensor ``name`` of a safetensors file (its header says where)."""
    data = path.read_bytes()
    n = int.from_bytes(data[:8], "little")
    entry = json.loads(data[8:8 + n])[name]
    size = {"I16": 2, "I32": 4, "I64": 8, "F32": 4}[entry["dtype"]]
    return 8 + n + entry["data_offsets"][0], size


def patch_bytes(path: Path, offset: int, new: bytes) -> None:
    """Rewrite ``path`` with ``new`` at ``offset`` (same size, the recorded checksum kept)."""
    data = bytearray(path.read_bytes())
    data[offset:offset + len(new)] = new
    path.write_bytes(bytes(data))


@pytest.fixture(scope="module")
def tokens(tmp_path_factory) -> Path:
    """A token folder written by ``neurorvq tokenize`` (tiny tokenizer, 10 synthetic windows, 2 shards)."""
    from neurorvq.cli import main

    tmp = tmp_path_factory.mktemp("tok")
    torch.manual_seed(0)
    NeuroRVQTokenizer("eeg", **TINY).save_pretrained(tmp / "tok")
    data = tmp / "data.yaml"
    data.write_text(yaml.safe_dump({"data": {
        "class_path": "neurorvq.datamodules.synthetic.SyntheticDataModule",
        "init_args": {"modality": "eeg", "channels": ["fp1", "cz", "o2"], "window_seconds": 2.0,
                      "test_windows": 10, "batch_size": 4}}}))
    assert main(["tokenize", "--ckpt", str(tmp / "tok"), "--data", str(data), "--out", str(tmp / "tokens"),
                 "--shard_windows", "8"]) == 0
    return tmp / "tokens"


def copy_folder(src: Path, dst: Path) -> Path:
    dst.mkdir()
    for f in src.iterdir():
        (dst / f.name).write_bytes(f.read_bytes())
    return dst


def test_shards_record_a_checksum_and_read_back(tokens):
    from safetensors import safe_open

    with safe_open(str(tokens / "tokens-00000.safetensors"), framework="pt") as f:
        record = json.loads(f.metadata()[CHECKSUM_KEY])
    assert record["algorithm"] == "sha256" and set(record["tensors"]) >= {"tokens", "amplitude_mean", "channel_ids"}
    assert set(record["metadata"]) == {"info"}
    assert sum(len(s.tokens) for s in read_token_dir(tokens)) == 10


def test_an_in_range_id_change_is_caught(tokens, tmp_path):
    folder = copy_folder(tokens, tmp_path / "tokens")
    shard = folder / "tokens-00000.safetensors"
    before = read_tokens(shard).tokens
    offset, size = tensor_offset(shard, "tokens")
    old = int(before.reshape(-1)[3])
    new = (old + 1) % 32  # another valid code: decoding would take it
    patch_bytes(shard, offset + 3 * size, new.to_bytes(size, "little", signed=True))
    assert shard.stat().st_size == (tokens / shard.name).stat().st_size
    with pytest.raises(DamagedFileError) as caught:
        list(read_token_dir(folder))
    message = str(caught.value)
    assert f"token shard 'tokens-00000.safetensors' in '{folder}'" in message
    assert "does not match the checksum" in message and "tensor 'tokens'" in message
    assert "Re-run `neurorvq tokenize` into a fresh --out folder" in message
    read_tokens(folder / "tokens-00001.safetensors")  # the other shard is intact


def test_a_changed_info_and_a_truncated_shard_are_caught(tokens, tmp_path):
    folder = copy_folder(tokens, tmp_path / "tokens")
    shard = folder / "tokens-00000.safetensors"
    data = shard.read_bytes()
    at = data.index(b'\\"fp1\\"')  # the channel name inside the JSON-encoded info (same length: still valid)
    patch_bytes(shard, at + 2, b"fp2")
    with pytest.raises(DamagedFileError, match=r"does not match the checksum .*\(metadata 'info'\)"):
        read_tokens(shard)
    shard.write_bytes(data[: len(data) // 2])
    with pytest.raises(DamagedFileError, match=r"token shard 'tokens-00000.safetensors' in '.*' cannot be read: "
                                               r"the file is damaged or incomplete.*Re-run `neurorvq tokenize`"):
        read_tokens(shard)


def test_shards_written_before_checksums_still_read(tokens, tmp_path):
    """A shard without a checksum record (the writer before checksums) reads as before, unverified."""
    from safetensors import safe_open

    src = tokens / "tokens-00000.safetensors"
    with safe_open(str(src), framework="pt") as f:
        metadata = {k: v for k, v in f.metadata().items() if k != CHECKSUM_KEY}
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    old = write_safetensors(tmp_path / "tokens-00000.safetensors", tensors, metadata)
    shard = read_tokens(old)
    assert torch.equal(shard.tokens, read_tokens(src).tokens) and shard.channels == ["fp1", "cz", "o2"]


def test_format_2_shards_carry_the_layout_and_decode_through_the_protocol(tokens):
    shard = read_tokens(tokens / "tokens-00000.safetensors")
    tokenizer = NeuroRVQTokenizer.from_pretrained(tokens.parent / "tok").eval()
    assert shard.info["format_version"] == 2 and shard.info["family"] == "neurorvq"
    assert shard.layout == tokenizer.layout and shard.ids.shape == (8, 4 * 2, 3 * 2)  # [W, S*N, C*A]
    assert shard.tokens.shape == (8, 4, 2, 6) and sorted(shard.side) == ["amplitude_mean", "amplitude_std"]
    encoded = shard.encoded()
    assert (encoded.n_channels, encoded.n_patches) == (3, 2)
    from_protocol = tokenizer.detokenize(encoded, shard.channels)
    from_tokens = tokenizer.decode(shard.tokens, shard.channels, shard.amplitude_stats)
    assert torch.equal(from_protocol, from_tokens) and from_protocol.shape == (8, 3, 400)
    manifest = json.loads((tokens / "manifest.json").read_text())
    assert manifest["family"] == "neurorvq" and manifest["layout"]["groups"] == ["b0", "b1", "b2", "b3"]


def test_manifests_name_their_format_and_older_ones_still_read(tokens, tmp_path):
    from neurorvq import __version__
    from neurorvq.token_files import read_manifest

    manifest = read_manifest(tokens)
    assert manifest["format"] == "neurorvq-tokens" and manifest["format_version"] == 2
    assert manifest["writer"] == {"neurorvq": __version__}
    # a list of names, as older readers expect
    assert manifest["shards"] == ["tokens-00000.safetensors", "tokens-00001.safetensors"]
    folder = copy_folder(tokens, tmp_path / "tokens")
    older = {k: v for k, v in manifest.items() if k not in ("format", "writer")}  # as written before the format key
    (folder / "manifest.json").write_text(json.dumps(older))
    assert read_manifest(folder) == older and sum(len(s.ids) for s in read_token_dir(folder)) == 10


def test_newer_or_unfinished_token_folders_say_what_to_do(tokens, tmp_path):
    from neurorvq.errors import InputError
    from neurorvq.token_files import read_manifest

    folder = copy_folder(tokens, tmp_path / "tokens")
    manifest = json.loads((folder / "manifest.json").read_text())
    (folder / "manifest.json").write_text(json.dumps({**manifest, "format_version": 3,
                                                      "writer": {"neurorvq": "0.7.0"}}))
    with pytest.raises(InputError) as caught:
        list(read_token_dir(folder))
    assert str(caught.value) == (f"token folder '{folder}' was written by neurorvq 0.7.0 (format 3); this neurorvq "
                                 "reads formats 1, 2: upgrade neurorvq, or re-run `neurorvq tokenize` into a fresh "
                                 "--out folder (or with --overwrite) to write the tokens again from the tokenizer "
                                 "checkpoint")
    (folder / "manifest.json").unlink()
    with pytest.raises(InputError, match=r"is not a finished token folder \(no manifest.json; an interrupted run "
                                         r"leaves shards without a manifest\): re-run `neurorvq tokenize`"):
        read_manifest(folder)
