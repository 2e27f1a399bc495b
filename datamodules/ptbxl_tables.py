"""PTB-XL's two label tables (``ptbxl_database.csv``, ``scp_statements.csv``): reading them, the diagnostic
statements and their classes, and a record's labels (``neurorvq.datamodules.ptbxl_tables``; the DataModule is
:mod:`neurorvq.datamodules.ptbxl`, whose docstring describes the label modes).

``scp_codes`` (a Python dict literal, statement -> likelihood in %) is parsed by :func:`parse_scp_codes`; the
superclasses of a record (:func:`superclasses`) feed the project's ``superclass_single`` mode; the **top diagnostic
statement** (:func:`top_statement`: the highest likelihood, dict order, strict ``>``, 0 % counts) feeds the
benchmark's modes, whose classes (statement, subclass or superclass) :class:`DiagnosticStatements` gives in label
order. :func:`count_top_statements` counts records per class from the CSVs alone: the tool that settles the
"43-class" question on the real data.
"""

from __future__ import annotations

import ast
import csv
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from neurorvq.data.preprocess import DataError
from neurorvq.errors import ConfigError

SUPERCLASSES: tuple[str, ...] = ("NORM", "MI", "STTC", "CD", "HYP")
"""Diagnostic superclasses in label order."""
TOP_STATEMENT_LEVELS: dict[str, str] = {"top_statement_superclass": "diagnostic_class",
                                        "top_statement_subclass": "diagnostic_subclass",
                                        "top_statement": "statement"}
"""Label modes of the benchmark's labelling -> what of the top diagnostic statement is the class."""
DATABASE_CSV = "ptbxl_database.csv"
STATEMENTS_CSV = "scp_statements.csv"
DATABASE_COLUMNS = ("ecg_id", "patient_id", "scp_codes", "strat_fold", "filename_lr", "filename_hr")
"""Columns of ``ptbxl_database.csv`` this module reads."""
STATEMENT_COLUMNS = ("diagnostic", "diagnostic_class")
"""Columns of ``scp_statements.csv`` every labelled mode reads (besides the first, the statement code);
``top_statement_subclass`` also reads ``diagnostic_subclass``."""
NO_STATEMENT = "None"
"""Key of :func:`count_top_statements` for the records without a diagnostic statement (the official label)."""


def parse_scp_codes(text: str) -> dict[str, float]:
    """``"{'NORM': 100.0, 'SR': 0.0}"`` -> ``{'NORM': 100.0, 'SR': 0.0}``; :class:`DataError` unless the text is a
    dict literal of statement code -> number."""
    try:
        value = ast.literal_eval(str(text).strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as exc:
        raise DataError(f"unparsable scp_codes {str(text)[:80]!r} ({type(exc).__name__})") from exc
    if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool) for k, v in value.items()):
        raise DataError(f"unparsable scp_codes {str(text)[:80]!r}: expected a dict of statement code -> likelihood")
    return {k.strip(): float(v) for k, v in value.items()}


def _statement_rows(path: Path, columns: Sequence[str]) -> Iterable[tuple[str, dict[str, str]]]:
    """``(code, {column: value})`` per row of ``scp_statements.csv`` with a code; :class:`DataError` for an empty
    file or missing columns."""
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        try:
            header = next(reader)
        except StopIteration:
            raise DataError(f"{path}: empty file") from None
        missing = [c for c in columns if c not in header]
        if missing:
            raise DataError(f"{path}: missing column(s) {missing} (columns: {header})")
        index = {c: header.index(c) for c in columns}
        for row in reader:
            if not row or not row[0].strip():
                continue
            yield row[0].strip(), {c: (row[i].strip() if i < len(row) else "") for c, i in index.items()}


def _is_diagnostic(path: Path, code: str, value: str) -> bool:
    """``diagnostic == 1`` as pandas reads it (empty = NaN = not diagnostic)."""
    try:
        return float(value) == 1.0 if value else False
    except ValueError:
        raise DataError(f"{path}: statement {code!r} has diagnostic={value!r}, not 1 or empty") from None


