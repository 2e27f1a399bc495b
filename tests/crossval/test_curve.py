"""The pretraining curve (cv-report --curve): per-fold scores, intervals and paired differences with the first
point, computed by hand; the figure; bad points."""

from __future__ import annotations

import math

import pytest

from neurorvq.cli import main
from neurorvq.crossval.curve import curve_points, parse_point
from neurorvq.errors import ConfigError

from test_report import T_975_2, record, write_run


@pytest.fixture()
def points(tmp_path):
    # scratch (seed 0): 0.4, 0.5, 0.6; 15 epochs: seed 0 = scratch + 0.1, 0.0, 0.2, seed 1 = 0.9 everywhere
    scratch = write_run(tmp_path / "scratch", [record(k, v, seed=0) for k, v in enumerate((0.4, 0.5, 0.6))],
                        "scratch", per_seed=True)
    rows = [record(k, v, seed=0) for k, v in enumerate((0.5, 0.5, 0.8))] + [record(k, 0.9, seed=1) for k in range(3)]
    pretrained = write_run(tmp_path / "fm15", rows, "FM", per_seed=True)
    return scratch, pretrained


def test_curve_by_hand_on_one_seed(points):
    scratch, pretrained = points
    first, last = curve_points([(0, scratch), (15, pretrained)], seeds=[0])
    assert first["per_fold"] == {0: 0.4, 1: 0.5, 2: 0.6} and first["vs_first"] is None
    assert last["per_fold"] == {0: 0.5, 1: 0.5, 2: 0.8} and last["seeds"] == [0]
    # differences 0.1, 0.0, 0.2: mean 0.1, sd 0.1, half width t * 0.1 / sqrt(3)
    half = T_975_2 * 0.1 / math.sqrt(3)
    assert math.isclose(last["vs_first"]["mean_difference"], 0.1)
    assert all(math.isclose(a, b, abs_tol=1e-6) for a, b in zip(last["vs_first"]["ci"], (0.1 - half, 0.1 + half)))
    both = curve_points([(0, scratch), (15, pretrained)])[1]  # every seed: per-fold means over seeds 0 and 1
    assert math.isclose(both["per_fold"][2], 0.85) and both["seeds"] == [0, 1]


def test_cv_report_curve_writes_table_and_figure(points, tmp_path, capsys):
    scratch, pretrained = points
    figure = tmp_path / "curve.png"
    main(["cv-report", "--curve", f"0={scratch}", f"15={pretrained}", "--seeds", "0", "--figure", str(figure),
          "--reference", str(scratch), "--chance", "0.33"])
    out = capsys.readouterr().out
    assert "| 15 | 0.500 | 0.500 | 0.800 | 0.600 |" in out and "+0.100" in out
    assert figure.is_file() and 5_000 < figure.stat().st_size < 200_000


def test_bad_points(points, tmp_path):
    scratch, _ = points
    with pytest.raises(ConfigError, match="X=FOLDER"):
        parse_point("scratch")
    with pytest.raises(ConfigError, match="at least two points"):
        curve_points([(0, scratch)])
    with pytest.raises(ConfigError, match="no finished cv record"):
        curve_points([(0, scratch), (5, tmp_path / "empty")])
    other = write_run(tmp_path / "other", [record(k, 0.5, seed=0, subjects=["sub7"]) for k in range(3)], "x", True)
    with pytest.raises(ConfigError, match="folds differ"):
        curve_points([(0, scratch), (5, other)])
