"""Window cache speed and memory (``neurorvq.data.cache``) against reading EDF files directly.

Cases (each in its own process for a clean peak RSS; ``--case all`` runs them one after the other):

* ``build``: write a cache of ``--windows`` generated EEG windows, 4 s x 64 channels at 200 Hz, float32
  (204,800 bytes each), from ``--sources`` source files with ``--build-workers`` processes; windows/s and MB/s.
* ``stream``: stream that cache with ``DataLoader(bucket_batches(StreamingWindows(...), batch), batch_size=None,
  num_workers=--workers)``, shard order shuffled, 256-window shuffle buffer; windows/s per epoch (epoch 0 and
  1, page cache warm since the build), peak RSS of the main process and of the largest worker. ``--verify``:
  with the shard checksums verified while streaming (``on``), without (``off``), or ``both`` (default): the two
  alternate epoch by epoch, so both see the same machine load, and a last line gives the on/off ratio.
* ``edf_direct``: EEGMMIDB EDF files read in the same kind of DataLoader (files split over the workers):
  ``mne.io.read_raw_edf(preload=True)`` + 4 s windows cut at the native 160 Hz, no filtering (the cheapest
  direct read).
* ``edf_pipeline``: the same with the default EEG preprocessing (``Pipeline.default``: pick, notch, band-pass,
  clip, resample to 200 Hz, uV) + ``cut_windows``: what a cache saves each epoch.
* ``edf_cache``: those preprocessed EEGMMIDB windows built into a cache (``get_or_build``; reused when present)
  and streamed like ``stream``.

    python benchmarks/cache_speed.py                       # all cases, 4,000 windows (~0.8 GB) under $TMPDIR
    python benchmarks/cache_speed.py --case stream --windows 4000 --workers 2
    python benchmarks/cache_speed.py --case stream --verify both --epochs 3   # what checksums cost
    python benchmarks/cache_speed.py --case stream --columns 4                # what per-window metadata costs

Prints one JSON line per measurement. The cache lives in ``--root`` (default ``$TMPDIR/neurorvq-cache-bench``),
reused between runs (same sources and config, same key); delete it to measure a cold build.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from neurorvq.data.cache import StreamingWindows, bucket_batches, get_or_build

REPO = Path(__file__).resolve().parents[1]
CHANNELS, SFREQ, SECONDS = 64, 200, 4


def _cpu_s() -> float:
    """CPU seconds (user + system) of this process and its reaped children (finished DataLoader workers)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _rss_mib() -> dict[str, float]:
    main = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"peak_rss_main_mib": round(main, 1), "peak_rss_largest_child_mib": round(children, 1)}


# ------------------------------------------------------------------------------------------------ generated
COLUMNS = (("session", lambda i: "T" if i % 2 else "E"), ("run", lambda i: i % 14 + 1), ("trial", lambda i: i),
           ("repetition", lambda i: i % 6 + 1))
"""Per-window metadata columns of ``--columns`` (session, run, trial, repetition: what the datasets carry)."""


def generated_windows(source):
    """Top-level per-source function: ``<n> <seed> [<columns>]`` in the file -> n windows of float32 [64, 800]
    uV, with the first ``columns`` of :data:`COLUMNS`."""
    n, seed, *rest = map(int, Path(source).read_text().split())
    columns = COLUMNS[:rest[0]] if rest else ()
    rng = np.random.default_rng(seed)
    ids = np.arange(CHANNELS, dtype=np.int64)
    for i in range(n):
        win = {"signal": rng.standard_normal((CHANNELS, SFREQ * SECONDS), dtype=np.float32) * 20.0,
               "channel_ids": ids, "label": i % 4, "subject": seed, "start": i * SFREQ * SECONDS}
        if columns:
            win["columns"] = {name: value(i) for name, value in columns}
        yield win