def diagnostic_classes(path: str | Path) -> dict[str, str]:
    """Statement code -> diagnostic superclass, for the statements of ``scp_statements.csv`` with
    ``diagnostic == 1`` (and a superclass among :data:`SUPERCLASSES`)."""
    path = Path(path)
    table = {}
    for code, values in _statement_rows(path, STATEMENT_COLUMNS):
        if _is_diagnostic(path, code, values["diagnostic"]) and values["diagnostic_class"] in SUPERCLASSES:
            table[code] = values["diagnostic_class"]
    return table


def superclasses(codes: dict[str, float], table: dict[str, str], min_likelihood: float = 0.0) -> list[str]:
    """Distinct superclasses (in :data:`SUPERCLASSES` order) of ``codes`` whose likelihood is >= ``min_likelihood``."""
    found = {table[c] for c, likelihood in codes.items() if c in table and likelihood >= min_likelihood}
    return [s for s in SUPERCLASSES if s in found]


@dataclass(frozen=True)
class DiagnosticStatements:
    """The diagnostic statements of ``scp_statements.csv`` (``diagnostic == 1``; 44 in PTB-XL 1.0.3).

    codes: statement codes in file order. groups: ``{"diagnostic_class": {code: class}, "diagnostic_subclass":
    {code: subclass}}`` (a level the file lacks is absent). path: the file, for messages.
    """

    codes: tuple[str, ...]
    groups: Mapping[str, Mapping[str, str]]
    path: str = ""

    def class_of(self, code: str, level: str) -> str:
        """The class of diagnostic statement ``code`` at ``level`` (``statement``, ``diagnostic_class`` or
        ``diagnostic_subclass``); :class:`DataError` when the file gives it none."""
        if level == "statement":
            return code
        if level not in self.groups:
            raise DataError(f"{self.path}: missing column {level!r}, needed to label by the top statement's {level}")
        name = self.groups[level].get(code, "")
        if not name:
            raise DataError(f"{self.path}: diagnostic statement {code!r} has an empty {level}")
        return name

    def class_names(self, level: str) -> tuple[str, ...]:
        """Every class of ``level`` in label order: statements and subclasses in file order (first appearance),
        superclasses in :data:`SUPERCLASSES` order (others after them, in file order)."""
        names = list(dict.fromkeys(self.class_of(code, level) for code in self.codes))
        if level == "diagnostic_class":
            names = [s for s in SUPERCLASSES if s in names] + [s for s in names if s not in SUPERCLASSES]
        return tuple(names)


def read_statements(path: str | Path) -> DiagnosticStatements:
    """The diagnostic statements of ``scp_statements.csv`` at ``path`` (:class:`DiagnosticStatements`);
    :class:`DataError` for a file without the columns ``diagnostic`` and ``diagnostic_class`` or without any
    diagnostic statement (``diagnostic_subclass`` is read when present)."""
    path = Path(path)
    with open(path, newline="", encoding="utf-8") as f:
        header = next(csv.reader(f), [])
    levels = ["diagnostic_class"] + (["diagnostic_subclass"] if "diagnostic_subclass" in header else [])
    codes: list[str] = []
    groups: dict[str, dict[str, str]] = {level: {} for level in levels}
    for code, values in _statement_rows(path, ["diagnostic", *levels]):
        if _is_diagnostic(path, code, values["diagnostic"]) and code not in groups["diagnostic_class"]:
            codes.append(code)
            for level in levels:
                groups[level][code] = values[level]
    if not codes:
        raise DataError(f"{path}: no statement has diagnostic == 1; is this PTB-XL's scp_statements.csv?")
    return DiagnosticStatements(tuple(codes), groups, str(path))


