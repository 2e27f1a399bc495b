"""The papers' benchmark tables as data: each table's rows (task, dataset, recipe, official split, data folder,
classes, the published metric, how to get the data and its licence) and its published numbers
(:mod:`neurorvq.benchmarks.published`).

Built-in tables (``neurorvq benchmark --table NAME``): ``eeg`` (the five EEG tasks of the MLSP'25 benchmark,
../shared/docs/benchmarks.md §1-3), ``ecg`` (PTB-XL), ``emg`` (four gesture datasets) and ``recon`` (alias
``reconstruction``: reconstruction of unseen EEG, :mod:`neurorvq.benchmarks.recon`). A row without a recipe is
listed as "not yet available".

A row's split is one of (:func:`split_kind`):

* a split file with **folds** (``folds``): fold ``k`` tests the values its ``k``-th fold lists, by the row's
  ``group_by`` column (``subject``; ``strat_fold`` for PTB-XL), as many folds as the file has;
* a split file with **parts** (``parts``: train / val / test, or train / test): one split, run as one fold
  (:func:`~neurorvq.crossval.folds.parts_fold`); ``val_group_by`` draws clean validation groups from a finer
  column (EMG-EPN-612: subjects inside the ``user_set`` split);
* ``dataset`` (``dataset``): the DataModule's own published split (its ``default_split``, e.g. Discrete Gestures'
  corpus CSV), resolved without loading when the row runs and written into the run folder as a parts file by
  subject (:func:`neurorvq.benchmarks.run.resolve_dataset_split`);
* for reconstruction rows (``metric: mse``) no split file: ``split`` names the DataModule split the harness reads
  (``train``, the default, holding every subject in the recon recipes; ``test`` for the BrainOmni sample), whose
  windows are drawn reproducibly (:mod:`neurorvq.benchmarks.recon`).

A table is a classification table (balanced accuracy / accuracy rows) or a reconstruction table (every row
``metric: mse``); a table file mixing the two is refused.

A table file (``--table path/to/table.yaml``) has the same shape, in YAML::

    table: two-tasks                # key: the output folder <out>/<key>/ (default: the file name without suffix)
    title: Two EEG tasks            # heading of table.md (default: the key)
    rows:                           # the table's task columns, in order
      - key: eyes                   # short name (letters, digits, _ and -): --rows, --root eyes=PATH, output folder
        task: Eyes                  # column title (default: the key)
        dataset: EEGMMIDB R01/R02   # what the data is, for --list and messages (default: the key)
        recipe: eyes.yaml           # fine-tuning recipe: relative to this file, absolute, or a file under --recipes;
                                    # a row without one is "not yet available"
        split: eyes.json            # split file with folds or parts (relative to this file or absolute), a name
                                    # of neurorvq.splits (hgd, kuerp, ..., epn612, uci_emg), or "dataset" (the
                                    # DataModule's own split); a reconstruction row: the DataModule split the
                                    # harness reads (train, the default, or val / test)
        group_by: subject           # the column the split's values belong to (default subject)
        val_group_by: subject       # optional: clean validation groups from this finer column
        all_classes_in_test: true   # refuse a test part missing a class (false: allow it)
        note: "4-s windows [I]"     # optional: protocol choices, shown in --list and under the table
        undetermined: "..."         # optional: what stays open; the row is marked "(undetermined)"
        folder: eegmmidb            # data folder under --data_dir (default: the key)
        root: /data/eegmmidb        # optional: the data folder itself (--root eyes=PATH still wins)
        classes: 2                  # optional: checked against the recipe's model.init_args.num_classes
        metric: balanced_accuracy   # what the paper reports for the row (balanced_accuracy, accuracy, mse)
        balance_per_subject: true   # parity protocol: per-subject balanced undersampling of the training windows
        get: PhysioNet eegmmidb     # how to obtain the data (messages and --list)
        licence: ODC-By-1.0
        extra: benchmarks           # optional: the pip extra its reader needs (pip install 'neurorvq[benchmarks]')
    published:                      # optional published numbers, shown as "<model> (published)"
      - model: NeuroRVQ
        source: NeuroRVQ README     # where the numbers come from
        metric: balanced_accuracy
        scores: {eyes: [0.869, 0.026]}   # row key -> [mean, std], [mean] or mean; rows not listed show —
        mean: [0.749, 0.037]             # optional published Mean column (default: computed when every row has one)
        size: 5.9M                       # optional
        folds: 10                        # optional: how many folds the published numbers are over

Relative paths of a table file (recipe, split, root) are read against the file's folder. Every mistake is a
:class:`~neurorvq.errors.ConfigError` naming the file and the key.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from neurorvq.benchmarks.published import BUILT_IN, PublishedModel, Score
from neurorvq.errors import ConfigError
from neurorvq.suggest import did_you_mean

METRICS = ("balanced_accuracy", "accuracy", "mse")
"""Metrics a row may report."""
_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
NOT_AVAILABLE = "not yet available"
DATASET_SPLIT = "dataset"
"""``split: dataset``: the DataModule's own published split (its ``default_split``), resolved when the row runs."""
UNDETERMINED = "undetermined"
ALIASES = {"reconstruction": "recon"}
RECON_SPLITS = ("train", "val", "test")
"""The DataModule splits a reconstruction row may read."""
"""Other names of built-in tables."""


