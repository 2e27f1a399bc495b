"""Splits as data: which recordings (or windows) of a DataModule go to train, val and test, decided before loading.

A :class:`SplitRule` says *by what* (``by``: ``subject``, a column of the recordings such as ``session``,
``strat_fold``, ``run``, or a per-window column such as ``repetition``) and *how*: explicit lists of values per part,
fractions of the values drawn by the seed, or a split file (:mod:`neurorvq.data.split_files`; a fold of a k-fold
file with ``fold``). :func:`resolve_split` turns a rule and the *recording table* (one row per recording:
``recording``, ``subject``, ``subject_id`` and the recording's columns) into a :class:`SplitPlan`: the values of
every part, which recordings feed which parts and, for a per-window column, which windows. A DataModule gets a
rule from its ``split`` argument or from its dataset options (:meth:`RecordingDataModule.default_split`), and
without one splits subjects by ``val_subjects`` / ``test_subjects`` / fractions as it always did
(:func:`~neurorvq.data.splits.split_subjects`).
"""

from __future__ import annotations

import difflib
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping, Sequence, Union

import numpy as np

from neurorvq.data.preprocess import DataError
from neurorvq.data.splits import SPLITS, split_subjects
from neurorvq.errors import ConfigError

Value = Union[int, str]


@dataclass(frozen=True)
class SplitRule:
    """How to split a dataset (the ``split`` argument of every DataModule, e.g. ``{by: session, test: [E]}``).

    Args:
        by: the column the split is made by: ``subject``, a recording column (``session``, ``run``,
            ``strat_fold``, ...) or a per-window column the DataModule declares (``repetition``). ``None``
            (default): the file's own ``by`` with ``file``, else ``subject``.
        train, val, test: values of ``by`` in each part. A part without a list: ``val`` and ``test`` get
            ``val_fraction`` / ``test_fraction`` of the values (drawn by the DataModule's ``seed``; recording
            columns only), ``train`` gets every other value. When ``train`` is listed, values in no list are left
            out (reported as ``excluded``).
        val_fraction, test_fraction: shares of the values for parts given no list; ``None`` = the DataModule's
            ``val_fraction`` / ``test_fraction``.
        file: a split file (JSON or CSV, :mod:`neurorvq.data.split_files`) giving the lists instead.
        fold: with a k-fold file, the fold held out as ``test`` (its values); train is every other value, val
            is drawn from the training values by ``val_fraction``.
        unknown: ``error`` (default): a listed value the data lacks is an error naming it; ``ignore``: such
            values are dropped (for built-in lists such as MIT-BIH's DS2 when only some records are loaded).
        disjoint: a column no value of which may span two parts (e.g. ``subject`` when splitting PTB-XL by
            ``strat_fold``): a violation is a :class:`~neurorvq.data.preprocess.DataError` naming the value and
            both parts.
    """

    by: str | None = None
    train: list[Value] | None = None
    val: list[Value] | None = None
    test: list[Value] | None = None
    val_fraction: float | None = None
    test_fraction: float | None = None
    file: str | None = None
    fold: str | None = None
    unknown: str = "error"
    disjoint: str | None = None

    def __post_init__(self) -> None:
        if self.unknown not in ("error", "ignore"):
            raise ConfigError(f"split.unknown is {self.unknown!r}; use 'error' or 'ignore'")
        for part in SPLITS:
            listed = getattr(self, part)
            if isinstance(listed, (str, bytes)):
                raise ConfigError(f"split.{part} is the string {listed!r}; give a list of values, e.g. [{listed!r}]")
            if listed is not None:
                object.__setattr__(self, part, list(listed))
        if self.fold is not None and self.file is None:
            raise ConfigError(f"split.fold is {self.fold!r} but no split.file is given; name the k-fold split file")
        if self.file is not None and any(getattr(self, p) is not None for p in SPLITS):
            raise ConfigError("split.file and split.train/val/test are both given; give one kind of list")
        for name in ("val_fraction", "test_fraction"):
            value = getattr(self, name)
            if value is not None and not 0 <= float(value) < 1:
                raise ConfigError(f"split.{name} is {value}; give a fraction in [0, 1)")

    def as_hparams(self) -> dict[str, Any]:
        """The rule as a plain dict (checkpoints stay loadable with ``weights_only=True``)."""
        return asdict(self)

    @classmethod
    def of(cls, value: "str | Mapping[str, Any] | SplitRule") -> "SplitRule":
        """A rule from a ``split`` argument value: a rule, its dict (from YAML), or a split-file path."""
        if isinstance(value, SplitRule):
            return value
        if isinstance(value, Mapping):
            unknown = sorted(set(value) - set(cls.__dataclass_fields__))
            if unknown:
                close = difflib.get_close_matches(unknown[0], list(cls.__dataclass_fields__), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise ConfigError(f"split has no field {unknown[0]!r}{hint}; fields: "
                                  f"{', '.join(cls.__dataclass_fields__)}")
            return cls(**dict(value))
        return cls(by=None, file=str(value))


@dataclass(frozen=True)
class SplitPlan:
    """A resolved split: ``values`` (part -> the values of ``by`` in it, as the data spells them), ``level``
    (``recording``: whole recordings go to a part; ``window``: the windows of a recording are routed by their
    ``by`` column), ``parts_of`` (recording path -> the parts it feeds, in :data:`SPLITS` order) and ``excluded``
    (values in no part)."""

    by: str
    level: str
    values: dict[str, list]
    parts_of: dict[str, tuple[str, ...]]
    excluded: list = field(default_factory=list)
    source: str | None = None

    @classmethod
    def from_parts(cls, by: str, parts: Mapping[str, Sequence], rows: Sequence[Mapping[str, Any]],
                   source: str | None = None) -> "SplitPlan":
        """The recording-level plan putting each recording in the part that lists its ``by`` value (values are
        compared as text; a recording whose value no part lists feeds none and its value is ``excluded``)."""
        part_of = {str(v): part for part in SPLITS for v in parts.get(part, ())}
        values = {part: list(parts.get(part, ())) for part in SPLITS}
        excluded = list(dict.fromkeys(r[by] for r in rows if str(r[by]) not in part_of))
        parts_of = {str(r["recording"]): ((part_of[str(r[by])],) if str(r[by]) in part_of else ()) for r in rows}
        return cls(by, "recording", values, parts_of, sorted(excluded, key=str), source)

    def membership(self, part: str) -> dict[str, Any]:
        """What decides the content of ``part`` (part of its window-cache key)."""
        if self.values[part] is None:  # the windows of no other part
            return {"by": self.by, "level": self.level,
                    "except": sorted(str(v) for p in SPLITS if p != part for v in self.values[p] or ())}
        return {"by": self.by, "level": self.level, "values": [str(v) for v in self.values[part]]}

    def window_mask(self, part: str, column: np.ndarray) -> np.ndarray:
        """``bool [W]``: which windows of a recording (``column``: their ``by`` values) belong to ``part``."""
        if self.level == "recording":
            return np.ones(len(column), dtype=bool)
        as_text = np.asarray(column).astype(str)
        if part == "train" and self.values.get("train") is None:
            others = [str(v) for p in ("val", "test") for v in self.values[p]]
            return ~np.isin(as_text, others)
        return np.isin(as_text, [str(v) for v in self.values[part]])

    def summary(self) -> dict[str, Any]:
        """``{by, level, values per part, excluded}`` for the loading summary."""
        out = {"by": self.by, "level": self.level,
               **{part: (None if v is None else list(v)) for part, v in self.values.items()}}
        if self.excluded:
            out["excluded"] = list(self.excluded)
        if self.source:
            out["file"] = self.source
        return out


# ------------------------------------------------------------------------------------------------ resolution
def _column_values(rows: Sequence[Mapping[str, Any]], by: str, columns: Sequence[str]) -> list:
    lacking = [str(r["recording"]) for r in rows if by not in r]
    if len(lacking) == len(rows):
        close = difflib.get_close_matches(by, list(columns), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"split by {by!r}: the recordings have no column {by!r}{hint}; columns: "
                          f"{', '.join(columns)}")
    if lacking:
        raise ConfigError(f"split by {by!r}: {len(lacking)} recordings have no {by!r} value (e.g. {lacking[0]}); "
                          "split by a column every recording has")
    return [r[by] for r in rows]


def _lists_from_file(rule: SplitRule, split_file: Any, known: Sequence,
                     ids: Mapping[str, int] | None) -> dict[str, list | None]:
    """Part lists from a split file: its parts, or with ``rule.fold`` the held-out fold as ``test``. Every value
    of the file must be in the data (an error names the file and its key or lines): a file is meant for it."""
    if split_file.kind == "parts" and rule.fold is not None:
        raise ConfigError(f"split.fold is {rule.fold!r} but split file '{rule.file}' lists parts "
                          f"({', '.join(split_file.groups)}), not folds; remove split.fold")
    if split_file.kind == "folds" and rule.fold is None:
        raise ConfigError(f"split file '{rule.file}' holds {len(split_file.groups)} folds "
                          f"({', '.join(list(split_file.groups)[:10])}); choose the held-out one with split.fold "
                          "(neurorvq cv runs them all with --folds_file)")
    if split_file.kind == "folds" and str(rule.fold) not in split_file.groups:
        raise ConfigError(f"split.fold {rule.fold!r} is not a fold of '{rule.file}'; folds: "
                          f"{', '.join(split_file.groups)}")
    matched = split_file.match_all(known, ids)
    if split_file.kind == "folds":
        return {"train": None, "val": None, "test": matched[str(rule.fold)]}
    lists = {part: matched.get(part) for part in SPLITS}
    if lists["val"] is None and lists["train"] is not None:
        lists["val"] = []
    return lists


def _matcher(known: Sequence, by: str, ids: Mapping[str, int] | None, unknown: str):
    """``match(listed, where)``: the data's spelling of each listed value (:func:`~neurorvq.data.split_files.
    match_values`); with ``unknown='ignore'`` values the data lacks are dropped instead of refused."""
    from neurorvq.data.split_files import match_values

    def match(listed: Sequence, where: str) -> list:
        if unknown == "error":
            return match_values(listed, known, by=by, where=where, ids=ids)
        kept = []
        for value in listed:
            try:
                kept += match_values([value], known, by=by, where=where, ids=ids)
            except ConfigError:
                continue
        return kept

    return match


def resolve_split(rule: SplitRule, rows: Sequence[Mapping[str, Any]], *, window_columns: Sequence[str] = (),
                  seed: int = 0, val_fraction: float = 0.1, test_fraction: float = 0.1,
                  subject_ids: Mapping[str, int] | None = None) -> SplitPlan:
    """The :class:`SplitPlan` of ``rule`` over the recording table ``rows`` (one mapping per recording with
    ``recording``, ``subject``, ``subject_id`` and its columns). ``window_columns``: per-window columns the
    DataModule declares (a split by one of them routes windows, and needs explicit lists); ``seed`` and the
    fractions draw the parts given no list (:func:`~neurorvq.data.splits.split_subjects`'s draw).

    Raises:
        ConfigError: an unknown column (listing the columns), listed values the data lacks (listing them), a value
            in two parts, a window-level split without lists, a ``disjoint`` violation.
    """
    from neurorvq.data.split_files import read_split_file

    columns = list(dict.fromkeys(k for r in rows for k in r))
    split_file = read_split_file(rule.file, by=rule.by) if rule.file is not None else None
    by = split_file.by if split_file is not None else (rule.by or "subject")
    if by in window_columns and by not in columns:
        if split_file is not None:
            raise ConfigError(f"split file '{rule.file}' splits by {by!r}, a per-window column: give its lists "
                              "inline (split.train/val/test) instead")
        return _window_plan(rule, by, rows)
    values = _column_values(rows, by, columns + [c for c in window_columns if c not in columns])
    known = sorted(dict.fromkeys(values), key=str)
    ids = subject_ids if by == "subject" else None
    if split_file is not None:
        lists = _lists_from_file(rule, split_file, known, ids)
    else:
        match = _matcher(known, by, ids, rule.unknown)
        lists = {part: None if getattr(rule, part) is None else match(getattr(rule, part), f"split.{part}")
                 for part in SPLITS}
    seen: dict[str, str] = {}
    for part in SPLITS:
        for v in lists[part] or []:
            if str(v) in seen and seen[str(v)] != part:
                raise ConfigError(f"split by {by!r}: {v!r} is in both {seen[str(v)]!r} and {part!r}; a value belongs "
                                  "to one part")
            seen[str(v)] = part
    fractions = {"val": val_fraction if rule.val_fraction is None else rule.val_fraction,
                 "test": test_fraction if rule.test_fraction is None else rule.test_fraction}
    if lists["train"] is not None:
        parts = {part: [str(v) for v in (lists[part] or [])] for part in SPLITS}
    elif rule.fold is not None:  # a fold: val is a share of its training values, never of its test values
        test = [str(v) for v in lists["test"]]
        parts = {**split_subjects([str(v) for v in known if str(v) not in test], seed, fractions["val"], 0.0),
                 "test": test}
    else:
        parts = split_subjects([str(v) for v in known], seed, fractions["val"], fractions["test"],
                               None if lists["val"] is None else [str(v) for v in lists["val"]],
                               None if lists["test"] is None else [str(v) for v in lists["test"]])
    by_text = {str(v): v for v in known}
    plan = SplitPlan.from_parts(by, {part: [by_text[v] for v in parts[part]] for part in SPLITS}, rows,
                                None if split_file is None else split_file.path)
    if rule.disjoint:
        _check_disjoint(rule.disjoint, rows, plan.parts_of, by)
    return plan


def _window_plan(rule: SplitRule, by: str, rows: Sequence[Mapping[str, Any]]) -> SplitPlan:
    if rule.val is None and rule.test is None and rule.train is None:
        raise ConfigError(f"split by {by!r} (a per-window column) needs explicit train/val/test lists: fractions "
                          "cannot be drawn among values not yet loaded")
    seen: dict[str, str] = {}
    for part in SPLITS:
        for v in getattr(rule, part) or []:
            if str(v) in seen and seen[str(v)] != part:
                raise ConfigError(f"split by {by!r}: {v!r} is in both {seen[str(v)]!r} and {part!r}; a value "
                                  "belongs to one part")
            seen[str(v)] = part
    values = {part: (None if part == "train" and rule.train is None else list(getattr(rule, part) or []))
              for part in SPLITS}
    feeds = tuple(p for p in SPLITS if p == "train" or values[p])
    return SplitPlan(by, "window", values, {str(r["recording"]): feeds for r in rows})


def _check_disjoint(column: str, rows: Sequence[Mapping[str, Any]], parts_of: Mapping[str, tuple[str, ...]],
                    by: str) -> None:
    first: dict[str, tuple[str, str]] = {}
    for r in rows:
        parts = parts_of[str(r["recording"])]
        if not parts or column not in r:
            continue
        value = str(r[column])
        seen = first.setdefault(value, (parts[0], str(r["recording"])))
        if seen[0] != parts[0]:
            raise DataError(f"{column} {value} has records in the {seen[0]} split ({seen[1]}) and the {parts[0]} split "
                            f"({r['recording']}) when splitting by {by!r}; a {column} belongs to one split: check the "
                            f"data's {by!r} values")


__all__ = ["SplitPlan", "SplitRule", "resolve_split"]
