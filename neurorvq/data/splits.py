"""Subject-wise data splits: a train/val/test split and subject-independent k-fold cross-validation.

Every function takes the *per-window* subject ids of a data set (``subjects``: a sequence of length ``N``, one
hashable, sortable id per window, e.g. ``"S001"`` or ``7``) and optionally the per-window class labels
(``labels``: length ``N``) and returns ``int64`` index arrays into those per-window arrays, sorted ascending,
together with the subject lists of each part. No subject ever appears in two parts of a split, so a model is
always evaluated on people it has not seen.

* :func:`subject_split`: one train / val / test split by fractions of the subjects or by explicit subject lists.
* :func:`subject_kfold`: ``n_folds`` folds; each subject is in exactly one fold's test part; labels (when given)
  stratify the folds via scikit-learn's ``StratifiedGroupKFold``. The validation part of a fold is drawn from
  that fold's *training* subjects, never from its test subjects. (The published NeuroRVQ benchmark protocol
  picks the validation subjects among the test fold's, so that model selection sees the test subjects; this
  module does not reproduce that leak.)
* :func:`split_subjects`: the train / val / test split of a DataModule's *subject names* (not per-window ids),
  as :class:`~neurorvq.data.datamodule.RecordingDataModule` draws it: subject lists per split, no indices.
* :func:`save_folds` / :func:`load_folds`: the folds as JSON (subject lists per fold, plus the window indices
  they gave), so that a published figure ships with its split file.

Determinism: the same ``subjects``, ``labels`` and ``seed`` give the same split on every machine, whatever the
order of the windows (subjects are sorted before they are shuffled by ``numpy.random.default_rng``).
"""

from __future__ import annotations

import json
import math
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from neurorvq.errors import ConfigError

__all__ = ["Split", "SplitIndices", "Fold", "draw_groups", "subject_split", "subject_kfold", "held_out_fold", "check_test_classes",
           "save_folds", "load_folds", "split_subjects"]

SPLITS = ("train", "val", "test")

FOLDS_FORMAT = "neurorvq-subject-folds"
FOLDS_FORMAT_VERSION = 1


# ----------------------------------------------------------------------------------------------- results
@dataclass(frozen=True, eq=False)
class Split:
    """A group-wise train / val / test split of per-window arrays (a subject split, or one fold of a k-fold).

    ``train``, ``val``, ``test``: ``int64 [n_part]`` ascending indices into the per-window arrays the split was
    made from (together they cover every window exactly once). ``train_subjects``, ``val_subjects``,
    ``test_subjects``: the sorted group ids (subjects, or recordings) of each part (plain Python values), pairwise
    disjoint; in a fold, ``val_subjects`` are drawn from the groups not in its test part. ``index``: the fold's
    number in ``0..n_folds-1`` (``None`` for a single split).
    """

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    train_subjects: list = field(default_factory=list)
    val_subjects: list = field(default_factory=list)
    test_subjects: list = field(default_factory=list)
    index: int | None = None


SplitIndices = Split
"""The result of :func:`subject_split` (the same class as a fold)."""
Fold = Split
"""One fold of :func:`subject_kfold` (``index`` set)."""


# ----------------------------------------------------------------------------------------------- helpers
def _py(value: Any) -> Any:
    """A numpy scalar as the plain Python value (JSON-friendly, comparable with the caller's ids)."""
    return value.item() if isinstance(value, np.generic) else value


def _as_1d(values: Sequence, name: str) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1:
        raise ConfigError(f"{name} has shape {array.shape}; give one value per window (a 1-D sequence)")
    if array.size == 0:
        raise ConfigError(f"{name} is empty; give one value per window")
    return array


