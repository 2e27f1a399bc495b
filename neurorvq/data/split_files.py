"""Split files: which recordings or trials form the train / val / test parts, or the test part of each fold, as
data (format ``neurorvq-split``, version 1).

A split file maps *part* or *fold* names to values of one metadata column (``by``: ``subject``, ``session``,
``strat_fold``, any column of :meth:`~neurorvq.data.windowset.WindowDataset.column`). JSON, parts form::

    {"format": "neurorvq-split", "version": 1, "by": "strat_fold",
     "splits": {"train": [1, 2, 3, 4, 5, 6, 7, 8], "val": [9], "test": [10]},
     "source": "PTB-XL 1.0.3, ptbxl_database.csv column strat_fold (recommended split)"}

JSON, folds form (fold name -> its held-out values; a fold trains on every other value)::

    {"format": "neurorvq-split", "version": 1, "by": "subject", "folds": {"0": ["S01", "S13"], "1": ["S08"]}}

The benchmark's bare form ``{"0": [...], "1": [...]}`` (fold names of digits only) reads as folds when the caller
says what the values are (``by``). CSV: a header ``<column>,split`` (parts) or ``<column>,fold`` (folds), then
one ``value,name`` row per value; ``#`` starts a comment (a ``# source: ...`` comment line sets ``source``), blank
lines are ignored::

    session,split
    T,train
    E,test

JSON values keep their type (string or integer); CSV values are strings. :func:`match_values` maps listed values
to the data's (a digit string matches an integer, names match ids through ``ids``). A value belongs to one part
or fold only; every mistake is a one-line :class:`~neurorvq.errors.ConfigError` naming the file and the key or
line.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Literal, Mapping, Sequence

import numpy as np

from neurorvq.errors import ConfigError
from neurorvq.suggest import did_you_mean

FORMAT = "neurorvq-split"
VERSION = 1
PART_NAMES = ("train", "val", "test")
_KEYS = ("format", "version", "by", "splits", "folds", "source")
_NOUNS = ("subject", "session", "recording", "run", "trial", "repetition", "day")
"""Columns whose name reads as a noun in messages ("subjects ['S03'] are not in the data")."""


# ------------------------------------------------------------------------------------------------ the file
@dataclass(frozen=True)
class SplitFile:
    """A read split file.

    Attributes:
        path: the file, as given.
        by: the column its values belong to (``subject``, ``session``, ...).
        kind: ``"parts"`` (``groups`` keys among train, val, test) or ``"folds"`` (fold name -> held-out values).
        groups: part or fold name -> values, both in file order (JSON types kept; CSV values are strings).
        source: where the split comes from (free text), or ``None``.
    """

    path: str
    by: str
    kind: Literal["parts", "folds"]
    groups: dict[str, list]
    source: str | None = None
    lines: dict[str, list[int]] = field(default_factory=dict, repr=False, compare=False)
    """CSV: the line of each value of each group (aligned with ``groups``); empty for JSON."""
    key_prefix: str = field(default="", repr=False, compare=False)
    """JSON: the key holding the groups (``splits``, ``folds``; ``""`` in the bare form)."""

    def where(self, name: str, value: Any | Sequence | None = None) -> str:
        """Location of group ``name`` (or of its ``value``, or of a list of its values) for messages: JSON
        ``key 'folds.3'``, CSV ``line 4`` or ``lines 4, 9``."""
        if not self.lines:
            return f"key '{self.key_prefix + '.' if self.key_prefix else ''}{name}'"
        rows = list(zip(self.groups[name], self.lines[name]))
        if value is not None:
            wanted = {str(v) for v in value} if isinstance(value, (list, tuple, set)) else {str(value)}
            rows = [(v, line) for v, line in rows if str(v) in wanted] or rows
        return _lines_text(sorted({line for _, line in rows}))

    def match(self, name: str, known: Iterable, ids: Mapping[str, int] | None = None) -> list:
        """The values of group ``name`` as the data's values (:func:`match_values`); an unknown value is a
        :class:`ConfigError` naming this file and the key or lines of the unknown values."""
        listed, known = self.groups[name], list(known)
        mapped, unknown = resolve_values(listed, known, ids, where=f"split file '{self.path}' {self.where(name)}")
        if unknown:
            raise ConfigError(unknown_values_message(unknown, known, by=self.by,
                                                     where=f"split file '{self.path}' {self.where(name, unknown)}"))
        return mapped

    def match_all(self, known: Iterable, ids: Mapping[str, int] | None = None) -> dict[str, list]:
        """Every group's values as the data's values (:meth:`match`), in file order. Two listed values that are
        the same data value (``2`` and ``"S02"`` through ``ids``) are a :class:`ConfigError` naming both."""
        known = list(known)
        matched = {name: self.match(name, known, ids) for name in self.groups}
        owner: dict[Any, tuple[str, Any]] = {}
        for name, values in matched.items():
            for listed, value in zip(self.groups[name], values):
                if value in owner:
                    other_name, other = owner[value]
                    raise ConfigError(f"split file '{self.path}': {other!r} ({self.where(other_name, other)}) and "
                                      f"{listed!r} ({self.where(name, listed)}) are both {_noun(self.by)} "
                                      f"{value!r}; list it once")
                owner[value] = (name, listed)
        return matched


def _lines_text(lines: Sequence[int]) -> str:
    return f"line {lines[0]}" if len(lines) == 1 else f"lines {', '.join(str(n) for n in lines)}"


def _noun(by: str, plural: bool = False) -> str:
    """``subject`` / ``subjects`` for the known nouns; ``'x' value`` / ``values of 'x'`` otherwise."""
    if by in _NOUNS:
        return by + ("s" if plural else "")
    return f"values of {by!r}" if plural else f"{by!r} value"


def _show(value: Any) -> str:
    return repr(_plain(value))


# ------------------------------------------------------------------------------------------------ reading
def read_split_file(path: str | Path, by: str | None = None) -> SplitFile:
    """Read and check a split file (JSON or CSV; see the module docstring for the format).

    ``by``: the column the caller splits by; a file with another ``by`` is an error naming both, and the bare
    JSON form (``{"0": [...], ...}``, no ``by`` of its own) needs it. A ``.csv`` file is read as CSV, any other
    as JSON when it starts with ``{``, else as CSV.

    Raises:
        ConfigError: a missing or empty file, JSON that does not parse (line and column), another format or a
            newer version, a misspelt part name, a value that is not a list, both or neither of ``splits`` and
            ``folds``, a CSV line with another number of fields, a value in two parts or folds (or twice in one).
    """
    path_text = str(path)
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"split file '{path_text}' does not exist; give the path of a split file (JSON or CSV)")
    if path.is_dir():
        raise ConfigError(f"split file '{path_text}' is a folder; give the path of a split file (JSON or CSV)")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError(f"split file '{path_text}' is not UTF-8 text ({error.reason} at byte {error.start}); "
                          "save it as UTF-8") from None
    if not text.strip():
        raise ConfigError(f"split file '{path_text}' is empty; write a JSON object or a CSV header and rows")
    if path.suffix.lower() == ".csv" or not text.lstrip().startswith("{"):
        split = _read_csv(path_text, text)
    else:
        split = _read_json(path_text, text, by)
    if by is not None and split.by != by:
        where = "header" if split.lines else "key 'by'"
        raise ConfigError(f"split file '{path_text}' {where}: the file splits by {split.by!r}, but {by!r} was asked "
                          f"for; give a split file by {by!r} or split by {split.by!r}")
    _check_disjoint(split)
    return split


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict:
    """``object_pairs_hook`` that refuses a key given twice in one object (``json`` would keep the last)."""
    counts = Counter(key for key, _ in pairs)
    twice = [key for key, n in counts.items() if n > 1]
    if twice:
        raise _DuplicateKey(twice[0])
    return dict(pairs)


class _DuplicateKey(ValueError):
    pass


def _read_json(path: str, text: str, by: str | None) -> SplitFile:
    fail = (lambda where, problem: ConfigError(f"split file '{path}' {where}: {problem}"))
    try:
        payload = json.loads(text, object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as error:
        raise fail(f"line {error.lineno}, column {error.colno}", f"not JSON ({error.msg})") from None
    except _DuplicateKey as error:
        raise ConfigError(f"split file '{path}': key {str(error)!r} appears twice in one object; keep one") from None
    if not isinstance(payload, dict):
        raise ConfigError(f"split file '{path}': expected a JSON object, got {type(payload).__name__}")
    if "format" not in payload and payload and all(isinstance(k, str) and k.isdigit() for k in payload):
        if by is None:
            raise ConfigError(f"split file '{path}' is a bare list of folds (no 'by'); say which column its "
                              "values belong to (e.g. by='subject', or neurorvq cv --group_by subject)")
        groups = {name: _values(fail, f"key '{name}'", values) for name, values in payload.items()}
        return SplitFile(path, by, "folds", groups, key_prefix="")
    fmt = payload.get("format")
    if fmt != FORMAT:
        if fmt is None:
            raise fail("key 'format'", f"missing; a split file starts with \"format\": \"{FORMAT}\" (or is a bare "
                       "{\"0\": [...], \"1\": [...]} fold list)")
        hint = "; that is the folds.json of a neurorvq cv run (pass it to neurorvq cv --folds_file)" \
            if fmt == "neurorvq-subject-folds" else ""
        raise fail("key 'format'", f"{fmt!r} is not a split file (format {FORMAT!r}){hint}")
    version = payload.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise fail("key 'version'", f"expected a positive integer, got {version!r}; this neurorvq writes {VERSION}")
    if version > VERSION:
        raise fail("key 'version'", f"version {version} is newer than this neurorvq reads ({VERSION}): "
                   "upgrade neurorvq")
    unknown = [k for k in payload if k not in _KEYS]
    if unknown:
        raise fail(f"key {unknown[0]!r}", f"not a split file key ({', '.join(_KEYS)}){did_you_mean(unknown[0], _KEYS)}")
    file_by = payload.get("by")
    if not isinstance(file_by, str) or not file_by.strip():
        raise fail("key 'by'", f"expected the name of the column the values belong to (e.g. \"subject\"), got "
                   f"{file_by!r}")
    source = payload.get("source")
    if source is not None and not isinstance(source, str):
        raise fail("key 'source'", f"expected text, got {type(source).__name__}")
    present = [k for k in ("splits", "folds") if k in payload]
    if len(present) != 1:
        what = "both 'splits' and 'folds'" if present else "neither 'splits' nor 'folds'"
        raise ConfigError(f"split file '{path}' holds {what}; give one: 'splits' (train/val/test) or 'folds' "
                          "(fold name -> held-out values)")
    key = present[0]
    table = payload[key]
    if not isinstance(table, dict) or not table:
        raise fail(f"key {key!r}", f"expected a non-empty object of {'part' if key == 'splits' else 'fold'} names "
                   f"-> lists of values, got {table!r:.60}")
    groups = {}
    for name, values in table.items():
        where = f"key '{key}.{name}'"
        if key == "splits" and name not in PART_NAMES:
            raise fail(where, f"not a split name ({', '.join(PART_NAMES)}){did_you_mean(name, PART_NAMES)}")
        if key == "folds" and not name.strip():
            raise fail(where, "a fold needs a name")
        groups[name] = _values(fail, where, values, empty_ok=key == "splits")
    return SplitFile(path, file_by, "parts" if key == "splits" else "folds", groups, source=source, key_prefix=key)


def _values(fail, where: str, values: Any, empty_ok: bool = False) -> list:
    if isinstance(values, str):
        raise fail(where, f"expected a list of values, got the string {values!r}")
    if not isinstance(values, list):
        raise fail(where, f"expected a list of values, got {json.dumps(values)[:60]}")
    if not values and not empty_ok:
        raise fail(where, "the fold holds no values; a fold needs at least one held-out value")
    for position, value in enumerate(values):
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise fail(where, f"item {position} is {json.dumps(value)[:60]}; values are strings or integers")
    return list(values)


def _read_csv(path: str, text: str) -> SplitFile:
    rows, source = [], None
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        comment = raw.split("#", 1)[1].strip() if "#" in raw else ""
        if not line:
            if comment.lower().startswith("source:") and source is None:
                source = comment[len("source:"):].strip() or None
            continue
        rows.append((number, line, [f.strip() for f in next(csv.reader([line]))]))
    if not rows:
        raise ConfigError(f"split file '{path}' holds only comments; write a header '<column>,split' or "
                          "'<column>,fold' and one row per value")
    number, line, header = rows[0]
    if len(header) != 2 or header[1] not in ("split", "fold") or not header[0]:
        raise ConfigError(f"split file '{path}' line {number}: header must be '<column>,split' or '<column>,fold', "
                          f"got {line!r}")
    by, kind = header[0], ("parts" if header[1] == "split" else "folds")
    if len(rows) == 1:
        raise ConfigError(f"split file '{path}' has a header but no rows; add one '<{by}>,<{header[1]}>' row per value")
    groups: dict[str, list] = {}
    lines: dict[str, list[int]] = {}
    for number, line, fields in rows[1:]:
        where = f"split file '{path}' line {number}"
        if len(fields) != 2:
            raise ConfigError(f"{where}: {len(fields)} fields ({line!r}); expected 2 ({by},{header[1]})")
        value, name = fields
        if not value or not name:
            raise ConfigError(f"{where}: an empty field ({line!r}); expected '<{by}>,<{header[1]}>'")
        if kind == "parts" and name not in PART_NAMES:
            raise ConfigError(f"{where}: split {name!r} is not train, val or test{did_you_mean(name, PART_NAMES)}")
        groups.setdefault(name, []).append(value)
        lines.setdefault(name, []).append(number)
    return SplitFile(path, by, kind, groups, source=source, lines=lines)


def _check_disjoint(split: SplitFile) -> None:
    """A value in two groups, or twice in one, is an error naming both places."""
    seen: dict[str, str] = {}
    unit = "split" if split.kind == "parts" else "fold"
    entries = [(name, value, split.lines[name][i] if split.lines else 0)
               for name, values in split.groups.items() for i, value in enumerate(values)]
    for name, value, _ in sorted(entries, key=lambda entry: entry[2]):  # CSV: in line order; JSON: file order
        key = str(value)
        if key not in seen:
            seen[key] = name
            continue
        first = seen[key]
        noun = _noun(split.by)
        if first == name:
            raise ConfigError(f"split file '{split.path}' {split.where(name, value)}: {noun} {value!r} is listed "
                              f"twice in {name!r}; list it once")
        if split.lines:
            places = (f"{'folds ' if split.kind == 'folds' else ''}{first!r} ({split.where(first, value)}) and "
                      f"{name!r} ({split.where(name, value)})")
        elif split.kind == "parts":
            places = f"keys '{split.key_prefix}.{first}' and '{split.key_prefix}.{name}'"
        else:
            places = f"folds {first!r} and {name!r}"
        raise ConfigError(f"split file '{split.path}': {noun} {value!r} is in both {places}; a {noun} belongs "
                          f"to one {unit}")


# ------------------------------------------------------------------------------------------------ writing
def save_split_file(path: str | Path, *, by: str, splits: Mapping[str, Sequence] | None = None,
                    folds: Mapping[str, Sequence] | None = None, source: str | None = None) -> Path:
    """Write a JSON split file (``neurorvq-split`` version 1) atomically and return its path.

    Give ``splits`` (part name among train, val, test -> values) or ``folds`` (fold name -> held-out values);
    values are strings or integers (numpy scalars are converted). The file is checked as :func:`read_split_file`
    would read it before anything is written.
    """
    from neurorvq.file_io import write_atomic

    path = Path(path)
    if path.suffix.lower() == ".csv":
        raise ConfigError(f"save_split_file writes JSON; name the file '{path.with_suffix('.json')}' instead of "
                          f"'{path}'")
    if (splits is None) == (folds is None):
        raise ConfigError("save_split_file: give either splits= (train/val/test) or folds= (fold name -> values)")
    key, table = ("splits", splits) if splits is not None else ("folds", folds)
    payload: dict[str, Any] = {"format": FORMAT, "version": VERSION, "by": by,
                               key: {str(name): [_plain(v) for v in values] for name, values in table.items()}}
    if source is not None:
        payload["source"] = source
    text = _dumps(payload)
    split = _read_json(str(path), text, by)  # the same checks as reading it back
    _check_disjoint(split)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_atomic(path, text)


def _dumps(payload: dict[str, Any]) -> str:
    """JSON with one line per key and per part or fold (the lists stay on one line, readable in a diff)."""
    lines = []
    for key, value in payload.items():
        if isinstance(value, dict):
            inner = [f"  {json.dumps(name)}: {json.dumps(values)}" for name, values in value.items()]
            lines.append(f" {json.dumps(key)}: {{\n" + ",\n".join(inner) + "\n }")
        else:
            lines.append(f" {json.dumps(key)}: {json.dumps(value)}")
    return "{\n" + ",\n".join(lines) + "\n}\n"


def _plain(value: Any) -> Any:
    """A numpy scalar (``np.int64``, ``np.str_``) as the plain Python value (JSON-ready, comparable)."""
    return value.item() if isinstance(value, np.generic) else value


# ------------------------------------------------------------------------------------------------ matching
def resolve_values(listed: Sequence, known: Iterable, ids: Mapping[str, int] | None = None,
                   where: str = "") -> tuple[list, list]:
    """``(matched, unknown)``: each listed value as the data's value (in order), and the listed values that match
    none. The rules, first hit wins: the same value; the same text (``"3"`` is ``3``); the same text ignoring
    case; the same integer (``"03"`` is ``3``); through ``ids`` (``{name: integer id}``) a name to its id or an
    id to its name, whichever the data holds. Two data values equally close (``"S01"`` and ``"s01"`` for
    ``"S01"`` by text ignoring case) are a :class:`ConfigError` prefixed by ``where``."""
    values = list(dict.fromkeys(_plain(k) for k in known))
    rules = [
        ("value", lambda v: v),
        ("text", str),
        ("text ignoring case", lambda v: str(v).casefold()),
        ("integer", lambda v: int(v) if isinstance(v, int) or (isinstance(v, str) and v.strip().isdigit()) else None),
    ]
    tables = []
    for _, rule in rules:
        table: dict = {}
        for k in values:
            key = rule(k)
            if key is not None:
                table.setdefault(key, []).append(k)
        tables.append(table)
    by_name = {str(n).casefold(): int(i) for n, i in (ids or {}).items()}
    by_id = {int(i): n for n, i in (ids or {}).items()}
    matched, unknown = [], []
    for value in listed:
        hit = _first_hit(value, rules, tables, where)
        if hit is None and ids:
            number = by_name.get(str(value).casefold())
            if number is None and str(value).strip().isdigit():  # an id listed where the data holds names
                name = by_id.get(int(str(value).strip()))
                hit = _first_hit(name, rules, tables, where) if name is not None else None
            elif number is not None:
                hit = _first_hit(number, rules, tables, where)
        if hit is None:
            unknown.append(value)
        else:
            matched.append(hit)
    return matched, unknown


def _first_hit(value: Any, rules: list, tables: list, where: str) -> Any:
    for (what, rule), table in zip(rules, tables):
        key = rule(value)
        candidates = table.get(key, []) if key is not None else []
        if len(candidates) == 1:
            return candidates[0]
        if len(candidates) > 1:
            raise ConfigError(f"{where + ': ' if where else ''}{value!r} matches several values of the data by {what} "
                              f"({', '.join(map(_show, candidates))}); list the exact value")
    return None


def unknown_values_message(unknown: Sequence, known: Iterable, *, by: str, where: str) -> str:
    """``"<where>: subjects ['S03', 'S05'] are not in the data (14 subjects found: 'S01', ...); fix the file or
    load those subjects"`` (at most 20 known values shown)."""
    values = sorted(dict.fromkeys(_plain(k) for k in known), key=lambda v: (str(type(v)), v))
    shown = ", ".join(map(_show, values[:20])) + (", ..." if len(values) > 20 else "")
    listed = [_plain(v) for v in unknown]
    what = f"{_noun(by)} {listed[0]!r} is" if len(listed) == 1 else f"{_noun(by, True)} {listed} are"
    return (f"{where}: {what} not in the data ({len(values)} {_noun(by, True)} found: {shown}); fix the file or "
            f"load those {_noun(by, True)}")


def match_values(listed: Sequence, known: Iterable, *, by: str, where: str,
                 ids: Mapping[str, int] | None = None) -> list:
    """The data's value for each ``listed`` value (in order; rules in :func:`resolve_values`).

    Args:
        listed: values from a split file (strings or integers).
        known: the data's values of column ``by`` (any iterable; numpy values are fine).
        by: the column's name, for the message (``subject`` -> "subjects ... are not in the data").
        where: what listed them, e.g. ``"split file 'splits/hgd.json' key 'folds.3'"`` (:meth:`SplitFile.where`).
        ids: optional ``{name: integer id}`` (e.g. :attr:`RecordingDataModule.subject_ids`), so that names match
            integer ids and ids match names.

    Raises:
        ConfigError: values the data lacks, listed with the data's values (at most 20) and the fix.
    """
    known = list(known)
    matched, unknown = resolve_values(listed, known, ids, where)
    if unknown:
        raise ConfigError(unknown_values_message(unknown, known, by=by, where=where))
    return matched


__all__ = ["FORMAT", "PART_NAMES", "SplitFile", "VERSION", "match_values", "read_split_file", "resolve_values",
           "save_split_file", "unknown_values_message"]
