"""Evaluation protocols of ``neurorvq cv``: ``clean`` (the project's default) and ``parity`` (the published EEG
benchmark's and NeuroRVQ's official fine-tuning code's; docs benchmarks.md §2.2-2.3).

``clean``: each fold's validation groups come from its training side (``val_fraction``, default 0.1) and select
the checkpoint; class weights are the inverse class frequencies of the training labels; no resampling.

``parity``:

* no validation part (``val_fraction`` 0): the held-out fold is scored at the **last epoch**, as the benchmark
  records ``valid_accuracy`` at its last epoch;
* class weights are the inverse class frequencies of the training labels **and the held-out fold's labels
  together**, as the official code computes them on ``y_train + y_val`` where its "val" is the held-out fold.
  This leaks the test fold's label distribution into the loss: it is kept for parity with the published numbers,
  not as a clean estimate. The classical baselines and the linear probe get the same weights, so that every model
  of a table is treated alike;
* the training windows are undersampled per subject (the official ``sample_balanced_set``): in every subject,
  every class is cut down to that subject's minority-class count, drawn with numpy ``default_rng``. The official
  High-Gamma class turns it off ("already balanced"): ``balance_per_subject=False``.

Choices where the official code is silent or unreleased [I]:

* the undersampling applies to the **training** windows only (benchmarks.md leaves it open for the held-out set);
* the minority count is taken over the classes the subject **has**: a subject with a single class keeps all its
  windows (counting an absent class as 0 would drop the subject entirely, which the rule does not say);
* "subject" is the windows' subject id whatever ``--group_by`` holds out;
* draws: ``numpy.random.default_rng([seed, fold index])`` (``seed`` = the training seed, 0 without ``--seeds``),
  subjects and classes in ascending order, ``Generator.choice`` without replacement; the kept indices are returned
  in ascending order, so a rerun keeps exactly the same windows;
* the parity class weights count the training labels *after* undersampling (the windows the model trains on)
  plus the held-out labels;
* feature models (logistic regression) get those weights in scikit-learn's ``"balanced"`` scale,
  ``n / (K · count_c)`` over the training + held-out labels (K = classes present), so that ``C`` keeps the meaning
  it has with ``class_weight="balanced"`` in ``clean``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from neurorvq.data.splits import Fold
from neurorvq.errors import ConfigError

CLEAN, PARITY = "clean", "parity"
PROTOCOLS = (CLEAN, PARITY)
UNLISTED = ("train", "drop")
"""What happens to groups a ``--folds_file`` split file lists in no fold: they train in every fold, or their
windows are dropped before the folds are made."""
DEFAULT_VAL_FRACTION = {CLEAN: 0.1, PARITY: 0.0}
DEFAULT_BALANCE = {CLEAN: False, PARITY: True}


def default_val_fraction(protocol: str) -> float:
    """The validation share a protocol uses when none is given: 0.1 (``clean``), 0 (``parity``)."""
    return DEFAULT_VAL_FRACTION.get(protocol, DEFAULT_VAL_FRACTION[CLEAN])


def resolve_balance(protocol: str, balance_per_subject: bool | None) -> bool:
    """Whether training windows are undersampled per subject: the given value, else the protocol's default
    (``parity`` yes, ``clean`` no)."""
    if balance_per_subject is None:
        return DEFAULT_BALANCE.get(protocol, False)
    return bool(balance_per_subject)


def check_protocol(protocol: Any, val_fraction: float, balance_per_subject: Any, unlisted: Any) -> None:
    """:class:`ConfigError` for an unknown protocol or ``unlisted`` value, a non-boolean ``balance_per_subject``,
    or ``parity`` with a validation part (it has none: the held-out fold is scored at the last epoch)."""
    if protocol not in PROTOCOLS:
        raise ConfigError(f"--protocol is {protocol!r}; use clean (validation groups from the training side) or "
                          "parity (the published benchmark's protocol: no validation, last epoch)")
    if unlisted not in UNLISTED:
        raise ConfigError(f"--unlisted is {unlisted!r}; use train (groups the split file lists in no fold train in "
                          "every fold) or drop (their windows are left out)")
    if balance_per_subject is not None and not isinstance(balance_per_subject, (bool, np.bool_)):
        raise ConfigError(f"--balance_per_subject is {balance_per_subject!r}; use true or false (omit it for the "
                          "protocol's default)")
    if protocol == PARITY and float(val_fraction) != 0.0:
        raise ConfigError(f"--protocol parity has no validation part (the held-out fold is scored at the last "
                          f"epoch, as the benchmark does), but --val_fraction is {val_fraction}; omit --val_fraction "
                          "(or pass 0), or use --protocol clean for validation groups")


def balanced_indices(indices: np.ndarray, labels: np.ndarray, subjects: np.ndarray, seed: int,
                     fold_index: int = 0) -> np.ndarray:
    """Per-subject balanced undersampling of ``indices`` (``int [n]`` into the per-window ``labels`` and
    ``subjects``, both ``[N]``): within each subject, every class present is cut down to the subject's smallest
    class count, drawn without replacement by ``numpy.random.default_rng([seed, fold_index])`` (subjects, then
    classes, ascending). A subject with a single class keeps all its windows. Returns ``int64 [m]`` ascending,
    ``m <= n``; the same arguments always give the same windows."""
    indices = np.asarray(indices, dtype=np.int64).reshape(-1)
    if not indices.size:
        return indices
    labels, subjects = np.asarray(labels)[indices], np.asarray(subjects)[indices]
    rng = np.random.default_rng([int(seed), int(fold_index)])
    kept = []
    for subject in np.unique(subjects):
        mine = subjects == subject
        classes, counts = np.unique(labels[mine], return_counts=True)
        smallest = int(counts.min())
        for label in classes:
            candidates = indices[mine & (labels == label)]
            kept.append(candidates if len(candidates) == smallest else
                        rng.choice(candidates, size=smallest, replace=False))
    return np.sort(np.concatenate(kept)).astype(np.int64)


def protocol_fold(fold: Fold, labels: np.ndarray, subjects: np.ndarray | None, balance: bool,
                  seed: int | None) -> Fold:
    """``fold`` with its training indices undersampled per subject (:func:`balanced_indices`, seeded by the
    training ``seed`` (0 when ``None``) and the fold's index) when ``balance``; else ``fold`` itself. The
    validation and test parts and the group lists are unchanged."""
    if not balance:
        return fold
    if subjects is None:
        raise ConfigError("--balance_per_subject needs windows with subject ids; pass --balance_per_subject false")
    train = balanced_indices(fold.train, labels, subjects, 0 if seed is None else int(seed), int(fold.index or 0))
    return replace(fold, train=train)


def class_weight_labels(protocol: str, labels: np.ndarray, fold: Fold) -> np.ndarray | None:
    """``int64 [n_train + n_test]`` labels the class weights are computed from under ``parity`` (the fold's
    training labels, after any undersampling, and its held-out labels: the official code's ``y_train + y_val``,
    which leaks the test label distribution into the loss); ``None`` under ``clean`` (the model then uses its
    training labels alone)."""
    if protocol != PARITY:
        return None
    labels = np.asarray(labels)
    return np.concatenate([labels[fold.train], labels[fold.test]]).astype(np.int64)


def sklearn_class_weight(protocol: str, labels: np.ndarray, fold: Fold) -> str | dict[int, float]:
    """The logistic regressions' ``class_weight``: ``"balanced"`` (training labels) under ``clean``; under
    ``parity`` the dict ``{class: n / (K · count)}`` over the training + held-out labels (K = classes present; the
    scale of scikit-learn's ``"balanced"``), so the feature models get the deep models' leaky weights."""
    pooled = class_weight_labels(protocol, labels, fold)
    if pooled is None:
        return "balanced"
    classes, counts = np.unique(pooled, return_counts=True)
    return {int(c): float(len(pooled) / (len(classes) * n)) for c, n in zip(classes, counts)}


def fold_protocol_record(protocol: str, balance: bool, unlisted: str, unbalanced_train: int,
                         class_weights: Any) -> dict[str, Any]:
    """The ``protocol`` entry of a fold's ``metrics.json``: name, validation, class-weight source, balancing
    (with the training windows before it), ``unlisted`` and the class weights the model used."""
    if isinstance(class_weights, dict):
        class_weights = {str(k): float(v) for k, v in class_weights.items()}
    return {"name": protocol, "validation": "none: last epoch scored" if protocol == PARITY else "from training groups",
            "class_weights_from": "training + held-out labels" if protocol == PARITY else "training labels",
            "balance_per_subject": bool(balance), "train_windows_before_balancing": int(unbalanced_train),
            "unlisted": unlisted, "class_weights": class_weights}


def protocol_summary(protocol: str, val_fraction: float, balance: bool, unlisted: str,
                     dropped: list | None = None) -> dict[str, Any]:
    """The ``protocol`` entry of ``summary.json``: name, ``val_fraction``, ``balance_per_subject``, where the
    class weights come from, ``unlisted`` and the groups it dropped."""
    return {"name": protocol, "val_fraction": float(val_fraction), "balance_per_subject": bool(balance),
            "class_weights_from": "training + held-out labels" if protocol == PARITY else "training labels",
            "unlisted": unlisted, "dropped": list(dropped or [])}


def protocol_markdown(summary: dict[str, Any]) -> str:
    """A paragraph stating the protocol of a run (the ``Protocol`` section of ``summary.md``)."""
    no_validation = ("no validation part: the held-out fold is scored at the end of training (the last epoch; the "
                     "feature models use their middle C)")
    if summary["name"] == PARITY:
        text = (f"**parity** (the published EEG benchmark and NeuroRVQ's official fine-tuning code): {no_validation}; "
                "class weights from the training **and held-out** labels together (the official `y_train + y_val`: "
                "the test fold's label distribution leaks into the loss)")
    else:
        frac = summary.get("val_fraction", 0.1)
        text = ("**clean**: " + (f"validation groups ({frac:g} of each fold's training groups) select the checkpoint "
                                 "(the feature models' C)" if frac > 0 else no_validation)
                + "; class weights from the training labels only")
    text += ("; training windows undersampled per subject to each subject's minority class" if
             summary.get("balance_per_subject") else "; no per-subject undersampling")
    dropped = summary.get("dropped") or []
    if dropped:
        shown = ", ".join(map(str, dropped[:10])) + (", ..." if len(dropped) > 10 else "")
        text += f"; {len(dropped)} group(s) the split file lists in no fold were left out ({shown})"
    elif summary.get("unlisted") == "drop":
        text += "; groups a split file lists in no fold are left out (none here)"
    return text + "."


__all__ = ["CLEAN", "DEFAULT_BALANCE", "DEFAULT_VAL_FRACTION", "PARITY", "PROTOCOLS", "UNLISTED", "balanced_indices",
           "check_protocol", "class_weight_labels", "default_val_fraction", "fold_protocol_record",
           "protocol_fold", "protocol_markdown", "protocol_summary", "resolve_balance", "sklearn_class_weight"]
