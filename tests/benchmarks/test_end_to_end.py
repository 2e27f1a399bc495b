"""neurorvq benchmark end to end: a generated two-row table (EEGMMIDB-layout EDF files written with mne.export, a
2-fold split file, a tiny model recipe and the logpower baseline) through the cv runner under the default parity
protocol; table.md/csv/png checked against the runs' records; each row's window cache built once, by its first model,
and read by the second; a second call trains nothing; runs made without the cache are reused and resumed with it."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from benchmark_data import write_eegmmidb, write_table
from neurorvq.cli import main
from neurorvq.data.datamodule_cache import WindowCacheMixin

# The issue asks this run to fit in 90 s on a 2-core machine; measured 4.5-20 s (quiet / loaded). Timings stay out of
# pass/fail tests: benchmarks/README.md records them.


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    pytest.importorskip("edfio", reason="mne.export writes the EDF files with edfio")
    base = tmp_path_factory.mktemp("bench")
    write_eegmmidb(base / "data" / "eegmmidb")
    table = write_table(base / "tables")
    out = base / "out"
    args = ["benchmark", "--table", str(table), "--model", str(base / "tables" / "tiny.yaml"), "--baselines",
            "logpower", "--data_dir", str(base / "data"), "--out", str(out), "--protocol", "parity"]
    pooled: dict[str, list] = {"built": [], "read": []}  # (cache folder, windows) of every pooled load
    build, read = WindowCacheMixin._build_pooled_cache, WindowCacheMixin._read_pooled

    def counted_build(self, key, infos):
        sets, part = build(self, key, infos)
        pooled["built"].append((self.cache_dir, sum(len(ws) for ws in sets)))
        return sets, part

    def counted_read(index, layout):
        sets = read(index, layout)
        pooled["read"].append((Path(index.location).parent, sum(len(ws) for ws in sets)))
        return sets

    with pytest.MonkeyPatch.context() as patch:  # the real methods, counted
        patch.setattr(WindowCacheMixin, "_build_pooled_cache", counted_build)
        patch.setattr(WindowCacheMixin, "_read_pooled", staticmethod(counted_read))
        assert main(args) == 0
    return {"out": out / "two-tasks", "args": args, "base": base, "table": str(table),
            "pooled": pooled}


def _records(folder: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(folder.glob("fold_*/metrics.json"))]


def test_runs_every_row_and_model_on_the_split_folds_under_parity(finished):
    out = finished["out"]
    for row in ("eyes", "imagery"):
        for model in ("tiny", "logpower"):
            run = out / row / model
            identity = json.loads((run / "cv.json").read_text())
            assert identity["protocol"] == "parity" and identity["val_fraction"] == 0.0
            assert identity["unlisted"] == "drop" and identity["n_folds"] == 2
            folds = json.loads((run / "folds.json").read_text())["folds"]
            assert [f["test_subjects"] for f in folds] == [["S001", "S002"], ["S003", "S004"]]
            assert all(f["val_subjects"] == [] and "S005" not in f["train_subjects"] for f in folds)  # dropped
            records = _records(run)
            assert [r["fold"] for r in records] == [0, 1]
            assert all({"accuracy", "balanced_accuracy"} <= set(r["metrics"]) for r in records)
    recipe = yaml.safe_load((out / "eyes" / "tiny" / "model_recipe.yaml").read_text())
    init = recipe["model"]["init_args"]
    assert init["fm"] is None and init["fm_overrides"] == {"depth": 1} and init["num_classes"] == 2  # the row's
    assert recipe["data"]["init_args"]["task"] == "eyes"
    assert _records(out / "eyes" / "tiny")[0]["selection"] == "last epoch (no validation part)"


def test_each_row_builds_its_window_cache_once_and_the_second_model_reads_it(finished):
    out = finished["out"]
    caches = {row: out / row / "window_cache" for row in ("eyes", "imagery")}
    built, read = finished["pooled"]["built"], finished["pooled"]["read"]
    assert sorted(folder for folder, _ in built) == sorted(caches.values())  # once per row, by its first model
    assert sorted(read) == sorted(built)  # the other model: the same windows, read back
    for row, folder in caches.items():
        pools = [p for p in folder.iterdir() if (p / "sets.json").is_file()]
        assert len(pools) == 1, row  # one pooled cache per row: both models' runs shared its key
        for model in ("tiny", "logpower"):
            overrides = json.loads((out / row / model / "cv.json").read_text())["overrides"]
            assert not any("cache_dir" in o for o in overrides)  # not part of the run's identity


def test_runs_made_without_the_cache_are_reused_and_resumed_with_it(finished, tmp_path, capsys):
    """--cache false gives the runs of before the cache existed; the default call then reuses them, and a run
    interrupted before its last fold resumes with the cache into the same cv.json."""
    base = ["benchmark", "--table", finished["table"], "--baselines", "logpower", "--rows", "eyes", "--data_dir",
            str(finished["base"] / "data"), "--out", str(tmp_path), "--protocol", "parity", "--figure", "false"]
    assert main([*base, "--cache", "false"]) == 0
    row = tmp_path / "two-tasks" / "eyes"
    identity = (row / "logpower" / "cv.json").read_text()
    assert not (row / "window_cache").exists() and "cache_dir" not in identity
    capsys.readouterr()
    assert main(base) == 0
    assert "0 to run, 1 already finished" in capsys.readouterr().out and not (row / "window_cache").exists()
    last = row / "logpower" / "fold_1" / "metrics.json"
    before = json.loads(last.read_text())
    last.unlink()  # interrupted before its last fold
    assert main(base) == 0
    assert (row / "logpower" / "cv.json").read_text() == identity
    assert json.loads(last.read_text())["metrics"] == before["metrics"]
    assert len([p for p in (row / "window_cache").iterdir() if (p / "sets.json").is_file()]) == 1


def test_table_markdown_csv_and_figure(finished):
    out = finished["out"]
    text = (out / "table.md").read_text()
    assert text.index("## Balanced accuracy (what the paper reports)") < text.index("## Accuracy (what the benchmark")
    assert "| model | Eyes | Imagery L/R | Mean |" in text
    assert "| NeuroRVQ (published) | 0.869 ± 0.026 | 0.500 ± 0.100 | 0.684 ± 0.063 |" in text
    assert "population standard deviation (ddof 0)" in text and "protocol parity" in text
    assert "std convention (population or sample) is not stated" in text
    rows = list(csv.DictReader(open(out / "table.csv")))
    assert set(rows[0]) == {"table", "row", "model", "metric", "mean", "std", "spread", "folds", "seeds", "source"}
    for row in ("eyes", "imagery"):
        for model, label in (("tiny", "tiny"), ("logpower", "log band power + LR")):
            for metric in ("balanced_accuracy", "accuracy"):
                values = np.array([r["metrics"][metric] for r in _records(out / row / model)])
                line, = [r for r in rows if (r["row"], r["model"], r["metric"]) == (row, label, metric)]
                assert float(line["mean"]) == pytest.approx(values.mean(), abs=1e-6)
                assert float(line["std"]) == pytest.approx(values.std(), abs=1e-6)  # ddof 0
                assert line["folds"] == "2" and line["source"] == "ours" and line["spread"] == "folds"
                shown = f"{values.mean():.3f} ± {values.std():.3f}"
                assert f"| {label} |" in text and shown in text
    means = [r for r in rows if r["row"] == "mean" and r["model"] == "tiny" and r["metric"] == "balanced_accuracy"]
    parts = [float(r["mean"]) for r in rows if r["model"] == "tiny" and r["metric"] == "balanced_accuracy"
             and r["row"] != "mean"]
    assert float(means[0]["mean"]) == pytest.approx(np.mean(parts), abs=1e-6)
    assert [r["source"] for r in rows if r["model"] == "NeuroRVQ (published)"] == ["published"] * 3
    figure = (out / "table.png").read_bytes()
    assert figure[:8] == b"\x89PNG\r\n\x1a\n" and len(figure) > 10_000


def test_a_second_call_trains_nothing(finished, monkeypatch, capsys):
    before = (finished["out"] / "table.md").read_text()
    stamps = {p: p.stat().st_mtime_ns for p in finished["out"].glob("*/*/fold_*/metrics.json")}

    def refuse(*args, **kwargs):
        raise AssertionError("a finished row was run again")

    monkeypatch.setattr("neurorvq.crossval.runner.run_cv", refuse)
    capsys.readouterr()
    assert main(finished["args"]) == 0
    out = capsys.readouterr().out
    assert out.count("already finished (reused from") == 4 and "0 to run, 4 already finished" in out
    assert (finished["out"] / "table.md").read_text() == before
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps


def test_clean_protocol_and_a_table_mixing_protocols(finished, tmp_path, capsys):
    """The baseline alone (nothing trains): clean draws validation subjects from the training side; a later parity
    call into the same --out shows the clean row marked [clean]."""
    base = ["benchmark", "--table", finished["table"], "--baselines", "logpower", "--data_dir",
            str(finished["base"] / "data"), "--out", str(tmp_path), "--figure", "false"]
    assert main([*base, "--rows", "eyes"]) == 0  # clean is the default
    run = tmp_path / "two-tasks" / "eyes" / "logpower"
    assert "protocol" not in json.loads((run / "cv.json").read_text())  # clean is the runner's default
    folds = json.loads((run / "folds.json").read_text())["folds"]
    assert all(len(f["val_subjects"]) == 1 and len(f["train_subjects"]) == 1 for f in folds)
    text = (tmp_path / "two-tasks" / "table.md").read_text()
    assert "protocol clean: validation subjects" in text and "| log band power + LR |" in text
    assert "| Eyes | Imagery L/R | Mean |" in text and " | — | — |" in text  # imagery not run: no Mean
    assert main([*base, "--rows", "imagery", "--protocol", "parity"]) == 0
    text = (tmp_path / "two-tasks" / "table.md").read_text()
    line, = [r for r in text.splitlines() if r.startswith("| log band power + LR |")][:1]
    assert line.split(" | ")[1].endswith("[clean]") and not line.split(" | ")[2].endswith("]")
    assert "Cells marked [clean] were run under that protocol" in text
    assert not (tmp_path / "two-tasks" / "table.png").exists()  # --figure false
