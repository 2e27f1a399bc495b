"""The jsonargparse subcommands' argument helpers: recipe overrides passed through, repeatable options, strict
parsing with a suggestion; cv's own options are checked (a misspelt one is not sent to the recipe)."""

from __future__ import annotations

from pathlib import Path

import pytest

from neurorvq.cli.parsing import parse_strict, repeatable, split_recipe_overrides
from neurorvq.crossval.command import cv_parser
from neurorvq.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def test_recipe_overrides_are_split_off_with_their_values():
    own, overrides = split_recipe_overrides(
        ["--config", "r.yaml", "--trainer.max_epochs", "3", "--seeds", "0", "1", "--model.init_args.fm=x.ckpt",
         "--model=other.yaml", "--seed_everything=4", "--trainer.callbacks+=A", "--grid", "a=[1]"])
    assert own == ["--config", "r.yaml", "--seeds", "0", "1", "--grid", "a=[1]"]
    assert overrides == ["--trainer.max_epochs", "3", "--model.init_args.fm=x.ckpt", "--model=other.yaml",
                         "--seed_everything=4", "--trainer.callbacks+=A"]


def test_repeated_options_append_and_json_lists_stay():
    assert repeatable(["--grid", "a=[1, 2]", "--grid=b=[3]", "--out", "x"], "--grid") == \
        ["--grid+", "a=[1, 2]", "--grid+", "b=[3]", "--out", "x"]
    assert repeatable(["--set", "[root=x, seed=1]"], "--set") == ["--set", "[root=x, seed=1]"]


def test_cv_options_parse_and_misspelt_ones_are_named():
    args = parse_strict(cv_parser(), repeatable(["--config", "r.yaml", "--seeds", "0", "1", "--grid", "a=[1, 2]",
                                                 "--allow_missing_classes"], "--grid"))
    assert args.seeds == [0, 1] and args.grid == ["a=[1, 2]"] and args.allow_missing_classes
    with pytest.raises(ConfigError, match=r"unrecognized arguments: --folds_fle.*did you mean '--folds_file'"):
        parse_strict(cv_parser(), ["--config", "r.yaml", "--folds_fle", "x"])
    with pytest.raises(ConfigError, match=r"invalid choice: 'eegnett'"):
        parse_strict(cv_parser(), ["--config", "r.yaml", "--baseline", "eegnett"])


def test_cv_typo_is_one_message(capsys, cli_error):
    err = cli_error(["cv", "--config", str(REPO / "recipes/finetune/semg_armband.yaml"), "--sedes", "0"])
    assert "--sedes" in err and "did you mean '--seeds'" in err


def test_set_key_value_as_documented():
    from neurorvq.cli.project import project_parser

    argv = ["--ckpt", "c.ckpt", "--data", "d.yaml", "--set", "root=/x", "--set", "seed=1"]
    assert parse_strict(project_parser("reconstruct"), repeatable(argv, "--set")).set == ["root=/x", "seed=1"]
