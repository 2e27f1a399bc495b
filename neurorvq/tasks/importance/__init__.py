"""BrainRVQ's importance-guided curriculum masking (families.md §A.5): per-patch physiological score
(``features``), the sampler with punching and the run limit, and the random-mask ablation (``sampling``), the
curriculum and the per-batch entry point (``mask``)."""

from neurorvq.tasks.importance.features import (FEATURE_NAMES, FEATURE_WEIGHTS, PatchFeatures, importance_score,
                                                patch_features)
from neurorvq.tasks.importance.mask import (ImportanceMaskDraw, ImportanceMaskSettings, curriculum_weight,
                                            importance_mask, importance_mask_draw)
from neurorvq.tasks.importance.sampling import (GuidedMaskStages, RandomMaskStages, guided_mask, limit_runs,
                                                random_mask)

__all__ = ["FEATURE_NAMES", "FEATURE_WEIGHTS", "GuidedMaskStages", "ImportanceMaskDraw", "ImportanceMaskSettings",
           "PatchFeatures", "RandomMaskStages", "curriculum_weight", "guided_mask", "importance_mask",
           "importance_mask_draw", "importance_score", "limit_runs", "patch_features", "random_mask"]
