"""PTB-XL (PhysioNet ``ptb-xl`` v1.0.3: 21,799 clinical 12-lead ECGs of 10 s from 18,869 patients) as a
LightningDataModule (``neurorvq.datamodules.ptbxl``).

Layout of ``root`` (as published and as :func:`download` writes it)::

    ptbxl_database.csv      one row per ECG: ecg_id, patient_id, ..., scp_codes, ..., strat_fold, filename_lr,
                            filename_hr
    scp_statements.csv      one row per SCP-ECG statement (first column: the code), with diagnostic,
                            diagnostic_class, ...
    records100/00000/00001_lr.hea/.dat   the 100-Hz version of every record (filename_lr)
    records500/00000/00001_hr.hea/.dat   the 500-Hz version (filename_hr)

``rate`` (500 default, or 100) chooses the version. Both are resampled to the ECG spec's 200 Hz: a 10-s record is
12 leads x 2000 samples = 12 x 50 patches of 40 = 600 tokens. 500 -> 200 Hz is a decimation; 100 -> 200 Hz is a
2x upsampling, beyond :class:`~neurorvq.data.preprocess.Resample`'s default limit, so with ``rate=100`` the
default pipeline sets ``Resample(allow_upsample=True)`` on purpose (the 100-Hz version holds nothing above 50 Hz).
The leads ``I, II, III, AVR, AVL, AVF, V1-V6`` (in mV) map onto the vocabulary's ``i ... v6`` one to one.

Labels (``label_mode``):

* ``'superclass_single'`` (default): the diagnostic superclass, one of ``NORM`` (0, normal ECG), ``MI`` (1,
  myocardial infarction), ``STTC`` (2, ST/T change), ``CD`` (3, conduction disturbance), ``HYP`` (4,
  hypertrophy). ``scp_codes`` (a Python dict literal, statement -> likelihood in %, e.g.
  ``"{'NORM': 100.0, 'SR': 0.0}"``) is mapped through ``scp_statements.csv``: every statement with
  ``diagnostic == 1`` contributes its ``diagnostic_class`` (the aggregation of the PTB-XL example code, which
  counts a statement whatever its likelihood; ``min_likelihood`` can require a minimum). Form and rhythm
  statements (``SR``, ``LVOLT``, ...) do not count. Only records with **exactly one** superclass are kept (a
  single-label 5-class task); records with none or several are left out and counted in :attr:`excluded` (and
  ``summary['excluded']``).
* ``'none'``: every record, unlabelled (pretraining).

A row whose ``scp_codes`` (or ``patient_id``, ``strat_fold``, file name) does not parse is skipped with a
:class:`~neurorvq.data.windows.RecordingSkippedWarning` naming the record (a :class:`DataError` in strict mode)
and listed in :attr:`summary` ``['skipped']``.

Split: the recommended ``strat_fold`` column (10 stratified folds; all records of a patient are in one fold):
train = folds 1-8, val = fold 9, test = fold 10 by default (``train_folds`` / ``val_folds`` / ``test_folds``;
folds in none of them are not loaded). The subject is the patient (``patient_id``, name ``'15709'``, id 15709); a
patient whose records fall into two splits is a :class:`DataError`.
"""

from __future__ import annotations

import ast
import csv
import warnings
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

from neurorvq.data.preprocess import DataError, Pipeline, Resample
from neurorvq.data.split_rules import SplitRule
from neurorvq.data.windows import RecordingInfo, RecordingSkippedWarning, WindowSet
from neurorvq.datamodules.wfdb_folder import WFDBRecordingDataModule
from neurorvq.errors import ConfigError

SUPERCLASSES: tuple[str, ...] = ("NORM", "MI", "STTC", "CD", "HYP")
"""Diagnostic superclasses in label order."""
LABEL_MODES: tuple[str, ...] = ("superclass_single", "none")
DATABASE_CSV = "ptbxl_database.csv"
STATEMENTS_CSV = "scp_statements.csv"
DATABASE_COLUMNS = ("ecg_id", "patient_id", "scp_codes", "strat_fold", "filename_lr", "filename_hr")
"""Columns of ``ptbxl_database.csv`` this module reads."""
STATEMENT_COLUMNS = ("diagnostic", "diagnostic_class")
"""Columns of ``scp_statements.csv`` this module reads (besides the first, the statement code)."""
FILE_COLUMN = {100: "filename_lr", 500: "filename_hr"}


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


def diagnostic_classes(path: str | Path) -> dict[str, str]:
    """Statement code -> diagnostic superclass, for the statements of ``scp_statements.csv`` with
    ``diagnostic == 1`` (and a superclass among :data:`SUPERCLASSES`)."""
    path = Path(path)
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        try:
            header = next(reader)
        except StopIteration:
            raise DataError(f"{path}: empty file") from None
        missing = [c for c in STATEMENT_COLUMNS if c not in header]
        if missing:
            raise DataError(f"{path}: missing column(s) {missing} (columns: {header})")
        diag, cls = header.index("diagnostic"), header.index("diagnostic_class")
        table = {}
        for row in reader:
            if len(row) <= max(diag, cls) or not row[0].strip():
                continue
            try:
                is_diagnostic = float(row[diag]) == 1.0 if row[diag].strip() else False
            except ValueError:
                raise DataError(f"{path}: statement {row[0]!r} has diagnostic={row[diag]!r}, not 1 or empty") from None
            if is_diagnostic and row[cls].strip() in SUPERCLASSES:
                table[row[0].strip()] = row[cls].strip()
    return table