def _check_inputs(subjects: Sequence, labels: Sequence | None) -> tuple[np.ndarray, np.ndarray | None]:
    subjects = _as_1d(subjects, "subjects")
    if labels is None:
        return subjects, None
    labels = _as_1d(labels, "labels")
    if len(labels) != len(subjects):
        raise ConfigError(f"labels has {len(labels)} entries but subjects has {len(subjects)}; give one label "
                          "per window")
    return subjects, labels


def _check_seed(seed: int) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= int(seed) < 2**32:
        raise ConfigError(f"seed is {seed!r}; give an integer in [0, 2**32)")
    return int(seed)


def _check_fraction(value: float, name: str) -> float:
    if not 0.0 <= float(value) < 1.0:
        raise ConfigError(f"{name} is {value}; give a fraction in [0, 1)")
    return float(value)


def _subject_labels(subjects: np.ndarray, labels: np.ndarray, unique: np.ndarray) -> np.ndarray:
    """Majority label of each subject in ``unique`` (ties: the smallest label)."""
    out = []
    for subject in unique:
        values, counts = np.unique(labels[subjects == subject], return_counts=True)
        out.append(values[np.argmax(counts)])
    return np.asarray(out)


def _ordered(pool: np.ndarray, pool_labels: np.ndarray | None, rng: np.random.Generator) -> np.ndarray:
    """``pool`` (sorted subject ids) in a seeded random order; with labels, classes interleaved in proportion.

    Any prefix of the stratified order holds each class in roughly its share of the pool, so taking the first
    ``k`` subjects as a part keeps the class mix of the whole.
    """
    if pool_labels is None:
        return pool[rng.permutation(len(pool))]
    keys = np.empty(len(pool))
    for cls in np.unique(pool_labels):
        members = np.flatnonzero(pool_labels == cls)
        members = members[rng.permutation(len(members))]
        keys[members] = (np.arange(len(members)) + rng.uniform(0.0, 1.0, len(members))) / len(members)
    return pool[np.argsort(keys, kind="stable")]


def _count(fraction: float, n_subjects: int) -> int:
    """Subjects for a part of ``fraction`` of ``n_subjects``: rounded half up, at least 1 when fraction > 0."""
    return 0 if fraction == 0 else max(1, math.floor(fraction * n_subjects + 0.5))


def _indices(subjects: np.ndarray, part: Sequence) -> np.ndarray:
    if len(part) == 0:
        return np.zeros(0, dtype=np.int64)
    return np.flatnonzero(np.isin(subjects, np.asarray(list(part)))).astype(np.int64)


def _sorted_list(values) -> list:
    return [_py(v) for v in np.sort(np.asarray(list(values)))] if len(values) else []


def _listed(listed: Sequence | None, name: str, known: set) -> list | None:
    if listed is None:
        return None
    if isinstance(listed, (str, bytes)):
        raise ConfigError(f"{name} is the string {listed!r}; give a list of subject ids")
    listed = [_py(s) for s in listed]
    unknown = [s for s in listed if s not in known]
    if unknown:
        raise ConfigError(f"{name} lists subjects {unknown} that have no windows; known subjects: "
                          f"{sorted(known)[:20]}{' ...' if len(known) > 20 else ''}")
    duplicates = [s for s, n in Counter(listed).items() if n > 1]
    if duplicates:
        raise ConfigError(f"{name} lists subjects {duplicates} more than once")
    return listed


