"""Argument helpers shared by the jsonargparse subcommands: recipe overrides passed through, repeatable options,
strict parsing with "did you mean"."""

from __future__ import annotations

import re
from typing import Any, Sequence

from neurorvq.errors import ConfigError
from neurorvq.suggest import did_you_mean

RECIPE_ROOTS = ("model", "data", "trainer", "seed_everything", "optimizer", "lr_scheduler")
"""First key of a LightningCLI recipe override (``--trainer.max_epochs=3``, ``--model=other.yaml``)."""


def split_recipe_overrides(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """``(own options, recipe overrides)``: an argument whose key starts with one of :data:`RECIPE_ROOTS` is an
    override (with its value: ``--key=value`` or ``--key value``); everything else is the command's own."""
    own, overrides = [], []
    args = list(argv)
    i = 0
    while i < len(args):
        arg = args[i]
        key = arg[2:].split("=", 1)[0].removesuffix("+") if arg.startswith("--") else ""
        if key and re.split(r"[.=]", key)[0] in RECIPE_ROOTS:
            overrides.append(arg)
            if "=" not in arg and i + 1 < len(args) and not args[i + 1].startswith("--"):
                overrides.append(args[i + 1])
                i += 1
        else:
            own.append(arg)
        i += 1
    return own, overrides


def repeatable(argv: Sequence[str], option: str) -> list[str]:
    """``--option X`` (or ``--option=X``) given once or several times becomes jsonargparse's list append
    ``--option+ X``, so ``--grid A --grid B`` and ``--set key=value`` work as documented; a JSON list value
    (``--option '[A, B]'``) is left as it is."""
    out, args, i = [], list(argv), 0
    while i < len(args):
        arg = args[i]
        if arg == option and i + 1 < len(args) and not args[i + 1].lstrip().startswith("["):
            out += [f"{option}+", args[i + 1]]
            i += 2
            continue
        value = arg[len(option) + 1:] if arg.startswith(f"{option}=") else None
        out += [f"{option}+", value] if value is not None and not value.lstrip().startswith("[") else [arg]
        i += 1
    return out


def strict_parser(prog: str, description: str):
    """A jsonargparse parser for :func:`parse_strict`: errors are raised (not printed and exited) and options
    cannot be abbreviated (``--val`` is not ``--val_fraction``)."""
    from jsonargparse import ArgumentParser

    return ArgumentParser(prog=prog, description=description, exit_on_error=False, allow_abbrev=False)


def parse_strict(parser: Any, argv: Sequence[str]) -> Any:
    """``parser.parse_args(argv)`` for a :func:`strict_parser`; an unknown or invalid option becomes a
    :class:`ConfigError` naming it (with the closest option for a misspelt one)."""
    from argparse import ArgumentError

    try:
        return parser.parse_args(list(argv))
    except ArgumentError as error:
        message = str(error)
        unknown = re.search(r"unrecognized arguments: (--?[\w.+-]+)", message)
        hint = ""
        if unknown:
            options = [s for action in parser._actions for s in action.option_strings]  # noqa: SLF001
            hint = did_you_mean(unknown.group(1), options)
        raise ConfigError(f"{message}{hint} (`{parser.prog} --help` lists the options)") from None


__all__ = ["RECIPE_ROOTS", "parse_strict", "repeatable", "split_recipe_overrides", "strict_parser"]