@dataclass(frozen=True)
class Row:
    """One task column of a table. ``recipe`` is a file name under the recipes folder (built-in tables) or a path
    (table files); ``split`` a name of :mod:`neurorvq.splits`, a split-file path or :data:`DATASET_SPLIT`
    (``None`` for a reconstruction row); ``group_by`` the column its values belong to; ``val_group_by`` the column
    clean validation groups are drawn from (``None``: ``group_by``); ``folder`` the data folder under
    ``--data_dir``; ``root`` an explicit data folder (table files); ``all_classes_in_test``: refuse a test part
    missing a class; ``note`` the row's protocol choices; ``undetermined`` what stays open (the row is marked).
    ``recipe is None``: not yet available."""

    key: str
    task: str
    dataset: str
    recipe: str | None = None
    split: str | None = None
    folder: str | None = None
    classes: int | None = None
    metric: str = "balanced_accuracy"
    balance_per_subject: bool = True
    get: str = ""
    licence: str = ""
    extra: str | None = None
    root: str | None = None
    group_by: str = "subject"
    val_group_by: str | None = None
    all_classes_in_test: bool = True
    note: str = ""
    undetermined: str = ""

    @property
    def reconstruction(self) -> bool:
        """A reconstruction row (metric ``mse``): no split file, no classes."""
        return self.metric == "mse"

    @property
    def read_split(self) -> str:
        """A reconstruction row's DataModule split the harness reads (``split``, default ``train``)."""
        return self.split or "train"

    @property
    def available(self) -> bool:
        """Whether the row can run (it has a recipe, and a split unless it is a reconstruction row)."""
        return self.recipe is not None and (self.split is not None or self.reconstruction)

    @property
    def data_folder(self) -> str:
        return self.folder or self.key

    @property
    def column(self) -> str:
        """The column title: the task, marked ``(undetermined)`` when the row's reading is open."""
        return f"{self.task} ({UNDETERMINED})" if self.undetermined else self.task


