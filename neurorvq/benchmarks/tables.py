"""The papers' benchmark tables as data: each table's rows (task, dataset, recipe, official split, data folder,
classes, the published metric, how to get the data and its licence) and its published numbers
(:mod:`neurorvq.benchmarks.published`).

Built-in tables (``neurorvq benchmark --table NAME``): ``eeg`` (the five EEG tasks of the MLSP'25 benchmark,
../shared/docs/benchmarks.md §1-3), ``ecg`` (PTB-XL), ``emg`` (four gesture datasets) and ``recon`` (reconstruction
of unseen EEG). Only rows with a recipe run; the others are listed as "not yet available".

A table file (``--table path/to/table.yaml``) has the same shape, in YAML::

    table: two-tasks                # key: the output folder <out>/<key>/ (default: the file name without suffix)
    title: Two EEG tasks            # heading of table.md (default: the key)
    rows:                           # the table's task columns, in order
      - key: eyes                   # short name (letters, digits, _ and -): --rows, --root eyes=PATH, output folder
        task: Eyes                  # column title (default: the key)
        dataset: EEGMMIDB R01/R02   # what the data is, for --list and messages (default: the key)
        recipe: eyes.yaml           # fine-tuning recipe: relative to this file, absolute, or a file under --recipes;
                                    # a row without one is "not yet available"
        split: eyes.json            # split file with folds by subject (relative to this file or absolute), or a
                                    # name of neurorvq.splits (hgd, kuerp, pavlov, sleepedf, eyes)
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


@dataclass(frozen=True)
class Row:
    """One task column of a table. ``recipe`` is a file name under the recipes folder (built-in tables) or a path
    (table files); ``split`` a name of :mod:`neurorvq.splits` or a split-file path; ``folder`` the data folder
    under ``--data_dir``; ``root`` an explicit data folder (table files). ``recipe is None``: not yet available."""

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

    @property
    def available(self) -> bool:
        """Whether the row can run (it has a recipe and a split)."""
        return self.recipe is not None and self.split is not None

    @property
    def data_folder(self) -> str:
        return self.folder or self.key


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
ECG_ROWS: tuple[Row, ...] = (
    Row("superclass", "PTB-XL 5-class", "PTB-XL 1.0.3 (diagnostic superclass of the top statement)",
        folder="ptb-xl", classes=5, metric="accuracy",
        get="PhysioNet ptb-xl 1.0.3 (neurorvq.datamodules.ptbxl.download)", licence="CC BY 4.0"),
    Row("statements43", "PTB-XL 43-class", "PTB-XL 1.0.3 (top diagnostic statement)", folder="ptb-xl", classes=43,
        metric="accuracy", get="PhysioNet ptb-xl 1.0.3 (neurorvq.datamodules.ptbxl.download)", licence="CC BY 4.0"),
)
EMG_ROWS: tuple[Row, ...] = (
    Row("discrete_gestures", "Discrete Gestures", "Meta generic neuromotor interface, discrete gestures",
        folder="discrete_gestures", classes=9,
        get="fb-ctrl-oss.s3.amazonaws.com neuromotor-data (Meta's download script; 100 users)",
        licence="CC BY-NC 4.0"),
    Row("epn612", "EPN-612", "EMG-EPN-612", folder="epn612", classes=6, metric="accuracy",
        get="Zenodo record 4421500 (EMG-EPN612 Dataset.zip)", licence="not verified (check the Zenodo record)"),
    Row("ninapro_db5", "NinaPro DB5", "NinaPro DB5", folder="ninapro_db5", classes=52, metric="accuracy",
        get="ninapro.hevs.ch (registration; DB5_Preproc/s1..s10.zip)", licence="not verified (NinaPro terms)"),
    Row("uci_emg", "UCI-EMG", "UCI EMG data for gestures (id 481)", folder="uci_emg", metric="accuracy",
        get="archive.ics.uci.edu/static/public/481/emg+data+for+gestures.zip", licence="CC BY 4.0"),
)
RECON_ROWS: tuple[Row, ...] = (
    Row("brainomni", "OOD (BrainOmni sample)", "BrainOmni EEG sample (assets/example_data.pt)", folder="brainomni",
        metric="mse", get="OpenTSLab/BrainOmni repository, assets/example_data.pt", licence="MIT"),
    Row("high_gamma", "High-Gamma (unseen)", "High-Gamma (Schirrmeister 2017)", folder="high_gamma", metric="mse",
        get=EEG_ROWS[0].get, licence=EEG_ROWS[0].licence, extra="benchmarks"),
    Row("pavlov", "Working memory (unseen)", "Pavlov 2022 (OpenNeuro ds003838)", folder="pavlov2022", metric="mse",
        get=EEG_ROWS[2].get, licence=EEG_ROWS[2].licence, extra="benchmarks"),
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
             "get", "licence", "extra")
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
    balance = entry.get("balance_per_subject", True)
    if not isinstance(balance, bool):
        raise ConfigError(f"{where} key 'balance_per_subject': expected true or false, got {balance!r}")
    values = {k: _text(entry.get(k), f"{where} key {k!r}") for k in ("task", "dataset", "recipe", "split", "folder",
                                                                     "root", "get", "licence", "extra")}
    return Row(key, values["task"] or key, values["dataset"] or key, values["recipe"], values["split"],
               values["folder"], classes, metric, balance, values["get"] or "", values["licence"] or "",
               values["extra"], values["root"])


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


def split_path(table: Table, row: Row) -> Path:
    """The row's split file: a name of :mod:`neurorvq.splits`, or a path (relative to a table file's folder)."""
    from neurorvq import splits

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


__all__ = ["DEFAULT_DATA_DIR", "METRICS", "NOT_AVAILABLE", "Row", "TABLES", "Table", "checkout_recipes", "data_root",
           "get_table", "read_table", "recipe_path", "split_path", "with_rows"]