# ------------------------------------------------------------------------------------------- train/val/test
def subject_split(subjects: Sequence, labels: Sequence | None = None, val_fraction: float = 0.1,
                  test_fraction: float = 0.1, seed: int = 0, val_subjects: Sequence | None = None,
                  test_subjects: Sequence | None = None) -> SplitIndices:
    """Split windows into train / val / test parts by subject.

    Args:
        subjects: ``[N]`` subject id of each window.
        labels: optional ``[N]`` class label of each window. When given, the randomly drawn val and test
            subjects keep the class mix of the data set (subjects are stratified by their majority label).
        val_fraction, test_fraction: share of the *subjects* (not windows) in the val and test parts, each in
            ``[0, 1)``; rounded to the nearest (ties to even), and at least one subject when > 0. ``0`` leaves
            the part empty. Drawn by :func:`draw_groups`, the splitter DataModules use too.
        seed: integer in ``[0, 2**32)``; the same inputs and seed always give the same split.
        val_subjects, test_subjects: explicit subject lists; a list given for a part overrides that part's
            fraction (``[]`` leaves it empty). The other part is drawn from the remaining subjects by its
            fraction (of all subjects).

    Returns:
        :class:`SplitIndices` with ``int64`` window indices and sorted subject lists; every subject is in
        exactly one part and the training part is never empty.

    Raises:
        ConfigError: fewer subjects than non-empty parts, a subject listed in both explicit lists, a listed
            subject without windows, fractions leaving no training subject, mismatched ``labels``.
    """
    subjects, labels = _check_inputs(subjects, labels)
    seed = _check_seed(seed)
    val_fraction = _check_fraction(val_fraction, "val_fraction")
    test_fraction = _check_fraction(test_fraction, "test_fraction")
    unique = np.unique(subjects)
    known = {_py(s) for s in unique}
    val_listed = _listed(val_subjects, "val_subjects", known)
    test_listed = _listed(test_subjects, "test_subjects", known)
    if val_listed is not None and test_listed is not None:
        both = sorted(set(val_listed) & set(test_listed))
        if both:
            raise ConfigError(f"subjects {both} are listed in both val_subjects and test_subjects; a subject "
                              "belongs to one part only")

    n_total = len(unique)
    n_val = len(val_listed) if val_listed is not None else _draw_count(val_fraction, n_total)
    n_test = len(test_listed) if test_listed is not None else _draw_count(test_fraction, n_total)
    parts = ["train"] + (["val"] if n_val else []) + (["test"] if n_test else [])
    if n_total < len(parts):
        raise ConfigError(f"{len(parts)} parts ({', '.join(parts)}) need at least {len(parts)} subjects; the "
                          f"windows have {n_total} ({_sorted_list(unique)}). Lower the number of parts (fraction 0)"
                          " or add subjects")
    if n_val + n_test >= n_total:
        raise ConfigError(f"val ({n_val}) and test ({n_test}) subjects leave no training subject out of {n_total};"
                          " lower val_fraction / test_fraction or shorten the explicit lists")
    names = [_py(s) for s in unique]
    strata = None
    if labels is not None:
        strata = dict(zip(names, (_py(v) for v in _subject_labels(subjects, labels, unique))))
    drawn = draw_groups(names, seed, val_fraction, test_fraction, val_listed, test_listed, strata)
    train_part, val_part, test_part = drawn["train"], drawn["val"], drawn["test"]
    train_part, val_part, test_part = (_sorted_list(p) for p in (train_part, val_part, test_part))
    return SplitIndices(train=_indices(subjects, train_part), val=_indices(subjects, val_part),
                        test=_indices(subjects, test_part), train_subjects=train_part, val_subjects=val_part,
                        test_subjects=test_part)


def split_subjects(subjects: Sequence[str], seed: int = 0, val_fraction: float = 0.1, test_fraction: float = 0.1,
                   val_subjects: Sequence[str] | None = None,
                   test_subjects: Sequence[str] | None = None) -> dict[str, list[str]]:
    """Assign every subject to exactly one of 'train', 'val', 'test' (lists sorted).

    Explicit ``val_subjects`` / ``test_subjects`` are taken as given. A split without a list gets
    ``round(fraction x number of subjects)`` subjects (at least 1 when its fraction is > 0), drawn from the
    others by a generator seeded with ``seed``; val is served before test, and train always keeps at least one
    subject, so 1 subject -> train only, 2 -> train + val, 3 -> one each. Train gets everything else.
    """
    names = sorted(dict.fromkeys(str(s) for s in subjects))
    val = [str(s) for s in val_subjects] if val_subjects is not None else None
    test = [str(s) for s in test_subjects] if test_subjects is not None else None
    both = sorted(set(val or []) & set(test or []))
    if both:
        raise ConfigError(f"subjects {both} are in both val_subjects and test_subjects; a subject belongs to one split")
    unknown = sorted((set(val or []) | set(test or [])) - set(names))
    if unknown:
        raise ConfigError(f"val/test subjects {unknown} are not among the subjects found: {names[:20]}"
                          f"{' ...' if len(names) > 20 else ''}")
    for name, f in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0 <= f < 1:
            raise ConfigError(f"{name} is {f}; give a fraction in [0, 1)")
    return draw_groups(names, seed, val_fraction, test_fraction, val, test)


