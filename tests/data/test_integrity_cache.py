"""Integrity of the window cache (issue 19): every shard's CRC-32 in index.json, verified as it streams; a
same-size corruption, a zeroed .npy header, a zeroed JSON member and a random tar header each give one CacheError
naming the folder, the shard (and the member) and the fix; an epoch through the DataModule does not train on a
corrupted shard; a format-1 cache (no checksums) is still read; a disk that fills during a build gives one
FileWriteError naming the file and the free space, leaves no complete-looking cache, and a rerun builds it."""

from __future__ import annotations

import errno
import io
import json
import multiprocessing
import re
import sys
import tarfile
import zlib
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_windows import FakeModule, fake_root  # noqa: E402

import neurorvq.data.cache as cache_module  # noqa: E402
import neurorvq.data.cache.writer as cache_writer  # noqa: E402
from neurorvq.cli.app import user_error  # noqa: E402
from neurorvq.data.cache import (CacheError, StreamingWindows, _npy_offset, build_cache,  # noqa: E402
                                 bucket_batches, check_cache, get_or_build, load_index, open_cache)
from neurorvq.errors import NeuroRVQError  # noqa: E402
from neurorvq.file_io import FileWriteError  # noqa: E402

FIX = "delete the cache folder"


def _windows(n: int = 10) -> list[dict]:
    rng = np.random.default_rng(0)
    return [{"signal": rng.standard_normal((4, 50)).astype(np.float32) * 20, "channel_ids": [0, 1, 2, 3],
             "label": i % 2, "start": i * 50} for i in range(n)]


@pytest.fixture()
def cache(tmp_path):
    """A 10-window cache in two shards of 5 windows."""
    return build_cache(tmp_path / "cache", "k", [("rec", _windows())], max_windows_per_shard=5, progress=False)


def _members(shard: Path) -> list[tarfile.TarInfo]:
    with tarfile.open(shard) as tar:
        return tar.getmembers()


def _overwrite(path: Path, offset: int, data: bytes) -> None:
    """Overwrite bytes in place: same size, same mtime-independent layout (what a bad disk or an edit does)."""
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)


