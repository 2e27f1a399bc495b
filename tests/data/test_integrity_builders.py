"""One cache builder (issue 19): two DataModules building the same window cache at once (two processes, the way
two `fit` runs on one machine do) give one build and one reuse; the folder the first one built is not replaced
under it. Also: taking the build lock and building without it inside does not deadlock."""

from __future__ import annotations

import json
import multiprocessing
import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_windows import FakeModule, fake_root  # noqa: E402

from neurorvq.data.cache import StreamingWindows, build_cache, build_lock, open_cache  # noqa: E402


class SlowLoggedModule(FakeModule):
    """Logs every recording it loads (pid and file) next to the recordings and takes a while doing it, so two
    builders started together overlap."""

    def load_windows(self, info, pipeline):
        with open(self.root / "loads.log", "a") as f:
            f.write(f"{os.getpid()} {info.path.name}\n")
        time.sleep(0.05)
        return super().load_windows(info, pipeline)


def _prepare(root: str, cache_dir: str, out: str) -> None:
    """Process body: build or reuse the caches of the three splits, then record, per split, the inode of its
    ``index.json`` and its window count."""
    dm = SlowLoggedModule(root, window_seconds=1.0, batch_size=4, verbose=False, cache_dir=cache_dir)
    dm.prepare_data()
    seen = {split: [os.stat(Path(index.location) / "index.json").st_ino, index.total_windows]
            for split, index in dm.caches.items()}
    Path(out).write_text(json.dumps(seen))


def test_two_datamodules_building_at_once_build_once_and_reuse(tmp_path):
    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("needs the fork start method")
    (tmp_path / "data").mkdir()
    names = [f"sub{i}_{k}.rec" for i in range(6) for k in range(2)]
    root = fake_root(tmp_path / "data", names)
    ctx = multiprocessing.get_context("fork")
    outs = [tmp_path / f"out{i}.txt" for i in range(2)]
    procs = [ctx.Process(target=_prepare, args=(str(root), str(tmp_path / "cache"), str(out))) for out in outs]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0]
    # every split's cache was built once: each recording loaded exactly once, by one of the two processes ...
    loads = [line.split() for line in (root / "loads.log").read_text().splitlines()]
    assert sorted(name for _, name in loads) == sorted(names)
    assert {pid for pid, _ in loads} <= {str(p.pid) for p in procs}
    # ... and the other process reused it: both read the same folders, none replaced under the other
    first, second = (json.loads(out.read_text()) for out in outs)
    assert first == second and sum(windows for _, windows in first.values()) > 0
    assert not [p for p in (tmp_path / "cache").iterdir() if p.name.endswith(".partial")]


def test_building_under_the_lock_does_not_take_it_twice(tmp_path):
    wins = [{"signal": np.zeros((2, 8), np.float32) + i, "channel_ids": [0, 1]} for i in range(3)]
    with build_lock(tmp_path, "k"):  # what a caller that looked again under the lock does
        assert open_cache(tmp_path, "k") is None
        index = build_cache(tmp_path, "k", [("rec", wins)], progress=False, lock=False)
    assert [float(w["signal"][0, 0]) for w in StreamingWindows(index)] == [0.0, 1.0, 2.0]
    with build_lock(tmp_path, "k"):  # released: it can be taken again
        assert open_cache(tmp_path, "k") is not None
