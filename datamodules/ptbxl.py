"""PTB-XL (PhysioNet ``ptb-xl`` v1.0.3: 21,799 clinical 12-lead ECGs of 10 s from 18,869 patients) as a
LightningDataModule (``neurorvq.datamodules.ptbxl``).

Layout of ``root`` (as published and as :func:`download` writes it)::

    ptbxl_database.csv      one row per ECG: ecg_id, patient_id, ..., scp_codes, ..., strat_fold, filename_lr,
                            filename_hr
    scp_statements.csv      one row per SCP-ECG statement (first column: the code), with diagnostic,
                            diagnostic_class, diagnostic_subclass, ...
    records100/00000/00001_lr.hea/.dat   the 100-Hz version of every record (filename_lr)
    records500/00000/00001_hr.hea/.dat   the 500-Hz version (filename_hr)

A missing CSV is a :class:`DataError` naming it (``ptbxl_database.csv`` always; ``scp_statements.csv`` for every
labelled mode) and saying how to get it (:func:`download`, or ``root`` pointing at the right folder).

Rates (``rate``, ``input_rate``; ../shared/docs/benchmarks.md §4.3). ``rate`` (500 default, or 100) chooses the
version of the records read. ``input_rate`` is the rate of the samples the model is given:

* ``200`` (default, the project's reading): resample to the ECG spec's 200 Hz; a 10-s record is 12 leads x 2000
  samples = 12 x 50 patches of 40 = 600 tokens. 500 -> 200 Hz is a decimation; 100 -> 200 Hz is a 2x upsampling,
  beyond :class:`~neurorvq.data.preprocess.Resample`'s default limit, so with ``rate=100`` the default pipeline
  sets ``Resample(allow_upsample=True)`` on purpose (the 100-Hz version holds nothing above 50 Hz).
* ``input_rate == rate`` (``500``, or ``100``): no resampling. The preprocessing steps run at the record's own
  rate (their filter frequencies are true Hz); then the samples are handed to the model unchanged, as if they
  were at 200 Hz: a 40-sample patch spans 80 ms at 500 Hz. The official tokenizer example reads PTB-XL this way
  and keeps the first 2000 samples (4 s): ``rate: 500, input_rate: 500, window_seconds: 4.0, windows: first``
  (add ``steps: [{step: PickChannels}]`` for its unfiltered input). Which reading the released ECG model was
  trained on is not known (benchmarks.md §4.3); test both against the checkpoint when it is available.

``window_seconds`` / ``stride_seconds`` are seconds of the record in both readings; a window holds
``window_seconds x input_rate`` samples, a whole number of 40-sample patches. ``windows``: ``'all'`` (default:
every window of the sliding grid) or ``'first'`` (only the window at the record's start).

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
* The benchmark's labelling (benchmarks.md §4.2, as the official NeuroRVQ preprocessing builds it): one label per
  record from its **top diagnostic statement**, the statement of ``scp_codes`` with ``diagnostic == 1`` and the
  highest likelihood, taken in the dict's order with a strict ``>`` (a tie keeps the first; a likelihood of 0
  counts; statements under ``min_likelihood``, default 0, are ignored). A record without a diagnostic statement
  (the official ``"None"``) is left out and counted as ``excluded['no diagnostic statement']``.

  - ``'top_statement_superclass'`` (the "5-class" task): that statement's ``diagnostic_class``. Classes in
    :data:`SUPERCLASSES` order, NORM, MI, STTC, CD, HYP (the labels of ``superclass_single``); a class the file
    has beyond these would follow in file order.
  - ``'top_statement_subclass'``: its ``diagnostic_subclass`` (23 in PTB-XL 1.0.3). Classes in **file order**:
    the order in which the subclasses first appear among the diagnostic statements of ``scp_statements.csv``
    (chosen for consistency with ``top_statement``; the official code stores names and its encoding is not
    published; accuracy does not depend on the order).
  - ``'top_statement'``: the statement code itself, classes = the diagnostic statements in **file order** (44 in
    PTB-XL 1.0.3: NDT, NST_, DIG, LNGQT, NORM, IMI, ASMI, LVH, LAFB, ISC_, ..., 3AVB, INJIL, 2AVB).

  Class names always come from ``scp_statements.csv``, never from a fixed list; :attr:`label_names` holds them
  after :meth:`setup`. Every window carries the code in the column ``top_statement``.

  ``min_class_records`` (default 0: keep every class of the file): drop the classes that are the label of fewer
  than that many records, counted over every labelled row of ``ptbxl_database.csv`` (all ten ``strat_fold``
  values, before the split); their records are left out (``excluded['class with fewer than k records']``) and
  the remaining classes keep their order, renumbered from 0. :attr:`class_counts` gives every class's count
  before dropping, :attr:`dropped_classes` what was dropped.

  **"43-class" (undetermined).** The benchmark reports a 43-class PTB-XL accuracy (79.17) with 44 diagnostic
  statements in the file; which class is missing cannot be settled without the real ``ptbxl_database.csv``.
  Best reading (benchmarks.md §4.2 [I]), used by ``recipes/benchmarks/ecg_ptbxl_43class.yaml``:
  ``label_mode: top_statement, min_class_records: 1``, i.e. (a) one of the 44 statements is the top statement
  of no record. Other candidates: (b) a rare statement was dropped: ``min_class_records: k`` with ``k`` one more
  than its count and no more than the next smallest count; (c) a class absent from one part of the split (e.g.
  the test fold 10) was left out, or another labelling: not implemented. To decide, count records per top
  statement with the real file: ``count_top_statements('data/benchmarks/ptb-xl')`` (and
  ``folds=[10]`` for (c)). Exactly one zero: (a). No zero and one clearly smallest class: (b). Several zeros
  (so ``min_class_records: 1`` gives fewer than 43 classes): neither, the question stays open.
* ``'none'``: every record, unlabelled (pretraining).

A row whose ``scp_codes`` (or ``patient_id``, ``strat_fold``, file name) does not parse is skipped with a
:class:`~neurorvq.data.windows.RecordingSkippedWarning` naming the record (a :class:`DataError` in strict mode)
and listed in :attr:`summary` ``['skipped']``.

Split: the recommended ``strat_fold`` column (10 stratified folds; all records of a patient are in one fold):
train = folds 1-8, val = fold 9, test = fold 10 by default (``train_folds`` / ``val_folds`` / ``test_folds``;
folds in none of them are not loaded). The subject is the patient (``patient_id``, name ``'15709'``, id 15709); a
patient whose records fall into two splits is a :class:`DataError`. Every window carries the columns ``ecg_id``,
``strat_fold`` and ``patient``, so 10-fold cross-validation over the published folds is
``neurorvq cv --group_by strat_fold --folds_file neurorvq/splits/ptbxl_strat_fold.json`` (``neurorvq.splits.path(
"ptbxl_strat_fold")``; fold ``k`` holds out ``strat_fold`` k), and one such fold is
``split: {file: <that file>, fold: "10"}``.
"""