def _draw_count(fraction: float, n_groups: int) -> int:
    """Groups a part of ``fraction`` gets: ``round(fraction x n_groups)`` (ties to even), at least 1 when > 0."""
    return 0 if fraction <= 0 else max(1, round(fraction * n_groups))


def draw_groups(groups: Sequence, seed: int, val_fraction: float, test_fraction: float,
                val_listed: Sequence | None = None, test_listed: Sequence | None = None,
                strata: Mapping[Any, Any] | None = None) -> dict[str, list]:
    """The one subject (group) splitter: every group of ``groups`` (sorted, unique) to one of train, val, test.

    Listed parts are taken as given. A part without a list gets :func:`_draw_count` groups (``fraction`` of all
    groups, at least 1 when > 0) from the others, in an order drawn by ``numpy.random.default_rng([seed,
    0x5B17])``: a permutation, or with ``strata`` (group -> class, e.g. its majority label) classes interleaved in
    proportion so any prefix keeps the class mix. Val is drawn before test; train keeps at least one group (a
    part shrinks instead), so 1 group -> train only, 2 -> train + val, 3 -> one each. Lists are sorted.
    :func:`split_subjects` (DataModules) and :func:`subject_split` (per-window arrays, stricter checks) use it.
    """
    names = list(groups)
    rng = np.random.default_rng([int(seed), 0x5B17])
    if strata is None:
        order = [names[i] for i in rng.permutation(len(names))]
    else:
        pool = np.empty(len(names), dtype=object)
        pool[:] = names
        order = list(_ordered(pool, np.asarray([strata[n] for n in names]), rng))
    taken = set(val_listed or []) | set(test_listed or [])
    rest = [n for n in order if n not in taken]

    def draw(fraction: float) -> list:
        k = max(0, min(_draw_count(fraction, len(names)), len(rest) - 1))
        out = rest[:k]
        del rest[:k]
        return out

    val = draw(val_fraction) if val_listed is None else list(val_listed)
    test = draw(test_fraction) if test_listed is None else list(test_listed)
    return {"train": sorted(rest), "val": sorted(val), "test": sorted(test)}


# ------------------------------------------------------------------------------------------------- k-fold
def _group_folds(subjects: np.ndarray, unique: np.ndarray, n_folds: int, seed: int) -> list[list]:
    """GroupKFold-like: subjects in a seeded random order, each to the fold with the fewest windows so far.

    Ties go to the fold with fewer subjects, then the lower fold index. Every fold gets at least one subject
    (an empty fold has the fewest windows) when there are at least ``n_folds`` subjects.
    """
    sizes = {_py(s): int(n) for s, n in zip(*np.unique(subjects, return_counts=True))}
    order = unique[np.random.default_rng(seed).permutation(len(unique))]
    folds: list[list] = [[] for _ in range(n_folds)]
    windows = [0] * n_folds
    for subject in order:
        k = min(range(n_folds), key=lambda f: (windows[f], len(folds[f]), f))
        folds[k].append(_py(subject))
        windows[k] += sizes[_py(subject)]
    return [_sorted_list(fold) for fold in folds]