def top_statement(codes: Mapping[str, float], diagnostic: Iterable[str], min_likelihood: float = 0.0) -> str | None:
    """The diagnostic statement of ``codes`` (statement -> likelihood %, in the record's order) with the highest
    likelihood: the first of equals (strict ``>``), a likelihood of 0 counting; statements not in ``diagnostic``
    or under ``min_likelihood`` are ignored. ``None`` when there is none (the official ``"None"``)."""
    diagnostic = set(diagnostic)
    best, best_value = None, -math.inf
    for code, likelihood in codes.items():
        if code in diagnostic and likelihood >= min_likelihood and likelihood > best_value:
            best, best_value = code, likelihood
    return best


def missing_csvs(root: Path, names: Sequence[str]) -> None:
    """:class:`DataError` naming the CSVs of ``names`` that ``root`` lacks and how to get them."""
    missing = [name for name in names if not (root / name).is_file()]
    if missing:
        raise DataError(f"{' and '.join(missing)} not found in '{root}': PTB-XL's label tables sit beside records100/ "
                        "and records500/; set data.init_args.root (the `root` argument of PTBXLDataModule) to the "
                        f"folder holding {DATABASE_CSV}, {STATEMENTS_CSV} and the records, or fetch the files with "
                        "neurorvq.datamodules.ptbxl.download(root) (PhysioNet ptb-xl 1.0.3)")


def read_database(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in DATABASE_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise DataError(f"{path}: missing column(s) {missing} (columns: {reader.fieldnames})")
        return list(reader)


def count_top_statements(root: str | Path, label_mode: str = "top_statement", min_likelihood: float = 0.0,
                         folds: Sequence[int] | None = None) -> dict[str, int]:
    """Records per class of ``label_mode`` (a top-statement mode) in ``root``'s ``ptbxl_database.csv``: every
    class of ``scp_statements.csv`` in label order (zeros included), then :data:`NO_STATEMENT` (records without a
    diagnostic statement). Only the two CSVs are read. ``folds``: count only rows of these ``strat_fold`` values
    (default: all). Rows whose ``scp_codes`` or ``strat_fold`` do not parse are not counted (the DataModule skips
    them). The tool to settle the "43-class" question (module docstring)."""
    if label_mode not in TOP_STATEMENT_LEVELS:
        raise ConfigError(f"label_mode is {label_mode!r}; count_top_statements takes one of "
                          f"{list(TOP_STATEMENT_LEVELS)}")
    root = Path(root).expanduser()
    missing_csvs(root, (DATABASE_CSV, STATEMENTS_CSV))
    statements = read_statements(root / STATEMENTS_CSV)
    level = TOP_STATEMENT_LEVELS[label_mode]
    names = statements.class_names(level)
    counts: Counter = Counter()
    wanted = None if folds is None else {int(k) for k in folds}
    for row in read_database(root / DATABASE_CSV):
        try:
            if wanted is not None and parse_integer(row["strat_fold"], "strat_fold") not in wanted:
                continue
            code = top_statement(parse_scp_codes(row["scp_codes"]), statements.codes, min_likelihood)
        except DataError:
            continue
        counts[NO_STATEMENT if code is None else statements.class_of(code, level)] += 1
    return {**{name: counts[name] for name in names}, NO_STATEMENT: counts[NO_STATEMENT]}


def parse_integer(text: str, what: str) -> int:
    try:
        value = float(str(text).strip())
    except ValueError:
        raise DataError(f"unparsable {what} {text!r}") from None
    if not value.is_integer():
        raise DataError(f"unparsable {what} {text!r} (not a whole number)")
    return int(value)


__all__ = ["DATABASE_COLUMNS", "DATABASE_CSV", "DiagnosticStatements", "NO_STATEMENT", "STATEMENTS_CSV",
           "STATEMENT_COLUMNS", "SUPERCLASSES", "TOP_STATEMENT_LEVELS", "count_top_statements", "diagnostic_classes",
           "missing_csvs", "parse_integer", "parse_scp_codes", "read_database", "read_statements", "superclasses",
           "top_statement"]
