"""Subject-independent cross-validation of classifiers (``neurorvq cv``) and its tables."""

from neurorvq.crossval.fold_data import FoldDataModule
from neurorvq.crossval.runner import CVSettings, run_cv

__all__ = ["CVSettings", "FoldDataModule", "run_cv"]
