"""The row window cache of neurorvq benchmark, as the runs get it (nothing loads here): every model of a row gets
``--data.init_args.cache_dir=<out>/<table>/<row>/window_cache`` right after its data root, left out of the run's
identity (so cv.json is that of a run without it); ``--cache false``, a recipe or an override that sets cache_dir
pass none; a model labelled like the cache folder and --cache with the reconstruction table are errors. The runs
themselves (built once per row, read by the second model, old runs resumed) are in test_end_to_end.py."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from benchmark_data import write_table
from neurorvq.benchmarks.run import (CACHE_FOLDER, BenchmarkCV, BenchmarkSettings, cv_settings, model_entries,
                                     plan_jobs)
from neurorvq.benchmarks.tables import get_table
from neurorvq.cli.benchmark import benchmark_parser
from neurorvq.crossval.runner import CVSettings
from neurorvq.errors import ConfigError


@pytest.fixture()
def tables(tmp_path) -> Path:
    write_table(tmp_path / "tables")
    return tmp_path / "tables"


def _runs(tables: Path, out: Path, **options) -> dict[tuple[str, str], BenchmarkCV]:
    settings = BenchmarkSettings(get_table(str(tables / "table.yaml")), model=str(tables / "tiny.yaml"),
                                 baselines=["logpower"], out=out, **options)
    entries = model_entries(settings.model, settings.name, settings.baselines)
    return {(job.row.key, job.entry.slug): cv_settings(settings, job) for job in plan_jobs(settings, entries)}


def test_every_model_of_a_row_shares_its_cache_outside_the_runs_identity(tables, tmp_path):
    runs = _runs(tables, tmp_path / "out")
    plain = _runs(tables, tmp_path / "out", cache=False)
    assert set(runs) == {(row, model) for row in ("eyes", "imagery") for model in ("tiny", "logpower")}
    for (row, model), cv in runs.items():
        option = f"--data.init_args.cache_dir={tmp_path / 'out' / 'two-tasks' / row / CACHE_FOLDER}"
        assert cv.overrides[0].startswith("--data.init_args.root=") and cv.overrides[1] == option
        assert cv.window_cache == option and isinstance(cv, CVSettings)
        assert option not in plain[(row, model)].overrides and plain[(row, model)].window_cache is None
        assert cv.identity() == plain[(row, model)].identity()  # cv.json as before the cache
        assert option in replace(cv, window_cache=None).identity()["overrides"]
        # the runner's replace() for a baseline keeps the subclass and what it leaves out
        assert replace(cv, recipe="other.yaml").identity()["overrides"] == plain[(row, model)].identity()["overrides"]


def test_a_cache_dir_of_the_recipe_or_an_override_is_left_alone(tables, tmp_path):
    given = "--data.init_args.cache_dir=/elsewhere/cache"
    runs = _runs(tables, tmp_path / "out", overrides=[given])
    assert all(cv.window_cache is None and cv.overrides.count(given) == 1 and not any(
        CACHE_FOLDER in o for o in cv.overrides) for cv in runs.values())
    assert all(given in cv.identity()["overrides"] for cv in runs.values())  # the user's own: part of the run
    recipe = tables / "eyes.yaml"
    recipe.write_text(recipe.read_text().replace("    batch_size: 8\n", "    batch_size: 8\n    cache_dir: null\n"))
    runs = _runs(tables, tmp_path / "out")
    assert runs[("eyes", "logpower")].window_cache is None and runs[("imagery", "logpower")].window_cache


def test_a_model_named_like_the_cache_folder_is_refused(tables, tmp_path):
    with pytest.raises(ConfigError, match="would write into the row's window cache folder 'window_cache'"):
        _runs(tables, tmp_path / "out", name=CACHE_FOLDER)
    assert set(_runs(tables, tmp_path / "out", name=CACHE_FOLDER, cache=False)) >= {("eyes", CACHE_FOLDER)}


def test_the_option_and_its_help(cli_error):
    text = benchmark_parser().format_help()
    assert "--cache {true,false}" in text and "<out>/<table>/<row>/window_cache" in " ".join(text.split())
    assert "--cache applies to the fine-tuning tables" in cli_error(
        ["benchmark", "--table", "recon", "--model", "t", "--cache", "false"])
