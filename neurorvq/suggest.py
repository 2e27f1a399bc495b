""""Did you mean" for misspelt names (recipe fields, options, commands)."""

from __future__ import annotations

import difflib
from typing import Iterable


def close_matches(name: str, choices: Iterable[str], n: int = 3) -> list[str]:
    """Up to ``n`` of ``choices`` closest to ``name`` (difflib's ratio >= 0.6), best first."""
    return difflib.get_close_matches(str(name), [str(c) for c in choices], n=n, cutoff=0.6)


def did_you_mean(name: str, choices: Iterable[str], n: int = 2) -> str:
    """``"; did you mean 'x'?"`` (or ``'x' or 'y'``) for the ``n`` closest choices, ``""`` when none is close."""
    close = close_matches(name, choices, n)
    return f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


__all__ = ["close_matches", "did_you_mean"]
