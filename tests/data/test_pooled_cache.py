"""The pooled windows of ``neurorvq cv`` (``RecordingDataModule.load_all``) through the window cache: on published
layouts written here (NinaPro DB5 .mat with scipy.io.savemat: per-window ``repetition``; KU ERP / Lee 2019 GigaDB
.mat: per-window ``run`` and ``session``), the cached pool equals the in-memory one window for window and in the
same order (signals bit for bit, labels, subjects, starts, channels, columns and their dtypes, the summary), so the
folds drawn on it hold the same window indices; a second ``load_all`` opens no recording; a damaged layout sidecar
is a CacheError naming it; a cv run with ``cache_dir`` writes the same folds.json and metrics as one without."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_lee2019_erp import write_lee2019_erp_layout  # noqa: E402
from test_ninapro_db5 import session, write  # noqa: E402

from neurorvq.data.cache import CacheError  # noqa: E402
from neurorvq.data.datamodule_cache import POOLED_SPLIT  # noqa: E402
from neurorvq.data.recording import RecordingSkippedWarning  # noqa: E402
from neurorvq.data.splits import subject_kfold  # noqa: E402
from neurorvq.data.windowset import WindowDataset  # noqa: E402
from neurorvq.datamodules.lee2019_erp import Lee2019ERPDataModule  # noqa: E402
from neurorvq.datamodules.ninapro_db5 import NinaProDB5DataModule  # noqa: E402

DB5 = dict(subjects=[1, 2, 3, 4], exercises=[1, 2], verbose=False)  # subject 4 has no files: listed, skipped


def assert_same_pool(memory: list, cached: list) -> None:
    """The same window sets in the same order: every field, every dtype, signals bit for bit."""
    assert len(cached) == len(memory)
    for a, b in zip(memory, cached):
        assert (b.recording, b.channels) == (a.recording, a.channels)
        assert b.signals.dtype == a.signals.dtype == np.float32 and b.signals.shape == a.signals.shape
        assert b.signals.tobytes() == a.signals.tobytes()
        for name in ("channel_ids", "labels", "subjects", "starts"):
            x, y = getattr(a, name), getattr(b, name)
            assert (x is None) == (y is None), name
            assert x is None or (x.dtype == y.dtype and np.array_equal(x, y)), name
        assert list(b.columns) == list(a.columns)
        for name, values in a.columns.items():
            assert b.columns[name].dtype == values.dtype and np.array_equal(b.columns[name], values), name
    one, two = WindowDataset(memory), WindowDataset(cached)
    assert two.column_names == one.column_names and two.bucket_of_key == one.bucket_of_key
    for name, values in one.table().items():  # window order: recording, start, label, ... per position
        assert np.array_equal(two.column(name), values), name


def assert_same_folds(memory: list, cached: list) -> None:
    """Folds drawn over each pool (by subject, stratified by label) hold the same window indices."""
    one, two = WindowDataset(memory), WindowDataset(cached)
    a = subject_kfold(one.subjects, one.labels, n_folds=2, seed=3, val_fraction=0.0, require_all_classes=False)
    b = subject_kfold(two.subjects, two.labels, n_folds=2, seed=3, val_fraction=0.0, require_all_classes=False)
    for x, y in zip(a, b, strict=True):
        for part in ("train", "val", "test"):
            assert np.array_equal(getattr(x, part), getattr(y, part)), part


def refuse_loading(monkeypatch, cls) -> None:
    def refuse(self, info, pipeline):
        raise AssertionError(f"{info.path} was opened although the pooled cache holds its windows")

    monkeypatch.setattr(cls, "load_windows", refuse)


@pytest.fixture(scope="module")
def db5(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("db5_pooled")
    for subject in (1, 2, 3):
        write(root, subject, 1, gestures=(1, 5))
        write(root, subject, 2, gestures=(2,))
    damaged = session(3, 2, gestures=(2,))
    del damaged["restimulus"]
    write(root, 3, 2, damaged)  # skipped with a reason the summary keeps
    return root


def _load(cls, root, **kwargs):
    with pytest.warns(RecordingSkippedWarning):
        dm = cls(str(root), **kwargs)
        return dm, dm.load_all()


def test_ninapro_pool_from_the_cache_equals_the_in_memory_pool(db5, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    memory_dm, memory = _load(NinaProDB5DataModule, db5, **DB5)
    built_dm, built = _load(NinaProDB5DataModule, db5, cache_dir=str(cache), **DB5)
    refuse_loading(monkeypatch, NinaProDB5DataModule)
    with pytest.warns(RecordingSkippedWarning, match="recorded in the window cache"):
        read_dm = NinaProDB5DataModule(str(db5), cache_dir=str(cache), batch_size=7, num_workers=1, **DB5)
        read = read_dm.load_all()
    for pool in (built, read):
        assert_same_pool(memory, pool)
    assert_same_folds(memory, read)
    assert built_dm.summary == memory_dm.summary and read_dm.summary == memory_dm.summary
    summary = read_dm.summary
    assert summary["recordings_found"] == 8 and summary["recordings_loaded"] == 5
    assert {Path(p).name: why.split(" (")[0] for p, why in summary["skipped"].items()} == {
        "S3_E2_A1.mat": "missing variable(s) ['restimulus']", "S4_E1_A1.mat": "file not found",
        "S4_E2_A1.mat": "file not found"}
    assert summary["windows"]["train"] == sum(len(ws) for ws in read) and summary["windows"]["val"] == 0
    table = WindowDataset(read).table()
    assert set(table["repetition"].tolist()) == set(range(1, 7)) and table["repetition"].dtype == np.int64
    assert read_dm.splits["val"] == read_dm.splits["test"] == [] and len(read_dm.splits["train"]) == 4
    folders = [p for p in cache.iterdir() if (p / "index.json").is_file()]
    assert len(folders) == 1 and {"summary.json", "sets.json"} <= {p.name for p in folders[0].iterdir()}
    assert json.loads((folders[0] / "index.json").read_text())["config"]["split"] == POOLED_SPLIT


def test_lee2019_pool_with_run_and_session_columns(tmp_path, monkeypatch):
    root = write_lee2019_erp_layout(tmp_path / "kuerp")
    cache = tmp_path / "cache"
    memory_dm = Lee2019ERPDataModule(str(root), verbose=False)
    memory = memory_dm.load_all()
    built = Lee2019ERPDataModule(str(root), verbose=False, cache_dir=str(cache)).load_all()
    refuse_loading(monkeypatch, Lee2019ERPDataModule)
    read_dm = Lee2019ERPDataModule(str(root), verbose=False, cache_dir=str(cache))
    read = read_dm.load_all()
    assert_same_pool(memory, built)
    assert_same_pool(memory, read)
    assert_same_folds(memory, read)
    assert read_dm.summary == memory_dm.summary and read_dm.summary["windows"]["train"] == 2 * 2 * 2 * 12
    table = WindowDataset(read).table()
    assert {"run", "session"} <= set(table) and table["run"].dtype == WindowDataset(memory).table()["run"].dtype
    assert set(table["run"].tolist()) == {"train", "test"}


def test_the_pooled_cache_is_keyed_apart_and_a_changed_option_rebuilds(db5, tmp_path, monkeypatch):
    """The split caches of setup() and the pooled one live side by side; another window length is another pool."""
    cache = tmp_path / "cache"
    split_dm = NinaProDB5DataModule(str(db5), cache_dir=str(cache), test_subjects=[3], **DB5)
    with pytest.warns(RecordingSkippedWarning):
        split_dm.prepare_data()
    _, first = _load(NinaProDB5DataModule, db5, cache_dir=str(cache), **DB5)
    _, longer = _load(NinaProDB5DataModule, db5, cache_dir=str(cache), window_seconds=1.5, **DB5)
    assert {ws.signals.shape[-1] for ws in first} == {200} and {ws.signals.shape[-1] for ws in longer} == {300}
    configs = [json.loads((p / "index.json").read_text())["config"] for p in cache.iterdir()
               if (p / "index.json").is_file()]
    assert sorted(c["split"] for c in configs) == ["all", "all", "test", "train", "val"]
    assert all("membership" not in c for c in configs if c["split"] == POOLED_SPLIT)


def test_a_damaged_layout_sidecar_is_named(db5, tmp_path):
    cache = tmp_path / "cache"
    _load(NinaProDB5DataModule, db5, cache_dir=str(cache), **DB5)
    sets, = cache.glob("*/sets.json")
    layout = json.loads(sets.read_text())
    layout["sets"][0]["windows"] += 1
    sets.write_text(json.dumps(layout))
    with pytest.raises(CacheError, match=r"holds \d+ windows but its sets.json lists \d+; delete that folder"):
        _load(NinaProDB5DataModule, db5, cache_dir=str(cache), **DB5)
    sets.write_text("{not json")
    with pytest.raises(CacheError, match=rf"layout {sets} is damaged .*delete the cache folder"):
        _load(NinaProDB5DataModule, db5, cache_dir=str(cache), **DB5)


# ------------------------------------------------------------------------------------------------ neurorvq cv
def _runner_module():
    """tests/crossval/test_runner.py (its armband-layout writer and recipe) under a private name."""
    path = Path(__file__).resolve().parents[1] / "crossval" / "test_runner.py"
    spec = importlib.util.spec_from_file_location("test_runner_for_pooled_cache", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cv_with_the_cache_writes_the_same_folds_and_metrics(tmp_path, monkeypatch):
    from neurorvq.crossval.runner import run_cv
    from neurorvq.datamodules.semg_armband import SEMGArmbandDataModule

    runner = _runner_module()
    root = runner.write_armband(tmp_path / "armband")
    cache = tmp_path / "cache"

    def run(out: Path, extra=()):
        run_cv(runner.settings(root, n_folds=2, extra=extra, baseline="logpower"), out)
        folds = json.loads((out / "folds.json").read_text())["folds"]  # its metadata names the run's own recipe copy
        metrics = [json.loads((out / f"fold_{k}" / "metrics.json").read_text())["metrics"] for k in range(2)]
        return folds, metrics

    plain = run(tmp_path / "plain")
    cached = run(tmp_path / "cached", [f"--data.init_args.cache_dir={cache}"])
    refuse_loading(monkeypatch, SEMGArmbandDataModule)  # a second run reads the pooled cache only
    again = run(tmp_path / "again", [f"--data.init_args.cache_dir={cache}"])
    assert cached == plain and again == plain
    assert len(plain[0]) == 2 and plain[0][0]["test"] and plain[0][0]["train"]  # window indices were compared
    assert len([p for p in cache.iterdir() if (p / "sets.json").is_file()]) == 1