def _generated_cache(args):
    spec_dir = Path(args.root) / "sources"
    spec_dir.mkdir(parents=True, exist_ok=True)
    per = -(-args.windows // args.sources)
    sources = []
    for s in range(args.sources):
        n = min(per, args.windows - s * per)
        p = spec_dir / f"gen-{s:04d}.txt"
        text = f"{n} {s}" + (f" {args.columns}" if args.columns else "")
        if not p.exists() or p.read_text() != text:  # keep mtimes, hence the key, across runs
            p.write_text(text)
        sources.append(p)
    config = {"generator": "standard_normal x 20 uV", "channels": CHANNELS, "sfreq": SFREQ, "seconds": SECONDS}
    if args.columns:
        config["columns"] = [name for name, _ in COLUMNS[:args.columns]]
    return get_or_build(Path(args.root) / "caches", sources, config, generated_windows,
                        num_workers=args.build_workers, max_bytes_per_shard=args.shard_mb * 2 ** 20,
                        progress=not args.quiet)


def _stream(index, args, case):
    settings = {"on": [True], "off": [False], "both": [True, False]}[args.verify]
    rates: dict[bool, list[tuple[float, float]]] = {v: [] for v in settings}
    for epoch in range(args.epochs):
        for verify in settings if epoch % 2 == 0 else settings[::-1]:  # alternate which goes first
            rates[verify].append(_stream_epoch(index, args, case, epoch, verify))
    if len(settings) == 2:  # medians over the epochs: wall rate, and windows per CPU second (less load-sensitive)
        wall = {v: float(np.median([r[0] for r in rs])) for v, rs in rates.items()}
        cpu = {v: float(np.median([r[1] for r in rs])) for v, rs in rates.items()}
        print(json.dumps({"case": case, "epochs": args.epochs,
                          "verify_on_windows_per_s": round(wall[True], 1),
                          "verify_off_windows_per_s": round(wall[False], 1),
                          "on_over_off": round(wall[True] / wall[False], 3),
                          "verify_on_windows_per_cpu_s": round(cpu[True], 1),
                          "verify_off_windows_per_cpu_s": round(cpu[False], 1),
                          "on_over_off_per_cpu_s": round(cpu[True] / cpu[False], 3)}), flush=True)


def _stream_epoch(index, args, case, epoch: int, verify: bool) -> tuple[float, float]:
    """One epoch over the cache; prints its figures and returns (windows/s, windows per CPU second)."""
    ds = StreamingWindows(index, shuffle_shards=True, shuffle_buffer=args.shuffle_buffer, seed=0, verify=verify)
    batches = bucket_batches(ds, args.batch)
    ds.set_epoch(epoch)
    loader = DataLoader(batches, batch_size=None, num_workers=args.workers,
                        prefetch_factor=4 if args.workers else None)
    t0, c0 = time.perf_counter(), _cpu_s()
    n, first, n_first = 0, None, 0
    for batch in loader:
        n += batch["signal"].shape[0]
        if first is None:
            first, n_first = time.perf_counter() - t0, n
    dt = time.perf_counter() - t0
    del loader  # workers shut down and reaped: their CPU time is in RUSAGE_CHILDREN
    cpu = _cpu_s() - c0
    print(json.dumps({"case": case, "epoch": epoch, "verify": verify, "columns": args.columns, "windows": n, "seconds": round(dt, 3),
                      "windows_per_s": round(n / dt, 1),
                      "MB_per_s": round(n * CHANNELS * SFREQ * SECONDS * 4 / dt / 1e6, 1),
                      "first_batch_s": round(first or 0.0, 3),
                      "windows_per_s_after_first_batch": round((n - n_first) / max(dt - (first or 0.0), 1e-9), 1),
                      "cpu_s": round(cpu, 2), "windows_per_cpu_s": round(n / cpu, 1),
                      "workers": args.workers, "batch": args.batch,
                      "shards": len(index.shards), "cache_MB": round(index.total_bytes / 1e6, 1), **_rss_mib()}),
          flush=True)
    return n / dt, n / cpu


# ------------------------------------------------------------------------------------------------ EDF
def _edf_files(args) -> list[Path]:
    root = (REPO / args.edf_dir).resolve()
    files = sorted(root.rglob("*.edf"))
    if not files:
        raise SystemExit(f"no EDF files under {root} (pass --edf-dir)")
    return files


def eegmmidb_windows(source):
    """Top-level per-source function: one EEGMMIDB EDF -> default EEG pipeline -> 4 s windows (uV, 200 Hz)."""
    import mne

    from neurorvq import get_modality
    from neurorvq.data.preprocess import Pipeline, cut_windows

    spec = get_modality("eeg")
    raw = mne.io.read_raw_edf(source, verbose="error")
    rec = Pipeline.default(spec).run(raw, Path(source).name)
    windows, starts, _ = cut_windows(rec, SECONDS)
    ids = np.asarray([spec.channel_index(c) for c in rec.channels], dtype=np.int64)
    subject = int(Path(source).name[1:4])
    for w, s in zip(windows, starts):
        yield {"signal": w, "channel_ids": ids, "subject": subject, "recording": Path(source).name, "start": int(s)}


class EdfWindows(IterableDataset):
    """EDF files split over DataLoader workers; each file read and cut on the fly (``pipeline`` or raw)."""

    def __init__(self, files, pipeline: bool):
        self.files, self.pipeline = [str(f) for f in files], pipeline

    def __iter__(self):
        import mne

        info = get_worker_info()
        k, n = (info.id, info.num_workers) if info else (0, 1)
        for f in self.files[k::n]:
            if self.pipeline:
                for w in eegmmidb_windows(f):
                    yield {"signal": torch.from_numpy(w["signal"]), "channel_ids": torch.from_numpy(w["channel_ids"])}
                continue
            raw = mne.io.read_raw_edf(f, preload=True, verbose="error")
            data = (raw.get_data() * 1e6).astype(np.float32)
            length = int(round(SECONDS * raw.info["sfreq"]))
            ids = torch.arange(data.shape[0])
            for start in range(0, data.shape[1] - length + 1, length):
                yield {"signal": torch.from_numpy(data[:, start:start + length].copy()), "channel_ids": ids}


def _edf_direct(args, pipeline: bool):
    files = _edf_files(args)
    loader = DataLoader(bucket_batches(EdfWindows(files, pipeline), args.batch), batch_size=None,
                        num_workers=args.workers)
    t0, c0 = time.perf_counter(), _cpu_s()
    n = 0
    shape = None
    for batch in loader:
        n += batch["signal"].shape[0]
        shape = list(batch["signal"].shape[1:])
    dt = time.perf_counter() - t0
    del loader
    cpu = _cpu_s() - c0
    print(json.dumps({"case": "edf_pipeline" if pipeline else "edf_direct", "files": len(files), "windows": n,
                      "window_shape": shape, "seconds": round(dt, 3), "windows_per_s": round(n / dt, 1),
                      "cpu_s": round(cpu, 2), "windows_per_cpu_s": round(n / cpu, 1),
                      "workers": args.workers, **_rss_mib()}), flush=True)


# ------------------------------------------------------------------------------------------------ main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--case", choices=["all", "build", "stream", "edf_direct", "edf_pipeline", "edf_cache"],
                        default="all")
    parser.add_argument("--windows", type=int, default=4000)
    parser.add_argument("--sources", type=int, default=40)
    parser.add_argument("--shard-mb", type=int, default=64)
    parser.add_argument("--build-workers", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers when reading")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--shuffle-buffer", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--verify", choices=["on", "off", "both"], default="both",
                        help="stream with the shard checksums verified, not, or both alternately (default)")
    parser.add_argument("--edf-dir", default="../shared/data/eegmmidb", help="relative to the repository")
    parser.add_argument("--root", default=os.path.join(tempfile.gettempdir(), "neurorvq-cache-bench"))
    parser.add_argument("--columns", type=int, default=0, choices=range(len(COLUMNS) + 1),
                        help="metadata columns in every window (session, run, trial, repetition): their cost")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)

    if args.case == "all":
        passed = [a for a in sys.argv[1:] if not a.startswith("--case")]
        for case in ("build", "stream", "edf_direct", "edf_pipeline", "edf_cache"):
            subprocess.run([sys.executable, __file__, "--case", case, *passed], check=True)
        return
    if args.case == "build":
        existing = {p.name for p in (Path(args.root) / "caches").glob("*") if p.is_dir()}
        t0 = time.perf_counter()
        index = _generated_cache(args)
        dt = time.perf_counter() - t0
        key_dir = Path(index.location)
        print(json.dumps({"case": "build", "reused": key_dir.name in existing, "windows": index.total_windows,
                          "shards": len(index.shards), "cache_MB": round(index.total_bytes / 1e6, 1),
                          "seconds": round(dt, 3), "windows_per_s": round(index.total_windows / dt, 1),
                          "MB_per_s": round(index.total_bytes / dt / 1e6, 1), "build_workers": args.build_workers,
                          "location": str(key_dir), **_rss_mib()}), flush=True)
    elif args.case == "stream":
        _stream(_generated_cache(args), args, "stream")
    elif args.case in ("edf_direct", "edf_pipeline"):
        _edf_direct(args, pipeline=args.case == "edf_pipeline")
    elif args.case == "edf_cache":
        files = _edf_files(args)
        from neurorvq import get_modality
        from neurorvq.data.preprocess import Pipeline

        config = {"pipeline": Pipeline.default(get_modality("eeg")).config(), "window_seconds": SECONDS}
        t0 = time.perf_counter()
        index = get_or_build(Path(args.root) / "caches", files, config, eegmmidb_windows,
                             num_workers=args.build_workers, progress=not args.quiet)
        print(json.dumps({"case": "edf_cache_build", "files": len(files), "windows": index.total_windows,
                          "seconds": round(time.perf_counter() - t0, 3), "shards": len(index.shards)}), flush=True)
        _stream(index, args, "edf_cache_stream")


if __name__ == "__main__":
    main()
