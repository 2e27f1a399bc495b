"""The ``neurorvq`` command line (:mod:`neurorvq.cli.app`): ``neurorvq --help`` lists every subcommand."""

from neurorvq.cli.app import COMMANDS, main, run

__all__ = ["COMMANDS", "main", "run"]