@dataclass(frozen=True)
class Table:
    """A benchmark table: rows (task columns) in order, the published models, where the layout comes from, and the
    table file it was read from (``None`` for built-ins; relative paths of its rows are read against its folder)."""

    key: str
    title: str
    rows: tuple[Row, ...]
    published: tuple[PublishedModel, ...] = ()
    source: str = ""
    path: Path | None = field(default=None, compare=False)

    @property
    def kind(self) -> str:
        """``"reconstruction"`` (every row reports MSE) or ``"classification"``."""
        return "reconstruction" if self.rows and all(r.reconstruction for r in self.rows) else "classification"

    def row(self, key: str) -> Row:
        for row in self.rows:
            if row.key == key:
                return row
        keys = [r.key for r in self.rows]
        raise ConfigError(f"table '{self.key}' has no row {key!r}{did_you_mean(key, keys)} (rows: {', '.join(keys)})")

    @property
    def base(self) -> Path | None:
        """The folder relative paths of a table file are read against."""
        return None if self.path is None else self.path.parent


# ------------------------------------------------------------------------------------------------ built-in tables
_EXTRA_NOTE = "needs pip install 'neurorvq[benchmarks]'"

EEG_ROWS: tuple[Row, ...] = (
    Row("motor", "Motor", "High-Gamma (Schirrmeister 2017)", "motor_high_gamma.yaml", "hgd", "high_gamma", 4,
        balance_per_subject=False,  # the official fine-tuning example overrides the balancing: "already balanced"
        get="MOABB Schirrmeister2017 (GIN robintibor/high-gamma-dataset: 14 subjects x 2 EDF, about 15 GB)",
        licence="CC-BY-4.0", extra="benchmarks"),
    Row("erp", "ERP", "KU ERP speller (Lee 2019)", "erp_kuerp.yaml", "kuerp", "kuerp", 2,
        get="MOABB Lee2019_ERP (GigaDB 100542: 54 subjects x 2 sessions, tens of GB)",
        licence="unresolved (MOABB: GPL-3.0; article CC BY 4.0; GigaDB usually CC0): check the GigaDB page",
        extra="benchmarks"),
    Row("memory", "Memory", "Pavlov 2022 digit span (OpenNeuro ds003838)", "memory_pavlov.yaml", "pavlov",
        "pavlov2022", 2,
        get="OpenNeuro ds003838 with openneuro-py, only the 65 subjects' digit-span EEG (the whole dataset is 100 GB)",
        licence="CC0", extra="benchmarks"),
    Row("sleep", "Sleep*", "Sleep-EDF Expanded, sleep cassette", "sleep_sleep_edf.yaml", "sleepedf", "sleep-edf", 6,
        get="PhysioNet sleep-edfx 1.0.0 with MNE sleep_physionet.age.fetch_data (78 subjects, 153 nights, about 8 GB)",
        licence="ODC-By-1.0"),
    Row("eyes", "Eyes", "EEGMMIDB runs R01/R02", "eyes_eegmmidb.yaml", "eyes", "eegmmidb", 2,
        get="PhysioNet eegmmidb 1.0.0 runs 1-2 with MNE eegbci.load_data (103 subjects, 206 EDF files, about 260 MB)",
        licence="ODC-By-1.0"),
)
_PTBXL_GET = "PhysioNet ptb-xl 1.0.3 (neurorvq.datamodules.ptbxl.download; about 1.7 GB for the 500-Hz records)"
_PTBXL_NOTE = ("10-fold CV over PTB-XL's patient-disjoint strat_fold column, fold k testing strat_fold k [I] (the "
               "published protocol is only \"subject-independent\"); the customary single split 1-8 / 9 / 10 is the "
               "recipe's own train_folds / val_folds / test_folds (neurorvq fit). Label of the top diagnostic "
               "statement (official preprocessing, benchmarks.md §4.2), records without one dropped [I]; 10-s records "
               "resampled 500 -> 200 Hz [I] (input_rate: 500 is the official example's other reading); parity adds "
               "no per-patient undersampling (the official ECG fine-tuning code is not released)")