def _stratified_folds(subjects: np.ndarray, labels: np.ndarray, n_folds: int, seed: int) -> list[list]:
    """Test subjects of each fold from scikit-learn's ``StratifiedGroupKFold(shuffle=True, random_state=seed)``."""
    from sklearn.model_selection import StratifiedGroupKFold

    splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    try:
        with warnings.catch_warnings():  # per-window class counts below n_folds: our own checks report it
            warnings.filterwarnings("ignore", message="The least populated class", category=UserWarning)
            splits = list(splitter.split(np.zeros((len(subjects), 1)), labels, groups=subjects))
    except ValueError as error:
        raise ConfigError(f"stratified {n_folds}-fold split failed: {error}") from error
    return [_sorted_list(np.unique(subjects[test])) for _, test in splits]


def _class_counts(labels: np.ndarray, indices: np.ndarray, classes: np.ndarray) -> dict:
    part = labels[indices]
    return {_py(c): int(np.sum(part == c)) for c in classes}


def held_out_fold(groups: np.ndarray, test_part: Sequence, index: int, seed: int, val_fraction: float,
                  labels: np.ndarray | None = None, too_few: Any = None) -> Fold:
    """Fold ``index`` of a k-fold over per-window ``groups`` ``[N]`` whose test part is the groups ``test_part``:
    validation = a share ``val_fraction`` of the *other* groups (rounded half up, at least one when > 0), drawn by
    ``(seed, index)`` and in proportion to the groups' majority ``labels`` (any per-window values) when given;
    train = the rest. ``too_few(n_rest, n_val) -> str``: the message when no training group would remain."""
    unique = np.unique(groups)
    test_set = {_py(g) for g in test_part}
    rest = np.asarray([g for g in unique if _py(g) not in test_set], dtype=unique.dtype)
    n_val = _count(float(val_fraction), len(rest))
    if n_val >= len(rest):
        raise ConfigError(too_few(len(rest), n_val) if too_few is not None else
                          f"fold {index}: {len(rest)} training groups cannot give {n_val} validation groups and keep "
                          "one for training; lower val_fraction")
    rest_labels = _subject_labels(groups, labels, rest) if labels is not None else None
    order = _ordered(rest, rest_labels, np.random.default_rng([int(seed), int(index)]))
    val_part, train_part = _sorted_list(order[:n_val]), _sorted_list(order[n_val:])
    test_part = _sorted_list(list(test_set)) if test_set else []
    return Fold(index=int(index), train=_indices(groups, train_part), val=_indices(groups, val_part),
                test=_indices(groups, test_part), train_subjects=train_part, val_subjects=val_part,
                test_subjects=test_part)


def check_test_classes(labels: np.ndarray, folds: Sequence[Fold], require_all_classes: bool, fix: str,
                       override: str = "require_all_classes=False", noun: str = "groups") -> None:
    """Refuse (``require_all_classes``) or warn about fold test parts that miss classes of ``labels`` (``[N]``):
    the error names the fold and its class counts, then ``fix`` and the ``override`` that allows it; a warning lists
    the single-class folds (per-fold AUROC is undefined there)."""
    classes = np.unique(labels)
    single = []
    for fold in folds:
        counts = _class_counts(labels, fold.test, classes)
        missing = [c for c, n in counts.items() if n == 0]
        if missing and require_all_classes:
            what = "holds a single class" if len(missing) == len(classes) - 1 else f"misses classes {missing}"
            raise ConfigError(f"fold {fold.index} of {len(folds)}: its test part ({len(fold.test_subjects)} {noun}) "
                              f"{what}; window counts per class {counts}. {fix[:1].upper()}{fix[1:]}, or pass "
                              f"{override}")
        if len(missing) == len(classes) - 1:
            single.append(f"fold {fold.index} {counts}")
    if single:
        warnings.warn(f"{len(single)} of {len(folds)} test folds hold a single class, so per-fold metrics such as "
                      f"AUROC are undefined there (pool predictions over folds instead): {'; '.join(single)}",
                      UserWarning, stacklevel=3)


