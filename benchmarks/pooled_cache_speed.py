"""The pooled windows of ``neurorvq cv`` (``RecordingDataModule.load_all``) loaded three ways, on a generated
High-Gamma-like layout: in memory (no ``cache_dir``: read + preprocess every EDF), the first load with ``cache_dir``
(the same, plus writing the pooled window cache) and a later load with it (reading the cache back; no EDF opened).
The later load is what every model of a ``neurorvq benchmark`` row after the first, and every resumed ``neurorvq
cv``, now pays instead of the in-memory load.

Layout: ``--subjects`` subjects in the GIN layout (``data/train/<k>.edf``, ``data/test/<k>.edf``), written with
``mne.export`` (edfio) by the High-Gamma test writer (tests/data/test_high_gamma.py): the data set's 133 channels
(128 EEG + 2 EOG + 3 EMG) at 500 Hz, ``--train-minutes`` / ``--test-minutes`` per file, one cue every 8 s (4-s trial,
~4 s pause, as the data set's 3-4 s inter-trial interval). The DataModule runs the benchmark's preprocessing
(resample to 200 Hz, band-pass 0.5-45 Hz, drop 55 channels, CAR over 78, pick the 66 in the vocabulary): windows of
66 x 800 float32 (211 kB). The real data set has 14 subjects x ~1,040 trials in ~1.9 h of recording each (~15 GB
of EDF, ~3 GB of windows); these files are smaller, the per-hour and per-window rates compare.

    python benchmarks/pooled_cache_speed.py                          # 3 subjects x (8 + 2) min
    python benchmarks/pooled_cache_speed.py --subjects 2 --train-minutes 20 --repeats 3

Prints one JSON line per load and a last line with the ratios (in-memory / cached read, build / in-memory). The
data and the cache live under ``--root`` (default ``$TMPDIR/neurorvq-pooled-bench``); the EDF files are reused
between runs, the cache is rebuilt each run.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
CUE_EVERY_S = 8.0
CLASSES = ("rest", "left_hand", "right_hand", "feet")


def _writers():
    """tests/data/test_high_gamma.py (its EDF writer, the data set's 133 channel labels) under a private name."""
    spec = importlib.util.spec_from_file_location("high_gamma_writers", REPO / "tests" / "data" / "test_high_gamma.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_layout(root: Path, subjects: int, train_minutes: float, test_minutes: float) -> Path:
    """The GIN layout under ``root`` (kept when already written with these sizes); returns ``root``."""
    stamp = root / "layout.json"
    wanted = {"subjects": subjects, "train_minutes": train_minutes, "test_minutes": test_minutes}
    if stamp.is_file() and json.loads(stamp.read_text()) == wanted:
        return root
    shutil.rmtree(root / "data", ignore_errors=True)
    writers = _writers()
    for k in range(1, subjects + 1):
        for run, minutes in (("train", train_minutes), ("test", test_minutes)):
            seconds = 60.0 * minutes
            cues = [(float(t), CLASSES[n % 4]) for n, t in enumerate(np.arange(1.0, seconds - 4.0, CUE_EVERY_S))]
            writers.write_edf(root / "data" / run / f"{k}.edf", cues, seconds=seconds, seed=10 * k + len(run))
    stamp.write_text(json.dumps(wanted))
    return root


def timed_load(root: Path, cache_dir: Path | None, workers: int) -> tuple[float, list]:
    from neurorvq.datamodules.high_gamma import HighGammaDataModule

    dm = HighGammaDataModule(str(root), verbose=False, num_workers=workers,
                             cache_dir=None if cache_dir is None else str(cache_dir))
    start = time.perf_counter()
    sets = dm.load_all()
    return time.perf_counter() - start, sets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default=os.path.join(tempfile.gettempdir(), "neurorvq-pooled-bench"))
    parser.add_argument("--subjects", type=int, default=3)
    parser.add_argument("--train-minutes", type=float, default=8.0)
    parser.add_argument("--test-minutes", type=float, default=2.0)
    parser.add_argument("--repeats", type=int, default=3, help="cached reads (median reported)")
    parser.add_argument("--workers", type=int, default=0, help="num_workers of the DataModule (loading processes)")
    args = parser.parse_args()
    root = Path(args.root)
    write_layout(root / "high-gamma", args.subjects, args.train_minutes, args.test_minutes)
    cache = root / "cache"
    shutil.rmtree(cache, ignore_errors=True)
    edf_mb = sum(p.stat().st_size for p in (root / "high-gamma").rglob("*.edf")) / 1e6
    hours = args.subjects * (args.train_minutes + args.test_minutes) / 60

    from neurorvq.datamodules.high_gamma import HighGammaDataModule

    # warm-up outside the timings: imports, MNE's first filter design
    HighGammaDataModule(str(root / "high-gamma"), subjects=[1], runs=["test"], verbose=False).load_all()
    memory_s, memory = timed_load(root / "high-gamma", None, args.workers)
    windows = sum(len(ws) for ws in memory)
    window_mb = sum(ws.signals.nbytes for ws in memory) / 1e6
    base = {"subjects": args.subjects, "recording_hours": round(hours, 3), "edf_mb": round(edf_mb, 1),
            "windows": windows, "window_mb": round(window_mb, 1), "workers": args.workers}
    print(json.dumps({"case": "in_memory", **base, "seconds": round(memory_s, 3)}), flush=True)
    build_s, built = timed_load(root / "high-gamma", cache, args.workers)
    cache_mb = sum(p.stat().st_size for p in cache.rglob("*") if p.is_file()) / 1e6
    print(json.dumps({"case": "first_with_cache (load + build)", **base, "seconds": round(build_s, 3),
                      "cache_mb": round(cache_mb, 1)}), flush=True)
    reads = []
    for _ in range(args.repeats):
        read_s, read = timed_load(root / "high-gamma", cache, args.workers)
        reads.append(read_s)
        same = len(read) == len(memory) and all(a.signals.tobytes() == b.signals.tobytes() and
                                                np.array_equal(a.labels, b.labels) for a, b in zip(memory, read))
        print(json.dumps({"case": "later_with_cache (read)", **base, "seconds": round(read_s, 3),
                          "windows_per_s": round(windows / read_s), "mb_per_s": round(window_mb / read_s, 1),
                          "identical_to_in_memory": same}), flush=True)
    read_s = statistics.median(reads)
    print(json.dumps({"in_memory_over_cached_read": round(memory_s / read_s, 1),
                      "build_over_in_memory": round(build_s / memory_s, 3),
                      "in_memory_recording_hours_per_minute": round(hours / (memory_s / 60), 2),
                      "cached_read_median_s": round(read_s, 3)}), flush=True)


if __name__ == "__main__":
    main()