ECG_ROWS: tuple[Row, ...] = (
    Row("ptbxl_5class", "PTB-XL 5-class", "PTB-XL 1.0.3 (diagnostic superclass of the top statement)",
        "ecg_ptbxl_5class.yaml", "ptbxl_strat_fold", folder="ptb-xl", classes=5, metric="accuracy",
        balance_per_subject=False, get=_PTBXL_GET, licence="CC BY 4.0", group_by="strat_fold", note=_PTBXL_NOTE),
    Row("ptbxl_43class", "PTB-XL 43-class", "PTB-XL 1.0.3 (top diagnostic statement)", "ecg_ptbxl_43class.yaml",
        "ptbxl_strat_fold", folder="ptb-xl", classes=43, metric="accuracy", balance_per_subject=False,
        get=_PTBXL_GET, licence="CC BY 4.0", group_by="strat_fold", all_classes_in_test=False,
        note=_PTBXL_NOTE + "; rare statements are absent from some strat_fold test parts, which is allowed",
        undetermined=("which of the 44 diagnostic statements is not a class: the recipe drops the statements that "
                      "are no record's top statement (min_class_records: 1); decide with "
                      "neurorvq.datamodules.ptbxl.count_top_statements(<root>) on the real ptbxl_database.csv "
                      "(exactly one zero confirms it); the published 43-class accuracy exceeding the 5-class one "
                      "cannot come from the same predictions (benchmarks.md §4.2)")),
)
_EMG_PARITY = "parity adds no per-subject undersampling (NeuroRVQ's EMG fine-tuning code is not released)"
EMG_ROWS: tuple[Row, ...] = (
    Row("discrete_gestures", "Discrete Gestures", "Meta generic neuromotor interface, discrete gestures",
        "emg_discrete_gestures.yaml", DATASET_SPLIT, folder="discrete_gestures", classes=9,
        metric="balanced_accuracy", balance_per_subject=False,
        get="fb-ctrl-oss.s3.amazonaws.com neuromotor-data (neurorvq.datamodules.discrete_gestures.download; 100 "
            "users)", licence="CC BY-NC 4.0",
        note=("split: Meta's own user split from discrete_gestures_corpus.csv (80 train / 10 val / 10 test users), "
              "resolved from the DataModule and written into the run folder; one split, no folds. Windows [I]: one "
              "0.4-s window per prompted gesture from the prompt time, inside the CSV partitions, 9 gestures, no rest "
              "class; 2 kHz -> 1 kHz for the EMG v1 tokenizer (modality emg, µV) [I]; " + _EMG_PARITY)),
    Row("epn612", "EPN-612", "EMG-EPN-612", "emg_epn612.yaml", "epn612", folder="epn612", classes=6,
        metric="accuracy", balance_per_subject=False, get="Zenodo record 4421500 (EMG-EPN612 Dataset.zip)",
        licence="not verified (check the Zenodo record)", group_by="user_set", val_group_by="subject",
        note=("split: the published user sets (306 training users train, the 306 testing users' labelled "
              "trainingSamples test); one split, no folds; clean validation: 10 % of the training users "
              "(val_group_by subject). Windows [I]: one 2-s window per ~5-s sample, centred on the ground-truth "
              "movement; the Myo's own 200 Hz (modality semg200, a 200-Hz sEMG FM), not the 1-kHz EMG v1 FM [I]; "
              + _EMG_PARITY)),
    Row("ninapro_db5", "NinaPro DB5", "NinaPro DB5", "emg_ninapro_db5.yaml", "ninapro_db5_loso",
        folder="ninapro-db5", classes=52, metric="accuracy", balance_per_subject=False,
        get="ninapro.hevs.ch (registration; DB5_Preproc/s1..s10.zip)", licence="not verified (NinaPro terms)",
        note=("split: leave-one-subject-out over the 10 subjects [I] (fold k tests subject k+1). Windows [I]: 52 "
              "gestures without rest, 1-s windows every 0.5 s inside each repetition; 200 Hz (modality semg200, a "
              "200-Hz sEMG FM), not upsampled to the 1-kHz EMG v1 FM [I]; " + _EMG_PARITY)),
    Row("uci", "UCI-EMG", "UCI EMG data for gestures (id 481)", "emg_uci.yaml", "uci_emg", folder="uci-emg",
        classes=7, metric="accuracy", balance_per_subject=False,
        get="archive.ics.uci.edu/static/public/481/emg+data+for+gestures.zip (neurorvq.datamodules.uci_emg.download)",
        licence="CC BY 4.0",
        note=("split: subjects 1-24 train, 25-30 validation, 31-36 test (TinyMyo's subject-independent split); one "
              "split, no folds (under parity the validation subjects train). Classes 1-7 (7 = extended palm kept; "
              "classes: 6 drops it) [I]; windows [I]: 1-s windows every 0.5 s inside each run of constant class, on "
              "the 200-Hz grid (modality semg200, a 200-Hz sEMG FM) [I]; " + _EMG_PARITY)),
)
_RECON_NOTE = ("every subject's benchmark windows (4 s, 200 Hz, the EEG benchmark's preprocessing) in the train "
               "split the harness reads; --max_windows of them drawn reproducibly (the DataModule's seeded shuffle) "
               "[I]; the published sample size is not stated")
