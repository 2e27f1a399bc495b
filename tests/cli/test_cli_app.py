"""The neurorvq entry point: every subcommand listed with its purpose, --version, unknown commands, user errors as
one message (exit status 2) and --debug / NEURORVQ_DEBUG for the traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest

from neurorvq.cli import COMMANDS, main, run
from neurorvq.errors import ConfigError

EXPECTED = ("fit", "validate", "test", "predict", "tokenize", "reconstruct", "demo", "compare-tokenizers", "cv",
            "cv-report", "benchmark")


def test_help_lists_every_subcommand_with_its_purpose():
    out = subprocess.run([sys.executable, "-m", "neurorvq.cli", "--help"], capture_output=True, text=True, check=True)
    assert set(COMMANDS) == set(EXPECTED)
    width = max(len(name) for name in COMMANDS)
    for name, command in COMMANDS.items():
        assert f"  {name.ljust(width)}  {command.purpose}" in out.stdout
    assert "Lightning Trainer command line tool" not in out.stdout


def test_no_arguments_prints_the_list_and_version_names_the_packages(capsys):
    assert main([]) == 0 and "cv-report" in capsys.readouterr().out
    assert main(["--version"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("neurorvq 0.") and "torch " in out and "lightning " in out


def test_an_unknown_command_gets_a_suggestion(capsys):
    assert main(["fti"]) == 2
    err = capsys.readouterr().err
    assert "unknown command 'fti'; did you mean 'fit'?" in err and "Traceback" not in err


def test_debug_lets_the_error_through(monkeypatch):
    with pytest.raises(ConfigError, match="unknown command"):
        main(["fti", "--debug"])
    monkeypatch.setenv("NEURORVQ_DEBUG", "1")
    with pytest.raises(ConfigError, match="unknown command"):
        main(["fti"])
    with pytest.raises(ConfigError):  # run() never catches: for programs and tests
        run(["fti"])


def test_subcommands_have_their_own_help():
    for name in ("fit", "tokenize", "reconstruct", "demo", "cv", "cv-report"):
        out = subprocess.run([sys.executable, "-m", "neurorvq.cli", name, "--help"], capture_output=True, text=True)
        assert out.returncode == 0 and "usage" in out.stdout.lower(), name
