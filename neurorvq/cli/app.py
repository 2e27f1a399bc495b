"""The ``neurorvq`` entry point: one list of subcommands, ``--help``, ``--version`` and errors a user can fix.

Every subcommand has a one-line purpose in :data:`COMMANDS` and its own ``--help``. The training subcommands
(``fit``, ``validate``, ``test``, ``predict``) are LightningCLI's (:mod:`neurorvq.cli.lightning_cli`); the others
parse their options with jsonargparse, strictly (:mod:`neurorvq.cli.parsing`): ``tokenize``, ``reconstruct``,
``demo`` (:mod:`neurorvq.cli.project`), ``compare-tokenizers`` (:mod:`neurorvq.cli.compare`), ``cv`` and
``cv-report`` (:mod:`neurorvq.crossval.command`; ``cv`` hands the recipe's dotted overrides, ``--model...``,
``--trainer...``, to LightningCLI) and ``benchmark`` (:mod:`neurorvq.cli.benchmark`: a paper table through ``cv``).

A user's mistake — a :class:`~neurorvq.errors.NeuroRVQError` (config, input or checkpoint error) — prints one
message and exits with status 2, without a traceback; ``--debug`` (anywhere on the line) or ``NEURORVQ_DEBUG=1``
lets the exception through with its traceback. :func:`run` is the same without the guard, for programs and tests.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Callable, Sequence

from neurorvq.errors import NeuroRVQError
from neurorvq.suggest import did_you_mean

USER_ERROR_STATUS = 2


@dataclass(frozen=True)
class Command:
    """A subcommand: its one-line ``purpose`` (shown by ``neurorvq --help``) and ``run(argv) -> exit status``."""

    purpose: str
    run: Callable[[list[str]], int]
    group: str


def _lightning(subcommand: str) -> Callable[[list[str]], int]:
    def run(argv: list[str]) -> int:
        from neurorvq.cli.lightning_cli import run_lightning_cli

        run_lightning_cli([subcommand, *argv])
        return 0

    return run


def _project(command: str) -> Callable[[list[str]], int]:
    def run(argv: list[str]) -> int:
        from neurorvq.cli.project import run_project_command

        return run_project_command(command, argv)

    return run


def _cv(argv: list[str]) -> int:
    from neurorvq.crossval.command import run_cv_command

    return run_cv_command(argv)


def _cv_report(argv: list[str]) -> int:
    from neurorvq.crossval.command import run_report_command

    return run_report_command(argv)


def _benchmark(argv: list[str]) -> int:
    from neurorvq.cli.benchmark import run_benchmark_command

    return run_benchmark_command(argv)


def _compare(argv: list[str]) -> int:
    from neurorvq.cli.compare import run_compare_command

    return run_compare_command(argv)


TRAIN, TOKENS, EVALUATE = "train and evaluate a recipe", "tokens and reconstructions", "cross-validation"
COMMANDS: dict[str, Command] = {
    "fit": Command("train a recipe (tokenizer, FM pretraining, fine-tuning): --config recipes/<name>.yaml",
                   _lightning("fit"), TRAIN),
    "validate": Command("run a recipe's validation loop on a checkpoint (--ckpt_path)", _lightning("validate"), TRAIN),
    "test": Command("run a recipe's test loop on a checkpoint (--ckpt_path)", _lightning("test"), TRAIN),
    "predict": Command("run a recipe's predict loop on a checkpoint (--ckpt_path)", _lightning("predict"), TRAIN),
    "tokenize": Command("write the token ids of a dataset split to shards (for generative models; several devices)",
                        _project("tokenize"), TOKENS),
    "reconstruct": Command("reconstruct a dataset split: per-band MSE, codebook usage and a figure",
                           _project("reconstruct"), TOKENS),
    "demo": Command("encode and reconstruct generated signals with a fresh tokenizer (no data needed)",
                    _project("demo"), TOKENS),
    "compare-tokenizers": Command("reconstruct the same windows with several tokenizers: Table 1 per-band MSE, "
                                  "bits/s, codebook usage", _compare, TOKENS),
    "cv": Command("subject-independent cross-validation of a fine-tuning recipe or baseline (resumable)", _cv,
                  EVALUATE),
    "cv-report": Command("tables of finished cv runs: side by side, --paired difference, --curve", _cv_report,
                         EVALUATE),
    "benchmark": Command("a paper's table (--table eeg) on the official folds, beside the published numbers "
                         "(--list: tables, datasets)", _benchmark, EVALUATE),
}


def version_text() -> str:
    """``neurorvq <version> (torch <v>, lightning <v>, python <v>)``."""
    from importlib import metadata

    from neurorvq import __version__

    parts = []
    for package in ("torch", "lightning"):
        try:
            parts.append(f"{package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:
            parts.append(f"{package} not installed")
    parts.append(f"python {sys.version.split()[0]}")
    return f"neurorvq {__version__} ({', '.join(parts)})"


def help_text() -> str:
    """The top-level help: usage, every subcommand grouped with its purpose, where to read more."""
    width = max(len(name) for name in COMMANDS)
    lines = ["usage: neurorvq <command> [options]   (neurorvq <command> --help for a command's options)", "",
             "NeuroRVQ biosignal tokenizers and foundation models (EEG, ECG, EMG) on PyTorch Lightning.", ""]
    for group in dict.fromkeys(c.group for c in COMMANDS.values()):
        lines.append(f"{group}:")
        lines += [f"  {name.ljust(width)}  {c.purpose}" for name, c in COMMANDS.items() if c.group == group]
        lines.append("")
    lines += ["options:", "  -h, --help     show this list and exit", "  -V, --version  show the versions and exit",
              "  --debug        show the full traceback of an error (also NEURORVQ_DEBUG=1)", "",
              "example: neurorvq fit --config recipes/quickstart.yaml   (README.md, docs/training.md)"]
    return "\n".join(lines)


def _debug_requested(args: list[str]) -> bool:
    return "--debug" in args or os.environ.get("NEURORVQ_DEBUG", "").lower() in ("1", "true", "yes")


def run(argv: Sequence[str]) -> int:
    """Run one ``neurorvq`` command line (without the program name); exceptions propagate."""
    args = [a for a in argv if a != "--debug"]
    if not args or args[0] in ("-h", "--help", "help"):
        print(help_text())
        return 0
    if args[0] in ("-V", "--version"):
        print(version_text())
        return 0
    command = COMMANDS.get(args[0])
    if command is None:
        from neurorvq.errors import ConfigError

        raise ConfigError(f"unknown command {args[0]!r}{did_you_mean(args[0], COMMANDS)} "
                          "(`neurorvq --help` lists the commands)")
    return int(command.run(args[1:]) or 0)


def user_error(error: BaseException) -> NeuroRVQError | None:
    """The :class:`NeuroRVQError` behind ``error``: itself, or one in its ``__cause__`` chain (a recipe's class
    raising while jsonargparse instantiates it arrives wrapped in jsonargparse's ValueError)."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, NeuroRVQError):
            return error
        seen.add(id(error))
        # only a declared cause (`raise ... from`, as jsonargparse wraps a recipe class's error): an exception
        # raised while another was being handled (e.g. during clean-up) stays a bug, with its traceback
        error = error.__cause__
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """The console entry point: :func:`run` with a user's mistakes printed as one line (exit status 2)."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        return run(args)
    except Exception as raised:  # noqa: BLE001 - only our own errors are caught; the rest is re-raised
        error = user_error(raised)
        if error is None or _debug_requested(args):
            raise
        name = args[0] if args and args[0] in COMMANDS else ""
        print(f"neurorvq{' ' + name if name else ''}: error: {error}", file=sys.stderr)
        print("(run again with --debug for the traceback)", file=sys.stderr)
        return USER_ERROR_STATUS


__all__ = ["COMMANDS", "Command", "help_text", "main", "run", "user_error", "version_text"]
