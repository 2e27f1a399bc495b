"""The sharded window cache: keys, rebuild/reuse/interruption, exact round trip, disjoint reading across ranks
and workers, bounded memory, object-storage URLs, channel-set bucketing."""

from __future__ import annotations

import io
import json
import os
import tracemalloc
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from neurorvq.data.cache import (
    StreamingWindows,
    bucket_batches,
    build_cache,
    cache_key,
    check_cache,
    get_or_build,
    load_index,
    open_cache,
)
from neurorvq.errors import ConfigError

CALLS: list[str] = []  # sources processed in this process (num_workers=0)


# ------------------------------------------------------------------------------------------------ helpers
def _write_source(path: Path, n_windows: int, channels: int = 4, samples: int = 50, seed: int = 0,
                  channel_base: int = 0) -> Path:
    """A tiny 'recording': a JSON header telling process() what to generate, padded to ~2 KB."""
    header = json.dumps({"n": n_windows, "c": channels, "t": samples, "seed": seed, "base": channel_base})
    path.write_text(header + "\n" + "#" * 2000)
    return path


def _windows(source) -> list[dict]:
    """Deterministic windows of a source file (top-level, so worker processes can import it)."""
    spec = json.loads(Path(source).read_text().splitlines()[0])
    rng = np.random.default_rng(spec["seed"])
    out = []
    for i in range(spec["n"]):
        out.append({"signal": rng.standard_normal((spec["c"], spec["t"]), dtype=np.float32) * 30,
                    "channel_ids": np.arange(spec["c"]) + spec["base"], "label": i % 3, "subject": spec["seed"],
                    "recording": Path(source).name, "start": i * spec["t"]})
    return out


def process(source) -> list[dict]:
    CALLS.append(str(source))
    return _windows(source)


def failing_process(source):
    CALLS.append(str(source))
    if Path(source).name == "b.rec":
        for i, win in enumerate(_windows(source)):
            if i == 2:
                raise RuntimeError("disk on fire")
            yield win
    else:
        yield from _windows(source)


@pytest.fixture()
def sources(tmp_path):
    d = tmp_path / "raw"
    d.mkdir()
    return [_write_source(d / "a.rec", 7, seed=1), _write_source(d / "b.rec", 5, seed=2),
            _write_source(d / "c.rec", 9, seed=3, channels=3, channel_base=10)]


CONFIG = {"modality": "eeg", "window_seconds": 0.25, "steps": [{"step": "BandPass", "low": 0.1, "high": 75.0}]}


def _all(ds) -> list[dict]:
    return list(iter(ds))


# ------------------------------------------------------------------------------------------------ keys
def test_key_follows_config_and_file_identity(sources):
    key = cache_key(sources, CONFIG)
    assert key == cache_key(sources, json.loads(json.dumps(CONFIG)))            # same content, same key
    assert key != cache_key(sources, {**CONFIG, "window_seconds": 0.5})         # config change
    assert key != cache_key(sources[:2], CONFIG)                                # other sources
    st = os.stat(sources[0])
    os.utime(sources[0], ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))       # mtime only
    k_mtime = cache_key(sources, CONFIG)
    assert k_mtime != key
    text = sources[0].read_text()
    sources[0].write_text(text.replace('"seed": 1', '"seed": 7'))               # same size, header edited
    os.utime(sources[0], ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))       # ... and the same mtime
    assert sources[0].stat().st_size == st.st_size and cache_key(sources, CONFIG) != k_mtime
    sources[0].write_text(text + "x")                                           # size
    assert cache_key(sources, CONFIG) not in (key, k_mtime)


