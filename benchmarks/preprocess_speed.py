"""Preprocessing throughput on EEGMMIDB EDF files: hours of recording per minute of wall time.

Each file is read with MNE, run through the default EEG pipeline (pick + rename 64 channels, notch 50/60 Hz,
band-pass 0.5-44.5 Hz, clip ±500 µV, resample 160 -> 200 Hz, scale to µV) and cut into 4 s windows.

    python benchmarks/preprocess_speed.py --root ../shared/data/eegmmidb --workers 1
    python benchmarks/preprocess_speed.py --root ../shared/data/eegmmidb --workers 2
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path


def process(path: str) -> tuple[float, int]:
    """Seconds of recording and windows kept for one EDF file."""
    import mne

    from neurorvq import get_modality
    from neurorvq.data.preprocess import Pipeline, cut_windows

    spec = get_modality("eeg")
    raw = mne.io.read_raw_edf(path, verbose="error")
    recording = Pipeline.default(spec).run(raw, path)
    windows, _, _ = cut_windows(recording, 4.0)
    return recording.data.shape[1] / recording.sfreq, len(windows)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--root", default="../shared/data/eegmmidb")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    files = sorted(str(p) for p in Path(args.root).rglob("*.edf"))
    process(files[0])  # warm-up: imports and MNE's first filter design
    start = time.perf_counter()
    if args.workers > 1:
        with ProcessPoolExecutor(args.workers) as pool:
            results = list(pool.map(process, files))
    else:
        results = [process(f) for f in files]
    elapsed = time.perf_counter() - start
    seconds = sum(r[0] for r in results)
    print(json.dumps({"files": len(files), "workers": args.workers, "recording_hours": round(seconds / 3600, 3),
                      "wall_s": round(elapsed, 2), "hours_per_minute": round(seconds / 3600 / (elapsed / 60), 3),
                      "windows": sum(r[1] for r in results)}))


if __name__ == "__main__":
    main()