def _corrupt_window(shard: Path, which: int = 1, value: float = 3e6) -> str:
    """Overwrite the payload of the ``which``-th window's .npy in place with ``value``; returns its member name."""
    member = [m for m in _members(shard) if m.name.endswith(".npy")][which]
    with open(shard, "rb") as f:
        f.seek(member.offset_data)
        offset = _npy_offset(f.read(12))
    payload = np.full((member.size - offset) // 4, value, dtype=np.float32).tobytes()
    _overwrite(shard, member.offset_data + offset, payload)
    return member.name


def _read_all(location, **kwargs) -> list[dict]:
    return list(StreamingWindows(location, **kwargs))


# ------------------------------------------------------------------------------------------------ checksums
def test_every_shard_records_the_crc32_of_its_file(cache):
    doc = json.loads((Path(cache.location) / "index.json").read_text())
    assert doc["format_version"] == 2 and len(doc["shards"]) == 2
    for s in doc["shards"]:
        data = (Path(cache.location) / s["name"]).read_bytes()
        assert s["checksum"] == f"crc32:{zlib.crc32(data):08x}" and s["bytes"] == len(data)
    assert check_cache(cache.location, "k", checksums=True) is None
    assert len(_read_all(cache.location)) == 10


def test_a_same_size_corrupted_window_is_caught_naming_the_shard(cache):
    folder = Path(cache.location)
    shard = folder / "shard-000000.tar"
    size = shard.stat().st_size
    _corrupt_window(shard, which=1, value=3e6)
    assert shard.stat().st_size == size and open_cache(folder.parent, "k") is not None  # looks complete by size
    with pytest.raises(CacheError) as caught:
        _read_all(cache.location)
    message = str(caught.value)
    assert f"shard {shard}" in message and "does not match index.json" in message
    assert f"{FIX} {folder}" in message and "rebuild" in message
    assert isinstance(caught.value, NeuroRVQError)
    assert "shard-000000.tar has checksum crc32:" in check_cache(folder, "k", checksums=True)
    assert check_cache(folder, "k") is None  # the cheap check (sizes) cannot see it
    # the other shard still reads, and the check can be switched off on purpose
    assert len(list(StreamingWindows(cache, rank=1, world_size=2))) == 5
    got = _read_all(cache.location, verify=False)
    assert len(got) == 10 and float(got[1]["signal"].max()) == 3e6


def test_the_check_also_holds_for_pipes_and_dataloader_workers(cache):
    shard = Path(cache.location) / "shard-000001.tar"
    _corrupt_window(shard, which=0)
    with pytest.raises(CacheError, match=r"shard-000001\.tar: its content does not match"):
        _read_all(f"pipe:cat {cache.location}/{{shard}}")
    loader = DataLoader(bucket_batches(StreamingWindows(cache.location), 4), batch_size=None, num_workers=2)
    with pytest.raises(CacheError, match=r"shard-000001\.tar: its content does not match"):
        list(loader)


# ------------------------------------------------------------------------------------------------ damaged members
def test_a_zeroed_npy_header_names_the_member(cache):
    shard = Path(cache.location) / "shard-000000.tar"
    member = [m for m in _members(shard) if m.name.endswith(".npy")][2]
    _overwrite(shard, member.offset_data, b"\0" * 128)
    with pytest.raises(CacheError) as caught:
        _read_all(cache.location)
    message = str(caught.value)
    assert f"shard {shard}: member {member.name} is not a readable .npy array" in message
    assert f"{FIX} {cache.location}" in message


def test_a_zeroed_json_member_names_the_member(cache):
    shard = Path(cache.location) / "shard-000001.tar"
    member = [m for m in _members(shard) if m.name.endswith(".json")][3]
    _overwrite(shard, member.offset_data, b"\0" * member.size)
    with pytest.raises(CacheError) as caught:
        _read_all(cache.location)
    message = str(caught.value)
    assert f"shard {shard}: member {member.name} is not the window's JSON metadata" in message
    assert f"{FIX} {cache.location}" in message


def test_a_random_tar_header_is_reported_as_damage_not_truncation(cache):
    shard = Path(cache.location) / "shard-000000.tar"
    members = _members(shard)
    size = shard.stat().st_size
    _overwrite(shard, members[3].offset, np.random.default_rng(1).integers(0, 256, 512, dtype=np.uint8).tobytes())
    assert shard.stat().st_size == size
    with pytest.raises(CacheError) as caught:
        _read_all(cache.location)
    message = str(caught.value)
    assert f"shard {shard}: the tar header at byte {members[3].offset} (after member {members[2].name}) is damaged" \
        in message
    assert "truncated" not in message and f"{FIX} {cache.location}" in message


# ------------------------------------------------------------------------------------------------ old caches
def test_a_format_1_cache_without_checksums_is_still_read(cache):
    folder = Path(cache.location)
    doc = json.loads((folder / "index.json").read_text())
    doc["format_version"] = 1
    for s in doc["shards"]:
        del s["checksum"]
    (folder / "index.json").write_text(json.dumps(doc))
    index = load_index(folder)
    assert index.format_version == 1 and not index.has_checksums
    with pytest.warns(UserWarning, match="has no shard checksums"):
        assert len(_read_all(folder)) == 10
    assert check_cache(folder, "k", checksums=True) is None


# ------------------------------------------------------------------------------------------------ DataModule
class _Tiny(L.LightningModule):
    """The smallest real training step: a linear map of each window's mean."""

    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(1, 1)

    def training_step(self, batch, batch_idx):
        return self.layer(batch["signal"].mean(dim=(1, 2)).unsqueeze(-1)).pow(2).mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


def test_an_epoch_through_the_datamodule_does_not_silently_train_on_a_corrupted_shard(tmp_path):
    (tmp_path / "data").mkdir()
    root = fake_root(tmp_path / "data", [f"sub{i}_{k}.rec" for i in range(4) for k in range(2)])
    args = dict(window_seconds=1.0, batch_size=4, verbose=False, val_fraction=0.0, test_fraction=0.0,
                cache_dir=str(tmp_path / "cache"))
    first = FakeModule(str(root), **args)
    first.prepare_data()
    index = first.caches["train"]
    shard = Path(index.location) / index.shards[0].name
    _corrupt_window(shard, which=3)

    again = FakeModule(str(root), **args)  # a later run: the cache looks complete and is reused
    again.prepare_data()
    again.setup("fit")
    assert again.caches["train"].key == index.key
    with pytest.raises(CacheError, match=rf"shard {shard}: its content does not match"):
        list(again.train_dataloader())

    model = _Tiny()
    trainer = L.Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    with pytest.raises(CacheError, match=rf"{FIX} {index.location}"):
        trainer.fit(model, datamodule=FakeModule(str(root), **args))
    assert not trainer.state.finished  # the epoch stopped with the error; nothing was trained to completion


def test_the_checksum_also_covers_shards_read_through_tarfile(cache):
    """A shard in another tar dialect (PAX headers) is read by ``tarfile``; its bytes are hashed all the same."""
    folder = Path(cache.location)
    shard = folder / "shard-000000.tar"
    with tarfile.open(shard) as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]
    with tarfile.open(shard, "w", format=tarfile.PAX_FORMAT) as tar:
        for m, data in members:
            m.mtime = 0.5  # a float mtime: every member gets a PAX header
            tar.addfile(m, io.BytesIO(data))
    doc = json.loads((folder / "index.json").read_text())
    data = shard.read_bytes()
    doc["shards"][0].update(bytes=len(data), checksum=f"crc32:{zlib.crc32(data):08x}")
    (folder / "index.json").write_text(json.dumps(doc))
    assert [int(w["label"]) for w in _read_all(folder)] == [i % 2 for i in range(10)]
    member = [m for m, _ in members if m.name.endswith(".npy")][4]
    with tarfile.open(shard) as tar:
        offset = tar.getmember(member.name).offset_data
    _overwrite(shard, offset + 200, b"\x7f\x7f\x7f\x7f")
    with pytest.raises(CacheError, match=r"shard-000000\.tar: its content does not match index\.json"):
        _read_all(folder)