def test_key_reads_only_the_header(tmp_path):
    big = tmp_path / "big.bin"
    big.write_bytes(b"\0" * (64 * 1024) + b"A" * 1000)
    k = cache_key([big], {})
    with open(big, "r+b") as f:                       # same size and mtime, change past the first 64 KiB
        st = os.stat(big)
        f.seek(64 * 1024 + 10)
        f.write(b"B")
    os.utime(big, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert cache_key([big], {}) == k


# ------------------------------------------------------------------------------------------------ build / reuse
def test_reuse_rebuild_and_index(sources, tmp_path):
    root = tmp_path / "cache"
    CALLS.clear()
    index = get_or_build(root, sources, CONFIG, process, max_windows_per_shard=4, progress=False)
    assert len(CALLS) == 3 and index.total_windows == 21
    assert [s.windows for s in index.shards] == [4, 4, 4, 4, 4, 1]
    assert sorted(os.listdir(root / index.key)) == ["index.json"] + [f"shard-{i:06d}.tar" for i in range(6)]
    assert not (root / f"{index.key}.partial").exists()
    doc = json.loads((root / index.key / "index.json").read_text())
    assert doc["key"] == index.key and doc["config"] == CONFIG and doc["totals"]["windows"] == 21
    assert [s["windows"] for s in doc["sources"]] == [7, 5, 9] and doc["sources"][0]["size"] > 2000
    assert [c["channel_ids"] for c in doc["channel_sets"]] == [[0, 1, 2, 3], [10, 11, 12]]
    assert [c["windows"] for c in doc["channel_sets"]] == [12, 9]
    assert [s["channel_sets"] for s in doc["shards"]] == [[0], [0], [0], [1], [1], [1]]

    CALLS.clear()
    again = get_or_build(root, sources, CONFIG, process, progress=False)
    assert CALLS == [] and again.key == index.key                    # reused: process not called

    changed = get_or_build(root, sources, {**CONFIG, "window_seconds": 0.5}, process, progress=False)
    assert len(CALLS) == 3 and changed.key != index.key              # config change: new key, rebuilt
    CALLS.clear()
    sources[1].write_text(sources[1].read_text() + "more")          # a file changes
    assert get_or_build(root, sources, CONFIG, process, progress=False).key not in (index.key, changed.key)
    assert len(CALLS) == 3


def test_interrupted_build_leaves_no_complete_cache(sources, tmp_path):
    root = tmp_path / "cache"
    key = cache_key(sources, CONFIG)
    CALLS.clear()
    with pytest.raises(RuntimeError, match="disk on fire"):
        get_or_build(root, sources, CONFIG, failing_process, max_windows_per_shard=2, progress=False)
    assert open_cache(root, key) is None
    assert not (root / key).exists() and not (root / f"{key}.partial").exists()
    with pytest.raises(RuntimeError, match="disk on fire"):                        # same from worker processes
        get_or_build(root, sources, CONFIG, failing_process, num_workers=2, sources_per_task=1, progress=False)
    assert open_cache(root, key) is None and not (root / f"{key}.partial").exists()
    # a killed build leaves a .partial folder (even one with an index.json): never taken as complete
    (root / f"{key}.partial").mkdir()
    (root / f"{key}.partial" / "index.json").write_text("{}")
    assert open_cache(root, key) is None
    CALLS.clear()
    index = get_or_build(root, sources, CONFIG, process, progress=False)
    assert len(CALLS) == 3 and index.total_windows == 21 and not (root / f"{key}.partial").exists()


def slow_logged_process(source):
    with open(Path(source).parent / "calls.log", "a") as f:
        f.write(f"{os.getpid()} {Path(source).name}\n")
    import time

    time.sleep(0.1)
    return _windows(source)


def _concurrent_build(root, sources):
    get_or_build(root, sources, CONFIG, slow_logged_process, progress=False)


def test_concurrent_builders_build_once(sources, tmp_path):
    import multiprocessing

    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("needs the fork start method")
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_concurrent_build, args=(tmp_path / "cache", sources)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    assert [p.exitcode for p in procs] == [0, 0]
    calls = (sources[0].parent / "calls.log").read_text().splitlines()
    assert len(calls) == 3 and len({c.split()[0] for c in calls}) == 1              # one process built it
    assert open_cache(tmp_path / "cache", cache_key(sources, CONFIG)).total_windows == 21


def test_a_shard_shorter_than_its_index_says_is_an_error(sources, tmp_path):
    from neurorvq.data.cache import CacheError

    index = get_or_build(tmp_path / "cache", sources, CONFIG, process, max_windows_per_shard=5, progress=False)
    shard = Path(index.location) / "shard-000000.tar"
    import tarfile

    with tarfile.open(shard) as tar:
        third = tar.getmembers()[4].offset                      # 2 members (.json, .signal.npy) per window
    shard.write_bytes(shard.read_bytes()[:third])               # cut after 2 whole windows
    with pytest.raises(CacheError, match="2 windows, index.json says 5"):
        _all(StreamingWindows(index.location))


def test_incomplete_folders_are_rejected_and_rebuilt(sources, tmp_path):
    root = tmp_path / "cache"
    index = get_or_build(root, sources, CONFIG, process, max_windows_per_shard=5, progress=False)
    folder = root / index.key
    assert check_cache(folder, index.key) is None and open_cache(root, index.key) is not None
    assert "not" in check_cache(folder, "somethingelse")                            # another key
    shard = folder / "shard-000001.tar"
    data = shard.read_bytes()
    shard.write_bytes(data[:-512])                                                 # truncated
    assert "bytes" in check_cache(folder, index.key) and open_cache(root, index.key) is None
    shard.unlink()                                                                 # missing
    assert "missing" in check_cache(folder, index.key) and open_cache(root, index.key) is None
    CALLS.clear()
    rebuilt = get_or_build(root, sources, CONFIG, process, max_windows_per_shard=5, progress=False)
    assert len(CALLS) == 3 and check_cache(folder, rebuilt.key) is None
    (folder / "index.json").unlink()                                               # no index
    assert "index.json is missing" in check_cache(folder, index.key) and open_cache(root, index.key) is None


def test_worker_processes_give_the_same_windows_in_the_same_order(sources, tmp_path):
    serial = build_cache(tmp_path / "s", "k", process, sources=sources, max_windows_per_shard=3, progress=False)
    parallel = build_cache(tmp_path / "p", "k", process, sources=sources, num_workers=2, sources_per_task=1,
                           max_windows_per_shard=3, progress=False)
    assert [s.windows for s in serial.shards] == [3, 3, 3, 3, 3, 3, 3]
    assert [s.windows for s in parallel.shards] == [3, 3, 1, 3, 2, 3, 3, 3]  # each task (source) its own shards
    a = _all(StreamingWindows(serial, with_meta=True))
    b = _all(StreamingWindows(parallel, with_meta=True))
    assert [x["key"] for x in a] == [x["key"] for x in b]
    assert all(torch.equal(x["signal"], y["signal"]) for x, y in zip(a, b))
    with pytest.raises(ConfigError, match="top-level"):
        build_cache(tmp_path / "l", "k", lambda s: [], sources=sources, num_workers=2, progress=False)


# ------------------------------------------------------------------------------------------------ reading
def test_round_trip_is_bit_exact(sources, tmp_path):
    index = get_or_build(tmp_path / "cache", sources, CONFIG, process, max_windows_per_shard=4, progress=False)
    got = _all(StreamingWindows(index.location, with_meta=True))
    want = [w for s in sources for w in _windows(s)]
    assert len(got) == len(want) == 21
    for g, w in zip(got, want):
        assert g["signal"].dtype == torch.float32 and g["channel_ids"].dtype == torch.int64
        assert np.array_equal(g["signal"].numpy().view(np.uint32), w["signal"].view(np.uint32))  # bit-exact
        assert g["channel_ids"].tolist() == list(w["channel_ids"])
        assert g["label"].item() == w["label"] and g["subject"].item() == w["subject"] and g["label"].shape == ()
        assert g["recording"] == w["recording"] and g["start"] == w["start"]


def test_pairs_input_and_optional_fields(tmp_path):
    wins = [{"signal": np.full((2, 3), i, dtype=np.float64), "channel_ids": [5, 6]} for i in range(3)]
    index = build_cache(tmp_path, "pairs", [("rec-1", wins)], progress=False)
    got = _all(StreamingWindows(tmp_path / "pairs", with_meta=True))
    assert [g["signal"][0, 0].item() for g in got] == [0.0, 1.0, 2.0] and got[0]["signal"].dtype == torch.float32
    assert "label" not in got[0] and got[0]["recording"] == "rec-1" and got[0]["start"] is None
    assert index.sources == [{"path": "rec-1"}]


def test_shards_are_standard_webdataset(sources, tmp_path):
    wds = pytest.importorskip("webdataset")
    index = get_or_build(tmp_path / "cache", sources, CONFIG, process, max_windows_per_shard=4, progress=False)
    plain = list(wds.WebDataset(index.shard_urls, shardshuffle=False).decode())    # webdataset's own reader
    ours = _all(StreamingWindows(index, with_meta=True))
    assert [s["__key__"] for s in plain] == [s["key"] for s in ours]
    for p, o in zip(plain, ours):
        assert np.array_equal(p["signal.npy"], o["signal"].numpy())
        assert p["json"]["channel_ids"] == o["channel_ids"].tolist()
        assert p["json"]["label"] == o["label"].item() and p["json"]["recording"] == o["recording"]


def _keys(ds) -> list[str]:
    return [x["key"] for x in ds]


def _many_shards(tmp_path):
    d = tmp_path / "raw"
    d.mkdir()
    srcs = [_write_source(d / f"r{i}.rec", n, seed=i) for i, n in enumerate([13, 7, 11, 5, 9])]
    index = get_or_build(tmp_path / "cache", srcs, CONFIG, process, max_windows_per_shard=3, progress=False)
    assert len(index.shards) == 15
    return index


@pytest.mark.parametrize("shuffle", [False, True])
def test_ranks_and_workers_read_disjoint_shards_covering_everything(tmp_path, shuffle):
    index = _many_shards(tmp_path)
    everything = _keys(StreamingWindows(index, with_meta=True))
    assert len(everything) == len(set(everything)) == 45
    for epoch in (0, 1):
        seen, per_reader = [], {}
        for rank in range(3):
            for worker in range(2):
                ds = StreamingWindows(index, rank=rank, world_size=3, worker_id=worker, num_workers=2,
                                      shuffle_shards=shuffle, shuffle_buffer=4 if shuffle else 0, seed=5,
                                      with_meta=True)
                ds.set_epoch(epoch)
                keys = _keys(ds)
                assert len(keys) == ds.num_windows()
                per_reader[rank, worker] = ds.assignment()
                seen += keys
        assert sorted(seen) == sorted(everything)                       # every window exactly once
        shards = [i for a in per_reader.values() for i in a]
        assert sorted(shards) == list(range(15))                        # disjoint shard sets
        if epoch == 0:
            first = per_reader
    assert (first != per_reader) == shuffle                             # new order per epoch only when shuffling


def test_equal_windows_per_rank_and_env_rank(tmp_path, monkeypatch):
    index = _many_shards(tmp_path)
    counts = [len(_all(StreamingWindows(index, rank=r, world_size=3, equal_windows_per_rank=True)))
              for r in range(3)]
    assert len(set(counts)) == 1 and counts[0] > 0
    per_worker = [len(_all(StreamingWindows(index, rank=1, world_size=3, worker_id=k, num_workers=2,
                                            equal_windows_per_rank=True))) for k in range(2)]
    assert sum(per_worker) == counts[0]
    monkeypatch.setenv("RANK", "2")
    monkeypatch.setenv("WORLD_SIZE", "3")
    assert StreamingWindows(index).assignment() == list(range(15))[2::3]


def test_dataloader_workers_with_bucketing(tmp_path):
    # two channel sets: 4 channels (base 0) and 3 channels (base 10) interleaved by source
    d = tmp_path / "raw2"
    d.mkdir()
    srcs = [_write_source(d / f"m{i}.rec", 6, seed=i, channels=4 if i % 2 else 3, channel_base=0 if i % 2 else 10)
            for i in range(6)]
    mixed = get_or_build(tmp_path / "cache", srcs, CONFIG, process, max_windows_per_shard=4, progress=False)
    ds = StreamingWindows(mixed, shuffle_shards=True, shuffle_buffer=8, with_meta=True)
    loader = DataLoader(bucket_batches(ds, 5), batch_size=None, num_workers=2)
    batches = list(loader)
    keys = [k for b in batches for k in b["key"]]
    assert sorted(keys) == sorted(_keys(StreamingWindows(mixed, with_meta=True)))
    for b in batches:
        ids = b["channel_ids"]
        assert (ids == ids[0]).all() and b["signal"].shape[:2] == ids.shape and b["label"].shape == (len(ids),)
        assert len(ids) <= 5
    assert {b["signal"].shape[1] for b in batches} == {3, 4}


def test_bucketing_never_mixes_channel_sets():
    def win(cs, i):
        return {"signal": torch.full((len(cs), 2), float(i)), "channel_ids": torch.tensor(cs), "label": torch.tensor(i)}

    sets = [(0, 1), (0, 2), (5, 6, 7), (0, 1)]
    stream = [win(sets[i % 3 if i % 7 else 3], i) for i in range(40)]
    for open_buckets in (1, 2, 4):
        for drop_last in (False, True):
            out = list(bucket_batches(iter(stream), 4, max_open_buckets=open_buckets, drop_last=drop_last))
            for b in out:
                assert (b["channel_ids"] == b["channel_ids"][0]).all() and len(b["label"]) <= 4
                assert not drop_last or len(b["label"]) == 4
            got = Counter(int(i) for b in out for i in b["label"])
            assert drop_last or got == Counter(range(40))
    full = list(bucket_batches(iter(stream), 4, max_open_buckets=4))
    assert all(len(b["label"]) == 4 for b in full[:-3])


# ------------------------------------------------------------------------------------------------ memory
def big_process(source) -> list:
    """~0.2 MB windows (64 x 800 float32) for the memory test; a generator keeps the writer bounded too."""
    n = int(Path(source).read_text().split()[0])
    for i in range(n):
        sig = np.empty((64, 800), dtype=np.float32)
        sig[:] = np.float32(i)
        yield {"signal": sig, "channel_ids": np.arange(64), "label": i}


def test_streaming_memory_is_bounded(tmp_path):
    srcs = []
    for i in range(4):
        p = tmp_path / f"big{i}.rec"
        p.write_text("125 windows")
        srcs.append(p)
    index = get_or_build(tmp_path / "cache", srcs, {"big": True}, big_process, max_bytes_per_shard=5_000_000,
                         progress=False, fsync=False)
    assert index.total_bytes > 100_000_000 and len(index.shards) >= 20             # ~102 MB in ~5 MB shards
    ds = StreamingWindows(index, shuffle_shards=True, shuffle_buffer=32)            # buffer: 32 x 0.2 MB
    tracemalloc.start()
    try:
        n, total = 0, 0.0
        for sample in ds:
            n += 1
            total += float(sample["signal"][0, 0])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert n == 500 and total == 4 * sum(range(125))
    assert peak < 20_000_000, f"peak Python allocations {peak / 1e6:.1f} MB while streaming a 102 MB cache"


# ------------------------------------------------------------------------------------------------ URLs
def test_reads_through_urls_file_memory_and_pipe(sources, tmp_path):
    fsspec = pytest.importorskip("fsspec")
    index = get_or_build(tmp_path / "cache", sources, CONFIG, process, max_windows_per_shard=4, progress=False)
    local = _keys(StreamingWindows(index.location, with_meta=True))
    folder = Path(index.location)

    assert _keys(StreamingWindows(folder.as_uri(), with_meta=True)) == local            # file:///...

    fs = fsspec.filesystem("memory")                                                   # an object store stand-in
    prefix = f"memory://bucket/cache/{index.key}"
    try:
        for f in folder.iterdir():
            fs.pipe(f"{prefix}/{f.name}", f.read_bytes())
        remote = load_index(prefix)
        assert remote.key == index.key and remote.shard_urls[0] == f"{prefix}/shard-000000.tar"
        ds = StreamingWindows(prefix, rank=0, world_size=2, with_meta=True)
        other = StreamingWindows(prefix, rank=1, world_size=2, with_meta=True)
        assert sorted(_keys(ds) + _keys(other)) == sorted(local)
        assert _keys(StreamingWindows(prefix, with_meta=True)) == local
    finally:
        fs.rm("memory://bucket", recursive=True)

    piped = StreamingWindows(f"pipe:cat {folder}/{{shard}}", with_meta=True)              # pipe: command
    assert _keys(piped) == local


# ------------------------------------------------------------------------------------------------ tar reading
def _member(tar, name: str, data: bytes, pax: bool = False) -> None:
    import tarfile

    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0.5 if pax else 0  # a float mtime makes tarfile write a PAX header
    tar.addfile(info, io.BytesIO(data))


def test_tar_reader_fast_path_and_fallback_agree_with_tarfile(tmp_path):
    import tarfile

    from neurorvq.data.cache import CacheError, _load_npy, _tar_members

    arrays = [np.arange(i * 10, dtype=np.float32).reshape(2, -1) + 0.5 for i in range(1, 6)]

    def npy(a):
        buf = io.BytesIO()
        np.save(buf, a)
        return buf.getvalue()

    path = tmp_path / "mixed.tar"
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for i, a in enumerate(arrays):
            # plain ustar members, then a PAX one (fallback from there on), with a long name among them
            key = f"{i:03d}" if i != 4 else "d" * 120 + "/004"
            _member(tar, f"{key}.signal.npy", npy(a), pax=i >= 3)
            _member(tar, f"{key}.json", json.dumps({"i": i}).encode(), pax=i >= 3)
    with open(path, "rb") as f:
        got = list(_tar_members(f, str(path)))
    with tarfile.open(path) as tar:
        want = [(m.name, tar.extractfile(m).read()) for m in tar if m.isreg()]
    assert [g["fname"] for g in got] == [w[0] for w in want]
    for g, (name, data) in zip(got, want):
        if name.endswith(".npy"):
            assert np.array_equal(_load_npy(g["data"]), _load_npy(data))
        else:
            assert g["data"] == data
    assert isinstance(got[0]["data"], np.ndarray) and isinstance(got[-2]["data"], bytes)  # fast path, fallback

    with open(path, "rb") as f:                                     # non-seekable: tarfile stream mode
        piped = list(_tar_members(io.BufferedReader(_Unseekable(f.read())), "pipe"))
    assert [g["fname"] for g in piped] == [w[0] for w in want]

    cut = tmp_path / "cut.tar"
    cut.write_bytes(path.read_bytes()[:600])                       # truncated inside the first payload
    with open(cut, "rb") as f, pytest.raises(CacheError, match="truncated"):
        list(_tar_members(f, str(cut)))


class _Unseekable(io.RawIOBase):
    """A read-only stream that cannot seek, like a ``pipe:`` command's output."""

    def __init__(self, data: bytes):
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        return self._data.readinto(buffer)