RECON_ROWS: tuple[Row, ...] = (
    Row("brainomni", "OOD (BrainOmni sample)", "BrainOmni EEG sample (assets/example_data.pt)",
        "recon_brainomni.yaml", "test", folder="brainomni", metric="mse",
        get="OpenTSLab/BrainOmni repository, assets/example_data.pt (neurorvq.datamodules.brainomni_sample)",
        licence="MIT",
        note=("one 4-s segment of 64 channels at 256 Hz (the DataModule's test split), resampled to 200 Hz; channels "
              "named by the nearest standard 10-05 position of the stored ones [I]; the stored values are "
              "standardised, read as µV (the metric standardises every window) (datamodules/brainomni_sample.py)")),
    Row("high_gamma", "High-Gamma (unseen)", "High-Gamma (Schirrmeister 2017)", "recon_high_gamma.yaml", "train",
        folder="high_gamma", metric="mse", get=EEG_ROWS[0].get, licence=EEG_ROWS[0].licence, extra="benchmarks",
        note=_RECON_NOTE),
    Row("pavlov", "Working memory (unseen)", "Pavlov 2022 (OpenNeuro ds003838)", "recon_pavlov.yaml", "train",
        folder="pavlov2022", metric="mse", get=EEG_ROWS[2].get, licence=EEG_ROWS[2].licence, extra="benchmarks",
        note=_RECON_NOTE),
)

TABLES: dict[str, Table] = {
    "eeg": Table("eeg", "EEG benchmark (MLSP'25 tasks, official 10-fold subject lists)", EEG_ROWS, BUILT_IN["eeg"],
                 "../shared/docs/benchmarks.md §2-3"),
    "ecg": Table("ecg", "ECG: PTB-XL", ECG_ROWS, BUILT_IN["ecg"], "../shared/docs/benchmarks.md §4"),
    "emg": Table("emg", "EMG gesture recognition", EMG_ROWS, BUILT_IN["emg"], "../shared/docs/benchmarks.md §5"),
    "recon": Table("recon", "Reconstruction of unseen EEG (raw-signal MSE)", RECON_ROWS, BUILT_IN["recon"],
                   "../shared/docs/benchmarks.md §6"),
}
"""The built-in tables, in the order ``--list`` shows them."""


# ------------------------------------------------------------------------------------------------ table files
_TABLE_KEYS = ("table", "title", "rows", "published", "source")
_ROW_KEYS = ("key", "task", "dataset", "recipe", "split", "folder", "root", "classes", "metric", "balance_per_subject",
             "get", "licence", "extra", "group_by", "val_group_by", "all_classes_in_test", "note", "undetermined")
_PUBLISHED_KEYS = ("model", "source", "metric", "scores", "mean", "size", "folds")