def test_a_damaged_summary_sidecar_names_the_file(tmp_path):
    (tmp_path / "data").mkdir()
    root = fake_root(tmp_path / "data", ["sub0_0.rec", "sub1_0.rec"])
    args = dict(window_seconds=1.0, verbose=False, val_fraction=0.0, test_fraction=0.0,
                cache_dir=str(tmp_path / "cache"))
    first = FakeModule(str(root), **args)
    first.prepare_data()
    sidecar = Path(first.caches["train"].location) / "summary.json"
    sidecar.write_bytes(b"\0" * 64)
    with pytest.raises(CacheError, match=rf"window cache summary {sidecar} is damaged .*{FIX} {sidecar.parent}"):
        FakeModule(str(root), **args).prepare_data()


# ------------------------------------------------------------------------------------------------ full disk
class _FullDisk:
    """``open`` for the cache module on a disk with ``budget`` bytes left: files opened for writing take bytes
    from it until a write no longer fits, which fails with ENOSPC as a real full disk does (reading is left
    alone). Installed on ``neurorvq.data.cache.writer`` (the module that writes shards, index.json and the lock
    file), so shards and index.json are hit, not the test's own files."""

    def __init__(self, budget: int):
        self.budget = budget

    def __call__(self, path, mode="r", *args, **kwargs):
        f = open(path, mode, *args, **kwargs)
        return _Filling(f, self) if "w" in mode or "a" in mode else f


