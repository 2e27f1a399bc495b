"""The benchmark report on hand-made neurorvq cv output folders: per-fold means over seeds, population std, the Mean
column, partial runs, runs of another protocol, published rows (the EEG README table), Markdown and long CSV."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from neurorvq.benchmarks.published import EEG, Score, published_mean
from neurorvq.benchmarks.report import collect, run_cells, write_report
from neurorvq.benchmarks.run import ModelEntry
from neurorvq.benchmarks.tables import TABLES, Table, read_table


def write_run(folder: Path, scores: dict[int, dict[int, tuple[float, float | None]]], protocol: str = "parity") -> Path:
    """``fold_<k>/seed_<s>/metrics.json`` with ``(balanced accuracy, accuracy or None)`` per fold and seed, and the
    cv.json of a run under ``protocol``."""
    for fold, seeds in scores.items():
        for seed, (bacc, acc) in seeds.items():
            metrics = {"balanced_accuracy": bacc, **({} if acc is None else {"accuracy": acc})}
            path = folder / f"fold_{fold}" / f"seed_{seed}" / "metrics.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({"fold": fold, "seed": seed, "metrics": metrics, "test_subjects": [fold]}))
    identity = {"n_folds": len(scores)} | ({} if protocol == "clean" else {"protocol": protocol})
    (folder / "cv.json").write_text(json.dumps(identity))
    return folder


@pytest.fixture
def table(tmp_path) -> Table:
    (tmp_path / "folds.json").write_text(json.dumps({"format": "neurorvq-split", "version": 1, "by": "subject",
                                                     "folds": {"0": [1], "1": [2]}}))
    (tmp_path / "table.yaml").write_text("""table: t
title: Hand-made
rows:
  - {key: a, task: Task A, recipe: a.yaml, split: folds.json}
  - {key: b, task: Task B, recipe: b.yaml, split: folds.json}
published:
  - {model: NeuroRVQ, source: test, scores: {a: [0.9, 0.05], b: 0.7}, folds: 10}
