"""A check shared by the dataset tests: a DataModule's window cache holds exactly its in-memory windows."""

from __future__ import annotations

import numpy as np


def assert_cache_matches_memory(memory, cached) -> None:
    """Every split of ``cached`` (set up with ``cache_dir``) streams the windows of ``memory`` (set up without):
    same recordings, starts, labels, subjects, signals and metadata columns; same summary counts."""
    from neurorvq.data.cache import StreamingWindows

    assert cached.datasets == {} and cached.summary["windows"] == memory.summary["windows"]
    for split in ("train", "val", "test"):
        index = cached.caches[split]
        data = memory.datasets[split]
        assert index.total_windows == len(data), split
        if not len(data):
            continue
        table = data.table()
        columns = [c for c in data.column_names if c not in ("subject", "recording", "start", "label")]
        expected = sorted((str(table["recording"][i]), int(table["start"][i]), int(table["label"][i]),
                           int(table["subject"][i]), tuple(str(table[c][i]) for c in columns),
                           data[i]["signal"].numpy().tobytes()) for i in range(len(data)))
        streamed = sorted((w["recording"], int(w["start"]), int(w["label"]), int(w["subject"]),
                           tuple(str(w["columns"][c]) for c in columns), w["signal"].numpy().tobytes())
                          for w in StreamingWindows(index, with_meta=True))
        assert len(streamed) == len(expected) and streamed == expected, split
        assert np.isfinite(np.frombuffer(streamed[0][-1], dtype=np.float32)).all()