def subject_kfold(subjects: Sequence, labels: Sequence | None = None, n_folds: int = 10, seed: int = 0,
                  val_fraction: float = 0.1, *, require_all_classes: bool = False) -> list[Fold]:
    """Subject-independent k-fold cross-validation with a subject-wise validation part inside each fold.

    Test parts: every subject is in exactly one fold's test part. With ``labels``, the folds come from
    scikit-learn's ``StratifiedGroupKFold(n_folds, shuffle=True, random_state=seed)`` (subjects as groups, so
    each fold's class proportions approach the data set's); without, subjects are shuffled by ``seed`` and
    dealt GroupKFold-like to the fold with the fewest windows so far.

    Validation parts: drawn from the fold's training subjects (all subjects outside its test part), a share
    ``val_fraction`` of them (rounded half up, at least one when > 0; ``0`` leaves it empty), seeded by
    ``(seed, fold index)`` and stratified by the subjects' majority label when labels are given. The test
    subjects never serve for validation (unlike the published benchmark protocol, which leaks them).

    Args:
        subjects: ``[N]`` subject id of each window.
        labels: optional ``[N]`` class label of each window (at least two classes).
        n_folds: number of folds, at least 2 and at most the number of subjects.
        seed: integer in ``[0, 2**32)``; the same inputs and seed always give the same folds.
        val_fraction: share of each fold's training subjects used for validation, in ``[0, 1)``.
        require_all_classes: with labels, fail when a fold's test part misses any class (e.g. holds a single
            class). Otherwise single-class test folds (unavoidable with one subject per fold) only warn.

    Returns:
        ``n_folds`` :class:`Fold` objects, ``index`` ``0..n_folds-1``, each with ``int64`` window indices and
        sorted, pairwise disjoint subject lists.

    Raises:
        ConfigError: fewer subjects than folds, ``n_folds < 2``, labels with a single class, a fold whose test
            part misses a class under ``require_all_classes`` (the message names the fold and its class
            counts), a fold left without training subjects, mismatched ``labels``.

    Warns:
        UserWarning: with labels, when some test folds hold a single class (per-fold AUROC is undefined there).
    """
    subjects, labels = _check_inputs(subjects, labels)
    seed = _check_seed(seed)
    val_fraction = _check_fraction(val_fraction, "val_fraction")
    if isinstance(n_folds, bool) or not isinstance(n_folds, (int, np.integer)) or n_folds < 2:
        raise ConfigError(f"n_folds is {n_folds!r}; give an integer >= 2")
    n_folds = int(n_folds)
    unique = np.unique(subjects)
    if len(unique) < n_folds:
        raise ConfigError(f"{n_folds} folds need at least {n_folds} subjects, one per test fold; the windows have "
                          f"{len(unique)} subjects. Lower n_folds to at most {len(unique)}")
    classes = None
    if labels is not None:
        classes = np.unique(labels)
        if len(classes) < 2:
            raise ConfigError(f"labels have a single class ({_py(classes[0])!r}) over all {len(labels)} windows; "
                              "stratification needs at least two classes (or pass labels=None)")
        test_parts = _stratified_folds(subjects, labels, n_folds, seed)
    else:
        test_parts = _group_folds(subjects, unique, n_folds, seed)

    empty = [k for k, part in enumerate(test_parts) if not part]
    if empty:
        raise ConfigError(f"the stratified {n_folds}-fold split left folds {empty} without test subjects "
                          f"({len(unique)} subjects); lower n_folds or try another seed")

    folds = [held_out_fold(subjects, test_part, k, seed, val_fraction, labels,
                           too_few=lambda n_rest, n_val, k=k: (
                               f"fold {k}: {n_rest} training subjects cannot give {n_val} validation subjects and "
                               "keep one for training; lower val_fraction or n_folds"))
             for k, test_part in enumerate(test_parts)]
    if labels is not None:
        check_test_classes(labels, folds, require_all_classes, fix="lower n_folds, try another seed",
                           noun="subjects")
    return folds


