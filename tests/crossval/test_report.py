"""Cross-validation tables with training seeds: per-fold means, t-intervals, paired comparisons on identical folds,
both record layouts, records without a seed, extra columns. Values computed by hand in the comments."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest

from neurorvq.crossval import report
from neurorvq.crossval.report import (CAPTION, combine, markdown_table, paired_report, read_records, summarise,
                                      write_summary)
from neurorvq.crossval.stats import paired_difference, per_fold_means, t_interval
from neurorvq.errors import ConfigError

T_975_2 = 4.302653  # t(0.975, 2 degrees of freedom)
SUBJECTS = {0: ["sub1"], 1: ["sub2"], 2: ["sub3", "sub4"]}


def record(fold, ba, seed=None, name="FM", kappa=None, subjects=None, **extra):
    row = {"fold": fold, "name": name, "test_subjects": subjects or SUBJECTS[fold], "val_subjects": ["sub9"],
           "train_subjects": ["sub5", "sub6"], "windows": {"train": 90, "val": 9, "test": 18},
           "selected_epoch": 3, "wall_seconds": 12.0,
           "metrics": {"balanced_accuracy": ba, "cohen_kappa": ba - 0.3 if kappa is None else kappa,
                       "f1_weighted": ba}, **extra}
    if seed is not None:
        row["seed"] = seed
    return row


# fold 0: 0.6, 0.8 (mean 0.7); fold 1: 0.5, 0.7 (0.6); fold 2: 0.4, 0.6 (0.5)
SEEDED = [record(f, v, seed=s) for f, values in enumerate([(0.6, 0.8), (0.5, 0.7), (0.4, 0.6)])
          for s, v in enumerate(values)]
# one seed, old layout (no "seed" key): differences to SEEDED's fold means are 0.1, 0.05, 0.0
OLD = [record(0, 0.6, name="eegnet"), record(1, 0.55, name="eegnet"), record(2, 0.5, name="eegnet")]


def write_run(folder: Path, rows, name, per_seed: bool) -> Path:
    """A finished run's folder: the records (``fold_k/seed_s/metrics.json`` or ``fold_k/metrics.json``) and its
    ``summary.json``."""
    for row in rows:
        where = folder / f"fold_{row['fold']}" / (f"seed_{row.get('seed', 0)}" if per_seed else "")
        where.mkdir(parents=True, exist_ok=True)
        (where / "metrics.json").write_text(json.dumps(row))
    write_summary(rows, folder, name, "armband motions")
    return folder


def test_t_interval_by_hand():
    mean, low, high = t_interval([0.5, 0.6, 0.7])
    half = T_975_2 * 0.1 / math.sqrt(3)  # sd (ddof=1) 0.1
    assert half == pytest.approx(0.248413, abs=2e-6)
    assert (mean, low, high) == pytest.approx((0.6, 0.6 - half, 0.6 + half), abs=1e-6)
    assert t_interval([0.5]) == (0.5, None, None)  # one value: no interval
    lo90 = t_interval([0.5, 0.6, 0.7], level=0.90)[1]
    assert lo90 == pytest.approx(0.6 - 2.919986 * 0.1 / math.sqrt(3), abs=1e-6)
    with pytest.raises(ValueError):
        t_interval([])


def test_per_fold_means_over_seeds_and_the_summary():
    assert per_fold_means(SEEDED, "balanced_accuracy") == pytest.approx({0: 0.7, 1: 0.6, 2: 0.5})
    s = summarise(SEEDED)["balanced_accuracy"]
    # all six values: mean 0.6, population std sqrt((0 + .04 + .01 + .01 + .04 + 0) / 6)
    assert s["mean"] == pytest.approx(0.6) and s["std"] == pytest.approx(math.sqrt(0.1 / 6))
    assert (s["folds"], s["seeds"], s["runs"]) == (3, 2, 6)
    half = T_975_2 * 0.1 / math.sqrt(3)  # per-fold means 0.7, 0.6, 0.5
    assert s["ci95"] == pytest.approx([0.6 - half, 0.6 + half], abs=1e-6)


def test_a_missing_or_nan_metric_is_left_out_of_that_metric():
    rows = [record(0, 0.6, seed=0, auroc=None), record(0, 0.8, seed=1), record(1, 0.5, seed=0)]
    rows[1]["metrics"]["auroc"] = 0.9
    rows[2]["metrics"]["auroc"] = float("nan")
    assert per_fold_means(rows, "auroc") == {0: 0.9}
    s = summarise(rows)["auroc"]
    assert (s["mean"], s["folds"], s["runs"], s["ci95"]) == (0.9, 1, 1, None)


def test_single_fold_has_no_interval(tmp_path):
    rows = [record(0, 0.6, seed=0), record(0, 0.8, seed=1)]
    s = summarise(rows)["balanced_accuracy"]
    assert s["ci95"] is None and s["mean"] == pytest.approx(0.7) and s["std"] == pytest.approx(0.1)
    write_summary(rows, tmp_path, "FM", "t")
    text = (tmp_path / "summary.md").read_text()
    assert "| FM | t | 1×2 | 0.700±0.100 (95% CI —) |" in text
    line = list(csv.DictReader(open(tmp_path / "summary.csv")))[0]
    assert (line["ci95_low"], line["ci95_high"], line["seeds"], line["folds"]) == ("", "", "2", "1")


def test_summary_files_with_seeds(tmp_path):
    summary = write_summary(SEEDED, tmp_path, "NeuroRVQ-FM", "armband motions",
                            extra={"extra_columns": {"channel sensitivity": "0.012 (3% changed)"},
                                   "implementation": "native"},
                            sections=[("Diagnostics", "nothing unusual")])
    assert (summary["folds"], summary["seeds"], summary["runs"], summary["seed_values"]) == (3, 2, 6, [0, 1])
    assert json.loads((tmp_path / "summary.json").read_text())["implementation"] == "native"
    text = (tmp_path / "summary.md").read_text()
    assert CAPTION in text
    assert ("mean ± std over folds and seeds (population std); 95% CI: t-interval over the per-fold means across "
            "seeds (n = number of folds)") in text
    # balanced accuracy: 0.6 ± 0.129 over six runs, interval 0.6 ± 0.248 over the three fold means
    assert ("| model | task | folds | balanced accuracy | Cohen's kappa | weighted F1 | channel sensitivity |"
            in text)
    assert "| NeuroRVQ-FM | armband motions | 3×2 | 0.600±0.129 (95% CI 0.352–0.848) |" in text
    assert "| 0.012 (3% changed) |" in text
    assert "| fold | test subjects | seed | train/val/test windows |" in text
    assert "| 0 | sub1 | 1 | 90/9/18 | 0.800 |" in text
    assert "| 0 | sub1 | mean (2 seeds) |  | 0.700 |" in text
    assert text.rstrip().endswith("## Diagnostics\n\nnothing unusual")
    rows = list(csv.DictReader(open(tmp_path / "metrics_per_fold.csv")))
    assert [(r["fold"], r["seed"]) for r in rows] == [("0", "0"), ("0", "1"), ("1", "0"), ("1", "1"), ("2", "0"),
                                                      ("2", "1")]
    line = next(r for r in csv.DictReader(open(tmp_path / "summary.csv")) if r["metric"] == "balanced_accuracy")
    assert float(line["ci95_low"]) == pytest.approx(0.6 - T_975_2 * 0.1 / math.sqrt(3), abs=1e-6)
    assert (line["folds"], line["seeds"], line["runs"]) == ("3", "2", "6")


def test_records_without_seed_work_as_before(tmp_path):
    summary = write_summary(OLD, tmp_path, "eegnet", "t")
    assert (summary["folds"], summary["seeds"]) == (3, 1)
    s = summary["metrics"]["balanced_accuracy"]
    assert s["std"] == pytest.approx(math.sqrt((0.05 ** 2 * 2) / 3))  # population std of 0.6, 0.55, 0.5
    text = (tmp_path / "summary.md").read_text()
    assert "| eegnet | t | 3 | 0.550±0.041 (95% CI 0.426–0.674) |" in text  # 0.55 ± 4.302653 * 0.05 / sqrt 3
    assert "| fold | test subjects | train/val/test windows |" in text and "mean (" not in text
    rows = list(csv.DictReader(open(tmp_path / "metrics_per_fold.csv")))
    assert [r["seed"] for r in rows] == ["0", "0", "0"]


def test_extra_columns_and_unknown_keys_in_the_model_table():
    a = {"name": "FM", "task": "t", "folds": 3, "metrics": summarise(OLD), "notes": "x", "implementation": "native",
         "extra_columns": {"channel sensitivity": "0.012 (3% changed)"}}
    b = {"name": "old", "task": "t", "folds": 3,  # a summary.json from before intervals and seeds
         "metrics": {"balanced_accuracy": {"mean": 0.5, "std": 0.1, "folds": 3}}}
    table = markdown_table([a, b])
    assert "| model | task | folds | balanced accuracy | Cohen's kappa | weighted F1 | channel sensitivity |" in table
    assert table.splitlines()[-1] == "| old | t | 3 | 0.500±0.100 | — | — | — |"
    assert "| 0.012 (3% changed) |" in table.splitlines()[-2]
    assert CAPTION not in markdown_table([b], with_caption=False)


def test_read_records_finds_both_layouts(tmp_path):
    write_run(tmp_path / "a", SEEDED, "FM", per_seed=True)
    # a fold_k/metrics.json beside the per-seed records: the per-seed record of the same (fold, seed) wins
    (tmp_path / "a" / "fold_0" / "metrics.json").write_text(json.dumps(record(0, 0.1, seed=0)))
    bare = record(1, 0.9)  # no fold/seed keys: taken from the folder names
    del bare["fold"]
    (tmp_path / "a" / "fold_1" / "seed_7").mkdir()
    (tmp_path / "a" / "fold_1" / "seed_7" / "metrics.json").write_text(json.dumps(bare))
    rows = read_records(tmp_path / "a")
    assert [(r["fold"], r["seed"]) for r in rows] == [(0, 0), (0, 1), (1, 0), (1, 1), (1, 7), (2, 0), (2, 1)]
    assert rows[0]["metrics"]["balanced_accuracy"] == 0.6
    write_run(tmp_path / "b", OLD, "eegnet", per_seed=False)
    assert [r["fold"] for r in read_records(tmp_path / "b")] == [0, 1, 2]
    assert read_records(tmp_path / "empty") == []


def test_paired_difference_by_hand():
    result = paired_difference(SEEDED, OLD, "balanced_accuracy")
    assert [f["difference"] for f in result["folds"]] == pytest.approx([0.1, 0.05, 0.0])
    assert [(f["seeds_a"], f["seeds_b"]) for f in result["folds"]] == [(2, 1)] * 3
    half = T_975_2 * 0.05 / math.sqrt(3)  # sd of the differences 0.05
    assert result["mean_difference"] == pytest.approx(0.05) and result["n"] == 3
    assert result["ci"] == pytest.approx([0.05 - half, 0.05 + half], abs=1e-6)


def test_paired_report_on_folders_of_both_layouts(tmp_path):
    a = write_run(tmp_path / "fm", SEEDED, "NeuroRVQ-FM", per_seed=True)
    b = write_run(tmp_path / "eegnet", OLD, "eegnet", per_seed=False)
    text = paired_report(a, b)
    assert "| fold | test subjects | A: NeuroRVQ-FM | B: eegnet | A − B |" in text
    assert "| 0 | sub1 | 0.700 | 0.600 | +0.100 |" in text
    assert "| 2 | sub3, sub4 | 0.500 | 0.500 | +0.000 |" in text
    assert "(A: 2 seeds, B: 1 seed)" in text
    # 0.05 ± 4.302653 * 0.05 / sqrt 3 = 0.05 ± 0.124207
    assert text.endswith("mean difference +0.050 (95% CI -0.074–0.174, t-interval over 3 folds; "
                         "paired on identical folds)")
    kappa = paired_report(a, b, metric="cohen_kappa")
    assert "Paired comparison of Cohen's kappa" in kappa and "mean difference +0.050" in kappa
    # the same name in both runs: the folders tell them apart
    assert f"A: NeuroRVQ-FM ({a})" in paired_report(a, a)
    with pytest.raises(ConfigError, match="metric is 'precision'"):  # (plain accuracy is a metric)
        paired_report(a, b, metric="precision")
    with pytest.raises(ConfigError, match="holds no fold_"):
        paired_report(a, tmp_path / "nothing")


def test_paired_comparison_refuses_different_folds(tmp_path):
    moved = [record(0, 0.6), record(1, 0.55, subjects=["sub3"]), record(2, 0.5)]
    with pytest.raises(ConfigError, match=r"fold 1 tests \['sub2'\] in A but \['sub3'\] in B"):
        paired_difference(SEEDED, moved, "balanced_accuracy")
    with pytest.raises(ConfigError, match="fold 2 is in A but not in B"):
        paired_difference(SEEDED, OLD[:2], "balanced_accuracy")
    a = write_run(tmp_path / "fm", SEEDED, "FM", per_seed=True)
    b = write_run(tmp_path / "other", moved, "eegnet", per_seed=False)
    with pytest.raises(ConfigError, match=r"fold 1 tests .* in A \(FM\) but .* in B \(eegnet\)"):
        paired_report(a, b)


def test_combine_seeded_and_old_runs(tmp_path):
    a = write_run(tmp_path / "fm", SEEDED, "NeuroRVQ-FM", per_seed=True)
    b = write_run(tmp_path / "eegnet", OLD, "eegnet", per_seed=False)
    # an old summary.json (no intervals, no seeds): recomputed from its records
    old = json.loads((b / "summary.json").read_text())
    old["metrics"] = {m: {"mean": s["mean"], "std": s["std"], "folds": s["folds"]} for m, s in old["metrics"].items()}
    (b / "summary.json").write_text(json.dumps(old))
    table = combine([a, b])
    assert CAPTION in table
    assert "| NeuroRVQ-FM | armband motions | 3×2 | 0.600±0.129 (95% CI 0.352–0.848) |" in table
    assert "| eegnet | armband motions | 3 | 0.550±0.041 (95% CI 0.426–0.674) |" in table
    assert "identical folds" not in table
    c = write_run(tmp_path / "moved", [record(0, 0.6), record(1, 0.5, subjects=["sub3"])], "moved", per_seed=False)
    assert "did not use identical folds" in combine([a, c])
    with pytest.raises(ConfigError, match="holds no summary.json"):
        combine([tmp_path / "nothing"])


def test_module_exports():
    for name in ("paired_report", "read_records", "markdown_table", "summarise", "write_summary", "combine"):
        assert name in report.__all__