class _Filling:
    def __init__(self, file, disk: _FullDisk):
        self.file, self.disk = file, disk

    def write(self, data) -> int:
        n = len(data) if isinstance(data, str) else memoryview(data).nbytes
        if n > self.disk.budget:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.disk.budget -= n
        return self.file.write(data)

    def __getattr__(self, name):
        return getattr(self.file, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.file.close()


def _sizes(tmp_path) -> tuple[list[int], int]:
    """Shard sizes and index.json size of the fixture-sized cache, built fault-free elsewhere."""
    index = build_cache(tmp_path / "sizes", "k", [("rec", _windows())], max_windows_per_shard=5, progress=False)
    return [s.bytes for s in index.shards], (Path(index.location) / "index.json").stat().st_size


def _assert_one_full_disk_error(error: BaseException, path: Path) -> None:
    assert type(error) is FileWriteError and isinstance(error, NeuroRVQError) and isinstance(error, OSError)
    assert error.errno == errno.ENOSPC
    message = str(error)
    assert f"could not write the window cache file '{path}': No space left on device" in message
    assert re.search(r"\(\d+\.\d MB free on that filesystem; \d+\.\d MB of this build written\)", message)
    assert "Free space there, or point cache_dir" in message and "run again" in message
    assert f"its folder {path.parent} is removed" in message
    assert isinstance(error.__cause__, OSError) and error.__cause__.errno == errno.ENOSPC  # the chain is kept
    assert user_error(error) is error and "\n" not in message  # the CLI prints it as one line


def _assert_no_cache_left(root: Path, key: str = "k") -> None:
    assert not (root / key).exists() and not (root / f"{key}.partial").exists()
    assert list(root.rglob("index.json")) == [] and open_cache(root, key) is None


@pytest.mark.parametrize("where", ["first shard", "second shard", "shard fsync", "index.json"])
def test_a_disk_that_fills_during_a_build_gives_one_error_naming_the_file_and_the_free_space(tmp_path, monkeypatch,
                                                                                             where):
    shard_bytes, _ = _sizes(tmp_path)
    root = tmp_path / "cache"
    partial = root / "k.partial"
    if where == "shard fsync":  # the data reached the page cache; the disk refuses it at fsync
        def no_room(fd):
            raise OSError(errno.ENOSPC, "No space left on device")
        monkeypatch.setattr(cache_writer.os, "fsync", no_room)
        path = partial / "part-000000-000000.tar"
    else:
        budget = {"first shard": 1000, "second shard": shard_bytes[0] + 1000,
                  "index.json": sum(shard_bytes) + 100}[where]
        monkeypatch.setattr(cache_writer, "open", _FullDisk(budget), raising=False)
        path = partial / {"first shard": "part-000000-000000.tar", "second shard": "part-000000-000001.tar",
                          "index.json": "index.json"}[where]
    with pytest.raises(FileWriteError) as caught:
        build_cache(root, "k", [("rec", _windows())], max_windows_per_shard=5, progress=False)
    _assert_one_full_disk_error(caught.value, path)
    _assert_no_cache_left(root)

    monkeypatch.undo()  # space freed: the same build now succeeds
    index = build_cache(root, "k", [("rec", _windows())], max_windows_per_shard=5, progress=False)
    assert check_cache(index.location, "k", checksums=True) is None and not partial.exists()
    assert [int(w["label"]) for w in _read_all(index.location)] == [i % 2 for i in range(10)]


def test_a_full_disk_while_rebuilding_leaves_the_existing_cache_as_it_was(cache, monkeypatch):
    folder = Path(cache.location)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    monkeypatch.setattr(cache_writer, "open", _FullDisk(5000), raising=False)
    with pytest.raises(FileWriteError, match="No space left on device"):
        build_cache(folder.parent, "k", [("rec", _windows())], max_windows_per_shard=5, progress=False)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert check_cache(folder, "k", checksums=True) is None and not (folder.parent / "k.partial").exists()


def _tiny_process(source) -> list[dict]:
    """Windows of a source name (top-level: worker processes import it)."""
    return _windows(5)


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="needs fork to carry the fault")
def test_a_full_disk_in_a_build_worker_reaches_the_caller_as_the_same_one_error(tmp_path, monkeypatch):
    sources = []
    for name in ("a.rec", "b.rec"):
        (tmp_path / name).write_text(name)
        sources.append(tmp_path / name)
    root = tmp_path / "cache"
    monkeypatch.setattr(cache_writer, "open", _FullDisk(1000), raising=False)  # forked workers inherit it
    options = dict(num_workers=2, sources_per_task=1, progress=False, mp_context=multiprocessing.get_context("fork"))
    with pytest.raises(FileWriteError) as caught:
        get_or_build(root, sources, {"x": 1}, _tiny_process, **options)
    key = cache_module.cache_key(sources, {"x": 1})
    message = str(caught.value)
    assert caught.value.errno == errno.ENOSPC
    assert re.search(rf"could not write the window cache file '{re.escape(str(root / key))}\.partial/part-00000[01]-"
                     r"000000\.tar': No space left on device \(\d+\.\d MB free on that filesystem", message)
    _assert_no_cache_left(root, key)
    monkeypatch.undo()
    assert get_or_build(root, sources, {"x": 1}, _tiny_process, **options).total_windows == 10


def test_a_full_disk_while_the_datamodule_builds_its_cache(tmp_path, monkeypatch):
    (tmp_path / "data").mkdir()
    root = fake_root(tmp_path / "data", [f"sub{i}_0.rec" for i in range(3)])
    args = dict(window_seconds=1.0, batch_size=4, verbose=False, val_fraction=0.0, test_fraction=0.0,
                cache_dir=str(tmp_path / "cache"))
    monkeypatch.setattr(cache_writer, "open", _FullDisk(4000), raising=False)
    with pytest.raises(FileWriteError) as caught:
        FakeModule(str(root), **args).prepare_data()
    assert f"could not write the window cache file '{tmp_path / 'cache'}" in str(caught.value)
    assert "MB free on that filesystem" in str(caught.value)
    assert list((tmp_path / "cache").rglob("index.json")) == []
    monkeypatch.undo()
    again = FakeModule(str(root), **args)
    again.prepare_data()
    assert again.caches["train"].total_windows == 9