def _check_keys(found: Mapping, allowed: tuple[str, ...], where: str) -> None:
    for key in found:
        if key not in allowed:
            raise ConfigError(f"{where}: unknown key {key!r}{did_you_mean(str(key), allowed)} (keys: "
                              f"{', '.join(allowed)})")


def _text(value: Any, where: str, required: bool = False) -> str | None:
    if value is None:
        if required:
            raise ConfigError(f"{where} is missing; give it")
        return None
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        raise ConfigError(f"{where}: expected text, got {value!r:.60}")
    return str(value)


def _row(entry: Any, where: str) -> Row:
    if not isinstance(entry, Mapping):
        raise ConfigError(f"{where}: expected a mapping with key, recipe, split, ..., got {entry!r:.60}")
    _check_keys(entry, _ROW_KEYS, where)
    key = _text(entry.get("key"), f"{where} key 'key'", required=True)
    if not _KEY.match(key):
        raise ConfigError(f"{where} key 'key': {key!r} is not a short name (letters, digits, _ and - only)")
    metric = _text(entry.get("metric"), f"{where} key 'metric'") or "balanced_accuracy"
    if metric not in METRICS:
        raise ConfigError(f"{where} key 'metric': {metric!r} is not one of {', '.join(METRICS)}"
                          f"{did_you_mean(metric, METRICS)}")
    classes = entry.get("classes")
    if classes is not None and (isinstance(classes, bool) or not isinstance(classes, int) or classes < 2):
        raise ConfigError(f"{where} key 'classes': expected an integer >= 2, got {classes!r}")
    flags = {}
    for flag in ("balance_per_subject", "all_classes_in_test"):
        flags[flag] = entry.get(flag, True)
        if not isinstance(flags[flag], bool):
            raise ConfigError(f"{where} key {flag!r}: expected true or false, got {flags[flag]!r}")
    values = {k: _text(entry.get(k), f"{where} key {k!r}") for k in (
        "task", "dataset", "recipe", "split", "folder", "root", "get", "licence", "extra", "group_by", "val_group_by",
        "note", "undetermined")}
    if metric == "mse":
        for unused in ("classes", "group_by", "val_group_by"):
            if entry.get(unused) is not None:
                raise ConfigError(f"{where} key {unused!r}: a reconstruction row (metric mse) has no {unused}; "
                                  "remove it")
        if values["split"] is not None and values["split"] not in RECON_SPLITS:
            raise ConfigError(f"{where} key 'split': a reconstruction row reads one split of its DataModule "
                              f"({', '.join(RECON_SPLITS)}), got {values['split']!r}")
    return Row(key, values["task"] or key, values["dataset"] or key, values["recipe"], values["split"],
               values["folder"], classes, metric, flags["balance_per_subject"], values["get"] or "",
               values["licence"] or "", values["extra"], values["root"], values["group_by"] or "subject",
               values["val_group_by"], flags["all_classes_in_test"], values["note"] or "", values["undetermined"] or "")


def _published(entry: Any, where: str, rows: list[str]) -> PublishedModel:
    if not isinstance(entry, Mapping):
        raise ConfigError(f"{where}: expected a mapping with model, scores, ..., got {entry!r:.60}")
    _check_keys(entry, _PUBLISHED_KEYS, where)
    model = _text(entry.get("model"), f"{where} key 'model'", required=True)
    scores = entry.get("scores") or {}
    if not isinstance(scores, Mapping):
        raise ConfigError(f"{where} key 'scores': expected row key -> [mean, std], got {scores!r:.60}")
    parsed = {}
    for key, value in scores.items():
        if key not in rows:
            raise ConfigError(f"{where} key 'scores.{key}': no row {key!r}{did_you_mean(str(key), rows)} (rows: "
                              f"{', '.join(rows)})")
        parsed[key] = _score(value, f"{where} key 'scores.{key}'")
    metric = _text(entry.get("metric"), f"{where} key 'metric'") or "balanced_accuracy"
    if metric not in METRICS:
        raise ConfigError(f"{where} key 'metric': {metric!r} is not one of {', '.join(METRICS)}")
    folds = entry.get("folds")
    if folds is not None and (isinstance(folds, bool) or not isinstance(folds, int) or folds < 1):
        raise ConfigError(f"{where} key 'folds': expected a positive integer, got {folds!r}")
    return PublishedModel(model, parsed, metric, _score(entry.get("mean"), f"{where} key 'mean'"),
                          _text(entry.get("size"), f"{where} key 'size'"),
                          _text(entry.get("source"), f"{where} key 'source'") or "not stated", folds)