# ---------------------------------------------------------------------------------------------------- I/O
def save_folds(folds: Sequence[Fold], path: str | Path, metadata: dict | None = None) -> Path:
    """Write ``folds`` to ``path`` as JSON and return the path.

    The file holds, per fold, its ``index``, the subject lists (``train_subjects``, ``val_subjects``,
    ``test_subjects``: the split itself, independent of how recordings are windowed) and the window indices
    (``train``, ``val``, ``test``) they gave; ``metadata`` (JSON-serialisable: data set, seed, n_folds...) is
    stored alongside. Subject ids must be JSON values (strings or numbers).
    """
    path = Path(path)
    payload = {"format": FOLDS_FORMAT, "version": FOLDS_FORMAT_VERSION, "n_folds": len(folds),
               "metadata": dict(metadata or {}), "folds": []}
    for fold in folds:
        payload["folds"].append({
            "index": int(fold.index),
            "train_subjects": [_py(s) for s in fold.train_subjects],
            "val_subjects": [_py(s) for s in fold.val_subjects],
            "test_subjects": [_py(s) for s in fold.test_subjects],
            "train": np.asarray(fold.train, dtype=np.int64).tolist(),
            "val": np.asarray(fold.val, dtype=np.int64).tolist(),
            "test": np.asarray(fold.test, dtype=np.int64).tolist(),
        })
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        text = json.dumps(payload, indent=1)
    except TypeError as error:
        raise ConfigError(f"folds for {path} hold values JSON cannot store ({error}); use string or number "
                          "subject ids and JSON metadata") from error
    path.write_text(text + "\n")
    return path


def load_folds(path: str | Path, subjects: Sequence | None = None) -> list[Fold]:
    """Read folds written by :func:`save_folds`.

    Without ``subjects`` the stored window indices are returned as ``int64`` arrays. With ``subjects`` (the
    ``[N]`` per-window subject ids of the data at hand, e.g. re-windowed), the indices are recomputed from the
    stored subject lists; a stored subject absent from ``subjects`` raises :class:`ConfigError`.
    Metadata is available via ``json.loads(Path(path).read_text())["metadata"]``.
    """
    path = Path(path)
    try:
        payload = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ConfigError(f"cannot read folds from {path}: {error}") from error
    if not isinstance(payload, dict) or payload.get("format") != FOLDS_FORMAT:
        raise ConfigError(f"{path} is not a folds file (format {FOLDS_FORMAT!r}); write it with save_folds")
    if payload.get("version") != FOLDS_FORMAT_VERSION:
        raise ConfigError(f"{path} has folds format version {payload.get('version')}; this neurorvq reads "
                          f"version {FOLDS_FORMAT_VERSION}")
    if subjects is not None:
        subjects = _as_1d(subjects, "subjects")
        known = {_py(s) for s in np.unique(subjects)}
    folds = []
    for entry in payload["folds"]:
        parts = {name: list(entry[f"{name}_subjects"]) for name in ("train", "val", "test")}
        if subjects is None:
            arrays = {name: np.asarray(entry[name], dtype=np.int64) for name in parts}
        else:
            missing = sorted({s for p in parts.values() for s in p} - known, key=str)
            if missing:
                raise ConfigError(f"{path} fold {entry['index']}: subjects {missing} have no windows in the "
                                  "given subjects")
            arrays = {name: _indices(subjects, part) for name, part in parts.items()}
        folds.append(Fold(index=int(entry["index"]), train=arrays["train"], val=arrays["val"],
                          test=arrays["test"], train_subjects=parts["train"], val_subjects=parts["val"],
                          test_subjects=parts["test"]))
    return folds