""")
    return read_table(tmp_path / "table.yaml")


def test_cell_is_the_mean_and_population_std_of_the_per_fold_means_over_seeds(tmp_path):
    run = write_run(tmp_path / "run", {0: {0: (0.6, 0.7), 1: (0.8, 0.9)}, 1: {0: (0.5, 0.6), 1: (0.5, 0.6)}})
    cells = run_cells(run, expected_folds=2)
    bacc = cells["balanced_accuracy"]
    # per-fold means 0.7 and 0.5 -> 0.6 ± 0.1 (ddof 0); over the 4 records the std would be 0.122
    assert bacc.mean == pytest.approx(0.6) and bacc.std == pytest.approx(0.1)
    assert bacc.folds == 2 and bacc.seeds == [0, 1] and bacc.protocol == "parity" and bacc.text() == "0.600 ± 0.100"
    assert cells["accuracy"].text() == "0.700 ± 0.100"
    assert run_cells(tmp_path / "absent", 2) == {}


def test_report_layout_mean_partial_and_other_protocol(table, tmp_path, capsys):
    out = tmp_path / "out"
    ours, baseline = ModelEntry("fm", "our FM", fm="x.pt"), ModelEntry("eegnet", "EEGNet", baseline="eegnet")
    write_run(out / "t" / "a" / "fm", {0: {0: (0.8, 0.85)}, 1: {0: (0.6, 0.65)}})
    write_run(out / "t" / "b" / "fm", {0: {0: (0.7, 0.75)}, 1: {0: (0.5, 0.55)}})
    write_run(out / "t" / "a" / "eegnet", {0: {0: (0.55, None)}})  # one of two folds, no accuracy
    write_run(out / "t" / "b" / "eegnet", {0: {0: (0.6, None)}, 1: {0: (0.4, None)}}, protocol="clean")
    files = write_report(table, [ours, baseline], out, "parity")["files"]
    text = files["markdown"].read_text()
    assert text == capsys.readouterr().out.split("written: ")[0].rstrip("\n") + "\n"
    balanced, accuracy = text.split("## Accuracy")
    assert "| our FM | 0.700 ± 0.100 | 0.600 ± 0.100 | 0.650 ± 0.100 |" in balanced
    assert "| EEGNet | 0.550 ± 0.000 (1 of 2 folds) | 0.500 ± 0.100 [clean] | 0.525 ± 0.050 |" in balanced
    assert "| NeuroRVQ (published) | 0.900 ± 0.050 | 0.700 | 0.800 |" in balanced  # no std for b: Mean without
    assert "| our FM | 0.750 ± 0.100 | 0.650 ± 0.100 | 0.700 ± 0.100 |" in accuracy
    assert "| EEGNet | — | — | — |" in accuracy and "published" not in accuracy.split("Ours and")[0]
    assert "Cells marked [clean] were run under that protocol" in text and "over 10 folds" in text
    rows = list(csv.DictReader(open(files["csv"])))
    assert {"table": "t", "row": "mean", "model": "our FM", "metric": "balanced_accuracy", "mean": "0.650000",
            "std": "0.100000", "spread": "", "folds": "", "seeds": "", "source": "ours"} in rows
    assert {"table": "t", "row": "a", "model": "EEGNet", "metric": "balanced_accuracy", "mean": "0.550000",
            "std": "0.000000", "spread": "folds", "folds": "1", "seeds": "0", "source": "ours"} in rows
    assert [r["row"] for r in rows if r["source"] == "published"] == ["a", "b", "mean"]
    assert files["figure"].read_bytes()[:4] == b"\x89PNG"


def test_eeg_table_prints_the_readme_rows_before_any_run(tmp_path, capsys):
    write_report(TABLES["eeg"], [], tmp_path, "parity", figure=False)
    text = (tmp_path / "eeg" / "table.md").read_text()
    assert "| model | Motor | ERP | Memory | Sleep* | Eyes | Mean |" in text
    assert ("| NeuroRVQ (published) | 0.700 ± 0.073 | 0.876 ± 0.033 | 0.574 ± 0.027 | 0.728 ± 0.028 "
            "| 0.869 ± 0.026 | 0.749 ± 0.037 |") in text
    biot = "| BIOT (published) | 0.443 ± 0.079 | 0.500 ± 0.000 | 0.510 ± 0.018 | — | 0.763 ± 0.049 | — |"
    assert biot in text
    assert "| MIRepNet (published) | 0.689 ± 0.086 | — | — | — | — | — |" in text
    assert [m.model for m in EEG] == ["NeuroGPT", "CBraMod", "BIOT", "MIRepNet", "LaBraM", "EEGPT", "NeuroRVQ"]
    assert [m.label for m in collect(TABLES["eeg"], [], tmp_path)] == [m.label for m in EEG]


def test_published_mean_convention_matches_the_readme():
    keys = [r.key for r in TABLES["eeg"].rows]
    neurorvq = next(m for m in EEG if m.model == "NeuroRVQ")
    values = [neurorvq.score(k).mean for k in keys]
    assert sum(values) / 5 == pytest.approx(0.749, abs=5e-4)  # (0.700+0.876+0.574+0.728+0.869)/5
    for model in EEG:  # every published Mean = mean of the task means ± mean of the task stds, to the rounding
        if model.mean is None:
            continue
        scores = [model.score(k) for k in keys]
        assert sum(s.mean for s in scores) / 5 == pytest.approx(model.mean.mean, abs=1.5e-3), model.model
        assert sum(s.std for s in scores) / 5 == pytest.approx(model.mean.std, abs=1.5e-3), model.model
    partial = type(neurorvq)("X", {"motor": Score(0.5, 0.1)}, mean=None)
    assert published_mean(partial, keys) is None


def test_a_one_split_row_has_no_spread_over_folds_but_over_seeds(tmp_path):
    one = run_cells(write_run(tmp_path / "one", {0: {0: (0.7, 0.8)}}), expected_folds=1)["balanced_accuracy"]
    assert (one.mean, one.std, one.spread, one.text()) == (pytest.approx(0.7), None, "seeds", "0.700 (1 split)")
    three = run_cells(write_run(tmp_path / "three", {0: {0: (0.6, 0.7), 1: (0.7, 0.8), 2: (0.8, 0.9)}}),
                      expected_folds=1)["balanced_accuracy"]
    assert three.std == pytest.approx(0.0816497, abs=1e-6)  # population std over the three seeds
    assert three.text() == "0.700 ± 0.082 (1 split, ± over 3 seeds)"


def test_report_of_folds_and_one_split_rows_with_notes(tmp_path, capsys):
    (tmp_path / "folds.json").write_text(json.dumps({"format": "neurorvq-split", "version": 1, "by": "subject",
                                                     "folds": {"0": [1], "1": [2]}}))
    (tmp_path / "parts.json").write_text(json.dumps({"format": "neurorvq-split", "version": 1, "by": "session",
                                                     "splits": {"train": ["T"], "test": ["E"]}}))
    (tmp_path / "table.yaml").write_text("""table: t
rows:
  - {key: a, task: Folds, recipe: a.yaml, split: folds.json, note: "LOSO [I]"}
  - {key: b, task: Parts, recipe: b.yaml, split: parts.json, group_by: session, undetermined: "which classes"}
published:
  - {model: NeuroRVQ, source: test, metric: accuracy, scores: {b: 0.7}}
""")
    table = read_table(tmp_path / "table.yaml")
    out = tmp_path / "out"
    write_run(out / "t" / "a" / "fm", {0: {0: (0.8, 0.85), 1: (0.8, 0.85)}, 1: {0: (0.6, 0.65), 1: (0.6, 0.65)}})
    write_run(out / "t" / "b" / "fm", {0: {0: (0.5, 0.55), 1: (0.7, 0.75)}})
    files = write_report(table, [ModelEntry("fm", "our FM", fm="x.pt")], out, "parity", figure=False)["files"]
    text = files["markdown"].read_text()
    assert "| model | Folds | Parts (undetermined) | Mean |" in text
    assert "| our FM | 0.700 ± 0.100 | 0.600 ± 0.100 (1 split, ± over 2 seeds) | 0.650 |" in text  # mixed ±: none
    assert "| NeuroRVQ (published) | — | 0.700 | — |" in text  # accuracy table
    assert "Folds per task: Folds 2, Parts 1 split" in text
    assert "Parts: one published split (train/test parts, run as one fold)" in text
    assert "Parts (undetermined): which classes." in text and "Folds: LOSO [I]." in text
    rows = list(csv.DictReader(open(files["csv"])))
    line, = [r for r in rows if (r["row"], r["metric"], r["source"]) == ("b", "balanced_accuracy", "ours")]
    assert (line["spread"], line["folds"], line["seeds"], line["std"]) == ("seeds", "1", "0 1", "0.100000")
    assert capsys.readouterr().out.startswith("# t")