def _score(value: Any, where: str) -> Score | None:
    try:
        return Score.of(value)
    except (TypeError, ValueError, KeyError) as error:
        raise ConfigError(f"{where}: expected a number, [mean] or [mean, std], got {value!r:.60} ({error})") from None


def read_table(path: str | Path) -> Table:
    """A table file (format in the module docstring); :class:`ConfigError` naming the file and key on a mistake."""
    from neurorvq.file_io import read_yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"table file '{path}' does not exist; give a built-in table ({', '.join(TABLES)}) or the "
                          "path of a YAML table file")
    payload = read_yaml(path, "table file")
    if not isinstance(payload, Mapping):
        raise ConfigError(f"table file '{path}': expected a mapping with 'rows', got {payload!r:.60}")
    _check_keys(payload, _TABLE_KEYS, f"table file '{path}'")
    key = _text(payload.get("table"), f"table file '{path}' key 'table'") or path.stem
    if not _KEY.match(key):
        raise ConfigError(f"table file '{path}' key 'table': {key!r} is not a short name (letters, digits, _ and -)")
    entries = payload.get("rows")
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"table file '{path}' key 'rows': expected a non-empty list of rows, got {entries!r:.60}")
    rows = [_row(entry, f"table file '{path}' key 'rows[{i}]'") for i, entry in enumerate(entries)]
    if len({r.reconstruction for r in rows}) > 1:
        raise ConfigError(f"table file '{path}' key 'rows': it mixes reconstruction rows (metric mse) with "
                          "classification rows; put them in two tables")
    keys = [r.key for r in rows]
    twice = sorted({k for k in keys if keys.count(k) > 1})
    if twice:
        raise ConfigError(f"table file '{path}' key 'rows': row key {twice[0]!r} is given twice; keys name the output "
                          "folders, give each row its own")
    published = payload.get("published") or []
    if not isinstance(published, list):
        raise ConfigError(f"table file '{path}' key 'published': expected a list, got {published!r:.60}")
    models = tuple(_published(entry, f"table file '{path}' key 'published[{i}]'", keys)
                   for i, entry in enumerate(published))
    title = _text(payload.get("title"), f"table file '{path}' key 'title'") or key
    return Table(key, title, tuple(rows), models, _text(payload.get("source"), f"table file '{path}' key 'source'")
                 or str(path), path.resolve())


def get_table(name: str) -> Table:
    """A built-in table by name, or a table file by path (a name ending in ``.yaml``/``.yml`` or an existing file)."""
    name = ALIASES.get(name, name)
    if name in TABLES:
        return TABLES[name]
    if name.endswith((".yaml", ".yml")) or Path(name).is_file():
        return read_table(name)
    raise ConfigError(f"--table {name!r}: no such table{did_you_mean(name, TABLES)}; give one of "
                      f"{', '.join(TABLES)} or the path of a YAML table file")


def with_rows(table: Table, keys: list[str] | None) -> list[Row]:
    """The rows ``keys`` of ``table`` in the table's order (all rows for ``None``); unknown keys are an error."""
    if keys is None:
        return list(table.rows)
    wanted = [table.row(k).key for k in keys]
    return [r for r in table.rows if r.key in wanted]


