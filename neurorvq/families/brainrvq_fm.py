"""BrainRVQ's foundation-model options (families.md §A.4, §A.6) and the architecture its student starts from.

The student is LaBraM's (TemporalConv, 12 blocks of width 200 with QK-norm and layer scale, 129-row spatial table
over ``standard_1020``, µV/100 in the model) with a **30-row** temporal table (families.md §A.2). It shares these
fields with the DD-RVQ tokenizer (:data:`~neurorvq.families.labram.FM_ARCHITECTURE_FIELDS`); the heads' vocabulary,
levels and domains come from the tokenizer's token layout. :class:`BrainRVQFMOptions` names its model class itself,
so it builds whether or not the ``brainrvq`` :class:`~neurorvq.families.Family` record is registered.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Optional

from neurorvq.families.labram import FM_ARCHITECTURE_FIELDS, LaBraMConfig, LaBraMFMOptions

FAMILY = "brainrvq"
MASKINGS = ("importance", "random")
"""How pretraining masks tokens: BrainRVQ's importance-guided curriculum (families.md §A.5) or its random-mask
ablation (``floor(ratio L)`` uniformly chosen tokens)."""

BRAINRVQ_FM_ARCHITECTURE = LaBraMConfig(max_patches=30)
"""The official student's shared fields at full size: LaBraM's with 30 temporal rows (windows up to 30 s)."""


def fm_architecture(config: Any = None) -> LaBraMConfig:
    """The student's shared fields as a :class:`~neurorvq.families.labram.LaBraMConfig`: those of ``config`` (a
    modality's ``brainrvq`` default or a tokenizer's config, any class with these attributes) over
    :data:`BRAINRVQ_FM_ARCHITECTURE`."""
    if config is None:
        return BRAINRVQ_FM_ARCHITECTURE
    fields = {name: getattr(config, name) for name in FM_ARCHITECTURE_FIELDS if hasattr(config, name)}
    return LaBraMConfig(**{**{n: getattr(BRAINRVQ_FM_ARCHITECTURE, n) for n in FM_ARCHITECTURE_FIELDS}, **fields})


@dataclass(frozen=True)
class BrainRVQFMOptions(LaBraMFMOptions):
    """BrainRVQ's hierarchical autoregressive student: ``fm: {class_path:
    neurorvq.families.brainrvq_fm.BrainRVQFMOptions, init_args: {...}}`` in a pretraining recipe, ``fm_overrides``
    in a fine-tuning one. Architecture fields left ``None`` take the modality's ``brainrvq`` default (else the
    official size); the heads' vocabulary, levels and domains come from the tokenizer.

    The fields are LaBraM's student's (:class:`~neurorvq.families.labram.LaBraMFMOptions`), with drop-path 0.1 by
    default, plus ``masking`` and ``level_weights``.

    Args:
        depth: transformer blocks (12).
        init_values: layer-scale initial value (0.1).
        drop_path: stochastic depth of the last block, linearly spaced from 0 (0.1 in BrainRVQ's pretraining and
            fine-tuning).
        parity: reproduce the official code where it differs (neurorvq.models.brainrvq_fm: the CLS token on the first
            channel's spatial row in pretraining, the dead ``student.lm_head`` and last-level code embeddings kept,
            the tokenizer under fp16 autocast on GPUs, mask token and code embeddings weight-decayed,
            ``time_embed`` in the top layer-decay group).
        masking: ``importance`` (the curriculum of families.md §A.5) or ``random`` (its ablation).
        level_weights: loss weight of each RVQ level (``None``: 1, 0.5, 0.25, ... = 0.5 ** level, the official).
        max_patches: rows of the temporal table (30 for BrainRVQ's student).
        other fields: as :class:`~neurorvq.families.labram.LaBraMFMOptions` (width, conv, heads, MLP, tables,
            vocabulary, input scale, LayerNorm eps, input checks, cropping).
    """

    drop_path: float = 0.1
    masking: str = "importance"
    level_weights: Optional[tuple[float, ...]] = None

    family: ClassVar[str] = FAMILY

    def model_class(self) -> type:
        from neurorvq.models.brainrvq_fm import BrainRVQFoundationModel

        return BrainRVQFoundationModel


__all__ = ["BRAINRVQ_FM_ARCHITECTURE", "BrainRVQFMOptions", "FAMILY", "MASKINGS", "fm_architecture"]
