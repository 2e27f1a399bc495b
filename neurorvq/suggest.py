""""Did you mean" for misspelt names (recipe fields, options, commands)."""

from __future__ import annotations

import difflib
from typing import Iterable


def close_matches(name: str, choices: Iterable[str], n: int = 3) -> list[str]:
    """Up to ``n`` of ``choices`` closest to ``name``: those it begins (an abbreviation of 3+ characters), then
    difflib's closest (ratio >= 0.6), best first."""
    options = [str(c) for c in choices]
    stem = str(name).lstrip("-")
    started = [c for c in options if len(stem) >= 3 and c.lstrip("-").startswith(stem) and c != name]
    close = difflib.get_close_matches(str(name), options, n=n, cutoff=0.6)
    return list(dict.fromkeys(started + close))[:n]


def did_you_mean(name: str, choices: Iterable[str], n: int = 2) -> str:
    """``"; did you mean 'x'?"`` (or ``'x' or 'y'``) for the ``n`` closest choices, ``""`` when none is close."""
    close = close_matches(name, choices, n)
    return f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


__all__ = ["close_matches", "did_you_mean"]