def superclasses(codes: dict[str, float], table: dict[str, str], min_likelihood: float = 0.0) -> list[str]:
    """Distinct superclasses (in :data:`SUPERCLASSES` order) of ``codes`` whose likelihood is >= ``min_likelihood``."""
    found = {table[c] for c, likelihood in codes.items() if c in table and likelihood >= min_likelihood}
    return [s for s in SUPERCLASSES if s in found]


def _integer(text: str, what: str) -> int:
    try:
        value = float(str(text).strip())
    except ValueError:
        raise DataError(f"unparsable {what} {text!r}") from None
    if not value.is_integer():
        raise DataError(f"unparsable {what} {text!r} (not a whole number)")
    return int(value)


def download(root: str | Path, rate: int = 500) -> Path:
    """Download PTB-XL's two CSV files and the ``rate`` Hz records (500 or 100) from PhysioNet into ``root`` with
    ``wfdb.dl_files`` / ``wfdb.dl_database`` (needs internet; ~1.7 GB at 500 Hz) and return ``root``."""
    import wfdb

    if rate not in FILE_COLUMN:
        raise ConfigError(f"rate is {rate}; use 500 or 100")
    root = Path(root).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    wfdb.dl_files("ptb-xl", str(root), [DATABASE_CSV, STATEMENTS_CSV])
    with open(root / DATABASE_CSV, newline="", encoding="utf-8") as f:
        names = [row[FILE_COLUMN[rate]] for row in csv.DictReader(f)]
    wfdb.dl_database("ptb-xl", str(root), records=names, keep_subdirs=True)
    return root