from __future__ import annotations

import csv
import warnings
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from neurorvq.data.preprocess import DataError, Pipeline, Resample
from neurorvq.data.split_rules import SplitRule
from neurorvq.data.windows import RecordingInfo, RecordingSkippedWarning, WindowSet
from neurorvq.datamodules.ptbxl_tables import (DATABASE_COLUMNS, DATABASE_CSV, NO_STATEMENT, STATEMENT_COLUMNS,
                                               STATEMENTS_CSV, SUPERCLASSES, TOP_STATEMENT_LEVELS,
                                               DiagnosticStatements, count_top_statements, diagnostic_classes,
                                               missing_csvs, parse_integer, parse_scp_codes, read_database,
                                               read_statements, superclasses, top_statement)
from neurorvq.datamodules.wfdb_folder import WFDBRecordingDataModule
from neurorvq.errors import ConfigError
from neurorvq.registry import get_modality

LABEL_MODES: tuple[str, ...] = ("superclass_single", *TOP_STATEMENT_LEVELS, "none")
WINDOWS: tuple[str, ...] = ("all", "first")
FILE_COLUMN = {100: "filename_lr", 500: "filename_hr"}


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
    """PTB-XL 12-lead ECGs with diagnostic labels and the ``strat_fold`` split (module docstring).

    Args:
        root: folder holding ``ptbxl_database.csv``, ``scp_statements.csv`` and ``records100/`` / ``records500/``.
        rate: 500 (``filename_hr``, default) or 100 (``filename_lr``) Hz version of the records.
        input_rate: rate [Hz] of the samples the model gets: 200 (default: resampled to the ECG spec's rate) or
            ``rate`` (the records' own samples, not resampled, read by the model as 200 Hz: the official
            tokenizer example's reading).
        label_mode: ``'superclass_single'`` (5 classes NORM, MI, STTC, CD, HYP; records with exactly one),
            ``'top_statement_superclass'`` / ``'top_statement_subclass'`` / ``'top_statement'`` (class, subclass
            or code of the top diagnostic statement: 5 / 23 / 44 classes in PTB-XL 1.0.3) or ``'none'``
            (unlabelled, every record).
        min_likelihood: ignore statements of ``scp_codes`` with a likelihood [%] below this (default 0: all).
        min_class_records: top-statement modes: drop the classes with fewer records (over the whole database)
            and their records; 0 (default) keeps every class of ``scp_statements.csv``. ``1`` with
            ``top_statement`` is the best reading of the "43-class" task (module docstring; undetermined).
        train_folds / val_folds / test_folds: ``strat_fold`` values (1-10) of each split; default 1-8 / 9 / 10.
        window_seconds / stride_seconds: window length (default 10 s: the whole record) and step [s of the
            record]; a window holds ``window_seconds x input_rate`` samples (2000 by default); shorter windows
            all carry the record's label.
        windows: ``'all'`` windows of the sliding grid (default) or only the ``'first'`` one of each record.
        other arguments: see :class:`~neurorvq.data.windows.RecordingDataModule`.

    Batches: ``{"signal": float32 [B, 12, T] mV (T = window_seconds x input_rate, 2000 by default),
    "channel_ids": int64 [B, 12], "label": int64 [B] (class index in :attr:`label_names`; absent with
    label_mode='none'), "subject": int64 [B] (patient_id)}``.
    """

    dataset_name = "PTB-XL"
    root_layout = f"{DATABASE_CSV}, {STATEMENTS_CSV} and the records100/ + records500/ folders"

    def __init__(self, root: str, rate: int = 500, label_mode: str = "superclass_single", min_likelihood: float = 0.0,
                 min_class_records: int = 0, train_folds: Sequence[int] = (1, 2, 3, 4, 5, 6, 7, 8),
                 val_folds: Sequence[int] = (9,), test_folds: Sequence[int] = (10,), window_seconds: float = 10.0,
                 stride_seconds: float | None = None, input_rate: int = 200, windows: str = "all",
                 batch_size: int = 64, **common: Any) -> None:
        if rate not in FILE_COLUMN:
            raise ConfigError(f"rate is {rate!r}; use 500 (records500/, filename_hr) or 100 (records100/, filename_lr)")
        if label_mode not in LABEL_MODES:
            raise ConfigError(f"label_mode is {label_mode!r}; use one of {list(LABEL_MODES)}")
        if isinstance(min_class_records, bool) or not isinstance(min_class_records, int) or min_class_records < 0:
            raise ConfigError(f"min_class_records is {min_class_records!r}; give a whole number >= 0 (0: keep every "
                              "class)")
        if min_class_records and label_mode not in TOP_STATEMENT_LEVELS:
            raise ConfigError(f"min_class_records={min_class_records} applies to the label modes "
                              f"{list(TOP_STATEMENT_LEVELS)}, not {label_mode!r}; remove it or change label_mode")
        spec = get_modality("ecg")
        if isinstance(input_rate, bool) or input_rate not in (spec.sampling_rate, rate):
            raise ConfigError(f"input_rate is {input_rate!r}; use {spec.sampling_rate:g} (resample to the ECG spec's "
                              f"rate, default) or {rate} (= rate: the records' own samples, not resampled, as the "
                              "official tokenizer example feeds them)")
        if windows not in WINDOWS:
            raise ConfigError(f"windows is {windows!r}; use 'all' (every window of each record) or 'first'")
        samples = float(window_seconds) * input_rate
        if not samples > 0 or abs(samples / spec.patch_length - round(samples / spec.patch_length)) > 1e-6:
            raise ConfigError(f"window_seconds={window_seconds} at input_rate={input_rate} Hz is {samples:g} samples, "
                              f"not a whole number of {spec.patch_length}-sample patches; use a multiple of "
                              f"{spec.patch_length / input_rate:g} s")
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
        # The base counts seconds at the spec's 200 Hz: with input_rate=rate the samples are read as 200-Hz ones.
        scale = input_rate / spec.sampling_rate
        super().__init__(root, window_seconds=float(window_seconds) * scale,
                         stride_seconds=None if stride_seconds is None else float(stride_seconds) * scale,
                         batch_size=batch_size, val_subjects=None, test_subjects=None, val_fraction=0.0,
                         test_fraction=0.0, modality="ecg", **common)
        self.rate = int(rate)
        self.input_rate = int(input_rate)
        self.windows = windows
        self.label_mode = label_mode
        self.min_likelihood = float(min_likelihood)
        self.min_class_records = int(min_class_records)
        self.folds = {"train": tuple(sorted(set(train_folds))), "val": tuple(sorted(set(val_folds))),
                      "test": tuple(sorted(set(test_folds)))}
        self.label_names = SUPERCLASSES if label_mode == "superclass_single" else None
        self.class_counts: dict[str, int] = {}
        """Top-statement modes, after loading: records per class of ``scp_statements.csv`` (label order, zeros
        included) over every labelled row of the database, before ``min_class_records``."""
        self.dropped_classes: dict[str, int] = {}
        """Classes ``min_class_records`` dropped, with their record counts."""

    @property
    def excluded(self) -> Counter:
        """Records left out on purpose, by reason (no / several superclasses, no diagnostic statement, a dropped
        class, fold in no split); after loading."""
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

    def make_pipeline(self) -> Pipeline:
        """The pipeline; with ``input_rate == rate`` it runs at the record's rate (its Resample does nothing)."""
        pipeline = super().make_pipeline()
        if self.input_rate != pipeline.spec.sampling_rate:
            # bands are for reports, not preprocessing (and may not fit under a 100-Hz Nyquist)
            spec = replace(pipeline.spec, sampling_rate=float(self.input_rate), bands=())
            pipeline = Pipeline(spec, pipeline.steps)
        return pipeline

    # ----------------------------------------------------------------------------------------- finding
    def _skip_row(self, where: str, reason: str) -> None:
        if self.strict:
            raise DataError(f"{where}: {reason} (strict=True; set data.init_args.strict=false to skip bad records "
                            "with a warning)")
        warnings.warn(f"skipped {where}: {reason}", RecordingSkippedWarning, stacklevel=3)
        self.find_skipped[where] = reason

    def _label_tables(self) -> tuple[dict[str, str], DiagnosticStatements | None]:
        """The superclass table (``superclass_single``) or the diagnostic statements (top-statement modes)."""
        if self.label_mode == "none":
            return {}, None
        path = self.root / STATEMENTS_CSV
        if self.label_mode == "superclass_single":
            return diagnostic_classes(path), None
        statements = read_statements(path)
        statements.class_names(TOP_STATEMENT_LEVELS[self.label_mode])  # an incomplete file fails before loading
        return {}, statements

    def find_recordings(self) -> list[RecordingInfo]:
        missing_csvs(self.root, (DATABASE_CSV,) if self.label_mode == "none" else (DATABASE_CSV, STATEMENTS_CSV))
        rows = read_database(self.root / DATABASE_CSV)
        records = self.root / f"records{self.rate}"
        if rows and not records.is_dir():
            other = 100 if self.rate == 500 else 500
            hint = f"; records{other}/ is there: set data.init_args.rate={other}" if (
                self.root / f"records{other}").is_dir() else ""
            raise DataError(f"{records} not found: rate={self.rate} reads the records listed in "
                            f"{FILE_COLUMN[self.rate]} from it{hint}")
        table, statements = self._label_tables()
        level = TOP_STATEMENT_LEVELS.get(self.label_mode)
        found: list[tuple[RecordingInfo, str | None]] = []  # with the class name of a top-statement mode
        for line, row in enumerate(rows, 2):
            filename = (row.get(FILE_COLUMN[self.rate]) or "").strip()
            where = str(self.root / f"{filename}.hea") if filename else f"{self.root / DATABASE_CSV} line {line}"
            try:
                if not filename:
                    raise DataError(f"empty {FILE_COLUMN[self.rate]}")
                ecg_id = parse_integer(row["ecg_id"], "ecg_id")
                patient = parse_integer(row["patient_id"], "patient_id")
                fold = parse_integer(row["strat_fold"], "strat_fold")
                label, name, columns = None, None, {"ecg_id": ecg_id, "strat_fold": fold, "patient": patient}
                if self.label_mode == "superclass_single":
                    classes = superclasses(parse_scp_codes(row["scp_codes"]), table, self.min_likelihood)
                    if len(classes) != 1:
                        self.excluded["no diagnostic superclass" if not classes else "several superclasses"] += 1
                        continue
                    label = SUPERCLASSES.index(classes[0])
                elif statements is not None:
                    code = top_statement(parse_scp_codes(row["scp_codes"]), statements.codes, self.min_likelihood)
                    if code is None:
                        self.excluded["no diagnostic statement"] += 1
                        continue
                    name = statements.class_of(code, level)
                    columns["top_statement"] = code
            except DataError as exc:
                self._skip_row(where, f"ecg_id {row.get('ecg_id')!r}: {exc}")
                continue
            found.append((RecordingInfo(self.root / f"{filename}.hea", str(patient), patient,
                                        {"ecg_id": ecg_id, "fold": fold, "label": label}, columns=columns), name))
        if statements is not None:
            found = self._number_classes(found, statements.class_names(level))
        if self.excluded:
            self._say(f"{self.dataset_name}: records left out: " + ", ".join(f"{k}: {v}" for k, v in
                                                                             sorted(self.excluded.items())))
        return [info for info, _ in found]

    def _number_classes(self, found: list[tuple[RecordingInfo, str | None]],
                        names: tuple[str, ...]) -> list[tuple[RecordingInfo, str | None]]:
        """Count the records per class, drop the classes under ``min_class_records`` (and their records), set
        :attr:`label_names` and each record's label (its class's index among the kept ones)."""
        counts = Counter(name for _, name in found)
        self.class_counts = {name: counts[name] for name in names}
        kept = tuple(name for name in names if counts[name] >= self.min_class_records)
        self.dropped_classes = {name: counts[name] for name in names if name not in kept}
        self.label_names = kept
        if self.dropped_classes:
            self._say(f"{self.dataset_name}: {len(self.dropped_classes)} class(es) with fewer than "
                      f"{self.min_class_records} records dropped: {self.dropped_classes}; {len(kept)} classes left")
        out = []
        for info, name in found:
            if name not in kept:
                self.excluded[f"class with fewer than {self.min_class_records} records"] += 1
                continue
            info.metadata["label"] = kept.index(name)
            out.append((info, name))
        return out

    def load_windows(self, info: RecordingInfo, pipeline: Pipeline) -> list[WindowSet]:
        recording, _ = self.read_recording(info, pipeline)
        if recording.sfreq != self.spec.sampling_rate:  # input_rate == rate: the samples, read as 200-Hz ones
            recording.sfreq = self.spec.sampling_rate
        label = info.metadata.get("label")
        starts = np.zeros(1, dtype=np.int64) if self.windows == "first" else None
        return [self.cut(recording, info, starts=starts, labels=None if label is None else [label])]


# the label tables' names are re-exported: neurorvq.datamodules.ptbxl is where users (and the docs) find them
__all__ = ["DATABASE_COLUMNS", "DiagnosticStatements", "FILE_COLUMN", "LABEL_MODES", "NO_STATEMENT",
           "PTBXLDataModule", "STATEMENT_COLUMNS", "SUPERCLASSES", "TOP_STATEMENT_LEVELS", "WINDOWS",
           "count_top_statements", "diagnostic_classes", "download", "parse_scp_codes", "read_statements",
           "superclasses", "top_statement"]
