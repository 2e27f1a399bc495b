"""``neurorvq benchmark``: the papers' benchmark tables run through the cross-validation runner on the official splits,
and the reconstruction table through the tokenizer comparison harness.

* :mod:`~neurorvq.benchmarks.tables` — tables and rows as data (built-in EEG, ECG, EMG, reconstruction; YAML files):
  each row's recipe, split (folds, one train/test split, or the dataset's own), grouping, metric, notes;
* :mod:`~neurorvq.benchmarks.published` — the published numbers with their source;
* :mod:`~neurorvq.benchmarks.data_check` — is a row's dataset here (without loading it)?
* :mod:`~neurorvq.benchmarks.run` — every (row, model) through :func:`~neurorvq.crossval.runner.run_cv`, resumable;
* :mod:`~neurorvq.benchmarks.report` — ``table.md`` / ``table.csv`` in the paper's layout;
  :mod:`~neurorvq.benchmarks.figure` — ``table.png``; :mod:`~neurorvq.benchmarks.listing` — ``--list``;
* :mod:`~neurorvq.benchmarks.recon` — the reconstruction rows through
  :func:`~neurorvq.eval.compare.run.compare_tokenizers`, resumable per (row, tokenizer);
  :mod:`~neurorvq.benchmarks.recon_report` — its ``table.md`` / ``table.csv`` / ``table.png``.
"""

from neurorvq.benchmarks.published import PublishedModel, Score
from neurorvq.benchmarks.tables import TABLES, Row, Table, get_table, read_table

__all__ = ["PublishedModel", "Row", "Score", "TABLES", "Table", "get_table", "read_table"]