# ------------------------------------------------------------------------------------------------ paths
def checkout_recipes() -> Path:
    """``recipes/benchmarks`` of the checkout this package runs from (a wheel does not ship recipes)."""
    return Path(__file__).resolve().parents[2] / "recipes" / "benchmarks"


def recipe_path(table: Table, row: Row, recipes: str | Path | None = None) -> Path | None:
    """The row's recipe file (``None``: not yet available): a table file's path relative to its folder when that
    file exists, an absolute path, else the name under ``recipes`` (default :func:`checkout_recipes`)."""
    if row.recipe is None:
        return None
    given = Path(row.recipe).expanduser()
    if given.is_absolute():
        return given
    if table.base is not None and (table.base / given).is_file():
        return table.base / given
    return Path(recipes).expanduser() / given if recipes is not None else checkout_recipes() / given


def split_kind(table: Table, row: Row) -> str:
    """``"folds"`` or ``"parts"`` (read from the row's split file), ``"dataset"`` (:data:`DATASET_SPLIT`), or
    ``"none"`` (a reconstruction row)."""
    from neurorvq.data.split_files import read_split_file

    if row.reconstruction or row.split is None:
        return "none"  # a reconstruction row's split is the DataModule split it reads
    if row.split == DATASET_SPLIT:
        return DATASET_SPLIT
    return read_split_file(split_path(table, row), by=row.group_by).kind


def split_folds(table: Table, row: Row) -> int:
    """How many folds the row runs: the folds of its split file, 1 for parts and the dataset's own split."""
    from neurorvq.data.split_files import read_split_file

    kind = split_kind(table, row)
    if kind == "folds":
        return len(read_split_file(split_path(table, row), by=row.group_by).groups)
    return 1


def split_path(table: Table, row: Row) -> Path:
    """The row's split file: a name of :mod:`neurorvq.splits`, or a path (relative to a table file's folder)."""
    from neurorvq import splits

    if row.split is None or row.split == DATASET_SPLIT:
        raise ConfigError(f"row '{row.key}' has no split file ({'none' if row.split is None else row.split!r}); "
                          "its split is resolved when it runs")
    if row.split in splits.NAMES:
        return splits.path(row.split)
    given = Path(str(row.split)).expanduser()
    if not given.is_absolute() and table.base is not None:
        given = table.base / given
    if not given.is_file():
        raise ConfigError(f"row '{row.key}' split {row.split!r}: no such split file ({given}) and not a benchmark "
                          f"split name ({', '.join(splits.NAMES)})")
    return given


def data_root(table: Table, row: Row, data_dir: str | Path | None, roots: Mapping[str, str],
              recipe_root: str | None = None) -> Path:
    """The row's data folder, first hit: ``--root ROW=PATH``; ``--data_dir`` + the row's folder; a table file's
    ``root`` (relative to the file); the recipe's ``data.init_args.root``; ``data/benchmarks/<folder>``. Relative
    paths of the command line and recipes are read against the working directory; the result is absolute."""
    if row.key in roots:
        return Path(roots[row.key]).expanduser().resolve()
    if data_dir is not None:
        return (Path(data_dir).expanduser() / row.data_folder).resolve()
    if row.root is not None:
        root = Path(row.root).expanduser()
        return (table.base / root if table.base is not None and not root.is_absolute() else root).resolve()
    if recipe_root:
        return Path(recipe_root).expanduser().resolve()
    return (Path(DEFAULT_DATA_DIR) / row.data_folder).resolve()


DEFAULT_DATA_DIR = "data/benchmarks"


__all__ = ["ALIASES", "DATASET_SPLIT", "DEFAULT_DATA_DIR", "METRICS", "NOT_AVAILABLE", "Row", "TABLES", "Table",
           "UNDETERMINED", "checkout_recipes", "data_root", "get_table", "read_table", "recipe_path", "split_folds",
           "split_kind", "split_path", "with_rows"]
