"""Published numbers printed beside ours in ``neurorvq benchmark`` tables, as data with their source.

* EEG (five tasks): the NeuroRVQ README table (../shared/docs/benchmarks.md §3.6, tag [C]): balanced accuracy,
  mean ± std over the benchmark's 10 folds; the std convention (population or sample) is not stated. Its Mean
  column is the mean of the five task means ± the mean of the five task stds (checked: NeuroRVQ
  (0.700+0.876+0.574+0.728+0.869)/5 = 0.749 and (0.073+0.033+0.027+0.028+0.026)/5 = 0.037). The arXiv v1 table has
  no ERP column and four-task means (NeuroRVQ 0.717 ± 0.038); its per-task values equal the README's.
* ECG, EMG and reconstruction: the multi-modality paper's NeuroRVQ numbers as listed by [S3] (benchmarks.md §1,
  §4.3, §5, §6.2): a single value each, no std, no baselines. Percentages are stored as fractions (70.19 % ->
  0.7019) so that they sit beside our 0-1 scores; the reconstruction numbers are raw-signal MSE.

Nothing here is a check of our numbers: they are context, labelled "(published)" wherever they are shown.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

PUBLISHED_SUFFIX = "(published)"
"""How a published model is labelled in every table: ``"NeuroRVQ (published)"``."""
EEG_SOURCE = ("NeuroRVQ README results table (KonstantinosBarmpas/NeuroRVQ @ 14bd0ce; ../shared/docs/benchmarks.md "
              "§3.6): balanced accuracy, mean ± std over the 10 folds, std convention not stated")
MULTIMODAL_SOURCE = ("multi-modality NeuroRVQ paper as listed by wizwand ([S3]; ../shared/docs/benchmarks.md §1, "
                     "§4-6): one value per task, no std, no baselines, protocol not published")


@dataclass(frozen=True)
class Score:
    """A published ``mean`` (and ``std`` when given) on the 0-1 scale of our scores (MSE for reconstruction)."""

    mean: float
    std: float | None = None

    def text(self, digits: int | None = None) -> str:
        """``"0.700 ± 0.073"``, or ``"0.700"`` without a std; 4 decimals where 3 would round a published value
        (70.19 % -> ``"0.7019"``) unless ``digits`` is given (our computed means: 3)."""
        if digits is None:
            digits = 3 if round(self.mean, 3) == self.mean or self.std is not None else 4
        return f"{self.mean:.{digits}f}" + ("" if self.std is None else f" ± {self.std:.3f}")

    @classmethod
    def of(cls, value: Any) -> "Score | None":
        """A score from ``None``, a number, ``[mean]``, ``[mean, std]`` or ``{"mean": ..., "std": ...}``."""
        if value is None or isinstance(value, Score):
            return value
        if isinstance(value, Mapping):
            return cls(float(value["mean"]), None if value.get("std") is None else float(value["std"]))
        if isinstance(value, (list, tuple)):
            if not 1 <= len(value) <= 2:
                raise ValueError(f"expected [mean] or [mean, std], got {list(value)}")
            return cls(float(value[0]), float(value[1]) if len(value) == 2 and value[1] is not None else None)
        return cls(float(value))


@dataclass(frozen=True)
class PublishedModel:
    """One published model's row of a table: ``scores`` per row key (``None`` = not reported, shown —), the
    published ``mean`` column (``None``: not published), the metric, the model ``size``, the ``source`` and the
    number of ``folds`` the scores are over (``None``: not stated)."""

    model: str
    scores: dict[str, Score | None]
    metric: str = "balanced_accuracy"
    mean: Score | None = None
    size: str | None = None
    source: str = EEG_SOURCE
    folds: int | None = None
    notes: tuple[str, ...] = field(default=())

    @property
    def label(self) -> str:
        """``"<model> (published)"``."""
        return f"{self.model} {PUBLISHED_SUFFIX}"

    def score(self, row: str) -> Score | None:
        return self.scores.get(row)


def _eeg(model: str, motor, erp, memory, sleep, eyes, mean, size: str) -> PublishedModel:
    scores = dict(zip(("motor", "erp", "memory", "sleep", "eyes"), map(Score.of, (motor, erp, memory, sleep, eyes))))
    return PublishedModel(model, scores, "balanced_accuracy", Score.of(mean), size, folds=10)


EEG: tuple[PublishedModel, ...] = (
    _eeg("NeuroGPT", (0.682, 0.083), (0.757, 0.048), (0.597, 0.029), (0.674, 0.033), (0.827, 0.036),
         (0.707, 0.046), "79.5M"),
    _eeg("CBraMod", (0.614, 0.104), (0.777, 0.052), (0.574, 0.038), (0.635, 0.041), (0.839, 0.041),
         (0.688, 0.055), "4.9M"),
    _eeg("BIOT", (0.443, 0.079), (0.500, 0.000), (0.510, 0.018), None, (0.763, 0.049), None, "3.2M"),
    _eeg("MIRepNet", (0.689, 0.086), None, None, None, None, None, None),
    _eeg("LaBraM", (0.630, 0.076), (0.822, 0.040), (0.526, 0.026), (0.652, 0.037), (0.799, 0.047),
         (0.686, 0.045), "5.8M"),
    _eeg("EEGPT", (0.313, 0.035), (0.668, 0.146), (0.520, 0.017), (0.634, 0.044), (0.797, 0.037),
         (0.587, 0.056), "25.7M"),
    _eeg("NeuroRVQ", (0.700, 0.073), (0.876, 0.033), (0.574, 0.027), (0.728, 0.028), (0.869, 0.026),
         (0.749, 0.037), "5.9M"),
)
"""The README's EEG table, rows in its order (the "Sleep*" column's asterisk is unexplained there)."""

ECG: tuple[PublishedModel, ...] = (
    PublishedModel("NeuroRVQ", {"ptbxl_5class": Score(0.7019), "ptbxl_43class": Score(0.7917)}, "accuracy",
                   source=MULTIMODAL_SOURCE,
                   notes=("the 43-class accuracy exceeding the 5-class one cannot come from the same predictions "
                          "under the official labelling (benchmarks.md §4.2)",)),
)
EMG: tuple[PublishedModel, ...] = (
    PublishedModel("NeuroRVQ", {"discrete_gestures": Score(0.708)}, "balanced_accuracy", source=MULTIMODAL_SOURCE,
                   notes=("Discrete Gestures is reported as balanced accuracy, the other three rows as accuracy",)),
    PublishedModel("NeuroRVQ", {"epn612": Score(0.9465), "ninapro_db5": Score(0.4136), "uci": Score(0.8943)},
                   "accuracy", source=MULTIMODAL_SOURCE),
)
"""The EMG numbers in their two metrics: one published model per metric, each shown in the table of its metric."""
RECONSTRUCTION: tuple[PublishedModel, ...] = (
    PublishedModel("NeuroRVQ", {"brainomni": Score(0.191), "high_gamma": Score(0.084), "pavlov": Score(0.090)},
                   "mse", source=MULTIMODAL_SOURCE,
                   notes=("raw-signal MSE of per-window standardised signals; the number of windows, subjects and the "
                          "band filtering are not stated",)),
)

BUILT_IN: dict[str, tuple[PublishedModel, ...]] = {"eeg": EEG, "ecg": ECG, "emg": EMG, "recon": RECONSTRUCTION}
"""Published rows of each built-in table."""


def published_mean(model: PublishedModel, rows: list[str]) -> Score | None:
    """The model's Mean column: the published one, else (every row reported) the mean of the row means ± the mean
    of their stds (the README's convention), else ``None``."""
    if model.mean is not None:
        return model.mean
    scores = [model.score(r) for r in rows]
    if not rows or any(s is None for s in scores):
        return None
    stds = [s.std for s in scores]
    return Score(sum(s.mean for s in scores) / len(scores),
                 None if any(s is None for s in stds) else sum(stds) / len(stds))


__all__ = ["BUILT_IN", "ECG", "EEG", "EEG_SOURCE", "EMG", "MULTIMODAL_SOURCE", "PUBLISHED_SUFFIX", "PublishedModel",
           "RECONSTRUCTION", "Score", "published_mean"]