class PTBXLDataModule(WFDBRecordingDataModule):
    """PTB-XL 12-lead ECGs with diagnostic-superclass labels and the ``strat_fold`` split (module docstring).

    Args:
        root: folder holding ``ptbxl_database.csv``, ``scp_statements.csv`` and ``records100/`` / ``records500/``.
        rate: 500 (``filename_hr``, default) or 100 (``filename_lr``) Hz version of the records.
        label_mode: ``'superclass_single'`` (5 classes NORM, MI, STTC, CD, HYP; records with exactly one) or
            ``'none'`` (unlabelled, every record).
        min_likelihood: ignore statements of ``scp_codes`` with a likelihood [%] below this (default 0: all).
        train_folds / val_folds / test_folds: ``strat_fold`` values (1-10) of each split; default 1-8 / 9 / 10.
        window_seconds / stride_seconds: window length (default 10 s: the whole record, 2000 samples) and step [s];
            shorter windows all carry the record's label.
        other arguments: see :class:`~neurorvq.data.windows.RecordingDataModule`.

    Batches: ``{"signal": float32 [B, 12, 2000] mV at 200 Hz, "channel_ids": int64 [B, 12], "label": int64 [B]
    (0..4 = NORM, MI, STTC, CD, HYP; absent with label_mode='none'), "subject": int64 [B] (patient_id)}``.
    """

    dataset_name = "PTB-XL"
    root_layout = f"{DATABASE_CSV}, {STATEMENTS_CSV} and the records100/ + records500/ folders"

    def __init__(self, root: str, rate: int = 500, label_mode: str = "superclass_single", min_likelihood: float = 0.0,
                 train_folds: Sequence[int] = (1, 2, 3, 4, 5, 6, 7, 8), val_folds: Sequence[int] = (9,),
                 test_folds: Sequence[int] = (10,), window_seconds: float = 10.0, batch_size: int = 64,
                 **common: Any) -> None:
        if rate not in FILE_COLUMN:
            raise ConfigError(f"rate is {rate!r}; use 500 (records500/, filename_hr) or 100 (records100/, filename_lr)")
        if label_mode not in LABEL_MODES:
            raise ConfigError(f"label_mode is {label_mode!r}; use one of {list(LABEL_MODES)}")
        folds = {"train_folds": train_folds, "val_folds": val_folds, "test_folds": test_folds}
        seen: dict[int, str] = {}
        for name, values in folds.items():
            for v in values:
                if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 10:
                    raise ConfigError(f"{name} holds {v!r}; strat_fold values are the integers 1-10")
                if v in seen and seen[v] != name:
                    raise ConfigError(f"fold {v} is in both {seen[v]} and {name}; a fold belongs to one split")
                seen[v] = name
        if not train_folds:
            raise ConfigError("train_folds is empty; give at least one strat_fold (1-10)")
        super().__init__(root, window_seconds=window_seconds, batch_size=batch_size, val_subjects=None,
                         test_subjects=None, val_fraction=0.0, test_fraction=0.0, modality="ecg", **common)
        self.rate = int(rate)
        self.label_mode = label_mode
        self.min_likelihood = float(min_likelihood)
        self.folds = {"train": tuple(sorted(set(train_folds))), "val": tuple(sorted(set(val_folds))),
                      "test": tuple(sorted(set(test_folds)))}
        self.label_names = SUPERCLASSES if label_mode == "superclass_single" else None

    @property
    def excluded(self) -> Counter:
        """Records left out on purpose, by reason (no / several superclasses, fold in no split); after loading."""
        return self.find_excluded

    def default_split(self) -> SplitRule:
        """By the database's ``strat_fold`` column (``train_folds`` / ``val_folds`` / ``test_folds``); a patient's
        records must all fall in one split."""
        return SplitRule(by="strat_fold", train=list(self.folds["train"]), val=list(self.folds["val"]),
                         test=list(self.folds["test"]), unknown="ignore", disjoint="patient")

    def default_pipeline(self) -> Pipeline:
        """The ECG default pipeline; with ``rate=100`` its resampling may upsample 100 -> 200 Hz."""
        pipeline = super().default_pipeline()
        if self.rate == 100:
            pipeline.steps = [replace(s, allow_upsample=True) if isinstance(s, Resample) else s for s in pipeline.steps]
        return pipeline

    # ----------------------------------------------------------------------------------------- finding
    def _skip_row(self, where: str, reason: str) -> None:
        if self.strict:
            raise DataError(f"{where}: {reason} (strict=True; set data.init_args.strict=false to skip bad records "
                            "with a warning)")
        warnings.warn(f"skipped {where}: {reason}", RecordingSkippedWarning, stacklevel=3)
        self.find_skipped[where] = reason

    def _read_database(self) -> list[dict[str, str]]:
        path = self.root / DATABASE_CSV
        if not path.is_file():
            raise DataError(f"{path} not found: set data.init_args.root (the `root` argument of "
                            f"{type(self).__name__}) to the folder holding {self.root_layout}")
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            missing = [c for c in DATABASE_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise DataError(f"{path}: missing column(s) {missing} (columns: {reader.fieldnames})")
            return list(reader)

    def find_recordings(self) -> list[RecordingInfo]:
        rows = self._read_database()
        records = self.root / f"records{self.rate}"
        if rows and not records.is_dir():
            other = 100 if self.rate == 500 else 500
            hint = f"; records{other}/ is there: set data.init_args.rate={other}" if (
                self.root / f"records{other}").is_dir() else ""
            raise DataError(f"{records} not found: rate={self.rate} reads the records listed in "
                            f"{FILE_COLUMN[self.rate]} from it{hint}")
        table: dict[str, str] = {}
        if self.label_mode == "superclass_single":
            statements = self.root / STATEMENTS_CSV
            if not statements.is_file():
                raise DataError(f"{statements} not found (needed for label_mode='{self.label_mode}'): set "
                                f"data.init_args.root to the folder holding {self.root_layout}")
            table = diagnostic_classes(statements)
        infos: list[RecordingInfo] = []
        for line, row in enumerate(rows, 2):
            filename = (row.get(FILE_COLUMN[self.rate]) or "").strip()
            where = str(self.root / f"{filename}.hea") if filename else f"{self.root / DATABASE_CSV} line {line}"
            try:
                if not filename:
                    raise DataError(f"empty {FILE_COLUMN[self.rate]}")
                ecg_id = _integer(row["ecg_id"], "ecg_id")
                patient = _integer(row["patient_id"], "patient_id")
                fold = _integer(row["strat_fold"], "strat_fold")
                label = None
                if self.label_mode == "superclass_single":
                    classes = superclasses(parse_scp_codes(row["scp_codes"]), table, self.min_likelihood)
                    if len(classes) != 1:
                        self.excluded["no diagnostic superclass" if not classes else "several superclasses"] += 1
                        continue
                    label = SUPERCLASSES.index(classes[0])
            except DataError as exc:
                self._skip_row(where, f"ecg_id {row.get('ecg_id')!r}: {exc}")
                continue
            infos.append(RecordingInfo(self.root / f"{filename}.hea", str(patient), patient,
                                       {"ecg_id": ecg_id, "fold": fold, "label": label},
                                       columns={"ecg_id": ecg_id, "strat_fold": fold, "patient": patient}))
        if self.excluded:
            self._say(f"{self.dataset_name}: records left out: " + ", ".join(f"{k}: {v}" for k, v in
                                                                             sorted(self.excluded.items())))
        return infos

    def load_windows(self, info: RecordingInfo, pipeline: Pipeline) -> list[WindowSet]:
        recording, _ = self.read_recording(info, pipeline)
        label = info.metadata.get("label")
        return [self.cut(recording, info, labels=None if label is None else [label])]


__all__ = ["DATABASE_COLUMNS", "FILE_COLUMN", "LABEL_MODES", "PTBXLDataModule", "STATEMENT_COLUMNS", "SUPERCLASSES",
           "diagnostic_classes", "download", "parse_scp_codes", "superclasses"]
