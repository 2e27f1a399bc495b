"""neurorvq benchmark end to end: a generated two-row table (EEGMMIDB-layout EDF files written with mne.export, a
2-fold split file, a tiny model recipe and the logpower baseline) through the cv runner under the default parity
protocol; table.md/csv/png checked against the runs' records; a second call trains nothing."""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from benchmark_data import write_eegmmidb, write_table
from neurorvq.cli import main

BUDGET_S = 90.0  # the limit for this test on a 2-core machine (measured: about 15 s)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    pytest.importorskip("edfio", reason="mne.export writes the EDF files with edfio")
    base = tmp_path_factory.mktemp("bench")
    write_eegmmidb(base / "data" / "eegmmidb")
    table = write_table(base / "tables")
    out = base / "out"
    args = ["benchmark", "--table", str(table), "--model", str(base / "tables" / "tiny.yaml"), "--baselines",
            "logpower", "--data_dir", str(base / "data"), "--out", str(out), "--protocol", "parity"]
    started = time.monotonic()
    assert main(args) == 0
    return {"out": out / "two-tasks", "args": args, "seconds": time.monotonic() - started, "base": base,
            "table": str(table)}


def _records(folder: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(folder.glob("fold_*/metrics.json"))]


def test_runs_every_row_and_model_on_the_split_folds_under_parity(finished):
    assert finished["seconds"] < BUDGET_S
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
